//! Starting QEMU for a test, with or without a guest OS.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

use crate::guest::{GuestMode, SERIAL_PREFIX};
use crate::image::GuestImage;

const QEMU: &str = "qemu-system-x86_64";
/// A minimal firmware for direct kernel boot, from Debian's qemu-system-data.
const QBOOT: &str = "/usr/share/qemu/qboot.rom";
/// How long [`TestVm::start`] waits for QEMU to be up (its QMP greeting).
const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// A disk of a test VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestDisk {
    /// The image file.
    pub image: PathBuf,
    /// Its format: `"qcow2"` or `"raw"`.
    pub format: String,
    /// The block node name of the format node, e.g. `"disk0"`; the protocol node
    /// under it is `"<node>-file"`.
    pub node: String,
    /// The id of the guest's virtio-blk device, e.g. `"vda"` (unused without a guest).
    pub device: String,
}

impl TestDisk {
    /// A disk with the given image, format, node name and device id.
    pub fn new(
        image: impl Into<PathBuf>,
        format: impl Into<String>,
        node: impl Into<String>,
        device: impl Into<String>,
    ) -> TestDisk {
        TestDisk {
            image: image.into(),
            format: format.into(),
            node: node.into(),
            device: device.into(),
        }
    }
}

/// How to start a [`TestVm`].
#[derive(Clone, Debug)]
pub struct TestVmConfig {
    /// Disks, in order: with a guest OS they are `/dev/vda`, `/dev/vdb`, ...
    pub disks: Vec<TestDisk>,
    /// The guest OS and what it does; `None` runs no OS (`-machine none`, no
    /// devices, the disks exist only as block nodes for QMP/HMP).
    pub guest: Option<(GuestImage, GuestMode)>,
    /// Whether to add the guest agent's virtio-serial port (`org.qemu.guest_agent.0`,
    /// host end [`TestVm::guest_agent_socket`]) and start `qemu-ga` in the guest.
    /// Without a guest OS only the host-side socket exists, with nobody behind it.
    pub guest_agent: bool,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// More QEMU arguments, appended last.
    pub extra_args: Vec<String>,
}

impl Default for TestVmConfig {
    fn default() -> Self {
        TestVmConfig {
            disks: Vec::new(),
            guest: None,
            guest_agent: false,
            memory_mib: 256,
            extra_args: Vec::new(),
        }
    }
}

/// A running QEMU, killed (SIGKILL) when dropped. Owns a temporary directory with
/// its QMP and agent sockets, serial log and stderr.
#[derive(Debug)]
pub struct TestVm {
    child: Child,
    dir: TempDir,
    command_line: Vec<String>,
    has_guest: bool,
    exit: Option<ExitStatus>,
    started: Instant,
}

impl TestVm {
    /// Starts QEMU and waits until it is up (its QMP socket answers with a
    /// greeting). Fails with QEMU's stderr if it exits first.
    pub fn start(config: TestVmConfig) -> Result<TestVm> {
        let dir = tempfile::Builder::new()
            .prefix("tresor-vm-")
            .tempdir()
            .context("creating the VM's temporary directory")?;
        let args = qemu_args(&config, dir.path());
        let mut command_line = vec![QEMU.to_string()];
        command_line.extend(args.iter().cloned());
        tracing::debug!(command = ?command_line, "starting test VM");

        let stderr = fs::File::create(dir.path().join("qemu.stderr"))?;
        let stdout = fs::File::create(dir.path().join("qemu.stdout"))?;
        let started = Instant::now();
        let child = Command::new(QEMU)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    anyhow!(
                        "{QEMU} not found: install the Debian package qemu-system-x86 \
                         (scripts/install-deps.sh, run as root, installs it)"
                    )
                } else {
                    anyhow!("starting {QEMU}: {e}")
                }
            })?;
        let mut vm = TestVm {
            child,
            dir,
            command_line,
            has_guest: config.guest.is_some(),
            exit: None,
            started,
        };
        vm.wait_for_qmp()?;
        Ok(vm)
    }

    /// Waits for the QMP greeting: QEMU sends it once its main loop runs, that is
    /// after every device and block node was created.
    fn wait_for_qmp(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let path = self.qmp_socket();
        loop {
            if let Some(status) = self.try_wait()? {
                bail!(
                    "QEMU exited at start ({status}): {}\ncommand: {}",
                    self.stderr().trim(),
                    self.command_line.join(" ")
                );
            }
            if let Ok(stream) = UnixStream::connect(&path) {
                stream.set_read_timeout(Some(Duration::from_secs(1)))?;
                let mut line = String::new();
                // EOF or a timeout: QEMU is exiting or slow; look again.
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.contains("QMP") {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "QEMU did not answer on {} within {START_TIMEOUT:?}; stderr: {}",
                    path.display(),
                    self.stderr().trim()
                );
            }
            sleep(POLL);
        }
    }

    /// The QMP socket (`-qmp unix:…,server=on,wait=off`).
    pub fn qmp_socket(&self) -> PathBuf {
        self.dir.path().join("qmp.sock")
    }

    /// The host end of the guest agent's port (exists only with `guest_agent`).
    pub fn guest_agent_socket(&self) -> PathBuf {
        self.dir.path().join("qga.sock")
    }

    /// The file the guest's serial console goes to.
    pub fn serial_log_path(&self) -> PathBuf {
        self.dir.path().join("serial.log")
    }

    /// The serial console output so far (empty without a guest OS).
    pub fn serial_log(&self) -> String {
        fs::read(self.serial_log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// QEMU's stderr so far.
    pub fn stderr(&self) -> String {
        fs::read(self.dir.path().join("qemu.stderr"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The VM's temporary directory (sockets, logs); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Time since QEMU was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Polls the serial log until it contains `needle` and returns the whole log
    /// at that point. Fails, with the log's tail, if the guest reports an error
    /// (`TRESOR-GUEST: error …`), QEMU exits, or `timeout` passes.
    pub fn wait_for_serial(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_for_serial_where(needle, timeout, |log| log.contains(needle))
    }

    /// Like [`TestVm::wait_for_serial`] with a predicate on the log; `what`
    /// describes it in errors.
    pub fn wait_for_serial_where(
        &mut self,
        what: &str,
        timeout: Duration,
        mut found: impl FnMut(&str) -> bool,
    ) -> Result<String> {
        if !self.has_guest {
            bail!("waiting for {what:?} on the serial console of a VM without a guest OS");
        }
        let deadline = Instant::now() + timeout;
        let error_mark = format!("{SERIAL_PREFIX}error");
        loop {
            // Check the exit status before reading, so output written just
            // before the exit is still seen.
            let exited = self.try_wait()?;
            let log = self.serial_log();
            if found(&log) {
                return Ok(log);
            }
            if log.contains(&error_mark) {
                bail!(
                    "the guest reported an error while waiting for {what:?}:\n{}",
                    tail(&log)
                );
            }
            if let Some(status) = exited {
                bail!(
                    "QEMU exited ({status}) while waiting for {what:?}; stderr: {}\nserial log:\n{}",
                    self.stderr().trim(),
                    tail(&log)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "no {what:?} on the serial console within {timeout:?}; serial log:\n{}",
                    tail(&log)
                );
            }
            sleep(POLL);
        }
    }

    /// Waits up to `timeout` for QEMU to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("QEMU still runs after {timeout:?}");
            }
            sleep(POLL);
        }
    }

    /// Kills QEMU with SIGKILL (as a host crash would) and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // Child::kill sends SIGKILL.
        self.child.kill().context("killing QEMU")?;
        let status = self.child.wait().context("waiting for QEMU")?;
        self.exit = Some(status);
        Ok(status)
    }

    /// QEMU's exit status if it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().context("waiting for QEMU")?;
        }
        Ok(self.exit)
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command QEMU was started with (program first).
    pub fn command_line(&self) -> Vec<String> {
        self.command_line.clone()
    }
}

impl Drop for TestVm {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The last 40 lines of `log`.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn qemu_args(config: &TestVmConfig, dir: &Path) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |args: &[&str]| a.extend(args.iter().map(|s| s.to_string()));
    // TCG always: on the machines these tests run on, KVM stops a Linux guest
    // with an emulation failure, and tests must not need /dev/kvm.
    push(&["-nodefaults", "-display", "none", "-accel", "tcg"]);
    let qmp = format!("unix:{},server=on,wait=off", dir.join("qmp.sock").display());
    push(&["-qmp", &qmp]);
    match &config.guest {
        None => push(&["-machine", "none"]),
        Some((image, mode)) => {
            let memory = config.memory_mib.to_string();
            let serial = format!("file:{}", dir.join("serial.log").display());
            // `quiet`: only the guest's own lines and errors on the console;
            // `cryptomgr.notests`: the crypto self-tests take half a second under TCG;
            // `panic=-1` with `-no-reboot`: a guest that dies makes QEMU exit.
            let append = format!(
                "console=ttyS0 quiet panic=-1 cryptomgr.notests {} tresor.agent={}",
                mode.kernel_args(),
                u8::from(config.guest_agent)
            );
            push(&["-machine", "q35", "-m", &memory, "-smp", "1", "-no-reboot"]);
            // qboot (shipped with Debian's QEMU) starts a -kernel guest about half
            // a second sooner than SeaBIOS under TCG.
            if Path::new(QBOOT).is_file() {
                push(&["-bios", QBOOT]);
            }
            push(&["-serial", &serial]);
            push(&["-kernel", &image.kernel.to_string_lossy()]);
            push(&["-initrd", &image.initrd.to_string_lossy()]);
            push(&["-append", &append]);
        }
    }
    for disk in &config.disks {
        let file = format!(
            "driver=file,filename={},node-name={}-file",
            escape_option(&disk.image.to_string_lossy()),
            disk.node
        );
        let format = format!(
            "driver={},file={}-file,node-name={}",
            disk.format, disk.node, disk.node
        );
        push(&["-blockdev", &file, "-blockdev", &format]);
        if config.guest.is_some() {
            let device = format!("virtio-blk-pci,drive={},id={}", disk.node, disk.device);
            push(&["-device", &device]);
        }
    }
    if config.guest_agent {
        let chardev = format!(
            "socket,path={},server=on,wait=off,id=qga0",
            dir.join("qga.sock").display()
        );
        push(&["-chardev", &chardev]);
        if config.guest.is_some() {
            push(&[
                "-device",
                "virtio-serial",
                "-device",
                "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            ]);
        }
    }
    a.extend(config.extra_args.iter().cloned());
    a
}

/// Escapes a value for QEMU's `key=value,…` option syntax (a comma is doubled).
fn escape_option(value: &str) -> String {
    value.replace(',', ",,")
}
