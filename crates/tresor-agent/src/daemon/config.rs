//! The agent's configuration (agent.toml), and the agent's own folders and files,
//! kept private.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tresor_client::ProxyConfig;
use tresor_qemu::{QemuProvider, QemuVmConfig};

use crate::confine::{self, RestoreRoots};

/// How long a running job may take to finish once the agent is asked to stop.
const DEFAULT_DRAIN: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// A vault credentials file, used for the first start only.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    pub state_dir: PathBuf,
    #[serde(default)]
    pub host: Option<String>,
    pub location: String,
    #[serde(default)]
    pub scratch_dir: Option<PathBuf>,
    #[serde(default)]
    pub socket_dirs: Vec<PathBuf>,
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    /// Folders restores may write into (new folders under them). Empty: one root,
    /// `STATE_DIR/restores`.
    #[serde(default)]
    pub restore_roots: Vec<PathBuf>,
    /// On SIGTERM, how long a running job may still take before it is cancelled.
    /// Default: 600 (ten minutes).
    #[serde(default)]
    pub drain_timeout_secs: Option<u64>,
    #[serde(default, rename = "vm")]
    pub vms: Vec<QemuVmConfig>,
    /// `[libvirt]`: the libvirt whose domains the agent reports beside `vms`.
    #[serde(default)]
    pub libvirt: LibvirtConfig,
}

/// Longest libvirt URI accepted.
const MAX_LIBVIRT_URI: usize = 1024;

/// `[libvirt]` of agent.toml. Without it, the agent lists the domains of
/// `qemu:///system` whenever libvirtd's socket exists (checked at each heartbeat, so
/// a libvirtd started later is found without restarting the agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibvirtConfig {
    /// Any libvirt URI (`qemu:///system`, `qemu+ssh://root@kvm2/system`). Default:
    /// `qemu:///system`.
    #[serde(default)]
    pub uri: Option<String>,
    /// `false` switches libvirt off; `true` uses it even while its socket is
    /// missing (each heartbeat then warns that libvirt does not answer). Default: on
    /// when `uri` is given or the local socket exists.
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl LibvirtConfig {
    /// The URI to list domains from now, if any.
    pub fn uri_now(&self) -> Option<String> {
        match (self.enabled, &self.uri) {
            (Some(false), _) => None,
            (_, Some(uri)) => Some(uri.clone()),
            (Some(true), None) => Some(tresor_libvirt::SYSTEM_URI.to_string()),
            (None, None) => tresor_libvirt::system_daemon_present()
                .then(|| tresor_libvirt::SYSTEM_URI.to_string()),
        }
    }

    /// Checks the configured URI: `scheme://...`, bounded, plain text.
    fn check(&self) -> Result<(), String> {
        let Some(uri) = &self.uri else {
            return Ok(());
        };
        let scheme_ok = uri.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if uri.len() > MAX_LIBVIRT_URI || uri.chars().any(char::is_control) || !scheme_ok {
            return Err(format!(
                "[libvirt] uri {:?} is not a libvirt URI: write one like \"qemu:///system\" or \"qemu+ssh://root@kvm2/system\" (at most {MAX_LIBVIRT_URI} bytes, no control characters)",
                uri.chars().take(80).collect::<String>()
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error("agent configuration {path}: {message}")]
    Config { path: String, message: String },
    #[error("{0}")]
    Client(#[from] tresor_client::ClientError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, AgentError> {
        let err = |message: String| AgentError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut config: AgentConfig = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        config.libvirt.check().map_err(err)?;
        for vm in &mut config.vms {
            if vm.scratch_dir.is_none() {
                vm.scratch_dir = config.scratch_dir.clone();
            }
        }
        Ok(config)
    }

    /// How long a running job may still take once the agent is asked to stop.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout_secs
            .map_or(DEFAULT_DRAIN, Duration::from_secs)
    }

    pub fn host(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into())
        })
    }

    /// Where restore jobs may write: the configured roots, or `STATE_DIR/restores`
    /// (created, 0700) when none is configured.
    pub fn restore_roots(&self) -> RestoreRoots {
        RestoreRoots::new(
            &self.restore_roots,
            Some(&self.state_dir.join(confine::DEFAULT_ROOT)),
        )
    }

    /// Creates the agent's folders it lacks, private (0700): the state folder (made
    /// private if it exists), and scratch folders that do not exist yet. An existing
    /// scratch folder keeps its mode: it may be shared (`/var/tmp`) or need QEMU's
    /// access when QEMU runs as another user.
    pub fn prepare_dirs(&self) -> Result<(), AgentError> {
        let io = |dir: &Path| {
            let what = format!("creating {}", dir.display());
            move |source| AgentError::Io { what, source }
        };
        confine::ensure_private_dir(&self.state_dir).map_err(io(&self.state_dir))?;
        let scratch = self
            .scratch_dir
            .iter()
            .chain(self.vms.iter().filter_map(|v| v.scratch_dir.as_ref()));
        for dir in scratch {
            if !dir.exists() {
                confine::create_private_dir_all(dir).map_err(io(dir))?;
            }
        }
        Ok(())
    }

    /// The provider of this host's VMs.
    pub fn provider(&self) -> QemuProvider {
        let mut p = QemuProvider::new(self.vms.clone());
        for d in &self.socket_dirs {
            p = p.with_socket_dir(d);
        }
        p
    }
}

pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let io = |source| AgentError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    if let Some(dir) = path.parent() {
        confine::ensure_private_dir(dir).map_err(io)?;
    }
    tresor_storage::write_file_atomic(path, bytes, 0o600).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<AgentConfig, AgentError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        AgentConfig::load(&path)
    }

    const BASE: &str = "state_dir = \"/s\"\nlocation = \"l\"\n";

    #[test]
    fn libvirt_section() {
        let c = load(&format!(
            "{BASE}[libvirt]\nuri = \"qemu+ssh://root@kvm2/system\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.libvirt.uri_now().as_deref(),
            Some("qemu+ssh://root@kvm2/system")
        );
        let c = load(&format!(
            "{BASE}[libvirt]\nuri = \"test:///default\"\nenabled = false\n"
        ))
        .unwrap();
        assert_eq!(c.libvirt.uri_now(), None);
        let c = load(&format!("{BASE}[libvirt]\nenabled = true\n")).unwrap();
        assert_eq!(c.libvirt.uri_now().as_deref(), Some("qemu:///system"));
        // Without the section: the system daemon, when its socket is there.
        let c = load(BASE).unwrap();
        assert_eq!(
            c.libvirt.uri_now().is_some(),
            tresor_libvirt::system_daemon_present()
        );
        for bad in ["system", "://x", "qemu:///sys\\ttem", "q emu:///system"] {
            let err = load(&format!("{BASE}[libvirt]\nuri = \"{bad}\"\n")).unwrap_err();
            assert!(
                err.to_string().contains("is not a libvirt URI"),
                "{bad}: {err}"
            );
        }
        let long = format!("qemu:///{}", "s".repeat(MAX_LIBVIRT_URI));
        assert!(load(&format!("{BASE}[libvirt]\nuri = \"{long}\"\n")).is_err());
        assert!(load(&format!("{BASE}[libvirt]\nurl = \"qemu:///system\"\n")).is_err());
    }
}
