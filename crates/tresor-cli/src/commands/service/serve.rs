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
            let cfg = args
                .agent_config
                .as_ref()
                .context("--with-local-agent needs --agent-config FILE (the VMs of this host)")?;
            let mut agent_config = tresor_agent::daemon::AgentConfig::load(cfg)?;
            agent_config.state_dir = args.data_dir.join("local-agent");
            if !tresor_agent::daemon::is_registered(&agent_config) {
                let local = server
                    .state
                    .register_local_agent(&agent_config.host(), &agent_config.location)?;
                tresor_agent::daemon::save_state(
                    &agent_config,
                    &tresor_agent::daemon::AgentState {
                        server: local.server,
                        fingerprint: local.fingerprint,
                        agent_id: local.agent_id,
                        credential: local.credential,
                        vault: String::new(),
                    },
                )?;
            }
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

/// Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
