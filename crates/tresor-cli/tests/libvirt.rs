//! A libvirt host end to end, as an operator meets it: a real libvirtd (started as
//! root if none runs) with a running TCG domain (the test guest, qemu-ga inside),
//! `tresor serve --with-local-agent` whose agent.toml names no VM (libvirt on), and
//! the CLI only. The domain is protectable by its name with no per-VM
//! configuration; it is protected without its disk vdb (`--exclude-disk`), backed
//! up now, the job completes, the point is listed, and `restore restore-disks`
//! writes vda equal to the domain's disk at the backup, and no vdb. Then, without
//! the server, `tresor repo backup --libvirt-domain` backs the domain up by its name
//! into a repository of its own, and `repo restore` gives vda back.
//!
//! Not in the fast tier (scripts/test.sh): needs QEMU, libvirt and the test guest's
//! packages (scripts/install-deps.sh).

mod common;
#[path = "../../tresor-libvirt/tests/common/mod.rs"]
mod libvirt_common;
#[path = "../../tresor-agent/tests/libvirt_guest/mod.rs"]
mod libvirt_guest;

use std::time::Duration;

use common::service::{free_port, serve_with_local_agent, wait_for, Cli};
use libvirt_common::{Libvirtd, TestDomains};
use libvirt_guest::{booted_guest, write};
use serde_json::Value;

const UUID: &str = "5e0c9f4e-0000-4000-8000-0000000000c1";
const MIB: u64 = 1 << 20;
const DATA_SIZE: u64 = 32 * MIB;
const VAULT: &str = "v1";
const HOST: &str = "kvm-libvirt";

#[test]
fn a_libvirt_domain_is_protected_by_name_without_a_disk_backed_up_and_restored(
) -> anyhow::Result<()> {
    let _daemon = Libvirtd::ensure()?;
    let t = TestDomains::new("cli")?;
    let name = t.name("web");
    let domain = booted_guest(&t, "web", UUID, DATA_SIZE)?;
    let mut expected = vec![0u8; DATA_SIZE as usize];
    write(&domain, &mut expected, 0, 2 * MIB, 7);
    write(&domain, &mut expected, 17 * MIB, MIB / 2, 8);

    let d = tempfile::tempdir()?;
    let data = d.path().join("data");
    let restores = d.path().join("restores");
    std::fs::create_dir(&restores)?;
    let agent_toml = d.path().join("agent.toml");
    // No [[vm]]: libvirt finds the domain. Its backup job's scratch folder must be
    // reachable by libvirt's QEMU: beside the domain's images.
    std::fs::write(
        &agent_toml,
        format!(
            "host = \"{HOST}\"\nlocation = \"local\"\nscratch_dir = \"{}\"\nrestore_roots = [\"{}\"]\n[libvirt]\nuri = \"qemu:///system\"\n",
            t.images.join("scratch").display(),
            restores.display()
        ),
    )?;
    let _server = serve_with_local_agent(&data, free_port(), &agent_toml);
    let cli = Cli {
        config: data.join("cli.json"),
    };
    cli.ok(&[
        "vault",
        "create",
        "-n",
        VAULT,
        "-g",
        "rg",
        "-l",
        "local",
        "--storage-redundancy",
        "LocallyRedundant",
    ]);

    // Listed as protectable by its name, under its UUID, with its two disks.
    wait_for(
        "the domain to be protectable",
        Duration::from_secs(60),
        || {
            cli.json(&["protectable-item", "list", "-v", VAULT])
                .as_array()
                .is_some_and(|a| {
                    a.iter()
                        .any(|v| v["vm"] == UUID && v["name"] == name.as_str())
                })
        },
    );

    let item = cli.json(&[
        "protection",
        "enable-for-vm",
        "-v",
        VAULT,
        "--vm",
        &name,
        "--host",
        HOST,
        "--exclude-disk",
        "vdb",
    ]);
    assert_eq!(item["excludedDisks"], serde_json::json!(["vdb"]), "{item}");
    let job = cli.json(&["protection", "backup-now", "-v", VAULT, "-i", &name]);
    cli.ok(&[
        "job",
        "wait",
        "-v",
        VAULT,
        "-n",
        job["id"].as_str().unwrap(),
        "--timeout",
        "120",
    ]);
    let done = cli.json(&[
        "job",
        "show",
        "-v",
        VAULT,
        "-n",
        job["id"].as_str().unwrap(),
    ]);
    assert!(
        done["status"] == "Completed" || done["status"] == "CompletedWithWarnings",
        "{done}"
    );

    let points = cli.json(&["recoverypoint", "list", "-v", VAULT, "-i", &name]);
    let points = points.as_array().expect("a list");
    assert_eq!(points.len(), 1, "{points:?}");
    let point: &Value = &points[0];
    let disks = point["details"]["disks"].to_string();
    assert!(disks.contains("vda") && !disks.contains("vdb"), "{disks}");

    let out = restores.join("web");
    let job = cli.json(&[
        "restore",
        "restore-disks",
        "-v",
        VAULT,
        "-i",
        &name,
        "--rp-name",
        point["id"].as_str().unwrap(),
        "--target-path",
        out.to_str().unwrap(),
        "--format",
        "raw",
    ]);
    cli.ok(&[
        "job",
        "wait",
        "-v",
        VAULT,
        "-n",
        job["id"].as_str().unwrap(),
        "--timeout",
        "120",
    ]);
    let restored = std::fs::read(out.join("vda.raw"))?;
    assert!(
        restored == expected,
        "the restored vda differs from the domain's disk at the backup"
    );
    let files: Vec<String> = std::fs::read_dir(&out)?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files.iter().any(|f| f.starts_with("vdb")),
        "the excluded disk was restored: {files:?}"
    );

    // The same domain without a server (scripts, disaster recovery): `tresor repo
    // backup --libvirt-domain` by its name into a repository of its own, whose
    // generated passphrase opens it, and `repo restore` gives vda back.
    let repo = d.path().join("standalone");
    let run = |pass: Option<&str>, args: &[&str]| {
        let mut cmd = common::tresor();
        match pass {
            Some(p) => cmd.env("TRESOR_PASSWORD", p),
            None => cmd.env_remove("TRESOR_PASSWORD"),
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "tresor {args:?}: {}",
            common::text(&out)
        );
        common::last_line(&String::from_utf8_lossy(&out.stdout))
    };
    let repo_arg = repo.to_str().unwrap();
    let secret = run(None, &["repo", "init", repo_arg, "--generate-passphrase"]);
    let point = run(
        Some(&secret),
        &["repo", "backup", repo_arg, "--libvirt-domain", &name],
    );
    let vda = d.path().join("standalone-vda.raw");
    run(
        Some(&secret),
        &[
            "repo",
            "restore",
            repo_arg,
            &point,
            "--disk",
            "vda",
            "--output",
            vda.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(&vda)? == expected,
        "repo backup --libvirt-domain: the restored vda differs from the domain's disk"
    );
    Ok(())
}
