//! The vault service's commands: `tresor serve`, `tresor agent ...`, and the
//! management commands shaped like `az backup` (`vault`, `policy`, `protection`,
//! `job`, ...), which talk to the server through `tresor-client`'s typed API.
//!
//! One file per resource; [`output`] prints what they get back.

mod agent;
mod audit;
mod guards;
mod items;
mod jobs;
mod output;
mod policies;
mod restore;
mod serve;
mod tokens;
mod users;
mod vaults;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tresor_api::config::CliConfig;
use tresor_client::{ApiClient, ServerAddress, Transport};

pub use agent::agent;
pub use serve::serve;

use crate::cli::{Command, Connection};
use crate::commands::runtime;

/// Runs one management command: a request, then output.
pub fn manage(cmd: Command) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            Command::Vault(m) => {
                vaults::vault(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Policy(m) => {
                policies::policy(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::ProtectableItem(m) => {
                items::protectable(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Protection(m) => {
                items::protection(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Item(m) => {
                items::item(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Job(m) => {
                jobs::job(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Recoverypoint(m) => {
                restore::recovery_points(&connect(&m.connection)?, m.connection.output, m.command)
                    .await
            }
            Command::Restore(m) => {
                restore::restore(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Audit(m) => {
                audit::audit(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::User(m) => {
                users::user(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Role(m) => {
                users::role(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Token(m) => {
                tokens::token(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::ResourceGuard(m) => {
                guards::resource_guard(&connect(&m.connection)?, m.connection.output, m.command)
                    .await
            }
            _ => unreachable!("not a management command"),
        }
    })
}

/// The API client the connection flags, environment or config file describe.
fn connect(c: &Connection) -> Result<ApiClient> {
    let file_path = c.config.clone().or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/tresor/cli.json"))
    });
    let file: Option<CliConfig> = match &file_path {
        Some(p) if p.exists() => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not a Tresor CLI config", p.display()))?,
        ),
        Some(p) if c.config.is_some() => bail!("config file {} does not exist", p.display()),
        _ => None,
    };
    let server = c.server.clone().or(file.as_ref().map(|f| f.server.clone()));
    let fingerprint = c
        .fingerprint
        .clone()
        .or(file.as_ref().map(|f| f.fingerprint.clone()));
    let token = c.token.clone().or(file.as_ref().map(|f| f.token.clone()));
    let (Some(server), Some(fingerprint), Some(token)) = (server, fingerprint, token) else {
        bail!("which server? Give --server, --fingerprint and --token (or TRESOR_SERVER, TRESOR_FINGERPRINT, TRESOR_TOKEN), or a config file (--config, TRESOR_CONFIG; `tresor serve` writes one as cli.json in its data directory)");
    };
    let addr = ServerAddress::parse(&server, &fingerprint)?;
    Ok(ApiClient::new(
        Transport::new(&addr, None, Duration::from_secs(60))?,
        Some(token),
    ))
}
