//! `tresor agent run` and `tresor agent check`: the host agent, and a test of its
//! way to the server.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tresor_agent::daemon::{load_state, AgentConfig, AgentState};
use tresor_api::vaults::CredentialsFile;
use tresor_client::ServerAddress;

use super::serve::shutdown_signal;
use crate::cli::AgentCommand;
use crate::commands::runtime;

/// How long the process waits, once the agent has stopped, for blocking work it left
/// behind (a job the stop gave up on) before it exits anyway.
const LEFTOVER_WORK_LIMIT: Duration = Duration::from_secs(5);

pub fn agent(cmd: AgentCommand) -> Result<()> {
    let rt = runtime()?;
    match cmd {
        AgentCommand::Run { config } => {
            let config = AgentConfig::load(&config)?;
            let ended = rt.block_on(tresor_agent::daemon::run(config, shutdown_signal()));
            // `run` has bounded every wait of the stop; a blocking thread still busy
            // (the engine, a VM's view) must not keep the process alive.
            rt.shutdown_timeout(LEFTOVER_WORK_LIMIT);
            ended?;
            Ok(())
        }
        AgentCommand::Check { config } => {
            let config = AgentConfig::load(&config)?;
            let (addr, credential) = server_of(&config)?;
            rt.block_on(async {
                let report = tresor_client::check(
                    &addr,
                    config.proxy.as_ref(),
                    credential.as_ref().and_then(Credential::secret),
                )
                .await;
                println!("{report}");
                if let Some(code) = report.code() {
                    bail!("the agent cannot reach the server: {code}");
                }
                match credential {
                    Some(Credential::Registered(state)) => {
                        registered_location(&config, &state).await
                    }
                    Some(Credential::File(file)) => credentials_file(&config, &file),
                    None => Ok(()),
                }
            })
        }
    }
}

/// What the agent would sign in with: its registered credential, or the vault
/// credentials file it would register with.
enum Credential {
    Registered(AgentState),
    File(CredentialsFile),
}

impl Credential {
    /// What signs in: the registered credential. A credentials file's secret only
    /// registers (once), so the check stops at TLS for it.
    fn secret(&self) -> Option<&str> {
        match self {
            Credential::Registered(s) => Some(&s.credential),
            Credential::File(_) => None,
        }
    }
}

/// The server the agent talks to, with the credential it would use: once
/// registered, its own (`STATE_DIR/agent.json`); before, the vault credentials
/// file's server.
fn server_of(config: &AgentConfig) -> Result<(ServerAddress, Option<Credential>)> {
    if let Some(state) = load_state(config)? {
        let addr = ServerAddress::parse(&state.server, &state.fingerprint)?;
        return Ok((addr, Some(Credential::Registered(state))));
    }
    let path = config
        .credentials
        .as_ref()
        .context("the agent is neither registered nor given a credentials file: set credentials = \"...\" in agent.toml (docs/agent.md)")?;
    let c: CredentialsFile = serde_json::from_str(
        &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a vault credentials file", path.display()))?;
    Ok((
        ServerAddress::parse(&c.server, &c.fingerprint)?,
        Some(Credential::File(c)),
    ))
}

/// A registered agent: the server still takes its credential (the check above), and
/// its location has a vault; else its VMs can be protected by none, which is said.
async fn registered_location(config: &AgentConfig, state: &AgentState) -> Result<()> {
    let api = tresor_agent::daemon::client(config, state)?;
    let ping = api.agent_ping().await?;
    let Some(location) = ping.location else {
        return Ok(()); // an older server does not say
    };
    println!("host {} is registered in location {location}", ping.host);
    if !location.eq_ignore_ascii_case(&config.location) {
        println!(
            "WARNING: agent.toml says location = {:?}, but the host is registered in {location} (its vault credentials' location): only vaults of {location} can protect its VMs",
            config.location
        );
    }
    match ping.vaults_in_location {
        Some(0) => println!(
            "WARNING: no vault is in location {location}: none can protect this host's VMs. Create one there (tresor vault create -l {location}), or register the host with credentials of a vault in its real location (remove {} and set credentials = ...)",
            config.state_dir.join("agent.json").display()
        ),
        Some(n) => println!("{n} vault(s) in {location} can protect its VMs"),
        None => {}
    }
    Ok(())
}

/// Before registration: the credentials file still registers (not expired, by this
/// host's clock), and the location it gives the host.
fn credentials_file(config: &AgentConfig, file: &CredentialsFile) -> Result<()> {
    let now = jiff::Timestamp::now();
    if file.expires <= now {
        bail!(
            "the vault credentials file {} expired at {}: download a new one (tresor vault credentials -n {}) and set credentials = \"...\"",
            config.credentials.as_deref().unwrap_or(std::path::Path::new("")).display(),
            file.expires,
            file.vault
        );
    }
    println!(
        "vault credentials of vault {} valid until {} (used once, at the agent's first start)",
        file.vault, file.expires
    );
    if let Some(location) = &file.location {
        if !location.eq_ignore_ascii_case(&config.location) {
            println!(
                "WARNING: agent.toml says location = {:?}, but the credentials register the host in {location}: only vaults of {location} will protect its VMs",
                config.location
            );
        }
    }
    Ok(())
}
