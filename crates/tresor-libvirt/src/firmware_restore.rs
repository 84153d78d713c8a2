//! The UEFI variable store and emulated TPM state saved with a point
//! ([`firmware_state`](crate::firmware_state)) written back by a restore: into a new
//! domain's files before its first start (so libvirt does not make them afresh from
//! the firmware's template and `swtpm_setup`), or over a shut-off domain's own when
//! its disks are replaced. The saved bytes were checked against their size and hash
//! when decoded; what is written is only ever a file Tresor names here (libvirt's
//! nvram folder, the TPM's state folder under [`SWTPM_STATE_ROOT`]), never a path
//! from the point.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use tresor_vm::{SavedFile, SavedTpm};

use crate::firmware_state::{SavedFileBytes, MAX_TPM_BYTES, MAX_TPM_FILES};

/// Where libvirt keeps the domains' UEFI variable stores (`<name>_VARS.fd`).
pub const NVRAM_DIR: &str = "/var/lib/libvirt/qemu/nvram";

/// `path` when it is a file directly in `dir` (by its text: no `..`, no other folder).
fn file_directly_in(path: &str, dir: &Path) -> Option<PathBuf> {
    let p = Path::new(path);
    (p.parent() == Some(dir) && p.file_name().is_some()).then(|| p.to_path_buf())
}

/// A saved TPM file's path under the state folder, when it is relative and plain.
fn plain_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let plain = !path.is_empty()
        && path.len() <= 255
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| p.to_path_buf())
}

/// Writes `bytes` to `path` through a temporary file beside it, synced, then renamed
/// over: a reader sees the old file or the new one. With `owner`, the file gets that
/// uid, gid and mode (the file it replaces kept its own); otherwise 0600, root's.
fn write_atomic(path: &Path, bytes: &[u8], owner: Option<(u32, u32, u32)>) -> Result<(), String> {
    let dir = path.parent().ok_or("no folder")?;
    let tmp = dir.join(format!(
        ".{}.tresor-restore",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if let Some((uid, gid, mode)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777))?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| format!("{}: {e}", path.display()))
}

fn ownership(path: &Path) -> Option<(u32, u32, u32)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.uid(), m.gid(), m.mode()))
}

/// Writes the saved variable store to `nvram`, the path libvirt gave the domain,
/// which must lie directly in `nvram_dir`. `replace`: over the domain's existing
/// store (its owner and mode kept); otherwise a new file, never over one.
pub fn write_nvram(
    saved: &SavedFile,
    nvram: &str,
    nvram_dir: &Path,
    replace: bool,
) -> Result<PathBuf, String> {
    let path = file_directly_in(nvram, nvram_dir).ok_or_else(|| {
        format!(
            "its variable store {nvram} is not a file in {}",
            nvram_dir.display()
        )
    })?;
    let existing = std::fs::symlink_metadata(&path).ok();
    match (&existing, replace) {
        (Some(m), _) if !m.is_file() => {
            return Err(format!("{} is not a regular file", path.display()))
        }
        (Some(_), false) => return Err(format!("{} exists already", path.display())),
        _ => {}
    }
    let bytes = saved.bytes()?;
    write_atomic(&path, &bytes, existing.and(ownership(&path)))?;
    Ok(path)
}

/// libvirt's configuration of its QEMU driver, where `swtpm_user` and `swtpm_group`
/// are set.
pub const QEMU_CONF: &str = "/etc/libvirt/qemu.conf";

/// The value of an uncommented `key = "value"` line of libvirt's qemu.conf.
fn conf_value(conf: &str, key: &str) -> Option<String> {
    conf.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The id of `name` in a passwd- or group-style file (`name:x:id:...`).
fn id_in(table: &str, name: &str) -> Option<u32> {
    table.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

/// Whom libvirt runs swtpm as: qemu.conf's `swtpm_user` and `swtpm_group` (both
/// `tss` unless set), as ids. swtpm must own a TPM's state: libvirt hands it a
/// folder only when it makes the state itself.
pub fn swtpm_owner(qemu_conf: &Path) -> Result<(u32, u32), String> {
    let conf = std::fs::read_to_string(qemu_conf).unwrap_or_default();
    let user = conf_value(&conf, "swtpm_user").unwrap_or_else(|| "tss".into());
    let group = conf_value(&conf, "swtpm_group").unwrap_or_else(|| "tss".into());
    let lookup = |file: &str, name: &str| {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|t| id_in(&t, name))
            .or_else(|| name.parse().ok())
            .ok_or_else(|| format!("swtpm's {name} is not in {file}"))
    };
    Ok((lookup("/etc/passwd", &user)?, lookup("/etc/group", &group)?))
}

/// Writes the saved TPM state into `dir` (`SWTPM_STATE_ROOT/<uuid>`), which the
/// domain's swtpm reads at its next start. `replace`: the folder's files become
/// exactly the saved ones (others, such as a volatile state that belongs to the
/// old permanent state, are removed), owners kept; otherwise the folder must not
/// exist yet and is made (0700), owned with everything in it by `new_owner`
/// (swtpm's user and group, [`swtpm_owner`]).
pub fn write_tpm(
    saved: &SavedTpm,
    dir: &Path,
    replace: bool,
    new_owner: (u32, u32),
) -> Result<usize, String> {
    // The bounds a backup saves within: a point from a hostile host may claim more.
    let declared = saved
        .files
        .iter()
        .map(|f| f.size)
        .fold(0u64, u64::saturating_add);
    if saved.files.len() > MAX_TPM_FILES || declared > MAX_TPM_BYTES {
        return Err(format!(
            "the saved TPM state has {} files of {declared} bytes, more than the {MAX_TPM_FILES} files of {MAX_TPM_BYTES} bytes a backup saves",
            saved.files.len()
        ));
    }
    let files: Vec<(PathBuf, &SavedFile)> = saved
        .files
        .iter()
        .map(|f| {
            plain_relative(&f.path)
                .map(|p| (p, f))
                .ok_or_else(|| format!("saved TPM file {:?} is not a plain relative path", f.path))
        })
        .collect::<Result<_, _>>()?;
    let decoded: Vec<(PathBuf, Vec<u8>)> = files
        .into_iter()
        .map(|(p, f)| f.bytes().map(|b| (p, b)))
        .collect::<Result<_, _>>()?;
    let dir_owner = if replace {
        let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !m.is_dir() {
            return Err(format!("{} is not a folder", dir.display()));
        }
        Some((m.uid(), m.gid()))
    } else {
        if std::fs::symlink_metadata(dir).is_ok() {
            return Err(format!("{} exists already", dir.display()));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        std::os::unix::fs::chown(dir, Some(new_owner.0), Some(new_owner.1))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Some(new_owner)
    };
    for (rel, bytes) in &decoded {
        let path = dir.join(rel);
        let parent = path.parent().unwrap_or(dir);
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| format!("{}: {e}", parent.display()))?;
            if let Some((uid, gid)) = dir_owner {
                std::os::unix::fs::chown(parent, Some(uid), Some(gid))
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
        }
        // A file kept its owner; a new one gets the folder's (swtpm's user).
        let owner = ownership(&path).or(dir_owner.map(|(u, g)| (u, g, 0o600)));
        write_atomic(&path, bytes, owner)?;
    }
    if replace {
        remove_others(dir, dir, &decoded)?;
    }
    Ok(decoded.len())
}

/// Removes the regular files under `dir` that are not among `kept` (relative to `root`).
fn remove_others(root: &Path, dir: &Path, kept: &[(PathBuf, Vec<u8>)]) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            remove_others(root, &path, kept)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            if !kept.iter().any(|(k, _)| k == rel) {
                std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware_state::read;
    use tresor_api::inventory::VmTpm;

    fn saved_state(dir: &Path) -> (SavedFile, SavedTpm) {
        let nvram = dir.join("vm_VARS.fd");
        std::fs::write(&nvram, b"variables").unwrap();
        let uuid = "0b5e2c1a-0000-4000-8000-000000000001";
        std::fs::create_dir_all(dir.join(uuid).join("tpm2")).unwrap();
        std::fs::write(dir.join(uuid).join("tpm2/tpm2-00.permall"), b"sealed").unwrap();
        let tpm = VmTpm {
            model: Some("tpm-crb".into()),
            backend: "emulator".into(),
            version: Some("2.0".into()),
        };
        let got = read(uuid, nvram.to_str(), Some(&tpm), dir);
        (got.nvram.unwrap(), got.tpm.unwrap())
    }

    #[test]
    fn swtpm_runs_as_qemu_conf_says_or_tss() {
        let conf = "#swtpm_user = \"nobody\"\nswtpm_group = \"disk\"\n";
        assert_eq!(conf_value(conf, "swtpm_user"), None);
        assert_eq!(conf_value(conf, "swtpm_group").as_deref(), Some("disk"));
        let passwd = "root:x:0:0:root:/root:/bin/bash\ntss:x:104:110::/var/lib/tpm:/bin/false\n";
        assert_eq!(id_in(passwd, "tss"), Some(104));
        assert_eq!(id_in(passwd, "ts"), None);
    }

    #[test]
    fn nvram_goes_only_into_its_folder_and_never_over_a_file_unless_replacing() {
        let src = tempfile::tempdir().unwrap();
        let (nvram, _) = saved_state(src.path());
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("new_VARS.fd");
        let t = target.to_str().unwrap();
        assert_eq!(write_nvram(&nvram, t, dir.path(), false).unwrap(), target);
        assert_eq!(std::fs::read(&target).unwrap(), b"variables");
        assert!(write_nvram(&nvram, t, dir.path(), false)
            .unwrap_err()
            .contains("exists"));
        std::fs::write(&target, b"changed").unwrap();
        write_nvram(&nvram, t, dir.path(), true).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"variables");
        for outside in ["/etc/passwd", "relative_VARS.fd"] {
            assert!(write_nvram(&nvram, outside, dir.path(), true).is_err());
        }
        let sneaky = format!("{}/../x_VARS.fd", dir.path().display());
        assert!(write_nvram(&nvram, &sneaky, dir.path(), true).is_err());
    }

    #[test]
    fn tpm_state_is_written_whole_and_replacing_removes_what_it_did_not_save() {
        let src = tempfile::tempdir().unwrap();
        let (_, tpm) = saved_state(src.path());
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("new-uuid");
        let me = {
            let m = std::fs::metadata(root.path()).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(write_tpm(&tpm, &dir, false, me).unwrap(), 1);
        let permall = dir.join("tpm2/tpm2-00.permall");
        assert_eq!(std::fs::read(&permall).unwrap(), b"sealed");
        assert!(write_tpm(&tpm, &dir, false, me)
            .unwrap_err()
            .contains("exists"));
        std::fs::write(&permall, b"other").unwrap();
        std::fs::write(dir.join("tpm2/tpm2-00.volatilestate"), b"old").unwrap();
        write_tpm(&tpm, &dir, true, me).unwrap();
        assert_eq!(std::fs::read(&permall).unwrap(), b"sealed");
        assert!(!dir.join("tpm2/tpm2-00.volatilestate").exists());

        let mut many = tpm.clone();
        many.files = vec![tpm.files[0].clone(); MAX_TPM_FILES + 1];
        let err = write_tpm(&many, &root.path().join("many"), false, me).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        let mut large = tpm.clone();
        large.files[0].size = MAX_TPM_BYTES + 1;
        assert!(write_tpm(&large, &root.path().join("large"), false, me).is_err());
        assert!(!root.path().join("many").exists() && !root.path().join("large").exists());

        let mut hostile = tpm.clone();
        hostile.files[0].path = "../escape".into();
        let err = write_tpm(&hostile, &root.path().join("x"), false, me).unwrap_err();
        assert!(err.contains("plain relative"), "{err}");
        assert!(!root.path().join("x").exists() && !root.path().join("escape").exists());
    }
}
