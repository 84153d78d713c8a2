//! A libvirt system daemon for tests, and disposable domains in it.
//!
//! [`Libvirtd::ensure`] uses the daemon that runs, else (as root) starts one the
//! way this machine allows (no systemd): `virtlogd -d`, then `libvirtd -d`, waits
//! for its socket, and stops both by the PIDs in their PID files when the last test
//! of the process holding it drops it.
//! Domains are TCG (`type='qemu'`: no /dev/kvm needed) and their images sit under
//! `/var/lib/libvirt/images`, where libvirt's QEMU user reaches them. Everything a
//! test makes is named with a prefix of its own and removed when [`TestDomains`]
//! drops, so an existing daemon is left as it was found.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

const SOCKET: &str = "/run/libvirt/libvirt-sock";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// The daemons this test process started, stopped when the last test holding them
/// drops its [`Libvirtd`] (tests of one binary run in parallel and share them).
struct Started(Vec<(&'static str, PathBuf)>);

/// What the running tests share: the daemons one of them started, while any holds it.
static SHARED: Mutex<Weak<Started>> = Mutex::new(Weak::new());

/// The daemon the tests talk to; the last holder stops it when this process started it.
pub struct Libvirtd {
    _started: Option<Arc<Started>>,
}

impl Libvirtd {
    /// A running `qemu:///system`: the one there is, else one started here (once for
    /// every test of this process that runs meanwhile).
    pub fn ensure() -> Result<Libvirtd> {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(started) = shared.upgrade() {
            return Ok(Libvirtd {
                _started: Some(started),
            });
        }
        if tresor_libvirt::system_daemon_present() && Connect::open(Some("qemu:///system")).is_ok()
        {
            return Ok(Libvirtd { _started: None });
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            bail!("no libvirtd runs and only root can start the system daemon: run the tests as root, or start libvirtd");
        }
        let mut started = Started(Vec::new());
        for (daemon, pid_file) in [
            ("virtlogd", "/run/virtlogd.pid"),
            ("libvirtd", "/run/libvirtd.pid"),
        ] {
            let status = Command::new(daemon).arg("-d").status().with_context(|| {
                format!("starting {daemon} (Debian package libvirt-daemon-system; scripts/install-deps.sh installs it)")
            })?;
            if !status.success() {
                bail!("{daemon} -d failed: {status}");
            }
            started.0.push((daemon, PathBuf::from(pid_file)));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while !(Path::new(SOCKET).exists() && Connect::open(Some("qemu:///system")).is_ok()) {
            if Instant::now() > deadline {
                bail!("libvirtd started but {SOCKET} did not answer within {START_TIMEOUT:?}");
            }
            sleep(POLL);
        }
        let started = Arc::new(started);
        *shared = Arc::downgrade(&started);
        Ok(Libvirtd {
            _started: Some(started),
        })
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        // libvirtd first (it holds virtlogd's connections), each by its own PID.
        for (daemon, pid_file) in self.0.iter().rev() {
            let Some(pid) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            else {
                eprintln!("cannot read {}: {daemon} left running", pid_file.display());
                continue;
            };
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                sleep(POLL);
            }
        }
    }
}

/// Domains and images of one test, all named `PREFIX-...`; removed on drop.
pub struct TestDomains {
    pub conn: Connect,
    pub prefix: String,
    pub images: PathBuf,
}

impl TestDomains {
    pub fn new(tag: &str) -> Result<TestDomains> {
        let conn = Connect::open(Some("qemu:///system")).context("connecting to qemu:///system")?;
        let prefix = format!("tresor-{tag}-{}", std::process::id());
        let images = PathBuf::from("/var/lib/libvirt/images").join(&prefix);
        std::fs::create_dir_all(&images)
            .with_context(|| format!("creating {}", images.display()))?;
        let me = TestDomains {
            conn,
            prefix,
            images,
        };
        me.remove_all();
        Ok(me)
    }

    /// The full name of the test's domain `short`.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// A new image of `size` bytes made by `qemu-img` (`raw` or `qcow2`).
    pub fn image(&self, file: &str, format: &str, size: u64) -> Result<PathBuf> {
        let path = self.images.join(file);
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", format])
            .arg(&path)
            .arg(size.to_string())
            .output()
            .context("running qemu-img (Debian package qemu-utils)")?;
        if !out.status.success() {
            bail!(
                "qemu-img create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(path)
    }

    pub fn define(&self, xml: &str) -> Result<Domain> {
        Domain::define_xml(&self.conn, xml).map_err(|e| anyhow::anyhow!("defining a domain: {e}"))
    }

    /// Starts a domain that exists only while it runs.
    pub fn create_transient(&self, xml: &str) -> Result<Domain> {
        Domain::create_xml(&self.conn, xml, 0)
            .map_err(|e| anyhow::anyhow!("creating a transient domain: {e}"))
    }

    /// Destroys and undefines every domain with the prefix.
    fn remove_all(&self) {
        let Ok(domains) = self.conn.list_all_domains(0) else {
            return;
        };
        for d in domains {
            if !d.get_name().is_ok_and(|n| n.starts_with(&self.prefix)) {
                continue;
            }
            if d.is_active().unwrap_or(false) {
                let _ = d.destroy();
            }
            if d.is_persistent().unwrap_or(false) {
                // Checkpoints (a backup test leaves one) would refuse the undefine.
                let _ = d.undefine_flags(
                    sys::VIR_DOMAIN_UNDEFINE_NVRAM | sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
                );
            }
        }
    }
}

impl Drop for TestDomains {
    fn drop(&mut self) {
        self.remove_all();
        let _ = std::fs::remove_dir_all(&self.images);
    }
}

/// How a test domain is made.
pub struct DomainSpec<'a> {
    pub name: &'a str,
    pub uuid: &'a str,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// `(target, format, image)`.
    pub disks: Vec<(&'a str, &'a str, &'a Path)>,
    /// Extra XML inside `<devices>`.
    pub devices: &'a str,
    /// Extra XML inside `<os>`.
    pub os: &'a str,
}

/// A TCG domain: SeaBIOS finds nothing to boot and idles, which is enough for a
/// domain that runs. A guest agent channel and a user-mode NIC come with it.
pub fn domain_xml(spec: &DomainSpec) -> String {
    let disks: String = spec
        .disks
        .iter()
        .map(|(target, format, image)| {
            format!(
                "<disk type='file' device='disk'><driver name='qemu' type='{format}'/>\
                 <source file='{}'/><target dev='{target}' bus='virtio'/></disk>",
                image.display()
            )
        })
        .collect();
    format!(
        "<domain type='qemu'>
           <name>{name}</name><uuid>{uuid}</uuid>
           <memory unit='MiB'>{mem}</memory><vcpu>{vcpus}</vcpu>
           <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/>{os}</os>
           <features><acpi/></features>
           <devices>
             <emulator>/usr/bin/qemu-system-x86_64</emulator>
             {disks}
             <interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/><rom enabled='no'/></interface>
             <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
             <video><model type='none'/></video>
             <memballoon model='none'/>
             {devices}
           </devices>
         </domain>",
        name = spec.name,
        uuid = spec.uuid,
        mem = spec.memory_mib,
        vcpus = spec.vcpus,
        os = spec.os,
        devices = spec.devices,
    )
}
