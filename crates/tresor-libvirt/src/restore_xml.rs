//! A recovery point's stored domain definition made into a new domain's: parsed
//! (roxmltree, bounded as in [`crate::domain_xml`]) and written anew from an allow
//! list, never copied through.
//!
//! The stored XML came from a host that may have been compromised (or from a server
//! that forged the point), so every value is hostile. What the new definition holds:
//!
//! * a new name (given); no `<uuid>` and no `<mac>`: libvirt makes new ones;
//! * memory, vCPUs, `<cpu>`, `<features>`, `<clock>`, `<pm>` (no host paths in
//!   them), the life-cycle actions;
//! * `<os>`: type, arch, machine, boot order, firmware autoselection; a loader or
//!   NVRAM template only from `/usr/share`; no NVRAM path (libvirt makes a new one
//!   under its own folder); a kernel, initrd or DTB only from libvirt's boot folder
//!   ([`BOOT_DIR`]), each an existing regular file;
//! * the point's disks, each a plain file at its restored path with its target and
//!   bus; every other disk source (another path, a block device, a network, a
//!   backing chain, encryption secrets) is gone;
//! * NICs of type `network`, `bridge` or `user` (source name, model); the guest
//!   agent channel; serial and console on a pty; VNC or SPICE on 127.0.0.1; video,
//!   input, controllers, balloon, virtio RNG on `/dev/urandom`, an emulated TPM (new
//!   state), watchdog, panic, sound; the emulator only when it is a system QEMU.
//!
//! Dropped, and said in the notes: host devices, shared folders, redirected USB,
//! `<qemu:commandline>` and every other namespaced element, `<seclabel>`,
//! `<metadata>`, `<sysinfo>`, `<resource>`, tuning and pinning, memory backing,
//! interfaces of other types (a `script` runs a host program), character devices on
//! host paths, and anything else not listed above.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use roxmltree::{Document, Node, ParsingOptions};

use crate::backup_xml::escape;
use crate::domain_xml::{XmlError, MAX_XML_BYTES};

/// Where a new domain's direct-boot kernel, initrd and DTB may come from: libvirt's
/// own folder for them (virt-install puts them there), which holds nothing of the
/// host's.
pub const BOOT_DIR: &str = "/var/lib/libvirt/boot";
/// Where firmware (loader, NVRAM template) may come from.
pub const FIRMWARE_DIR: &str = "/usr/share";
/// Emulators kept as they are; any other is dropped (libvirt picks its default).
const EMULATOR_PREFIXES: [&str; 2] = ["/usr/bin/qemu-system-", "/usr/libexec/qemu-kvm"];
const MAX_XML_NODES: u32 = 200_000;
/// Deepest nesting copied from `<cpu>`, `<features>`, `<clock>`, `<pm>`.
const MAX_DEPTH: usize = 8;
const MAX_VALUE: usize = 256;
const MAX_CMDLINE: usize = 4096;

/// A disk of the new domain: the restored file of the point's disk `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDisk {
    pub target: String,
    pub path: PathBuf,
    /// `qcow2` or `raw`.
    pub format: String,
}

/// What the new domain is made of.
#[derive(Debug, Clone)]
pub struct NewDomain<'a> {
    pub name: &'a str,
    pub disks: &'a [NewDisk],
    /// Said in the new domain's `<description>`.
    pub from_point: &'a str,
    /// Folders a kernel, initrd or DTB may come from: [`BOOT_DIR`] unless a caller
    /// (a test) says otherwise.
    pub boot_dirs: &'a [PathBuf],
}

/// The new domain's definition and what was left out of the stored one.
#[derive(Debug, Clone)]
pub struct Adapted {
    pub xml: String,
    pub notes: Vec<String>,
}

/// An element being written.
struct El {
    name: &'static str,
    attrs: Vec<(String, String)>,
    children: Vec<Item>,
}

enum Item {
    El(El),
    Text(String),
    Copied(Copied),
}

impl El {
    fn new(name: &'static str) -> El {
        El {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }
    fn attr(mut self, name: &str, value: impl Into<String>) -> El {
        self.attrs.push((name.to_string(), value.into()));
        self
    }
    fn child(mut self, el: El) -> El {
        self.children.push(Item::El(el));
        self
    }
    fn text(mut self, text: impl Into<String>) -> El {
        self.children.push(Item::Text(text.into()));
        self
    }
    fn push(&mut self, el: El) {
        self.children.push(Item::El(el));
    }
    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name);
        for (k, v) in &self.attrs {
            out.push_str(&format!(" {k}='{}'", escape(v)));
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for c in &self.children {
            match c {
                Item::El(e) => e.write(out),
                Item::Text(t) => out.push_str(&escape(t)),
                Item::Copied(c) => c.write(out),
            }
        }
        out.push_str(&format!("</{}>", self.name));
    }
}

/// A subtree copied by [`copy`]: its names are plain words checked there.
struct Copied {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Copied>,
    text: Option<String>,
}

impl Copied {
    fn write(&self, out: &mut String) {
        out.push_str(&format!("<{}", self.name));
        for (k, v) in &self.attrs {
            out.push_str(&format!(" {k}='{}'", escape(v)));
        }
        if self.children.is_empty() && self.text.is_none() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        if let Some(t) = &self.text {
            out.push_str(&escape(t));
        }
        for c in &self.children {
            c.write(out);
        }
        out.push_str(&format!("</{}>", self.name));
    }
}

/// A short word (`virtio`, `pc-q35-7.2`, `host-passthrough`).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:,+-".contains(c))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_digit())
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_VALUE && !s.chars().any(char::is_control)
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().namespace().is_none() && c.has_tag_name(name))
}

fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(Node::is_element)
}

/// The attribute `name` of `node` when it passes `ok`.
fn attr_if<'a>(node: Node<'a, '_>, name: &str, ok: fn(&str) -> bool) -> Option<&'a str> {
    node.attribute(name).filter(|v| ok(v))
}

fn one_of(node: Node, name: &str, allowed: &[&str]) -> Option<String> {
    node.attribute(name)
        .filter(|v| allowed.contains(v))
        .map(str::to_string)
}

fn text_of<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    node.text().map(str::trim).filter(|t| !t.is_empty())
}

/// The tag of a dropped element, for a note.
fn shown_tag(node: Node) -> String {
    let name: String = node
        .tag_name()
        .name()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect();
    match node.tag_name().namespace() {
        Some(_) => format!("{name} (of another namespace)"),
        None => name,
    }
}

/// An existing regular file under one of `dirs`, resolved; `None` otherwise.
fn file_under(path: &str, dirs: &[PathBuf]) -> Option<String> {
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) || path.len() > 4096 {
        return None;
    }
    let resolved = p.canonicalize().ok()?;
    if !resolved.is_file() {
        return None;
    }
    let inside = dirs.iter().any(|d| {
        d.canonicalize()
            .is_ok_and(|d| resolved.starts_with(&d) && resolved != d)
    });
    inside.then(|| resolved.to_string_lossy().into_owned())
}

/// A copy of a subtree without host paths (`<cpu>`, `<features>`, `<clock>`, `<pm>`):
/// plain names, short values, no other namespace, bounded depth.
fn copy(node: Node, depth: usize, dropped: &mut BTreeSet<String>) -> Option<Copied> {
    let name = node.tag_name().name();
    if depth > MAX_DEPTH || node.tag_name().namespace().is_some() || !is_token(name) {
        dropped.insert(shown_tag(node));
        return None;
    }
    let mut attrs = Vec::new();
    for a in node.attributes() {
        if a.namespace().is_none() && is_token(a.name()) && is_name(a.value()) {
            attrs.push((a.name().to_string(), a.value().to_string()));
        }
    }
    let text = text_of(node).filter(|t| is_name(t)).map(str::to_string);
    let children = elements(node)
        .filter_map(|c| copy(c, depth + 1, dropped))
        .collect();
    Some(Copied {
        name: name.to_string(),
        attrs,
        children,
        text,
    })
}

/// Makes the new domain's definition from the stored one (see the module's text).
pub fn adapt_for_new_domain(stored: &str, new: &NewDomain) -> Result<Adapted, XmlError> {
    if stored.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge(stored.len()));
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_XML_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(stored, options)
        .map_err(|e| XmlError::Parse(e.to_string()))?;
    let domain = doc.root_element();
    if !domain.has_tag_name("domain") {
        return Err(XmlError::NotADomain(shown_tag(domain)));
    }
    let kind = match domain.attribute("type") {
        Some(t @ ("kvm" | "qemu")) => t,
        _ => {
            return Err(XmlError::BadText {
                what: "domain type".into(),
                problem: "is not kvm or qemu",
            })
        }
    };
    let mut notes = Vec::new();
    let mut dropped = BTreeSet::new();
    let mut out = El::new("domain").attr("type", kind);
    out.push(El::new("name").text(new.name));
    out.push(El::new("description").text(format!(
        "Restored by Tresor from recovery point {}",
        new.from_point
    )));
    let mut copied = Vec::new();
    let mut os = None;
    for node in elements(domain) {
        if node.tag_name().namespace().is_some() {
            dropped.insert(shown_tag(node));
            continue;
        }
        match node.tag_name().name() {
            // Replaced: a new name, and libvirt makes the UUID.
            "name" | "uuid" | "description" | "title" | "devices" => {}
            "os" => os = Some(self::os(node, new, &mut notes)?),
            "memory" | "currentMemory" => {
                let (Some(n), unit) = (
                    text_of(node).filter(|t| is_number(t)),
                    node.attribute("unit"),
                ) else {
                    return Err(XmlError::Missing {
                        what: format!("amount of {}", node.tag_name().name()),
                    });
                };
                let mut el = El::new(if node.has_tag_name("memory") {
                    "memory"
                } else {
                    "currentMemory"
                })
                .text(n);
                if let Some(u) = unit.filter(|u| is_token(u)) {
                    el = el.attr("unit", u);
                }
                out.push(el);
            }
            "vcpu" => {
                let Some(n) = text_of(node).filter(|t| is_number(t)) else {
                    return Err(XmlError::Missing {
                        what: "number of vCPUs".into(),
                    });
                };
                let mut el = El::new("vcpu").text(n);
                if let Some(c) = attr_if(node, "current", is_number) {
                    el = el.attr("current", c);
                }
                out.push(el);
            }
            "on_poweroff" | "on_reboot" | "on_crash" => {
                let actions = [
                    "destroy",
                    "restart",
                    "preserve",
                    "rename-restart",
                    "coredump-destroy",
                    "coredump-restart",
                ];
                if let Some(a) = text_of(node).filter(|a| actions.contains(a)) {
                    let name = match node.tag_name().name() {
                        "on_poweroff" => "on_poweroff",
                        "on_reboot" => "on_reboot",
                        _ => "on_crash",
                    };
                    out.push(El::new(name).text(a));
                }
            }
            "cpu" | "features" | "clock" | "pm" => {
                if let Some(c) = copy(node, 0, &mut dropped) {
                    copied.push(c);
                }
            }
            _ => {
                dropped.insert(shown_tag(node));
            }
        }
    }
    let Some(os) = os else {
        return Err(XmlError::Missing {
            what: "<os>".into(),
        });
    };
    out.push(os);
    let devices = match child(domain, "devices") {
        Some(d) => devices(d, new, &mut notes, &mut dropped)?,
        None => devices_of_disks(new.disks, &BTreeSet::new(), &mut notes),
    };
    out.children.extend(copied.into_iter().map(Item::Copied));
    out.push(devices);
    let mut xml = String::new();
    out.write(&mut xml);
    if !dropped.is_empty() {
        notes.push(format!(
            "left out of the new domain's definition (not restored, see FORMAT.md): {}",
            dropped.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(Adapted { xml, notes })
}

/// `<os>`, from its allowed parts.
fn os(node: Node, new: &NewDomain, notes: &mut Vec<String>) -> Result<El, XmlError> {
    let mut el = El::new("os");
    if let Some(f) = one_of(node, "firmware", &["efi", "bios"]) {
        el = el.attr("firmware", f);
    }
    let Some(t) = child(node, "type") else {
        return Err(XmlError::Missing {
            what: "<os><type>".into(),
        });
    };
    let mut ty = El::new("type").text(text_of(t).filter(|v| is_token(v)).unwrap_or("hvm"));
    for a in ["arch", "machine"] {
        if let Some(v) = attr_if(t, a, is_token) {
            ty = ty.attr(a, v);
        }
    }
    el.push(ty);
    let firmware_dirs = [PathBuf::from(FIRMWARE_DIR)];
    for part in elements(node) {
        match part.tag_name().name() {
            "loader" => {
                let Some(path) = text_of(part) else { continue };
                match file_under(path, &firmware_dirs) {
                    Some(p) => {
                        let mut l = El::new("loader").text(p);
                        for (a, allowed) in [
                            ("readonly", &["yes", "no"][..]),
                            ("secure", &["yes", "no"][..]),
                            ("type", &["rom", "pflash"][..]),
                        ] {
                            if let Some(v) = one_of(part, a, allowed) {
                                l = l.attr(a, v);
                            }
                        }
                        el.push(l);
                    }
                    None => notes.push(format!(
                        "the firmware loader is not a file under {FIRMWARE_DIR} on this host: left out (libvirt chooses one)"
                    )),
                }
            }
            "nvram" => {
                let mut n = El::new("nvram");
                if let Some(t) = part.attribute("template") {
                    match file_under(t, &firmware_dirs) {
                        Some(p) => n = n.attr("template", p),
                        None => notes.push(format!(
                            "the NVRAM template is not a file under {FIRMWARE_DIR} on this host: left out"
                        )),
                    }
                }
                // No path: libvirt names a new variable store for the new domain, which
                // the restore fills with the point's saved one before the first start.
                if !n.attrs.is_empty() {
                    el.push(n);
                }
            }
            "firmware" => {
                let mut f = El::new("firmware");
                for feature in elements(part).filter(|c| c.has_tag_name("feature")) {
                    if let (Some(e), Some(n)) = (
                        one_of(feature, "enabled", &["yes", "no"]),
                        attr_if(feature, "name", is_token),
                    ) {
                        f.push(El::new("feature").attr("enabled", e).attr("name", n));
                    }
                }
                el.push(f);
            }
            "boot" => {
                if let Some(d) = one_of(part, "dev", &["hd", "cdrom", "network", "fd"]) {
                    el.push(El::new("boot").attr("dev", d));
                }
            }
            "bootmenu" => {
                if let Some(e) = one_of(part, "enable", &["yes", "no"]) {
                    el.push(El::new("bootmenu").attr("enable", e));
                }
            }
            name @ ("kernel" | "initrd" | "dtb") => {
                let Some(path) = text_of(part) else { continue };
                match file_under(path, new.boot_dirs) {
                    Some(p) => el.push(
                        El::new(match name {
                            "kernel" => "kernel",
                            "initrd" => "initrd",
                            _ => "dtb",
                        })
                        .text(p),
                    ),
                    None => notes.push(format!(
                        "the {name} is not a file under {} on this host: left out (put it there to boot the new domain directly)",
                        shown_dirs(new.boot_dirs)
                    )),
                }
            }
            "cmdline" => {
                if let Some(c) = text_of(part) {
                    if c.len() <= MAX_CMDLINE && !c.chars().any(char::is_control) {
                        el.push(El::new("cmdline").text(c));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(el)
}

fn shown_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A disk of the new domain.
fn disk_el(d: &NewDisk, bus: Option<&str>, boot: Option<&str>) -> El {
    let mut target = El::new("target").attr("dev", d.target.as_str());
    target = target.attr("bus", bus.unwrap_or("virtio"));
    let mut el = El::new("disk")
        .attr("type", "file")
        .attr("device", "disk")
        .child(
            El::new("driver")
                .attr("name", "qemu")
                .attr("type", d.format.as_str()),
        )
        .child(El::new("source").attr("file", d.path.to_string_lossy()))
        .child(target);
    if let Some(order) = boot {
        el.push(El::new("boot").attr("order", order));
    }
    el
}

/// `<devices>` holding only the point's disks (a stored definition without any).
fn devices_of_disks(disks: &[NewDisk], placed: &BTreeSet<String>, notes: &mut Vec<String>) -> El {
    let mut el = El::new("devices");
    for d in disks.iter().filter(|d| !placed.contains(&d.target)) {
        notes.push(format!(
            "disk {} is not in the stored definition: attached as a virtio disk",
            d.target
        ));
        el.push(disk_el(d, None, None));
    }
    el
}

/// `<devices>`, from its allowed parts.
fn devices(
    node: Node,
    new: &NewDomain,
    notes: &mut Vec<String>,
    dropped: &mut BTreeSet<String>,
) -> Result<El, XmlError> {
    let mut el = El::new("devices");
    let mut placed = BTreeSet::new();
    for dev in elements(node) {
        if dev.tag_name().namespace().is_some() {
            dropped.insert(shown_tag(dev));
            continue;
        }
        let boot = child(dev, "boot").and_then(|b| attr_if(b, "order", is_number));
        match dev.tag_name().name() {
            "emulator" => {
                if let Some(p) = text_of(dev).filter(|p| {
                    EMULATOR_PREFIXES.iter().any(|e| p.starts_with(e))
                        && !p.contains("..")
                        && p.len() < 128
                        && Path::new(p).is_file()
                }) {
                    el.push(El::new("emulator").text(p));
                }
            }
            "disk" => {
                let target = child(dev, "target").and_then(|t| t.attribute("dev"));
                let device = dev.attribute("device").unwrap_or("disk");
                match new.disks.iter().find(|d| Some(d.target.as_str()) == target) {
                    Some(d) if device == "disk" && placed.insert(d.target.clone()) => {
                        let bus = child(dev, "target").and_then(|t| {
                            one_of(t, "bus", &["virtio", "sata", "scsi", "ide", "usb"])
                        });
                        el.push(disk_el(d, bus.as_deref(), boot));
                    }
                    _ => notes.push(format!(
                        "{} {} is not a disk of the recovery point (excluded, removable or not backed up): left out",
                        if device == "disk" { "disk" } else { "drive" },
                        target.filter(|t| is_token(t)).unwrap_or("without a target")
                    )),
                }
            }
            "interface" => {
                let kind = dev.attribute("type").unwrap_or("");
                let source = child(dev, "source");
                let mut nic = match kind {
                    "network" | "bridge" => {
                        let Some(name) = source.and_then(|s| attr_if(s, kind, is_token)) else {
                            notes.push(format!(
                                "a {kind} interface without a usable source: left out"
                            ));
                            continue;
                        };
                        El::new("interface")
                            .attr("type", kind)
                            .child(El::new("source").attr(kind, name))
                    }
                    "user" => El::new("interface").attr("type", "user"),
                    other => {
                        notes.push(format!(
                            "a network interface of type {:?} is left out (only network, bridge and user are restored)",
                            other.chars().take(32).collect::<String>()
                        ));
                        continue;
                    }
                };
                if let Some(m) = child(dev, "model").and_then(|m| attr_if(m, "type", is_token)) {
                    nic.push(El::new("model").attr("type", m));
                }
                if let Some(r) =
                    child(dev, "rom").and_then(|r| one_of(r, "enabled", &["yes", "no"]))
                {
                    nic.push(El::new("rom").attr("enabled", r));
                }
                if let Some(order) = boot {
                    nic.push(El::new("boot").attr("order", order));
                }
                el.push(nic);
            }
            "channel" => {
                let agent = child(dev, "target").is_some_and(|t| {
                    t.attribute("type") == Some("virtio")
                        && t.attribute("name") == Some("org.qemu.guest_agent.0")
                });
                if agent {
                    el.push(
                        El::new("channel").attr("type", "unix").child(
                            El::new("target")
                                .attr("type", "virtio")
                                .attr("name", "org.qemu.guest_agent.0"),
                        ),
                    );
                } else {
                    dropped.insert("channel (other than the guest agent's)".into());
                }
            }
            name @ ("serial" | "console") => {
                let mut target = El::new("target");
                if let Some(t) = child(dev, "target") {
                    if let Some(p) = attr_if(t, "port", is_number) {
                        target = target.attr("port", p);
                    }
                    if name == "console" {
                        if let Some(ty) = one_of(t, "type", &["serial", "virtio"]) {
                            target = target.attr("type", ty);
                        }
                    }
                }
                el.push(
                    El::new(if name == "serial" {
                        "serial"
                    } else {
                        "console"
                    })
                    .attr("type", "pty")
                    .child(target),
                );
            }
            "graphics" => {
                if let Some(t) = one_of(dev, "type", &["vnc", "spice"]) {
                    el.push(
                        El::new("graphics")
                            .attr("type", t)
                            .attr("autoport", "yes")
                            .child(
                                El::new("listen")
                                    .attr("type", "address")
                                    .attr("address", "127.0.0.1"),
                            ),
                    );
                }
            }
            "video" => {
                let mut model = El::new("model");
                if let Some(m) = child(dev, "model") {
                    for a in ["type", "vram", "heads"] {
                        if let Some(v) = attr_if(m, a, is_token) {
                            model = model.attr(a, v);
                        }
                    }
                }
                el.push(El::new("video").child(model));
            }
            "input" => {
                if let (Some(t), Some(b)) = (
                    one_of(dev, "type", &["tablet", "mouse", "keyboard"]),
                    one_of(dev, "bus", &["usb", "ps2", "virtio"]),
                ) {
                    el.push(El::new("input").attr("type", t).attr("bus", b));
                }
            }
            simple @ ("controller" | "memballoon" | "watchdog" | "panic" | "sound") => {
                let mut c = El::new(match simple {
                    "controller" => "controller",
                    "memballoon" => "memballoon",
                    "watchdog" => "watchdog",
                    "panic" => "panic",
                    _ => "sound",
                });
                for a in ["type", "index", "model", "action", "ports"] {
                    if let Some(v) = attr_if(dev, a, is_token) {
                        c = c.attr(a, v);
                    }
                }
                el.push(c);
            }
            "rng" => el.push(
                El::new("rng").attr("model", "virtio").child(
                    El::new("backend")
                        .attr("model", "random")
                        .text("/dev/urandom"),
                ),
            ),
            "tpm" => {
                let backend = child(dev, "backend");
                if backend.and_then(|b| b.attribute("type")) == Some("emulator") {
                    let mut b = El::new("backend").attr("type", "emulator");
                    if let Some(v) = backend.and_then(|b| one_of(b, "version", &["1.2", "2.0"])) {
                        b = b.attr("version", v);
                    }
                    let mut t = El::new("tpm");
                    if let Some(m) =
                        one_of(dev, "model", &["tpm-tis", "tpm-crb", "spapr-tpm-proxy"])
                    {
                        t = t.attr("model", m);
                    }
                    // Its state: the point's saved one, written by the restore.
                    el.push(t.child(b));
                } else {
                    dropped.insert("tpm (not emulated)".into());
                }
            }
            _ => {
                dropped.insert(shown_tag(dev));
            }
        }
    }
    let extra = devices_of_disks(new.disks, &placed, notes);
    el.children.extend(extra.children);
    Ok(el)
}

#[cfg(test)]
#[path = "restore_xml_tests.rs"]
mod tests;
