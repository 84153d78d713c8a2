//! A new VM made from a recovery point: its definition and QEMU command line, derived
//! from the configuration saved with the point and the restored disks.
//!
//! The saved command line is the original VM's; the new one differs where two VMs
//! must not be alike: disk images, name, UUID, MAC addresses and the control sockets.

use std::path::{Path, PathBuf};

use rand::Rng;
use serde_json::Value;

use crate::QemuVmConfig;

/// A disk restored for the new VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredDisk {
    /// The disk's name in the point (`vda`).
    pub name: String,
    pub path: PathBuf,
    /// `qcow2` or `raw`.
    pub format: String,
}

/// What [`new_vm_definition`] makes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVm {
    /// The definition the agent reads (disks for offline backups, sockets when it runs).
    pub config: QemuVmConfig,
    /// QEMU's command line for the new VM, when the point saved the original's.
    pub command_line: Option<Vec<String>>,
    /// What could not be carried over and needs a look.
    pub notes: Vec<String>,
}

/// A disk's format in `saved` (a point's `vm_config`).
pub fn saved_disk_format(saved: Option<&Value>, disk: &str) -> Option<String> {
    saved_disk_field(saved, disk, "format")
}

/// The image a disk lived in, as `saved` (a point's `vm_config`) says.
pub fn saved_disk_image(saved: Option<&Value>, disk: &str) -> Option<PathBuf> {
    saved_disk_field(saved, disk, "image").map(PathBuf::from)
}

fn saved_disk_field(saved: Option<&Value>, disk: &str, field: &str) -> Option<String> {
    saved?
        .get("disks")?
        .as_array()?
        .iter()
        .find(|d| d.get("name").and_then(Value::as_str) == Some(disk))?
        .get(field)?
        .as_str()
        .map(str::to_string)
}

/// Defines VM `new_name` in `folder` from the saved configuration and the restored
/// disks. Sockets of the new VM are `folder/qmp.sock` and `folder/qga.sock`.
pub fn new_vm_definition(
    saved: Option<&Value>,
    new_name: &str,
    folder: &Path,
    disks: &[RestoredDisk],
) -> NewVm {
    let mut notes = Vec::new();
    let qmp = folder.join("qmp.sock");
    let agent = folder.join("qga.sock");
    let saved_socket = |key: &str| {
        saved
            .and_then(|s| s.get("sockets"))
            .and_then(|s| s.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let had_agent = saved_socket("guest_agent").is_some();
    let config = QemuVmConfig {
        name: Some(new_name.to_string()),
        qmp: Some(qmp.clone()),
        guest_agent: had_agent.then(|| agent.clone()),
        disks: disks.iter().map(|d| d.path.clone()).collect(),
        ..QemuVmConfig::default()
    };
    let original = saved
        .and_then(|s| s.get("command_line"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|a| !a.is_empty());
    let Some(original) = original else {
        notes.push(
            "the point saved no QEMU command line (the VM was stopped when backed up): attach the restored disks to a new VM by hand"
                .to_string(),
        );
        return NewVm {
            config,
            command_line: None,
            notes,
        };
    };

    // Text replacements: old image paths and sockets.
    let mut replace: Vec<Replacement> = Vec::new();
    for d in disks {
        match saved_disk_image(saved, &d.name) {
            Some(old) => {
                let old_format = saved_disk_format(saved, &d.name).unwrap_or_default();
                let format_change = (old_format != d.format && !old_format.is_empty())
                    .then(|| (old_format, d.format.clone()));
                replace.push((
                    old.display().to_string(),
                    d.path.display().to_string(),
                    format_change,
                ));
            }
            None => notes.push(format!(
                "disk {}: the saved configuration does not say where it was attached",
                d.name
            )),
        }
    }
    if let Some(old) = saved_socket("qmp") {
        replace.push((old, qmp.display().to_string(), None));
    }
    if let Some(old) = saved_socket("guest_agent") {
        replace.push((old, agent.display().to_string(), None));
    }

    let mut out = Vec::with_capacity(original.len());
    let mut args = original.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-name" => {
                out.push(arg);
                let value = args.next().unwrap_or_default();
                out.push(renamed(&value, new_name));
                continue;
            }
            // Two VMs must not share a UUID: the new one gets a new one.
            "-uuid" => {
                out.push(arg);
                let _ = args.next();
                out.push(random_uuid());
                continue;
            }
            _ => {}
        }
        let mut arg = arg;
        for (old, new, format_change) in &replace {
            if arg.contains(old.as_str()) {
                arg = arg.replace(old.as_str(), new);
                if let Some((from, to)) = format_change {
                    let before = arg.clone();
                    arg = arg.replace(&format!("format={from}"), &format!("format={to}"));
                    if arg == before {
                        notes.push(format!(
                            "the disk now at {new} changed format from {from} to {to}: check the driver in the command line"
                        ));
                    }
                }
            }
        }
        out.push(new_macs(&arg));
    }
    NewVm {
        config,
        command_line: Some(out),
        notes,
    }
}

/// An old path, its new value, and a format change (`from`, `to`) of the disk there.
type Replacement = (String, String, Option<(String, String)>);

/// `-name` values are `NAME` or `guest=NAME,opt=...` or `NAME,opt=...`.
fn renamed(value: &str, new_name: &str) -> String {
    let (head, rest) = match value.find(',') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if head.starts_with("guest=") {
        format!("guest={new_name}{rest}")
    } else {
        format!("{new_name}{rest}")
    }
}

/// Gives every `mac=` in `arg` a new, locally administered address (QEMU's 52:54:00
/// prefix), so the new VM does not clash with the original on the network.
fn new_macs(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(i) = rest.find("mac=") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let end = rest.find(',').unwrap_or(rest.len());
        let mut rng = rand::thread_rng();
        out.push_str(&format!(
            "52:54:00:{:02x}:{:02x}:{:02x}",
            rng.gen::<u8>(),
            rng.gen::<u8>(),
            rng.gen::<u8>()
        ));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `args` as one line a POSIX shell runs as it is.
pub fn shell_command(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_line_is_rewritten_for_the_new_vm() {
        let saved = json!({
            "provider": "qemu",
            "disks": [{"name": "vda", "image": "/vms/web.qcow2", "format": "qcow2", "node": "disk0", "virtual_size": 1}],
            "sockets": {"qmp": "/run/web.qmp", "guest_agent": "/run/web.qga"},
            "command_line": ["qemu-system-x86_64", "-name", "guest=web,debug-threads=on",
                "-uuid", "0b9c5f6e-0000-4000-8000-000000000001",
                "-blockdev", "driver=file,filename=/vms/web.qcow2,node-name=f0",
                "-qmp", "unix:/run/web.qmp,server=on,wait=off",
                "-chardev", "socket,path=/run/web.qga,server=on,wait=off,id=qga0",
                "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"]
        });
        let folder = Path::new("/restore/web2");
        let new = new_vm_definition(
            Some(&saved),
            "web2",
            folder,
            &[RestoredDisk {
                name: "vda".into(),
                path: folder.join("vda.qcow2"),
                format: "qcow2".into(),
            }],
        );
        let cl = new.command_line.unwrap();
        assert_eq!(cl[2], "guest=web2,debug-threads=on");
        assert_ne!(cl[4], "0b9c5f6e-0000-4000-8000-000000000001");
        assert_eq!(cl[4].len(), 36);
        assert_eq!(
            cl[6],
            "driver=file,filename=/restore/web2/vda.qcow2,node-name=f0"
        );
        assert_eq!(cl[8], "unix:/restore/web2/qmp.sock,server=on,wait=off");
        assert_eq!(
            cl[10],
            "socket,path=/restore/web2/qga.sock,server=on,wait=off,id=qga0"
        );
        assert!(cl[12].starts_with("virtio-net-pci,netdev=n0,mac=52:54:00:"));
        assert_ne!(cl[12], "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56");
        assert_eq!(new.config.disks, vec![folder.join("vda.qcow2")]);
        assert_eq!(new.config.guest_agent, Some(folder.join("qga.sock")));
        assert!(new.notes.is_empty(), "{:?}", new.notes);
    }

    #[test]
    fn shell_quoting() {
        let args = vec!["a b".to_string(), "it's".to_string(), "-x=1,y".to_string()];
        assert_eq!(shell_command(&args), "'a b' 'it'\\''s' -x=1,y");
    }
}
