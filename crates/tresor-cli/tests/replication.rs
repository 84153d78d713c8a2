//! Geo-redundant vaults end to end: a real `tresor serve` with its own agent, a QEMU
//! VM, a primary and a secondary storage target (two folders, as two mounts would be),
//! driven through the CLI. The secondary is taken away, the primary deleted, the
//! server killed mid-copy; what the operator sees and restores is checked each time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::service::*;
use serde_json::Value;

const VAULT: &str = "geo-vault";

/// A server (with its own agent) whose location `westeurope` stores in `primary` and
/// is paired with `northeurope`, which stores in `secondary`.
struct Site {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    primary: PathBuf,
    secondary: PathBuf,
    agent_toml: PathBuf,
    server: Option<Proc>,
    cli: Cli,
    vm: TestVm,
}

impl Site {
    fn new(dir: &Path, soft_delete: &str) -> Site {
        let vm = start_vm(dir, "app", 256 * MIB);
        let data = dir.join("server");
        std::fs::create_dir_all(&data).unwrap();
        let (primary, secondary) = (dir.join("site-a"), dir.join("site-b"));
        std::fs::write(
            data.join("server.toml"),
            format!(
                r#"
[[location]]
name = "westeurope"
storage = "{}"
paired = "northeurope"

[[location]]
name = "northeurope"
storage = "{}"
paired = "westeurope"

[[location]]
name = "isolated"
storage = "{}"

[replication]
soft_delete = "{soft_delete}"
retry_min = "1s"
retry_max = "2s"
"#,
                primary.display(),
                secondary.display(),
                dir.join("site-c").display()
            ),
        )
        .unwrap();
        let agent_toml = agent_config(
            dir,
            None,
            ("kvm1", "westeurope"),
            ("app", &vm.agent_qmp),
            None,
        );
        let mut site = Site {
            dir: dir.to_path_buf(),
            cli: Cli {
                config: data.join("cli.json"),
            },
            data,
            port: free_port(),
            primary,
            secondary,
            agent_toml,
            server: None,
            vm,
        };
        site.start();
        site
    }

    fn start(&mut self) {
        self.server = Some(serve_with_local_agent(
            &self.data,
            self.port,
            &self.agent_toml,
        ));
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.server.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    /// Creates the GeoRedundant vault and protects the VM.
    fn protect(&self) {
        let v = self.cli.json(&[
            "vault",
            "create",
            "-n",
            VAULT,
            "-g",
            "rg",
            "-l",
            "westeurope",
        ]);
        assert_eq!(v["storageRedundancy"], "GeoRedundant", "{v}");
        assert_eq!(v["replication"]["secondaryLocation"], "northeurope", "{v}");
        assert_eq!(v["replication"]["status"], "UpToDate", "{v}");
        self.cli.wait_protectable(VAULT, "app");
        self.cli.ok(&[
            "protection",
            "enable-for-vm",
            "-v",
            VAULT,
            "--vm",
            "app",
            "--host",
            "kvm1",
        ]);
    }

    /// Writes `mib` MiB of random data, backs up, and returns the whole disk as it
    /// was backed up (raw).
    fn backup(&self, offset_mib: u64, mib: u64, seed: u8) -> Vec<u8> {
        random_write(&self.vm.test_qmp, &self.dir, offset_mib * MIB, mib, seed);
        self.backup_now();
        self.disk_now()
    }

    /// "Back up now", waiting for the job to complete.
    fn backup_now(&self) {
        let job = self
            .cli
            .json(&["protection", "backup-now", "-v", VAULT, "-i", "app"]);
        self.cli.ok(&[
            "job",
            "wait",
            "-v",
            VAULT,
            "-n",
            job["id"].as_str().unwrap(),
        ]);
    }

    fn disk_now(&self) -> Vec<u8> {
        let raw = self.dir.join("disk-now.raw");
        assert!(Command::new("qemu-img")
            .args(["convert", "-U", "-O", "raw"])
            .arg(&self.vm.image)
            .arg(&raw)
            .status()
            .unwrap()
            .success());
        std::fs::read(&raw).unwrap()
    }

    fn enable_cross_region_restore(&self) {
        self.cli.ok(&[
            "vault",
            "backup-properties",
            "set",
            "-n",
            VAULT,
            "--cross-region-restore-flag",
            "true",
        ]);
    }

    fn vault(&self) -> Value {
        self.cli.json(&["vault", "show", "-n", VAULT])
    }

    /// Waits until every point is on the secondary and the run that copied them ended.
    fn wait_replicated(&self, points: u64) {
        wait_for("replication", Duration::from_secs(60), || {
            let r = &self.vault()["replication"];
            r["status"] == "UpToDate"
                && r["recoveryPointsOnSecondary"] == points
                && r["lagSeconds"] == 0.0
                && !self
                    .jobs("Replication")
                    .iter()
                    .any(|j| j["status"] == "InProgress")
        });
    }

    fn points(&self, item: &str, secondary: bool) -> Vec<Value> {
        let mut args = vec!["recoverypoint", "list", "-v", VAULT, "-i", item];
        if secondary {
            args.push("--use-secondary-region");
        }
        self.cli.json(&args).as_array().unwrap().clone()
    }

    /// Restores `point` from the secondary region and returns the disk (raw).
    fn restore_from_secondary(&self, item: &str, point: &str, to: &str) -> Vec<u8> {
        let target = self.dir.join(to);
        let job = self.cli.json(&[
            "restore",
            "restore-disks",
            "-v",
            VAULT,
            "-i",
            item,
            "--rp-name",
            point,
            "--target-path",
            target.to_str().unwrap(),
            "--format",
            "raw",
            "--use-secondary-region",
        ]);
        self.cli.ok(&[
            "job",
            "wait",
            "-v",
            VAULT,
            "-n",
            job["id"].as_str().unwrap(),
        ]);
        let file = std::fs::read_dir(&target)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "raw"))
            .expect("a restored raw disk");
        std::fs::read(file).unwrap()
    }

    /// The repository folders of the vault in a target (one per host).
    fn repo_in(&self, target: &Path) -> PathBuf {
        let hosts = std::fs::read_dir(target)
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir())
            .expect("the vault's folder")
            .path()
            .join("hosts");
        std::fs::read_dir(hosts)
            .unwrap()
            .flatten()
            .next()
            .expect("a host repository")
            .path()
    }

    fn jobs(&self, operation: &str) -> Vec<Value> {
        self.cli
            .json(&[
                "job",
                "list",
                "-v",
                VAULT,
                "--operation",
                operation,
                "--limit",
                "500",
            ])
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Bytes of every object file under a repository folder (temp files and the
/// garbage collection state excluded).
fn stored_bytes(repo: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        std::fs::read_dir(p)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let path = e.path();
                        let name = e.file_name().to_string_lossy().into_owned();
                        if path.is_dir() {
                            if name == "gc" || name == "writers" {
                                0
                            } else {
                                walk(&path)
                            }
                        } else if name.starts_with('.') {
                            0
                        } else {
                            e.metadata().map(|m| m.len()).unwrap_or(0)
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(repo)
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count_files(&e.path())
                    } else {
                        usize::from(!e.file_name().to_string_lossy().starts_with('.'))
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn the_secondary_restores_every_point_after_the_primary_storage_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path(), "14d");

    // Rules first: no GeoRedundant vault where there is no pair.
    let err = site.cli.fails(&[
        "vault", "create", "-n", "lonely", "-g", "rg", "-l", "isolated",
    ]);
    assert!(err.contains("GeoRedundancyUnavailable"), "{err}");
    site.cli.ok(&[
        "vault",
        "create",
        "-n",
        "lonely",
        "-g",
        "rg",
        "-l",
        "isolated",
        "--storage-redundancy",
        "LocallyRedundant",
    ]);
    let err = site.cli.fails(&[
        "vault",
        "backup-properties",
        "set",
        "-n",
        "lonely",
        "--cross-region-restore-flag",
        "true",
    ]);
    assert!(
        err.contains("CrossRegionRestoreNeedsGeoRedundancy"),
        "{err}"
    );

    site.protect();
    let first = site.backup(0, 8, 1);
    let second = site.backup(20, 4, 2);
    site.wait_replicated(2);
    let runs = site.jobs("Replication");
    assert!(
        runs.iter().any(|j| j["status"] == "Completed"
            && j["result"]["bytesCopied"].as_u64().unwrap() > 8 * MIB),
        "{runs:?}"
    );
    let table = site.cli.ok(&["vault", "show", "-n", VAULT]);
    assert!(
        table.contains("replication to northeurope: UpToDate"),
        "{table}"
    );
    let item = site.cli.json(&["item", "show", "-v", VAULT, "-n", "app"]);
    assert_eq!(
        item["replication"]["recoveryPointsOnSecondary"], 2,
        "{item}"
    );
    assert_eq!(item["replication"]["lagSeconds"], 0.0, "{item}");

    // Listing the secondary needs cross-region restore enabled; once on, it stays on.
    let err = site.cli.fails(&[
        "recoverypoint",
        "list",
        "-v",
        VAULT,
        "-i",
        "app",
        "--use-secondary-region",
    ]);
    assert!(err.contains("CrossRegionRestoreNotEnabled"), "{err}");
    site.enable_cross_region_restore();
    let err = site.cli.fails(&[
        "vault",
        "backup-properties",
        "set",
        "-n",
        VAULT,
        "--cross-region-restore-flag",
        "false",
    ]);
    assert!(err.contains("CrossRegionRestoreCannotBeDisabled"), "{err}");
    let err = site.cli.fails(&[
        "vault",
        "backup-properties",
        "set",
        "-n",
        VAULT,
        "--backup-storage-redundancy",
        "LocallyRedundant",
    ]);
    assert!(err.contains("RedundancyLocked"), "{err}");

    // Both regions verify clean.
    site.cli.ok(&["vault", "verify", "-n", VAULT]);
    site.cli
        .ok(&["vault", "verify", "-n", VAULT, "--use-secondary-region"]);

    // The primary site is lost.
    std::fs::remove_dir_all(&site.primary).unwrap();
    let points = site.points("app", true);
    assert_eq!(points.len(), 2, "{points:?}");
    let (newest, oldest) = (
        points[0]["id"].as_str().unwrap().to_string(),
        points[1]["id"].as_str().unwrap().to_string(),
    );
    assert!(site.restore_from_secondary("app", &oldest, "r1") == first);
    assert!(site.restore_from_secondary("app", &newest, "r2") == second);

    // What needs the primary says so, with the code to act on.
    let job = site
        .cli
        .json(&["protection", "backup-now", "-v", VAULT, "-i", "app"]);
    let out = site.cli.run(&[
        "job",
        "wait",
        "-v",
        VAULT,
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let failed = site.cli.json(&[
        "job",
        "show",
        "-v",
        VAULT,
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    assert_eq!(
        failed["error"]["code"], "PrimaryStorageUnavailable",
        "{failed}"
    );
    let err = site.cli.fails(&["vault", "verify", "-n", VAULT]);
    assert!(err.contains("PrimaryStorageUnavailable"), "{err}");
}

#[test]
fn replication_catches_up_after_the_secondary_was_away_and_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path(), "14d");
    site.protect();
    site.backup(0, 4, 1);
    site.wait_replicated(1);

    // The secondary's disk goes away (an unmounted disk leaves an empty folder).
    let away = dir.path().join("site-b.away");
    std::fs::rename(&site.secondary, &away).unwrap();
    std::fs::create_dir(&site.secondary).unwrap();
    let mut lags = Vec::new();
    for (i, seed) in [2u8, 3].into_iter().enumerate() {
        site.backup(8 + 4 * i as u64, 4, seed);
        wait_for("the failure to show", Duration::from_secs(30), || {
            let r = &site.vault()["replication"];
            r["status"] == "Failing"
                && r["lastError"]["code"] == "SecondaryStorageUnavailable"
                && r["pendingRecoveryPoints"] == (i as u64 + 1)
        });
        let r = site.vault()["replication"].clone();
        assert!(r["bytesPending"].as_u64().unwrap() >= 4 * MIB, "{r}");
        lags.push(r["lagSeconds"].as_f64().unwrap());
        std::thread::sleep(Duration::from_millis(1100));
    }
    // The lag is the age of the oldest point not yet copied: it grows.
    let r = site.vault()["replication"].clone();
    assert!(r["lagSeconds"].as_f64().unwrap() > lags[0], "{r} {lags:?}");
    assert!(r["recoveryPointsOnSecondary"] == 1, "{r}");
    let table = site.cli.ok(&["vault", "show", "-n", VAULT]);
    assert!(table.contains("SecondaryStorageUnavailable"), "{table}");
    assert!(table.contains("no tresor-storage.json"), "{table}");
    let failed: Vec<Value> = site
        .jobs("Replication")
        .into_iter()
        .filter(|j| j["status"] == "Failed")
        .collect();
    assert!(!failed.is_empty());
    assert_eq!(failed[0]["error"]["code"], "SecondaryStorageUnavailable");
    // Nothing was written into the empty folder standing in for the disk.
    assert_eq!(count_files(&site.secondary), 0);

    // The disk is back: replication catches up by itself.
    std::fs::remove_dir(&site.secondary).unwrap();
    std::fs::rename(&away, &site.secondary).unwrap();
    site.wait_replicated(3);
    // Every object went over exactly once: the bytes the completed runs copied are
    // the bytes the secondary holds, which are the primary's.
    let copied: u64 = site
        .jobs("Replication")
        .iter()
        .filter(|j| j["status"] == "Completed")
        .map(|j| j["result"]["bytesCopied"].as_u64().unwrap())
        .sum();
    let secondary_repo = site.repo_in(&site.secondary);
    let primary_repo = site.repo_in(&site.primary);
    assert_eq!(copied, stored_bytes(&secondary_repo));
    assert_eq!(stored_bytes(&primary_repo), stored_bytes(&secondary_repo));
    site.cli
        .ok(&["vault", "verify", "-n", VAULT, "--use-secondary-region"]);
}

#[test]
fn a_server_killed_mid_replication_leaves_no_half_point_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(dir.path(), "14d");
    site.protect();
    site.backup(0, 4, 1);
    site.wait_replicated(1);
    let secondary_repo = site.repo_in(&site.secondary);

    // A large point (ten 16 MiB packs, copied four at a time), and the server killed
    // while its packs are being copied. On a busy machine the kill can come after the
    // whole point arrived, which proves nothing: then the server starts again and
    // another point is tried, three times at most.
    let mut points = 1;
    let manifests = loop {
        let packs_before = count_files(&secondary_repo.join("data"));
        random_write(
            &site.vm.test_qmp,
            dir.path(),
            8 * MIB,
            160,
            6 + points as u8,
        );
        site.backup_now();
        points += 1;
        let started = Instant::now();
        while count_files(&secondary_repo.join("data")) < packs_before + 2 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "replication did not start"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        site.kill();
        let manifests = count_files(&secondary_repo.join("points"));
        if manifests < points {
            break manifests;
        }
        assert!(
            points < 4,
            "three times the kill came after the new point was complete: the test proves nothing"
        );
        site.start();
        site.wait_replicated(points as u64);
    };
    assert_eq!(manifests, points - 1);

    // As the kill left it, the secondary is a clean repository: every point it lists
    // is whole (the new one is either there completely or not at all).
    let passphrase = std::fs::read_dir(site.data.join("secrets"))
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(|c: char| c != '.')
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .unwrap();
    let out = tresor_bin()
        .env("TRESOR_PASSWORD", passphrase.trim())
        .args(["repo", "verify"])
        .arg(&secondary_repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the secondary does not verify after the kill ({manifests} manifests):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // After a restart the interrupted run is a failed job, and a new run finishes the
    // copy without sending again what arrived.
    let bytes_there = stored_bytes(&secondary_repo);
    site.start();
    site.wait_replicated(points as u64);
    let runs = site.jobs("Replication");
    assert!(
        runs.iter()
            .any(|j| j["status"] == "Failed" && j["error"]["code"] == "ServerRestarted"),
        "{runs:?}"
    );
    // Jobs are listed newest first: the run that resumed the copy.
    let resumed = runs
        .iter()
        .find(|j| j["status"] == "Completed")
        .expect("a completed run after the restart");
    assert_eq!(
        resumed["result"]["bytesCopied"].as_u64().unwrap(),
        stored_bytes(&secondary_repo) - bytes_there,
        "{resumed}"
    );
    assert_eq!(
        stored_bytes(&site.repo_in(&site.primary)),
        stored_bytes(&secondary_repo)
    );
    site.cli
        .ok(&["vault", "verify", "-n", VAULT, "--use-secondary-region"]);
}

/// A mistaken "delete data" deletes nothing: the item is soft-deleted, its point stays
/// in both regions, the vault cannot be deleted, and undelete brings the item back,
/// its point restorable byte for byte. (The purge at the end of the period is tested
/// with a hand clock in tresor-server's tests/soft_delete.rs.)
#[test]
fn a_mistaken_delete_is_soft_in_both_regions_and_undone() {
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(dir.path(), "15s");
    site.protect();
    let disk = site.backup(0, 4, 1);
    site.wait_replicated(1);
    site.enable_cross_region_restore();
    let item = site.cli.json(&["item", "show", "-v", VAULT, "-n", "app"]);
    let item_id = item["id"].as_str().unwrap().to_string();

    site.cli.ok(&[
        "protection",
        "disable",
        "-v",
        VAULT,
        "-i",
        "app",
        "--delete-backup-data",
        "--yes",
    ]);
    let item = site
        .cli
        .json(&["item", "show", "-v", VAULT, "-n", &item_id]);
    assert_eq!(item["protectionState"], "SoftDeleted", "{item}");
    assert!(item["deleteAt"].is_string(), "{item}");
    let primary = site.points(&item_id, false);
    assert_eq!(primary.len(), 1, "{primary:?}");
    assert_eq!(site.points(&item_id, true).len(), 1);
    let point = primary[0]["id"].as_str().unwrap().to_string();
    let err = site.cli.fails(&["vault", "delete", "-n", VAULT, "--yes"]);
    assert!(err.contains("soft-deleted"), "{err}");
    // Past the server's replication window the secondary still holds it.
    std::thread::sleep(Duration::from_secs(16));
    assert_eq!(site.points(&item_id, true).len(), 1);

    site.cli
        .ok(&["protection", "undelete", "-v", VAULT, "-i", &item_id]);
    let item = site
        .cli
        .json(&["item", "show", "-v", VAULT, "-n", &item_id]);
    assert_eq!(item["protectionState"], "ProtectionStopped", "{item}");
    assert!(site.restore_from_secondary(&item_id, &point, "rescued") == disk);
}
