//! `tresor serve`: the vault server, with a host agent in the same process if asked.

use anyhow::{Context, Result};

use crate::cli::ServeArgs;
use crate::commands::runtime;

/// The server (and the local agent) run until SIGTERM or Ctrl-C cancels one token:
/// the listener stops accepting, requests in flight get up to 10 s, the background
/// loops end after their current step, and the local agent drains its job.
pub fn serve(args: ServeArgs) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown_signal().await;
                stop.cancel();
            }
        });
        let mut config = tresor_server::ServerConfig::new(&args.data_dir);
        config.listen = args.listen;
        config.public_url = args.public_url.clone();
        config.config_file = args.config.clone();
        let server = tresor_server::start(config).await?;
        println!("Tresor vault server at {}", server.url);
        println!("certificate fingerprint (SHA-256): {}", server.fingerprint);
        if let Some(token) = &server.new_admin_token {
            println!(
                "admin token (shown once; also in {}): {token}",
                args.data_dir.join("cli.json").display()
            );
        }
        println!(
            "the CLI reads {}: export TRESOR_CONFIG={}",
            args.data_dir.join("cli.json").display(),
            args.data_dir.join("cli.json").display()
        );
        let agent = if args.with_local_agent {
            let agent_config = local_agent(&args, &server)?;
            println!(
                "local agent for host {} runs in this process",
                agent_config.host()
            );
            Some(tokio::spawn(tresor_agent::daemon::run(
                agent_config,
                stop.clone().cancelled_owned(),
            )))
        } else {
            None
        };
        stop.cancelled().await;
        if let Some(a) = agent {
            let _ = a.await;
        }
        server.shutdown().await;
        Ok(())
    })
}

/// The configuration of the agent in the server's process: `--agent-config` read
/// without credentials nor state folder (`DATA/local-agent`). The server registers it
/// at its first start, and at every start writes its own current address and
/// certificate into the agent's state, so that a server started at another address
/// (`--listen`, `--public-url`) or with a new certificate keeps its local agent.
fn local_agent(
    args: &ServeArgs,
    server: &tresor_server::RunningServer,
) -> Result<tresor_agent::daemon::AgentConfig> {
    use tresor_agent::daemon::{load_state, save_state, AgentConfig, AgentState};
    let cfg = args
        .agent_config
        .as_ref()
        .context("--with-local-agent needs --agent-config FILE (docs/agent.md; its credentials and state_dir are not needed)")?;
    // Absolute: the agent's configuration refuses a relative state folder, and
    // `--data-dir` may well be one (scripts/try.sh gives `tresor-data/server`).
    let state_dir = std::path::absolute(args.data_dir.join("local-agent"))
        .context("resolving the local agent's state folder under --data-dir")?;
    let config = AgentConfig::load_local(cfg, &state_dir)?;
    let state = match load_state(&config)? {
        Some(state) => AgentState {
            server: server.url.clone(),
            fingerprint: server.fingerprint.clone(),
            ..state
        },
        None => {
            let local = server
                .state
                .register_local_agent(&config.host(), &config.location)?;
            AgentState {
                server: local.server,
                fingerprint: local.fingerprint,
                agent_id: local.agent_id,
                credential: local.credential,
                vault: String::new(),
            }
        }
    };
    save_state(&config, &state)?;
    Ok(config)
}

/// Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
