//! Jobs no agent takes end: a job queued for a host whose agent is gone (or calls an
//! old server address) fails with `AgentDidNotStart` after `jobs::START_TIMEOUT` by
//! the server's clock, naming the host and when it last reported; the item is free
//! for the next backup. A job waiting behind one its agent is running waits on, and
//! the wait starts again after the server was down. The server's clock is in the
//! test's hand (`common::world`).

mod common;

use common::world::{t, world, World, T0};

use jiff::SignedDuration;
use serde_json::Value;
use tresor_api::agents::Progress;
use tresor_service::jobs::{self, START_TIMEOUT};

/// The sweep the server runs every few seconds: leases, then jobs not taken.
async fn sweep(w: &World) -> usize {
    let state = w.server.state.clone();
    tokio::task::spawn_blocking(move || {
        jobs::sweep_leases(&state).unwrap();
        jobs::sweep_unstarted(&state, START_TIMEOUT).unwrap()
    })
    .await
    .unwrap()
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_agent_takes_fails_with_a_code_after_the_timeout() {
    let w = world().await;
    // The host reported at T0, then its agent went away.
    let _gone = w.protected_host("v1", "kvm1").await;
    let job = w.backup_now("v1", "vm1").await;

    w.clock.advance(START_TIMEOUT - minutes(1));
    assert_eq!(sweep(&w).await, 0, "not yet: the agent may still come");
    assert_eq!(w.job("v1", &job).await["status"], "InProgress");

    w.clock.advance(minutes(2));
    assert_eq!(sweep(&w).await, 1);
    let j: Value = w.job("v1", &job).await;
    assert_eq!(j["status"], "Failed", "{j}");
    assert_eq!(j["error"]["code"], "AgentDidNotStart", "{j}");
    let message = j["error"]["message"].as_str().unwrap();
    assert!(message.contains("host kvm1"), "{message}");
    assert!(message.contains("within 30 minutes"), "{message}");
    assert!(
        message.contains(&format!("last reported at {}", t(T0))),
        "{message}"
    );
    assert!(j["error"]["recommendation"]
        .as_str()
        .unwrap()
        .contains("tresor agent check"));
    assert!(j["endTime"].is_string(), "{j}");
    // Once is enough, and the item is free for the next backup.
    assert_eq!(sweep(&w).await, 0);
    let again = w.backup_now("v1", "vm1").await;
    assert_ne!(again, job);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_behind_a_running_one_waits_and_a_server_restart_restarts_the_wait() {
    let w = world().await;
    let id = w.create_vault("v1").await;
    let host = w.register_host("v1", &id, "kvm1", &["vm1", "vm2"]).await;
    w.protect("v1", "kvm1", "vm1").await;
    w.protect("v1", "kvm1", "vm2").await;
    let first = w.backup_now("v1", "vm1").await;
    let second = w.backup_now("v1", "vm2").await;
    let taken = host.next_job().await;
    assert_eq!(taken.job, first);

    // The agent works on the first job for longer than the timeout, reporting
    // progress: the second waits its turn.
    for _ in 0..4 {
        w.clock.advance(minutes(10));
        host.api
            .job_progress(
                &first,
                &Progress {
                    bytes_done: 1,
                    bytes_total: 2,
                    task: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(sweep(&w).await, 0);
    }
    assert_eq!(w.job("v1", &second).await["status"], "InProgress");

    // Then the agent dies: the first job's lease runs out, and the second has
    // waited long enough with no agent busy on anything.
    w.clock.advance(jobs::LEASE + SignedDuration::from_secs(1));
    assert_eq!(sweep(&w).await, 1);
    assert_eq!(
        w.job("v1", &first).await["error"]["code"],
        "AgentUnreachable"
    );
    assert_eq!(
        w.job("v1", &second).await["error"]["code"],
        "AgentDidNotStart"
    );

    // A job queued before the server went down for longer than the timeout waits
    // the full timeout again after its start: the agent had no chance meanwhile.
    let third = w.backup_now("v1", "vm1").await;
    w.clock.advance(minutes(90));
    let w = w.restart().await;
    assert_eq!(sweep(&w).await, 0);
    w.clock.advance(START_TIMEOUT - minutes(1));
    assert_eq!(sweep(&w).await, 0);
    assert_eq!(w.job("v1", &third).await["status"], "InProgress");
    w.clock.advance(minutes(2));
    assert_eq!(sweep(&w).await, 1);
    assert_eq!(
        w.job("v1", &third).await["error"]["code"],
        "AgentDidNotStart"
    );
    w.finish().await;
}
