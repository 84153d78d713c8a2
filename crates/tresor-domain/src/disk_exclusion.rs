//! Selective disk backup (Azure's "exclude disks"): a protected item may leave some
//! of its VM's disks out of its recovery points, named by the VM's own name for each
//! (a libvirt disk's target: `vdb`).
//!
//! The rules: at most [`MAX_EXCLUDED_DISKS`] names, each 1 to [`MAX_DISK_NAME`]
//! ASCII letters, digits, `-`, `_` or `.`, none twice; each a disk the VM reported;
//! at least one disk left to back up; and only for VMs whose provider can leave a
//! disk out (libvirt: its backup job simply does not export the disk).

use crate::error::{codes, RuleError};

/// At most this many disks are excluded (a VM reports at most 256).
pub const MAX_EXCLUDED_DISKS: usize = 255;
/// A disk's name has at most this many characters.
pub const MAX_DISK_NAME: usize = 64;

fn invalid(message: String, recommendation: &str) -> RuleError {
    RuleError::new(codes::INVALID_EXCLUDED_DISKS, message, recommendation)
}

/// The names in `requested` checked on their own (bounds, characters, duplicates),
/// in the order given.
pub fn parse_excluded_disks(requested: &[String]) -> Result<Vec<String>, RuleError> {
    if requested.len() > MAX_EXCLUDED_DISKS {
        return Err(invalid(
            format!(
                "{} disks are named to exclude; at most {MAX_EXCLUDED_DISKS} are",
                requested.len()
            ),
            "name each disk to leave out once, by its target (vdb)",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(requested.len());
    for name in requested {
        let shown: String = name.chars().take(MAX_DISK_NAME).collect();
        let well_formed = !name.is_empty()
            && name.len() <= MAX_DISK_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !well_formed {
            return Err(invalid(
                format!("{shown:?} is not a disk name (1 to {MAX_DISK_NAME} letters, digits, '-', '_' or '.')"),
                "name the disk by its target as the VM reports it (vdb, sdb)",
            ));
        }
        if out.contains(name) {
            return Err(invalid(
                format!("disk {name} is named twice to exclude"),
                "name each disk to leave out once",
            ));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// The disks to exclude from the points of a VM with `disks` (the names it
/// reported), checked against them. `can_exclude`: the VM's provider can leave a
/// disk out (libvirt's can; the plain QEMU provider cannot).
pub fn excluded_disks(
    requested: &[String],
    disks: &[&str],
    can_exclude: bool,
) -> Result<Vec<String>, RuleError> {
    let names = parse_excluded_disks(requested)?;
    if names.is_empty() {
        return Ok(names);
    }
    if !can_exclude {
        return Err(RuleError::new(
            codes::DISK_EXCLUSION_NOT_SUPPORTED,
            "this VM is not a libvirt domain: its disks cannot be left out of its points",
            "protect the whole VM (no excluded disks), or define it in libvirt",
        ));
    }
    let known = if disks.is_empty() {
        "none".to_string()
    } else {
        disks.join(", ")
    };
    for name in &names {
        if !disks.contains(&name.as_str()) {
            return Err(invalid(
                format!("the VM reported no disk {name} (its disks: {known})"),
                "name disks by their target as the VM's page or `tresor protection protectable` shows them",
            ));
        }
    }
    if disks.iter().all(|d| names.iter().any(|n| n == d)) {
        return Err(invalid(
            format!("excluding {} leaves no disk to back up", names.join(", ")),
            "keep at least one disk in the backup, or stop protecting the VM",
        ));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_reported_disk_is_excluded_and_one_is_left() {
        let got = excluded_disks(&names(&["vdb"]), &["vda", "vdb"], true).unwrap();
        assert_eq!(got, names(&["vdb"]));
        assert!(excluded_disks(&[], &["vda"], false).unwrap().is_empty());
    }

    #[test]
    fn unknown_all_duplicate_malformed_and_qemu_are_refused() {
        let code = |r: &[&str], can: bool| {
            excluded_disks(&names(r), &["vda", "vdb"], can)
                .unwrap_err()
                .code
        };
        assert_eq!(code(&["vdc"], true), codes::INVALID_EXCLUDED_DISKS);
        assert_eq!(code(&["vda", "vdb"], true), codes::INVALID_EXCLUDED_DISKS);
        assert_eq!(code(&["vdb", "vdb"], true), codes::INVALID_EXCLUDED_DISKS);
        assert_eq!(code(&["vd b"], true), codes::INVALID_EXCLUDED_DISKS);
        assert_eq!(code(&[""], true), codes::INVALID_EXCLUDED_DISKS);
        assert_eq!(code(&["vdb"], false), codes::DISK_EXCLUSION_NOT_SUPPORTED);
        let long = "v".repeat(MAX_DISK_NAME + 1);
        assert_eq!(code(&[long.as_str()], true), codes::INVALID_EXCLUDED_DISKS);
        let many: Vec<String> = (0..=MAX_EXCLUDED_DISKS).map(|i| format!("d{i}")).collect();
        assert_eq!(
            parse_excluded_disks(&many).unwrap_err().code,
            codes::INVALID_EXCLUDED_DISKS
        );
        let message = excluded_disks(&names(&["vdc"]), &["vda", "vdb"], true)
            .unwrap_err()
            .message;
        assert!(
            message.contains("vdc") && message.contains("vda, vdb"),
            "{message}"
        );
    }
}
