//! Restoring a recovery point on a host: its disks into a folder, a new VM made of
//! them, or the disks written back over the stopped original.
//!
//! Shared by `tresor repo restore-vm` (without a server) and the agent's restore jobs.
//! The agent confines folders to its restore roots (`confine.rs`) before it calls
//! this; here every name that becomes a file name (the new VM's, each disk's) is
//! checked, and the files of a new VM are created new, never through a link.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tresor_engine::progress::Progress;
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{Manifest, Repository};
use tresor_qemu::{
    new_vm_definition, start_script, validate_disk_name, validate_vm_name, NewVmError, RestoredDisk,
};
use tresor_vm::{VmConfig, VmConfigError, VmDisk};

use crate::confine::PathRefused;

/// What to make of a point.
#[derive(Debug, Clone)]
pub enum RestoreMode {
    /// Every disk into `folder` (new or empty).
    Disks {
        folder: PathBuf,
        format: Option<OutputFormat>,
    },
    /// The disks, plus `vm.json` (a definition the agent reads) and `start-vm.sh`.
    NewVm {
        folder: PathBuf,
        name: String,
        format: Option<OutputFormat>,
    },
    /// The disks over the VM's own images (VM stopped). `known`: the images the host
    /// knows the VM by (its own inventory), matched by disk name; the agent always
    /// gives them, since the point's saved paths come from the server. `None` trusts
    /// the point's saved configuration (`tresor repo restore-vm`, run by the host's
    /// own operator on a repository of their own).
    ReplaceOriginal { known: Option<Vec<VmDisk>> },
}

/// What a restore made.
#[derive(Debug, Clone, Default)]
pub struct RestoreOutcome {
    pub disks: Vec<RestoredDisk>,
    pub definition: Option<PathBuf>,
    pub start_script: Option<PathBuf>,
    pub notes: Vec<String>,
    /// A libvirt domain defined from the point (the libvirt restore, `libvirt_restore.rs`).
    pub domain: Option<tresor_api::jobs::RestoredLibvirtDomain>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// Bad input: the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// The original VM still runs on its disks.
    #[error("{0}")]
    InUse(String),
    /// A target outside the host's restore roots.
    #[error("{0}")]
    PathNotAllowed(#[from] PathRefused),
    /// A new VM's or a disk's name that cannot be used.
    #[error("{0}")]
    Name(#[from] NewVmError),
    /// Replace-disks: a disk of the point that the host does not know the VM by.
    #[error("{0}")]
    UnknownDisk(String),
    /// Replace-disks of a libvirt domain that is not shut off (the message names its
    /// state).
    #[error("{0}")]
    NotShutOff(String),
    /// Replace-disks of a libvirt domain this host does not know.
    #[error("{0}")]
    NoSuchDomain(String),
    /// A new libvirt domain's name that a domain of the host has.
    #[error("{0}")]
    NameTaken(String),
    /// A point's stored domain definition that cannot become a new domain's.
    #[error("{0}")]
    Definition(String),
    #[error("{0}")]
    Libvirt(String),
    #[error("{0}")]
    Engine(#[from] tresor_engine::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl RestoreError {
    /// The stable code a job reports.
    pub fn code(&self) -> &'static str {
        match self {
            RestoreError::Invalid(_) => "InvalidRestoreRequest",
            RestoreError::InUse(_) => "VmInUse",
            RestoreError::PathNotAllowed(_) => "RestorePathNotAllowed",
            RestoreError::Name(e) => e.code(),
            RestoreError::UnknownDisk(_) => "OriginalDiskUnknown",
            RestoreError::NotShutOff(_) => "VmNotShutOff",
            RestoreError::NoSuchDomain(_) => "VmNotFound",
            RestoreError::NameTaken(_) => "VmNameExists",
            RestoreError::Definition(_) => "InvalidDomainDefinition",
            RestoreError::Libvirt(_) => "LibvirtFailed",
            RestoreError::Engine(_) | RestoreError::Io { .. } => "RestoreFailed",
        }
    }

    /// What to do about it.
    pub fn recommendation(&self) -> &'static str {
        match self {
            RestoreError::Invalid(_) => "change the restore request as the message says",
            RestoreError::InUse(_) => "stop the VM, then restore again",
            RestoreError::PathNotAllowed(_) => "restore into a new folder under one of the host's restore roots, or add a root to restore_roots in the agent's configuration",
            RestoreError::Name(NewVmError::InvalidName(..)) => "give the new VM a name of 1 to 64 letters, digits, '-', '_' or '.'",
            RestoreError::Name(_) => "the recovery point's disk names cannot be file names; restore its disks one by one with tresor repo restore --output",
            RestoreError::NotShutOff(_) => "shut the domain off (virsh shutdown), then restore again",
            RestoreError::NoSuchDomain(_) => "restore as a new domain (CreateVm) or restore the disks into a folder",
            RestoreError::NameTaken(_) => "give the new domain a name no domain of the host has (newName)",
            RestoreError::Definition(_) => "restore the disks into a folder (RestoreDisks) and define a domain for them by hand",
            RestoreError::Libvirt(_) => "check that libvirtd runs and what the message says, then restore again",
            RestoreError::UnknownDisk(_) => "add the VM's disk images to its entry in the agent's configuration (disks = [...]), or restore the disks into a folder and move them by hand",
            RestoreError::Engine(_) | RestoreError::Io { .. } => "check the target path and free space on the host, then restore again",
        }
    }
}

/// A point's saved VM configuration as a restore reads it: typed, or, when the point
/// has one that cannot be read, treated as missing with the reason kept for a note.
#[derive(Debug, Clone)]
pub struct SavedConfig {
    point: String,
    config: Option<VmConfig>,
    unreadable: Option<VmConfigError>,
}

impl SavedConfig {
    pub fn of(point: &Manifest) -> SavedConfig {
        let (config, unreadable) = match VmConfig::of_point(point.vm_config.as_ref()) {
            None => (None, None),
            Some(Ok(c)) => (Some(c), None),
            Some(Err(e)) => (None, Some(e)),
        };
        SavedConfig {
            point: point.id.clone(),
            config,
            unreadable,
        }
    }

    /// The configuration, when the point has one that reads.
    pub fn config(&self) -> Option<&VmConfig> {
        self.config.as_ref()
    }

    /// Why the point's configuration cannot be read, when it cannot.
    pub fn unreadable(&self) -> Option<&VmConfigError> {
        self.unreadable.as_ref()
    }

    /// The note a restore gives when the configuration cannot be read: the reason,
    /// then `consequence` (what the restore did without it).
    pub fn note(&self, consequence: &str) -> Option<String> {
        self.unreadable
            .as_ref()
            .map(|e| format!("recovery point {}: {e}; {consequence}", self.point))
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RestoreError {
    let what = what.into();
    move |source| RestoreError::Io { what, source }
}

/// Restores `point` as `mode` says. Blocking.
pub fn restore_point(
    repo: &Repository,
    point: &Manifest,
    mode: &RestoreMode,
    progress: Option<&Progress>,
) -> Result<RestoreOutcome, RestoreError> {
    // Every name is checked before anything is written.
    if let RestoreMode::NewVm { name, .. } = mode {
        validate_vm_name(name)?;
    }
    if !matches!(mode, RestoreMode::ReplaceOriginal { .. }) {
        for disk in &point.disks {
            validate_disk_name(&disk.name)?;
        }
    }
    let saved = SavedConfig::of(point);
    // What a restore without the configuration does differently (a replace reads it
    // only without the host's own disks, and then fails saying why).
    let consequence = match mode {
        RestoreMode::ReplaceOriginal { .. } => None,
        RestoreMode::Disks { .. } => Some("the disks were restored as qcow2 unless a format was asked for"),
        RestoreMode::NewVm { .. } => Some("the new VM's definition carries nothing over from the original (its disks in qcow2 unless a format was asked for)"),
    };
    let mut out = match mode {
        RestoreMode::ReplaceOriginal { known } => {
            replace_original(repo, point, &saved, known.as_deref(), progress)
        }
        RestoreMode::Disks { folder, format } => {
            let (_, disks) = disks_into(repo, point, saved.config(), folder, *format, progress)?;
            Ok(RestoreOutcome {
                disks,
                ..RestoreOutcome::default()
            })
        }
        RestoreMode::NewVm {
            folder,
            name,
            format,
        } => {
            let (folder, disks) =
                disks_into(repo, point, saved.config(), folder, *format, progress)?;
            let new_vm = new_vm_definition(saved.config(), name, &folder, &disks)?;
            let definition = folder.join("vm.json");
            let json = serde_json::to_vec_pretty(&new_vm.config)
                .map_err(|e| RestoreError::Invalid(e.to_string()))?;
            write_new(&definition, &json, 0o600)?;
            // The configuration as the point stores it, unread members and all.
            if let Some(config) = point.vm_config.as_ref().filter(|c| !c.is_null()) {
                let path = folder.join("original-config.json");
                let json = serde_json::to_vec_pretty(config)
                    .map_err(|e| RestoreError::Invalid(e.to_string()))?;
                write_new(&path, &json, 0o600)?;
            }
            let start_script = match &new_vm.command_line {
                Some(cl) => {
                    let script = folder.join("start-vm.sh");
                    let text = start_script(name, &point.id, &point.name, cl);
                    write_new(&script, text.as_bytes(), 0o700)?;
                    Some(script)
                }
                None => None,
            };
            Ok(RestoreOutcome {
                disks,
                definition: Some(definition),
                start_script,
                notes: new_vm.notes,
                domain: None,
            })
        }
    }?;
    out.notes
        .splice(0..0, consequence.and_then(|c| saved.note(c)));
    Ok(out)
}

/// Restores every disk into `folder` (created; must be new or empty), each in its
/// VM's format unless `format` says otherwise. Returns the folder, resolved.
fn disks_into(
    repo: &Repository,
    point: &Manifest,
    saved: Option<&VmConfig>,
    folder: &Path,
    format: Option<OutputFormat>,
    progress: Option<&Progress>,
) -> Result<(PathBuf, Vec<RestoredDisk>), RestoreError> {
    let folder = new_or_empty_folder(folder)?;
    let planned = planned_disks(point, saved, &folder, format, "");
    let disks = write_disks(repo, point, planned, progress)?;
    Ok((folder, disks))
}

/// `folder` made if missing, resolved; refused when it holds anything.
pub(crate) fn new_or_empty_folder(folder: &Path) -> Result<PathBuf, RestoreError> {
    if folder.exists()
        && std::fs::read_dir(folder)
            .map_err(io(format!("reading {}", folder.display())))?
            .next()
            .is_some()
    {
        return Err(RestoreError::Invalid(format!(
            "{} is not empty; restore into a new or empty folder",
            folder.display()
        )));
    }
    std::fs::create_dir_all(folder).map_err(io(format!("creating {}", folder.display())))?;
    folder
        .canonicalize()
        .map_err(io(format!("resolving {}", folder.display())))
}

/// Where each disk of `point` goes in `folder` (`PREFIX<disk>.<ext>`), in its VM's
/// format as `saved` (the point's configuration) says unless `format` says otherwise
/// (qcow2 without a configuration). The disk names were checked.
pub(crate) fn planned_disks(
    point: &Manifest,
    saved: Option<&VmConfig>,
    folder: &Path,
    format: Option<OutputFormat>,
    prefix: &str,
) -> Vec<RestoredDisk> {
    let mut out = Vec::new();
    for disk in &point.disks {
        let saved_format = saved
            .and_then(|c| c.disk(&disk.name))
            .map(|d| d.format.as_str());
        let format = format.unwrap_or(match saved_format {
            Some("qcow2") => OutputFormat::Qcow2,
            None if saved.is_none() => OutputFormat::Qcow2,
            _ => OutputFormat::Raw,
        });
        let ext = match format {
            OutputFormat::Qcow2 => "qcow2",
            OutputFormat::Raw => "raw",
        };
        let stem = [".qcow2", ".raw", ".img"]
            .iter()
            .find_map(|s| disk.name.strip_suffix(s))
            .unwrap_or(&disk.name);
        out.push(RestoredDisk {
            name: disk.name.clone(),
            path: folder.join(format!("{prefix}{stem}.{ext}")),
            format: ext.to_string(),
        });
    }
    out
}

/// Writes the planned disks, each a new file.
pub(crate) fn write_disks(
    repo: &Repository,
    point: &Manifest,
    planned: Vec<RestoredDisk>,
    progress: Option<&Progress>,
) -> Result<Vec<RestoredDisk>, RestoreError> {
    for d in &planned {
        let format = match d.format.as_str() {
            "qcow2" => OutputFormat::Qcow2,
            _ => OutputFormat::Raw,
        };
        restore_disk(repo, point, &d.name, &d.path, format, false, progress)?;
    }
    Ok(planned)
}

pub(crate) fn replace_original(
    repo: &Repository,
    point: &Manifest,
    saved: &SavedConfig,
    known: Option<&[VmDisk]>,
    progress: Option<&Progress>,
) -> Result<RestoreOutcome, RestoreError> {
    let mut plan = Vec::new();
    for disk in &point.disks {
        let (image, format) = match known {
            // The host's own knowledge of the VM: never a path from the point.
            Some(known) => {
                let Some(k) = known.iter().find(|k| k.name == disk.name) else {
                    return Err(RestoreError::UnknownDisk(format!(
                        "recovery point {} has disk {}, but this host knows the VM's disks as {}; only the VM's own images are replaced",
                        point.id,
                        disk.name,
                        if known.is_empty() {
                            "nothing".to_string()
                        } else {
                            known.iter().map(|k| format!("{} ({})", k.name, k.image)).collect::<Vec<_>>().join(", ")
                        }
                    )));
                };
                (PathBuf::from(&k.image), Some(k.format.clone()))
            }
            None => {
                let Some(d) = saved.config().and_then(|c| c.disk(&disk.name)) else {
                    return Err(RestoreError::Invalid(format!(
                        "recovery point {} does not say where disk {} lived{}; restore its disks into a folder instead",
                        point.id,
                        disk.name,
                        saved.unreadable().map(|e| format!(" ({e})")).unwrap_or_default()
                    )));
                };
                (PathBuf::from(&d.image), Some(d.format.clone()))
            }
        };
        if image.exists() {
            if let Err(e) = tresor_qemu::ensure_not_in_use(&image) {
                return Err(RestoreError::InUse(format!(
                    "{e}. Stop the VM before its disks are replaced"
                )));
            }
        }
        let format = match format.as_deref() {
            Some("qcow2") => OutputFormat::Qcow2,
            _ => OutputFormat::Raw,
        };
        plan.push((disk.name.clone(), image, format));
    }
    let mut disks = Vec::new();
    for (name, image, format) in plan {
        restore_disk(repo, point, &name, &image, format, true, progress)?;
        disks.push(RestoredDisk {
            name,
            path: image,
            format: match format {
                OutputFormat::Qcow2 => "qcow2".into(),
                OutputFormat::Raw => "raw".into(),
            },
        });
    }
    Ok(RestoreOutcome {
        disks,
        notes: vec!["the disks were replaced; the next backup of the VM reads them whole (their change tracking starts anew)".into()],
        ..RestoreOutcome::default()
    })
}

fn restore_disk(
    repo: &Repository,
    point: &Manifest,
    disk: &str,
    output: &Path,
    format: OutputFormat,
    overwrite: bool,
    progress: Option<&Progress>,
) -> Result<(), RestoreError> {
    restore::run(
        repo,
        RestoreRequest {
            point,
            disk,
            output,
            format,
            overwrite,
            progress,
            workers: 0,
        },
    )?;
    Ok(())
}

/// Writes a new file with `mode`: never over an existing one, never through a link
/// (`O_CREAT|O_EXCL` fails on any existing name, a symbolic link included).
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RestoreError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io(format!("writing {}", path.display())))
}

/// A point of one disk, `vda`, with `vm_config`.
#[cfg(test)]
pub(crate) fn point_with(vm_config: serde_json::Value) -> Manifest {
    Manifest {
        version: 1,
        id: "0123456789abcdef0123456789abcdef".into(),
        name: "web".into(),
        created: jiff::Timestamp::UNIX_EPOCH,
        consistency: tresor_engine::Consistency::CrashConsistent,
        parent: None,
        expires: None,
        disks: vec![tresor_engine::DiskEntry {
            name: "vda".into(),
            size: 1 << 20,
            chunk_size: 1 << 16,
            fanout: 64,
            depth: 1,
            root: tresor_engine::ChunkId::ZERO,
        }],
        host: String::new(),
        vm_config: Some(vm_config),
        stats: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use serde_json::json;
    use tresor_qemu::{new_vm_definition, start_script, RestoredDisk};

    use super::*;

    /// A config that does not decode is read as none (disks in qcow2, as for a point
    /// without one), and the note says why; one that decodes gives the disks' formats.
    #[test]
    fn an_unreadable_config_is_taken_as_none_and_said() {
        let folder = Path::new("/restore/web");
        let raw_disk = json!([{"name": "vda", "node": null, "image": "/vms/web.raw",
                               "format": "raw", "virtual_size": 1048576}]);
        let good = point_with(json!({"provider": "qemu", "name": "web", "disks": raw_disk}));
        let saved = SavedConfig::of(&good);
        assert!(saved.note("x").is_none());
        let planned = planned_disks(&good, saved.config(), folder, None, "");
        assert_eq!(planned[0].format, "raw");

        let broken = point_with(json!({"provider": "qemu", "name": "web", "disks": raw_disk,
                                       "command_line": "qemu-system-x86_64 -m 1"}));
        let saved = SavedConfig::of(&broken);
        assert!(saved.config().is_none());
        let note = saved.note("went on without it").unwrap();
        assert!(
            note.contains(&broken.id) && note.contains("cannot be read"),
            "{note}"
        );
        assert!(
            note.contains("member \"command_line\": invalid type")
                && note.ends_with("went on without it"),
            "{note}"
        );
        let planned = planned_disks(&broken, saved.config(), folder, None, "");
        assert_eq!(planned[0].format, "qcow2");
        assert_eq!(planned[0].path, folder.join("vda.qcow2"));

        let none = point_with(serde_json::Value::Null);
        assert!(SavedConfig::of(&none).config().is_none());
        assert!(SavedConfig::of(&none).note("x").is_none());
    }

    /// The start script of a VM restored from a hostile point, run with a stand-in for
    /// QEMU that records its arguments: each value arrives as one literal argument,
    /// nothing runs, and the options that run host programs are gone.
    #[test]
    fn the_start_script_passes_hostile_values_literally() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pwned = d.join("pwned");
        let p = pwned.display();
        let hostile = [
            format!("$(touch {p})"),
            format!("`touch {p}`"),
            format!("x'; touch {p}; '"),
            format!("a\ntouch {p}\n"),
            format!("\"; touch {p}; \""),
            format!("\\'; touch {p} #"),
        ];
        let mut command_line = vec!["/tmp/evil/qemu-system-x86_64".to_string()];
        for h in &hostile {
            command_line.extend(["-append".to_string(), h.clone()]);
        }
        command_line.extend([
            "-netdev".to_string(),
            format!("tap,id=n0,script={p}.sh"),
            "-incoming".to_string(),
            format!("exec:touch {p}"),
        ]);
        let saved = json!({
            "provider": "qemu",
            "disks": [{"name": "vda", "image": "/vms/a.raw", "format": "raw", "virtual_size": 1}],
            "command_line": command_line,
        });
        let saved = VmConfig::of_point(Some(&saved)).unwrap().unwrap();
        let folder = d.join("vm $(touch x)");
        let new = new_vm_definition(
            Some(&saved),
            "copy",
            &folder,
            &[RestoredDisk {
                name: "vda".into(),
                path: folder.join("vda.raw"),
                format: "raw".into(),
            }],
        )
        .unwrap();
        let cl = new.command_line.unwrap();
        assert_eq!(new.notes.len(), 3, "{:#?}", new.notes);
        let script = d.join("start-vm.sh");
        std::fs::write(
            &script,
            start_script("copy", "p1\n$(touch x)", &format!("$(touch {p})"), &cl),
        )
        .unwrap();
        // The stand-in QEMU, found through PATH (the saved program was not in a
        // system folder), writes its arguments NUL-separated.
        let bin = d.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let fake = bin.join("qemu-system-x86_64");
        let out = d.join("args");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{}'\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = Command::new("sh")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .current_dir(d)
            .status()
            .unwrap();
        assert!(status.success());
        let args: Vec<String> = std::fs::read_to_string(&out)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_string)
            .collect();
        let mut want: Vec<String> = Vec::new();
        for h in &hostile {
            want.extend(["-append".to_string(), h.clone()]);
        }
        assert_eq!(args, want);
        assert!(!pwned.exists(), "a value ran as a command");
        assert!(!d.join("x").exists(), "a value ran as a command");
        assert!(!Path::new("/tmp/pwned").exists());
    }
}
