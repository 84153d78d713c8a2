//! `tresor benchmark`: speeds of the primitives and of the whole pipeline, like
//! `proxmox-backup-client benchmark`, so operators can see what their CPU allows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tresor_blocksource::{BlockSource, Extent, ExtentKind};
use tresor_crypto::MasterKey;
use tresor_storage::{LocalDir, ObjectKind};

use crate::backup::{self, BackupRequest, DiskSource};
use crate::restore::{self, OutputFormat, RestoreRequest};
use crate::{InitOptions, Repository, Result};

pub struct BenchOptions {
    /// Bytes of the in-memory disk the pipeline benchmark backs up.
    pub pipeline_bytes: u64,
    /// Folder for the temporary repository.
    pub dir: std::path::PathBuf,
}

pub struct BenchLine {
    pub what: String,
    pub mb_per_s: f64,
    pub note: Option<String>,
}

/// Semi-compressible test data: runs of text-like bytes mixed with random bytes, which
/// zstd-1 compresses about 2:1, near what guest file systems give.
fn sample_data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let words: [&[u8]; 8] = [
        b"backup ",
        b"vault ",
        b"recovery ",
        b"point ",
        b"disk ",
        b"chunk ",
        b"the ",
        b"qemu ",
    ];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        if rng.gen_bool(0.5) {
            for _ in 0..rng.gen_range(16..256) {
                out.extend_from_slice(words[rng.gen_range(0..words.len())]);
            }
        } else {
            let n = rng.gen_range(64..1024);
            out.extend((0..n).map(|_| rng.gen::<u8>()));
        }
    }
    out.truncate(len);
    out
}

/// Runs `f` over `bytes` repeatedly for about half a second; MB/s (10^6 bytes).
fn measure(bytes: usize, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut rounds = 0u64;
    while started.elapsed() < Duration::from_millis(500) || rounds == 0 {
        f();
        rounds += 1;
    }
    (bytes as f64 * rounds as f64) / started.elapsed().as_secs_f64() / 1e6
}

pub fn run(opts: &BenchOptions, report: &mut dyn FnMut(&BenchLine)) -> Result<()> {
    const CHUNK: usize = 64 * 1024;
    let data = sample_data(64 * CHUNK, 1);
    let key = MasterKey::generate();
    let id_key = key.chunk_id_key();
    let sealer = key.sealer();
    let line = |what: &str, mb: f64, note: Option<String>| BenchLine {
        what: what.to_string(),
        mb_per_s: mb,
        note,
    };

    report(&line(
        "keyed BLAKE3 chunk ids (64 KiB chunks)",
        measure(data.len(), || {
            for c in data.chunks(CHUNK) {
                std::hint::black_box(id_key.id_of(c));
            }
        }),
        None,
    ));
    let mut compressor = zstd::bulk::Compressor::new(1).expect("zstd level 1");
    let compressed: Vec<Vec<u8>> = data
        .chunks(CHUNK)
        .map(|c| compressor.compress(c).expect("zstd"))
        .collect();
    let ratio = data.len() as f64 / compressed.iter().map(Vec::len).sum::<usize>() as f64;
    report(&line(
        "zstd level 1 compress (64 KiB chunks)",
        measure(data.len(), || {
            for c in data.chunks(CHUNK) {
                std::hint::black_box(compressor.compress(c).expect("zstd"));
            }
        }),
        Some(format!("ratio {ratio:.2} on sample data")),
    ));
    report(&line(
        "zstd decompress",
        measure(data.len(), || {
            for c in &compressed {
                std::hint::black_box(zstd::bulk::decompress(c, CHUNK).expect("zstd"));
            }
        }),
        None,
    ));
    let mut out = Vec::with_capacity(CHUNK + 64);
    report(&line(
        "AES-256-GCM seal",
        measure(data.len(), || {
            for c in data.chunks(CHUNK) {
                out.clear();
                sealer.seal_into(b"aad", c, &mut out);
            }
        }),
        None,
    ));
    let sealed: Vec<Vec<u8>> = data.chunks(CHUNK).map(|c| sealer.seal(b"aad", c)).collect();
    report(&line(
        "AES-256-GCM open",
        measure(data.len(), || {
            for s in &sealed {
                let mut s = s.clone();
                std::hint::black_box(sealer.open_in_place(b"aad", &mut s).expect("opens"));
            }
        }),
        None,
    ));

    // The whole pipeline on an in-memory disk: nothing but Tresor's own work is timed
    // (and the local directory's writes and fsyncs).
    let dir = tempfile_dir(&opts.dir)?;
    let result = pipeline(opts, &dir, report);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir(base: &std::path::Path) -> Result<std::path::PathBuf> {
    let dir = base.join(format!("tresor-benchmark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| crate::Error::Output {
        path: dir.display().to_string(),
        what: "create benchmark folder".into(),
        source: e,
    })?;
    Ok(dir)
}

fn pipeline(
    opts: &BenchOptions,
    dir: &std::path::Path,
    report: &mut dyn FnMut(&BenchLine),
) -> Result<()> {
    let size = opts.pipeline_bytes.max(1 << 20);
    let disk = Arc::new(MemoryDisk {
        data: sample_data(size as usize, 2),
    });
    let backend = Arc::new(LocalDir::create(&dir.join("repo"))?);
    let init = InitOptions {
        kdf: tresor_crypto::KdfParams {
            m_cost: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        },
        ..InitOptions::default()
    };
    let repo = Repository::init(backend, b"benchmark", &init)?;
    let started = Instant::now();
    let point = backup::run(
        &repo,
        BackupRequest::new(
            "benchmark",
            vec![DiskSource {
                name: "disk".into(),
                source: disk.clone() as Arc<dyn BlockSource>,
                dirty: None,
            }],
        ),
    )?;
    let secs = started.elapsed().as_secs_f64();
    report(&BenchLine {
        what: "backup pipeline (read, hash, zstd, seal, store)".into(),
        mb_per_s: size as f64 / secs / 1e6,
        note: Some(format!(
            "{} MiB, stored {} MiB",
            size >> 20,
            point.stats.bytes_added >> 20
        )),
    });
    // What the vault server does with every pack an agent uploads, on one core: the
    // disk's bytes per second it can take in. New blobs are authenticated; second
    // copies of stored ones are also decompressed and re-hashed.
    let packs = repo.backend().list(ObjectKind::Pack)?;
    let mut bytes = Vec::with_capacity(packs.len());
    for p in &packs {
        bytes.push((
            p.name.clone(),
            repo.backend().get(ObjectKind::Pack, &p.name)?,
        ));
    }
    // The writer's handle does not re-read what it wrote; the second copies need it.
    repo.reload_index()?;
    for (what, index) in [
        (
            "upload check, new blobs (server intake, one core)",
            Default::default(),
        ),
        (
            "upload check, second copies (server intake, one core)",
            repo.index(),
        ),
    ] {
        *repo.index.write() = index;
        let started = Instant::now();
        for (name, b) in &bytes {
            crate::intake::check_pack(&repo, name, b)?;
        }
        let secs = started.elapsed().as_secs_f64();
        report(&BenchLine {
            what: what.into(),
            mb_per_s: size as f64 / secs / 1e6,
            note: Some(format!("{} packs", packs.len())),
        });
    }
    let out = dir.join("restored.raw");
    let started = Instant::now();
    restore::run(
        &repo,
        RestoreRequest {
            point: &point,
            disk: "disk",
            output: &out,
            format: OutputFormat::Raw,
            overwrite: false,
            progress: None,
            workers: 0,
        },
    )?;
    let secs = started.elapsed().as_secs_f64();
    report(&BenchLine {
        what: "restore pipeline (read, open, check, write)".into(),
        mb_per_s: size as f64 / secs / 1e6,
        note: None,
    });
    Ok(())
}

/// A disk held in memory, for benchmarks and tests.
pub struct MemoryDisk {
    pub data: Vec<u8>,
}

impl BlockSource for MemoryDisk {
    fn describe(&self) -> String {
        "memory disk".into()
    }

    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn extents(&self, offset: u64, len: u64) -> tresor_blocksource::Result<Vec<Extent>> {
        let end = (offset + len).min(self.size());
        if offset >= end {
            return Ok(Vec::new());
        }
        Ok(vec![Extent {
            offset,
            len: end - offset,
            kind: ExtentKind::Data,
        }])
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> tresor_blocksource::Result<()> {
        let start = offset as usize;
        let src = self.data.get(start..start + buf.len()).ok_or(
            tresor_blocksource::Error::OutOfRange {
                what: "memory disk".into(),
                offset,
                len: buf.len() as u64,
                size: self.size(),
            },
        )?;
        buf.copy_from_slice(src);
        Ok(())
    }
}
