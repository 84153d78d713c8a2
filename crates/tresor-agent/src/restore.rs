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
    new_vm_definition, saved_disk_format, saved_disk_image, start_script, validate_disk_name,
    validate_vm_name, NewVmError, RestoredDisk,
};
use tresor_vm::VmDisk;

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
    match mode {
        RestoreMode::ReplaceOriginal { known } => {
            replace_original(repo, point, known.as_deref(), progress)
        }
        RestoreMode::Disks { folder, format } => {
            let (_, disks) = disks_into(repo, point, folder, *format, progress)?;
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
            let (folder, disks) = disks_into(repo, point, folder, *format, progress)?;
            let saved = point.vm_config.as_ref();
            let new_vm = new_vm_definition(saved, name, &folder, &disks)?;
            let definition = folder.join("vm.json");
            let json = serde_json::to_vec_pretty(&new_vm.config)
                .map_err(|e| RestoreError::Invalid(e.to_string()))?;
            write_new(&definition, &json, 0o600)?;
            if let Some(config) = saved {
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
    }
}

/// Restores every disk into `folder` (created; must be new or empty), each in its
/// VM's format unless `format` says otherwise. Returns the folder, resolved.
fn disks_into(
    repo: &Repository,
    point: &Manifest,
    folder: &Path,
    format: Option<OutputFormat>,
    progress: Option<&Progress>,
) -> Result<(PathBuf, Vec<RestoredDisk>), RestoreError> {
    let folder = new_or_empty_folder(folder)?;
    let planned = planned_disks(point, &folder, format, "");
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
/// format unless `format` says otherwise. The disk names were checked.
pub(crate) fn planned_disks(
    point: &Manifest,
    folder: &Path,
    format: Option<OutputFormat>,
    prefix: &str,
) -> Vec<RestoredDisk> {
    let saved = point.vm_config.as_ref();
    let mut out = Vec::new();
    for disk in &point.disks {
        let format = format.unwrap_or(match saved_disk_format(saved, &disk.name).as_deref() {
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
    known: Option<&[VmDisk]>,
    progress: Option<&Progress>,
) -> Result<RestoreOutcome, RestoreError> {
    let saved = point.vm_config.as_ref();
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
            None => (
                saved_disk_image(saved, &disk.name).ok_or_else(|| {
                    RestoreError::Invalid(format!(
                        "recovery point {} does not say where disk {} lived; restore its disks into a folder instead",
                        point.id, disk.name
                    ))
                })?,
                saved_disk_format(saved, &disk.name),
            ),
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use serde_json::json;
    use tresor_qemu::{new_vm_definition, start_script, RestoredDisk};

    use super::*;

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
            "disks": [{"name": "vda", "image": "/vms/a.raw", "format": "raw"}],
            "command_line": command_line,
        });
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
