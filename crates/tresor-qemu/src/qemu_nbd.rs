//! A stopped VM's image served read-only by `qemu-nbd` on a private Unix socket.

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::{Error, Result};

/// How long `qemu-nbd` may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The export name used on the private socket.
pub const EXPORT: &str = "disk";

/// A running `qemu-nbd`; stopped and its socket folder removed on drop.
pub struct QemuNbdServer {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    image: PathBuf,
}

impl QemuNbdServer {
    /// Serves `image` read-only to up to `connections` clients at once, exposing the
    /// persistent dirty bitmap `bitmap` when given.
    ///
    /// `qemu-nbd` takes the image's lock: if a running VM holds it, this fails with
    /// [`Error::ImageLocked`]; while this runs, a VM cannot open the image for writing.
    pub fn start(
        image: &Path,
        format: &str,
        bitmap: Option<&str>,
        connections: u32,
    ) -> Result<QemuNbdServer> {
        let dir = private_dir()?;
        let socket = dir.join("nbd.sock");
        let mut cmd = Command::new("qemu-nbd");
        cmd.arg("--read-only")
            .arg("--persistent")
            .arg(format!("--shared={}", connections.max(1)))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--format={format}"))
            .arg(format!("--export-name={EXPORT}"));
        if let Some(b) = bitmap {
            cmd.arg(format!("--bitmap={b}"));
        }
        cmd.arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().map_err(|source| {
            let _ = std::fs::remove_dir_all(&dir);
            Error::Spawn {
                program: "qemu-nbd".into(),
                source,
            }
        })?;
        let mut server = QemuNbdServer {
            child,
            dir,
            socket,
            image: image.to_path_buf(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Why `qemu-nbd` stopped, if it has (within `grace`). Some versions open the
    /// socket before the image, so a refused image shows only as a closed connection.
    pub fn exit_error(&mut self, grace: Duration) -> Option<Error> {
        let started = Instant::now();
        loop {
            if self.child.try_wait().ok().flatten().is_some() {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                let image = self.image.display().to_string();
                if stderr.contains("lock") {
                    return Some(Error::ImageLocked { image });
                }
                return Some(Error::Tool {
                    program: "qemu-nbd".into(),
                    image,
                    message: stderr.trim().to_string(),
                });
            }
            if started.elapsed() >= grace {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(e) = self.exit_error(Duration::ZERO) {
                return Err(e);
            }
            if self.socket.exists() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(Error::StartTimeout {
                    image: self.image.display().to_string(),
                    seconds: START_TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The Unix socket to connect to (export name [`EXPORT`]).
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for QemuNbdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new folder only this user can enter, for a socket nobody else may connect to.
pub(crate) fn private_dir() -> Result<PathBuf> {
    let mut raw = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut raw);
    let dir = std::env::temp_dir().join(format!("tresor-nbd-{}", hex::encode(raw)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|source| Error::Spawn {
            program: format!("mkdir {}", dir.display()),
            source,
        })?;
    Ok(dir)
}
