//! `tresor serve`, `tresor agent ...` and the management commands (`vault`, `policy`,
//! `protection`, `job`, ...), which talk to the server's API.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use tresor_client::{ApiClient, ServerAddress, Transport};

use crate::cli::*;
use crate::commands::repo::human;
use crate::commands::runtime;

// ------------------------------------------------------------------------ serve

pub fn serve(args: ServeArgs) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
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
                let local = tresor_server::register_local_agent(
                    &server.state,
                    &agent_config.host(),
                    &agent_config.location,
                )?;
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
                shutdown_signal(),
            )))
        } else {
            None
        };
        shutdown_signal().await;
        if let Some(a) = agent {
            let _ = a.await;
        }
        server.shutdown().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

// ------------------------------------------------------------------------ agent

pub fn agent(cmd: AgentCommand) -> Result<()> {
    let rt = runtime()?;
    match cmd {
        AgentCommand::Run { config } => {
            let config = tresor_agent::daemon::AgentConfig::load(&config)?;
            rt.block_on(tresor_agent::daemon::run(config, shutdown_signal()))?;
            Ok(())
        }
        AgentCommand::Check { config } => {
            let config = tresor_agent::daemon::AgentConfig::load(&config)?;
            rt.block_on(async {
                let (addr, credential) =
                    match std::fs::read_to_string(config.state_dir.join("agent.json")) {
                        Ok(text) => {
                            let s: tresor_agent::daemon::AgentState = serde_json::from_str(&text)?;
                            (
                                ServerAddress::parse(&s.server, &s.fingerprint)?,
                                Some(s.credential),
                            )
                        }
                        Err(_) => {
                            let path = config.credentials.as_ref().context(
                                "the agent is neither registered nor given a credentials file",
                            )?;
                            let c: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
                            (
                                ServerAddress::parse(
                                    c["server"].as_str().unwrap_or_default(),
                                    c["fingerprint"].as_str().unwrap_or_default(),
                                )?,
                                None,
                            )
                        }
                    };
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

// ------------------------------------------------------------------ management

#[derive(Deserialize)]
struct CliFile {
    server: String,
    fingerprint: String,
    token: String,
}

/// The API client the connection flags, environment or config file describe.
fn connect(c: &Connection) -> Result<ApiClient> {
    let file_path = c.config.clone().or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/tresor/cli.json"))
    });
    let file: Option<CliFile> = match &file_path {
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

/// Runs one management command: a request, then output.
pub fn manage(cmd: Command) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            Command::Vault(m) => {
                vault(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Policy(m) => {
                policy(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::ProtectableItem(m) => {
                let ProtectableCommand::List { vault } = m.command;
                let api = connect(&m.connection)?;
                let v: Value = api
                    .get_json(&format!(
                        "api/v1/vaults/{}/protectable-items",
                        vault.vault_name
                    ))
                    .await?;
                print(
                    m.connection.output,
                    &v,
                    &[
                        ("HOST", "host"),
                        ("VM", "vm"),
                        ("NAME", "name"),
                        ("LOCATION", "location"),
                        ("AGENT ONLINE", "agentOnline"),
                    ],
                )
            }
            Command::Protection(m) => {
                protection(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            Command::Item(m) => {
                let api = connect(&m.connection)?;
                let v: Value = match m.command {
                    ItemCommand::List { vault } => {
                        api.get_json(&format!("api/v1/vaults/{}/items", vault.vault_name))
                            .await?
                    }
                    ItemCommand::Show { vault, name } => {
                        let v: Value = api
                            .get_json(&format!("api/v1/vaults/{}/items/{name}", vault.vault_name))
                            .await?;
                        print(m.connection.output, &v, ITEM_COLUMNS)?;
                        if m.connection.output == Output::Table {
                            print_replication(&v["replication"]);
                        }
                        return Ok(());
                    }
                };
                print(m.connection.output, &v, ITEM_COLUMNS)
            }
            Command::Job(m) => job(&connect(&m.connection)?, m.connection.output, m.command).await,
            Command::Recoverypoint(m) => {
                let api = connect(&m.connection)?;
                let v: Value = match m.command {
                    PointCommand::List {
                        vault,
                        item,
                        use_secondary_region,
                    } => {
                        api.get_json(&format!(
                            "api/v1/vaults/{}/items/{item}/recovery-points?useSecondaryRegion={use_secondary_region}",
                            vault.vault_name
                        ))
                        .await?
                    }
                    PointCommand::Show {
                        vault,
                        item,
                        name,
                        use_secondary_region,
                    } => {
                        api.get_json(&format!(
                            "api/v1/vaults/{}/items/{item}/recovery-points/{name}?useSecondaryRegion={use_secondary_region}",
                            vault.vault_name
                        ))
                        .await?
                    }
                };
                print(
                    m.connection.output,
                    &v,
                    &[
                        ("NAME", "id"),
                        ("TIME", "time"),
                        ("CONSISTENCY", "consistency"),
                        ("EXPIRY", "expiry"),
                        ("ON DEMAND", "onDemand"),
                        ("SIZE", "size"),
                        ("IN SECONDARY", "replicated"),
                        ("DELETED FROM PRIMARY", "deletedFromPrimary"),
                    ],
                )
            }
            Command::Restore(m) => {
                restore(&connect(&m.connection)?, m.connection.output, m.command).await
            }
            _ => unreachable!("not a management command"),
        }
    })
}

const VAULT_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "name"),
    ("RESOURCE GROUP", "resourceGroup"),
    ("LOCATION", "location"),
    ("REDUNDANCY", "storageRedundancy"),
    ("LOCKED", "redundancyLocked"),
];
const ITEM_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "vmName"),
    ("HOST", "host"),
    ("POLICY", "policy"),
    ("STATE", "protectionState"),
    ("LAST BACKUP", "lastBackupTime"),
    ("ID", "id"),
];
const JOB_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "id"),
    ("OPERATION", "operation"),
    ("STATUS", "status"),
    ("ITEM", "vmName"),
    ("START", "startTime"),
    ("DURATION", "duration"),
    ("PERCENT", "percent"),
];

/// JSON as is, or a table of `columns` (header, field) for one object or a list.
fn print(output: Output, v: &Value, columns: &[(&str, &str)]) -> Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    let rows: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let cell = |row: &Value, field: &str| -> String {
        match &row[field] {
            Value::Null => "-".into(),
            Value::String(s) => s.clone(),
            Value::Number(n) if field == "size" => {
                n.as_u64().map(human).unwrap_or_else(|| n.to_string())
            }
            Value::Number(n) if field == "duration" || field == "percent" => {
                format!("{:.0}", n.as_f64().unwrap_or(0.0))
            }
            other => other.to_string(),
        }
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|(h, f)| {
            rows.iter()
                .map(|r| cell(r, f).len())
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|(h, _)| h.to_string()).collect());
    for r in &rows {
        line(columns.iter().map(|(_, f)| cell(r, f)).collect());
    }
    Ok(())
}

fn confirm(yes: bool, what: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{what}: add --yes to confirm");
    }
    eprint!("{what}? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !answer.trim().eq_ignore_ascii_case("y") {
        bail!("not confirmed");
    }
    Ok(())
}

async fn vault(api: &ApiClient, output: Output, cmd: VaultCommand) -> Result<()> {
    match cmd {
        VaultCommand::Create {
            name,
            resource_group,
            location,
            storage_redundancy,
        } => {
            let mut body =
                json!({"name": name, "resourceGroup": resource_group, "location": location});
            if let Some(r) = storage_redundancy {
                body["storageRedundancy"] = json!(r.as_str());
            }
            let v: Value = api.post_json("api/v1/vaults", &body).await?;
            print_vault(output, &v)
        }
        VaultCommand::List => print(
            output,
            &api.get_json::<Value>("api/v1/vaults").await?,
            VAULT_COLUMNS,
        ),
        VaultCommand::Show { name } => print_vault(
            output,
            &api.get_json::<Value>(&format!("api/v1/vaults/{name}"))
                .await?,
        ),
        VaultCommand::Replicate { name } => {
            let v: Value = api
                .post_json(&format!("api/v1/vaults/{name}/replicate"), &json!({}))
                .await?;
            print_job(output, &v)?;
            job_succeeded(&v)
        }
        VaultCommand::Verify {
            name,
            use_secondary_region,
        } => {
            let v: Value = api
                .post_json(
                    &format!("api/v1/vaults/{name}/verify"),
                    &json!({ "useSecondaryRegion": use_secondary_region }),
                )
                .await?;
            let id = v["id"].as_str().unwrap_or_default().to_string();
            let done = wait_for_job(api, &name, &id, 24 * 3600).await?;
            print_job(output, &done)?;
            if output == Output::Table {
                for p in done["result"]["damagedPoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "  damaged recovery point {}: {}",
                        p["id"].as_str().unwrap_or(""),
                        p["problems"]
                    );
                }
            }
            job_succeeded(&done)
        }
        VaultCommand::Delete { name, yes } => {
            confirm(yes, &format!("delete vault {name}"))?;
            api.delete(&format!("api/v1/vaults/{name}")).await?;
            eprintln!("vault {name} deleted");
            Ok(())
        }
        VaultCommand::BackupProperties(BackupPropertiesCommand::Set {
            name,
            backup_storage_redundancy,
            cross_region_restore_flag,
        }) => {
            if backup_storage_redundancy.is_none() && cross_region_restore_flag.is_none() {
                bail!("nothing to set: give --backup-storage-redundancy and/or --cross-region-restore-flag");
            }
            let body = json!({
                "storageRedundancy": backup_storage_redundancy.map(|r| r.as_str()),
                "crossRegionRestore": cross_region_restore_flag,
            });
            let v: Value = api
                .send(
                    reqwest::Method::PUT,
                    &format!("api/v1/vaults/{name}/backup-properties"),
                    |r| r.json(&body),
                )
                .await?
                .json()
                .await?;
            print_vault(output, &v)
        }
        VaultCommand::Credentials {
            name,
            valid_days,
            location,
            output_file,
        } => {
            let v: Value = api
                .post_json(
                    &format!("api/v1/vaults/{name}/credentials"),
                    &json!({"validDays": valid_days, "location": location}),
                )
                .await?;
            let text = serde_json::to_string_pretty(&v)?;
            match output_file {
                Some(path) => {
                    tresor_storage::write_file_atomic(&path, text.as_bytes(), 0o600)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("vault credentials written to {} (valid until {}; one agent can register with them)", path.display(), v["expires"].as_str().unwrap_or("?"));
                }
                None => println!("{text}"),
            }
            Ok(())
        }
    }
}

async fn policy(api: &ApiClient, output: Output, cmd: PolicyCommand) -> Result<()> {
    let cols: &[(&str, &str)] = &[("NAME", "name"), ("ITEMS", "protectedItems")];
    let read = |p: &Path| -> Result<Value> {
        serde_json::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{} is not a policy in JSON", p.display()))
    };
    let v: Value = match cmd {
        PolicyCommand::List { vault } => {
            api.get_json(&format!("api/v1/vaults/{}/policies", vault.vault_name))
                .await?
        }
        PolicyCommand::Show { vault, name } => {
            api.get_json(&format!(
                "api/v1/vaults/{}/policies/{name}",
                vault.vault_name
            ))
            .await?
        }
        PolicyCommand::GetDefaultForVm { vault } => {
            api.get_json(&format!(
                "api/v1/vaults/{}/policies/default-for-vm",
                vault.vault_name
            ))
            .await?
        }
        PolicyCommand::Create { vault, policy } => {
            api.post_json(
                &format!("api/v1/vaults/{}/policies", vault.vault_name),
                &strip_server_fields(read(&policy)?),
            )
            .await?
        }
        PolicyCommand::Set { vault, policy } => {
            let body = strip_server_fields(read(&policy)?);
            let name = body["name"]
                .as_str()
                .context("the policy file has no name")?
                .to_string();
            api.send(
                reqwest::Method::PUT,
                &format!("api/v1/vaults/{}/policies/{name}", vault.vault_name),
                |r| r.json(&body),
            )
            .await?
            .json()
            .await?
        }
        PolicyCommand::Delete { vault, name } => {
            api.delete(&format!(
                "api/v1/vaults/{}/policies/{name}",
                vault.vault_name
            ))
            .await?;
            eprintln!("policy {name} deleted");
            return Ok(());
        }
    };
    print(output, &v, cols)
}

/// A policy as `show -o json` prints it carries fields the server adds; a file made
/// from that output is accepted as input.
fn strip_server_fields(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
        o.remove("protectedItems");
    }
    v
}

async fn protection(api: &ApiClient, output: Output, cmd: ProtectionCommand) -> Result<()> {
    match cmd {
        ProtectionCommand::EnableForVm {
            vault,
            vm,
            host,
            policy_name,
        } => {
            let v: Value = api
                .post_json(
                    &format!("api/v1/vaults/{}/items", vault.vault_name),
                    &json!({"host": host, "vm": vm, "policy": policy_name}),
                )
                .await?;
            print(output, &v, ITEM_COLUMNS)
        }
        ProtectionCommand::BackupNow {
            vault,
            item,
            retain_until,
        } => {
            let retain = retain_until.map(|s| parse_time(&s)).transpose()?;
            let v: Value = api
                .post_json(
                    &format!("api/v1/vaults/{}/items/{item}/backup", vault.vault_name),
                    &json!({"retainUntil": retain}),
                )
                .await?;
            print(output, &v, JOB_COLUMNS)
        }
        ProtectionCommand::Disable {
            vault,
            item,
            delete_backup_data,
            yes,
        } => {
            if delete_backup_data {
                confirm(
                    yes,
                    &format!("stop protecting {item} and DELETE all its recovery points"),
                )?;
            }
            let v: Value = api
                .post_json(
                    &format!("api/v1/vaults/{}/items/{item}/disable", vault.vault_name),
                    &json!({"deleteBackupData": delete_backup_data}),
                )
                .await?;
            print(output, &v, JOB_COLUMNS)
        }
    }
}

/// An RFC 3339 time, or a date (taken as the end of that day, UTC).
fn parse_time(s: &str) -> Result<String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.to_string());
    }
    let d: jiff::civil::Date = s.parse().with_context(|| {
        format!("{s:?} is neither a time (2027-01-31T12:00:00Z) nor a date (2027-01-31)")
    })?;
    Ok(d.at(23, 59, 59, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .to_string())
}

async fn job(api: &ApiClient, output: Output, cmd: JobCommand) -> Result<()> {
    match cmd {
        JobCommand::List {
            vault,
            status,
            operation,
            limit,
        } => {
            let mut q = format!("api/v1/vaults/{}/jobs?limit={limit}", vault.vault_name);
            if let Some(s) = status {
                q.push_str(&format!("&status={s}"));
            }
            if let Some(o) = operation {
                q.push_str(&format!("&operation={o}"));
            }
            print(output, &api.get_json::<Value>(&q).await?, JOB_COLUMNS)
        }
        JobCommand::Show { vault, name } => {
            let v: Value = api
                .get_json(&format!("api/v1/vaults/{}/jobs/{name}", vault.vault_name))
                .await?;
            print_job(output, &v)
        }
        JobCommand::Stop { vault, name } => {
            let v: Value = api
                .post_json(
                    &format!("api/v1/vaults/{}/jobs/{name}/cancel", vault.vault_name),
                    &json!({}),
                )
                .await?;
            print(output, &v, JOB_COLUMNS)
        }
        JobCommand::Wait {
            vault,
            name,
            timeout,
        } => {
            let job = wait_for_job(api, &vault.vault_name, &name, timeout).await?;
            print_job(output, &job)?;
            job_succeeded(&job)
        }
    }
}

/// Polls a job until it ends, with a progress bar on a terminal.
async fn wait_for_job(api: &ApiClient, vault: &str, name: &str, timeout: u64) -> Result<Value> {
    let path = format!("api/v1/vaults/{vault}/jobs/{name}");
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(100);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}%").expect("template"),
        );
        b
    });
    let started = std::time::Instant::now();
    let job = loop {
        let v: Value = api.get_json(&path).await?;
        if let Some(b) = &bar {
            b.set_message(format!(
                "{} {}",
                v["operation"].as_str().unwrap_or(""),
                v["vmName"].as_str().unwrap_or("")
            ));
            b.set_position(v["percent"].as_f64().unwrap_or(0.0) as u64);
        }
        let status = v["status"].as_str().unwrap_or("").to_string();
        if !matches!(status.as_str(), "InProgress" | "Cancelling") {
            break v;
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            bail!("job {name} still runs after {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(job)
}

/// Ok when the job completed; an error naming its code and message otherwise.
fn job_succeeded(job: &Value) -> Result<()> {
    let name = job["id"].as_str().unwrap_or("?");
    match job["status"].as_str() {
        Some("Completed" | "CompletedWithWarnings") => Ok(()),
        Some(s) => bail!(
            "job {name} ended {s}: {} {}",
            job["error"]["code"].as_str().unwrap_or(""),
            job["error"]["message"].as_str().unwrap_or("")
        ),
        None => bail!("job {name}: no status"),
    }
}

fn print_job(output: Output, v: &Value) -> Result<()> {
    print(output, v, JOB_COLUMNS)?;
    if output == Output::Table {
        for t in v["tasks"].as_array().into_iter().flatten() {
            println!(
                "  task {:<28} {}",
                t["name"].as_str().unwrap_or(""),
                t["status"].as_str().unwrap_or("")
            );
        }
        for w in v["warnings"].as_array().into_iter().flatten() {
            println!("  warning: {}", w.as_str().unwrap_or(""));
        }
        if !v["error"].is_null() {
            println!(
                "  error {}: {}",
                v["error"]["code"].as_str().unwrap_or(""),
                v["error"]["message"].as_str().unwrap_or("")
            );
            println!(
                "  recommended action: {}",
                v["error"]["recommendation"].as_str().unwrap_or("")
            );
        }
        if let Some(p) = v["result"]["recoveryPoint"].as_str() {
            println!("  recovery point: {p}");
        }
    }
    Ok(())
}

async fn restore(api: &ApiClient, output: Output, cmd: RestoreCommand) -> Result<()> {
    let (t, body) = match cmd {
        RestoreCommand::RestoreDisks {
            target,
            target_path,
            format,
        } => {
            let format = format.map(|f| {
                if f == FormatArg::Qcow2 {
                    "qcow2"
                } else {
                    "raw"
                }
            });
            let body = json!({"recoveryPoint": target.rp_name, "mode": "RestoreDisks", "targetPath": target_path, "format": format});
            (target, body)
        }
        RestoreCommand::CreateVm {
            target,
            target_path,
            new_name,
        } => {
            let body = json!({"recoveryPoint": target.rp_name, "mode": "CreateVm", "targetPath": target_path, "newName": new_name});
            (target, body)
        }
        RestoreCommand::ReplaceDisks { target, yes } => {
            confirm(
                yes,
                &format!(
                    "overwrite the disks of {} with recovery point {}",
                    target.item, target.rp_name
                ),
            )?;
            let body = json!({"recoveryPoint": target.rp_name, "mode": "ReplaceDisks"});
            (target, body)
        }
    };
    let mut body = body;
    body["useSecondaryRegion"] = json!(t.use_secondary_region);
    let v: Value = api
        .post_json(
            &format!(
                "api/v1/vaults/{}/items/{}/restore",
                t.vault.vault_name, t.item
            ),
            &body,
        )
        .await?;
    print(output, &v, JOB_COLUMNS)
}

/// A vault, with its replication in a few lines under the table.
fn print_vault(output: Output, v: &Value) -> Result<()> {
    print(output, v, VAULT_COLUMNS)?;
    if output == Output::Table {
        print_replication(&v["replication"]);
        if v["storageRedundancy"] == "GeoRedundant" {
            println!(
                "  cross-region restore: {}",
                if v["crossRegionRestore"] == true {
                    "enabled"
                } else {
                    "disabled"
                }
            );
        }
    }
    Ok(())
}

/// The replication status the server reports for a vault or an item.
fn print_replication(r: &Value) {
    let status = r["status"].as_str().unwrap_or("-");
    if matches!(status, "NotApplicable" | "-") {
        return;
    }
    println!(
        "  replication to {}: {status}; lag {:.0} s, {} pending in {} recovery points, {} recovery points in the secondary region{}",
        r["secondaryLocation"].as_str().unwrap_or("?"),
        r["lagSeconds"].as_f64().unwrap_or(0.0),
        human(r["bytesPending"].as_u64().unwrap_or(0)),
        r["pendingRecoveryPoints"].as_u64().unwrap_or(0),
        r["recoveryPointsOnSecondary"].as_u64().unwrap_or(0),
        match r["softDeletedRecoveryPoints"].as_u64() {
            Some(n) if n > 0 => format!(" ({n} deleted from the primary, kept for the soft-delete window)"),
            _ => String::new(),
        }
    );
    if let Some(t) = r["lastSuccess"].as_str() {
        println!("  last replicated: {t}");
    }
    if r["lastError"].is_object() {
        println!(
            "  last error {} at {}: {}",
            r["lastError"]["code"].as_str().unwrap_or(""),
            r["lastError"]["time"].as_str().unwrap_or(""),
            r["lastError"]["message"].as_str().unwrap_or("")
        );
        println!(
            "  recommended action: {}",
            r["lastError"]["recommendation"].as_str().unwrap_or("")
        );
        if let Some(t) = r["nextAttempt"].as_str() {
            println!("  next attempt: {t}");
        }
    }
}
