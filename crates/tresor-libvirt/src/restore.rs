//! What a restore asks of libvirt: whether a name is free, a new domain defined (and
//! started when asked), a storage pool's folder, whether a domain is shut off and
//! which disks it has, and Tresor's checkpoints of a domain whose disks were written
//! anew forgotten. Every call blocks; the restore writes the disks itself.

use std::path::PathBuf;

use roxmltree::Document;
use tresor_api::inventory::VmDisk;
use virt::domain::Domain;
use virt::error::ErrorNumber;
use virt::storage_pool::StoragePool;
use virt::sys;

use crate::host::{call_error, LibvirtHost};
use crate::{backup_api, domain_xml, LibvirtError};

/// Tresor's checkpoints are named this and a point id.
pub const CHECKPOINT_PREFIX: &str = "tresor-";

/// A domain a restore defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinedDomain {
    pub name: String,
    /// Chosen by libvirt.
    pub uuid: String,
    /// Chosen by libvirt, one per interface.
    pub macs: Vec<String>,
    /// The UEFI variable store libvirt gave it (made from the template at its first
    /// start unless it exists by then).
    pub nvram: Option<String>,
    /// It has an emulated TPM (swtpm, state under `SWTPM_STATE_ROOT/<uuid>`).
    pub emulated_tpm: bool,
}

/// A domain whose disks a restore would replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingDomain {
    pub name: String,
    /// libvirt's word for its state (`shut off`, `running`, `paused`...).
    pub state: &'static str,
    pub shut_off: bool,
    pub disks: Vec<VmDisk>,
    /// Its UEFI variable store, when it has one.
    pub nvram: Option<String>,
    /// It has an emulated TPM.
    pub emulated_tpm: bool,
}

/// libvirt's state, in `virsh domstate`'s words.
fn state_name(state: sys::virDomainState) -> &'static str {
    match state {
        sys::VIR_DOMAIN_RUNNING => "running",
        sys::VIR_DOMAIN_BLOCKED => "blocked",
        sys::VIR_DOMAIN_PAUSED => "paused",
        sys::VIR_DOMAIN_SHUTDOWN => "shutting down",
        sys::VIR_DOMAIN_SHUTOFF => "shut off",
        sys::VIR_DOMAIN_CRASHED => "crashed",
        sys::VIR_DOMAIN_PMSUSPENDED => "suspended by guest power management",
        _ => "in no known state",
    }
}

impl LibvirtHost {
    /// Whether a domain of that name exists (defined or running).
    pub fn name_taken(&self, name: &str) -> Result<bool, LibvirtError> {
        if name.contains('\0') {
            return Ok(false);
        }
        self.with_connection(|conn| match Domain::lookup_by_name(conn, name) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == ErrorNumber::NoDomain => Ok(false),
            Err(e) => Err(call_error("looking a domain up by name", &e)),
        })
    }

    /// Defines `xml` as a new persistent domain (not started).
    pub fn define_domain(&self, xml: &str) -> Result<DefinedDomain, LibvirtError> {
        self.with_connection(|conn| {
            let domain = Domain::define_xml(conn, xml)
                .map_err(|e| call_error("defining the new domain", &e))?;
            let uuid = domain
                .get_uuid_string()
                .map_err(|e| call_error("reading the new domain's UUID", &e))?;
            let name = domain
                .get_name()
                .map_err(|e| call_error("reading the new domain's name", &e))?;
            let defined = domain
                .get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(|e| call_error("reading the new domain's definition", &e))?;
            let parsed = domain_xml::parse(&defined).ok();
            Ok(DefinedDomain {
                name,
                uuid,
                macs: parsed
                    .as_ref()
                    .map(|d| d.nics.iter().filter_map(|n| n.mac.clone()).collect())
                    .unwrap_or_default(),
                nvram: parsed.as_ref().and_then(|d| d.firmware.nvram.clone()),
                emulated_tpm: parsed
                    .as_ref()
                    .and_then(|d| d.tpm.as_ref())
                    .is_some_and(|t| t.backend == "emulator"),
            })
        })
    }

    /// Starts the defined domain `uuid`; the error is libvirt's message.
    pub fn start_domain(&self, uuid: &str) -> Result<(), LibvirtError> {
        self.with_connection(|conn| {
            let domain = Domain::lookup_by_uuid_string(conn, uuid)
                .map_err(|e| call_error("looking up the domain", &e))?;
            domain
                .create()
                .map(|_| ())
                .map_err(|e| call_error("starting the domain", &e))
        })
    }

    /// The folder of the active storage pool `pool` (of a type whose volumes are
    /// files in one folder: dir, fs, netfs); `None` when there is no such pool.
    pub fn pool_folder(&self, pool: &str) -> Result<Option<PathBuf>, LibvirtError> {
        if pool.contains('\0') {
            return Ok(None);
        }
        self.with_connection(|conn| {
            let p = match StoragePool::lookup_by_name(conn, pool) {
                Ok(p) => p,
                Err(e) if e.code() == ErrorNumber::NoStoragePool => return Ok(None),
                Err(e) => return Err(call_error("looking up the storage pool", &e)),
            };
            if p.is_active() != Ok(true) {
                return Err(LibvirtError::Call {
                    what: format!("using storage pool {pool}"),
                    message: "it is not active (virsh pool-start it)".into(),
                });
            }
            let xml = p
                .get_xml_desc(0)
                .map_err(|e| call_error("reading the storage pool", &e))?;
            pool_path(&xml)
                .map(Some)
                .map_err(|message| LibvirtError::Call {
                    what: format!("using storage pool {pool}"),
                    message,
                })
        })
    }

    /// Makes the pool list the volumes a restore wrote into its folder.
    pub fn refresh_pool(&self, pool: &str) -> Result<(), LibvirtError> {
        self.with_connection(|conn| {
            let p = StoragePool::lookup_by_name(conn, pool)
                .map_err(|e| call_error("looking up the storage pool", &e))?;
            p.refresh(0)
                .map(|_| ())
                .map_err(|e| call_error("refreshing the storage pool", &e))
        })
    }

    /// The domain `uuid` as a replace-disks restore needs it: its state and its disks
    /// as libvirt describes them now; `None` when libvirt does not know it.
    pub fn existing_domain(&self, uuid: &str) -> Result<Option<ExistingDomain>, LibvirtError> {
        let Some(found) = self.find(uuid)? else {
            return Ok(None);
        };
        self.with_connection(|conn| {
            let domain = Domain::lookup_by_uuid_string(conn, uuid)
                .map_err(|e| call_error("looking up the domain", &e))?;
            let info = domain
                .get_info()
                .map_err(|e| call_error("reading the domain's state", &e))?;
            Ok(Some(ExistingDomain {
                name: found.info.name.clone(),
                state: state_name(info.state),
                shut_off: info.state == sys::VIR_DOMAIN_SHUTOFF,
                disks: found.info.disks.clone(),
                nvram: found.info.firmware.as_ref().and_then(|f| f.nvram.clone()),
                emulated_tpm: found
                    .info
                    .tpm
                    .as_ref()
                    .is_some_and(|t| t.backend == "emulator"),
            }))
        })
    }

    /// Forgets Tresor's checkpoints (`tresor-*`) of the domain `uuid`, leaving the
    /// disks alone (they were written anew and hold none of their bitmaps), so its
    /// next backup reads every disk whole. The names forgotten.
    pub fn forget_tresor_checkpoints(&self, uuid: &str) -> Result<Vec<String>, LibvirtError> {
        self.with_connection(|conn| {
            let domain = Domain::lookup_by_uuid_string(conn, uuid)
                .map_err(|e| call_error("looking up the domain", &e))?;
            let mut names: Vec<String> = backup_api::list_checkpoints(&domain)?
                .into_iter()
                .filter(|n| n.starts_with(CHECKPOINT_PREFIX))
                .collect();
            // Newest (longest chain) last: forget children before parents.
            names.sort();
            names.reverse();
            let mut forgotten = Vec::new();
            for name in names {
                if backup_api::forget_checkpoint(&domain, &name)? {
                    forgotten.push(name);
                }
            }
            Ok(forgotten)
        })
    }
}

/// The folder of a pool's XML, for pool types whose volumes are files.
fn pool_path(xml: &str) -> Result<PathBuf, String> {
    if xml.len() > domain_xml::MAX_XML_BYTES {
        return Err("its description is too large".into());
    }
    let doc = Document::parse(xml).map_err(|e| format!("its description does not parse: {e}"))?;
    let pool = doc.root_element();
    match pool.attribute("type") {
        Some("dir" | "fs" | "netfs") => {}
        other => {
            return Err(format!(
                "its type is {:?}: a restore writes files, into a pool of type dir, fs or netfs",
                other.unwrap_or("").chars().take(32).collect::<String>()
            ))
        }
    }
    let path = pool
        .children()
        .find(|c| c.has_tag_name("target"))
        .and_then(|t| t.children().find(|c| c.has_tag_name("path")))
        .and_then(|p| p.text())
        .map(str::trim)
        .filter(|p| p.starts_with('/') && p.len() <= domain_xml::MAX_TEXT)
        .ok_or("its description names no folder")?;
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_of_files_only() {
        assert_eq!(
            pool_path("<pool type='dir'><name>d</name><target><path>/var/lib/libvirt/images</path></target></pool>"),
            Ok(PathBuf::from("/var/lib/libvirt/images"))
        );
        assert!(
            pool_path("<pool type='logical'><target><path>/dev/vg</path></target></pool>")
                .unwrap_err()
                .contains("logical")
        );
        assert!(
            pool_path("<pool type='dir'><target><path>relative</path></target></pool>").is_err()
        );
    }
}
