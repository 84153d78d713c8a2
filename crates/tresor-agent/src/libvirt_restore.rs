//! Restoring a libvirt domain's recovery point as libvirt domains: a new domain
//! (new name, UUID and MACs, the point's disks written into a folder or a storage
//! pool, its stored definition adapted by `tresor_libvirt::restore_xml`), or the
//! disks of the existing domain replaced while it is shut off (its identity kept,
//! Tresor's checkpoints of it forgotten so the next backup reads it whole).
//!
//! Blocking. Folders are confined to the restore roots by the caller
//! (`daemon/restore_job.rs`); a pool's folder is checked here against them too.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tresor_api::inventory::DiskSource;
use tresor_api::jobs::RestoredLibvirtDomain;
use tresor_engine::progress::Progress;
use tresor_engine::restore::OutputFormat;
use tresor_engine::{Manifest, Repository};
use tresor_libvirt::firmware_restore::{swtpm_owner, write_nvram, write_tpm, NVRAM_DIR, QEMU_CONF};
use tresor_libvirt::firmware_state::SWTPM_STATE_ROOT;
use tresor_libvirt::restore_xml::{self, NewDisk, NewDomain};
use tresor_libvirt::LibvirtHost;
use tresor_qemu::{validate_disk_name, validate_vm_name};
use tresor_vm::{LibvirtPointConfig, VmConfig, VmDisk};

use crate::confine::RestoreRoots;
use crate::restore::{
    new_or_empty_folder, planned_disks, replace_original, write_disks, write_new, RestoreError,
    RestoreOutcome, SavedConfig,
};

/// Whether `point` is a libvirt domain's (its saved configuration says so). A
/// configuration whose `provider` is libvirt but whose rest cannot be read counts:
/// the libvirt restore then says what cannot be read, rather than the point being
/// made into a QEMU VM.
pub fn is_libvirt_point(point: &Manifest) -> bool {
    match VmConfig::of_point(point.vm_config.as_ref()) {
        Some(Ok(config)) => config.as_libvirt().is_some(),
        Some(Err(e)) => e.provider.as_deref() == Some("libvirt"),
        None => false,
    }
}

/// The point's saved libvirt configuration, or why it has none that a new domain can
/// be defined from.
fn libvirt_config<'a>(
    point: &Manifest,
    saved: &'a SavedConfig,
) -> Result<&'a LibvirtPointConfig, RestoreError> {
    if let Some(e) = saved.unreadable() {
        return Err(RestoreError::Definition(format!(
            "recovery point {}: {e}",
            point.id
        )));
    }
    saved
        .config()
        .and_then(VmConfig::as_libvirt)
        .ok_or_else(|| {
            RestoreError::Definition(format!(
                "recovery point {} is not a libvirt domain's (its saved configuration does not say so)",
                point.id
            ))
        })
}

/// Where a new domain's disks go.
#[derive(Debug, Clone)]
pub enum DiskTarget {
    /// A new or empty folder (resolved, under the restore roots): `<disk>.<ext>`.
    Folder(PathBuf),
    /// A storage pool: `<new name>-<disk>.<ext>` in its folder, each a new file.
    Pool(String),
}

/// A new domain from a point.
#[derive(Debug, Clone)]
pub struct NewDomainRequest {
    /// Default: the point's domain name, `-restored-` and the time.
    pub name: Option<String>,
    pub target: DiskTarget,
    pub format: Option<OutputFormat>,
    pub start: bool,
    /// Where a direct-boot kernel may be taken from (see `restore_xml::BOOT_DIR`).
    pub boot_dirs: Vec<PathBuf>,
}

fn libvirt(e: tresor_libvirt::LibvirtError) -> RestoreError {
    RestoreError::Libvirt(e.to_string())
}

/// The default name of a new domain: the point's domain's name (letters, digits,
/// `-`, `_`, `.` kept), `-restored-` and the time, at most 64 characters.
pub fn default_name(point: &Manifest, now: jiff::Timestamp) -> String {
    let config = SavedConfig::of(point);
    let saved = config
        .config()
        .map(VmConfig::name)
        .filter(|n| !n.is_empty())
        .unwrap_or(&point.name);
    let suffix = format!("-restored-{}", now.strftime("%Y%m%d-%H%M%S"));
    let base: String = saved
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64 - suffix.len())
        .collect();
    let base = base.trim_start_matches('.');
    format!("{}{suffix}", if base.is_empty() { "vm" } else { base })
}

/// The folder of the storage pool `pool`, when it lies under the restore roots (a
/// root itself allowed: the disks are new files, never written over others).
pub fn pool_folder(
    host: &LibvirtHost,
    roots: &RestoreRoots,
    pool: &str,
) -> Result<PathBuf, RestoreError> {
    let Some(folder) = host.pool_folder(pool).map_err(libvirt)? else {
        return Err(RestoreError::Invalid(format!(
            "libvirt at {} has no storage pool {pool}",
            host.uri()
        )));
    };
    let resolved = folder.canonicalize().map_err(|e| {
        RestoreError::Invalid(format!(
            "storage pool {pool}'s folder {} cannot be resolved: {e}",
            folder.display()
        ))
    })?;
    if !roots.roots().iter().any(|r| resolved.starts_with(r)) {
        return Err(RestoreError::Invalid(format!(
            "storage pool {pool}'s folder {} is not under the host's restore roots ({}); add it to restore_roots in the agent's configuration, or restore into a folder",
            resolved.display(),
            roots
                .roots()
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(resolved)
}

/// Restores `point` as a new domain of `host`. Everything is checked (the name is
/// free, the definition adapts, the files are new) before anything is written.
pub fn restore_new_domain(
    repo: &Repository,
    point: &Manifest,
    host: &LibvirtHost,
    roots: &RestoreRoots,
    req: &NewDomainRequest,
    progress: Option<&Progress>,
) -> Result<RestoreOutcome, RestoreError> {
    let name = req
        .name
        .clone()
        .unwrap_or_else(|| default_name(point, jiff::Timestamp::now()));
    validate_vm_name(&name)?;
    for disk in &point.disks {
        validate_disk_name(&disk.name)?;
    }
    if host.name_taken(&name).map_err(libvirt)? {
        return Err(RestoreError::NameTaken(format!(
            "libvirt at {} has a domain named {name} already; nothing was written",
            host.uri()
        )));
    }
    let saved = SavedConfig::of(point);
    let config = libvirt_config(point, &saved)?;
    let stored = config.domain_xml.as_deref().ok_or_else(|| {
        RestoreError::Definition(format!(
            "recovery point {} holds no domain definition (a transient domain's, or an older point)",
            point.id
        ))
    })?;
    let (folder, prefix) = match &req.target {
        DiskTarget::Folder(f) => (f.clone(), String::new()),
        DiskTarget::Pool(pool) => (pool_folder(host, roots, pool)?, format!("{name}-")),
    };
    let planned = planned_disks(point, saved.config(), &folder, req.format, &prefix);
    let new_disks: Vec<NewDisk> = planned
        .iter()
        .map(|d| NewDisk {
            target: d.name.clone(),
            path: d.path.clone(),
            format: d.format.clone(),
        })
        .collect();
    let adapted = restore_xml::adapt_for_new_domain(
        stored,
        &NewDomain {
            name: &name,
            disks: &new_disks,
            from_point: &point.id,
            boot_dirs: &req.boot_dirs,
        },
    )
    .map_err(|e| {
        RestoreError::Definition(format!(
            "recovery point {}'s domain definition cannot be restored: {e}",
            point.id
        ))
    })?;
    let definition = match &req.target {
        DiskTarget::Folder(f) => {
            let folder = new_or_empty_folder(f)?;
            // libvirt's QEMU (another user) opens the images by path: it must be
            // able to pass through the folder, though not list it.
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o711)).map_err(
                |source| RestoreError::Io {
                    what: format!("opening {} to libvirt's QEMU", folder.display()),
                    source,
                },
            )?;
            Some(folder.join("domain.xml"))
        }
        DiskTarget::Pool(_) => {
            if let Some(taken) = planned.iter().find(|d| d.path.symlink_metadata().is_ok()) {
                return Err(RestoreError::Invalid(format!(
                    "{} exists; give the new domain another name",
                    taken.path.display()
                )));
            }
            None
        }
    };
    let disks = write_disks(repo, point, planned, progress)?;
    if let Some(path) = &definition {
        write_new(path, adapted.xml.as_bytes(), 0o600)?;
    }
    if let DiskTarget::Pool(pool) = &req.target {
        // The volumes are there either way; listing them is a convenience.
        if let Err(e) = host.refresh_pool(pool) {
            tracing::warn!(error = %e, "refreshing the storage pool after a restore");
        }
    }
    let defined = host.define_domain(&adapted.xml).map_err(|e| {
        RestoreError::Libvirt(format!(
            "the disks were restored ({}), but the new domain could not be defined: {e}",
            disks
                .iter()
                .map(|d| d.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let mut notes = adapted.notes;
    // Before the first start, or libvirt makes a fresh store and TPM of its own.
    notes.extend(write_back_firmware(
        Some(config),
        &FirmwareTargets {
            domain: &defined.name,
            nvram: defined.nvram.as_deref(),
            tpm_dir: defined
                .emulated_tpm
                .then(|| Path::new(SWTPM_STATE_ROOT).join(&defined.uuid)),
            nvram_dir: Path::new(NVRAM_DIR),
        },
        false,
    ));
    let mut started = false;
    if req.start {
        match host.start_domain(&defined.uuid) {
            Ok(()) => started = true,
            Err(e) => notes.push(format!(
                "domain {} is defined but did not start: {e}",
                defined.name
            )),
        }
    }
    Ok(RestoreOutcome {
        disks,
        definition,
        start_script: None,
        notes,
        domain: Some(RestoredLibvirtDomain {
            name: defined.name,
            uuid: defined.uuid,
            macs: defined.macs,
            started,
        }),
    })
}

/// The images of a domain's file and block disks, as libvirt describes them now:
/// what a replace writes over (never a path from the point).
fn image_disks(disks: Vec<VmDisk>) -> Vec<VmDisk> {
    disks
        .into_iter()
        .filter_map(|mut d| match &d.source {
            Some(DiskSource::File { path } | DiskSource::Block { path }) => {
                d.image = path.clone();
                Some(d)
            }
            _ => None,
        })
        .collect()
}

/// Writes `point` over the disks of the domain `uuid` of `host`, which must be shut
/// off, and forgets Tresor's checkpoints of it.
pub fn replace_domain_disks(
    repo: &Repository,
    point: &Manifest,
    host: &LibvirtHost,
    uuid: &str,
    progress: Option<&Progress>,
) -> Result<RestoreOutcome, RestoreError> {
    let Some(domain) = host.existing_domain(uuid).map_err(libvirt)? else {
        return Err(RestoreError::NoSuchDomain(format!(
            "libvirt at {} knows no domain with UUID {uuid}",
            host.uri()
        )));
    };
    if !domain.shut_off {
        return Err(RestoreError::NotShutOff(format!(
            "domain {} is {}: its disks are replaced only while it is shut off; nothing was written",
            domain.name, domain.state
        )));
    }
    let known = image_disks(domain.disks);
    let saved = SavedConfig::of(point);
    let replaced = replace_original(repo, point, &saved, Some(&known), progress);
    // Written or partly written, the disks no longer hold the checkpoints' bitmaps.
    let forgotten = match &replaced {
        Err(RestoreError::UnknownDisk(_) | RestoreError::InUse(_)) => Ok(Vec::new()),
        _ => host.forget_tresor_checkpoints(uuid),
    };
    let mut out = replaced?;
    if let Some(note) =
        saved.note("the domain's UEFI variable store and TPM state were left as they are")
    {
        out.notes.push(note);
    } else {
        out.notes.extend(write_back_firmware(
            saved.config().and_then(VmConfig::as_libvirt),
            &FirmwareTargets {
                domain: &domain.name,
                nvram: domain.nvram.as_deref(),
                tpm_dir: domain
                    .emulated_tpm
                    .then(|| Path::new(SWTPM_STATE_ROOT).join(uuid)),
                nvram_dir: Path::new(NVRAM_DIR),
            },
            true,
        ));
    }
    match forgotten {
        Ok(names) if !names.is_empty() => out.notes.push(format!(
            "Tresor's checkpoints of domain {} were forgotten ({}): its next backup reads every disk whole",
            domain.name,
            names.join(", ")
        )),
        Ok(_) => {}
        Err(e) => out.notes.push(format!(
            "Tresor's checkpoints of domain {} could not be forgotten ({e}); its next backup finds them stale and reads the disks whole",
            domain.name
        )),
    }
    Ok(out)
}

/// Where a domain keeps its UEFI variable store and TPM state.
pub struct FirmwareTargets<'a> {
    pub domain: &'a str,
    /// The variable store libvirt names for it.
    pub nvram: Option<&'a str>,
    /// Its emulated TPM's state folder.
    pub tpm_dir: Option<PathBuf>,
    /// The one folder a variable store is written into.
    pub nvram_dir: &'a Path,
}

/// Writes the point's saved UEFI variable store and TPM state to the domain's (a new
/// domain's before its first start: `replace` false; a shut-off domain's own whose
/// disks were replaced: `replace` true). What it did, or could not do, as notes: a
/// domain without them still boots, only with a fresh store or TPM.
pub fn write_back_firmware(
    saved: Option<&LibvirtPointConfig>,
    to: &FirmwareTargets<'_>,
    replace: bool,
) -> Vec<String> {
    let mut notes = Vec::new();
    let domain = to.domain;
    match (saved.and_then(|c| c.nvram.as_ref()), to.nvram) {
        (None, Some(_)) if !replace => notes.push(format!(
            "no UEFI variable store was saved with the point: domain {domain} starts with a fresh one"
        )),
        (None, _) => {}
        (Some(_), None) => notes.push(format!(
            "the point's UEFI variable store was not written: domain {domain} has none (its firmware was not kept)"
        )),
        (Some(file), Some(path)) => match write_nvram(file, path, to.nvram_dir, replace) {
            Ok(p) => notes.push(format!(
                "the point's UEFI variable store was written to {}",
                p.display()
            )),
            Err(e) => notes.push(format!(
                "the point's UEFI variable store was not written ({e}): domain {domain} keeps {}",
                if replace { "its own" } else { "a fresh one" }
            )),
        },
    }
    match (saved.and_then(|c| c.tpm_state.as_ref()), &to.tpm_dir) {
        (None, Some(_)) if !replace => notes.push(format!(
            "no TPM state was saved with the point: domain {domain} starts with a new, empty TPM"
        )),
        (None, _) => {}
        (Some(_), None) => notes.push(format!(
            "the point's TPM state was not written: domain {domain} has no emulated TPM"
        )),
        (Some(tpm), Some(dir)) => match swtpm_owner(Path::new(QEMU_CONF))
            .and_then(|owner| write_tpm(tpm, dir, replace, owner))
        {
            Ok(n) => notes.push(format!(
                "the point's TPM state ({n} files) was written to {}",
                dir.display()
            )),
            Err(e) => notes.push(format!(
                "the point's TPM state was not written ({e}): keys sealed to the old TPM are not available in domain {domain}"
            )),
        },
    }
    notes
}

/// The boot folders a new domain's kernel may come from on this host.
pub fn default_boot_dirs() -> Vec<PathBuf> {
    vec![Path::new(restore_xml::BOOT_DIR).to_path_buf()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{default_name, is_libvirt_point};
    use crate::restore::point_with;

    /// A libvirt point goes to the libvirt restore, also when the rest of its config
    /// cannot be read (which then says why); its domain's name names the new domain.
    #[test]
    fn libvirt_points_are_known_by_their_provider() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let libvirt = point_with(json!({"provider": "libvirt", "name": "db/../x"}));
        assert!(is_libvirt_point(&libvirt));
        assert_eq!(
            default_name(&libvirt, now),
            "db..x-restored-19700101-000000"
        );
        let broken = point_with(json!({"provider": "libvirt", "name": "db", "nvram": 7}));
        assert!(is_libvirt_point(&broken));
        assert_eq!(default_name(&broken, now), "web-restored-19700101-000000");
        for other in [
            json!({"provider": "qemu"}),
            json!({"provider": "xen"}),
            json!(null),
        ] {
            assert!(!is_libvirt_point(&point_with(other)));
        }
    }
}
