//! The host agent's work: a VM in, a recovery point out.
//!
//! [`backup_vm`] is the one sequence every backup of a VM follows, whether an
//! operator runs `tresor repo backup --vm-qmp` or the vault's scheduler starts a job
//! (disk images given to `tresor repo backup` follow it too, in [`images`]):
//!
//! 1. Ask the provider what the VM is; pick the parent (the newest point of the
//!    same name in the repository).
//! 2. Choose the new point's id, and open the provider's point-in-time view named
//!    after it (change tracking from this instant on is named after the new point).
//! 3. Run the engine's backup on the view's disks: dirty extents where tracking
//!    held, whole (deduplicated) reads where it did not.
//! 4. Finish the view: committed, the parent's tracking is dropped; failed, the new
//!    point's is, so the next backup still covers every change.
//!
//! **Architecture invariant:** [`backup_vm`] knows VMs only through [`tresor_vm`];
//! nothing in it is QEMU-specific.

mod backup;
pub mod confine;
pub mod daemon;
pub mod images;
pub mod libvirt_restore;
pub mod remote;
pub mod restore;

pub use backup::{backup_vm, disk_sources, Parent, RunOptions, VmBackupOptions, VmBackupOutcome};
