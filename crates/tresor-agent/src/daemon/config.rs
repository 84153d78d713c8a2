//! The agent's configuration (agent.toml), and the agent's own folders and files,
//! kept private.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tresor_client::ProxyConfig;
use tresor_qemu::{QemuProvider, QemuVmConfig};

use super::config_check::{self, ConfigProblem};
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
pub(super) const MAX_LIBVIRT_URI: usize = 1024;

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
    pub(super) fn check(&self) -> Result<(), String> {
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
                "{:?} is not a libvirt URI: write one like \"qemu:///system\" or \"qemu+ssh://root@kvm2/system\" (at most {MAX_LIBVIRT_URI} bytes, no control characters)",
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
    /// Every problem of a configuration file, each naming its key.
    #[error("agent configuration {path} has {} to fix (docs/agent.md describes every key):{}", problems_count(.problems), problem_lines(.problems))]
    Invalid {
        path: String,
        problems: Vec<ConfigProblem>,
    },
    #[error("{0}")]
    Client(#[from] tresor_client::ClientError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn problems_count(problems: &[ConfigProblem]) -> String {
    match problems.len() {
        1 => "1 problem".into(),
        n => format!("{n} problems"),
    }
}

fn problem_lines(problems: &[ConfigProblem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

impl AgentConfig {
    /// Reads and checks agent.toml: the configuration, or
    /// [`AgentError::Invalid`] with every problem, each naming its key.
    pub fn load(path: &Path) -> Result<AgentConfig, AgentError> {
        Self::load_table(path, |_| {})
    }

    /// The configuration of the agent `tresor serve --with-local-agent` runs in the
    /// server's process: its state folder is `state_dir` (in the server's data
    /// folder), whatever the file says, and it needs no credentials file (the server
    /// registers it); the rest as [`AgentConfig::load`].
    pub fn load_local(path: &Path, state_dir: &Path) -> Result<AgentConfig, AgentError> {
        Self::load_table(path, |table| {
            table.remove("credentials");
            table.insert(
                "state_dir".into(),
                toml::Value::String(state_dir.display().to_string()),
            );
        })
    }

    fn load_table(
        path: &Path,
        adapt: impl FnOnce(&mut toml::Table),
    ) -> Result<AgentConfig, AgentError> {
        let invalid = |problems: Vec<ConfigProblem>| AgentError::Invalid {
            path: path.display().to_string(),
            problems,
        };
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::Config {
            path: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            invalid(vec![ConfigProblem {
                key: String::new(),
                message: format!("not valid TOML: {}", e.to_string().trim()),
            }])
        })?;
        adapt(&mut table);
        let mut config = config_check::checked(table).map_err(invalid)?;
        // The top-level scratch folder is every VM's, unless the VM names its own.
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
        let mut p =
            QemuProvider::new(self.vms.clone()).with_default_scratch_dir(self.scratch_dir.clone());
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

    /// A configuration with a dozen mistakes: every one is listed, at once, each with
    /// its key, and the message says what to write instead.
    #[test]
    fn every_mistake_is_listed_with_its_key() {
        let text = r#"
state_dir = "var/lib/tresor-agent"
location = "West Europe"
scratchdir = "/var/tmp"
drain_timeout_secs = "600"
credentials = "/nonexistent/Vault-1.credentials"
socket_dirs = ["/run/tresor", 7]
[proxy]
host = "proxy.example"
port = 70000
[libvirt]
uri = "system"
[[vm]]
name = "web01"
qmp = "/run/qemu/web01.qmp"
[[vm]]
name = "web01"
qmp = "run/qemu/web02.qmp"
gest_agent = "/run/qemu/web02.qga"
[[vm]]
application_hooks = "yes"
"#;
        let Err(AgentError::Invalid { problems, path }) = load(text) else {
            panic!("a configuration with mistakes loads");
        };
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.message.as_str()))
            .collect();
        let expect = [
            ("state_dir", "is relative: write an absolute path"),
            ("location", "is not a location"),
            ("scratchdir", "did you mean `scratch_dir`?"),
            (
                "drain_timeout_secs",
                "expected a whole number from 0 to 86400, found a string",
            ),
            (
                "credentials",
                "does not exist: the agent is not registered yet",
            ),
            (
                "socket_dirs[2]",
                "expected an absolute path in quotes, found a whole number",
            ),
            ("proxy.port", "70000 is out of range: write 1 to 65535"),
            ("libvirt.uri", "is not a libvirt URI"),
            ("vm[2].name", "is also vm[1]'s"),
            ("vm[2].qmp", "is relative"),
            ("vm[2].gest_agent", "did you mean `guest_agent`?"),
            (
                "vm[3].application_hooks",
                "expected true or false, found a string",
            ),
            ("vm[3]", "names no VM"),
        ];
        for (key, words) in expect {
            assert!(
                found.iter().any(|(k, m)| *k == key && m.contains(words)),
                "{key}: {words:?} not among {found:#?}"
            );
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
        // One message, one line per problem.
        let shown = AgentError::Invalid { path, problems }.to_string();
        assert!(shown.contains("has 13 problems to fix"), "{shown}");
        assert!(
            shown.contains("\n  vm[2].qmp: \"run/qemu/web02.qmp\" is relative"),
            "{shown}"
        );

        // Not TOML at all: one problem, with TOML's line.
        let Err(AgentError::Invalid { problems, .. }) = load("state_dir = \n") else {
            panic!("broken TOML loads");
        };
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.starts_with("not valid TOML"),
            "{problems:?}"
        );
        // Required keys.
        let Err(e) = load("") else {
            panic!("an empty file loads")
        };
        let shown = e.to_string();
        assert!(
            shown.contains("state_dir: missing") && shown.contains("location: missing"),
            "{shown}"
        );
        // [vm] instead of [[vm]].
        let e = load(&format!("{BASE}[vm]\nname = \"a\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("vm: write each one as [[vm]]"), "{e}");
    }

    /// The top-level scratch folder is every VM's; a VM's own wins.
    #[test]
    fn the_top_level_scratch_dir_applies_to_every_vm() {
        let c = load(&format!(
            "{BASE}scratch_dir = \"/srv/scratch\"\n[[vm]]\nname = \"a\"\n[[vm]]\nname = \"b\"\nscratch_dir = \"/fast\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.vms[0].scratch_dir.as_deref(),
            Some(Path::new("/srv/scratch"))
        );
        assert_eq!(c.vms[1].scratch_dir.as_deref(), Some(Path::new("/fast")));
    }

    /// The local agent of `tresor serve` needs neither a state folder nor credentials.
    #[test]
    fn the_local_agent_needs_no_state_dir_nor_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "location = \"local\"\ncredentials = \"/nonexistent\"\n",
        )
        .unwrap();
        let c = AgentConfig::load_local(&path, &dir.path().join("local-agent")).unwrap();
        assert_eq!(c.state_dir, dir.path().join("local-agent"));
        assert_eq!(c.credentials, None);
        assert!(AgentConfig::load(&path).is_err());
    }

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
                err.to_string().contains("\n  libvirt.uri: "),
                "{bad}: {err}"
            );
        }
        let long = format!("qemu:///{}", "s".repeat(MAX_LIBVIRT_URI));
        assert!(load(&format!("{BASE}[libvirt]\nuri = \"{long}\"\n")).is_err());
        assert!(load(&format!("{BASE}[libvirt]\nurl = \"qemu:///system\"\n")).is_err());
    }
}
