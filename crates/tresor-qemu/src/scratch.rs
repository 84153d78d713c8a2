//! The scratch folder of a running VM's backups: checked before use (there, a
//! folder, writable, its free space) and holding the lock that keeps a second backup
//! of the VM out.

use std::path::Path;

use tresor_vm::{CheckCode, VmError};

use crate::fleece;

/// One backup of a VM at a time: an exclusive lock in the scratch folder, held until
/// the view is finished (and released by the kernel if the agent dies).
pub(crate) fn lock_vm(scratch: &Path, vm: &str) -> Result<std::fs::File, VmError> {
    use fs2::FileExt;
    let path = scratch.join(format!(".{}lock", fleece::scratch_prefix(vm)));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            VmError::new(
                CheckCode::ScratchSpaceMissing,
                format!("{}: {e}", path.display()),
            )
        })?;
    file.try_lock_exclusive().map_err(|_| {
        VmError::new(
            CheckCode::BackupInProgress,
            format!(
                "another backup of VM {vm} is running (it holds {}); wait for it to finish",
                path.display()
            ),
        )
    })?;
    Ok(file)
}

/// Whether the scratch folder can take overlays: `Err((code, message, fix))`, or the
/// free bytes.
pub(crate) fn check_scratch(dir: &Path) -> Result<u64, (CheckCode, String, String)> {
    let fix = format!(
        "create {} (writable by the agent and by QEMU) or set scratch_dir to a folder with free space",
        dir.display()
    );
    let meta = std::fs::metadata(dir).map_err(|e| {
        (
            CheckCode::ScratchSpaceMissing,
            format!("scratch folder {}: {e}", dir.display()),
            fix.clone(),
        )
    })?;
    if !meta.is_dir() {
        return Err((
            CheckCode::ScratchSpaceMissing,
            format!("scratch folder {} is not a folder", dir.display()),
            fix,
        ));
    }
    let probe = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        (
            CheckCode::ScratchSpaceMissing,
            format!("scratch folder {} is not writable: {e}", dir.display()),
            fix.clone(),
        )
    })?;
    drop(probe);
    fs2::available_space(dir).map_err(|e| {
        (
            CheckCode::ScratchSpaceMissing,
            format!("scratch folder {}: {e}", dir.display()),
            fix,
        )
    })
}
