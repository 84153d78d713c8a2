//! Restoring a recovery point on a host: its disks into a folder, a new VM made of
//! them, or the disks written back over the stopped original.
//!
//! Shared by `tresor repo restore-vm` (without a server) and the agent's restore jobs.

use std::path::{Path, PathBuf};

use tresor_engine::progress::Progress;
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{Manifest, Repository};
use tresor_qemu::{
    new_vm_definition, saved_disk_format, saved_disk_image, shell_command, RestoredDisk,
};

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
    /// The disks over the images the VM had when it was backed up (VM stopped).
    ReplaceOriginal,
}

/// What a restore made.
#[derive(Debug, Clone, Default)]
pub struct RestoreOutcome {
    pub disks: Vec<RestoredDisk>,
    pub definition: Option<PathBuf>,
    pub start_script: Option<PathBuf>,
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Bad input: the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// The original VM still runs on its disks.
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Engine(#[from] tresor_engine::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
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
    match mode {
        RestoreMode::ReplaceOriginal => replace_original(repo, point, progress),
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
            let new_vm = new_vm_definition(saved, name, &folder, &disks);
            let definition = folder.join("vm.json");
            let json = serde_json::to_vec_pretty(&new_vm.config)
                .map_err(|e| RestoreError::Invalid(e.to_string()))?;
            std::fs::write(&definition, json)
                .map_err(io(format!("writing {}", definition.display())))?;
            if let Some(config) = saved {
                let path = folder.join("original-config.json");
                let json = serde_json::to_vec_pretty(config)
                    .map_err(|e| RestoreError::Invalid(e.to_string()))?;
                std::fs::write(&path, json).map_err(io(format!("writing {}", path.display())))?;
            }
            let start_script = match &new_vm.command_line {
                Some(cl) => {
                    let script = folder.join("start-vm.sh");
                    write_script(
                        &script,
                        &format!(
                            "#!/bin/sh\n# Starts VM {name}, restored from recovery point {} of {}.\nexec {}\n",
                            point.id,
                            point.name,
                            shell_command(cl)
                        ),
                    )?;
                    Some(script)
                }
                None => None,
            };
            Ok(RestoreOutcome {
                disks,
                definition: Some(definition),
                start_script,
                notes: new_vm.notes,
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
    let folder = folder
        .canonicalize()
        .map_err(io(format!("resolving {}", folder.display())))?;
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
        let path = folder.join(format!("{stem}.{ext}"));
        restore_disk(repo, point, &disk.name, &path, format, false, progress)?;
        out.push(RestoredDisk {
            name: disk.name.clone(),
            path,
            format: ext.to_string(),
        });
    }
    Ok((folder, out))
}

fn replace_original(
    repo: &Repository,
    point: &Manifest,
    progress: Option<&Progress>,
) -> Result<RestoreOutcome, RestoreError> {
    let saved = point.vm_config.as_ref();
    let mut plan = Vec::new();
    for disk in &point.disks {
        let image = saved_disk_image(saved, &disk.name).ok_or_else(|| {
            RestoreError::Invalid(format!(
                "recovery point {} does not say where disk {} lived; restore its disks into a folder instead",
                point.id, disk.name
            ))
        })?;
        if image.exists() {
            if let Err(e) = tresor_qemu::ensure_not_in_use(&image) {
                return Err(RestoreError::InUse(format!(
                    "{e}. Stop the VM before its disks are replaced"
                )));
            }
        }
        let format = match saved_disk_format(saved, &disk.name).as_deref() {
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

fn write_script(path: &Path, text: &str) -> Result<(), RestoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(io(format!("making {} executable", path.display())))
}
