//! `tresor repo restore-vm`: every disk of a point, as a new VM or over the original.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{Manifest, Repository};
use tresor_qemu::{
    new_vm_definition, saved_disk_format, saved_disk_image, shell_command, RestoredDisk,
};

use crate::cli::FormatArg;
use crate::commands::repo::human;
use crate::progress_bar::with_progress;

pub fn run(
    repo: &Repository,
    point: &str,
    to: Option<&Path>,
    new_name: Option<String>,
    format: Option<FormatArg>,
    replace_original: bool,
) -> Result<()> {
    let manifest = repo.load_point(point)?;
    if replace_original {
        return replace(repo, &manifest);
    }
    let folder = to.context("--to FOLDER is needed for a new VM")?;
    if folder.exists() && std::fs::read_dir(folder)?.next().is_some() {
        bail!(
            "{} is not empty; restore a new VM into a new or empty folder",
            folder.display()
        );
    }
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let folder = folder
        .canonicalize()
        .with_context(|| format!("resolving {}", folder.display()))?;
    let saved = manifest.vm_config.as_ref();
    let mut restored = Vec::new();
    for disk in &manifest.disks {
        let format = match format {
            Some(FormatArg::Qcow2) => OutputFormat::Qcow2,
            Some(FormatArg::Raw) => OutputFormat::Raw,
            None if saved_disk_format(saved, &disk.name).as_deref() == Some("qcow2") => {
                OutputFormat::Qcow2
            }
            None if saved.is_none() => OutputFormat::Qcow2,
            None => OutputFormat::Raw,
        };
        let (ext, format_name) = match format {
            OutputFormat::Qcow2 => ("qcow2", "qcow2"),
            OutputFormat::Raw => ("raw", "raw"),
        };
        let stem = disk
            .name
            .strip_suffix(".qcow2")
            .or_else(|| disk.name.strip_suffix(".raw"))
            .or_else(|| disk.name.strip_suffix(".img"))
            .unwrap_or(&disk.name);
        let path = folder.join(format!("{stem}.{ext}"));
        restore_disk(repo, &manifest, &disk.name, &path, format, false)?;
        restored.push(RestoredDisk {
            name: disk.name.clone(),
            path,
            format: format_name.to_string(),
        });
    }
    let name = new_name.unwrap_or_else(|| format!("{}-restored", manifest.name));
    let new_vm = new_vm_definition(saved, &name, &folder, &restored);
    let definition = folder.join("vm.json");
    std::fs::write(&definition, serde_json::to_vec_pretty(&new_vm.config)?)
        .with_context(|| format!("writing {}", definition.display()))?;
    if let Some(config) = saved {
        std::fs::write(
            folder.join("original-config.json"),
            serde_json::to_vec_pretty(config)?,
        )?;
    }
    println!("new VM {name} defined in {}", definition.display());
    if let Some(cl) = &new_vm.command_line {
        let script = folder.join("start-vm.sh");
        write_script(
            &script,
            &format!(
                "#!/bin/sh\n# Starts VM {name}, restored from recovery point {} of {}.\nexec {}\n",
                manifest.id,
                manifest.name,
                shell_command(cl)
            ),
        )?;
        println!("start it with {}", script.display());
    }
    for note in &new_vm.notes {
        println!("note: {note}");
    }
    Ok(())
}

/// Writes the disks back over the images the VM had when it was backed up.
fn replace(repo: &Repository, manifest: &Manifest) -> Result<()> {
    let saved = manifest.vm_config.as_ref();
    let mut plan: Vec<(String, PathBuf, OutputFormat)> = Vec::new();
    for disk in &manifest.disks {
        let image = saved_disk_image(saved, &disk.name).with_context(|| {
            format!(
                "recovery point {} does not say where disk {} lived; restore it with `tresor repo restore --disk {} --output IMAGE`",
                manifest.id, disk.name, disk.name
            )
        })?;
        if image.exists() {
            if let Err(e) = tresor_qemu::ensure_not_in_use(&image) {
                bail!("{e}. Stop the VM before its disks are replaced");
            }
        }
        let format = match saved_disk_format(saved, &disk.name).as_deref() {
            Some("qcow2") => OutputFormat::Qcow2,
            _ => OutputFormat::Raw,
        };
        plan.push((disk.name.clone(), image, format));
    }
    for (disk, image, format) in &plan {
        restore_disk(repo, manifest, disk, image, *format, true)?;
    }
    println!(
        "the disks of {} are as they were at {} (recovery point {}); the next backup reads them whole",
        manifest.name,
        manifest.created.strftime("%Y-%m-%d %H:%M:%S"),
        manifest.id
    );
    Ok(())
}

fn restore_disk(
    repo: &Repository,
    manifest: &Manifest,
    disk: &str,
    output: &Path,
    format: OutputFormat,
    overwrite: bool,
) -> Result<()> {
    let stats = with_progress(&format!("restore {disk}"), |progress| {
        restore::run(
            repo,
            RestoreRequest {
                point: manifest,
                disk,
                output,
                format,
                overwrite,
                progress: Some(progress),
                workers: 0,
            },
        )
    })?;
    println!(
        "restored disk {disk} ({}) to {}",
        human(stats.disk_size),
        output.display()
    );
    Ok(())
}

fn write_script(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
