//! Helpers of the vault service tests: a real `tresor serve`, real agents, QEMU VMs
//! without a guest OS, the operator's CLI, and a proxy that can cut the network.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tresor_qmp::Qmp;

pub const MIB: u64 = 1 << 20;

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn tresor_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tresor"));
    c.env_remove("TRESOR_SERVER")
        .env_remove("TRESOR_TOKEN")
        .env_remove("TRESOR_FINGERPRINT")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy");
    c
}

/// The operator's CLI, configured by the server's cli.json.
pub struct Cli {
    pub config: PathBuf,
}

impl Cli {
    pub fn run(&self, args: &[&str]) -> Output {
        tresor_bin()
            .env("TRESOR_CONFIG", &self.config)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tresor {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Creates `vault` (resource group `rg`, location `local`, locally redundant: a
    /// test server has no paired location) and issues its credentials into `file`.
    pub fn create_local_vault(&self, vault: &str, file: &Path) {
        self.ok(&[
            "vault",
            "create",
            "-n",
            vault,
            "-g",
            "rg",
            "-l",
            "local",
            "--storage-redundancy",
            "LocallyRedundant",
        ]);
        self.issue_credentials(vault, file);
    }

    /// Issues credentials of `vault` into `file`, for an agent to register with.
    pub fn issue_credentials(&self, vault: &str, file: &Path) {
        self.ok(&[
            "vault",
            "credentials",
            "-n",
            vault,
            "--output-file",
            file.to_str().unwrap(),
        ]);
    }

    /// Waits until an agent has reported VM `vm` as protectable in `vault`.
    pub fn wait_protectable(&self, vault: &str, vm: &str) {
        wait_for("the agent's inventory", Duration::from_secs(30), || {
            self.json(&["protectable-item", "list", "-v", vault])
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v["vm"] == vm))
        });
    }

    /// Starts "back up now" of `item` and waits until `bytes` more went up through
    /// `proxy`, so that what comes next happens mid-upload. Returns the job's id.
    pub fn backup_until_uploading(
        &self,
        vault: &str,
        item: &str,
        proxy: &Proxy,
        bytes: u64,
    ) -> String {
        let job = self.json(&["protection", "backup-now", "-v", vault, "-i", item]);
        let before = proxy.bytes_up();
        wait_for("the upload to start", Duration::from_secs(60), || {
            proxy.bytes_up() > before + bytes
        });
        job["id"].as_str().unwrap().to_string()
    }

    /// Runs a command that must fail; returns its error output.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "tresor {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn qmp<T>(socket: &Path, f: impl AsyncFnOnce(&Qmp) -> T) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let q = Qmp::connect(socket, Duration::from_secs(10)).await.unwrap();
            f(&q).await
        })
}

pub fn start_server(data: &Path) -> Proc {
    let child = tresor_bin()
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env("TRESOR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    wait_for("the server's cli.json", Duration::from_secs(30), || {
        data.join("cli.json").exists()
    });
    p
}

/// A VM without guest OS: QEMU with one qcow2 disk (`drive0`) and two QMP monitors,
/// one for the agent and one for the test. Killed on drop.
pub struct TestVm {
    pub _proc: Proc,
    pub image: PathBuf,
    pub agent_qmp: PathBuf,
    pub test_qmp: PathBuf,
}

pub fn start_vm(dir: &Path, name: &str, size: u64) -> TestVm {
    let image = dir.join(format!("{name}.qcow2"));
    assert!(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg(size.to_string())
        .status()
        .expect("qemu-img is needed; run scripts/install-deps.sh")
        .success());
    start_vm_on(dir, name, image)
}

/// Starts QEMU again on an existing image (after it was killed, say): same sockets.
pub fn start_vm_on(dir: &Path, name: &str, image: PathBuf) -> TestVm {
    let agent_qmp = dir.join(format!("{name}.qmp"));
    let test_qmp = dir.join(format!("{name}-test.qmp"));
    // A killed QEMU leaves its socket files; waiting must see the new ones.
    let _ = std::fs::remove_file(&agent_qmp);
    let _ = std::fs::remove_file(&test_qmp);
    let proc = Proc(
        Command::new("qemu-system-x86_64")
            .args([
                "-machine",
                "none",
                "-accel",
                "tcg",
                "-nodefaults",
                "-display",
                "none",
                "-name",
                name,
            ])
            .arg("-drive")
            .arg(format!(
                "if=none,id=drive0,node-name=disk0,format=qcow2,file={}",
                image.display()
            ))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", agent_qmp.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", test_qmp.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 is needed; run scripts/install-deps.sh"),
    );
    wait_for("QEMU's sockets", Duration::from_secs(20), || {
        agent_qmp.exists() && test_qmp.exists()
    });
    TestVm {
        _proc: proc,
        image,
        agent_qmp,
        test_qmp,
    }
}

/// Writes an agent configuration for host `host` with VM `vm` (QMP socket `qmp`).
/// Restores may write under `dir` (its restore root), where the tests restore to.
pub fn agent_config(
    dir: &Path,
    creds: Option<&Path>,
    (host, location): (&str, &str),
    (vm, qmp): (&str, &Path),
    proxy_port: Option<u16>,
) -> PathBuf {
    let mut text = String::new();
    if let Some(c) = creds {
        text.push_str(&format!("credentials = \"{}\"\n", c.display()));
    }
    text.push_str(&format!(
        "state_dir = \"{}\"\nhost = \"{host}\"\nlocation = \"{location}\"\nscratch_dir = \"{}\"\nrestore_roots = [\"{}\"]\n",
        dir.join("agent-state").display(),
        dir.display(),
        dir.display()
    ));
    if let Some(port) = proxy_port {
        text.push_str(&format!("[proxy]\nhost = \"127.0.0.1\"\nport = {port}\n"));
    }
    // The test's VM only: a libvirtd that another test started on this machine
    // must not add its domains to this agent's report.
    text.push_str("[libvirt]\nenabled = false\n");
    text.push_str(&format!(
        "[[vm]]\nname = \"{vm}\"\nqmp = \"{}\"\n",
        qmp.display()
    ));
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn start_agent(config: &Path) -> Proc {
    Proc(
        tresor_bin()
            .args(["agent", "run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// An HTTP CONNECT proxy on loopback that counts tunnels and bytes, can slow the
/// upload direction down, and can cut every tunnel (and refuse new ones) for a while.
pub struct Proxy {
    pub port: u16,
    pub tunnels: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    up: std::sync::Arc<std::sync::atomic::AtomicU64>,
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    /// `rate`: bytes per second towards the server.
    pub fn start(rate: u64) -> Proxy {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering::SeqCst;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Proxy {
            port,
            tunnels: Default::default(),
            up: Default::default(),
            blocked: Default::default(),
            open: Default::default(),
        };
        let (tunnels, up, blocked, open) = (
            p.tunnels.clone(),
            p.up.clone(),
            p.blocked.clone(),
            p.open.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if blocked.load(SeqCst) {
                    continue;
                }
                let (tunnels, up, open) = (tunnels.clone(), up.clone(), open.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let target = line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let Ok(server) = std::net::TcpStream::connect(&target) else {
                        let _ = (&client).write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    (&client)
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .unwrap();
                    tunnels.fetch_add(1, SeqCst);
                    open.lock()
                        .unwrap()
                        .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                    let (mut s_read, mut c_write) =
                        (server.try_clone().unwrap(), client.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut s_read, &mut c_write);
                        let _ = c_write.shutdown(std::net::Shutdown::Both);
                    });
                    let mut server = server;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match reader.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if server.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        up.fetch_add(n as u64, SeqCst);
                        std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                    }
                    let _ = server.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        p
    }

    pub fn bytes_up(&self) -> u64 {
        self.up.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Drops every tunnel and refuses connections for `pause`.
    pub fn cut(&self, pause: Duration) {
        use std::sync::atomic::Ordering::SeqCst;
        self.blocked.store(true, SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        std::thread::sleep(pause);
        self.blocked.store(false, SeqCst);
    }
}

/// A free port on loopback (so a restarted server can listen where the agent looks).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tresor serve --with-local-agent` on `port`, its agent configured by `agent_toml`,
/// once it listens and has written `cli.json`.
pub fn serve_with_local_agent(data: &Path, port: u16, agent_toml: &Path) -> Proc {
    // The data folder given relative to the working folder, as scripts/try.sh does:
    // the local agent's state folder must still come out absolute.
    let p = Proc(
        tresor_bin()
            .current_dir(data.parent().expect("a data folder inside another"))
            .args(["serve", "--data-dir"])
            .arg(data.file_name().expect("a data folder's name"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--with-local-agent", "--agent-config"])
            .arg(agent_toml)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the server", Duration::from_secs(30), || {
        data.join("cli.json").exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    p
}

pub fn start_server_at(data: &Path, port: u16) -> Proc {
    let child = tresor_bin()
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    wait_for("the server to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    p
}

/// Writes `mib` MiB of random data at `offset` through QEMU; returns it.
pub fn random_write(test_qmp: &Path, dir: &Path, offset: u64, mib: u64, seed: u8) -> Vec<u8> {
    let mut data = vec![0u8; (mib * MIB) as usize];
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ seed as u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let src = dir.join(format!("random-{seed}"));
    std::fs::write(&src, &data).unwrap();
    qmp(test_qmp, async |q| {
        q.qemu_io(
            "drive0",
            &format!("write -s {} {offset} {}", src.display(), mib * MIB),
        )
        .await
        .unwrap();
        q.qemu_io("drive0", "flush").await.unwrap();
    });
    data
}
