//! One libvirt connection and what it lists: every domain, active and inactive,
//! persistent and transient, described into the inventory's types. Every call here
//! blocks (libvirt's client library is synchronous); [`crate::LibvirtProvider`] runs
//! them off the async threads, with a time limit.

use std::sync::{Mutex, Once, TryLockError};

use serde::Deserialize;
use tresor_api::inventory::{
    GuestAgentChannel, GuestAgentState, VmDisk, VmInfo, VmProviderKind, VmState,
};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

use crate::domain_xml::{self, DiskXml, DomainXml, MAX_NAME, MAX_TEXT};
use crate::LibvirtError;

/// Most domains one listing reports: the vault's bound on the VMs of one host.
pub const MAX_DOMAINS: usize = 4096;
/// How long libvirt waits for a guest agent's answer, in seconds.
const AGENT_TIMEOUT_SECS: i32 = 5;
/// Longest guest agent answer read.
const MAX_AGENT_ANSWER: usize = 64 << 10;

/// One domain as discovered. `vm` is how the agent names it to the vault: its UUID,
/// which stays when the domain is renamed (and a new domain that takes an old name
/// gets none of the old one's backups or change tracking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredDomain {
    pub vm: String,
    pub info: VmInfo,
}

/// What one listing found, and what it could not report (for the agent's log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    pub domains: Vec<DiscoveredDomain>,
    pub warnings: Vec<String>,
}

/// A libvirt URI and, once opened, the connection to it. A connection that fails is
/// dropped and opened anew by the next call, so a libvirtd that restarts is found
/// again without restarting the agent.
pub struct LibvirtHost {
    uri: String,
    connection: Mutex<Option<Connect>>,
}

impl LibvirtHost {
    pub fn new(uri: impl Into<String>) -> LibvirtHost {
        LibvirtHost {
            uri: uri.into(),
            connection: Mutex::new(None),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs `f` on the connection, opening it first if need be. Calls do not queue:
    /// while one hangs (libvirtd stuck), the next is refused at once.
    pub(crate) fn with_connection<T>(
        &self,
        f: impl FnOnce(&Connect) -> Result<T, LibvirtError>,
    ) -> Result<T, LibvirtError> {
        let mut slot = match self.connection.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::WouldBlock) => {
                return Err(LibvirtError::Busy {
                    uri: self.uri.clone(),
                })
            }
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if slot.as_ref().is_some_and(|c| c.is_alive() != Ok(true)) {
            *slot = None;
        }
        if slot.is_none() {
            silence_default_error_printing();
            // The bindings panic on a NUL byte; a URI with one names nothing.
            if self.uri.contains('\0') {
                return Err(LibvirtError::Connect {
                    uri: self.uri.escape_debug().to_string(),
                    message: "the URI holds a NUL byte".into(),
                });
            }
            let opened = Connect::open(Some(&self.uri)).map_err(|e| LibvirtError::Connect {
                uri: self.uri.clone(),
                message: e.message().to_string(),
            })?;
            *slot = Some(opened);
        }
        let connection = slot.as_ref().expect("opened above");
        let result = f(connection);
        if result.is_err() && connection.is_alive() != Ok(true) {
            *slot = None;
        }
        result
    }

    /// Every domain libvirt knows: running, paused and shut off, persistent and
    /// transient. A domain that cannot be described (it went away during the
    /// listing, its description breaks a bound) is left out with a warning.
    pub fn discover(&self) -> Result<Discovery, LibvirtError> {
        self.with_connection(|conn| {
            // No flags: active and inactive, persistent and transient, every state.
            let domains = conn
                .list_all_domains(0)
                .map_err(|e| call_error("listing domains", &e))?;
            let mut out = Discovery::default();
            for domain in domains {
                if out.domains.len() == MAX_DOMAINS {
                    out.warnings.push(format!(
                        "libvirt lists more than {MAX_DOMAINS} domains; the rest are not reported"
                    ));
                    break;
                }
                match describe(&domain) {
                    Ok((found, warnings)) => {
                        out.warnings.extend(warnings);
                        out.domains.push(found);
                    }
                    Err(e) => out.warnings.push(e),
                }
            }
            out.domains.sort_by(|a, b| a.info.name.cmp(&b.info.name));
            Ok(out)
        })
    }

    /// The domain with `uuid`, described; `None` when libvirt does not know it.
    pub fn find(&self, uuid: &str) -> Result<Option<DiscoveredDomain>, LibvirtError> {
        if !is_uuid(uuid) {
            return Ok(None);
        }
        self.with_connection(|conn| {
            let Ok(domain) = Domain::lookup_by_uuid_string(conn, uuid) else {
                return Ok(None);
            };
            describe(&domain)
                .map(|(found, _)| Some(found))
                .map_err(|message| LibvirtError::Call {
                    what: "describing a domain".into(),
                    message,
                })
        })
    }
}

impl LibvirtHost {
    /// The definition (inactive XML) of the domain `uuid`, kept with its points;
    /// `None` when libvirt does not know it.
    pub fn definition(&self, uuid: &str) -> Result<Option<String>, LibvirtError> {
        if !is_uuid(uuid) {
            return Ok(None);
        }
        self.with_connection(|conn| {
            let Ok(domain) = Domain::lookup_by_uuid_string(conn, uuid) else {
                return Ok(None);
            };
            domain
                .get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                .map(Some)
                .map_err(|e| call_error("reading a domain's definition", &e))
        })
    }
}

/// Whether `s` is a UUID in libvirt's form (what the agent names a domain by).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// libvirt prints every error to stderr unless told otherwise; the agent reports
/// them itself.
fn silence_default_error_printing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(virt::error::clear_error_callback);
}

pub(crate) fn call_error(what: &str, e: &virt::error::Error) -> LibvirtError {
    LibvirtError::Call {
        what: what.into(),
        message: e.message().to_string(),
    }
}

/// One domain into the inventory's types, with warnings; the error is a warning
/// naming the domain.
fn describe(domain: &Domain) -> Result<(DiscoveredDomain, Vec<String>), String> {
    let uuid = domain.get_uuid_string().map_err(|e| {
        format!(
            "a domain without a readable UUID is not reported: {}",
            e.message()
        )
    })?;
    let problem =
        |what: &str, message: &str| format!("domain {uuid} is not reported: {what}: {message}");
    let name = domain
        .get_name()
        .map_err(|e| problem("reading its name", e.message()))?;
    let name = clean_name(&name);
    let info = domain
        .get_info()
        .map_err(|e| problem("reading its state", e.message()))?;
    let persistent = domain.is_persistent().ok();
    // The live description of a running domain (its channel's state, its chosen
    // paths); the definition of a shut-off one.
    let xml = domain
        .get_xml_desc(0)
        .map_err(|e| problem("reading its XML description", e.message()))?;
    let parsed: DomainXml =
        domain_xml::parse(&xml).map_err(|e| problem("its description", &e.to_string()))?;
    let state = match info.state {
        sys::VIR_DOMAIN_PAUSED | sys::VIR_DOMAIN_PMSUSPENDED => VmState::Paused,
        sys::VIR_DOMAIN_SHUTOFF | sys::VIR_DOMAIN_CRASHED | sys::VIR_DOMAIN_NOSTATE => {
            VmState::Stopped
        }
        // Running, blocked on a resource, shutting down: QEMU runs the guest.
        _ => VmState::Running,
    };
    let mut warnings: Vec<String> = parsed
        .warnings
        .iter()
        .map(|w| format!("domain {name} ({uuid}): {w}"))
        .collect();
    let disks = parsed
        .disks
        .iter()
        .map(|d| disk(domain, d, &mut warnings, &name))
        .collect();
    let guest_agent = guest_agent(domain, state, parsed.guest_agent_channel.as_ref());
    let vm = VmInfo {
        name,
        uuid: Some(uuid.clone()),
        state,
        disks,
        guest_agent,
        provider: VmProviderKind::Libvirt,
        persistent,
        firmware: Some(parsed.firmware),
        tpm: parsed.tpm,
        guest_agent_channel: parsed.guest_agent_channel,
        vcpus: Some(info.nr_virt_cpu),
        memory_bytes: info.max_mem.checked_mul(1024),
        nics: parsed.nics,
    };
    Ok((DiscoveredDomain { vm: uuid, info: vm }, warnings))
}

/// A domain's name for people: libvirt allows almost anything in one, the vault
/// takes 255 bytes of plain text. The UUID identifies it, so the name is cleaned
/// rather than the domain refused.
fn clean_name(name: &str) -> String {
    let mut out = String::new();
    for c in name
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
    {
        if out.len() + c.len_utf8() > MAX_NAME {
            break;
        }
        out.push(c);
    }
    out
}

/// A disk with its size as libvirt reports it (from QEMU for a running domain, from
/// the image for a shut-off one); 0 when libvirt cannot tell.
fn disk(domain: &Domain, d: &DiskXml, warnings: &mut Vec<String>, vm: &str) -> VmDisk {
    let virtual_size = match domain.get_block_info(&d.target, 0) {
        Ok(info) => info.capacity,
        Err(e) => {
            warnings.push(format!(
                "domain {vm}: the size of disk {} is unknown: {}",
                d.target,
                e.message()
            ));
            0
        }
    };
    VmDisk {
        name: d.target.clone(),
        node: None,
        image: image_of(&d.source),
        format: d.format.clone(),
        virtual_size,
        source: Some(d.source.clone()),
        bus: d.bus.clone(),
    }
}

/// The one-line form of a disk's source (`VmDisk::image`).
fn image_of(source: &tresor_api::inventory::DiskSource) -> String {
    use tresor_api::inventory::DiskSource;
    let image = match source {
        DiskSource::File { path } | DiskSource::Block { path } => path.clone(),
        DiskSource::Volume { pool, volume } => format!("{pool}/{volume}"),
        DiskSource::Network {
            protocol,
            name,
            hosts,
        } => format!(
            "{protocol}://{}/{}",
            hosts.join(","),
            name.as_deref().unwrap_or("")
        ),
    };
    image.chars().take(MAX_TEXT).collect()
}

/// What libvirt knows of the guest agent: no channel, a channel nobody holds, or an
/// agent that answers `guest-info` (asked through libvirt, which owns the channel).
fn guest_agent(
    domain: &Domain,
    state: VmState,
    channel: Option<&GuestAgentChannel>,
) -> GuestAgentState {
    let Some(channel) = channel else {
        return GuestAgentState::NotConfigured;
    };
    if state != VmState::Running {
        return GuestAgentState::NotResponding {
            reason: format!("the domain is {state}"),
        };
    }
    if channel.connected == Some(false) {
        return GuestAgentState::NotResponding {
            reason: "libvirt sees no agent on the guest agent channel (qemu-ga not running in the guest)".into(),
        };
    }
    let asked = domain.qemu_agent_command(r#"{"execute":"guest-info"}"#, AGENT_TIMEOUT_SECS, 0);
    match asked {
        Ok(answer) => {
            agent_info(&answer).unwrap_or_else(|reason| GuestAgentState::NotResponding { reason })
        }
        Err(e) => GuestAgentState::NotResponding {
            reason: e.message().chars().take(MAX_TEXT).collect(),
        },
    }
}

/// `guest-info`'s answer: the agent's version and whether it can freeze.
fn agent_info(answer: &str) -> Result<GuestAgentState, String> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "return")]
        ret: Info,
    }
    #[derive(Deserialize)]
    struct Info {
        version: String,
        #[serde(default)]
        supported_commands: Vec<Command>,
    }
    #[derive(Deserialize)]
    struct Command {
        name: String,
        enabled: bool,
    }
    if answer.len() > MAX_AGENT_ANSWER {
        return Err("the guest agent's answer to guest-info is too long".into());
    }
    let a: Answer = serde_json::from_str(answer)
        .map_err(|e| format!("the guest agent's answer to guest-info does not read: {e}"))?;
    let version: String = a
        .ret
        .version
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    Ok(GuestAgentState::Responding {
        version,
        can_freeze: a
            .ret
            .supported_commands
            .iter()
            .any(|c| c.name == "guest-fsfreeze-freeze" && c.enabled),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_bounded() {
        assert_eq!(clean_name("web\t01"), "web\u{fffd}01");
        let long = "é".repeat(200);
        let cleaned = clean_name(&long);
        assert!(cleaned.len() <= MAX_NAME && cleaned.len() == 254);
    }

    #[test]
    fn guest_info_answers() {
        let answer = r#"{"return":{"version":"7.2.22","supported_commands":[{"name":"guest-fsfreeze-freeze","enabled":true,"success-response":true}]}}"#;
        assert_eq!(
            agent_info(answer),
            Ok(GuestAgentState::Responding {
                version: "7.2.22".into(),
                can_freeze: true
            })
        );
        assert!(agent_info("{}").is_err());
        assert!(agent_info(&" ".repeat(MAX_AGENT_ANSWER + 1)).is_err());
    }

    #[test]
    fn network_sources_read_as_one_line() {
        use tresor_api::inventory::DiskSource;
        assert_eq!(
            image_of(&DiskSource::Network {
                protocol: "nbd".into(),
                name: Some("export".into()),
                hosts: vec!["h1:10809".into()],
            }),
            "nbd://h1:10809/export"
        );
    }
}
