//! The scheduler with a clock in the test's hand: daylight-saving transitions in
//! Europe/Berlin and America/New_York, windows missed while the server was down,
//! restarts, overlapping backups, and leases that run out.

use std::path::Path;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use serde_json::json;
use tresor_domain::{BackupPolicy, PolicyName, Schedule};
use tresor_metadata::{AgentRow, ItemRow, JobFilter, PolicyRow, VaultRow};
use tresor_server::ServerConfig;
use tresor_service::{jobs, scheduler};
use tresor_service::{Clock, Service};

struct HandClock(Mutex<Timestamp>);

impl Clock for HandClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

async fn start(dir: &Path, clock: Arc<HandClock>) -> tresor_server::RunningServer {
    let mut config = ServerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.background = false;
    config.clock = clock;
    tresor_server::start(config).await.unwrap()
}

/// A vault with one item whose policy runs daily at `time` in `zone`, protected
/// since `since`.
fn protect(state: &Service, time: &str, zone: &str, since: Timestamp) -> String {
    let store = state.store();
    store
        .insert_vault(&VaultRow {
            id: "v".into(),
            name: "v".into(),
            resource_group: "rg".into(),
            location: "local".into(),
            redundancy: "LocallyRedundant".into(),
            redundancy_locked: false,
            cross_region_restore: false,
            soft_delete_days: 14,
            soft_delete_always_on: false,
            immutability: "Disabled".into(),
            created: since,
        })
        .unwrap();
    let mut policy = BackupPolicy::default_policy();
    policy.name = PolicyName::parse("Nightly").unwrap();
    policy.schedule = Schedule::daily(time.parse().unwrap(), zone);
    policy.validate().unwrap();
    store
        .insert_policy(&PolicyRow {
            id: "p".into(),
            vault_id: "v".into(),
            name: "Nightly".into(),
            body: serde_json::to_value(&policy).unwrap(),
            created: since,
        })
        .unwrap();
    store
        .insert_agent(&AgentRow {
            id: "a".into(),
            host: "kvm1".into(),
            location: "local".into(),
            credential_hash: "x".into(),
            version: None,
            registered: since,
            last_seen: Some(since),
            vault_id: None,
        })
        .unwrap();
    store
        .insert_item(&ItemRow {
            id: "i".into(),
            vault_id: "v".into(),
            agent_id: "a".into(),
            vm: "web".into(),
            vm_name: "web".into(),
            policy_id: Some("p".into()),
            state: "Protected".into(),
            last_window: Some(since),
            last_backup: None,
            created: since,
            active: true,
            soft_deleted: None,
            delete_at: None,
            excluded_disks: Vec::new(),
        })
        .unwrap();
    "i".into()
}

/// Ticks at `now`; returns the windows of the jobs it started.
fn tick(state: &Service, clock: &HandClock, now: &str) -> Vec<Timestamp> {
    *clock.0.lock() = t(now);
    let out = scheduler::tick(state, t(now)).unwrap();
    out.started
        .iter()
        .map(|id| {
            let job = state.store().get_job(id).unwrap();
            job.body["params"]["window"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// Ends every running job as Completed (as an agent would).
fn complete_all(state: &Service) {
    for mut j in state.store().list_jobs(&JobFilter::default()).unwrap() {
        if !j.is_finished() {
            j.status = "Completed".into();
            state.store().update_job(&j).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berlin_spring_forward_and_fall_back_run_each_day_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(HandClock(Mutex::new(t("2026-03-27T12:00:00Z"))));
    let server = start(dir.path(), clock.clone()).await;
    let s = &server.state;
    protect(s, "02:30", "Europe/Berlin", t("2026-03-27T12:00:00Z"));

    // 02:30 CET = 01:30 UTC.
    assert!(tick(s, &clock, "2026-03-28T01:29:00Z").is_empty());
    assert_eq!(
        tick(s, &clock, "2026-03-28T01:31:00Z"),
        [t("2026-03-28T01:30:00Z")]
    );
    complete_all(s);
    // 29 March: 02:30 does not exist; it runs when the clock jumps to 03:00 CEST (01:00 UTC).
    assert!(tick(s, &clock, "2026-03-29T00:59:00Z").is_empty());
    assert_eq!(
        tick(s, &clock, "2026-03-29T01:00:00Z"),
        [t("2026-03-29T01:00:00Z")]
    );
    assert!(tick(s, &clock, "2026-03-29T01:30:00Z").is_empty());
    complete_all(s);
    // 30 March: 02:30 CEST = 00:30 UTC.
    assert_eq!(
        tick(s, &clock, "2026-03-30T00:31:00Z"),
        [t("2026-03-30T00:30:00Z")]
    );
    complete_all(s);

    // 25 October: 02:30 happens twice (00:30 UTC in CEST, 01:30 UTC in CET): once.
    let mut item = s.store().get_item("i").unwrap();
    item.last_window = Some(t("2026-10-24T12:00:00Z"));
    s.store().update_item(&item).unwrap();
    assert_eq!(
        tick(s, &clock, "2026-10-25T00:31:00Z"),
        [t("2026-10-25T00:30:00Z")]
    );
    complete_all(s);
    assert!(tick(s, &clock, "2026-10-25T01:31:00Z").is_empty());
    assert!(tick(s, &clock, "2026-10-25T23:59:00Z").is_empty());
    // 26 October: 02:30 CET = 01:30 UTC.
    assert_eq!(
        tick(s, &clock, "2026-10-26T01:30:00Z"),
        [t("2026-10-26T01:30:00Z")]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_york_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(HandClock(Mutex::new(t("2026-03-07T12:00:00Z"))));
    let server = start(dir.path(), clock.clone()).await;
    let s = &server.state;
    protect(s, "02:30", "America/New_York", t("2026-03-07T12:00:00Z"));
    // 8 March: 02:00 EST jumps to 03:00 EDT (07:00 UTC); 02:30 runs then.
    assert!(tick(s, &clock, "2026-03-08T06:59:00Z").is_empty());
    assert_eq!(
        tick(s, &clock, "2026-03-08T07:00:00Z"),
        [t("2026-03-08T07:00:00Z")]
    );
    complete_all(s);
    // 9 March: 02:30 EDT = 06:30 UTC.
    assert_eq!(
        tick(s, &clock, "2026-03-09T06:30:00Z"),
        [t("2026-03-09T06:30:00Z")]
    );
    complete_all(s);

    // 1 November at 01:30: it happens at 05:30 UTC (EDT) and 06:30 UTC (EST); once.
    let mut policy = BackupPolicy::default_policy();
    policy.name = PolicyName::parse("Nightly").unwrap();
    policy.schedule = Schedule::daily("01:30".parse().unwrap(), "America/New_York");
    let mut row = s.store().get_policy("p").unwrap();
    row.body = serde_json::to_value(&policy).unwrap();
    s.store().update_policy(&row).unwrap();
    let mut item = s.store().get_item("i").unwrap();
    item.last_window = Some(t("2026-10-31T12:00:00Z"));
    s.store().update_item(&item).unwrap();
    assert_eq!(
        tick(s, &clock, "2026-11-01T05:30:00Z"),
        [t("2026-11-01T05:30:00Z")]
    );
    complete_all(s);
    assert!(tick(s, &clock, "2026-11-01T06:31:00Z").is_empty());
    // 2 November: 01:30 EST = 06:30 UTC.
    assert_eq!(
        tick(s, &clock, "2026-11-02T06:30:00Z"),
        [t("2026-11-02T06:30:00Z")]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_windows_run_once_and_restarts_never_repeat_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(HandClock(Mutex::new(t("2026-06-01T12:00:00Z"))));
    let server = start(dir.path(), clock.clone()).await;
    protect(&server.state, "22:00", "UTC", t("2026-06-01T12:00:00Z"));
    assert_eq!(
        tick(&server.state, &clock, "2026-06-01T22:00:30Z"),
        [t("2026-06-01T22:00:00Z")]
    );
    complete_all(&server.state);
    server.shutdown().await;

    // Down for three days: the windows of 2, 3 and 4 June pass.
    *clock.0.lock() = t("2026-06-05T09:00:00Z");
    let server = start(dir.path(), clock.clone()).await;
    let s = &server.state;
    // On start-up, one backup for the newest missed window, not three.
    assert_eq!(
        tick(s, &clock, "2026-06-05T09:00:00Z"),
        [t("2026-06-04T22:00:00Z")]
    );
    server.shutdown().await;

    // A restart right after: the window is remembered, nothing runs twice.
    let server = start(dir.path(), clock.clone()).await;
    let s = &server.state;
    assert!(tick(s, &clock, "2026-06-05T09:01:00Z").is_empty());

    // A window that comes while the previous backup still runs is passed over.
    *clock.0.lock() = t("2026-06-05T22:00:10Z");
    let out = scheduler::tick(s, t("2026-06-05T22:00:10Z")).unwrap();
    assert!(out.started.is_empty());
    assert_eq!(out.skipped, 1);
    let backups = s
        .store()
        .list_jobs(&JobFilter {
            operation: Some("Backup".into()),
            ..JobFilter::default()
        })
        .unwrap();
    assert_eq!(backups.len(), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_agent_stops_reporting_fails_and_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(HandClock(Mutex::new(t("2026-06-01T12:00:00Z"))));
    let server = start(dir.path(), clock.clone()).await;
    let s = &server.state;
    protect(s, "22:00", "UTC", t("2026-06-01T12:00:00Z"));
    tick(s, &clock, "2026-06-01T22:00:00Z");
    let now = t("2026-06-01T22:00:01Z");
    let job = s
        .store()
        .claim_job("a", now, now + jobs::LEASE)
        .unwrap()
        .unwrap();

    // The server goes down for an hour while the job runs: its lease would be long
    // gone, but a restart gives the agent time to report again.
    server.shutdown().await;
    *clock.0.lock() = t("2026-06-01T23:00:00Z");
    let server = start(dir.path(), clock.clone()).await;
    let s = &server.state;
    assert_eq!(jobs::sweep_leases(s).unwrap(), 0);
    assert_eq!(s.store().get_job(&job.id).unwrap().status, "InProgress");

    // The agent never comes back: the job fails with a code and what to do.
    *clock.0.lock() = t("2026-06-01T23:00:00Z") + jobs::LEASE + SignedDuration::from_secs(1);
    assert_eq!(jobs::sweep_leases(s).unwrap(), 1);
    let failed = s.store().get_job(&job.id).unwrap();
    assert_eq!(failed.status, "Failed");
    assert_eq!(failed.body["error"]["code"], json!("AgentUnreachable"));
    assert!(failed.ended.is_some());
    server.shutdown().await;
}
