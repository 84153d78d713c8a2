//! libvirt for Tresor's host agent: a connection to a libvirt URI
//! (`qemu:///system`, `qemu+ssh://...`) and the discovery of every domain it knows,
//! running, paused and shut off, persistent and transient, into the inventory's
//! types ([`VmInfo`](tresor_api::inventory::VmInfo), one shape for every provider),
//! marked as libvirt's (`VmProviderKind::Libvirt`), and their backups through
//! libvirt's backup API.
//!
//! * [`domain_xml`]: a domain's XML description, parsed (roxmltree) and bounded.
//! * [`host`]: the connection, reopened after a failure, and the listing; blocking.
//! * [`provider`]: the same off the async threads with time limits, the preflight
//!   checks, and [`tresor_vm::VmProvider`] with backups.
//! * [`pull`]: a running domain backed up through libvirt's backup API (pull mode,
//!   checkpoints named after recovery points, self-healing chains); its calls
//!   `virt` does not wrap are in [`backup_api`], the XML in [`backup_xml`].
//! * [`offline`]: a shut-off domain's images read directly.
//! * [`firmware_state`]: the UEFI variable store and emulated TPM state saved with
//!   each point; [`firmware_restore`]: written back by a restore.
//! * [`restore_xml`]: a point's stored definition made into a new domain's, from an
//!   allow list (hostile input); [`restore`]: what a restore asks of libvirt.
//!
//! Domains are named to the vault by their UUID: a renamed domain keeps its backups,
//! a new domain that takes an old name does not inherit them.
//!
//! Uses libvirt's own bindings (the `virt` crate over libvirt's C library; Debian's
//! `libvirt-dev` to build), never `virsh` output.
//!
//! **Architecture invariant:** knows nothing of HTTP, the vault's service or storage.

pub mod backup_api;
pub mod backup_xml;
pub mod domain_xml;
pub mod firmware_restore;
pub mod firmware_state;
pub mod host;
pub mod offline;
pub mod provider;
pub mod pull;
pub mod restore;
pub mod restore_xml;

pub use host::{is_uuid, DiscoveredDomain, Discovery, LibvirtHost, MAX_DOMAINS};
pub use provider::{preflight, LibvirtProvider, DEFAULT_SCRATCH_DIR};

/// The URI of the local system daemon.
pub const SYSTEM_URI: &str = "qemu:///system";

/// Where the system daemon's socket is, on current and older layouts: libvirt runs
/// when one of them exists.
pub const SYSTEM_SOCKETS: [&str; 2] =
    ["/run/libvirt/libvirt-sock", "/var/run/libvirt/libvirt-sock"];

/// Whether a local libvirt system daemon seems to be there (its socket exists).
pub fn system_daemon_present() -> bool {
    SYSTEM_SOCKETS
        .iter()
        .any(|s| std::path::Path::new(s).exists())
}

/// What a libvirt call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LibvirtError {
    #[error("cannot connect to libvirt at {uri}: {message}; check that libvirtd runs and the agent may use its socket")]
    Connect { uri: String, message: String },
    #[error("libvirt failed {what}: {message}")]
    Call { what: String, message: String },
    #[error("libvirt at {uri} has not answered the previous call yet (libvirtd stuck?)")]
    Busy { uri: String },
    #[error("libvirt at {uri} did not answer within {secs} s (libvirtd stuck?)")]
    TimedOut { uri: String, secs: u64 },
}
