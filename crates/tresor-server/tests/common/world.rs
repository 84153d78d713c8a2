//! A world for the tests of a vault's data: a real server in this process, its clock
//! in the test's hand; host agents registered over HTTPS; recovery points written
//! through an agent's own data path (its `RemoteBackend` and the engine's backup) from
//! disk images made here, so no VM and no QEMU; and a point restored through the same
//! path, compared byte for byte with the image it was taken from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use rand::{RngCore, SeedableRng};
use serde_json::{json, Value};
use tresor_agent::remote::RemoteBackend;
use tresor_client::{ApiClient, ClientError};
use tresor_engine::backup::{self, BackupRequest, DiskSource};
use tresor_engine::blocksource::RawFile;
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{Manifest, Repository};
use tresor_server::{RunningServer, ServerConfig};
use tresor_service::Clock;

use super::client;

/// The size of every VM's one disk (`vda`): big enough for several packs' worth of
/// chunks, small enough to back up in a blink.
pub const DISK: usize = 6 << 20;

/// The server's time when a world starts (a Saturday, noon UTC).
pub const T0: &str = "2026-01-10T12:00:00Z";

pub fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The server's clock: it stands still until the test moves it.
pub struct HandClock(Mutex<Timestamp>);

impl Clock for HandClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }
}

impl HandClock {
    pub fn set(&self, to: Timestamp) {
        *self.0.lock() = to;
    }

    pub fn advance(&self, by: SignedDuration) -> Timestamp {
        let mut now = self.0.lock();
        *now += by;
        *now
    }

    /// Now in seconds since the Unix epoch, as TOTP counts.
    pub fn unix(&self) -> u64 {
        self.now().as_second().max(0) as u64
    }
}

/// A registered host agent, as an attacker holding its credential has it.
pub struct Host {
    pub api: Arc<ApiClient>,
    pub credential: String,
    /// The vault the agent was registered with (its credentials file's), by name and id.
    pub vault: String,
    pub vault_id: String,
}

/// What a job hands the agent.
pub struct Assignment {
    pub job: String,
    pub vm: String,
    pub passphrase: String,
    pub point_name: String,
}

/// A recovery point the test made, and the bytes of the disk it was taken from.
pub type Point = (String, Vec<u8>);

impl Host {
    pub async fn next_job(&self) -> Assignment {
        let a: Value = self
            .api
            .post_json("api/v1/agent/jobs/next?wait=10", &json!({}))
            .await
            .unwrap();
        Assignment {
            job: a["jobId"].as_str().unwrap().into(),
            vm: a["vm"].as_str().unwrap_or_default().into(),
            passphrase: a["passphrase"].as_str().unwrap().into(),
            point_name: a["pointName"].as_str().unwrap_or_default().into(),
        }
    }

    /// Its repository in its vault, through its own HTTPS data path.
    pub fn repo(&self, passphrase: &str) -> Repository {
        let backend = RemoteBackend::new(
            self.api.clone(),
            tokio::runtime::Handle::current(),
            &self.vault_id,
        );
        tokio::task::block_in_place(|| {
            Repository::open(Arc::new(backend), passphrase.as_bytes()).unwrap()
        })
    }

    /// Reports `job` completed with `point`.
    pub async fn complete(&self, job: &str, point: &str) {
        let _: Value = self
            .api
            .post_json(
                &format!("api/v1/agent/jobs/{job}/complete"),
                &json!({"status": "Completed", "pointId": point}),
            )
            .await
            .unwrap();
    }

    /// Uploads an object (`data`, `index`, `points`...) to its repository.
    pub async fn put(&self, kind: &str, name: &str, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.api
            .put_bytes(&self.object_path(kind, name), bytes)
            .await
    }

    pub fn object_path(&self, kind: &str, name: &str) -> String {
        format!("api/v1/agent/repos/{}/objects/{kind}/{name}", self.vault_id)
    }
}

/// Writes a disk image of `DISK` bytes, half random from `seed`; `changed` overwrites
/// its first 256 KiB (the next day's writes). Its bytes.
pub fn write_disk(path: &Path, seed: u64, changed: bool) -> Vec<u8> {
    let mut data = vec![0u8; DISK];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data[..DISK / 2]);
    if changed {
        data[..256 * 1024].fill(0x42);
    }
    std::fs::write(path, &data).unwrap();
    data
}

/// Backs `image` up as disk `vda` of point `name`, as the agent's backup does.
pub fn back_up(repo: &Repository, name: &str, image: &Path, parent: Option<Manifest>) -> Manifest {
    let source = Arc::new(RawFile::open(image).unwrap());
    let mut req = BackupRequest::new(
        name,
        vec![DiskSource {
            name: "vda".into(),
            source,
            dirty: None,
        }],
    );
    req.parent = parent;
    tokio::task::block_in_place(|| backup::run(repo, req)).unwrap()
}

/// Restores point `point_id`'s disk into `out` through `repo` and asserts that it
/// holds `expected`, byte for byte.
pub fn restores_to(repo: &Repository, point_id: &str, expected: &[u8], out: &Path) {
    tokio::task::block_in_place(|| {
        let point = repo.load_point(point_id).unwrap();
        let file = out.join(point_id);
        restore::run(
            repo,
            RestoreRequest {
                point: &point,
                disk: "vda",
                output: &file,
                format: OutputFormat::Raw,
                overwrite: true,
                progress: None,
                workers: 2,
            },
        )
        .unwrap();
        assert!(
            std::fs::read(&file).unwrap() == expected,
            "point {point_id} restores byte for byte"
        );
    });
}

/// The manifests the repository holds, as the agent lists them, sorted.
pub fn stored_points(repo: &Repository) -> Vec<String> {
    let mut ids = tokio::task::block_in_place(|| repo.point_ids().unwrap());
    ids.sort();
    ids
}

pub fn repo_point(repo: &Repository, id: &str) -> Manifest {
    tokio::task::block_in_place(|| repo.load_point(id).unwrap())
}

/// The seed of a VM's disk: VMs of one host hold different bytes.
fn seed_of(vm: &str) -> u64 {
    vm.bytes()
        .fold(1, |s: u64, b| s.wrapping_mul(31).wrapping_add(u64::from(b)))
}

pub struct World {
    pub server: RunningServer,
    /// The installation's Owner: the token printed at the server's first start.
    pub admin: ApiClient,
    pub dir: tempfile::TempDir,
    pub clock: Arc<HandClock>,
}

/// A server without background loops (the test runs their steps), at `T0`.
pub async fn world() -> World {
    world_with(t(T0), |_| {}).await
}

/// A server without background loops, its clock at `now`, its configuration changed
/// by `configure` before it starts (its limits; its data directory, `config.data_dir`,
/// prepared). A restart starts it with the default configuration.
pub async fn world_with(now: Timestamp, configure: impl FnOnce(&mut ServerConfig)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(HandClock(Mutex::new(now)));
    let server = start(&dir.path().join("data"), clock.clone(), configure).await;
    let admin = client(&server, server.new_admin_token.as_deref());
    World {
        server,
        admin,
        dir,
        clock,
    }
}

async fn start(
    data: &Path,
    clock: Arc<HandClock>,
    configure: impl FnOnce(&mut ServerConfig),
) -> RunningServer {
    let mut config = ServerConfig::new(data);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.background = false;
    config.clock = clock;
    configure(&mut config);
    tresor_server::start(config).await.unwrap()
}

impl World {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The server's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The installation's first admin token (an Owner at `/`).
    pub fn admin_token(&self) -> String {
        self.server.new_admin_token.clone().unwrap()
    }

    /// Creates vault `vault` in resource group `rg`: its id.
    pub async fn create_vault(&self, vault: &str) -> String {
        let v: Value = self
            .admin
            .post_json(
                "api/v1/vaults",
                &json!({"name": vault, "resourceGroup": "rg", "location": "local"}),
            )
            .await
            .unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    /// Registers host `host` with a credentials file of `vault`; it reports its VMs
    /// `vms`, each with one raw disk.
    pub async fn register_host(
        &self,
        vault: &str,
        vault_id: &str,
        host: &str,
        vms: &[&str],
    ) -> Host {
        let creds: Value = self
            .admin
            .post_json(&format!("api/v1/vaults/{vault}/credentials"), &json!({}))
            .await
            .unwrap();
        let reg: Value = client(&self.server, None)
            .post_json(
                "api/v1/agents/register",
                &json!({"secret": creds["secret"], "host": host, "location": "local"}),
            )
            .await
            .unwrap();
        let credential = reg["credential"].as_str().unwrap().to_string();
        let h = Host {
            api: Arc::new(client(&self.server, Some(&credential))),
            credential,
            vault: vault.to_string(),
            vault_id: vault_id.to_string(),
        };
        let reported: Vec<Value> = vms
            .iter()
            .map(|vm| json!({"vm": vm, "info": {"name": vm, "state": "running", "guest_agent": {"state": "not-configured"}, "disks": [
                {"name": "vda", "format": "raw", "image": "/x", "virtual_size": DISK}]}}))
            .collect();
        let _: Value = h
            .api
            .post_json("api/v1/agent/heartbeat", &json!({ "vms": reported }))
            .await
            .unwrap();
        h
    }

    /// Protects `vm` of `host` in `vault` under `DefaultPolicy` (daily at 22:00 UTC,
    /// each point kept 30 days): the item's id.
    pub async fn protect(&self, vault: &str, host: &str, vm: &str) -> String {
        let item: Value = self
            .admin
            .post_json(
                &format!("api/v1/vaults/{vault}/items"),
                &json!({"host": host, "vm": vm}),
            )
            .await
            .unwrap();
        item["id"].as_str().unwrap().to_string()
    }

    /// A vault `vault` in which host `host` protects its VM `vm1`.
    pub async fn protected_host(&self, vault: &str, host: &str) -> Host {
        let id = self.create_vault(vault).await;
        let h = self.register_host(vault, &id, host, &["vm1"]).await;
        self.protect(vault, host, "vm1").await;
        h
    }

    /// Starts "back up now" of `vm`, a minute after the last step: the job's id.
    /// (The minute keeps a new job's start after the points before it, as a running
    /// clock does: the server takes a point no older than its job for the job's own.)
    pub async fn backup_now(&self, vault: &str, vm: &str) -> String {
        self.clock.advance(SignedDuration::from_mins(1));
        let j: Value = self
            .admin
            .post_json(
                &format!("api/v1/vaults/{vault}/items/{vm}/backup"),
                &json!({}),
            )
            .await
            .unwrap();
        j["id"].as_str().unwrap().to_string()
    }

    /// The disk image of `vm` of `host`'s vault.
    fn image(&self, host: &Host, vm: &str) -> PathBuf {
        self.dir.path().join(format!("{}-{vm}.raw", host.vault))
    }

    /// The agent's side of its next job, a backup: the VM's disk (`changed` or not)
    /// backed up on top of `parent` and the job completed. The job must end
    /// Completed.
    pub async fn run_backup(
        &self,
        host: &Host,
        changed: bool,
        parent: Option<Manifest>,
    ) -> (Assignment, Manifest, Vec<u8>) {
        let a = host.next_job().await;
        let data = write_disk(&self.image(host, &a.vm), seed_of(&a.vm), changed);
        let repo = host.repo(&a.passphrase);
        let m = back_up(&repo, &a.point_name, &self.image(host, &a.vm), parent);
        host.complete(&a.job, &m.id).await;
        let j = self.job(&host.vault, &a.job).await;
        assert_eq!(j["status"], "Completed", "{j}");
        (a, m, data)
    }

    /// Two honest backups ("back up now") of `vm1`, as the agent makes them: the
    /// points with their disks' bytes, and the last job's assignment.
    pub async fn two_backups(&self, vault: &str, host: &Host) -> (Vec<Point>, Assignment) {
        let mut points = Vec::new();
        let mut parent = None;
        let mut last = None;
        for changed in [false, true] {
            let job = self.backup_now(vault, "vm1").await;
            let (a, m, data) = self.run_backup(host, changed, parent.take()).await;
            assert_eq!(a.job, job);
            points.push((m.id.clone(), data));
            parent = Some(m);
            last = Some(a);
        }
        (points, last.unwrap())
    }

    /// The next scheduled window of `DefaultPolicy` (22:00 UTC) comes: the clock
    /// moves half a minute past it, the scheduler starts a backup of every protected
    /// item, and the agent runs each. The points made, by VM, and the last job's
    /// assignment.
    pub async fn scheduled_backups(
        &self,
        host: &Host,
        changed: bool,
    ) -> (Vec<(String, Point)>, Assignment) {
        let now = self.now();
        let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
        let mut window = today
            .at(22, 0, 30, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp();
        if window <= now {
            window += SignedDuration::from_hours(24);
        }
        self.clock.set(window);
        let state = self.server.state.clone();
        let started =
            tokio::task::spawn_blocking(move || tresor_service::scheduler::tick(&state, window))
                .await
                .unwrap()
                .unwrap()
                .started;
        assert!(!started.is_empty(), "a window at {window}");
        let mut made = Vec::new();
        let mut last = None;
        for _ in &started {
            let (a, m, data) = self.run_backup(host, changed, None).await;
            made.push((a.vm.clone(), (m.id.clone(), data)));
            last = Some(a);
        }
        (made, last.unwrap())
    }

    pub async fn job(&self, vault: &str, job: &str) -> Value {
        self.admin
            .get_json(&format!("api/v1/vaults/{vault}/jobs/{job}"))
            .await
            .unwrap()
    }

    /// The recovery points the catalogue lists for `item` (a VM name or an item's id).
    pub async fn point_ids(&self, vault: &str, item: &str) -> Vec<String> {
        let points: Value = self
            .admin
            .get_json(&format!(
                "api/v1/vaults/{vault}/items/{item}/recovery-points"
            ))
            .await
            .unwrap();
        let mut ids: Vec<String> = points
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Garbage collection of every vault, as the server runs it every day.
    pub async fn collect_garbage(&self) {
        let state = self.server.state.clone();
        tokio::task::spawn_blocking(move || tresor_service::garbage::collect_all(&state))
            .await
            .unwrap()
            .unwrap();
    }

    /// The purge of soft-deleted data whose period ended: how many items went.
    pub async fn purge(&self) -> usize {
        let state = self.server.state.clone();
        tokio::task::spawn_blocking(move || tresor_service::soft_delete::purge_due(&state))
            .await
            .unwrap()
            .unwrap()
            .len()
    }

    /// Stops the server and starts it again on the same data (the admin token read
    /// back from the CLI's configuration it wrote).
    pub async fn restart(self) -> World {
        let World {
            server,
            admin,
            dir,
            clock,
        } = self;
        drop(admin);
        server.shutdown().await;
        let data = dir.path().join("data");
        let server = start(&data, clock.clone(), |_| {}).await;
        let token: Value =
            serde_json::from_str(&std::fs::read_to_string(data.join("cli.json")).unwrap()).unwrap();
        let admin = client(&server, token["token"].as_str());
        World {
            server,
            admin,
            dir,
            clock,
        }
    }

    /// `host`'s agent again, calling this (restarted) server.
    pub fn reconnect(&self, host: &Host) -> Host {
        Host {
            api: Arc::new(client(&self.server, Some(&host.credential))),
            credential: host.credential.clone(),
            vault: host.vault.clone(),
            vault_id: host.vault_id.clone(),
        }
    }

    pub async fn finish(self) {
        let World { server, admin, .. } = self;
        drop(admin);
        server.shutdown().await;
    }
}
