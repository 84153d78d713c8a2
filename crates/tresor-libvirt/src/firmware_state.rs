//! The small pieces of VM state a domain keeps outside its disks, saved with each
//! point beside its definition XML: the UEFI variable store (`<nvram>`, boot
//! entries, Secure Boot keys) and an emulated TPM's state (swtpm's folder,
//! `/var/lib/libvirt/swtpm/<uuid>/`: sealed keys, e.g. BitLocker's or LUKS's).
//! Without them a restored UEFI guest may not find its boot entry, and a guest
//! whose disk keys are sealed to its TPM cannot unlock them.
//!
//! Each file is read whole, bounded ([`MAX_NVRAM_BYTES`], [`MAX_TPM_BYTES`] in
//! [`MAX_TPM_FILES`] files), compressed (zstd) and kept in the point's `vm_config`
//! as base64 with its BLAKE3 hash (FORMAT.md: "vm_config of the libvirt provider"):
//! a [`SavedFile`], plain data in `tresor-vm`, packed by [`encode_file`] and unpacked
//! by [`SavedFileBytes::bytes`]. A file that cannot be read is a warning on the point,
//! never a failed backup.

use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use tresor_api::inventory::VmTpm;
use tresor_vm::{SavedFile, SavedTpm};

/// The largest UEFI variable store saved (OVMF's are 128 KiB to 4 MiB).
pub const MAX_NVRAM_BYTES: u64 = 16 << 20;
/// The most bytes of TPM state saved (swtpm's are tens of KiB).
pub const MAX_TPM_BYTES: u64 = 4 << 20;
/// The most files of TPM state saved.
pub const MAX_TPM_FILES: usize = 64;
/// Where libvirt keeps emulated TPMs' state, one folder per domain UUID.
pub const SWTPM_STATE_ROOT: &str = "/var/lib/libvirt/swtpm";
/// How a saved file's bytes are written in `vm_config`.
pub const ENCODING: &str = "zstd+base64";

/// A file's bytes packed for a point: zstd-compressed, base64, with their size and
/// BLAKE3 hash.
pub fn encode_file(path: String, bytes: &[u8]) -> Result<SavedFile, String> {
    let packed = zstd::encode_all(bytes, 3).map_err(|e| format!("compressing: {e}"))?;
    Ok(SavedFile {
        path,
        size: bytes.len() as u64,
        blake3: blake3::hash(bytes).to_hex().to_string(),
        encoding: ENCODING.into(),
        data: base64::engine::general_purpose::STANDARD.encode(packed),
    })
}

/// A saved file's bytes unpacked ([`SavedFile`] is plain data in `tresor-vm`).
pub trait SavedFileBytes {
    /// The file's bytes, checked against its size and hash.
    fn bytes(&self) -> Result<Vec<u8>, String>;
}

impl SavedFileBytes for SavedFile {
    fn bytes(&self) -> Result<Vec<u8>, String> {
        if self.encoding != ENCODING {
            return Err(format!(
                "{}: unknown encoding {:?}",
                self.path, self.encoding
            ));
        }
        let packed = base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|e| format!("{}: {e}", self.path))?;
        let limit = MAX_NVRAM_BYTES.max(MAX_TPM_BYTES);
        let mut out = Vec::new();
        zstd::stream::read::Decoder::new(packed.as_slice())
            .and_then(|d| d.take(limit + 1).read_to_end(&mut out))
            .map_err(|e| format!("{}: {e}", self.path))?;
        if out.len() as u64 != self.size || blake3::hash(&out).to_hex().as_str() != self.blake3 {
            return Err(format!(
                "{}: the saved bytes do not match their size and hash",
                self.path
            ));
        }
        Ok(out)
    }
}

/// What is saved of a domain beside its disks, and what could not be.
#[derive(Debug, Default)]
pub struct FirmwareState {
    pub nvram: Option<SavedFile>,
    pub tpm: Option<SavedTpm>,
    pub warnings: Vec<String>,
}

/// Reads `path` whole if it is a regular file of at most `limit` bytes.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > limit {
        return Err(format!(
            "{} bytes, more than the {limit} saved with a point",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(format!("grew past {limit} bytes while read"));
    }
    Ok(bytes)
}

/// Every regular file under `dir` (relative paths, sorted), at most
/// [`MAX_TPM_FILES`] of at most [`MAX_TPM_BYTES`] together.
fn read_tree(dir: &Path) -> Result<Vec<SavedFile>, String> {
    let mut pending = vec![PathBuf::new()];
    let mut found = Vec::new();
    while let Some(rel) = pending.pop() {
        let entries = std::fs::read_dir(dir.join(&rel)).map_err(|e| e.to_string())?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            let name = rel.join(entry.file_name());
            if kind.is_dir() {
                pending.push(name);
            } else if kind.is_file() {
                found.push(name);
            }
            if found.len() + pending.len() > MAX_TPM_FILES {
                return Err(format!("more than {MAX_TPM_FILES} files"));
            }
        }
    }
    found.sort();
    let mut total = 0u64;
    let mut out = Vec::new();
    for rel in found {
        let bytes = read_bounded(&dir.join(&rel), MAX_TPM_BYTES - total)
            .map_err(|e| format!("{}: {e}", rel.display()))?;
        total += bytes.len() as u64;
        out.push(encode_file(rel.to_string_lossy().into_owned(), &bytes)?);
    }
    Ok(out)
}

/// Reads the nvram at `nvram` and, for an emulated TPM, domain `uuid`'s TPM state
/// under `swtpm_root` (blocking; small files).
pub fn read(
    uuid: &str,
    nvram: Option<&str>,
    tpm: Option<&VmTpm>,
    swtpm_root: &Path,
) -> FirmwareState {
    let mut out = FirmwareState::default();
    if let Some(path) = nvram {
        match read_bounded(Path::new(path), MAX_NVRAM_BYTES)
            .and_then(|b| encode_file(path.to_string(), &b))
        {
            Ok(saved) => out.nvram = Some(saved),
            Err(e) => out.warnings.push(format!(
                "the UEFI variable store {path} was not saved with the point ({e}): a restore starts from the firmware's empty template"
            )),
        }
    }
    if let Some(t) = tpm.filter(|t| t.backend == "emulator") {
        let dir = swtpm_root.join(uuid);
        match read_tree(&dir) {
            Ok(files) if !files.is_empty() => {
                out.tpm = Some(SavedTpm {
                    dir: dir.to_string_lossy().into_owned(),
                    files,
                })
            }
            Ok(_) => out.warnings.push(format!(
                "the emulated TPM ({}) has no state in {} yet: none was saved with the point",
                t.model.as_deref().unwrap_or("tpm"),
                dir.display()
            )),
            Err(e) => out.warnings.push(format!(
                "the emulated TPM's state in {} was not saved with the point ({e}): a restored guest gets a new TPM, and keys sealed to the old one are lost",
                dir.display()
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpm() -> VmTpm {
        VmTpm {
            model: Some("tpm-crb".into()),
            backend: "emulator".into(),
            version: Some("2.0".into()),
        }
    }

    #[test]
    fn nvram_and_tpm_state_are_saved_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let nvram = dir.path().join("vm_VARS.fd");
        let mut vars = vec![0xffu8; 540_672];
        vars[1000..1010].copy_from_slice(b"BootOrder!");
        std::fs::write(&nvram, &vars).unwrap();
        let uuid = "0b5e2c1a-0000-4000-8000-000000000001";
        std::fs::create_dir_all(dir.path().join(uuid).join("tpm2")).unwrap();
        std::fs::write(
            dir.path().join(uuid).join("tpm2/tpm2-00.permall"),
            b"sealed",
        )
        .unwrap();

        let got = read(uuid, nvram.to_str(), Some(&tpm()), dir.path());
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let saved = got.nvram.unwrap();
        assert_eq!(saved.size, vars.len() as u64);
        assert!(
            saved.data.len() < 10_000,
            "compressed: {}",
            saved.data.len()
        );
        assert_eq!(saved.bytes().unwrap(), vars);
        let t = got.tpm.unwrap();
        assert_eq!(t.files.len(), 1);
        assert_eq!(t.files[0].path, "tpm2/tpm2-00.permall");
        assert_eq!(t.files[0].bytes().unwrap(), b"sealed");

        let mut tampered = saved.clone();
        tampered.blake3 = "00".repeat(32);
        assert!(tampered.bytes().is_err());
    }

    #[test]
    fn missing_or_oversized_state_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.fd");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_NVRAM_BYTES + 1)
            .unwrap();
        let got = read("u", big.to_str(), Some(&tpm()), dir.path());
        assert!(got.nvram.is_none() && got.tpm.is_none());
        assert_eq!(got.warnings.len(), 2, "{:?}", got.warnings);
        assert!(got.warnings[0].contains("more than"), "{}", got.warnings[0]);
        let none = read("u", None, None, dir.path());
        assert!(none.nvram.is_none() && none.warnings.is_empty());
    }
}
