//! Host agents: who is registered, online or not, their VMs with disks, preflight
//! results and protection; and "Register a new host": vault credentials to download,
//! with the steps that turn them into a running agent.
//!
//! Everything is read through the service's use cases (the agents, the vaults, each
//! reported VM's protection) and the credentials come from its vault credentials use
//! case, so its rules (1 to 10 days, an existing vault) are the page's rules.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use jiff::Timestamp;
use maud::{html, Markup};
use serde::Deserialize;
use tresor_api::agents::{Agent, AgentVm};
use tresor_api::vaults::{CredentialsRequest, Vault};
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError};

use crate::layout::{
    badge, bytes, csrf_field, empty, error_box, notice, page, spaced, time, wire_name, with_status,
    Field,
};
use crate::permissions::{on_vault, Permission};
use crate::session::Operator;
use crate::vm_words::{guest_agent_text, severity, severity_name};

pub fn routes() -> Router<Arc<Service>> {
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
    State(state): State<Arc<Service>>,
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
/// with the service's error.
async fn download(
    op: Operator,
    State(state): State<Arc<Service>>,
    Form(f): Form<CredentialsForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let valid_days = match parse_days(&f.valid_days) {
        Ok(d) => d,
        Err(e) => return agents_page(&op, &state, &f, Some(&e), None).await,
    };
    let answer = state
        .vault_credentials(
            &op.principal,
            f.vault.trim().to_string(),
            CredentialsRequest {
                valid_days,
                location: None,
            },
        )
        .await;
    match answer {
        Ok(c) => {
            let text = or_page!(
                &op,
                serde_json::to_string_pretty(&c).map_err(ServiceError::internal)
            );
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

/// The days field: empty means the service's default; anything but a whole number is
/// refused here (the request takes a number); the range is the service's to judge.
fn parse_days(s: &str) -> Result<Option<u32>, ServiceError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u32>().map(Some).map_err(|_| {
        ServiceError::new(
            ErrorCode::InvalidCredentialsValidity,
            format!("“{s}” is not a number of days"),
            "type a whole number of days",
        )
    })
}

/// One VM as the page shows it, from what its agent reported.
struct VmView {
    name: String,
    /// The name it reports (a libvirt domain's; `name` is its UUID then).
    label: String,
    /// Its own page (the VM page), once its host is known.
    page: String,
    state: String,
    disks: Vec<DiskView>,
    guest_agent: String,
    /// `None` when the agent reported no preflight.
    checks: Option<Vec<Check>>,
    seen: Timestamp,
    /// The vault protecting it and the item's state.
    protection: Option<(String, String)>,
}

struct DiskView {
    name: String,
    format: String,
    size: u64,
    image: String,
}

struct Check {
    subject: String,
    /// As serialized: `ok`, `warning`, `error`.
    severity: String,
    code: Option<String>,
    message: String,
    fix: Option<String>,
}

impl VmView {
    fn of(entry: &AgentVm) -> VmView {
        let info = &entry.info.info;
        let disks = info
            .disks
            .iter()
            .map(|d| DiskView {
                name: d.name.clone(),
                format: d.format.clone(),
                size: d.virtual_size,
                image: d.image.clone(),
            })
            .collect();
        let guest_agent = guest_agent_text(&info.guest_agent);
        let checks = entry.info.preflight.as_ref().map(|cs| {
            cs.iter()
                .map(|c| Check {
                    subject: c.subject.clone(),
                    severity: severity_name(c.severity).to_string(),
                    code: c.code.map(|c| c.as_str().to_string()),
                    message: c.message.clone(),
                    fix: c.fix.clone().filter(|f| !f.is_empty()),
                })
                .collect()
        });
        VmView {
            name: entry.vm.clone(),
            label: info.name.clone(),
            page: String::new(),
            state: info.state.to_string(),
            disks,
            guest_agent,
            checks,
            seen: entry.seen,
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
    state: &Arc<Service>,
    form: &CredentialsForm,
    error: Option<&ServiceError>,
    done: Option<&str>,
) -> Response {
    let agents: Vec<Agent> = or_page!(op, state.agents(&op.principal).await);
    // Credentials are issued for the vaults the operator may register hosts with.
    let vaults: Vec<Vault> = or_page!(op, state.vaults(&op.principal).await)
        .into_iter()
        .filter(|v| on_vault(state, op, v).allows(Permission::IssueAgentCredentials))
        .collect();
    let may_register = !vaults.is_empty() || op.can.allows(Permission::CreateVault);
    let mut hosts: Vec<(&Agent, Vec<VmView>)> = agents
        .iter()
        .map(|a| (a, a.vms.iter().map(VmView::of).collect()))
        .collect();
    // Each VM's protection: the vault whose item protects it, and the item's state.
    let reported = or_page!(op, state.vm_protection(&op.principal).await);
    let mut protected: HashMap<(String, String), (String, String)> = reported
        .into_iter()
        .filter_map(|v| {
            let p = v.protected_by?;
            Some(((v.agent_id, v.vm), (p.vault, wire_name(&p.state))))
        })
        .collect();
    for (a, vms) in &mut hosts {
        for v in vms.iter_mut() {
            v.protection = protected.remove(&(a.id.clone(), v.name.clone()));
            v.page = crate::urls::vm_url(&a.id, &v.name);
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
            @if may_register { a.button.primary href="#register" { "Register a new host" } }
        }
        @if agents.is_empty() {
            (empty("No host agent is registered yet. Download vault credentials for a host, put them in its agent.toml and start its agent: it appears here with its VMs and their preflight checks.",
                may_register.then_some(("Register a new host", "#register"))))
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
                            td {
                                (a.location)
                                @if a.vaults_in_location == 0 { " " span.badge.warn title="No vault is in this location" { "no vault" } }
                            }
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
        @if may_register || error.is_some() { (register_section(op, &vaults, form, error)) }
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

fn host_section(now: Timestamp, a: &Agent, vms: &[VmView], id: &str) -> Markup {
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
            @if a.vaults_in_location == 0 {
                div.alert.warn.no-vault role="status" {
                    "No vault is in location " strong { (a.location) } ": none can protect this host's VMs. Create a vault in "
                    (a.location) ", or, if the location is wrong, register the host again with vault credentials of a vault in its real location."
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
                strong.vm-name { (v.label) }
                span.vm-state { (v.state) }
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
                p { a.vm-page href=(v.page) { "Open the VM's page" } }
                dl.props {
                    dt { "Run state" } dd { (v.state) }
                    dt { "Guest agent" } dd { (v.guest_agent) }
                    dt { "Protection" }
                    dd.protection {
                        @match &v.protection {
                            Some((vault, item_state)) => {
                                "Protected by vault " a href={ "/vaults/" (vault) } { (vault) }
                                " " (badge(item_state)) " · "
                                a href={ "/vaults/" (vault) "/items" } { "Backup items" }
                            }
                            None => {
                                "Not protected. Back it up from "
                                a href=(v.page) { "its page" }
                                ", or from a vault in this host's location: "
                                a href="/vaults" { "Recovery Services vaults" } " → + Backup."
                            }
                        }
                    }
                    dt { "Reported" } dd { (time(Some(v.seen))) }
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
                                    td { (bytes(d.size)) }
                                    td { code.small { (d.image) } }
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
    vaults: &[Vault],
    f: &CredentialsForm,
    error: Option<&ServiceError>,
) -> Markup {
    let field_error = |field: &str| -> Option<String> {
        let e = error?;
        let hit = match field {
            "valid_days" => e.code == ErrorCode::InvalidCredentialsValidity,
            "vault" => e.code.as_str().contains("Vault") || e.code == ErrorCode::NotFound,
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
                                    (v.name) " · " (v.location) " · " (spaced(&wire_name(&v.storage_redundancy)))
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

    /// A host in a location no vault has says so, in its section and in the list.
    #[test]
    fn a_location_without_a_vault_is_a_warning() {
        let agent = |vaults: u32| -> Agent {
            serde_json::from_value(json!({
                "id": "a1", "host": "kvm1", "location": "westeurpe", "version": null,
                "registered": "2026-01-01T12:00:00Z", "lastHeartbeat": null, "online": true,
                "vaultsInLocation": vaults, "vms": []
            }))
            .unwrap()
        };
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let html = host_section(now, &agent(0), &[], "agent-kvm1").into_string();
        assert!(
            html.contains("No vault is in location <strong>westeurpe</strong>"),
            "{html}"
        );
        let html = host_section(now, &agent(2), &[], "agent-kvm1").into_string();
        assert!(!html.contains("No vault is in location"), "{html}");
    }

    #[test]
    fn days_are_numbers_or_the_default() {
        assert_eq!(parse_days(" ").unwrap(), None);
        assert_eq!(parse_days("3").unwrap(), Some(3));
        assert_eq!(
            parse_days("zwei").unwrap_err().code,
            ErrorCode::InvalidCredentialsValidity
        );
    }

    /// A reported VM, as the service answers it.
    fn reported(v: serde_json::Value) -> AgentVm {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn inventory_bodies_are_read() {
        let v = VmView::of(&reported(json!({
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
        })));
        assert_eq!(v.name, "app");
        assert_eq!(v.state, "running");
        assert_eq!(v.disks[0].size, 64 << 20);
        assert_eq!(v.worst(), Some("warning"));
        assert_eq!(v.guest_agent, "not configured");
        let none = VmView::of(&reported(json!({
            "vm": "b",
            "seen": "2026-01-01T12:00:00Z",
            "info": {"name": "b", "uuid": null, "state": "stopped", "disks": [], "guest_agent": {"state": "not-configured"}}
        })));
        assert_eq!(none.worst(), None);
    }

    #[test]
    fn a_vm_with_an_error_is_open_and_says_so() {
        let v = VmView::of(&reported(json!({
            "vm": "db",
            "seen": "2026-01-01T12:00:00Z",
            "info": {"name": "db", "uuid": null, "state": "running", "disks": [],
                "guest_agent": {"state": "responding", "version": "8.2", "can_freeze": true},
                "preflight": [
                    {"subject": "scratch folder", "severity": "error", "code": "scratch-space-missing", "message": "missing", "fix": "create it"}
                ]}
        })));
        let html = vm_details(&v, "agent-kvm1").into_string();
        assert!(html.contains(r#"id="vm-kvm1-db""#), "{html}");
        assert!(html.contains(r#"data-worst="error" open"#), "{html}");
        assert!(html.contains(
            r#"<li class="check" data-severity="error" data-code="scratch-space-missing">"#
        ));
        assert!(html.contains(">ERROR<") && html.contains("create it"));
        assert!(html.contains("responding, version 8.2, can freeze file systems"));
    }
}
