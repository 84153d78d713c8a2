//! Jobs one at a time: taken from the server, run, their progress and end reported;
//! on the agent's stop, the running job drained within its time or cancelled.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tresor_api::agents::{self, Completion};
use tresor_api::jobs::{JobOperation, JobStatus};
use tresor_client::ApiClient;
use tresor_engine::progress::Progress;
use tresor_qemu::QemuProvider;

use super::assignment::{failed, Assignment};
use super::backup_job::run_backup;
use super::config::AgentConfig;
use super::registration::{Backoff, ServerLink};
use super::restore_job::run_restore;

/// How often a running job reports progress (well inside the server's lease).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// How long the agent keeps retrying to report a job's end while it stops.
pub(super) const REPORT_GRACE: Duration = Duration::from_secs(30);

/// The job error code of work the agent's stop cut short.
const SHUTTING_DOWN: &str = "AgentShuttingDown";

/// Takes jobs one at a time until `shutdown`. A server that cannot be reached is
/// tried again after a [`Backoff`] wait, the state file read again each time (see
/// [`ServerLink`]).
pub(super) async fn take_jobs(
    link: Arc<ServerLink>,
    config: Arc<AgentConfig>,
    provider: Arc<QemuProvider>,
    shutdown: &CancellationToken,
) {
    let mut backoff = Backoff::default();
    loop {
        let api = link.api();
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = api.next_job(None) => next,
        };
        let next = match next {
            Ok(next) => next,
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(error = %e, server = %link.server(), retry_in_ms = wait.as_millis() as u64, "cannot take a job from the server");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                if link.reread() {
                    backoff.reset();
                }
                continue;
            }
        };
        backoff.reset();
        // None came within the server's wait.
        let Some(job) = next else { continue };
        if shutdown.is_cancelled() {
            // Taken in the instant the agent was asked to stop: not started.
            let completion = failed(
                SHUTTING_DOWN,
                "the agent was stopping when it received the job; it did not start".into(),
                "run the job again once the agent runs",
            );
            report_end(&api, &job.job_id, &completion, shutdown).await;
            return;
        }
        run_job(&api, &config, provider.clone(), job, shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Runs one job and reports its end. When the agent is asked to stop meanwhile, the
/// job has the drain time to finish; then it is cancelled, and a job that ends
/// cancelled is reported Failed with [`SHUTTING_DOWN`].
async fn run_job(
    api: &Arc<ApiClient>,
    config: &AgentConfig,
    provider: Arc<QemuProvider>,
    job: Assignment,
    shutdown: &CancellationToken,
) {
    tracing::info!(job = %job.job_id, operation = job.operation.as_str(), "job started");
    let progress = Arc::new(Progress::default());
    let reporter = tokio::spawn(report_progress(
        api.clone(),
        job.job_id.clone(),
        progress.clone(),
    ));
    let drain = tokio::spawn(cancel_when_drained(
        shutdown.clone(),
        config.drain_timeout(),
        progress.clone(),
    ));
    let completion = match job.operation {
        JobOperation::Backup => run_backup(api, config, provider, &job, progress.clone()).await,
        JobOperation::Restore => {
            run_restore(api, config, provider.as_ref(), &job, progress.clone()).await
        }
        other => failed(
            "UnsupportedOperation",
            format!("this agent does not run {} jobs", other.as_str()),
            "update the agent",
        ),
    };
    reporter.abort();
    drain.abort();
    // The drain task ended on its own only when it cancelled the job.
    let cut_short = drain.await.is_ok();
    let completion = if cut_short {
        shut_down(completion)
    } else {
        completion
    };
    report_end(api, &job.job_id, &completion, shutdown).await;
    tracing::info!(job = %job.job_id, status = ?completion.status, "job ended");
}

/// Once `shutdown` is cancelled, waits `drain`, then cancels the job.
async fn cancel_when_drained(
    shutdown: CancellationToken,
    drain: Duration,
    progress: Arc<Progress>,
) {
    shutdown.cancelled().await;
    tracing::info!(
        "the agent is stopping: the running job has {} s to finish",
        drain.as_secs()
    );
    tokio::time::sleep(drain).await;
    tracing::warn!("the agent is stopping: cancelling the running job");
    progress.cancel.store(true, Ordering::SeqCst);
}

/// A job's end after the agent's stop cancelled it: Failed with [`SHUTTING_DOWN`]
/// where it ended cancelled. A point it committed, or a failure of its own, stands.
fn shut_down(completion: Completion) -> Completion {
    if completion.status != JobStatus::Cancelled {
        return completion;
    }
    failed(
        SHUTTING_DOWN,
        format!(
            "the agent was stopped, and cancelled the job before it ended ({})",
            completion.warnings.join("; ")
        ),
        "run the job again; to let jobs finish when the agent stops, give it more time (drain_timeout_secs)",
    )
}

/// Reports a job's end, retrying while the server cannot take it: up to 30 times,
/// and for [`REPORT_GRACE`] at most once the agent is stopping.
async fn report_end(
    api: &ApiClient,
    job_id: &str,
    completion: &Completion,
    shutdown: &CancellationToken,
) {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_secs(1);
    for _ in 0..30 {
        let call = api.complete_job(job_id, completion);
        let result = if shutdown.is_cancelled() {
            match tokio::time::timeout_at(started + REPORT_GRACE, call).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            call.await
        };
        match result {
            Ok(_) => return,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "cannot report the job's end yet; retrying");
                let wake = tokio::time::Instant::now() + delay;
                if shutdown.is_cancelled() && wake >= started + REPORT_GRACE {
                    break;
                }
                tokio::time::sleep_until(wake).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                tracing::error!(error = %e, "the server refused the job's end");
                return;
            }
        }
    }
    tracing::error!(job = %job_id, "could not report the job's end; the server ends it when its lease runs out");
}

/// Reports progress every few seconds; sets the cancel flag when the server asks for
/// it.
async fn report_progress(api: Arc<ApiClient>, job_id: String, progress: Arc<Progress>) {
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let (done, total) = progress.snapshot();
        let task = if total > 0 {
            "Transfer data to vault"
        } else {
            "Take snapshot"
        };
        let report = agents::Progress {
            bytes_done: done,
            bytes_total: total,
            task: Some(task.to_string()),
        };
        match api.job_progress(&job_id, &report).await {
            Ok(answer) if answer.cancel => progress.cancel.store(true, Ordering::SeqCst),
            Ok(_) => {}
            Err(e) if e.status() == Some(409) => {
                // The server ended the job (its lease ran out): stop working on it.
                tracing::warn!(error = %e, "the server ended this job; stopping it");
                progress.cancel.store(true, Ordering::SeqCst);
            }
            Err(e) => tracing::warn!(error = %e, "progress report failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::assignment::ended;
    use super::*;

    fn wire(c: &Completion) -> serde_json::Value {
        serde_json::to_value(c).unwrap()
    }

    /// A job the agent's stop cancelled fails with a code; one that completed, or
    /// failed of its own, keeps its end.
    #[test]
    fn a_job_cut_short_by_the_stop_fails_with_agent_shutting_down() {
        let cut = shut_down(ended(
            JobStatus::Cancelled,
            vec!["stopped: cancelled".into()],
        ));
        assert_eq!(cut.status, JobStatus::Failed);
        let error = cut.error.unwrap();
        assert_eq!(error.code, SHUTTING_DOWN);
        assert!(error.message.contains("stopped: cancelled"));
        let done = Completion {
            point_id: Some("p".into()),
            ..ended(JobStatus::Completed, vec![])
        };
        assert_eq!(wire(&shut_down(done.clone())), wire(&done));
        let own = failed("VaultUnreachable", "no".into(), "check");
        assert_eq!(wire(&shut_down(own.clone())), wire(&own));
    }

    /// Ends go out as the server has always read them.
    #[test]
    fn ends_on_the_wire() {
        assert_eq!(
            wire(&failed("VaultUnreachable", "no".into(), "check")),
            json!({
                "status": "Failed",
                "warnings": [],
                "error": { "code": "VaultUnreachable", "message": "no", "recommendation": "check" },
                "result": null,
            })
        );
        let done = Completion {
            point_id: Some("p".into()),
            frozen_ms: Some(12),
            ..ended(JobStatus::CompletedWithWarnings, vec!["w".into()])
        };
        assert_eq!(
            wire(&done),
            json!({
                "status": "CompletedWithWarnings",
                "warnings": ["w"],
                "pointId": "p",
                "frozenMs": 12,
                "result": null,
            })
        );
    }
}
