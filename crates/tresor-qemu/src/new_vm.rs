//! A new VM made from a recovery point: its definition and QEMU command line, derived
//! from the configuration saved with the point and the restored disks.
//!
//! The saved command line is the original VM's; the new one differs where two VMs
//! must not be alike: disk images, name, UUID, MAC addresses and the control sockets.

use std::path::{Path, PathBuf};

use rand::Rng;
use serde_json::Value;
use tresor_vm::VmConfig;

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

/// Why a new VM cannot be defined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NewVmError {
    #[error("{0:?} cannot name a new VM: {1}. Use 1 to 64 letters, digits, '-', '_' or '.' (not '.' or '..')")]
    InvalidName(String, &'static str),
    #[error("{0:?} cannot name a restored disk file: {1}")]
    InvalidDiskName(String, &'static str),
}

impl NewVmError {
    /// Stable code of the error (PascalCase, like a job's error code).
    pub fn code(&self) -> &'static str {
        match self {
            NewVmError::InvalidName(..) => "InvalidVmName",
            NewVmError::InvalidDiskName(..) => "InvalidDiskName",
        }
    }
}

/// Checks a new VM's name: 1 to 64 of `[A-Za-z0-9._-]`, not `.` or `..`.
///
/// The name goes into file names, QEMU's `-name` and the start script; a strict
/// pattern keeps it from meaning anything there but itself.
pub fn validate_vm_name(name: &str) -> Result<(), NewVmError> {
    let bad = |why| Err(NewVmError::InvalidName(name.to_string(), why));
    if name.is_empty() || name.len() > 64 {
        return bad("it must be 1 to 64 characters long");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' name folders");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return bad("it holds a character other than a letter, digit, '-', '_' or '.'");
    }
    Ok(())
}

/// Checks a disk's name from a point before it becomes a file name in the restore
/// folder: exactly one ordinary path component, no control characters. The name
/// comes from the point's manifest, which a compromised host or server may have
/// written; `../x` or `/etc/x` must not leave the folder.
pub fn validate_disk_name(name: &str) -> Result<(), NewVmError> {
    let bad = |why| Err(NewVmError::InvalidDiskName(name.to_string(), why));
    if name.is_empty() || name.len() > 255 {
        return bad("it must be 1 to 255 bytes long");
    }
    if name == "." || name == ".." || name.contains('/') {
        return bad("it is not a plain file name");
    }
    if name.chars().any(char::is_control) {
        return bad("it holds control characters");
    }
    Ok(())
}

/// Defines VM `new_name` in `folder` from the saved configuration and the restored
/// disks. Sockets of the new VM are `folder/qmp.sock` and `folder/qga.sock`.
///
/// The saved configuration is treated as hostile: it was written by the host that was
/// backed up (and is handed back by the server), either of which may have been
/// compromised. Options that would run host programs or load code are dropped (see
/// [`sanitize_command_line`]), and the program must be a QEMU system emulator. A
/// libvirt domain's point has no QEMU command line: only its disks are carried over.
pub fn new_vm_definition(
    saved: Option<&VmConfig>,
    new_name: &str,
    folder: &Path,
    disks: &[RestoredDisk],
) -> Result<NewVm, NewVmError> {
    validate_vm_name(new_name)?;
    let mut notes = Vec::new();
    let qmp = folder.join("qmp.sock");
    let agent = folder.join("qga.sock");
    let qemu = saved.and_then(VmConfig::as_qemu);
    let sockets = qemu.map(|q| &q.sockets);
    let had_agent = sockets.is_some_and(|s| s.guest_agent.is_some());
    let config = QemuVmConfig {
        name: Some(new_name.to_string()),
        qmp: Some(qmp.clone()),
        guest_agent: had_agent.then(|| agent.clone()),
        disks: disks.iter().map(|d| d.path.clone()).collect(),
        ..QemuVmConfig::default()
    };
    let original = qemu
        .and_then(|q| q.command_line.clone())
        .filter(|a| !a.is_empty());
    let Some(original) = original else {
        notes.push(match saved {
            Some(VmConfig::Libvirt(_)) => "the point is a libvirt domain's and saved no QEMU command line: restore it as a libvirt domain on a host with libvirt, or attach the restored disks to a new VM by hand",
            _ => "the point saved no QEMU command line (the VM was stopped when backed up): attach the restored disks to a new VM by hand",
        }.to_string());
        return Ok(NewVm {
            config,
            command_line: None,
            notes,
        });
    };
    let (original, dropped) = sanitize_command_line(&original);
    notes.extend(dropped);

    // Text replacements: old image paths and sockets.
    let mut replace: Vec<Replacement> = Vec::new();
    for d in disks {
        match saved.and_then(|s| s.disk(&d.name)) {
            // An empty "old path" would match every argument.
            Some(old) if !old.image.is_empty() => {
                let old_format = old.format.clone();
                let format_change = (old_format != d.format && !old_format.is_empty())
                    .then(|| (old_format, d.format.clone()));
                replace.push((
                    old.image.clone(),
                    d.path.display().to_string(),
                    format_change,
                ));
            }
            _ => notes.push(format!(
                "disk {}: the saved configuration does not say where it was attached",
                d.name
            )),
        }
    }
    let saved_socket = |socket: &Option<String>| socket.clone().filter(|s| !s.is_empty());
    if let Some(old) = sockets.and_then(|s| saved_socket(&s.qmp)) {
        replace.push((old, qmp.display().to_string(), None));
    }
    if let Some(old) = sockets.and_then(|s| saved_socket(&s.guest_agent)) {
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
    let outside = host_paths_outside(&out[1..], folder);
    if !outside.is_empty() {
        notes.push(format!(
            "the new VM's command line still names host paths outside {}: {}; check them before starting it",
            folder.display(),
            outside.join(", ")
        ));
    }
    Ok(NewVm {
        config,
        command_line: Some(out),
        notes,
    })
}

/// Options dropped whole (with their value) from a saved command line, and why.
///
/// The saved command line was read from `/proc/PID/cmdline` on the backed-up host and
/// comes back through the server: a compromised host or server can put anything in
/// it. A restored VM is started by an operator, often as root, so nothing in it may
/// run a host program, load code into QEMU, or write host files the operator did
/// not choose. These options do, whatever their value.
const DROPPED_OPTIONS: &[(&str, &str)] = &[
    (
        "incoming",
        "waits for a migration, and 'exec:' runs a host command",
    ),
    ("plugin", "loads a shared library into QEMU"),
    (
        "run-with",
        "changes how and where QEMU runs (chroot, teardown process)",
    ),
    ("readconfig", "reads more options from a host file"),
    (
        "add-fd",
        "hands QEMU file descriptors of the starting shell",
    ),
    ("virtfs", "shares a host folder with the guest"),
    ("fsdev", "shares a host folder with the guest"),
    ("pidfile", "writes a host file"),
    ("D", "writes a host file (the log)"),
    ("trace", "writes a host file (the trace)"),
];

/// Keys that make an option run a host program: tap's `script`/`downscript`, the
/// bridge's `helper`, user networking's `smb` (runs smbd). Any option whose value sets
/// one of them is dropped with its value.
const DROPPED_KEYS: &[&str] = &["script", "downscript", "helper", "smb"];

/// Options that take no value (so the next argument is an option of its own).
const FLAG_OPTIONS: &[&str] = &[
    "daemonize",
    "S",
    "nodefaults",
    "no-reboot",
    "no-shutdown",
    "no-user-config",
    "enable-kvm",
    "snapshot",
    "nographic",
    "full-screen",
    "no-hpet",
    "no-acpi",
    "s",
    "only-migratable",
    "enable-fips",
    "preconfig",
    "win2k-hack",
    "no-fd-bootchk",
];

/// Removes from a saved QEMU command line what would run host programs, load code or
/// write host files when the new VM starts; returns the kept arguments and one note
/// per dropped option. Also keeps the program to a QEMU system emulator (`argv[0]`
/// from the saved configuration might name any program).
pub fn sanitize_command_line(args: &[String]) -> (Vec<String>, Vec<String>) {
    let mut notes = Vec::new();
    let mut out = Vec::with_capacity(args.len());
    let Some(program) = args.first() else {
        return (out, notes);
    };
    out.push(qemu_program(program, &mut notes));
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            // A value without an option before it: QEMU reads it as the first disk's
            // image (like -hda); keep it, the disk check below names it.
            if let Some(key) = dropped_key(arg) {
                notes.push(format!(
                    "dropped {:?} from the command line: it sets {key}=, which runs a host program",
                    arg
                ));
            } else {
                out.push(arg.clone());
            }
            i += 1;
            continue;
        };
        // `-opt=value` is not QEMU's syntax, but refuse it as if it were.
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (name, None),
        };
        let takes_value = inline.is_none() && !FLAG_OPTIONS.contains(&name);
        // An argument that starts with '-' is read as the next option, never as a
        // value: a flag this list lacks cannot hide a dropped option behind it.
        let value = if takes_value {
            args.get(i + 1).filter(|v| !v.starts_with('-'))
        } else {
            None
        };
        let value_text = inline.or(value.map(String::as_str));
        let why = DROPPED_OPTIONS
            .iter()
            .find(|(o, _)| *o == name)
            .map(|(_, why)| why.to_string())
            .or_else(|| {
                value_text
                    .and_then(dropped_key)
                    .map(|k| format!("it sets {k}=, which runs a host program"))
            });
        let used = if value.is_some() { 2 } else { 1 };
        match why {
            Some(why) => notes.push(format!(
                "dropped {} from the command line: {why}",
                args[i..i + used]
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            None => out.extend(args[i..i + used].iter().cloned()),
        }
        i += used;
    }
    (out, notes)
}

/// The saved program, if it is a QEMU system emulator in a system folder; else the
/// emulator's bare name (found through `PATH` when the script runs).
fn qemu_program(program: &str, notes: &mut Vec<String>) -> String {
    let path = Path::new(program);
    let base = path.file_name().and_then(|b| b.to_str()).unwrap_or("");
    let is_qemu = base == "qemu-kvm"
        || base.strip_prefix("qemu-system-").is_some_and(|arch| {
            !arch.is_empty() && arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !is_qemu {
        notes.push(format!(
            "the saved command line started {program:?}, which is not a QEMU system emulator: the start script runs qemu-system-x86_64 instead"
        ));
        return "qemu-system-x86_64".into();
    }
    let system_dirs = [
        "/usr/bin",
        "/bin",
        "/usr/local/bin",
        "/usr/libexec",
        "/usr/sbin",
    ];
    match path.parent().and_then(Path::to_str) {
        Some("") | None => base.to_string(),
        Some(dir) if system_dirs.contains(&dir) => program.to_string(),
        Some(_) => {
            notes.push(format!(
                "the saved command line started {program:?}, outside the system's program folders: the start script runs {base} from PATH instead"
            ));
            base.to_string()
        }
    }
}

/// The first key of [`DROPPED_KEYS`] that `value` sets, in QEMU's `k=v,k=v` syntax
/// (also through `-set group.id.key=value`) or as JSON. Errs on the side of dropping:
/// `,,` escapes and unparsable JSON count as setting the key.
fn dropped_key(value: &str) -> Option<&'static str> {
    if value.trim_start().starts_with('{') {
        return match serde_json::from_str::<Value>(value) {
            Ok(v) => json_key(&v),
            Err(_) => {
                Some(DROPPED_KEYS[0]).filter(|_| DROPPED_KEYS.iter().any(|k| value.contains(k)))
            }
        };
    }
    for part in value.split(',') {
        let key = part.split_once('=').map(|(k, _)| k).unwrap_or("");
        // `-set netdev.n0.script=x`: the key is the last dotted part.
        let key = key.rsplit('.').next().unwrap_or(key);
        if let Some(k) = DROPPED_KEYS.iter().find(|k| **k == key) {
            return Some(k);
        }
    }
    None
}

fn json_key(v: &Value) -> Option<&'static str> {
    match v {
        Value::Object(m) => m.iter().find_map(|(k, v)| {
            DROPPED_KEYS
                .iter()
                .find(|d| **d == k.as_str())
                .copied()
                .or_else(|| json_key(v))
        }),
        Value::Array(a) => a.iter().find_map(json_key),
        _ => None,
    }
}

/// Absolute paths in `args` (whole arguments, or values of `key=` parts) outside
/// `folder`: files the new VM would open on the host that the restore did not make.
fn host_paths_outside(args: &[String], folder: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for arg in args {
        let candidates = std::iter::once(arg.as_str()).chain(
            arg.split(',')
                .filter_map(|p| p.split_once('=').map(|(_, v)| v))
                .flat_map(|v| [v, v.strip_prefix("unix:").unwrap_or(v)]),
        );
        for c in candidates.chain(
            arg.strip_prefix("unix:")
                .map(|s| s.split(',').next().unwrap_or(s)),
        ) {
            if c.starts_with('/')
                && !Path::new(c).starts_with(folder)
                && !found.iter().any(|f: &String| f == c)
            {
                found.push(c.to_string());
            }
        }
    }
    found
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

/// `arg` as one word of a POSIX shell, taken literally: single-quoted, with each `'`
/// written as `'\''`. Inside single quotes the shell expands nothing (`$`, backquotes,
/// `;`, newlines are plain characters).
pub fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// `args` as one line a POSIX shell runs as it is, every argument quoted.
pub fn shell_command(args: &[String]) -> String {
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text for a comment line: what is not a letter, digit or one of ` -_.:,/+@` becomes
/// `?`, so that no value (a point's name comes from its manifest) can end the comment.
fn comment_text(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.:,/+@".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The new VM's `start-vm.sh`: a fixed script that `exec`s QEMU with `command_line`,
/// each argument single-quoted on a line of its own. `name` must have passed
/// [`validate_vm_name`]; the point's id and name only appear in a comment, cleaned.
pub fn start_script(
    name: &str,
    point_id: &str,
    point_name: &str,
    command_line: &[String],
) -> String {
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(&format!(
        "# Starts VM {}, restored from recovery point {} of {}.\n",
        comment_text(name),
        comment_text(point_id),
        comment_text(point_name)
    ));
    s.push_str("# Every argument is single-quoted: the shell passes it to QEMU as it is.\n");
    s.push_str("exec");
    for a in command_line {
        s.push_str(" \\\n  ");
        s.push_str(&shell_quote(a));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A saved configuration as a point stores it.
    fn saved(json: Value) -> VmConfig {
        VmConfig::of_point(Some(&json)).unwrap().unwrap()
    }

    #[test]
    fn command_line_is_rewritten_for_the_new_vm() {
        let saved = saved(json!({
            "provider": "qemu",
            "disks": [{"name": "vda", "image": "/vms/web.qcow2", "format": "qcow2", "node": "disk0", "virtual_size": 1}],
            "sockets": {"qmp": "/run/web.qmp", "guest_agent": "/run/web.qga"},
            "command_line": ["qemu-system-x86_64", "-name", "guest=web,debug-threads=on",
                "-uuid", "0b9c5f6e-0000-4000-8000-000000000001",
                "-blockdev", "driver=file,filename=/vms/web.qcow2,node-name=f0",
                "-qmp", "unix:/run/web.qmp,server=on,wait=off",
                "-chardev", "socket,path=/run/web.qga,server=on,wait=off,id=qga0",
                "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"]
        }));
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
        )
        .unwrap();
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
        assert_eq!(shell_command(&args), "'a b' 'it'\\''s' '-x=1,y'");
    }

    #[test]
    fn vm_names_are_checked() {
        for ok in ["web01", "a", "web-01_copy.2", &"x".repeat(64), "..a", ".a"] {
            assert!(validate_vm_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            &"x".repeat(65),
            "x'; touch /tmp/pwned; '",
            "a b",
            "a/b",
            "$(id)",
            "a\nb",
            "é",
            "a,b",
        ] {
            let e = validate_vm_name(bad).unwrap_err();
            assert_eq!(e.code(), "InvalidVmName");
            assert!(e.to_string().contains("1 to 64 letters"), "{e}");
        }
        let e = new_vm_definition(None, "x'; touch /tmp/pwned; '", Path::new("/r"), &[]);
        assert_eq!(e.unwrap_err().code(), "InvalidVmName");
    }

    #[test]
    fn disk_names_stay_in_the_folder() {
        for ok in ["vda", "disk.raw", "my disk.img", ".hidden"] {
            assert!(validate_disk_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b", "a\nb"] {
            assert_eq!(
                validate_disk_name(bad).unwrap_err().code(),
                "InvalidDiskName"
            );
        }
    }

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_that_run_host_programs_are_dropped() {
        let (kept, notes) = sanitize_command_line(&strings(&[
            "/usr/bin/qemu-system-x86_64",
            "-nodefaults",
            "-netdev",
            "tap,id=n0,script=/tmp/evil,downscript=no",
            "-netdev",
            r#"{"type":"tap","id":"n1","script":"/tmp/evil"}"#,
            "-nic",
            "user,smb=/srv",
            "-netdev",
            "bridge,id=n2,helper=/tmp/evil",
            "-set",
            "netdev.n3.script=/tmp/evil",
            "-incoming",
            "exec:touch /tmp/pwned",
            "-plugin",
            "/tmp/evil.so",
            "-run-with",
            "chroot=/",
            "-readconfig",
            "/tmp/evil.cfg",
            "-virtfs",
            "local,path=/,mount_tag=root,security_model=none",
            "-pidfile",
            "/etc/passwd",
            "-unknown-flag",
            "-plugin",
            "/tmp/evil2.so",
            "-netdev",
            "user,id=n4",
            "-m",
            "512",
        ]));
        assert_eq!(
            kept,
            strings(&[
                "/usr/bin/qemu-system-x86_64",
                "-nodefaults",
                "-unknown-flag",
                "-netdev",
                "user,id=n4",
                "-m",
                "512"
            ])
        );
        assert_eq!(notes.len(), 12, "{notes:#?}");
        assert!(
            notes.iter().all(|n| n.starts_with("dropped ")),
            "{notes:#?}"
        );
    }

    #[test]
    fn only_a_qemu_emulator_is_started() {
        let program = |p: &str| sanitize_command_line(&strings(&[p, "-m", "1"])).0[0].clone();
        assert_eq!(
            program("/usr/bin/qemu-system-aarch64"),
            "/usr/bin/qemu-system-aarch64"
        );
        assert_eq!(program("qemu-kvm"), "qemu-kvm");
        assert_eq!(program("/tmp/qemu-system-x86_64"), "qemu-system-x86_64");
        assert_eq!(program("/bin/sh"), "qemu-system-x86_64");
        assert_eq!(program("qemu-system-x86_64;id"), "qemu-system-x86_64");
    }

    #[test]
    fn the_start_script_quotes_every_argument() {
        let saved = saved(json!({
            "provider": "qemu",
            "disks": [{"name": "vda", "image": "/vms/web.raw", "format": "raw", "virtual_size": 1}],
            "command_line": ["qemu-system-x86_64", "-name", "web",
                "-drive", "file=/vms/web.raw,format=raw",
                "-append", "$(touch /tmp/pwned) `id` ; rm -rf / 'x' \"y\"\nz"],
        }));
        let folder = Path::new("/restore/it's here");
        let new = new_vm_definition(
            Some(&saved),
            "web2",
            folder,
            &[RestoredDisk {
                name: "vda".into(),
                path: folder.join("vda.raw"),
                format: "raw".into(),
            }],
        )
        .unwrap();
        let cl = new.command_line.unwrap();
        let script = start_script("web2", "0123", "web\nrm -rf /", &cl);
        // Every line after the comments is `exec` or one quoted argument.
        let mut lines = script.lines();
        assert_eq!(lines.next(), Some("#!/bin/sh"));
        assert!(
            lines.next().unwrap().ends_with("of web?rm -rf /."),
            "{script}"
        );
        assert!(
            script.contains("'$(touch /tmp/pwned) `id` ; rm -rf / '\\''x'\\'' \"y\"\nz'"),
            "{script}"
        );
        assert!(
            script.contains("'file=/restore/it'\\''s here/vda.raw,format=raw'"),
            "{script}"
        );
    }
}
