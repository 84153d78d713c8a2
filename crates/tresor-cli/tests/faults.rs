//! Faults injected through the vault service: a real `tresor serve`, a real
//! `tresor agent run` and a real QEMU VM, one of them SIGKILLed at a random moment of
//! each backup, and a storage target that runs out of space. The promise checked:
//! every job ends (Failed with a code, Cancelled or Completed), no recovery point
//! lies, and every listed point restores byte-identical to the VM's disk at its
//! instant. The table of faults and outcomes is docs/reliability.md.
//!
//! The random test prints its seed; `TRESOR_FAULTS_SEED=N` replays a run.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::service::*;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::Value;

const VAULT: &str = "fault-vault";
const VM: &str = "vm1";
const HOST: &str = "kvm1";
const DISK: u64 = 64 * MIB;

const ENDED: [&str; 4] = ["Completed", "CompletedWithWarnings", "Failed", "Cancelled"];

fn log_file(path: &Path) -> Stdio {
    Stdio::from(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap(),
    )
}

/// A server, an agent reaching it through a proxy that slows uploads (so that a kill
/// lands inside a backup), and a QEMU VM; each can be killed and started again.
struct Rig {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    cli: Cli,
    agent_toml: PathBuf,
    image: PathBuf,
    server: Option<Proc>,
    agent: Option<Proc>,
    vm: Option<TestVm>,
    _proxy: Proxy,
}

impl Rig {
    fn new(dir: &Path, upload_rate: u64) -> Rig {
        let data = dir.join("server");
        let vm = start_vm(dir, VM, DISK);
        let proxy = Proxy::start(upload_rate);
        let mut rig = Rig {
            dir: dir.to_path_buf(),
            cli: Cli {
                config: data.join("cli.json"),
            },
            data,
            port: free_port(),
            agent_toml: PathBuf::new(),
            image: vm.image.clone(),
            server: None,
            agent: None,
            vm: Some(vm),
            _proxy: proxy,
        };
        rig.start_server();
        let creds = dir.join("creds.json");
        rig.cli.create_local_vault(VAULT, &creds);
        let qmp = rig.vm.as_ref().unwrap().agent_qmp.clone();
        rig.agent_toml = agent_config(
            dir,
            Some(&creds),
            (HOST, "local"),
            (VM, &qmp),
            Some(rig._proxy.port),
        );
        rig.start_agent();
        rig.cli.wait_protectable(VAULT, VM);
        rig.cli.ok(&[
            "protection",
            "enable-for-vm",
            "-v",
            VAULT,
            "--vm",
            VM,
            "--host",
            HOST,
        ]);
        rig
    }

    fn start_server(&mut self) {
        let child = tresor_bin()
            .args(["serve", "--data-dir"])
            .arg(&self.data)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .env("TRESOR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&self.dir.join("server.log")))
            .spawn()
            .unwrap();
        self.server = Some(Proc(child));
        let port = self.port;
        wait_for("the server to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        wait_for("cli.json", Duration::from_secs(10), || {
            self.data.join("cli.json").exists()
        });
    }

    fn start_agent(&mut self) {
        let child = tresor_bin()
            .args(["agent", "run", "--config"])
            .arg(&self.agent_toml)
            .env("TRESOR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&self.dir.join("agent.log")))
            .spawn()
            .unwrap();
        self.agent = Some(Proc(child));
    }

    fn test_qmp(&self) -> PathBuf {
        self.vm.as_ref().unwrap().test_qmp.clone()
    }

    /// SIGKILLs `what` and starts it again as before (QEMU on the same image).
    fn kill_and_restart(&mut self, what: Target) {
        let proc = match what {
            Target::Agent => self.agent.take(),
            Target::Server => self.server.take(),
            Target::Qemu => self.vm.take().map(|vm| vm._proc),
        };
        let mut proc = proc.unwrap();
        proc.0.kill().unwrap(); // SIGKILL
        proc.0.wait().unwrap();
        match what {
            Target::Agent => self.start_agent(),
            Target::Server => self.start_server(),
            Target::Qemu => self.vm = Some(start_vm_on(&self.dir, VM, self.image.clone())),
        }
    }

    fn job(&self, id: &str) -> Value {
        self.cli.json(&["job", "show", "-v", VAULT, "-n", id])
    }

    /// Waits until job `id` has ended; returns it and how long that took.
    fn wait_ended(&self, id: &str, timeout: Duration) -> (Value, Duration) {
        let started = Instant::now();
        loop {
            let job = self.job(id);
            if ENDED.contains(&job["status"].as_str().unwrap_or_default()) {
                return (job, started.elapsed());
            }
            assert!(
                started.elapsed() < timeout,
                "job {id} did not end within {timeout:?}: {job}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn point_ids(&self) -> Vec<String> {
        self.cli
            .json(&["recoverypoint", "list", "-v", VAULT, "-i", VM])
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn backup_now(&self) -> String {
        let job = self
            .cli
            .json(&["protection", "backup-now", "-v", VAULT, "-i", VM]);
        job["id"].as_str().unwrap().to_string()
    }

    /// Restores `point` as a raw disk and returns its bytes.
    fn restore(&self, point: &str) -> Vec<u8> {
        let target = self.dir.join(format!("restore-{point}"));
        let job = self.cli.json(&[
            "restore",
            "restore-disks",
            "-v",
            VAULT,
            "-i",
            VM,
            "--rp-name",
            point,
            "--target-path",
            target.to_str().unwrap(),
            "--format",
            "raw",
        ]);
        let (job, _) = self.wait_ended(job["id"].as_str().unwrap(), Duration::from_secs(120));
        assert_eq!(job["status"], "Completed", "restore of {point}: {job}");
        let bytes = std::fs::read(target.join("drive0.raw")).unwrap();
        std::fs::remove_dir_all(&target).unwrap();
        bytes
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // The agent first, so that it does not retry against a server gone.
        self.agent.take();
        self.server.take();
        self.vm.take();
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Agent,
    Server,
    Qemu,
}

/// One write of random data through QEMU (flushed): kept in a file, so that the
/// disk's content at any round can be rebuilt for the comparisons.
struct Write {
    offset: u64,
    file: PathBuf,
}

fn write_random(rig: &Rig, rng: &mut impl RngCore, n: usize, offset: u64, mib: u64) -> Write {
    let mut data = vec![0u8; (mib * MIB) as usize];
    rng.fill_bytes(&mut data);
    let file = rig.dir.join(format!("write-{n}.bin"));
    std::fs::write(&file, &data).unwrap();
    qmp(&rig.test_qmp(), async |q| {
        q.qemu_io(
            "drive0",
            &format!("write -s {} {offset} {}", file.display(), mib * MIB),
        )
        .await
        .unwrap();
        q.qemu_io("drive0", "flush").await.unwrap();
    });
    Write { offset, file }
}

/// The disk's content after `writes`.
fn disk_after(writes: &[Write]) -> Vec<u8> {
    let mut disk = vec![0u8; DISK as usize];
    for w in writes {
        let data = std::fs::read(&w.file).unwrap();
        disk[w.offset as usize..w.offset as usize + data.len()].copy_from_slice(&data);
    }
    disk
}

fn code(job: &Value) -> String {
    job["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn warnings(job: &Value) -> String {
    job["warnings"].to_string()
}

#[test]
fn random_sigkills_of_agent_server_and_qemu_leave_no_lying_point_and_no_running_job() {
    let seed: u64 = std::env::var("TRESOR_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("faults seed: {seed} (replay with TRESOR_FAULTS_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rig = Rig::new(d, 8 * MIB);

    // Which writes each point holds: point id -> number of writes before its round.
    let mut writes: Vec<Write> = Vec::new();
    let mut holds: BTreeMap<String, usize> = BTreeMap::new();
    let mut jobs: Vec<String> = Vec::new();

    // Two uninterrupted backups: a full one, then an incremental one whose duration
    // sets the range of the kill moments.
    let mut incremental = Duration::ZERO;
    for n in 0..2 {
        let w = write_random(
            &rig,
            &mut rng,
            n,
            n as u64 * 24 * MIB,
            if n == 0 { 24 } else { 8 },
        );
        writes.push(w);
        let started = Instant::now();
        let job = rig.backup_now();
        let (done, _) = rig.wait_ended(&job, Duration::from_secs(120));
        incremental = started.elapsed();
        assert!(
            done["status"].as_str().unwrap().starts_with("Completed"),
            "{done}"
        );
        holds.insert(
            done["result"]["recoveryPoint"]
                .as_str()
                .unwrap()
                .to_string(),
            writes.len(),
        );
        jobs.push(job);
    }
    println!("an incremental backup of 8 MiB takes {incremental:?}");

    // Twelve rounds, four kills of each kind in a random order, at random moments.
    let mut targets = [Target::Agent, Target::Server, Target::Qemu].repeat(4);
    targets.shuffle(&mut rng);
    // Set when QEMU was surely killed after the last point's view was taken: the next
    // completed backup must then read the disk whole, since no dirty bitmap survives
    // a killed QEMU.
    let mut whole_read_due = false;
    let mut whole_reads_checked = 0;
    let mut killed_running = 0;
    let mut failed_with_point = Vec::new();
    let mut check_whole_read = |done: &Value, due: &mut bool| {
        if std::mem::take(due) {
            assert!(
                warnings(done).contains("reading the whole disk"),
                "an incremental backup after QEMU was killed (seed {seed}): {done}"
            );
            whole_reads_checked += 1;
        }
    };
    for (round, target) in targets.into_iter().enumerate() {
        let mib = rng.gen_range(4..=12u64);
        let offset = rng.gen_range(0..(DISK / MIB - mib)) * MIB;
        writes.push(write_random(&rig, &mut rng, writes.len(), offset, mib));
        let before = rig.point_ids();
        let job = rig.backup_now();
        jobs.push(job.clone());
        let delay = incremental.mul_f64(rng.gen_range(0.0..1.3));
        std::thread::sleep(delay);
        let running = rig.job(&job)["status"] == "InProgress";
        rig.kill_and_restart(target);
        killed_running += running as usize;
        let (done, took) = rig.wait_ended(&job, Duration::from_secs(150));
        let status = done["status"].as_str().unwrap();
        println!(
            "round {round}: {mib} MiB at {} MiB, {target:?} killed after {delay:?} ({}), job {status} {} after {took:?}, read {} bytes",
            offset / MIB,
            if running { "mid-backup" } else { "job had ended" },
            code(&done),
            done["result"]["bytesRead"]
        );
        if status != "Completed" {
            println!("    {} {}", done["error"]["message"], warnings(&done));
        }
        if status == "Failed" {
            assert!(
                !code(&done).is_empty(),
                "a failed job without a code: {done}"
            );
        }
        // A new point stands for this round's disk, whatever the job says.
        let new: Vec<String> = rig
            .point_ids()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert!(new.len() <= 1, "one backup, several points: {new:?}");
        let completed = status.starts_with("Completed");
        if completed {
            let point = done["result"]["recoveryPoint"].as_str().unwrap();
            assert_eq!(new, [point], "the job's point is not the new one: {done}");
            check_whole_read(&done, &mut whole_read_due);
        } else if let Some(p) = new.first() {
            failed_with_point.push(format!("round {round}: job {status} yet point {p} listed"));
        }
        // (A backup whose agent was killed may have written a manifest and taken a
        // new bitmap; the next one still follows the server's newest point, so the
        // whole read stays due.)
        // QEMU was killed after this backup's view was open (the job failed, or its
        // teardown found QEMU gone) or after the job ended: the next backup has no
        // bitmap to trust. (Killed before the view, the backup ran on the new QEMU and
        // its own bitmap is good; killed between teardown and the report, the test
        // cannot tell: it checks nothing then.)
        let torn = warnings(&done).contains("cleaning up after it failed");
        if target == Target::Qemu && (!completed || !running || torn) {
            whole_read_due = true;
        }
        for p in new {
            holds.insert(p, writes.len());
        }
    }
    assert!(killed_running >= 3, "too few kills landed inside a backup");

    // One more backup with nothing killed: the chain goes on.
    writes.push(write_random(&rig, &mut rng, writes.len(), 60 * MIB, 4));
    let job = rig.backup_now();
    jobs.push(job.clone());
    let (done, _) = rig.wait_ended(&job, Duration::from_secs(120));
    assert!(
        done["status"].as_str().unwrap().starts_with("Completed"),
        "{done}"
    );
    check_whole_read(&done, &mut whole_read_due);
    holds.insert(
        done["result"]["recoveryPoint"]
            .as_str()
            .unwrap()
            .to_string(),
        writes.len(),
    );

    // Every job ended; a failed one says why.
    let all = rig.cli.json(&["job", "list", "-v", VAULT]);
    for j in all.as_array().unwrap() {
        let status = j["status"].as_str().unwrap();
        assert!(ENDED.contains(&status), "a job did not end: {j}");
    }
    for id in &jobs {
        let j = rig.job(id);
        if j["status"] == "Failed" {
            assert!(!code(&j).is_empty(), "{j}");
        }
    }
    // Every listed point restores the disk as it was at its instant.
    let listed = rig.point_ids();
    for p in &listed {
        let n = holds
            .get(p)
            .unwrap_or_else(|| panic!("point {p} appeared outside any round"));
        assert!(
            rig.restore(p) == disk_after(&writes[..*n]),
            "point {p} does not restore the disk at its instant (seed {seed})"
        );
    }
    println!(
        "{} points restored byte-identical; {killed_running} kills mid-backup; {whole_reads_checked} whole reads after QEMU was killed; failed jobs whose point is listed: {failed_with_point:?}",
        listed.len()
    );
}

/// A tmpfs mounted for the test, unmounted (lazily) at the end.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size_mib: u64) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(at.to_path_buf()))
    }

    fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_storage_target_fails_the_backup_with_storage_full_and_the_next_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The location's storage target on a small file system of its own.
    let Some(small) = Mount::tmpfs(&d.join("small"), 40) else {
        println!("SKIPPED: cannot mount a tmpfs here (the test needs root)");
        return;
    };
    let data = d.join("server");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("server.toml"),
        format!(
            "[[location]]\nname = \"local\"\nstorage = \"{}\"\n",
            small.0.join("target").display()
        ),
    )
    .unwrap();
    let rig = Rig::new(d, 64 * MIB);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut writes = vec![write_random(&rig, &mut rng, 0, 0, 8)];
    let job = rig.backup_now();
    let (first, _) = rig.wait_ended(&job, Duration::from_secs(120));
    assert!(
        first["status"].as_str().unwrap().starts_with("Completed"),
        "{first}"
    );
    let first_point = first["result"]["recoveryPoint"]
        .as_str()
        .unwrap()
        .to_string();
    let at_first = disk_after(&writes);

    // Something else fills the file system: 6 MiB stay free. The next backup has
    // 16 MiB of new data.
    let filler = small.0.join("filler");
    let free = small.available();
    std::fs::write(&filler, vec![1u8; (free - 6 * MIB) as usize]).unwrap();
    writes.push(write_random(&rig, &mut rng, 1, 16 * MIB, 16));
    let job = rig.backup_now();
    let (full, _) = rig.wait_ended(&job, Duration::from_secs(120));
    assert_eq!(full["status"], "Failed", "{full}");
    assert_eq!(code(&full), "StorageFull", "{full}");
    assert!(
        full["error"]["recommendation"]
            .as_str()
            .unwrap()
            .contains("free space"),
        "{full}"
    );
    assert_eq!(
        rig.point_ids(),
        std::slice::from_ref(&first_point),
        "a point of a failed backup"
    );
    let item = rig.cli.json(&["item", "show", "-v", VAULT, "-n", VM]);
    println!("after the failed backup: item {}", item["protectionState"]);
    // What was there restores.
    assert!(rig.restore(&first_point) == at_first);

    // Space freed: the next backup succeeds and restores byte-identical.
    std::fs::remove_file(&filler).unwrap();
    let job = rig.backup_now();
    let (again, _) = rig.wait_ended(&job, Duration::from_secs(120));
    assert!(
        again["status"].as_str().unwrap().starts_with("Completed"),
        "{again}"
    );
    let point = again["result"]["recoveryPoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(rig.restore(&point) == disk_after(&writes));
    assert!(rig.restore(&first_point) == at_first);
    drop(rig);
}
