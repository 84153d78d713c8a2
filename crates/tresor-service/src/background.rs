//! The service's own work, in loops until cancelled: the scheduler, the lease
//! sweeper (and jobs no agent took in time), retention, the purge of soft-deleted data, replication and garbage
//! collection.
//!
//! Each step runs off the async threads and logs its failure rather than stopping
//! (one vault's trouble is that vault's: the steps handle vaults and items one by
//! one). Cancelling the token ends every loop between steps; a step under way is
//! finished, never cut off half-way.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use tokio_util::sync::CancellationToken;

use crate::error::ServiceResult;
use crate::state::Service;
use crate::{garbage, jobs, replication, scheduler, soft_delete};

/// Starts the loops; they end when `stop` is cancelled.
pub fn start(service: Arc<Service>, stop: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        replicator(service.clone(), stop.clone()),
        every(
            service.clone(),
            stop.clone(),
            Duration::from_secs(15),
            "scheduler",
            |s| scheduler::tick(s, s.now()).map(|_| ()),
        ),
        every(
            service.clone(),
            stop.clone(),
            Duration::from_secs(10),
            "leases",
            |s| {
                jobs::sweep_leases(s)?;
                jobs::sweep_unstarted(s, jobs::START_TIMEOUT).map(|_| ())
            },
        ),
        every(
            service.clone(),
            stop.clone(),
            Duration::from_secs(3600),
            "retention",
            |s| scheduler::retention(s).map(|_| ()),
        ),
        every(
            service.clone(),
            stop.clone(),
            Duration::from_secs(3600),
            "soft-delete purge",
            |s| soft_delete::purge_due(s).map(|_| ()),
        ),
        every(service, stop, Duration::from_secs(24 * 3600), "gc", |s| {
            // The first tick fires at once; collect only after a day of uptime.
            if s.store.get_setting("last_gc")?.is_some_and(|t| {
                t.parse::<jiff::Timestamp>()
                    .is_ok_and(|t| s.now() - SignedDuration::from_hours(23) < t)
            }) {
                return Ok(());
            }
            garbage::collect_all(s)?;
            s.store.set_setting("last_gc", &s.now().to_string())?;
            Ok(())
        }),
    ]
}

/// Runs one step off the async threads and logs how it ended.
async fn run_step<T: Send + 'static>(
    service: &Arc<Service>,
    name: &'static str,
    step: impl FnOnce(&Service) -> ServiceResult<T> + Send + 'static,
) {
    let s = service.clone();
    match tokio::task::spawn_blocking(move || step(&s)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(loop_name = name, error = %e, "background step failed"),
        Err(e) => tracing::error!(loop_name = name, error = %e, "background step panicked"),
    }
}

fn every(
    service: Arc<Service>,
    stop: CancellationToken,
    period: Duration,
    name: &'static str,
    step: fn(&Service) -> ServiceResult<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            run_step(&service, name, step).await;
        }
    })
}

fn replicator(service: Arc<Service>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            run_step(&service, "replication", replication::run_all).await;
            // A finished backup wakes the loop at once; otherwise it looks again
            // after a while (retries after failures wait their own backoff).
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = service.replication_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    })
}
