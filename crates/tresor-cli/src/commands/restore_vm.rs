//! `tresor repo restore-vm`: every disk of a point, as a new VM or over the original.

use std::path::Path;

use anyhow::{Context, Result};
use tresor_agent::restore::{restore_point, RestoreMode};
use tresor_engine::restore::OutputFormat;
use tresor_engine::Repository;

use crate::cli::FormatArg;
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
    let new_name_given = new_name.is_some();
    let format = format.map(|f| match f {
        FormatArg::Qcow2 => OutputFormat::Qcow2,
        FormatArg::Raw => OutputFormat::Raw,
    });
    let name = new_name.unwrap_or_else(|| format!("{}-restored", manifest.name));
    let mode = if replace_original {
        // The local operator restores their own repository: the images the point
        // saved are where the disks go (the agent uses its own inventory instead).
        RestoreMode::ReplaceOriginal { known: None }
    } else {
        // The name goes into file names and the start script: checked before
        // anything is written.
        tresor_qemu::validate_vm_name(&name).with_context(|| {
            if new_name_given {
                "--new-name".to_string()
            } else {
                format!("the default name {name:?}; choose one with --new-name")
            }
        })?;
        RestoreMode::NewVm {
            folder: to
                .context("--to FOLDER is needed for a new VM")?
                .to_path_buf(),
            name: name.clone(),
            format,
        }
    };
    let outcome = with_progress("restore", |progress| {
        restore_point(repo, &manifest, &mode, Some(progress))
    })?;
    for d in &outcome.disks {
        println!(
            "restored disk {} to {} ({})",
            d.name,
            d.path.display(),
            d.format
        );
    }
    if replace_original {
        println!(
            "the disks of {} are as they were at {} (recovery point {})",
            manifest.name,
            manifest.created.strftime("%Y-%m-%d %H:%M:%S"),
            manifest.id
        );
    }
    if let Some(def) = &outcome.definition {
        println!("new VM {name} defined in {}", def.display());
    }
    if let Some(script) = &outcome.start_script {
        println!("start it with {}", script.display());
    }
    for note in &outcome.notes {
        println!("note: {note}");
    }
    Ok(())
}
