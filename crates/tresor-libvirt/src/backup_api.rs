//! libvirt's backup, checkpoint and freeze calls, which the `virt` crate (0.4) does
//! not wrap: a small safe layer over `virt-sys`. Every call blocks; each `unsafe`
//! block says why it is sound. Strings libvirt returns are copied and freed here, and
//! checkpoint handles never leave this module.

use std::ffi::{CStr, CString};
use std::ptr;

use virt::domain::Domain;
use virt::error::Error as VirtError;
use virt::sys;

use crate::LibvirtError;

/// Longest XML read back from libvirt (a checkpoint's XML holds the domain's).
const MAX_XML: usize = 4 << 20;

fn call_error(what: impl Into<String>, e: VirtError) -> LibvirtError {
    LibvirtError::Call {
        what: what.into(),
        message: e.message().to_string(),
    }
}

fn c_string(what: &str, s: &str) -> Result<CString, LibvirtError> {
    CString::new(s).map_err(|_| LibvirtError::Call {
        what: what.into(),
        message: "the text holds a NUL byte".into(),
    })
}

/// Copies and frees a string libvirt allocated; `None` for a null pointer (an error,
/// whose details are in libvirt's last error).
///
/// # Safety
/// `p` is null or a NUL-terminated string malloc'd by libvirt that nobody else frees.
unsafe fn take_string(p: *mut libc::c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let s = CStr::from_ptr(p).to_string_lossy().into_owned();
    libc::free(p.cast());
    Some(s)
}

fn bounded(what: &str, xml: String) -> Result<String, LibvirtError> {
    if xml.len() > MAX_XML {
        return Err(LibvirtError::Call {
            what: what.into(),
            message: format!("libvirt answered {} bytes, more than {MAX_XML}", xml.len()),
        });
    }
    Ok(xml)
}

/// Starts a backup job: `backup_xml` (`<domainbackup>`) and, when given, the
/// checkpoint made at the same instant (`<domaincheckpoint>`).
pub fn backup_begin(
    domain: &Domain,
    backup_xml: &str,
    checkpoint_xml: Option<&str>,
) -> Result<(), LibvirtError> {
    let what = "starting the backup (virDomainBackupBegin)";
    let backup = c_string(what, backup_xml)?;
    let checkpoint = checkpoint_xml.map(|c| c_string(what, c)).transpose()?;
    // SAFETY: the domain pointer is valid while `domain` lives; both strings are
    // NUL-terminated and outlive the call; a null checkpoint XML is allowed.
    let ret = unsafe {
        sys::virDomainBackupBegin(
            domain.as_ptr(),
            backup.as_ptr(),
            checkpoint.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
            0,
        )
    };
    if ret < 0 {
        return Err(call_error(what, VirtError::last_error()));
    }
    Ok(())
}

/// The running backup job's description, with what libvirt chose (export names,
/// bitmaps, scratch files).
pub fn backup_xml(domain: &Domain) -> Result<String, LibvirtError> {
    let what = "reading the backup job (virDomainBackupGetXMLDesc)";
    // SAFETY: valid domain pointer; the answer is ours to free (take_string does).
    let xml = unsafe { take_string(sys::virDomainBackupGetXMLDesc(domain.as_ptr(), 0)) };
    let xml = xml.ok_or_else(|| call_error(what, VirtError::last_error()))?;
    bounded(what, xml)
}

/// Ends the domain's job: for a pull-mode backup, the normal end.
pub fn abort_job(domain: &Domain) -> Result<(), LibvirtError> {
    // SAFETY: valid domain pointer, no other argument.
    let ret = unsafe { sys::virDomainAbortJob(domain.as_ptr()) };
    if ret < 0 {
        return Err(call_error(
            "ending the backup job (virDomainAbortJob)",
            VirtError::last_error(),
        ));
    }
    Ok(())
}

/// Freezes every file system of the guest through its agent; the number frozen.
pub fn fs_freeze(domain: &Domain) -> Result<u32, LibvirtError> {
    // SAFETY: valid domain pointer; no mount point list (null, 0) means all.
    let ret = unsafe { sys::virDomainFSFreeze(domain.as_ptr(), ptr::null_mut(), 0, 0) };
    if ret < 0 {
        return Err(call_error(
            "freezing the guest's file systems (virDomainFSFreeze)",
            VirtError::last_error(),
        ));
    }
    Ok(ret as u32)
}

/// Thaws every file system of the guest.
pub fn fs_thaw(domain: &Domain) -> Result<u32, LibvirtError> {
    // SAFETY: as for fs_freeze.
    let ret = unsafe { sys::virDomainFSThaw(domain.as_ptr(), ptr::null_mut(), 0, 0) };
    if ret < 0 {
        return Err(call_error(
            "thawing the guest's file systems (virDomainFSThaw)",
            VirtError::last_error(),
        ));
    }
    Ok(ret as u32)
}

/// A checkpoint handle, freed on drop. Private: callers deal in names.
struct Checkpoint(sys::virDomainCheckpointPtr);

impl Drop for Checkpoint {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libvirt, is non-null and freed only here.
        unsafe {
            sys::virDomainCheckpointFree(self.0);
        }
    }
}

impl Checkpoint {
    fn lookup(domain: &Domain, name: &str) -> Result<Option<Checkpoint>, LibvirtError> {
        let what = format!("looking up checkpoint {name}");
        let c_name = c_string(&what, name)?;
        // SAFETY: valid domain pointer and NUL-terminated name; a non-null answer is
        // a handle we own (freed by Drop).
        let p =
            unsafe { sys::virDomainCheckpointLookupByName(domain.as_ptr(), c_name.as_ptr(), 0) };
        if p.is_null() {
            let e = VirtError::last_error();
            if e.code() == virt::error::ErrorNumber::NoDomainCheckpoint {
                return Ok(None);
            }
            return Err(call_error(what, e));
        }
        Ok(Some(Checkpoint(p)))
    }

    fn name(&self) -> String {
        // SAFETY: the handle is valid; the name belongs to it (not ours to free) and
        // is copied before the handle can go.
        let p = unsafe { sys::virDomainCheckpointGetName(self.0) };
        if p.is_null() {
            return String::new();
        }
        // SAFETY: non-null, NUL-terminated, alive as long as the handle.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// The names of every checkpoint of the domain (Tresor's and others').
pub fn list_checkpoints(domain: &Domain) -> Result<Vec<String>, LibvirtError> {
    let mut list: *mut sys::virDomainCheckpointPtr = ptr::null_mut();
    // SAFETY: valid domain pointer; libvirt allocates the array (ours to free) and
    // one handle per element (ours to free, done by Checkpoint's Drop).
    let n = unsafe { sys::virDomainListAllCheckpoints(domain.as_ptr(), &mut list, 0) };
    if n < 0 {
        return Err(call_error(
            "listing checkpoints (virDomainListAllCheckpoints)",
            VirtError::last_error(),
        ));
    }
    let mut names = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        // SAFETY: the array holds n handles; each is wrapped once and freed on drop.
        let checkpoint = Checkpoint(unsafe { *list.add(i) });
        names.push(checkpoint.name());
    }
    if !list.is_null() {
        // SAFETY: the array itself came from libvirt's allocator; its handles are
        // freed above.
        unsafe { libc::free(list.cast()) };
    }
    Ok(names)
}

/// A checkpoint's XML (its disks and bitmaps), or `None` when there is none of that
/// name.
pub fn checkpoint_xml(domain: &Domain, name: &str) -> Result<Option<String>, LibvirtError> {
    let Some(checkpoint) = Checkpoint::lookup(domain, name)? else {
        return Ok(None);
    };
    let what = format!("reading checkpoint {name}");
    // SAFETY: valid handle; the answer is ours to free (take_string does). NO_DOMAIN
    // leaves out the domain's XML, which is not needed here.
    let xml = unsafe {
        take_string(sys::virDomainCheckpointGetXMLDesc(
            checkpoint.0,
            sys::VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN,
        ))
    };
    let xml = xml.ok_or_else(|| call_error(&what, VirtError::last_error()))?;
    bounded(&what, xml).map(Some)
}

/// Deletes a checkpoint (its bitmaps merge into its parent's, so nothing older
/// loses a change); `false` when there was none of that name.
pub fn delete_checkpoint(domain: &Domain, name: &str) -> Result<bool, LibvirtError> {
    delete_checkpoint_flags(domain, name, 0)
}

/// Forgets a checkpoint without touching the disks' bitmaps: for disks that were
/// written anew (a restore over them), which no longer hold those bitmaps.
pub fn forget_checkpoint(domain: &Domain, name: &str) -> Result<bool, LibvirtError> {
    delete_checkpoint_flags(
        domain,
        name,
        sys::VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY,
    )
}

fn delete_checkpoint_flags(domain: &Domain, name: &str, flags: u32) -> Result<bool, LibvirtError> {
    let Some(checkpoint) = Checkpoint::lookup(domain, name)? else {
        return Ok(false);
    };
    // SAFETY: valid handle, freed by Drop after the call.
    let ret = unsafe { sys::virDomainCheckpointDelete(checkpoint.0, flags) };
    if ret < 0 {
        return Err(call_error(
            format!("deleting checkpoint {name}"),
            VirtError::last_error(),
        ));
    }
    Ok(true)
}
