//! The VM configuration saved with every recovery point (the manifest's `vm_config`),
//! as types: what a provider writes at backup and what a restore reads back.
//!
//! The JSON is FORMAT.md's ("vm_config of the QEMU provider", "vm_config of the
//! libvirt provider"): one object tagged by `provider`. The engine and the format
//! crate keep it opaque; only the agent converts, once when it writes a point
//! ([`VmConfig::to_value`]) and once when it reads one ([`VmConfig::of_point`]).
//!
//! Reading is lenient where points were written by older or other agents: every
//! member but `provider` may be missing (it reads as null or empty), and members
//! this version does not know are ignored. A config with an unknown `provider`, or a
//! member of the wrong type, does not decode: a reader treats the point as one
//! without a config and says why ([`VmConfigError`]).
//!
//! Plain data only: how a saved file's bytes are packed and checked is the libvirt
//! adapter's (`tresor-libvirt` `firmware_state.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tresor_api::inventory::VmDisk;

/// A point's saved VM configuration, by the provider that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum VmConfig {
    Qemu(QemuPointConfig),
    Libvirt(LibvirtPointConfig),
}

/// What the QEMU provider saves of a VM, to recreate it (`tresor-qemu` `new_vm.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QemuPointConfig {
    pub name: String,
    /// `None` when QEMU has none.
    pub uuid: Option<String>,
    /// `None` for a stopped VM.
    pub qemu_version: Option<String>,
    pub disks: Vec<VmDisk>,
    pub sockets: QemuSockets,
    /// QEMU's argv; `None` when unknown (a stopped VM).
    pub command_line: Option<Vec<String>>,
}

/// The control sockets of a QEMU VM, as paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QemuSockets {
    pub qmp: Option<String>,
    pub guest_agent: Option<String>,
}

/// What the libvirt provider saves of a domain, to restore it as a libvirt domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LibvirtPointConfig {
    pub name: String,
    /// The domain's UUID, which names it to the vault.
    pub uuid: Option<String>,
    /// The backed-up disks as discovered.
    pub disks: Vec<VmDisk>,
    /// Targets left out of the point.
    pub excluded_disks: Vec<String>,
    /// The checkpoint whose bitmaps hold every change since the point's instant
    /// (FORMAT.md says which); a reader checks its form before use.
    pub checkpoint: Option<String>,
    /// The domain's inactive definition; hostile input to a restore.
    pub domain_xml: Option<String>,
    /// The UEFI variable store.
    pub nvram: Option<SavedFile>,
    /// An emulated TPM's state folder.
    pub tpm_state: Option<SavedTpm>,
}

/// One small file saved with a point (a UEFI variable store, a TPM state file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    /// The nvram's path on the host; a TPM file's path under the TPM's folder.
    pub path: String,
    /// Its length, bytes.
    pub size: u64,
    /// BLAKE3 of its bytes, hex.
    pub blake3: String,
    /// How `data` holds the bytes (`zstd+base64`).
    pub encoding: String,
    pub data: String,
}

/// An emulated TPM's state folder, saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTpm {
    /// The folder on the host (`/var/lib/libvirt/swtpm/<uuid>`).
    pub dir: String,
    pub files: Vec<SavedFile>,
}

/// A point's `vm_config` that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the point's saved VM configuration cannot be read: {reason}")]
pub struct VmConfigError {
    /// The `provider` member, when it is a string: which restore path the point was
    /// meant for, although the rest cannot be read.
    pub provider: Option<String>,
    pub reason: String,
}

impl VmConfig {
    /// A point's `vm_config` (the manifest's member) typed: `None` when the point has
    /// none (missing or null).
    pub fn of_point(value: Option<&Value>) -> Option<Result<VmConfig, VmConfigError>> {
        let value = value.filter(|v| !v.is_null())?;
        let error = |reason: String| VmConfigError {
            provider: value
                .get("provider")
                .and_then(Value::as_str)
                .map(str::to_string),
            reason,
        };
        // serde would read an internally tagged enum from a list too (tag first).
        if !value.is_object() {
            return Some(Err(error("it is not a JSON object".into())));
        }
        Some(VmConfig::deserialize(value).map_err(|e| {
            error(match member_at_fault(value) {
                Some(member) => format!("member {member:?}: {e}"),
                None => e.to_string(),
            })
        }))
    }

    /// The JSON a point stores.
    pub fn to_value(&self) -> Value {
        // Cannot fail: strings, integers, lists and structs only (no map with
        // non-string keys); `Null` would only stand for "no config".
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The VM's name when it was backed up (empty when the point did not say).
    pub fn name(&self) -> &str {
        match self {
            VmConfig::Qemu(c) => &c.name,
            VmConfig::Libvirt(c) => &c.name,
        }
    }

    /// The backed-up disks as the provider described them.
    pub fn disks(&self) -> &[VmDisk] {
        match self {
            VmConfig::Qemu(c) => &c.disks,
            VmConfig::Libvirt(c) => &c.disks,
        }
    }

    /// The disk named `name` (`vda`), as saved.
    pub fn disk(&self, name: &str) -> Option<&VmDisk> {
        self.disks().iter().find(|d| d.name == name)
    }

    pub fn as_qemu(&self) -> Option<&QemuPointConfig> {
        match self {
            VmConfig::Qemu(c) => Some(c),
            VmConfig::Libvirt(_) => None,
        }
    }

    pub fn as_libvirt(&self) -> Option<&LibvirtPointConfig> {
        match self {
            VmConfig::Libvirt(c) => Some(c),
            VmConfig::Qemu(_) => None,
        }
    }
}

/// The first member of `value` that does not decode on its own beside a known
/// `provider`: serde's message for a tagged enum does not name it.
fn member_at_fault(value: &Value) -> Option<String> {
    let map = value.as_object()?;
    let tag = map.get_key_value("provider")?;
    let alone = |member: Option<(&String, &Value)>| {
        let object: serde_json::Map<String, Value> = std::iter::once(tag)
            .chain(member)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        VmConfig::deserialize(Value::Object(object)).is_ok()
    };
    if !alone(None) {
        return None;
    }
    map.iter()
        .filter(|(k, _)| k.as_str() != "provider")
        .find(|&member| !alone(Some(member)))
        .map(|(k, _)| k.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// As `tresor-qemu` writes it for a running VM (FORMAT.md).
    fn qemu_json() -> Value {
        json!({
            "provider": "qemu",
            "name": "web",
            "uuid": null,
            "qemu_version": "8.2.2",
            "disks": [{"name": "vda", "node": "disk0", "image": "/vms/web.qcow2",
                       "format": "qcow2", "virtual_size": 1073741824}],
            "sockets": {"qmp": "/run/web.qmp", "guest_agent": null},
            "command_line": ["qemu-system-x86_64", "-name", "web"],
        })
    }

    /// As `tresor-libvirt` writes it for a running UEFI domain with a TPM.
    fn libvirt_json() -> Value {
        let file = |path: &str| {
            json!({"path": path, "size": 6, "blake3": "ab".repeat(32),
                   "encoding": "zstd+base64", "data": "KLUv/QBYMQAAc2VhbGVk"})
        };
        json!({
            "provider": "libvirt",
            "name": "db",
            "uuid": "0b5e2c1a-0000-4000-8000-000000000001",
            "disks": [{"name": "vda", "node": null, "image": "/var/lib/libvirt/images/db.qcow2",
                       "format": "qcow2", "virtual_size": 2147483648_u64,
                       "source": {"kind": "file", "path": "/var/lib/libvirt/images/db.qcow2"},
                       "bus": "virtio"}],
            "excluded_disks": ["vdb"],
            "checkpoint": "tresor-0123456789abcdef0123456789abcdef",
            "domain_xml": "<domain type='kvm'><name>db</name></domain>",
            "nvram": file("/var/lib/libvirt/qemu/nvram/db_VARS.fd"),
            "tpm_state": {"dir": "/var/lib/libvirt/swtpm/0b5e2c1a-0000-4000-8000-000000000001",
                          "files": [file("tpm2/tpm2-00.permall")]},
        })
    }

    #[test]
    fn the_providers_configs_decode_and_encode_unchanged() {
        let qemu = qemu_json();
        let got = VmConfig::of_point(Some(&qemu)).unwrap().unwrap();
        let c = got.as_qemu().expect("a QEMU config");
        assert_eq!(c.name, "web");
        assert_eq!(c.sockets.qmp.as_deref(), Some("/run/web.qmp"));
        assert_eq!(c.command_line.as_ref().unwrap()[2], "web");
        assert_eq!(got.disk("vda").unwrap().image, "/vms/web.qcow2");
        assert_eq!(got.to_value(), qemu);

        let libvirt = libvirt_json();
        let got = VmConfig::of_point(Some(&libvirt)).unwrap().unwrap();
        let c = got.as_libvirt().expect("a libvirt config");
        assert_eq!(c.excluded_disks, ["vdb"]);
        assert_eq!(c.nvram.as_ref().unwrap().size, 6);
        assert_eq!(
            c.tpm_state.as_ref().unwrap().files[0].path,
            "tpm2/tpm2-00.permall"
        );
        assert_eq!(got.disk("vda").unwrap().bus.as_deref(), Some("virtio"));
        assert_eq!(got.to_value(), libvirt);
    }

    #[test]
    fn missing_members_read_as_empty_and_unknown_ones_are_ignored() {
        let old = json!({"provider": "libvirt", "name": "db", "from_the_future": 1});
        let got = VmConfig::of_point(Some(&old)).unwrap().unwrap();
        assert_eq!(
            got,
            VmConfig::Libvirt(LibvirtPointConfig {
                name: "db".into(),
                ..LibvirtPointConfig::default()
            })
        );
        let bare = json!({"provider": "qemu"});
        let got = VmConfig::of_point(Some(&bare)).unwrap().unwrap();
        assert_eq!(got, VmConfig::Qemu(QemuPointConfig::default()));
        assert_eq!(got.name(), "");
        assert!(got.disk("vda").is_none());
    }

    #[test]
    fn what_does_not_decode_says_why_and_keeps_the_provider() {
        assert_eq!(VmConfig::of_point(None), None);
        assert_eq!(VmConfig::of_point(Some(&Value::Null)), None);

        let unknown = json!({"provider": "xen", "name": "web"});
        let e = VmConfig::of_point(Some(&unknown)).unwrap().unwrap_err();
        assert_eq!(e.provider.as_deref(), Some("xen"));
        assert!(e.reason.contains("xen"), "{e}");

        let untagged = json!({"name": "web", "disks": []});
        let e = VmConfig::of_point(Some(&untagged)).unwrap().unwrap_err();
        assert_eq!(e.provider, None);
        assert!(e.reason.contains("provider"), "{e}");

        let mut broken = libvirt_json();
        broken["nvram"]["size"] = json!("six");
        let e = VmConfig::of_point(Some(&broken)).unwrap().unwrap_err();
        assert_eq!(e.provider.as_deref(), Some("libvirt"));
        assert!(e.to_string().contains("cannot be read"), "{e}");
        assert!(
            e.reason.starts_with("member \"nvram\": invalid type"),
            "{e}"
        );

        let not_an_object = json!(["qemu"]);
        let e = VmConfig::of_point(Some(&not_an_object))
            .unwrap()
            .unwrap_err();
        assert!(e.reason.contains("not a JSON object"), "{e}");
    }
}
