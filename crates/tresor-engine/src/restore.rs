//! Restore: a recovery point's disk back into a raw file, a qcow2 image or a block device.
//!
//! One thread walks the disk tree in order and hands chunks to workers that read,
//! open and check each blob and write it at its offset. Zero chunks are not written to
//! files (they stay holes, so the result is as sparse as the source was); on a block
//! device they are written as zeros, because the device holds old data.
//!
//! Files are written under a temporary name next to the output and renamed into place
//! only when complete and synced: a failed or interrupted restore never leaves a file
//! at the output path that looks complete.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use tresor_format::blob::BlobKind;
use tresor_format::manifest::{DiskEntry, Manifest};
use tresor_format::ChunkId;
use tresor_qcow2::Qcow2Writer;
use tresor_storage::DirectFile;

use crate::progress::Progress;
use crate::tree::walk_chunks;
use crate::{Error, Repository, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Raw,
    Qcow2,
}

pub struct RestoreRequest<'a> {
    pub point: &'a Manifest,
    pub disk: &'a str,
    pub output: &'a Path,
    pub format: OutputFormat,
    /// Replace an existing regular file at `output`.
    pub overwrite: bool,
    pub progress: Option<&'a Progress>,
    /// Worker threads; 0 means two per core (reads and writes overlap with decompression).
    pub workers: usize,
}

#[derive(Debug, Clone, Default)]
pub struct RestoreStats {
    pub disk_size: u64,
    pub bytes_written: u64,
    pub data_chunks: u64,
    pub zero_chunks: u64,
    pub duration: Duration,
}

/// Where restored chunks go.
enum Target {
    /// A raw file or device, written with `O_DIRECT` where the file system allows it.
    ///
    /// Restored data must reach the disk before the restore reports success. Through
    /// the page cache that costs the copy into freshly allocated cache pages (the most
    /// expensive part of a restore on many virtual machines) and then the write-back
    /// anyway; direct writes skip the first and overlap the second with decompression.
    /// Chunks are aligned to their size, so only a disk's unaligned tail goes through
    /// the page cache.
    File(DirectFile),
    /// A block device, written as a raw file is.
    Device(DirectFile),
    Qcow2(Qcow2Writer),
}

/// Bytes of consecutive chunks a restore worker writes at once.
const BATCH_BYTES: u64 = 4 << 20;

thread_local! {
    /// Each restore worker's aligned staging buffer for direct writes.
    static STAGING: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Target {
    fn write(&self, offset: u64, data: &[u8], path: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::Output {
            path: path.display().to_string(),
            what: format!("write at offset {offset}"),
            source: e,
        };
        match self {
            Target::File(f) | Target::Device(f) => STAGING
                .with(|staging| f.write_all_at(data, offset, &mut staging.borrow_mut()))
                .map_err(io),
            Target::Qcow2(q) => {
                let cluster = q.cluster_size() as usize;
                for (i, piece) in data.chunks(cluster).enumerate() {
                    q.write_cluster(offset + (i * cluster) as u64, piece)?;
                }
                Ok(())
            }
        }
    }
}

pub fn find_disk<'m>(point: &'m Manifest, name: &str) -> Result<&'m DiskEntry> {
    point
        .disks
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| Error::DiskNotFound {
            point: point.id.clone(),
            disk: name.to_string(),
            available: point
                .disks
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

pub fn run(repo: &Repository, req: RestoreRequest<'_>) -> Result<RestoreStats> {
    let started = Instant::now();
    let disk = find_disk(req.point, req.disk)?;
    let out_err = |what: &str, e: std::io::Error| Error::Output {
        path: req.output.display().to_string(),
        what: what.to_string(),
        source: e,
    };
    let existing = std::fs::metadata(req.output).ok();
    let is_device = existing
        .as_ref()
        .is_some_and(|m| m.file_type().is_block_device());
    if existing.is_some() && !is_device && !req.overwrite {
        return Err(Error::Invalid(format!(
            "{} exists; choose another output path, or pass --force to replace it",
            req.output.display()
        )));
    }
    if is_device && req.format == OutputFormat::Qcow2 {
        return Err(Error::Invalid(
            "a block device is written raw; drop --format qcow2".into(),
        ));
    }
    let partial = partial_path(req.output);
    let target = if is_device {
        let f = OpenOptions::new()
            .write(true)
            .open(req.output)
            .map_err(|e| out_err("open device", e))?;
        let dev_size = device_size(&f).map_err(|e| out_err("size of device", e))?;
        if dev_size < disk.size {
            return Err(Error::Invalid(format!(
                "{} holds {dev_size} bytes, the disk needs {}",
                req.output.display(),
                disk.size
            )));
        }
        Target::Device(DirectFile::open(req.output, f))
    } else {
        let _ = std::fs::remove_file(&partial);
        match req.format {
            OutputFormat::Raw => {
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&partial)
                    .map_err(|e| out_err("create", e))?;
                f.set_len(disk.size).map_err(|e| out_err("set size", e))?;
                Target::File(DirectFile::open(&partial, f))
            }
            OutputFormat::Qcow2 => {
                let bits = (disk.chunk_size.trailing_zeros()).clamp(12, 21);
                // qcow2 sizes are whole sectors; a disk of another size is rounded up.
                Target::Qcow2(Qcow2Writer::create(
                    &partial,
                    disk.size.div_ceil(512) * 512,
                    bits,
                )?)
            }
        }
    };
    if let Some(p) = req.progress {
        p.add_total(disk.size);
    }
    let result = write_chunks(repo, disk, &target, req.output, req.progress, req.workers);
    let finish = result.and_then(|stats| {
        match target {
            Target::File(f) => {
                f.sync_all().map_err(|e| out_err("fsync", e))?;
                drop(f);
                std::fs::rename(&partial, req.output)
                    .map_err(|e| out_err("rename into place", e))?;
            }
            Target::Device(f) => f.sync_all().map_err(|e| out_err("fsync", e))?,
            Target::Qcow2(q) => {
                q.finish()?;
                std::fs::rename(&partial, req.output)
                    .map_err(|e| out_err("rename into place", e))?;
            }
        }
        Ok(stats)
    });
    match finish {
        Ok(mut stats) => {
            stats.duration = started.elapsed();
            Ok(stats)
        }
        Err(e) => {
            if !is_device {
                let _ = std::fs::remove_file(&partial);
            }
            Err(e)
        }
    }
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tresor-partial");
    output.with_file_name(name)
}

fn device_size(f: &File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::End(0))
}

fn write_chunks(
    repo: &Repository,
    disk: &DiskEntry,
    target: &Target,
    path: &Path,
    progress: Option<&Progress>,
    workers: usize,
) -> Result<RestoreStats> {
    let workers = if workers == 0 {
        4 * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        workers
    };
    let chunk_size = disk.chunk_size as u64;
    let written = AtomicU64::new(0);
    let data_chunks = AtomicU64::new(0);
    let zero_chunks = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let zero_buf = vec![0u8; chunk_size as usize];
    // Consecutive chunks travel together and are written with one call: large writes
    // are what a disk (and O_DIRECT) is fast at.
    let batch_max = (BATCH_BYTES / chunk_size).max(1) as usize;
    let (tx, rx) = bounded::<(u64, Vec<ChunkId>)>(workers * 2);
    let chunk_len = |chunk: u64| chunk_size.min(disk.size - chunk * chunk_size);

    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for _ in 0..workers {
            let rx = rx.clone();
            let (written, data_chunks, failed) = (&written, &data_chunks, &failed);
            handles.push(scope.spawn(move || -> Result<()> {
                let mut buf = Vec::with_capacity(batch_max * chunk_size as usize);
                for (first, ids) in rx {
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    buf.clear();
                    for (i, id) in ids.iter().enumerate() {
                        let chunk = first + i as u64;
                        let offset = chunk * chunk_size;
                        let data = repo
                            .read_blob(BlobKind::Data, id)
                            .map_err(|e| damaged(repo, id, disk, offset, e))
                            .and_then(|d| {
                                if d.len() as u64 == chunk_len(chunk) {
                                    Ok(d)
                                } else {
                                    let why = format!(
                                        "chunk holds {} bytes, the disk needs {}",
                                        d.len(),
                                        chunk_len(chunk)
                                    );
                                    Err(damaged(repo, id, disk, offset, Error::Invalid(why)))
                                }
                            });
                        match data {
                            Ok(d) => buf.extend_from_slice(&d),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    if let Err(e) = target.write(first * chunk_size, &buf, path) {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    written.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    data_chunks.fetch_add(ids.len() as u64, Ordering::Relaxed);
                    if let Some(p) = progress {
                        p.add_done(buf.len() as u64);
                    }
                }
                Ok(())
            }));
        }
        drop(rx);
        let batch = std::cell::RefCell::new((0u64, Vec::<ChunkId>::new()));
        let send = |batch: &mut (u64, Vec<ChunkId>)| -> Result<()> {
            if batch.1.is_empty() {
                return Ok(());
            }
            if failed.load(Ordering::Relaxed) || progress.is_some_and(Progress::cancelled) {
                return Err(Error::Cancelled);
            }
            let ids = std::mem::replace(&mut batch.1, Vec::with_capacity(batch_max));
            tx.send((batch.0, ids)).map_err(|_| Error::Cancelled)
        };
        let walked = walk_chunks(
            repo,
            disk.root,
            disk.shape(),
            &mut |chunk, id| {
                let mut batch = batch.borrow_mut();
                if batch.1.len() == batch_max || batch.0 + batch.1.len() as u64 != chunk {
                    send(&mut batch)?;
                    batch.0 = chunk;
                }
                batch.1.push(id);
                Ok(())
            },
            &mut |first, count| {
                send(&mut batch.borrow_mut())?;
                zero_chunks.fetch_add(count, Ordering::Relaxed);
                let bytes = (count * chunk_size).min(disk.size - first * chunk_size);
                if let Target::Device(_) = target {
                    for c in first..first + count {
                        target.write(c * chunk_size, &zero_buf[..chunk_len(c) as usize], path)?;
                    }
                }
                if let Some(p) = progress {
                    p.add_done(bytes);
                }
                Ok(())
            },
        )
        .and_then(|()| send(&mut batch.borrow_mut()));
        drop(tx);
        let mut first_err = None;
        for h in handles {
            if let Err(e) = h.join().expect("restore worker panicked") {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        walked
    })?;
    Ok(RestoreStats {
        disk_size: disk.size,
        bytes_written: written.into_inner(),
        data_chunks: data_chunks.into_inner(),
        zero_chunks: zero_chunks.into_inner(),
        duration: Duration::ZERO,
    })
}

/// Names the chunk, its disk offset and its pack in an error about it.
fn damaged(repo: &Repository, id: &ChunkId, disk: &DiskEntry, offset: u64, e: Error) -> Error {
    let reason = match e {
        Error::Format(tresor_format::Error::BlobCorrupt { reason, .. }) => reason,
        Error::MissingBlob { .. } => "no index lists it (lost from the storage)".into(),
        other => other.to_string(),
    };
    let index = repo.index();
    let pack = index
        .get(id)
        .map(|l| index.pack_name(l))
        .unwrap_or_else(|| "none".into());
    Error::DamagedChunk {
        id: *id,
        disk: disk.name.clone(),
        offset,
        pack,
        reason,
    }
}
