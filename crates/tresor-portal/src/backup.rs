//! The "+ Backup" wizard of a vault, as in the seed: the backup goal (where the
//! workload runs, what to back up), the backup policy, the virtual machines, and
//! "Enable backup".
//!
//! The steps are plain GET pages (`?step=goal|policy|vms&policy=NAME`) that carry the
//! chosen policy along; only enabling is a POST (with CSRF). VMs come from the
//! service's protectable list; the VMs that cannot be chosen are shown too, greyed
//! out, with the reason (another location, already protected, host agent offline).
//! Enabling calls the service's enable protection once per VM, so each obeys exactly
//! the API's rules; its errors are shown per VM.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;
use tresor_api::inventory::{Severity, VmReport};
use tresor_api::items::{EnableProtection, ProtectionState};
use tresor_api::policies::Policy;
use tresor_api::vaults::Vault;
use tresor_api::ErrorCode;
use tresor_service::{Service, ServiceError, ServiceResult};

use crate::layout::{csrf_field, empty, error_box, notice, spaced, vault_page, with_status};
use crate::policies::summary::{policy_props, retention_summary, schedule_summary};
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::vault_of;

pub fn routes() -> Router<Arc<Service>> {
    Router::new().route("/vaults/{vault}/backup", get(wizard).post(enable))
}

const DEFAULT_POLICY: &str = "DefaultPolicy";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Goal,
    Policy,
    Vms,
}

#[derive(Debug, Default, Deserialize)]
pub struct WizardQuery {
    #[serde(default)]
    step: Option<String>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

fn base(vault: &str) -> String {
    format!("/vaults/{vault}/backup")
}

fn step_link(vault: &str, step: Step, policy: Option<&str>) -> String {
    let name = match step {
        Step::Goal => "goal",
        Step::Policy => "policy",
        Step::Vms => "vms",
    };
    match policy {
        Some(p) => format!("{}?step={name}&policy={}", base(vault), url_encode(p)),
        None => format!("{}?step={name}", base(vault)),
    }
}

/// The wizard's steps; the current one is marked, earlier ones are links back.
fn steps(vault: &str, current: Step, policy: Option<&str>) -> Markup {
    let all = [
        (Step::Goal, "Backup goal"),
        (Step::Policy, "Backup policy"),
        (Step::Vms, "Virtual machines"),
    ];
    let pos = |s: Step| all.iter().position(|(x, _)| *x == s).unwrap_or(0);
    html! {
        ol.steps.backup-steps aria-label="Steps" {
            @for (i, (s, label)) in all.iter().enumerate() {
                @if *s == current {
                    li aria-current="step" { (i + 1) ". " (label) }
                } @else if pos(*s) < pos(current) {
                    li { a href=(step_link(vault, *s, policy)) { (i + 1) ". " (label) } }
                } @else {
                    li { (i + 1) ". " (label) }
                }
            }
        }
    }
}

fn wizard_page(op: &Operator, v: &Vault, body: Markup, error: Option<&ServiceError>) -> Response {
    let body = html! {
        h1 { "Backup" }
        p.muted { "Vault " (v.name) " · location " (v.location) }
        (body)
    };
    with_status(vault_page("Backup", op, &v.name, &[], body), error)
}

async fn wizard(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Query(q): Query<WizardQuery>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let policy = q.policy.as_deref().filter(|p| !p.is_empty());
    match q.step.as_deref() {
        Some("policy") => policy_step(&op, &state, &v, policy, None).await,
        Some("vms") => {
            let name = policy.unwrap_or(DEFAULT_POLICY);
            let done = q.done.as_deref();
            vms_step(
                &op,
                &state,
                &v,
                name,
                &Outcome {
                    done,
                    ..Outcome::default()
                },
            )
            .await
        }
        _ => goal_step(&op, &v, policy),
    }
}

fn goal_step(op: &Operator, v: &Vault, policy: Option<&str>) -> Response {
    let body = html! {
        (steps(&v.name, Step::Goal, policy))
        section.card.backup-step aria-labelledby="goal-h" {
            h2 #goal-h { "Backup goal" }
            form.stack #backup-goal-form method="get" action=(base(&v.name)) {
                input type="hidden" name="step" value="policy";
                @if let Some(p) = policy { input type="hidden" name="policy" value=(p); }
                fieldset #workload {
                    legend { "Where is your workload running?" }
                    div.choices {
                        label.choice for="workload-kvm" {
                            input #workload-kvm type="radio" name="workload" value="kvm" checked;
                            span {
                                strong { "KVM hosts (Tresor agents)" } br;
                                span.small.muted { "QEMU/KVM virtual machines on hosts whose Tresor agent is registered with this server." }
                            }
                        }
                    }
                }
                fieldset #backup-item {
                    legend { "What do you want to back up?" }
                    div.choices {
                        label.choice for="what-vm" {
                            input #what-vm type="radio" name="what" value="vm" checked;
                            span {
                                strong { "Virtual machine" } br;
                                span.small.muted { "All disks of the VM, at one instant; consistent file systems where the guest agent answers." }
                            }
                        }
                    }
                }
                div { button.primary #goal-submit type="submit" { "Backup" } " " a.button href={ "/vaults/" (v.name) } { "Cancel" } }
            }
        }
    };
    wizard_page(op, v, body, None)
}

async fn policy_step(
    op: &Operator,
    state: &Arc<Service>,
    v: &Vault,
    chosen: Option<&str>,
    error: Option<&ServiceError>,
) -> Response {
    let policies: Vec<Policy> = or_page!(op, state.policies(&op.principal, v.name.clone()).await);
    let chosen = chosen
        .filter(|c| {
            policies
                .iter()
                .any(|p| p.policy.name.as_str().eq_ignore_ascii_case(c))
        })
        .or_else(|| {
            policies
                .iter()
                .any(|p| p.policy.name.as_str() == DEFAULT_POLICY)
                .then_some(DEFAULT_POLICY)
        })
        .or_else(|| policies.first().map(|p| p.policy.name.as_str()))
        .map(str::to_string);
    let create = format!(
        "/vaults/{}/policies/new?return={}",
        v.name,
        url_encode(&format!("{}?step=vms", base(&v.name)))
    );
    let body = html! {
        (steps(&v.name, Step::Policy, chosen.as_deref()))
        @if let Some(e) = error { (error_box(e)) }
        section.card.backup-step aria-labelledby="policy-h" {
            h2 #policy-h { "Backup policy" }
            @if policies.is_empty() {
                (empty("This vault has no backup policy yet.", Some(("Create a new policy", &create))))
            } @else {
                form.stack.backup-wide #backup-policy-form method="get" action=(base(&v.name)) {
                    input type="hidden" name="step" value="vms";
                    fieldset #policy {
                        legend { "Choose a backup policy" }
                        div.choices {
                            @for p in &policies {
                                @let name = p.policy.name.as_str();
                                label.choice.backup-policy for={ "policy-" (name) } {
                                    input type="radio" id={ "policy-" (name) } name="policy" value=(name)
                                        checked[chosen.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(name))];
                                    span.backup-policy-body {
                                        span {
                                            strong { (name) }
                                            @if name == DEFAULT_POLICY { " " span.badge.plain { "Default" } }
                                            " " span.small.muted { "· " (p.protected_items) " protected items" }
                                        }
                                        (policy_props(&p.policy))
                                    }
                                }
                            }
                        }
                    }
                    p { a #create-policy href=(create) { "Create a new policy" } }
                    div {
                        button.primary #policy-submit type="submit" { "Next" }
                        " " a.button href=(step_link(&v.name, Step::Goal, chosen.as_deref())) { "Back" }
                    }
                }
            }
        }
    };
    wizard_page(op, v, body, error)
}

/// A VM as the wizard lists it.
#[derive(Debug, Clone)]
struct VmChoice {
    /// `agentId/vm`, the check box's value.
    key: String,
    agent_id: String,
    vm: String,
    name: String,
    host: String,
    location: String,
    info: VmReport,
    /// Why it cannot be chosen; `None` when it can.
    reason: Option<String>,
}

/// Every VM the agents reported: the service's protectable ones (those of an offline
/// agent greyed out), then those of other locations and those already protected.
async fn vm_choices(
    state: &Arc<Service>,
    op: &Operator,
    v: &Vault,
) -> ServiceResult<Vec<VmChoice>> {
    let protectable = state.protectable_vms(&op.principal, v.name.clone()).await?;
    let mut out: Vec<VmChoice> = protectable
        .into_iter()
        .map(|p| VmChoice {
            key: format!("{}/{}", p.agent_id, p.vm),
            reason: (!p.agent_online).then(|| "the host agent is offline".to_string()),
            agent_id: p.agent_id,
            vm: p.vm,
            name: p.name,
            host: p.host,
            location: p.location,
            info: p.info,
        })
        .collect();
    let known: HashSet<String> = out.iter().map(|c| c.key.clone()).collect();
    for vm in state.vm_protection(&op.principal).await? {
        let key = format!("{}/{}", vm.agent_id, vm.vm);
        if known.contains(&key) {
            continue;
        }
        let reason = if vm.location != v.location {
            format!(
                "in location {}; this vault is in {}",
                vm.location, v.location
            )
        } else if let Some(p) = &vm.protected_by {
            if p.state == ProtectionState::ProtectionStopped {
                format!(
                    "already protected by vault {} (protection stopped, data kept)",
                    p.vault
                )
            } else {
                format!("already protected by vault {}", p.vault)
            }
        } else {
            continue;
        };
        out.push(VmChoice {
            key,
            agent_id: vm.agent_id,
            name: vm.info.info.name.clone(),
            vm: vm.vm,
            host: vm.host,
            location: vm.location,
            info: vm.info,
            reason: Some(reason),
        });
    }
    out.sort_by(|a, b| {
        (a.reason.is_some(), &a.host, &a.name).cmp(&(b.reason.is_some(), &b.host, &b.name))
    });
    Ok(out)
}

/// The worst severity of a VM's preflight checks and the findings worth reading.
fn preflight(info: &VmReport) -> Markup {
    let Some(checks) = &info.preflight else {
        return html! { span.muted { "Not reported" } };
    };
    let worst = checks
        .iter()
        .map(|c| c.severity)
        .max()
        .unwrap_or(Severity::Ok);
    let (class, text) = match worst {
        Severity::Error => ("bad", "Error"),
        Severity::Warning => ("warn", "Warning"),
        Severity::Ok => ("good", "OK"),
    };
    let findings: Vec<_> = checks
        .iter()
        .filter(|c| c.severity > Severity::Ok)
        .collect();
    html! {
        span class={ "badge " (class) } data-preflight=(text) { (text) }
        @if !findings.is_empty() {
            details.backup-findings {
                summary { (findings.len()) @if findings.len() == 1 { " finding" } @else { " findings" } }
                ul {
                    @for c in &findings {
                        li {
                            strong { (c.subject) } ": " (c.message)
                            @if let Some(fix) = c.fix.as_deref().filter(|f| !f.is_empty()) { br; span.small { "Fix: " (fix) } }
                            @if let Some(code) = c.code { " " code.small { (code.as_str()) } }
                        }
                    }
                }
            }
        }
    }
}

/// What happened on the last "Enable backup", for the VMs step.
#[derive(Default)]
struct Outcome<'a> {
    done: Option<&'a str>,
    /// The VMs enabled by this submit.
    enabled: Vec<String>,
    /// Per VM key: why it was refused.
    failed: Vec<(String, String, ServiceError)>,
    /// The VM keys ticked.
    chosen: Vec<String>,
    /// An error of the whole form (no VM ticked).
    error: Option<ServiceError>,
}

async fn vms_step(
    op: &Operator,
    state: &Arc<Service>,
    v: &Vault,
    policy_name: &str,
    outcome: &Outcome<'_>,
) -> Response {
    let policy = match state
        .policy(&op.principal, v.name.clone(), policy_name.to_string())
        .await
    {
        Ok(p) => p,
        Err(e) => return policy_step(op, state, v, None, Some(&e)).await,
    };
    let vms = or_page!(op, vm_choices(state, op, v).await);
    let pname = policy.policy.name.to_string();
    let selectable = vms.iter().filter(|c| c.reason.is_none()).count();
    let status_error = outcome
        .error
        .as_ref()
        .or_else(|| outcome.failed.first().map(|(_, _, e)| e));
    let body = html! {
        (steps(&v.name, Step::Vms, Some(&pname)))
        @if let Some(d) = outcome.done { (notice(d)) }
        @if !outcome.enabled.is_empty() {
            (notice(&format!("Backup enabled for {}.", outcome.enabled.join(", "))))
        }
        @if let Some(e) = &outcome.error { (error_box(e)) }
        @if !outcome.failed.is_empty() {
            div.alert.bad #enable-errors role="alert" {
                p { strong { "Backup could not be enabled for " (outcome.failed.len()) @if outcome.failed.len() == 1 { " VM" } @else { " VMs" } "." } }
                ul {
                    @for (key, label, e) in &outcome.failed {
                        @let label = vms.iter().find(|c| c.key == *key).map(|c| format!("{} on {}", c.name, c.host)).unwrap_or_else(|| label.clone());
                        li { strong { (label) } ": " (e.message) " (code " code { (e.code) } ")"
                            @if !e.recommendation.is_empty() { ". What to do: " (e.recommendation) } }
                    }
                }
            }
        }
        section.card.backup-chosen aria-labelledby="chosen-h" {
            h2 #chosen-h { "Backup policy: " (pname) }
            p.small.muted { (schedule_summary(&policy.policy)) " · " (retention_summary(&policy.policy)) " · "
                a href=(step_link(&v.name, Step::Policy, Some(&pname))) { "Change" } }
        }
        section.card.backup-step aria-labelledby="vms-h" {
            h2 #vms-h { "Virtual machines" }
            p.muted { "Choose the VMs to protect with policy " (pname) ". Only VMs whose host agent is in location "
                strong { (v.location) } " and that no vault protects yet can be chosen. Enabling creates no recovery point: the first backup runs at the policy's next scheduled time, or use Back up now." }
            @if vms.is_empty() {
                (empty("No host agent has reported a VM yet. Register a Tresor agent on a KVM host with this vault's credentials; its VMs appear here.", Some(("Host agents", "/agents"))))
            } @else {
                form #backup-vms-form method="post" action=(base(&v.name)) {
                    (csrf_field(op))
                    input type="hidden" name="policy" value=(pname);
                    table #backup-vms {
                        caption.sr-only { "Virtual machines reported by host agents" }
                        thead { tr {
                            th scope="col" { span.sr-only { "Select" } }
                            th scope="col" { "VM" }
                            th scope="col" { "Host" }
                            th scope="col" { "State" }
                            th scope="col" { "Disks" }
                            th scope="col" { "Preflight" }
                            th scope="col" { "Note" }
                        } }
                        tbody {
                            @for (i, c) in vms.iter().enumerate() {
                                @let id = format!("vm-{i}");
                                @let failed = outcome.failed.iter().find(|(k, _, _)| *k == c.key);
                                @let disks = c.info.info.disks.len();
                                @let vm_state = c.info.info.state.to_string();
                                tr.disabled[c.reason.is_some()] data-vm=(c.key) data-host=(c.host) data-vm-name=(c.name) data-agent=(c.agent_id) {
                                    td {
                                        input type="checkbox" id=(id) name="vm" value=(c.key)
                                            disabled[c.reason.is_some()]
                                            checked[c.reason.is_none() && outcome.chosen.contains(&c.key)]
                                            aria-describedby=[c.reason.as_ref().map(|_| format!("{id}-reason")).or(failed.map(|_| format!("{id}-error")))];
                                        label.sr-only for=(id) { "Back up " (c.name) " on " (c.host) }
                                    }
                                    td {
                                        strong { (c.name) }
                                        @if c.name != c.vm { br; span.small.muted { (c.vm) } }
                                    }
                                    td { (c.host) br; span.small.muted { (c.location) } }
                                    td { (spaced(&vm_state)) }
                                    td { (disks) }
                                    td { (preflight(&c.info)) }
                                    td {
                                        @if let Some(r) = &c.reason { span.backup-reason id={ (id) "-reason" } { (r) } }
                                        @if let Some((_, _, e)) = failed {
                                            p.backup-error id={ (id) "-error" } { (e.message) " (" code { (e.code) } ")" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    div.backup-actions {
                        button.primary #enable-backup type="submit" disabled[selectable == 0] { "Enable backup" }
                        " " a.button href=(step_link(&v.name, Step::Policy, Some(&pname))) { "Back" }
                        @if selectable == 0 { span.muted { " No VM can be chosen right now." } }
                    }
                }
            }
        }
    };
    wizard_page(op, v, body, status_error)
}

/// "Enable backup": the service's enable protection, once per ticked VM.
async fn enable(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let field = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if let Some(r) = op.csrf_rejection(&field("csrf")) {
        return r;
    }
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let policy = Some(field("policy")).filter(|p| !p.is_empty());
    let policy_name = policy.clone().unwrap_or_else(|| DEFAULT_POLICY.to_string());
    let chosen: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "vm")
        .map(|(_, v)| v.clone())
        .collect();
    if chosen.is_empty() {
        let outcome = Outcome {
            error: Some(ServiceError::new(
                ErrorCode::NoVmSelected,
                "No virtual machine was chosen.",
                "tick the VMs to protect with this policy, then Enable backup",
            )),
            ..Outcome::default()
        };
        return vms_step(&op, &state, &v, &policy_name, &outcome).await;
    }
    let mut outcome = Outcome {
        chosen: chosen.clone(),
        ..Outcome::default()
    };
    for key in &chosen {
        let (host, vm) = key.split_once('/').unwrap_or(("", key.as_str()));
        let req = EnableProtection {
            host: host.to_string(),
            vm: vm.to_string(),
            policy: policy.clone(),
            excluded_disks: Vec::new(),
        };
        match state
            .enable_protection(&op.principal, v.name.clone(), req)
            .await
        {
            Ok(item) => outcome
                .enabled
                .push(format!("{} on {}", item.vm_name, item.host)),
            Err(e) => outcome.failed.push((key.clone(), vm.to_string(), e)),
        }
    }
    if outcome.failed.is_empty() {
        let done = format!(
            "Backup enabled for {} with policy {policy_name}. The first backup runs at the policy's next scheduled time; use Back up now to run it at once.",
            outcome.enabled.join(", ")
        );
        return Redirect::to(&format!(
            "/vaults/{}/items?done={}",
            v.name,
            url_encode(&done)
        ))
        .into_response();
    }
    vms_step(&op, &state, &v, &policy_name, &outcome).await
}
