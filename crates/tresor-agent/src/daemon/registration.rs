//! The agent's identity with its server: registration with a vault credentials file
//! (once), the credential kept in the state folder, and the API client it signs.

use std::path::PathBuf;
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

/// The agent's state, registering first if there is none.
pub async fn load_or_register(config: &AgentConfig) -> Result<AgentState, AgentError> {
    let path = state_path(config);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return serde_json::from_str(&text).map_err(|e| AgentError::Config {
            path: path.display().to_string(),
            message: e.to_string(),
        });
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
