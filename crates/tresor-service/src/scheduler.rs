//! The scheduler: turns policies' schedules into backup jobs.
//!
//! Each item remembers the last window it started (`last_window`). A tick looks for
//! windows of the item's schedule in `(last_window, now]`: if there are any, one
//! backup job is made for the newest, and the window is remembered in the same step.
//! So a window runs at most once, however often ticks come or the server restarts,
//! and windows missed while the server was down run once, at start-up. The instants
//! come from the domain model's schedules, exact across daylight-saving changes.
//!
//! Jobs go to the agent of the VM's host; each agent takes one job at a time, so many
//! items due at once queue per host instead of loading one host with all of them.

use jiff::Timestamp;
use tresor_api::jobs::JobParams;
use tresor_api::ErrorCode;
use tresor_domain::JobOperation;

use crate::catalogue::{parse_policy, parse_state};
use crate::error::ServiceResult;
use crate::jobs::{self, BACKUP_TASKS};
use crate::state::Service;

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Jobs started, one per item that had a window due.
    pub started: Vec<String>,
    /// Windows passed over because the item's previous backup was still running.
    pub skipped: usize,
}

pub fn tick(state: &Service, now: Timestamp) -> ServiceResult<Tick> {
    let mut out = Tick::default();
    for item in state.store.list_active_items()? {
        // One item's trouble (a policy that no longer parses, a store error) is logged
        // and passed over; the other items' windows still run.
        if let Err(e) = tick_item(state, now, item.clone(), &mut out) {
            tracing::warn!(item = ?item.vm_name, vault = %item.vault_id, error = %e, "scheduled backup could not start");
        }
    }
    Ok(out)
}

fn tick_item(
    state: &Service,
    now: Timestamp,
    mut item: tresor_metadata::ItemRow,
    out: &mut Tick,
) -> ServiceResult<()> {
    if !parse_state(&item.state).runs_scheduled_backups() {
        return Ok(());
    }
    let Some(policy_id) = &item.policy_id else {
        return Ok(());
    };
    let policy = parse_policy(&state.store.get_policy(policy_id)?)?;
    let from = item.last_window.unwrap_or(item.created);
    let Some(&window) = policy.schedule.occurrences(from, now)?.last() else {
        return Ok(());
    };
    item.last_window = Some(window);
    state.store.update_item(&item)?;
    match jobs::new_job(
        state,
        &item.vault_id,
        Some(&item),
        JobOperation::Backup,
        Some(&item.agent_id),
        JobParams {
            window: Some(window),
            ..JobParams::default()
        },
        &BACKUP_TASKS,
    ) {
        Ok(job) => {
            tracing::info!(item = ?item.vm_name, %window, job = %job.id, "scheduled backup started");
            out.started.push(job.id);
        }
        Err(e) if e.code == ErrorCode::BackupAlreadyInProgress => {
            tracing::warn!(item = ?item.vm_name, %window, "scheduled window passed over: the previous backup still runs");
            out.skipped += 1;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Applies retention to every item (points past their expiry go). An item whose
/// retention fails (its vault's storage away, say) is logged and the others go on.
pub fn retention(state: &Service) -> ServiceResult<usize> {
    let mut n = 0;
    for item in state.store.list_active_items()? {
        match jobs::apply_retention(state, &item) {
            Ok(k) => n += k,
            Err(e) => {
                tracing::warn!(item = ?item.vm_name, vault = %item.vault_id, error = %e, "retention failed for this item")
            }
        }
    }
    Ok(n)
}
