//! A VM's own page (Host agents → a VM): what its agent reports of it (name, UUID,
//! provider, state, disks, firmware, guest agent, NICs, preflight checks) and its
//! protection. Protected: its vault and policy, last backup, newest recovery points,
//! and "Back up now" / "Restore" (the item page's forms). Not protected: "Back up",
//! a vault of the VM's location and one of its policies, posted to the service's
//! enable protection, as the seed's "enable backup from the VM's settings".
//!
//! One service read (`Service::vm_page`) answers the page; the buttons shown are
//! those `Service::permissions` allows on the protecting vault, and the vaults offered
//! are those the service says the caller may enable protection in.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;
use tresor_api::inventory::{FirmwareKind, VmProviderKind, VmReport};
use tresor_api::items::{EnableProtection, ProtectionState};
use tresor_api::ErrorCode;
use tresor_service::usecases::vm_page::{ProtectedVm, VaultOffer, VmPage, VmProtection};
use tresor_service::{Service, ServiceError};

use crate::layout::{
    badge, bytes, csrf_field, empty, error_box, notice, page, redirect_done, time, wire_name,
    with_status, Done,
};
use crate::permissions::{on_vault_named, Permission};
use crate::session::Operator;
use crate::urls::{url_encode, vm_url};
use crate::vm_words::{guest_agent_text, severity, severity_name};

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/agents/{agent}/vms/{vm}", get(show))
        .route("/agents/{agent}/vms/{vm}/protect", post(protect))
}

/// "Back up", as typed: `target` is `VAULT/POLICY` (vault names hold no `/`).
#[derive(Debug, Default, Deserialize)]
pub struct ProtectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    target: String,
}

async fn show(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((agent, vm)): Path<(String, String)>,
    Query(q): Query<Done>,
) -> Response {
    let p = or_page!(&op, state.vm_page(&op.principal, agent, vm).await);
    render(&op, &state, &p, q.done.as_deref(), None, "")
}

async fn protect(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((agent, vm)): Path<(String, String)>,
    Form(f): Form<ProtectForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    let p = or_page!(&op, state.vm_page(&op.principal, agent, vm).await);
    let Some((vault, policy)) = f
        .target
        .split_once('/')
        .filter(|(v, p)| !v.trim().is_empty() && !p.trim().is_empty())
    else {
        let e = ServiceError::new(
            ErrorCode::InvalidFormValue,
            "No vault and backup policy were chosen.",
            "choose a vault and one of its policies in the list, then Back up",
        );
        return render(&op, &state, &p, None, Some(&e), &f.target);
    };
    let req = EnableProtection {
        host: p.agent_id.clone(),
        vm: p.vm.clone(),
        policy: Some(policy.trim().to_string()),
        excluded_disks: Vec::new(),
    };
    match state
        .enable_protection(&op.principal, vault.trim().to_string(), req)
        .await
    {
        Ok(item) => redirect_done(
            &vm_url(&p.agent_id, &p.vm),
            &format!(
                "Backup enabled: vault {}, policy {}. The first backup runs at the policy's next scheduled time; Back up now runs it at once.",
                vault.trim(),
                item.policy.as_deref().unwrap_or(policy.trim())
            ),
        ),
        Err(e) => render(&op, &state, &p, None, Some(&e), &f.target),
    }
}

fn render(
    op: &Operator,
    state: &Service,
    p: &VmPage,
    done: Option<&str>,
    error: Option<&ServiceError>,
    chosen: &str,
) -> Response {
    let info = &p.report.info;
    let body = html! {
        h1 { (info.name) }
        p.muted { "Virtual machine · host " (p.host) " · location " (p.location) }
        @if let Some(d) = done { (notice(d)) }
        @if let Some(e) = error { (error_box(e)) }
        @if !p.agent_online {
            div.alert.warn role="status" {
                "The host agent has not been heard from for more than 2 minutes: backups of this VM wait until it is back, and backup cannot be enabled until then."
            }
        }
        section.card #vm-backup aria-labelledby="vm-backup-h" {
            h2 #vm-backup-h { "Backup" }
            @match &p.protection {
                VmProtection::Protected(pv) => (protected(state, op, pv)),
                VmProtection::ByUnreadableVault => {
                    p #vm-protection data-state="hidden" { "Protected by a vault you may not read." }
                }
                VmProtection::Unprotected { offers } => (unprotected(op, p, offers, chosen)),
            }
        }
        div.cards {
            section.card aria-labelledby="vm-facts-h" {
                h2 #vm-facts-h { "Details" }
                (facts(p))
            }
        }
        (disks(&p.report))
        (nics(&p.report))
        (checks(&p.report))
    };
    let crumbs = [("Host agents", "/agents")];
    with_status(page(&info.name, Some(op), &crumbs, body), error)
}

fn facts(p: &VmPage) -> Markup {
    let info = &p.report.info;
    let provider = match info.provider {
        VmProviderKind::Libvirt => "libvirt domain",
        VmProviderKind::Qemu => "QEMU process (QMP socket)",
    };
    html! {
        dl.props #vm-details data-provider=(wire_name(&info.provider)) {
            dt { "Name" } dd { (info.name) }
            dt { "UUID" } dd { @match &info.uuid { Some(u) => code { (u) }, None => span.muted { "not reported" } } }
            @if info.uuid.as_deref() != Some(p.vm.as_str()) && p.vm != info.name {
                dt { "Id on the host" } dd { code { (p.vm) } }
            }
            dt { "Provider" } dd { (provider) }
            dt { "Run state" } dd { (info.state.to_string()) }
            @if let Some(persistent) = info.persistent {
                dt { "Definition" } dd { @if persistent { "persistent (defined)" } @else { "transient" } }
            }
            dt { "Firmware" } dd {
                @match &info.firmware {
                    None => span.muted { "not reported" },
                    Some(f) => {
                        @match f.kind { FirmwareKind::Bios => "BIOS", FirmwareKind::Uefi => "UEFI" }
                        @if f.secure_boot { ", Secure Boot" }
                        @if let Some(nvram) = &f.nvram { br; span.small { "NVRAM " code { (nvram) } } }
                    }
                }
            }
            @if let Some(t) = &info.tpm {
                dt { "TPM" } dd { (t.model.as_deref().unwrap_or("TPM")) " (" (t.backend) @if let Some(v) = &t.version { " " (v) } ")" }
            }
            @if let Some(n) = info.vcpus { dt { "vCPUs" } dd { (n) } }
            @if let Some(m) = info.memory_bytes { dt { "Memory" } dd { (bytes(m)) } }
            dt { "Guest agent" } dd { (guest_agent_text(&info.guest_agent)) }
            dt { "Host" } dd { (p.host) " " (badge(if p.agent_online { "Online" } else { "Offline" })) }
            dt { "Reported" } dd { (time(Some(p.seen))) }
        }
    }
}

/// A protected VM: its vault, policy, last backup, newest points and what the caller
/// may do with them.
fn protected(state: &Service, op: &Operator, pv: &ProtectedVm) -> Markup {
    let i = &pv.item;
    let can = on_vault_named(state, op, &pv.resource_group, &pv.vault);
    let vault_url = format!("/vaults/{}", url_encode(&pv.vault));
    let item_url = format!("{vault_url}/items/{}", url_encode(&i.id));
    let deleted = i.protection_state == ProtectionState::SoftDeleted;
    let may_back_up =
        can.allows(Permission::BackupNow) && i.protection_state.can_back_up_now().is_ok();
    let may_restore = can.allows(Permission::Restore) && !deleted;
    html! {
        p #vm-protection data-state=(wire_name(&i.protection_state)) {
            "Protected by vault " a href=(vault_url) { (pv.vault) } " " (badge(&wire_name(&i.protection_state)))
        }
        div.toolbar {
            @if may_back_up { a.button.primary #vm-backup-now href={ (item_url) "/backup" } { "Back up now" } }
            @if may_restore && !pv.points.is_empty() { a.button #vm-restore href={ (item_url) "/restore" } { "Restore" } }
            span.grow {}
            a #vm-item href=(item_url) { "Backup item" }
        }
        dl.props #vm-item-details {
            dt { "Vault" } dd { (pv.vault) }
            dt { "Backup policy" } dd { @match &i.policy { Some(p) => (p), None => span.muted { "None" } } }
            dt { "Last backup" } dd #vm-last-backup { (time(i.last_backup_time)) }
            @if deleted { dt { "Purged" } dd { (time(i.delete_at)) } }
        }
        h3 { "Recovery points" }
        @if pv.points.is_empty() {
            p.muted #vm-no-points { "No recovery point yet: the first backup runs at the policy's next scheduled time, or Back up now." }
        } @else {
            table #vm-points {
                caption.sr-only { "Newest recovery points" }
                thead { tr { th scope="col" { "Time" } th scope="col" { "Consistency" } th scope="col" { "Kept until" } th scope="col" { span.sr-only { "Actions" } } } }
                tbody {
                    @for pt in &pv.points {
                        tr data-point=(pt.id) {
                            td { a href={ (item_url) "#point-" (pt.id) } { (time(Some(pt.time))) } }
                            td { (badge(&pt.consistency)) }
                            td { (time(pt.expiry)) }
                            td.actions {
                                @if may_restore && pt.delete_at.is_none() {
                                    a href={ (item_url) "/restore?point=" (url_encode(&pt.id)) } { "Restore" }
                                }
                            }
                        }
                    }
                }
            }
            @if pv.point_count > pv.points.len() {
                p.small { a href={ (item_url) "#points-h" } { "All " (pv.point_count) " recovery points" } }
            }
        }
    }
}

/// A VM no vault protects: "Back up" with the vaults (and their policies) the
/// caller may protect it in.
fn unprotected(op: &Operator, p: &VmPage, offers: &[VaultOffer], chosen: &str) -> Markup {
    let default = offers
        .iter()
        .find_map(|o| o.policies.first().map(|p| format!("{}/{p}", o.vault)))
        .unwrap_or_default();
    let chosen = if chosen.is_empty() {
        default
    } else {
        chosen.to_string()
    };
    let any_policy = offers.iter().any(|o| !o.policies.is_empty());
    html! {
        p #vm-protection data-state="NotProtected" { "Not protected: no vault backs this VM up." }
        @if offers.is_empty() {
            (empty(&format!("No vault in location {} lets you enable backup. A vault protects the VMs of its own location.", p.location),
                op.can.allows(Permission::CreateVault).then_some(("+ Add a vault", "/vaults/new"))))
        } @else {
            form.stack #vm-backup-form method="post" action={ (vm_url(&p.agent_id, &p.vm)) "/protect" } {
                (csrf_field(op))
                div.field {
                    label for="vm-backup-target" { "Vault and backup policy" }
                    select #vm-backup-target name="target" aria-describedby="vm-backup-hint" {
                        @for o in offers {
                            optgroup label={ "Vault " (o.vault) } {
                                @for pol in &o.policies {
                                    @let value = format!("{}/{pol}", o.vault);
                                    option value=(value) selected[value == chosen] { (o.vault) " · " (pol) }
                                }
                                @if o.policies.is_empty() { option disabled { (o.vault) ": no policy yet" } }
                            }
                        }
                    }
                    p.hint #vm-backup-hint { "Vaults in location " (p.location) " where you may enable backup. Enabling creates no recovery point: the first backup follows the policy's schedule, or use Back up now." }
                }
                div { button.primary #vm-backup-submit type="submit" disabled[!any_policy] { "Back up" } }
            }
        }
    }
}

fn disks(r: &VmReport) -> Markup {
    html! {
        h2 #vm-disks-h { "Disks" }
        @if r.info.disks.is_empty() {
            p.muted { "No disk reported." }
        } @else {
            table #vm-disks {
                caption.sr-only { "Disks" }
                thead { tr { th scope="col" { "Disk" } th scope="col" { "Bus" } th scope="col" { "Format" } th scope="col" { "Size" } th scope="col" { "Source" } } }
                tbody {
                    @for d in &r.info.disks {
                        tr data-disk=(d.name) {
                            td { (d.name) }
                            td { (d.bus.as_deref().unwrap_or("–")) }
                            td { (d.format) }
                            td { @if d.virtual_size > 0 { (bytes(d.virtual_size)) } @else { span.muted { "unknown" } } }
                            td { code.small { (d.image) } }
                        }
                    }
                }
            }
        }
    }
}

fn nics(r: &VmReport) -> Markup {
    html! {
        @if !r.info.nics.is_empty() {
            h2 { "Network interfaces" }
            table #vm-nics {
                caption.sr-only { "Network interfaces" }
                thead { tr { th scope="col" { "Kind" } th scope="col" { "MAC" } th scope="col" { "Model" } th scope="col" { "Source" } } }
                tbody {
                    @for n in &r.info.nics {
                        tr {
                            td { (n.kind) }
                            td { code.small { (n.mac.as_deref().unwrap_or("–")) } }
                            td { (n.model.as_deref().unwrap_or("–")) }
                            td { (n.source.as_deref().unwrap_or("–")) }
                        }
                    }
                }
            }
        }
    }
}

fn checks(r: &VmReport) -> Markup {
    html! {
        h2 { "Preflight checks" }
        @match &r.preflight {
            None => p.muted { "The agent has not reported preflight checks for this VM." },
            Some(cs) if cs.is_empty() => p.muted { "No checks reported." },
            Some(cs) => {
                ul.preflight #vm-preflight aria-label="Preflight checks" {
                    @for c in cs {
                        @let sev = severity_name(c.severity);
                        li.check data-severity=(sev) data-code=[c.code.map(|c| c.as_str())] {
                            span.check-badge { (badge(severity(sev).1)) }
                            div.check-text {
                                p.check-head { span.subject { (c.subject) } @if let Some(code) = c.code { " " code.code { (code.as_str()) } } }
                                p.message { (c.message) }
                                @if let Some(fix) = c.fix.as_deref().filter(|f| !f.is_empty()) { p.fix { strong { "Fix: " } (fix) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
