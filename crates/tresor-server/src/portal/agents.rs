//! Host agents: who is registered, online or not, their VMs with disks, preflight
//! results and protection; and "Register a new host": vault credentials to download,
//! with the steps that turn them into a running agent.
//!
//! Everything is read through the API (`GET /api/v1/agents`, `GET /api/v1/vaults`)
//! and the credentials come from the API's own handler, so its rules (1 to 10 days,
//! an existing vault) are the page's rules.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use jiff::Timestamp;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{
    badge, bytes, csrf_field, empty, error_box, notice, page, spaced, time, with_status, Field,
};
use super::session::Operator;
use super::vaults::error_page;
use crate::api;
use crate::api::agents::AgentDto;
use crate::api::vaults::CredentialsRequest;
use crate::auth::Admin;
use crate::dto::VaultDto;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/agents", get(list))
        // A GET here (after signing in again, say) shows the form.
        .route(
            "/agents/credentials",
            get(|| async { Redirect::to("/agents#register") }).post(download),
        )
}

#[derive(Debug, Default, Deserialize)]
pub struct AgentsQuery {
    #[serde(default)]
    done: Option<String>,
    /// Preselects a vault in "Register a new host".
    #[serde(default)]
    vault: Option<String>,
}

/// The credentials form, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct CredentialsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    vault: String,
    #[serde(default)]
    valid_days: String,
}

async fn list(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Query(q): Query<AgentsQuery>,
) -> Response {
    let form = CredentialsForm {
        vault: q.vault.clone().unwrap_or_default(),
        valid_days: "2".into(),
        ..Default::default()
    };
    agents_page(&op, &state, &form, None, q.done.as_deref()).await
}

/// Downloads a vault credentials file (`VAULT.credentials`), or shows the page again
/// with the API's error.
async fn download(
    op: Operator,
    State(state): State<Arc<AppState>>,
    Form(f): Form<CredentialsForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let valid_days = match parse_days(&f.valid_days) {
        Ok(d) => d,
        Err(e) => return agents_page(&op, &state, &f, Some(&e), None).await,
    };
    let answer = api::vaults::credentials(
        Admin,
        State(state.clone()),
        Path(f.vault.trim().to_string()),
        Some(Json(CredentialsRequest {
            valid_days,
            location: None,
        })),
    )
    .await;
    match answer {
        Ok(Json(c)) => {
            let text = match serde_json::to_string_pretty(&c) {
                Ok(t) => t,
                Err(e) => return error_page(&op, &ApiError::internal(e)),
            };
            // Vault names are letters, digits and hyphens; keep the header safe anyway.
            let file: String = c
                .vault
                .chars()
                .filter(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(*ch))
                .collect();
            tracing::info!(vault = ?c.vault, who = ?op.who, "vault credentials downloaded in the portal");
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{file}.credentials\""),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
                text + "\n",
            )
                .into_response()
        }
        Err(e) => agents_page(&op, &state, &f, Some(&e), None).await,
    }
}

/// The days field: empty means the API's default; anything but a whole number is
/// refused here (the API takes a number); the range is the API's to judge.
fn parse_days(s: &str) -> Result<Option<u32>, ApiError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u32>().map(Some).map_err(|_| {
        ApiError::bad_request(
            "InvalidCredentialsValidity",
            format!("“{s}” is not a number of days"),
            "type a whole number of days",
        )
    })
}

/// One VM as the page shows it, read from the inventory body (`tresor_vm::VmInfo`
/// plus its `preflight` array of `tresor_vm::CheckResult`).
struct VmView {
    name: String,
    state: Option<String>,
    disks: Vec<DiskView>,
    guest_agent: Option<String>,
    /// `None` when the agent reported no preflight.
    checks: Option<Vec<Check>>,
    seen: Option<Timestamp>,
    /// The vault protecting it and the item's state.
    protection: Option<(String, String)>,
}

struct DiskView {
    name: String,
    format: String,
    size: Option<u64>,
    image: Option<String>,
}

struct Check {
    subject: String,
    /// As serialized: `ok`, `warning`, `error`.
    severity: String,
    code: Option<String>,
    message: String,
    fix: Option<String>,
}

/// Severity as serialized (`ok`, `warning`, `error`) → rank and badge text.
fn severity(s: &str) -> (u8, &'static str) {
    match s {
        "ok" => (0, "ok"),
        "warning" => (1, "WARNING"),
        "error" => (2, "ERROR"),
        _ => (1, "WARNING"),
    }
}

impl VmView {
    fn of(entry: &Value) -> VmView {
        let info = &entry["info"];
        let text = |v: &Value| v.as_str().map(str::to_string);
        let disks = info["disks"]
            .as_array()
            .map(|ds| {
                ds.iter()
                    .map(|d| DiskView {
                        name: text(&d["name"]).unwrap_or_else(|| "?".into()),
                        format: text(&d["format"]).unwrap_or_default(),
                        size: d["virtual_size"].as_u64(),
                        image: text(&d["image"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let ga = &info["guest_agent"];
        let guest_agent = match ga["state"].as_str() {
            Some("not-configured") => Some("not configured".to_string()),
            Some("not-responding") => Some(format!(
                "not responding ({})",
                ga["reason"].as_str().unwrap_or("no answer")
            )),
            Some("responding") => Some(format!(
                "responding, version {}, {}",
                ga["version"].as_str().unwrap_or("?"),
                if ga["can_freeze"].as_bool().unwrap_or(false) {
                    "can freeze file systems"
                } else {
                    "cannot freeze file systems"
                }
            )),
            _ => None,
        };
        let checks = info["preflight"].as_array().map(|cs| {
            cs.iter()
                .map(|c| Check {
                    subject: text(&c["subject"]).unwrap_or_default(),
                    severity: text(&c["severity"]).unwrap_or_else(|| "warning".into()),
                    code: text(&c["code"]),
                    message: text(&c["message"]).unwrap_or_default(),
                    fix: text(&c["fix"]).filter(|f| !f.is_empty()),
                })
                .collect()
        });
        VmView {
            name: text(&entry["vm"]).unwrap_or_else(|| "?".into()),
            state: text(&info["state"]),
            disks,
            guest_agent,
            checks,
            seen: entry["seen"].as_str().and_then(|t| t.parse().ok()),
            protection: None,
        }
    }

    /// The worst severity of its checks (serialized name), if any were reported.
    fn worst(&self) -> Option<&str> {
        self.checks.as_ref().map(|cs| {
            cs.iter()
                .map(|c| c.severity.as_str())
                .max_by_key(|s| severity(s).0)
                .unwrap_or("ok")
        })
    }
}

/// "3 minutes ago", for a time in the past.
fn ago(now: Timestamp, t: Timestamp) -> String {
    let s = (now.as_second() - t.as_second()).max(0);
    let (n, unit) = match s {
        0..=59 => return "just now".into(),
        60..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// An id fragment from a name: lower-case letters, digits and hyphens.
fn slug(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() {
        "x".into()
    } else {
        out
    }
}

/// The page: the agents, then "Register a new host" with the form as typed.
async fn agents_page(
    op: &Operator,
    state: &Arc<AppState>,
    form: &CredentialsForm,
    error: Option<&ApiError>,
    done: Option<&str>,
) -> Response {
    let agents: Vec<AgentDto> = match api::agents::list(Admin, State(state.clone())).await {
        Ok(Json(a)) => a,
        Err(e) => return error_page(op, &e),
    };
    let vaults: Vec<VaultDto> = match api::vaults::list(Admin, State(state.clone())).await {
        Ok(Json(v)) => v,
        Err(e) => return error_page(op, &e),
    };
    // Each VM's protection: the store's active item for (agent, VM), and its vault.
    let mut hosts: Vec<(&AgentDto, Vec<VmView>)> = agents
        .iter()
        .map(|a| (a, a.vms.iter().map(VmView::of).collect()))
        .collect();
    let keys: Vec<(String, String)> = hosts
        .iter()
        .flat_map(|(a, vms)| vms.iter().map(|v| (a.id.clone(), v.name.clone())))
        .collect();
    let protected = state
        .blocking(move |s| {
            let mut out = HashMap::new();
            for (agent, vm) in keys {
                if let Some(item) = s.store.find_active_item(&agent, &vm)? {
                    let vault = s.store.get_vault(&item.vault_id)?;
                    out.insert((agent, vm), (vault.name, item.state));
                }
            }
            Ok(out)
        })
        .await;
    let mut protected = match protected {
        Ok(p) => p,
        Err(e) => return error_page(op, &e),
    };
    for (a, vms) in &mut hosts {
        for v in vms.iter_mut() {
            v.protection = protected.remove(&(a.id.clone(), v.name.clone()));
        }
    }
    // Section ids from host names, unique even if a host registered twice.
    let mut used: HashMap<String, usize> = HashMap::new();
    let ids: Vec<String> = hosts
        .iter()
        .map(|(a, _)| {
            let base = format!("agent-{}", slug(&a.host));
            let n = used.entry(base.clone()).or_default();
            *n += 1;
            if *n == 1 {
                base
            } else {
                format!("{base}-{n}")
            }
        })
        .collect();
    let now = state.now();
    let online = agents.iter().filter(|a| a.online).count();
    let body = html! {
        h1 { "Host agents" }
        p.muted { "The agents on your KVM hosts: they report their VMs, check whether backups of them will work, and run the jobs." }
        @if let Some(d) = done { (notice(d)) }
        div.toolbar {
            span.grow.muted { (agents.len()) " registered · " (online) " online" }
            a.button.primary href="#register" { "Register a new host" }
        }
        @if agents.is_empty() {
            (empty("No host agent is registered yet. Download vault credentials for a host, put them in its agent.toml and start its agent: it appears here with its VMs and their preflight checks.", Some(("Register a new host", "#register"))))
        } @else {
            table #agents {
                caption.sr-only { "Host agents" }
                thead { tr {
                    th scope="col" { "Host" } th scope="col" { "Location" } th scope="col" { "Status" }
                    th scope="col" { "Version" } th scope="col" { "Last heartbeat" } th scope="col" { "VMs" }
                    th scope="col" { "Preflight" }
                } }
                tbody {
                    @for ((a, vms), id) in hosts.iter().zip(&ids) {
                        tr data-agent=(a.host) {
                            td { a href={ "#" (id) } { (a.host) } }
                            td { (a.location) }
                            td { (badge(if a.online { "Online" } else { "Offline" })) }
                            td { @if let Some(v) = &a.version { (v) } @else { span.muted { "–" } } }
                            td { (heartbeat(now, a.last_heartbeat)) }
                            td { (vms.len()) }
                            td { (host_summary(vms)) }
                        }
                    }
                }
            }
            @for ((a, vms), id) in hosts.iter().zip(&ids) {
                (host_section(now, a, vms, id))
            }
        }
        (register_section(op, &vaults, form, error))
    };
    with_status(page("Host agents", Some(op), &[], body), error)
}

fn heartbeat(now: Timestamp, t: Option<Timestamp>) -> Markup {
    html! {
        (time(t))
        @if let Some(t) = t { br; span.small.muted.ago { (ago(now, t)) } }
    }
}

/// How many of a host's VMs have errors and warnings.
fn host_summary(vms: &[VmView]) -> Markup {
    let count = |s: &str| vms.iter().filter(|v| v.worst() == Some(s)).count();
    let (errors, warnings, ok) = (count("error"), count("warning"), count("ok"));
    html! {
        @if vms.is_empty() { span.muted { "–" } }
        @else if errors + warnings + ok == 0 { span.muted { "not reported" } }
        @else {
            span.summary {
                @if errors > 0 { (badge("ERROR")) " " (errors) " " }
                @if warnings > 0 { (badge("WARNING")) " " (warnings) " " }
                @if ok > 0 { (badge("ok")) " " (ok) }
            }
        }
    }
}

fn host_section(now: Timestamp, a: &AgentDto, vms: &[VmView], id: &str) -> Markup {
    html! {
        section.card.agent id=(id) aria-labelledby={ (id) "-h" } data-host=(a.host) {
            div.agent-head {
                h2 id={ (id) "-h" } { (a.host) }
                (badge(if a.online { "Online" } else { "Offline" }))
            }
            dl.props {
                dt { "Location" } dd { (a.location) }
                dt { "Version" } dd { @if let Some(v) = &a.version { (v) } @else { span.muted { "–" } } }
                dt { "Last heartbeat" } dd { (heartbeat(now, a.last_heartbeat)) }
                dt { "Registered" } dd { (time(Some(a.registered))) }
                dt { "Agent id" } dd { code { (a.id) } }
            }
            @if !a.online {
                div.alert.warn role="status" {
                    "Not heard from for more than 2 minutes: jobs for its VMs wait until it is back. On the host, check that "
                    code { "tresor agent run" } " is running, and run " code { "tresor agent check" } "."
                }
            }
            h3 { "Virtual machines (" (vms.len()) ")" }
            @if vms.is_empty() {
                p.muted { "This agent reports no VM. Add [[vm]] sections (or socket_dirs) to its agent.toml and restart it." }
            }
            @for v in vms { (vm_details(v, id)) }
        }
    }
}

fn vm_details(v: &VmView, host_id: &str) -> Markup {
    let worst = v.worst();
    let vm_id = format!(
        "vm-{}-{}",
        host_id.trim_start_matches("agent-"),
        slug(&v.name)
    );
    html! {
        details.vm id=(vm_id) data-vm=(v.name) data-worst=[worst] open[worst == Some("error")] {
            summary {
                strong.vm-name { (v.name) }
                span.vm-state { @if let Some(s) = &v.state { (s) } @else { "state unknown" } }
                span.vm-preflight {
                    span.sr-only { "Preflight: " }
                    @match worst {
                        Some(w) => (badge(severity(w).1)),
                        None => span.muted.small { "no preflight" },
                    }
                }
                span.vm-protection {
                    @match &v.protection {
                        Some((vault, _)) => { "Protected by " strong { (vault) } }
                        None => span.muted { "Not protected" },
                    }
                }
            }
            div.vm-body {
                dl.props {
                    dt { "Run state" } dd { @if let Some(s) = &v.state { (s) } @else { span.muted { "unknown" } } }
                    dt { "Guest agent" } dd { @if let Some(g) = &v.guest_agent { (g) } @else { span.muted { "unknown" } } }
                    dt { "Protection" }
                    dd.protection {
                        @match &v.protection {
                            Some((vault, item_state)) => {
                                "Protected by vault " a href={ "/vaults/" (vault) } { (vault) }
                                " " (badge(item_state)) " · "
                                a href={ "/vaults/" (vault) "/items" } { "Backup items" }
                            }
                            None => {
                                "Not protected. Protect it from a vault in this host's location: "
                                a href="/vaults" { "Recovery Services vaults" } " → + Backup."
                            }
                        }
                    }
                    dt { "Reported" } dd { (time(v.seen)) }
                }
                h4 { "Disks" }
                @if v.disks.is_empty() {
                    p.muted { "No disk reported." }
                } @else {
                    table.disks {
                        caption.sr-only { "Disks of " (v.name) }
                        thead { tr { th scope="col" { "Disk" } th scope="col" { "Format" } th scope="col" { "Size" } th scope="col" { "Image" } } }
                        tbody {
                            @for d in &v.disks {
                                tr {
                                    td { (d.name) }
                                    td { (d.format) }
                                    td { @if let Some(n) = d.size { (bytes(n)) } @else { span.muted { "–" } } }
                                    td { @if let Some(i) = &d.image { code.small { (i) } } }
                                }
                            }
                        }
                    }
                }
                h4 { "Preflight checks" }
                @match &v.checks {
                    None => p.muted { "The agent has not reported preflight checks for this VM (agents older than this server do not)." },
                    Some(cs) if cs.is_empty() => p.muted { "No checks reported." },
                    Some(cs) => {
                        ul.preflight aria-label={ "Preflight checks of " (v.name) } {
                            @for c in cs {
                                li.check data-severity=(c.severity) data-code=[c.code.as_deref()] {
                                    span.check-badge { (badge(severity(&c.severity).1)) }
                                    div.check-text {
                                        p.check-head {
                                            span.subject { (c.subject) }
                                            @if let Some(code) = &c.code { " " code.code { (code) } }
                                        }
                                        p.message { (c.message) }
                                        @if let Some(fix) = &c.fix { p.fix { strong { "Fix: " } (fix) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn register_section(
    op: &Operator,
    vaults: &[VaultDto],
    f: &CredentialsForm,
    error: Option<&ApiError>,
) -> Markup {
    let field_error = |field: &str| -> Option<String> {
        let e = error?;
        let hit = match field {
            "valid_days" => e.code == "InvalidCredentialsValidity",
            "vault" => e.code.contains("Vault") || e.code == "NotFound",
            _ => false,
        };
        hit.then(|| e.message.clone())
    };
    // The vault the instructions name: the one chosen, or the only one.
    let chosen = vaults
        .iter()
        .find(|v| v.name.eq_ignore_ascii_case(f.vault.trim()))
        .or(if vaults.len() == 1 {
            vaults.first()
        } else {
            None
        });
    let (vault_name, location) = match chosen {
        Some(v) => (v.name.as_str(), v.location.as_str()),
        None => ("VAULT", "LOCATION"),
    };
    let days = if f.valid_days.is_empty() {
        "2"
    } else {
        f.valid_days.as_str()
    };
    html! {
        section.card.register #register aria-labelledby="register-h" {
            h2 #register-h { "Register a new host" }
            p { "A host agent joins with a " strong { "vault credentials file" } ": it names this server, pins its certificate and carries a one-time secret. One file registers one host; it expires after the days you choose." }
            @if let Some(e) = error { (error_box(e)) }
            @if vaults.is_empty() {
                (empty("Vault credentials belong to a vault: create a vault first.", Some(("+ Add a vault", "/vaults/new"))))
            } @else {
                form.stack #credentials-form method="post" action="/agents/credentials#register" novalidate {
                    (csrf_field(op))
                    div.field {
                        label for="vault" { "Vault" }
                        select #vault name="vault" aria-describedby="vault-hint vault-error"
                            aria-invalid=[field_error("vault").map(|_| "true")] {
                            @for v in vaults {
                                option value=(v.name) selected[chosen.is_some_and(|c| c.name == v.name)] {
                                    (v.name) " · " (v.location) " · " (spaced(&v.storage_redundancy))
                                }
                            }
                        }
                        p.hint #vault-hint { "The host's VMs can be protected by vaults in the host's location." }
                        p.error #vault-error aria-live="polite" { @if let Some(m) = field_error("vault") { (m) } }
                    }
                    (Field::new("valid_days", "Valid for (days)", days,
                        "1 to 10 days; 2 by default. Unused credentials stop working after that.",
                        field_error("valid_days").as_deref()).number(Some("10"), Some("1")).required())
                    div { button.primary #download-credentials type="submit" { "Download vault credentials" } }
                }
            }
            (instructions(vault_name, location))
        }
    }
}

/// What to do with the file on the host (keys of `tresor_agent::daemon::AgentConfig`).
fn instructions(vault: &str, location: &str) -> Markup {
    let toml = format!(
        "credentials = \"/etc/tresor/{vault}.credentials\"  # used once, at the first start\n\
         state_dir = \"/var/lib/tresor-agent\"   # the agent's own credential\n\
         host = \"kvm1\"                         # default: the host name\n\
         location = \"{location}\"\n\
         scratch_dir = \"/var/tmp\"\n\
         \n\
         [[vm]]\n\
         name = \"web01\"\n\
         qmp = \"/run/qemu/web01.qmp\"            # -qmp unix:PATH,server=on,wait=off\n\
         guest_agent = \"/run/qemu/web01.qga\"    # optional: app-consistent points\n"
    );
    html! {
        h3 #register-steps { "Then, on the host" }
        ol.instructions aria-labelledby="register-steps" {
            li {
                "Copy the file to the host, e.g. to " code { "/etc/tresor/" (vault) ".credentials" }
                ", readable by root only (" code { "chmod 600" } ")."
            }
            li {
                "Write " code { "/etc/tresor/agent.toml" } " with the credentials file, the host, its location (the vault's location) and its VMs:"
                pre.config { code { (toml) } }
            }
            li { "Run " code { "tresor agent check" } ": it tests DNS, TCP, the proxy, TLS and the credential, and names what fails." }
            li { "Run " code { "tresor agent run" } " (keep it running, e.g. as a service). It registers at its first start and appears on this page within a minute, with its VMs and their preflight checks." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_read_as_ago() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        assert_eq!(ago(now, at("2026-01-01T11:59:30Z")), "just now");
        assert_eq!(ago(now, at("2026-01-01T11:59:00Z")), "1 minute ago");
        assert_eq!(ago(now, at("2026-01-01T11:45:00Z")), "15 minutes ago");
        assert_eq!(ago(now, at("2026-01-01T09:00:00Z")), "3 hours ago");
        assert_eq!(ago(now, at("2025-12-30T12:00:00Z")), "2 days ago");
        assert_eq!(slug("kvm1.example.org"), "kvm1-example-org");
    }

    #[test]
    fn days_are_numbers_or_the_default() {
        assert_eq!(parse_days(" ").unwrap(), None);
        assert_eq!(parse_days("3").unwrap(), Some(3));
        assert_eq!(
            parse_days("zwei").unwrap_err().code,
            "InvalidCredentialsValidity"
        );
    }

    #[test]
    fn inventory_bodies_are_read() {
        let v = VmView::of(&json!({
            "vm": "app",
            "seen": "2026-01-01T12:00:00Z",
            "info": {
                "name": "app", "uuid": null, "state": "running",
                "disks": [{"name": "vda", "node": "disk0", "image": "/x.qcow2", "format": "qcow2", "virtual_size": 67108864}],
                "guest_agent": {"state": "not-configured"},
                "preflight": [
                    {"subject": "QMP socket", "severity": "ok", "code": null, "message": "answers", "fix": null},
                    {"subject": "guest agent", "severity": "warning", "code": "guest-agent-not-configured", "message": "none", "fix": "add one"}
                ]
            }
        }));
        assert_eq!(v.name, "app");
        assert_eq!(v.state.as_deref(), Some("running"));
        assert_eq!(v.disks[0].size, Some(64 << 20));
        assert_eq!(v.worst(), Some("warning"));
        assert_eq!(v.guest_agent.as_deref(), Some("not configured"));
        let none = VmView::of(&json!({"vm": "b", "info": {}}));
        assert_eq!(none.worst(), None);
    }

    #[test]
    fn a_vm_with_an_error_is_open_and_says_so() {
        let v = VmView::of(&json!({
            "vm": "db",
            "info": {"state": "running", "disks": [], "preflight": [
                {"subject": "scratch folder", "severity": "error", "code": "scratch-space-missing", "message": "missing", "fix": "create it"}
            ]}
        }));
        let html = vm_details(&v, "agent-kvm1").into_string();
        assert!(html.contains(r#"id="vm-kvm1-db""#), "{html}");
        assert!(html.contains(r#"data-worst="error" open"#), "{html}");
        assert!(html.contains(
            r#"<li class="check" data-severity="error" data-code="scratch-space-missing">"#
        ));
        assert!(html.contains(">ERROR<") && html.contains("create it"));
    }
}
