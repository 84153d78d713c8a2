//! `tresor repo ...`: a repository in a local folder, without a server.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tresor_agent::images::ImagesBackup;
use tresor_agent::{Parent, RunOptions};
use tresor_engine::replicate::{self, ReplicateOptions};
use tresor_engine::restore::{self, OutputFormat, RestoreRequest};
use tresor_engine::{gc, verify, Consistency, InitOptions, KdfParams, LocalDir, Repository};

use crate::cli::{BackupArgs, ConsistencyArg, FormatArg, KeyCommand, RepoCommand};
use crate::passphrase;
use crate::progress_bar::with_progress;

pub fn run(cmd: RepoCommand) -> Result<()> {
    match cmd {
        RepoCommand::Init {
            repo,
            chunk_size,
            kdf_memory_mib,
            kdf_iterations,
            generate_passphrase,
        } => init(
            &repo.dir,
            chunk_size,
            KdfParams {
                m_cost: kdf_memory_mib.saturating_mul(1024),
                t_cost: kdf_iterations,
                p_cost: 1,
            },
            generate_passphrase,
        ),
        RepoCommand::Backup(args) => backup(args),
        RepoCommand::Restore {
            repo,
            point,
            disk,
            output,
            format,
            force,
        } => restore(&repo.dir, &point, &disk, &output, format, force),
        RepoCommand::RestoreVm {
            repo,
            point,
            to,
            new_name,
            format,
            replace_original,
        } => {
            let repository = open(&repo.dir)?;
            super::restore_vm::run(
                &repository,
                &point,
                to.as_deref(),
                new_name,
                format,
                replace_original,
            )
        }
        RepoCommand::List { repo, json } => list(&repo.dir, json),
        RepoCommand::Verify { repo, point } => verify(&repo.dir, point.as_deref()),
        RepoCommand::Replicate { repo, to } => replicate(&repo.dir, &to),
        RepoCommand::Forget { repo, points } => forget(&repo.dir, &points),
        RepoCommand::Gc {
            repo,
            repack_threshold,
        } => gc(&repo.dir, repack_threshold),
        RepoCommand::RebuildIndex { repo } => {
            let backend = LocalDir::open(&repo.dir)
                .with_context(|| format!("opening {}", repo.dir.display()))?;
            let repo = Repository::open_for_repair(Arc::new(backend), &passphrase::get(false)?)?;
            let report = gc::rebuild_index(&repo)?;
            println!(
                "index rebuilt from {} packs: {} blobs",
                report.packs, report.blobs
            );
            if !report.unreadable.is_empty() {
                println!("packs that could not be read (their blobs are not indexed):");
                for p in report.unreadable {
                    println!("  {p}");
                }
            }
            Ok(())
        }
        RepoCommand::Key(cmd) => key(cmd),
    }
}

pub fn open(dir: &Path) -> Result<Repository> {
    let backend = LocalDir::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let pass = passphrase::get(false)?;
    Ok(Repository::open(Arc::new(backend), &pass)?)
}

fn init(dir: &Path, chunk_size: u64, kdf: KdfParams, generate_passphrase: bool) -> Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() && !dir.join("config").exists() {
        bail!(
            "{} is not empty; a repository needs an empty or new folder",
            dir.display()
        );
    }
    let chunk_size = u32::try_from(chunk_size).context("chunk size too large")?;
    let opts = InitOptions {
        chunk_size,
        kdf,
        ..InitOptions::default()
    };
    opts.validate()?;
    let pass = if generate_passphrase {
        tresor_engine::generate_secret("tresor_repo_").into_bytes()
    } else {
        passphrase::get(true)?
    };
    let backend = LocalDir::create(dir)?;
    let repo = Repository::init(Arc::new(backend), &pass, &opts)?;
    println!(
        "created repository {} in {} (chunk size {} KiB)",
        repo.config().id,
        dir.display(),
        chunk_size / 1024
    );
    println!("Keep the passphrase safe: without it the backups cannot be read. `tresor repo key export` saves a copy of the key.");
    if generate_passphrase {
        println!("The generated passphrase (give it as TRESOR_PASSWORD; it is shown only now):");
        println!("{}", String::from_utf8_lossy(&pass));
    }
    Ok(())
}

fn backup(args: BackupArgs) -> Result<()> {
    if args.vm.qmp.is_some() || args.vm.libvirt_domain.is_some() {
        let repo = open(&args.repo.dir)?;
        return super::vm::backup(
            &repo,
            &args.vm,
            args.name,
            args.full,
            args.no_quiesce,
            args.threads,
        );
    }
    let BackupArgs {
        repo,
        vm: _,
        full: _,
        no_quiesce: _,
        name,
        parent,
        dirty_extents,
        bitmaps,
        consistency,
        threads,
        images,
    } = args;
    let request = ImagesBackup {
        name: name.context("--name is required when backing up images")?,
        images,
        parent: match parent {
            None => Parent::None,
            Some(p) if p == "latest" => Parent::Latest,
            Some(id) => Parent::Point(id),
        },
        dirty_extents,
        bitmaps,
        consistency: match consistency {
            ConsistencyArg::App => Consistency::AppConsistent,
            ConsistencyArg::FileSystem => Consistency::FileSystemConsistent,
            ConsistencyArg::Crash => Consistency::CrashConsistent,
        },
    };
    // A command line that does not hold together is refused before the passphrase
    // is asked for.
    request.check()?;
    let repo = open(&repo.dir)?;
    let opened = request.open(&repo)?;
    for note in opened.notes() {
        eprintln!("note: {note}");
    }
    let outcome = with_progress("backup", |progress| {
        opened.run(
            &repo,
            RunOptions {
                progress: Some(progress),
                workers: threads,
                ..RunOptions::default()
            },
        )
    })?;
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    let manifest = outcome.manifest;
    let s = &manifest.stats;
    println!(
        "read {} in {:.2} s; stored {} new ({} chunks new, {} reused, {} tree nodes)",
        human(s.bytes_read),
        s.duration_ms as f64 / 1000.0,
        human(s.bytes_added),
        s.chunks_added,
        s.chunks_reused,
        s.tree_nodes_added
    );
    println!("{}", manifest.id);
    Ok(())
}

fn restore(
    dir: &Path,
    point: &str,
    disk: &str,
    output: &Path,
    format: FormatArg,
    force: bool,
) -> Result<()> {
    let repo = open(dir)?;
    let manifest = repo.load_point(point)?;
    let stats = with_progress("restore", |progress| {
        restore::run(
            &repo,
            RestoreRequest {
                point: &manifest,
                disk,
                output,
                format: match format {
                    FormatArg::Raw => OutputFormat::Raw,
                    FormatArg::Qcow2 => OutputFormat::Qcow2,
                },
                overwrite: force,
                progress: Some(progress),
                workers: 0,
            },
        )
    })?;
    println!(
        "restored disk {disk} of {} ({}) to {}: {} written, {} zero chunks skipped, {:.2} s",
        manifest.id,
        human(stats.disk_size),
        output.display(),
        human(stats.bytes_written),
        stats.zero_chunks,
        stats.duration.as_secs_f64()
    );
    Ok(())
}

fn list(dir: &Path, json: bool) -> Result<()> {
    let repo = open(dir)?;
    let scan = repo.scan_points()?;
    let (points, unreadable) = (&scan.points, &scan.unreadable);
    if json {
        println!("{}", serde_json::to_string_pretty(points)?);
        return fail_on_unreadable(unreadable);
    }
    println!(
        "{:<32}  {:<20}  {:<20}  {:<20}  {:>10}  disks",
        "ID", "NAME", "CREATED", "CONSISTENCY", "ADDED"
    );
    for p in points {
        let disks: Vec<String> = p
            .disks
            .iter()
            .map(|d| format!("{} ({})", d.name, human(d.size)))
            .collect();
        println!(
            "{:<32}  {:<20}  {:<20}  {:<20}  {:>10}  {}",
            p.id,
            p.name,
            p.created.strftime("%Y-%m-%d %H:%M:%S"),
            p.consistency.to_string(),
            human(p.stats.bytes_added),
            disks.join(", ")
        );
    }
    println!("{} recovery points", points.len());
    fail_on_unreadable(unreadable)
}

/// Names every manifest that could not be read, after listing the rest.
fn fail_on_unreadable(unreadable: &[(String, tresor_engine::Error)]) -> Result<()> {
    for (id, e) in unreadable {
        eprintln!("DAMAGED recovery point {id}: {e}");
    }
    if !unreadable.is_empty() {
        bail!(
            "{} recovery point manifests cannot be read; `tresor repo verify` reports every damaged point",
            unreadable.len()
        );
    }
    Ok(())
}

fn verify(dir: &Path, point: Option<&str>) -> Result<()> {
    let repo = open(dir)?;
    let report = with_progress("verify", |progress| {
        verify::run(&repo, point, Some(progress))
    })?;
    println!(
        "checked {} recovery points, {} blobs, {} in {} packs",
        report.points_checked,
        report.blobs_checked,
        human(report.bytes_checked),
        report.packs_checked
    );
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    if report.damaged_points.is_empty() && report.problems.is_empty() {
        println!("no errors found");
        return Ok(());
    }
    for d in &report.damaged_points {
        println!(
            "DAMAGED recovery point {} ({}, {}):",
            d.id,
            d.name,
            d.created.strftime("%Y-%m-%d %H:%M:%S")
        );
        for p in &d.problems {
            println!("  {p}");
        }
    }
    bail!(
        "verification failed: {} damaged recovery points, {} storage problems",
        report.damaged_points.len(),
        report.problems.len()
    )
}

fn replicate(dir: &Path, to: &Path) -> Result<()> {
    let repo = open(dir)?;
    let empty = match std::fs::read_dir(to) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(e).with_context(|| format!("reading {}", to.display())),
    };
    // A folder with keys but no config is a copy cut short before its config arrived.
    if !empty && !to.join("config").exists() && !to.join("keys").is_dir() {
        bail!(
            "{} is not empty and holds no repository; replicate into a new or empty folder, or an earlier copy",
            to.display()
        );
    }
    let dst = if empty {
        LocalDir::create(to)
    } else {
        LocalDir::open(to)
    }
    .with_context(|| format!("opening {}", to.display()))?;
    let points = repo.point_ids()?;
    let started = Instant::now();
    let report = with_progress("replicate", |progress| {
        replicate::run(
            &repo,
            &dst,
            &points,
            &ReplicateOptions::default(),
            Some(progress),
        )
    })?;
    let secs = started.elapsed().as_secs_f64();
    print!("{report}");
    println!(
        "replicated {} bytes ({}) in {secs:.2} s: {:.1} MiB/s",
        report.bytes_copied,
        human(report.bytes_copied),
        report.bytes_copied as f64 / 1048576.0 / secs.max(1e-9)
    );
    if !report.unpublishable.is_empty() {
        bail!(
            "{} recovery points could not be copied (see above); `tresor repo verify {}` names what is damaged",
            report.unpublishable.len(),
            dir.display()
        );
    }
    Ok(())
}

fn forget(dir: &Path, points: &[String]) -> Result<()> {
    let repo = open(dir)?;
    for p in points {
        let m = repo.forget(p)?;
        println!(
            "forgot recovery point {} ({}, {})",
            m.id,
            m.name,
            m.created.strftime("%Y-%m-%d %H:%M:%S")
        );
    }
    println!("run `tresor repo gc` to reclaim the space");
    Ok(())
}

fn gc(dir: &Path, repack_threshold: u8) -> Result<()> {
    if repack_threshold > 100 {
        bail!("--repack-threshold is a percentage: 0 to 100");
    }
    let repo = open(dir)?;
    let report = with_progress("gc", |progress| {
        gc::run(
            &repo,
            &gc::GcOptions {
                repack_threshold: repack_threshold as f64 / 100.0,
                ..gc::GcOptions::default()
            },
            Some(progress),
        )
    })?;
    println!("{report}");
    Ok(())
}

fn key(cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Export { repo, output } => {
            let repo = open(&repo.dir)?;
            if output.exists() {
                bail!("{} exists; choose another file", output.display());
            }
            std::fs::write(&output, repo.export_key()?)
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "wrote the key (wrapped by its passphrase) to {}",
                output.display()
            );
        }
        KeyCommand::Import { repo, input } => {
            let backend = LocalDir::open(&repo.dir)?;
            let bytes =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let pass = passphrase::get(false)?;
            let name = Repository::import_key(&backend, &bytes, &pass)?;
            println!("imported key as {name}");
        }
        KeyCommand::Add { repo } => {
            let repo = open(&repo.dir)?;
            let new = passphrase::get_new()?;
            let name = repo.add_key(&new, Default::default())?;
            println!("added key {name}");
        }
    }
    Ok(())
}

/// Bytes for people: 1.5 GiB.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
