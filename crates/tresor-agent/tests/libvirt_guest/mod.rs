//! The test guest (tresor-testguest: a kernel, an initrd, qemu-guest-agent) as a
//! libvirt domain, and what the libvirt tests do with it through its guest agent:
//! boot it and wait for the agent, run a shell command in it, write known bytes to
//! its raw disk. Shared by tests/libvirt_backup.rs and tests/libvirt_restore.rs.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use serde_json::Value;
use tresor_libvirt::backup_api;
use virt::domain::Domain;

/// The test guest defined as domain `short` of `t` with UUID `uuid` (kernel and
/// initrd beside its images, `vda` of `data_size` bytes, `vdb` ext4) and booted.
pub fn booted_guest(
    t: &crate::libvirt_common::TestDomains,
    short: &str,
    uuid: &str,
    data_size: u64,
) -> anyhow::Result<Domain> {
    let guest = tresor_testguest::GuestImage::build()?;
    std::fs::copy(&guest.kernel, t.images.join("vmlinuz"))?;
    std::fs::copy(&guest.initrd, t.images.join("initrd.img"))?;
    image(&t.images, "data.qcow2", false, data_size);
    image(&t.images, "fs.qcow2", true, 16 << 20);
    let domain = t.define(&domain_xml(&t.name(short), uuid, &t.images, &t.images, ""))?;
    boot(&domain)?;
    Ok(domain)
}

/// Bytes handed to the guest per command.
const PIECE: usize = 48 << 10;

/// The test guest as a TCG domain: its kernel and initrd in `boot`, its disks
/// `vda` (`data.qcow2`, raw bytes) and `vdb` (`fs.qcow2`, ext4) in `images`, a guest
/// agent channel, and `devices` (more XML inside `<devices>`).
pub fn domain_xml(name: &str, uuid: &str, images: &Path, boot: &Path, devices: &str) -> String {
    let d = images.display();
    let b = boot.display();
    format!(
        "<domain type='qemu'>
           <name>{name}</name><uuid>{uuid}</uuid>
           <memory unit='MiB'>256</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='q35'>hvm</type>
             <kernel>{b}/vmlinuz</kernel><initrd>{b}/initrd.img</initrd>
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
             {devices}
           </devices>
         </domain>"
    )
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64_encode(data: &[u8]) -> String {
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

pub fn b64_decode(s: &str) -> Vec<u8> {
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

pub fn agent(domain: &Domain, command: &str, arguments: Value) -> anyhow::Result<Value> {
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
pub fn guest_sh(domain: &Domain, script: &str, input: &[u8]) -> anyhow::Result<String> {
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
pub fn boot(domain: &Domain) -> anyhow::Result<()> {
    domain.create()?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while agent(domain, "guest-ping", serde_json::json!({})).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the guest agent did not answer within 90 s; the guest's console said:\n{}",
            serial_tail(domain)
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

/// The last lines of the domain's serial console file (`<serial type='file'>`), to
/// say why a guest did not come up.
fn serial_tail(domain: &Domain) -> String {
    let xml = domain.get_xml_desc(0).unwrap_or_default();
    let Some(path) = xml
        .split("<source path='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .filter(|p| p.ends_with("serial.log"))
    else {
        return "(no serial console file)".into();
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Writes `len` random bytes at `offset` of the guest's `/dev/vda` (synced to the
/// disk), and into `expected`.
pub fn write(domain: &Domain, expected: &mut [u8], offset: u64, len: u64, seed: u64) {
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

pub fn tresor_checkpoints(domain: &Domain) -> Vec<String> {
    let mut names = backup_api::list_checkpoints(domain).unwrap();
    names.sort();
    names
}

pub fn image(dir: &Path, file: &str, ext4: bool, size: u64) {
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
