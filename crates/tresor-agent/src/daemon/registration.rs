//! The agent's identity with its server: registration with a vault credentials file
//! (once), the credential kept in the state folder, and the API client it signs;
//! the link to the server, re-read from the state folder when the server is lost
//! (a server restarted elsewhere is found), and the backoff between tries.

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tresor_api::agents::RegisterRequest;
use tresor_api::vaults::CredentialsFile;
use tresor_client::{ApiClient, ServerAddress, Transport};

use super::config::{write_private, AgentConfig, AgentError};

/// Timeout of each API call's connection and of each wait for data.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a registered agent keeps in its state folder (0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    pub server: String,
    pub fingerprint: String,
    pub agent_id: String,
    pub credential: String,
    pub vault: String,
}

fn state_path(config: &AgentConfig) -> PathBuf {
    config.state_dir.join("agent.json")
}

/// Whether the agent has registered (its state file exists).
pub fn is_registered(config: &AgentConfig) -> bool {
    state_path(config).exists()
}

/// Keeps an agent's identity (mode 0600).
pub fn save_state(config: &AgentConfig, state: &AgentState) -> Result<(), AgentError> {
    write_private(
        &state_path(config),
        &serde_json::to_vec_pretty(state).expect("state serializes"),
    )
}

/// The agent's state, if it registered.
pub fn load_state(config: &AgentConfig) -> Result<Option<AgentState>, AgentError> {
    let path = state_path(config);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| AgentError::Config {
                path: path.display().to_string(),
                message: format!("not the agent's state: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AgentError::Io {
            what: format!("reading {}", path.display()),
            source,
        }),
    }
}

/// The agent's state, registering first if there is none.
pub async fn load_or_register(config: &AgentConfig) -> Result<AgentState, AgentError> {
    let path = state_path(config);
    if let Some(state) = load_state(config)? {
        return Ok(state);
    }
    let creds_path = config.credentials.as_ref().ok_or_else(|| AgentError::Config {
        path: path.display().to_string(),
        message: "the agent is not registered yet and no credentials file is configured: download one with `tresor vault credentials` and set credentials = \"...\"".into(),
    })?;
    let creds: CredentialsFile =
        serde_json::from_str(&std::fs::read_to_string(creds_path).map_err(|source| {
            AgentError::Io {
                what: format!("reading {}", creds_path.display()),
                source,
            }
        })?)
        .map_err(|e| AgentError::Config {
            path: creds_path.display().to_string(),
            message: format!("not a vault credentials file: {e}"),
        })?;
    let addr = ServerAddress::parse(&creds.server, &creds.fingerprint)?;
    let api = ApiClient::new(
        Transport::new(&addr, config.proxy.as_ref(), CALL_TIMEOUT)?,
        None,
    );
    // The vault the file was made for goes along: the server refuses it for another.
    let reg = api
        .register_agent(&RegisterRequest {
            secret: creds.secret,
            host: config.host(),
            location: Some(config.location.clone()),
            vault: Some(creds.vault),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        })
        .await?;
    // The server places the host where its vault credentials say, whatever agent.toml
    // claims: say so, since VMs are offered only to vaults of that location.
    if !reg.location.eq_ignore_ascii_case(&config.location) {
        tracing::warn!(
            registered = ?reg.location,
            configured = ?config.location,
            "this host is registered in the location of its vault credentials, not the one agent.toml names; its VMs can be protected by vaults of that location"
        );
    }
    let state = AgentState {
        server: creds.server,
        fingerprint: creds.fingerprint,
        agent_id: reg.agent_id,
        credential: reg.credential,
        vault: reg.vault,
    };
    save_state(config, &state)?;
    tracing::info!(agent = %state.agent_id, vault = %state.vault, "registered with the vault server");
    Ok(state)
}

/// The API client of a registered agent.
pub fn client(config: &AgentConfig, state: &AgentState) -> Result<ApiClient, AgentError> {
    let addr = ServerAddress::parse(&state.server, &state.fingerprint)?;
    Ok(ApiClient::new(
        Transport::new(&addr, config.proxy.as_ref(), CALL_TIMEOUT)?,
        Some(state.credential.clone()),
    ))
}

/// The agent's way to its server: the API client of the state it registered with,
/// made anew when `STATE_DIR/agent.json` names another server (a server restarted
/// at another address: `tresor serve` rewrites its local agent's file at each start;
/// an operator edits it for a moved server).
pub(super) struct ServerLink {
    config: Arc<AgentConfig>,
    current: Mutex<(AgentState, Arc<ApiClient>)>,
}

impl ServerLink {
    pub(super) fn new(
        config: Arc<AgentConfig>,
        state: AgentState,
    ) -> Result<ServerLink, AgentError> {
        let api = Arc::new(client(&config, &state)?);
        Ok(ServerLink {
            config,
            current: Mutex::new((state, api)),
        })
    }

    /// The client to call the server with now.
    pub(super) fn api(&self) -> Arc<ApiClient> {
        self.current.lock().expect("link lock").1.clone()
    }

    /// The server the agent calls now.
    pub(super) fn server(&self) -> String {
        self.current.lock().expect("link lock").0.server.clone()
    }

    /// Reads the state file again after a failed call: when it names another server,
    /// fingerprint or credential, later calls go there. Whether it changed.
    pub(super) fn reread(&self) -> bool {
        let fresh = match load_state(&self.config) {
            Ok(Some(s)) => s,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the agent's state again");
                return false;
            }
        };
        let mut current = self.current.lock().expect("link lock");
        let old = &current.0;
        if (&fresh.server, &fresh.fingerprint, &fresh.credential)
            == (&old.server, &old.fingerprint, &old.credential)
        {
            return false;
        }
        match client(&self.config, &fresh) {
            Ok(api) => {
                tracing::info!(from = %old.server, to = %fresh.server, "the agent's state names another server: calling it from now on");
                *current = (fresh, Arc::new(api));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "the agent's state names a server that cannot be called; keeping the last one");
                false
            }
        }
    }
}

/// Waits between tries to reach a lost server: exponential (doubling from
/// [`Backoff::FIRST`] to at most [`Backoff::MOST`]), each wait drawn at random
/// between half and all of it, so that many agents that lost one server do not all
/// call it again at the same instant.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: Self::FIRST }
    }
}

impl Backoff {
    pub(super) const FIRST: Duration = Duration::from_secs(1);
    pub(super) const MOST: Duration = Duration::from_secs(60);

    /// The next wait, with `jitter` in [0, 1] (0: half the step, 1: the whole step).
    pub(super) fn next_with(&mut self, jitter: f64) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(Self::MOST);
        step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// The next wait, with random jitter.
    pub(super) fn next(&mut self) -> Duration {
        // A fresh `RandomState` is seeded anew: enough randomness for a jitter.
        let bits = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        self.next_with((bits >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// The server answered: the next loss starts from the first step again.
    pub(super) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The waits double up to a minute, each between half and all of its step, and
    /// start again after the server answered.
    #[test]
    fn the_backoff_doubles_to_a_bound_with_jitter() {
        let mut b = Backoff::default();
        let whole: Vec<u64> = (0..9).map(|_| b.next_with(1.0).as_secs()).collect();
        assert_eq!(whole, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.next_with(0.0), Duration::from_millis(500));
        assert_eq!(b.next_with(0.5), Duration::from_millis(1500));
        for _ in 0..100 {
            let step = b.next.min(Backoff::MOST);
            let wait = b.next();
            assert!(wait >= step / 2 && wait <= step, "{wait:?} of {step:?}");
        }
        // Random jitter differs between waits (all equal would be 1 in 2^53 per pair).
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..8)
            .map(|_| {
                b.reset();
                b.next()
            })
            .collect();
        assert!(waits.windows(2).any(|w| w[0] != w[1]), "{waits:?}");
    }

    fn state(server: &str) -> AgentState {
        AgentState {
            server: server.into(),
            fingerprint: "ab".repeat(32),
            agent_id: "a".into(),
            credential: "c".into(),
            vault: "v".into(),
        }
    }

    /// A server restarted at another address is found: each failed round reads the
    /// state file again, and a changed address makes a new client.
    #[test]
    fn a_moved_server_is_found_in_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let config: AgentConfig = toml::from_str(&format!(
            "state_dir = \"{}\"\nlocation = \"l\"\n",
            dir.path().display()
        ))
        .unwrap();
        let config = Arc::new(config);
        save_state(&config, &state("https://127.0.0.1:8443")).unwrap();
        let link = ServerLink::new(config.clone(), load_state(&config).unwrap().unwrap()).unwrap();
        let first = link.api();
        assert!(!link.reread(), "nothing changed");
        assert!(Arc::ptr_eq(&first, &link.api()));

        save_state(&config, &state("https://127.0.0.1:9443")).unwrap();
        assert!(link.reread());
        assert_eq!(link.server(), "https://127.0.0.1:9443");
        assert!(!Arc::ptr_eq(&first, &link.api()));

        // A state file that cannot be read keeps the last server.
        std::fs::write(dir.path().join("agent.json"), "{").unwrap();
        assert!(!link.reread());
        assert_eq!(link.server(), "https://127.0.0.1:9443");
    }
}
