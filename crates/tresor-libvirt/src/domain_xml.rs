//! A domain's XML description (`virDomainGetXMLDesc`), read into the inventory's
//! types. Parsed as XML (roxmltree), never searched as text. The XML is hostile
//! input like anything else a host hands the agent: its size, node count, number of
//! devices and every text are bounded, and a description outside the bounds is an
//! error naming what is wrong, never a panic or a truncated answer.

use roxmltree::{Document, Node, ParsingOptions};
use tresor_api::inventory::{
    DiskSource, FirmwareKind, GuestAgentChannel, VmFirmware, VmNic, VmTpm,
};

/// Longest domain XML read. A domain with dozens of devices is tens of KiB.
pub const MAX_XML_BYTES: usize = 1 << 20;
/// Most XML nodes parsed (elements, attributes' nodes, texts).
const MAX_XML_NODES: u32 = 200_000;
/// Most disks and NICs of one domain reported.
pub const MAX_DISKS: usize = 256;
pub const MAX_NICS: usize = 64;
/// Longest name (domain, disk target): the vault's bound on names it is sent.
pub const MAX_NAME: usize = 255;
/// Longest other text (paths, URIs, models).
pub const MAX_TEXT: usize = 4096;

/// The name libvirt and QEMU give the guest agent's virtio-serial port.
const GUEST_AGENT_PORT: &str = "org.qemu.guest_agent.0";

/// A description that cannot be reported, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    #[error("its XML description is {0} bytes, more than the {MAX_XML_BYTES} read")]
    TooLarge(usize),
    #[error("its XML description does not parse: {0}")]
    Parse(String),
    #[error("its XML description's root is <{0}>, not <domain>")]
    NotADomain(String),
    #[error("it has more than {max} {what}")]
    TooMany { what: &'static str, max: usize },
    #[error("its {what} {problem}")]
    BadText { what: String, problem: &'static str },
    #[error("its {what} is missing")]
    Missing { what: String },
}

/// One disk as the domain's XML describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskXml {
    /// The guest device (`vda`): the disk's name in recovery points.
    pub target: String,
    pub bus: Option<String>,
    /// The image format (`<driver type=...>`); libvirt's default, `raw`, when none is
    /// given (it does not probe formats).
    pub format: String,
    pub source: DiskSource,
}

/// What the inventory reports from a domain's XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainXml {
    pub disks: Vec<DiskXml>,
    pub firmware: VmFirmware,
    pub tpm: Option<VmTpm>,
    pub guest_agent_channel: Option<GuestAgentChannel>,
    pub nics: Vec<VmNic>,
    /// Disks that are described but cannot be reported (an unknown source type),
    /// for the agent's log.
    pub warnings: Vec<String>,
}

/// Reads a domain's XML description.
pub fn parse(xml: &str) -> Result<DomainXml, XmlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge(xml.len()));
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
        ..ParsingOptions::default()
    };
    let doc =
        Document::parse_with_options(xml, options).map_err(|e| XmlError::Parse(e.to_string()))?;
    let domain = doc.root_element();
    if !domain.has_tag_name("domain") {
        return Err(XmlError::NotADomain(bounded_for_message(
            domain.tag_name().name(),
        )));
    }
    let mut out = DomainXml {
        disks: Vec::new(),
        firmware: firmware(child(domain, "os"))?,
        tpm: None,
        guest_agent_channel: None,
        nics: Vec::new(),
        warnings: Vec::new(),
    };
    let Some(devices) = child(domain, "devices") else {
        return Ok(out);
    };
    for device in devices.children().filter(Node::is_element) {
        match device.tag_name().name() {
            "disk" => {
                if let Some(disk) = disk(device, &mut out.warnings)? {
                    if out.disks.len() == MAX_DISKS {
                        return Err(XmlError::TooMany {
                            what: "disks",
                            max: MAX_DISKS,
                        });
                    }
                    out.disks.push(disk);
                }
            }
            "interface" => {
                if out.nics.len() == MAX_NICS {
                    return Err(XmlError::TooMany {
                        what: "network interfaces",
                        max: MAX_NICS,
                    });
                }
                out.nics.push(nic(device)?);
            }
            "channel" => {
                if let Some(channel) = guest_agent_channel(device)? {
                    out.guest_agent_channel.get_or_insert(channel);
                }
            }
            "tpm" if out.tpm.is_none() => out.tpm = Some(tpm(device)?),
            _ => {}
        }
    }
    Ok(out)
}

/// The first child element of `node` named `name`.
fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.has_tag_name(name))
}

/// Checks a text from the description: at most `max` bytes, no control characters
/// (the vault refuses a report holding any).
fn checked(what: impl Into<String>, text: &str, max: usize) -> Result<String, XmlError> {
    let bad = |problem| XmlError::BadText {
        what: what.into(),
        problem,
    };
    if text.len() > max {
        return Err(bad(if max == MAX_NAME {
            "is longer than 255 bytes"
        } else {
            "is longer than 4096 bytes"
        }));
    }
    if text.chars().any(char::is_control) {
        return Err(bad("holds control characters"));
    }
    Ok(text.to_string())
}

/// An attribute's value, checked; `None` when absent.
fn attr(node: Node, name: &str, what: &str) -> Result<Option<String>, XmlError> {
    node.attribute(name)
        .map(|v| checked(what, v, MAX_TEXT))
        .transpose()
}

/// An element's text, trimmed and checked; `None` when absent or empty.
fn text(node: Option<Node>, what: &str) -> Result<Option<String>, XmlError> {
    let Some(t) = node.and_then(|n| n.text()).map(str::trim) else {
        return Ok(None);
    };
    if t.is_empty() {
        return Ok(None);
    }
    checked(what, t, MAX_TEXT).map(Some)
}

/// A name for an error message: what it cannot be trusted to be, bounded.
fn bounded_for_message(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
}

/// `<os>`: UEFI when firmware autoselection asks for it (`firmware='efi'`) or the
/// loader is a pflash image (OVMF); BIOS otherwise.
fn firmware(os: Option<Node>) -> Result<VmFirmware, XmlError> {
    let Some(os) = os else {
        return Ok(VmFirmware {
            kind: FirmwareKind::Bios,
            loader: None,
            nvram: None,
            secure_boot: false,
        });
    };
    let loader_node = child(os, "loader");
    let efi = os.attribute("firmware") == Some("efi")
        || loader_node.and_then(|l| l.attribute("type")) == Some("pflash");
    let secure_feature = child(os, "firmware").is_some_and(|f| {
        f.children().any(|feature| {
            feature.has_tag_name("feature")
                && feature.attribute("name") == Some("secure-boot")
                && feature.attribute("enabled") == Some("yes")
        })
    });
    Ok(VmFirmware {
        kind: if efi {
            FirmwareKind::Uefi
        } else {
            FirmwareKind::Bios
        },
        loader: text(loader_node, "firmware loader")?,
        nvram: text(child(os, "nvram"), "UEFI variable store (nvram)")?,
        secure_boot: loader_node.and_then(|l| l.attribute("secure")) == Some("yes")
            || secure_feature,
    })
}

/// A `<disk>`; `None` for removable media (CD-ROM, floppy: not the VM's data, as the
/// QEMU provider skips read-only removable drives) and for empty or unknown sources.
fn disk(node: Node, warnings: &mut Vec<String>) -> Result<Option<DiskXml>, XmlError> {
    if matches!(node.attribute("device"), Some("cdrom" | "floppy")) {
        return Ok(None);
    }
    let target_node = child(node, "target");
    let target = match target_node.and_then(|t| t.attribute("dev")) {
        Some(dev) if !dev.is_empty() => checked("disk target", dev, MAX_NAME)?,
        _ => {
            return Err(XmlError::Missing {
                what: "target of a disk".into(),
            })
        }
    };
    let what = |field: &str| format!("disk {target}'s {field}");
    let bus = match target_node {
        Some(t) => attr(t, "bus", &what("bus"))?,
        None => None,
    };
    let format = match child(node, "driver") {
        Some(d) => attr(d, "type", &what("format"))?,
        None => None,
    }
    .unwrap_or_else(|| "raw".to_string());
    let format = checked(what("format"), &format, MAX_NAME)?;
    let Some(src) = child(node, "source") else {
        return Ok(None);
    };
    let required = |name: &str| -> Result<Option<String>, XmlError> {
        attr(src, name, &what(&format!("source {name}")))
    };
    let source = match node.attribute("type").unwrap_or("file") {
        "file" => required("file")?.map(|path| DiskSource::File { path }),
        "block" => required("dev")?.map(|path| DiskSource::Block { path }),
        "volume" => match (required("pool")?, required("volume")?) {
            (Some(pool), Some(volume)) => Some(DiskSource::Volume { pool, volume }),
            _ => None,
        },
        "network" => match required("protocol")? {
            Some(protocol) => Some(DiskSource::Network {
                protocol,
                name: required("name")?,
                hosts: network_hosts(src, &what("source host"))?,
            }),
            None => None,
        },
        other => {
            warnings.push(format!(
                "disk {target}: source type {:?} is not reported",
                bounded_for_message(other)
            ));
            None
        }
    };
    Ok(source.map(|source| DiskXml {
        target,
        bus,
        format,
        source,
    }))
}

/// The `<host>`s of a network disk's source: `name[:port]`, or the socket path of a
/// local transport.
fn network_hosts(src: Node, what: &str) -> Result<Vec<String>, XmlError> {
    let mut hosts = Vec::new();
    for host in src.children().filter(|c| c.has_tag_name("host")) {
        if hosts.len() == MAX_NICS {
            return Err(XmlError::TooMany {
                what: "hosts for one network disk",
                max: MAX_NICS,
            });
        }
        let entry = match (
            attr(host, "name", what)?,
            attr(host, "port", what)?,
            attr(host, "socket", what)?,
        ) {
            (_, _, Some(socket)) => socket,
            (Some(name), Some(port), None) => format!("{name}:{port}"),
            (Some(name), None, None) => name,
            (None, _, None) => continue,
        };
        hosts.push(checked(what, &entry, MAX_TEXT)?);
    }
    Ok(hosts)
}

/// An `<interface>`.
fn nic(node: Node) -> Result<VmNic, XmlError> {
    let kind = attr(node, "type", "network interface type")?.unwrap_or_else(|| "unknown".into());
    let source = match child(node, "source") {
        Some(s) => {
            let mut found = None;
            for name in ["network", "bridge", "dev", "path"] {
                if let Some(v) = attr(s, name, "network interface source")? {
                    found = Some(v);
                    break;
                }
            }
            found
        }
        None => None,
    };
    Ok(VmNic {
        mac: match child(node, "mac") {
            Some(m) => attr(m, "address", "network interface MAC address")?,
            None => None,
        },
        model: match child(node, "model") {
            Some(m) => attr(m, "type", "network interface model")?,
            None => None,
        },
        kind,
        source,
    })
}

/// A `<channel>`, when it is the guest agent's virtio port.
fn guest_agent_channel(node: Node) -> Result<Option<GuestAgentChannel>, XmlError> {
    let Some(target) = child(node, "target") else {
        return Ok(None);
    };
    if target.attribute("type") != Some("virtio")
        || target.attribute("name") != Some(GUEST_AGENT_PORT)
    {
        return Ok(None);
    }
    let path = match child(node, "source") {
        Some(s) => attr(s, "path", "guest agent channel path")?,
        None => None,
    };
    let connected = match target.attribute("state") {
        Some("connected") => Some(true),
        Some("disconnected") => Some(false),
        _ => None,
    };
    Ok(Some(GuestAgentChannel { path, connected }))
}

/// A `<tpm>`.
fn tpm(node: Node) -> Result<VmTpm, XmlError> {
    let backend = child(node, "backend");
    Ok(VmTpm {
        model: attr(node, "model", "TPM model")?,
        backend: match backend {
            Some(b) => attr(b, "type", "TPM backend")?,
            None => None,
        }
        .unwrap_or_else(|| "unknown".into()),
        version: match backend {
            Some(b) => attr(b, "version", "TPM version")?,
            None => None,
        },
    })
}

#[cfg(test)]
#[path = "domain_xml_tests.rs"]
mod tests;
