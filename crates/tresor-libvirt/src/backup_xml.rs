//! The XML Tresor hands libvirt's backup API (`<domainbackup mode='pull'>`,
//! `<domaincheckpoint>`), and what it reads back (a checkpoint's disks, the running
//! job's exports, the QEMU process's owner). Pure: no libvirt call here.
//!
//! Checkpoints are named after recovery points: `tresor-<point id>`. So the parent
//! point's checkpoint is found by name, a checkpoint that is not Tresor's is never
//! touched, and a leftover of a failed backup is recognised.

use std::path::Path;

use roxmltree::{Document, Node, ParsingOptions};

/// Prefix of every checkpoint Tresor makes.
pub const CHECKPOINT_PREFIX: &str = "tresor-";
/// Most XML nodes parsed from libvirt's answers.
const MAX_NODES: u32 = 200_000;

/// The checkpoint made with the point `point`.
pub fn checkpoint_name(point: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{point}")
}

/// Whether `name` is one of Tresor's checkpoints (`tresor-` and a point id).
pub fn is_tresor_checkpoint(name: &str) -> bool {
    name.strip_prefix(CHECKPOINT_PREFIX).is_some_and(|id| {
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// XML-escapes an attribute or text value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// How one disk takes part in a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRole {
    /// Read: whole (`incremental: None`) or what changed since that checkpoint.
    /// `bitmap`: the new checkpoint tracks the disk from now on (qcow2 only).
    Backed {
        incremental: Option<String>,
        bitmap: bool,
    },
    /// Not read and not tracked (excluded, or a device libvirt cannot back up).
    Skipped,
}

/// One disk of a backup: its target (`vda`) and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskPlan {
    pub target: String,
    pub role: DiskRole,
}

/// The pull-mode backup request: an NBD server on `socket`, one scratch file per
/// backed-up disk in `scratch_dir`, and per disk whether it is read whole or from a
/// checkpoint (libvirt's per-disk `backupmode`).
pub fn backup_xml(socket: &Path, scratch_dir: &Path, disks: &[DiskPlan]) -> String {
    let mut xml = String::from("<domainbackup mode='pull'>");
    xml.push_str(&format!(
        "<server transport='unix' socket='{}'/><disks>",
        escape(&socket.to_string_lossy())
    ));
    for d in disks {
        let name = escape(&d.target);
        match &d.role {
            DiskRole::Skipped => xml.push_str(&format!("<disk name='{name}' backup='no'/>")),
            DiskRole::Backed { incremental, .. } => {
                let mode = match incremental {
                    Some(c) => format!("backupmode='incremental' incremental='{}'", escape(c)),
                    None => "backupmode='full'".to_string(),
                };
                let scratch = scratch_dir.join(format!("{}.scratch", d.target));
                xml.push_str(&format!(
                    "<disk name='{name}' backup='yes' type='file' {mode}><scratch file='{}'/></disk>",
                    escape(&scratch.to_string_lossy())
                ));
            }
        }
    }
    xml.push_str("</disks></domainbackup>");
    xml
}

/// The checkpoint made at the backup's instant, or `None` when no disk can carry
/// a bitmap (then nothing is tracked and every backup reads whole).
pub fn checkpoint_xml(name: &str, disks: &[DiskPlan]) -> Option<String> {
    let tracked = |d: &DiskPlan| matches!(d.role, DiskRole::Backed { bitmap: true, .. });
    if !disks.iter().any(tracked) {
        return None;
    }
    let mut xml = format!(
        "<domaincheckpoint><name>{}</name><description>made by Tresor with recovery point {}</description><disks>",
        escape(name),
        escape(name.trim_start_matches(CHECKPOINT_PREFIX))
    );
    for d in disks {
        let mode = if tracked(d) { "bitmap" } else { "no" };
        xml.push_str(&format!(
            "<disk name='{}' checkpoint='{mode}'/>",
            escape(&d.target)
        ));
    }
    xml.push_str("</disks></domaincheckpoint>");
    Some(xml)
}

fn parse(xml: &str) -> Result<Document<'_>, String> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(xml, options)
        .map_err(|e| format!("libvirt's XML does not parse: {e}"))
}

fn disks_of<'a, 'i>(doc: &'a Document<'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    doc.root_element()
        .children()
        .filter(|c| c.has_tag_name("disks"))
        .flat_map(|d| d.children())
        .filter(|c| c.has_tag_name("disk"))
}

/// The disks a checkpoint tracks with a bitmap.
pub fn checkpoint_bitmap_disks(xml: &str) -> Result<Vec<String>, String> {
    let doc = parse(xml)?;
    Ok(disks_of(&doc)
        .filter(|d| d.attribute("checkpoint") == Some("bitmap"))
        .filter_map(|d| d.attribute("name").map(str::to_string))
        .collect())
}

/// One disk exported by a running pull-mode backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub disk: String,
    pub export: String,
    /// The `qemu:dirty-bitmap:` name of an incremental disk.
    pub bitmap: Option<String>,
}

/// The exports of a running backup job, from its XML.
pub fn backup_exports(xml: &str) -> Result<Vec<Export>, String> {
    let doc = parse(xml)?;
    Ok(disks_of(&doc)
        .filter(|d| d.attribute("backup") == Some("yes"))
        .filter_map(|d| {
            let disk = d.attribute("name")?.to_string();
            Some(Export {
                export: d.attribute("exportname").unwrap_or(&disk).to_string(),
                bitmap: d.attribute("exportbitmap").map(str::to_string),
                disk,
            })
        })
        .collect())
}

/// Who the domain's QEMU runs as (`<seclabel model='dac'><label>+UID:+GID`), so the
/// scratch folder can be made its: QEMU creates the NBD socket there.
pub fn dac_owner(domain_xml: &str) -> Option<(u32, u32)> {
    let doc = parse(domain_xml).ok()?;
    let label = doc
        .root_element()
        .children()
        .filter(|c| c.has_tag_name("seclabel") && c.attribute("model") == Some("dac"))
        .flat_map(|s| s.children())
        .find(|c| c.has_tag_name("label"))?
        .text()?;
    let (uid, gid) = label.trim().split_once(':')?;
    let id = |s: &str| s.trim_start_matches('+').parse::<u32>().ok();
    Some((id(uid)?, id(gid)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POINT: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn checkpoints_are_named_after_points() {
        let name = checkpoint_name(POINT);
        assert!(is_tresor_checkpoint(&name));
        assert!(!is_tresor_checkpoint("tresor-nightly"));
        assert!(!is_tresor_checkpoint(POINT));
        assert!(!is_tresor_checkpoint(&format!(
            "tresor-{}",
            POINT.to_uppercase()
        )));
    }

    #[test]
    fn the_request_names_each_disks_mode_and_escapes() {
        let disks = [
            DiskPlan {
                target: "vda".into(),
                role: DiskRole::Backed {
                    incremental: Some(checkpoint_name(POINT)),
                    bitmap: true,
                },
            },
            DiskPlan {
                target: "vdb".into(),
                role: DiskRole::Backed {
                    incremental: None,
                    bitmap: false,
                },
            },
            DiskPlan {
                target: "sdc".into(),
                role: DiskRole::Skipped,
            },
        ];
        let xml = backup_xml(Path::new("/s/it's.sock"), Path::new("/s"), &disks);
        assert!(xml.contains("socket='/s/it&apos;s.sock'"));
        assert!(xml.contains(&format!(
            "<disk name='vda' backup='yes' type='file' backupmode='incremental' incremental='tresor-{POINT}'><scratch file='/s/vda.scratch'/></disk>"
        )));
        assert!(xml.contains("<disk name='vdb' backup='yes' type='file' backupmode='full'>"));
        assert!(xml.contains("<disk name='sdc' backup='no'/>"));
        Document::parse(&xml).unwrap();
        let cp = checkpoint_xml("tresor-x", &disks).unwrap();
        assert!(cp.contains("<disk name='vda' checkpoint='bitmap'/><disk name='vdb' checkpoint='no'/><disk name='sdc' checkpoint='no'/>"));
        assert_eq!(checkpoint_xml("tresor-x", &disks[1..]), None);
    }

    #[test]
    fn libvirts_answers_read() {
        let cp = "<domaincheckpoint><name>tresor-a</name><disks><disk name='vda' checkpoint='bitmap' bitmap='tresor-a'/><disk name='vdb' checkpoint='no'/></disks></domaincheckpoint>";
        assert_eq!(checkpoint_bitmap_disks(cp).unwrap(), ["vda"]);
        let job = "<domainbackup mode='pull'><disks><disk name='vda' backup='yes' backupmode='incremental' exportname='vda' exportbitmap='backup-vda'/><disk name='vdb' backup='yes' backupmode='full' exportname='vdb'/><disk name='vdc' backup='no'/></disks></domainbackup>";
        assert_eq!(
            backup_exports(job).unwrap(),
            [
                Export {
                    disk: "vda".into(),
                    export: "vda".into(),
                    bitmap: Some("backup-vda".into())
                },
                Export {
                    disk: "vdb".into(),
                    export: "vdb".into(),
                    bitmap: None
                }
            ]
        );
        assert!(backup_exports("<not xml").is_err());
        let dom = "<domain><seclabel type='dynamic' model='dac' relabel='yes'><label>+64055:+64055</label></seclabel></domain>";
        assert_eq!(dac_owner(dom), Some((64055, 64055)));
        assert_eq!(dac_owner("<domain/>"), None);
    }
}
