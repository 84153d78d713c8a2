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
