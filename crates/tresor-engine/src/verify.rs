//! Verify: re-read what recovery points reference and name exactly which are damaged.
//!
//! For one point, every tree node and chunk it references is read and checked (AEAD tag,
//! then the keyed hash of the plaintext against the id). For the whole repository, every
//! pack is read once, front to back: its name is checked against the hash of its bytes
//! and every blob the index lists in it is opened and checked; then every point's tree
//! is walked to find which points reference a damaged or missing blob.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::bounded;
use jiff::Timestamp;
use parking_lot::Mutex;
use tresor_format::blob::{open_blob, BlobKind};
use tresor_format::manifest::Manifest;
use tresor_format::pack::pack_name;
use tresor_format::ChunkId;
use tresor_storage::ObjectKind;

use crate::progress::Progress;
use crate::{Error, Repository, Result};

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub points_checked: u64,
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    pub packs_checked: u64,
    /// Points that reference a damaged or missing blob, with what is wrong.
    pub damaged_points: Vec<DamagedPoint>,
    /// Damage found in the storage itself (packs, index), whether or not a point needs it.
    pub problems: Vec<String>,
}

#[derive(Debug)]
pub struct DamagedPoint {
    pub id: String,
    pub name: String,
    pub created: Timestamp,
    pub problems: Vec<String>,
}

/// Problems listed per point before "and N more".
const PROBLEMS_SHOWN: usize = 20;

pub fn run(
    repo: &Repository,
    point: Option<&str>,
    progress: Option<&Progress>,
) -> Result<VerifyReport> {
    repo.reload_index()?;
    let mut report = VerifyReport::default();
    let points = match point {
        Some(id) => vec![repo.load_point(id)?],
        None => {
            let scan = repo.scan_points()?;
            for (id, e) in scan.unreadable {
                report.points_checked += 1;
                report.damaged_points.push(DamagedPoint {
                    id,
                    name: "?".into(),
                    created: Timestamp::UNIX_EPOCH,
                    problems: vec![format!("its manifest cannot be read: {e}")],
                });
            }
            scan.points
        }
    };
    // Blob id -> why it is bad. For a single point it is filled as its blobs are read.
    let damaged: HashMap<ChunkId, String> = match point {
        Some(_) => check_point_blobs(repo, &points[0], &mut report, progress)?,
        None => check_all_packs(repo, &mut report, progress)?,
    };
    if progress.is_some_and(|p| p.cancelled()) {
        return Err(Error::Cancelled);
    }
    for p in &points {
        report.points_checked += 1;
        let problems = point_problems(repo, p, &damaged)?;
        if !problems.is_empty() {
            report.damaged_points.push(DamagedPoint {
                id: p.id.clone(),
                name: p.name.clone(),
                created: p.created,
                problems,
            });
        }
    }
    Ok(report)
}

/// Walks a point's trees and lists every reference to a damaged, missing or unreadable blob.
fn point_problems(
    repo: &Repository,
    point: &Manifest,
    damaged: &HashMap<ChunkId, String>,
) -> Result<Vec<String>> {
    let index = repo.index();
    let mut problems = Vec::new();
    let mut more = 0usize;
    let mut note = |problems: &mut Vec<String>, text: String| {
        if problems.len() < PROBLEMS_SHOWN {
            problems.push(text);
        } else {
            more += 1;
        }
    };
    for disk in &point.disks {
        let chunk_size = disk.chunk_size as u64;
        let mut bad_nodes = Vec::new();
        let result = crate::tree::walk_chunks(
            repo,
            disk.root,
            disk.shape(),
            &mut |chunk, id| {
                let why = if let Some(why) = damaged.get(&id) {
                    Some(why.clone())
                } else if !index.contains(&id) {
                    Some("missing: no index lists it".to_string())
                } else {
                    None
                };
                if let Some(why) = why {
                    bad_nodes.push(format!(
                        "disk {}: chunk {id} at offset {}: {why}",
                        disk.name,
                        chunk * chunk_size
                    ));
                }
                Ok(())
            },
            &mut |_, _| Ok(()),
        );
        for b in bad_nodes {
            note(&mut problems, b);
        }
        if let Err(e) = result {
            // A damaged tree node hides the rest of that disk: the disk cannot be restored.
            note(
                &mut problems,
                format!("disk {}: its tree cannot be read: {e}", disk.name),
            );
        }
    }
    if more > 0 {
        problems.push(format!("... and {more} more"));
    }
    Ok(problems)
}

/// Reads every data chunk one point references, in parallel.
fn check_point_blobs(
    repo: &Repository,
    point: &Manifest,
    report: &mut VerifyReport,
    progress: Option<&Progress>,
) -> Result<HashMap<ChunkId, String>> {
    let mut ids = HashSet::new();
    for disk in &point.disks {
        // Tree nodes are checked when read here; a damaged one is reported by point_problems.
        let _ = crate::tree::walk_chunks(
            repo,
            disk.root,
            disk.shape(),
            &mut |_, id| {
                ids.insert(id);
                Ok(())
            },
            &mut |_, _| Ok(()),
        );
    }
    if let Some(p) = progress {
        let index = repo.index();
        p.add_total(
            ids.iter()
                .filter_map(|id| index.get(id))
                .map(|l| l.sealed_len as u64)
                .sum(),
        );
    }
    let damaged = Mutex::new(HashMap::new());
    let (checked, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let (tx, rx) = bounded::<ChunkId>(256);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let rx = rx.clone();
            let (damaged, checked, bytes) = (&damaged, &checked, &bytes);
            scope.spawn(move || {
                for id in rx {
                    match repo.read_blob(BlobKind::Data, &id) {
                        Ok(data) => {
                            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                            if let Some(p) = progress {
                                p.add_done(data.len() as u64);
                            }
                        }
                        Err(Error::MissingBlob { .. }) => {} // reported by point_problems
                        Err(e) => {
                            damaged.lock().insert(id, blob_reason(e));
                        }
                    }
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for id in ids {
            if progress.is_some_and(|p| p.cancelled()) || tx.send(id).is_err() {
                break;
            }
        }
        drop(tx);
    });
    report.blobs_checked += checked.into_inner();
    report.bytes_checked += bytes.into_inner();
    Ok(damaged.into_inner())
}

fn blob_reason(e: Error) -> String {
    match e {
        Error::Format(tresor_format::Error::BlobCorrupt { reason, .. }) => reason,
        other => other.to_string(),
    }
}

/// Reads every pack once and checks every blob the index lists in it.
fn check_all_packs(
    repo: &Repository,
    report: &mut VerifyReport,
    progress: Option<&Progress>,
) -> Result<HashMap<ChunkId, String>> {
    let index = repo.index();
    let mut by_pack: HashMap<u32, Vec<ChunkId>> = HashMap::new();
    for (id, loc) in &index.blobs {
        by_pack.entry(loc.pack).or_default().push(*id);
    }
    let stored: HashMap<String, u64> = repo
        .backend()
        .list(ObjectKind::Pack)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    if let Some(p) = progress {
        p.add_total(stored.values().sum());
    }
    let damaged = Mutex::new(HashMap::new());
    let problems = Mutex::new(Vec::new());
    let (checked, bytes, packs) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let (tx, rx) = bounded::<(u32, Vec<ChunkId>)>(workers);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let rx = rx.clone();
            let (damaged, problems, checked, bytes, packs, index) =
                (&damaged, &problems, &checked, &bytes, &packs, &index);
            scope.spawn(move || {
                for (pack, ids) in rx {
                    let name = hex::encode(index.packs[pack as usize]);
                    let bytes_of_pack = match repo.backend().get(ObjectKind::Pack, &name) {
                        Ok(b) => b,
                        Err(e) => {
                            problems
                                .lock()
                                .push(format!("pack {name} cannot be read: {e}"));
                            let mut d = damaged.lock();
                            for id in ids {
                                d.insert(id, format!("its pack {name} cannot be read"));
                            }
                            continue;
                        }
                    };
                    packs.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(bytes_of_pack.len() as u64, Ordering::Relaxed);
                    if let Some(p) = progress {
                        p.add_done(bytes_of_pack.len() as u64);
                    }
                    if pack_name(&bytes_of_pack) != name {
                        problems.lock().push(format!(
                            "pack {name}: its bytes do not match its name (damaged)"
                        ));
                    }
                    for id in ids {
                        let loc = *index.get(&id).expect("listed by this index");
                        let range =
                            loc.offset as usize..loc.offset as usize + loc.sealed_len as usize;
                        let result = match bytes_of_pack.get(range) {
                            Some(sealed) => {
                                let mut sealed = sealed.to_vec();
                                open_blob(
                                    repo.sealer(),
                                    repo.id_key(),
                                    loc.kind,
                                    &id,
                                    loc.compression,
                                    loc.raw_len,
                                    &mut sealed,
                                )
                                .map(|_| ())
                                .map_err(|e| blob_reason(Error::Format(e)))
                            }
                            None => Err(format!("lies beyond the end of pack {name}")),
                        };
                        checked.fetch_add(1, Ordering::Relaxed);
                        if let Err(why) = result {
                            damaged.lock().insert(id, format!("{why} (pack {name})"));
                        }
                    }
                }
            });
        }
        for (pack, ids) in by_pack {
            if progress.is_some_and(|p| p.cancelled()) || tx.send((pack, ids)).is_err() {
                break;
            }
        }
        drop(tx);
    });
    let mut problems = problems.into_inner();
    let damaged = damaged.into_inner();
    if !damaged.is_empty() {
        problems.push(format!("{} damaged blobs", damaged.len()));
    }
    report.blobs_checked += checked.into_inner();
    report.bytes_checked += bytes.into_inner();
    report.packs_checked += packs.into_inner();
    report.problems.extend(problems);
    Ok(damaged)
}
