//! Benchmark of the vault service's control plane (not a test: it prints figures).
//!
//! `cargo run --release -p tresor-server --example service_bench`
//!
//! 1. One server, 1,000 protected VMs on 10 simulated host agents, policies with
//!    windows spread over the evening in several time zones. A day is played with
//!    the scheduler ticking every minute of the hand clock; the simulated agents take
//!    one job at a time each and finish it after 3 minutes. Printed: windows due and
//!    jobs started, how late the scheduler started them (the tick period bounds it),
//!    how long one tick over 1,000 items takes for real, and how long jobs queued on
//!    their hosts.
//! 2. 100,000 jobs in the catalogue; the job list (newest 100, and filtered by status)
//!    asked 1,000 times each over HTTPS by the real client: p50 and p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tresor_client::{ApiClient, ServerAddress, Transport};
use tresor_domain::{BackupPolicy, PolicyName, Schedule};
use tresor_metadata::{AgentRow, ItemRow, JobRow, PolicyRow, VaultRow};
use tresor_server::ServerConfig;
use tresor_service::scheduler;
use tresor_service::Clock;

struct HandClock(Mutex<Timestamp>);

impl Clock for HandClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let start: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
    let clock = Arc::new(HandClock(Mutex::new(start)));
    let mut config = ServerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.background = false;
    config.clock = clock.clone();
    let server = tresor_server::start(config).await.unwrap();
    let s = server.state.clone();

    // --- 1. a day of schedules for 1,000 VMs on 10 hosts
    s.store()
        .insert_vault(&VaultRow {
            id: "v".into(),
            name: "bench".into(),
            resource_group: "rg".into(),
            location: "local".into(),
            redundancy: "LocallyRedundant".into(),
            redundancy_locked: false,
            cross_region_restore: false,
            soft_delete_days: 14,
            soft_delete_always_on: false,
            immutability: "Disabled".into(),
            created: start,
        })
        .unwrap();
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];
    let times = ["20:00", "21:00", "22:00", "23:00", "23:30"];
    let mut policies = Vec::new();
    for (i, zone) in zones.iter().enumerate() {
        for (j, time) in times.iter().enumerate() {
            let mut p = BackupPolicy::default_policy();
            p.name = PolicyName::parse(&format!("P{i}x{j}")).unwrap();
            p.schedule = Schedule::daily(time.parse().unwrap(), zone);
            let id = format!("p{i}{j}");
            s.store()
                .insert_policy(&PolicyRow {
                    id: id.clone(),
                    vault_id: "v".into(),
                    name: p.name.to_string(),
                    body: serde_json::to_value(&p).unwrap(),
                    created: start,
                })
                .unwrap();
            policies.push(id);
        }
    }
    for a in 0..10 {
        s.store()
            .insert_agent(&AgentRow {
                id: format!("a{a}"),
                host: format!("kvm{a}"),
                location: "local".into(),
                credential_hash: format!("h{a}"),
                version: None,
                registered: start,
                last_seen: Some(start),
                vault_id: None,
            })
            .unwrap();
    }
    for i in 0..1000 {
        s.store()
            .insert_item(&ItemRow {
                id: format!("i{i}"),
                vault_id: "v".into(),
                agent_id: format!("a{}", i % 10),
                vm: format!("vm{i}"),
                vm_name: format!("vm{i}"),
                policy_id: Some(policies[i % policies.len()].clone()),
                state: "Protected".into(),
                last_window: Some(start),
                last_backup: None,
                created: start,
                active: true,
                soft_deleted: None,
                delete_at: None,
                excluded_disks: Vec::new(),
            })
            .unwrap();
    }
    let job_minutes = 3;
    let mut running: Vec<(String, Timestamp)> = Vec::new();
    let mut tick_ms = Vec::new();
    let mut started = 0;
    let mut late_s: Vec<f64> = Vec::new();
    let mut queued_s: Vec<f64> = Vec::new();
    let mut now = start;
    let end = start + SignedDuration::from_hours(24);
    while now < end {
        now += SignedDuration::from_mins(1);
        *clock.0.lock() = now;
        let t = Instant::now();
        let tick = scheduler::tick(&s, now).unwrap();
        tick_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        for id in &tick.started {
            let job = s.store().get_job(id).unwrap();
            let window: Timestamp = job.body["params"]["window"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            late_s.push(job.created.duration_since(window).as_secs_f64());
            started += 1;
        }
        // Agents finish jobs after `job_minutes`, then take the next.
        running.retain(|(id, since)| {
            if now.duration_since(*since) >= SignedDuration::from_mins(job_minutes) {
                let mut j = s.store().get_job(id).unwrap();
                j.status = "Completed".into();
                j.ended = Some(now);
                s.store().update_job(&j).unwrap();
                false
            } else {
                true
            }
        });
        for a in 0..10 {
            let agent = format!("a{a}");
            let busy = s.store().running_jobs_of_agent(&agent).unwrap();
            if busy.is_empty() {
                if let Some(j) = s
                    .store()
                    .claim_job(&agent, now, now + SignedDuration::from_mins(10))
                    .unwrap()
                {
                    let window: Timestamp = j.body["params"]["window"]
                        .as_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    queued_s.push(now.duration_since(window).as_secs_f64());
                    running.push((j.id, now));
                }
            }
        }
    }
    tick_ms.sort_by(f64::total_cmp);
    late_s.sort_by(f64::total_cmp);
    queued_s.sort_by(f64::total_cmp);
    println!("A day of schedules: 1000 protected VMs on 10 hosts, 20 policies (4 time zones), ticks every minute");
    println!("  scheduled backups started: {started} (one per VM and day expected: 1000)");
    println!(
        "  scheduler lateness (window to job): p50 {:.0} s, max {:.0} s (bounded by the tick period, 60 s)",
        percentile(&late_s, 0.5),
        late_s.last().unwrap()
    );
    println!(
        "  one tick over 1000 items: p50 {:.1} ms, max {:.1} ms",
        percentile(&tick_ms, 0.5),
        tick_ms.last().unwrap()
    );
    println!(
        "  queueing on the hosts (window to agent taking it; 100 VMs per host, {job_minutes} min each, one at a time): p50 {:.0} min, max {:.0} min",
        percentile(&queued_s, 0.5) / 60.0,
        queued_s.last().unwrap() / 60.0
    );

    // --- 2. 100,000 jobs, listed over HTTPS
    let t = Instant::now();
    let base: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let statuses = [
        "Completed",
        "Completed",
        "Completed",
        "CompletedWithWarnings",
        "Failed",
    ];
    for n in 0..100_000u32 {
        s.store()
            .insert_job(&JobRow {
                id: format!("bench{n:06}"),
                vault_id: "v".into(),
                item_id: Some(format!("i{}", n % 1000)),
                operation: "Backup".into(),
                status: statuses[n as usize % statuses.len()].into(),
                agent_id: Some(format!("a{}", n % 10)),
                target_agent: Some(format!("a{}", n % 10)),
                created: base + SignedDuration::from_secs(n as i64 * 60),
                started: None,
                ended: Some(base + SignedDuration::from_secs(n as i64 * 60 + 180)),
                lease_until: None,
                body: json!({"vmName": format!("vm{}", n % 1000), "tasks": [], "bytesDone": 1, "bytesTotal": 1}),
            })
            .unwrap();
    }
    println!(
        "Job listing with 100,000 jobs in the catalogue (inserted in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let token = server.new_admin_token.clone().unwrap();
    let addr = ServerAddress::parse(&server.url, &server.fingerprint).unwrap();
    let api = ApiClient::new(
        Transport::new(&addr, None, Duration::from_secs(30)).unwrap(),
        Some(token),
    );
    for (label, path) in [
        ("newest 100", "api/v1/vaults/bench/jobs?limit=100"),
        (
            "Failed, newest 100",
            "api/v1/vaults/bench/jobs?status=Failed&limit=100",
        ),
        (
            "one item's jobs",
            "api/v1/vaults/bench/jobs?item=i7&limit=100",
        ),
    ] {
        let mut ms = Vec::new();
        for _ in 0..1000 {
            let t = Instant::now();
            let v: Value = api.get_json(path).await.unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(!v.as_array().unwrap().is_empty());
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "  GET jobs ({label}), 1000 requests over HTTPS: p50 {:.1} ms, p99 {:.1} ms (target p99 < 50 ms)",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
    }
    drop(api);
    server.shutdown().await;
}
