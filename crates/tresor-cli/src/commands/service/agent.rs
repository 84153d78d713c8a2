//! `tresor agent run` and `tresor agent check`: the host agent, and a test of its
//! way to the server.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tresor_agent::daemon::AgentConfig;
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
                let report =
                    tresor_client::check(&addr, config.proxy.as_ref(), credential.as_deref()).await;
                println!("{report}");
                match report.code() {
                    None => Ok(()),
                    Some(code) => bail!("the agent cannot reach the server: {code}"),
                }
            })
        }
    }
}

/// The server the agent talks to, with its credential once registered; before, the
/// server its vault credentials file names.
fn server_of(config: &AgentConfig) -> Result<(ServerAddress, Option<String>)> {
    if let Ok(text) = std::fs::read_to_string(config.state_dir.join("agent.json")) {
        let s: tresor_agent::daemon::AgentState = serde_json::from_str(&text)?;
        return Ok((
            ServerAddress::parse(&s.server, &s.fingerprint)?,
            Some(s.credential),
        ));
    }
    let path = config
        .credentials
        .as_ref()
        .context("the agent is neither registered nor given a credentials file")?;
    let c: CredentialsFile = serde_json::from_str(&std::fs::read_to_string(path)?)
        .with_context(|| format!("{} is not a vault credentials file", path.display()))?;
    Ok((ServerAddress::parse(&c.server, &c.fingerprint)?, None))
}
