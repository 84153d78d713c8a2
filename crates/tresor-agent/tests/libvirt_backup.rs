//! Backups of a libvirt domain through libvirt's backup API, driven by the function
//! the agent's backup job calls (`backup_vm` with the libvirt provider), against a
//! real libvirtd (started here as root if none runs) and a TCG guest running
//! qemu-guest-agent. The guest writes known bytes to a disk it does not mount (so
//! each point can be compared byte for byte) and mounts an ext4 disk (so a freeze
//! has something to freeze).
//!
//! Full, incremental (reading only what changed), the domain stopped and started
//! between two backups (still incremental), the checkpoint deleted by hand (a full
//! read, deduplicated, saying why), a disk excluded, and the domain shut off (its
//! images read directly). Needs QEMU, libvirt and the test guest's packages
//! (scripts/install-deps.sh).

mod common;
#[path = "../../tresor-libvirt/tests/common/mod.rs"]
mod libvirt_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_same, repo, restored, MIB};
use libvirt_common::{Libvirtd, TestDomains};
use rand::{RngCore, SeedableRng};
use serde_json::Value;
use tresor_agent::{backup_vm, VmBackupOptions, VmBackupOutcome};
use tresor_engine::{Consistency, Repository};
use tresor_libvirt::{backup_api, LibvirtProvider};
use tresor_testguest::GuestImage;
use tresor_vm::VmRef;
use virt::domain::Domain;

const UUID: &str = "5e0c9f4e-0000-4000-8000-0000000000b1";
const DATA_SIZE: u64 = 32 * MIB;
/// Bytes handed to the guest per command.
const PIECE: usize = 48 << 10;

fn domain_xml(name: &str, dir: &Path) -> String {
    let d = dir.display();
    format!(
        "<domain type='qemu'>
           <name>{name}</name><uuid>{UUID}</uuid>
           <memory unit='MiB'>256</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='q35'>hvm</type>
             <kernel>{d}/vmlinuz</kernel><initrd>{d}/initrd.img</initrd>
             <cmdline>console=ttyS0 quiet panic=-1 cryptomgr.notests tresor.mode=idle tresor.agent=1</cmdline>
           </os>
           <on_reboot>destroy</on_reboot>
           <devices>
             <emulator>/usr/bin/qemu-system-x86_64</emulator>
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
               <source file='{d}/data.qcow2'/><target dev='vda' bus='virtio'/></disk>
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
               <source file='{d}/fs.qcow2'/><target dev='vdb' bus='virtio'/></disk>
             <serial type='file'><source path='{d}/serial.log'/><target port='0'/></serial>
             <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
             <video><model type='none'/></video><memballoon model='none'/>
           </devices>
         </domain>"
    )
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let vals: Vec<u32> = s
        .bytes()
        .filter(|&c| c != b'=')
        .map(|c| B64.iter().position(|&b| b == c).expect("base64") as u32)
        .collect();
    for chunk in vals.chunks(4) {
        let mut n = 0u32;
        for (i, v) in chunk.iter().enumerate() {
            n |= v << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn agent(domain: &Domain, command: &str, arguments: Value) -> anyhow::Result<Value> {
    let cmd = serde_json::json!({ "execute": command, "arguments": arguments }).to_string();
    let answer = domain.qemu_agent_command(&cmd, 30, 0).map_err(|e| {
        anyhow::anyhow!(
            "{command} ({} bytes: {}...): {e}",
            cmd.len(),
            &cmd[..cmd.len().min(300)]
        )
    })?;
    let v: Value = serde_json::from_str(&answer)?;
    Ok(v["return"].clone())
}

/// Runs `script` in the guest with `input` on its stdin; its stdout. Fails on a
/// non-zero exit.
fn guest_sh(domain: &Domain, script: &str, input: &[u8]) -> anyhow::Result<String> {
    let mut args = serde_json::json!({
        "path": "/bin/sh", "arg": ["-c", script], "capture-output": true,
    });
    if !input.is_empty() {
        args["input-data"] = b64_encode(input).into();
    }
    let pid = agent(domain, "guest-exec", args)?["pid"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("guest-exec gave no pid"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = agent(
            domain,
            "guest-exec-status",
            serde_json::json!({ "pid": pid }),
        )?;
        if status["exited"] == true {
            let out =
                String::from_utf8_lossy(&b64_decode(status["out-data"].as_str().unwrap_or("")))
                    .into_owned();
            let err =
                String::from_utf8_lossy(&b64_decode(status["err-data"].as_str().unwrap_or("")))
                    .into_owned();
            anyhow::ensure!(
                status["exitcode"] == 0,
                "{script:?} failed in the guest: {err}"
            );
            return Ok(out);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{script:?} did not end in the guest"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the domain and waits until its guest agent answers and the ext4 disk is
/// mounted (so freezing has a file system to freeze).
fn boot(domain: &Domain) -> anyhow::Result<()> {
    domain.create()?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while agent(domain, "guest-ping", serde_json::json!({})).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the guest agent did not answer within 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    guest_sh(
        domain,
        "mount -t ext4 /dev/vdb /data && echo hello > /data/hello && sync",
        &[],
    )?;
    Ok(())
}

/// Writes `len` random bytes at `offset` of the guest's `/dev/vda` (synced to the
/// disk), and into `expected`.
fn write(domain: &Domain, expected: &mut [u8], offset: u64, len: u64, seed: u64) {
    let mut data = vec![0u8; len as usize];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    assert_eq!(offset % 65536, 0);
    // In small pieces: the guest agent's channel takes small messages only.
    for (i, piece) in data.chunks(PIECE).enumerate() {
        let at = offset + (i * PIECE) as u64;
        guest_sh(
            domain,
            &format!(
                "dd of=/dev/vda bs=4096 seek={} conv=fsync 2>/dev/null",
                at / 4096
            ),
            piece,
        )
        .unwrap();
    }
    expected[offset as usize..(offset + len) as usize].copy_from_slice(&data);
}

async fn backup(repo: &Repository, p: &LibvirtProvider) -> VmBackupOutcome {
    backup_vm(
        repo,
        p,
        &VmRef(UUID.into()),
        VmBackupOptions {
            workers: 2,
            ..VmBackupOptions::default()
        },
    )
    .await
    .unwrap()
}

fn tresor_checkpoints(domain: &Domain) -> Vec<String> {
    let mut names = backup_api::list_checkpoints(domain).unwrap();
    names.sort();
    names
}

fn image(dir: &Path, file: &str, ext4: bool, size: u64) {
    let path = dir.join(file);
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if ext4 {
        let raw = dir.join("fs.raw");
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "raw"])
            .arg(&raw)
            .arg(size.to_string()));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&raw));
        run(Command::new("qemu-img")
            .args(["convert", "-O", "qcow2"])
            .arg(&raw)
            .arg(&path));
        std::fs::remove_file(raw).unwrap();
    } else {
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&path)
            .arg(size.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_domain_full_incremental_restart_self_healing_excluded_and_shut_off(
) -> anyhow::Result<()> {
    let _daemon = Libvirtd::ensure()?;
    let t = TestDomains::new("backup")?;
    let guest = GuestImage::build()?;
    std::fs::copy(&guest.kernel, t.images.join("vmlinuz"))?;
    std::fs::copy(&guest.initrd, t.images.join("initrd.img"))?;
    image(&t.images, "data.qcow2", false, DATA_SIZE);
    image(&t.images, "fs.qcow2", true, 16 * MIB);
    let domain = t.define(&domain_xml(&t.name("vm"), &t.images))?;
    boot(&domain)?;

    let work = tempfile::tempdir()?;
    let repo = repo(work.path());
    let provider =
        LibvirtProvider::new("qemu:///system").with_scratch_dir(t.images.join("scratch"));
    let mut expected = vec![0u8; DATA_SIZE as usize];
    write(&domain, &mut expected, 0, 2 * MIB, 1);
    write(&domain, &mut expected, 20 * MIB, MIB / 2, 2);

    // Full: frozen through libvirt, the disk as written, the checkpoint kept.
    let full = backup(&repo, &provider).await;
    let m = &full.manifest;
    assert_eq!(m.parent, None);
    assert!(full.warnings.is_empty(), "{:?}", full.warnings);
    assert_eq!(
        m.consistency,
        Consistency::FileSystemConsistent,
        "the guest agent froze /data"
    );
    assert!(full.frozen_for.is_some());
    assert!(
        m.stats.bytes_read >= 5 * MIB / 2 && m.stats.bytes_read < 10 * MIB,
        "{:?}",
        m.stats
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);
    let config = m.vm_config.as_ref().unwrap();
    assert_eq!(config["provider"], "libvirt");
    assert_eq!(config["uuid"], UUID);
    assert_eq!(config["checkpoint"], format!("tresor-{}", m.id));
    assert!(config["domain_xml"].as_str().unwrap().contains(UUID));
    assert_eq!(config["disks"][0]["format"], "qcow2");
    assert_eq!(tresor_checkpoints(&domain), [format!("tresor-{}", m.id)]);
    assert!(
        std::fs::read_dir(t.images.join("scratch"))?
            .next()
            .is_none(),
        "scratch folder left behind"
    );

    // Incremental: only what changed is read.
    write(&domain, &mut expected, 8 * MIB, MIB / 2, 3);
    let inc = backup(&repo, &provider).await;
    let m = &inc.manifest;
    assert_eq!(m.parent.as_deref(), Some(full.manifest.id.as_str()));
    assert_eq!(inc.full_reads, 0, "{:?}", inc.warnings);
    assert!(
        m.stats.bytes_read >= MIB / 2 && m.stats.bytes_read < 3 * MIB / 2,
        "read {} bytes for 512 KiB changed",
        m.stats.bytes_read
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);
    assert_eq!(
        tresor_checkpoints(&domain),
        [format!("tresor-{}", m.id)],
        "the older checkpoint is deleted"
    );

    // Stopped and started again between two backups: still incremental.
    domain.destroy()?;
    boot(&domain)?;
    write(&domain, &mut expected, 12 * MIB, MIB / 4, 4);
    let after_restart = backup(&repo, &provider).await;
    let m = &after_restart.manifest;
    assert_eq!(after_restart.full_reads, 0, "{:?}", after_restart.warnings);
    assert!(
        m.stats.bytes_read < 3 * MIB / 2,
        "read {} bytes after a restart",
        m.stats.bytes_read
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);

    // The checkpoint deleted by hand: a full read, deduplicated, and it says why.
    assert!(backup_api::delete_checkpoint(
        &domain,
        &format!("tresor-{}", m.id)
    )?);
    write(&domain, &mut expected, 16 * MIB, MIB / 8, 5);
    let healed = backup(&repo, &provider).await;
    let m = &healed.manifest;
    assert_eq!(
        m.parent.as_deref(),
        Some(after_restart.manifest.id.as_str())
    );
    assert!(healed.full_reads >= 1);
    assert!(
        healed.warnings.iter().any(|w| w.contains("vda")
            && w.contains("is gone")
            && w.contains("reading the whole disk")),
        "{:?}",
        healed.warnings
    );
    assert!(m.stats.bytes_read >= 3 * MIB, "a whole read: {:?}", m.stats);
    assert!(
        m.stats.bytes_added < MIB,
        "deduplicated against the stored points: {:?}",
        m.stats
    );
    assert_same(&restored(&repo, m, "vda", work.path()), &expected);
    assert_eq!(tresor_checkpoints(&domain), [format!("tresor-{}", m.id)]);

    // A disk excluded is absent from the point and named in its configuration.
    let without_fs = provider
        .clone()
        .with_excluded_disks(UUID, vec!["vdb".into()]);
    let selective = backup(&repo, &without_fs).await;
    let names: Vec<_> = selective
        .manifest
        .disks
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["vda"]);
    assert_eq!(
        selective.manifest.vm_config.as_ref().unwrap()["excluded_disks"][0],
        "vdb"
    );
    assert_same(
        &restored(&repo, &selective.manifest, "vda", work.path()),
        &expected,
    );

    // Shut off: the images are read directly, crash-consistent.
    domain.destroy()?;
    let off = backup(&repo, &provider).await;
    assert_eq!(off.manifest.consistency, Consistency::CrashConsistent);
    assert_same(
        &restored(&repo, &off.manifest, "vda", work.path()),
        &expected,
    );
    Ok(())
}
