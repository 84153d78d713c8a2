//! `qemu-img info` of an image.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use crate::{Error, Result};

/// What QEMU knows of an image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `raw`, `qcow2`, ...
    pub format: String,
    pub virtual_size: u64,
    /// Persistent dirty bitmaps stored in the image (qcow2 only).
    pub bitmaps: Vec<BitmapInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitmapInfo {
    pub name: String,
    pub granularity: u64,
    /// Set when QEMU did not close the image cleanly: the bitmap may miss writes.
    pub inconsistent: bool,
}

#[derive(Deserialize)]
struct RawInfo {
    format: String,
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(rename = "format-specific", default)]
    format_specific: Option<FormatSpecific>,
}

#[derive(Deserialize)]
struct FormatSpecific {
    #[serde(default)]
    data: Option<FormatData>,
}

#[derive(Deserialize)]
struct FormatData {
    #[serde(default)]
    bitmaps: Vec<RawBitmap>,
}

#[derive(Deserialize)]
struct RawBitmap {
    name: String,
    granularity: u64,
    #[serde(default)]
    flags: Vec<String>,
}

/// Runs `qemu-img ARGS IMAGE`.
fn qemu_img(args: &[&str], image: &Path) -> Result<std::process::Output> {
    Command::new("qemu-img")
        .args(args)
        .arg(image)
        .output()
        .map_err(spawn_error)
}

fn spawn_error(source: std::io::Error) -> Error {
    Error::Spawn {
        program: "qemu-img".into(),
        source,
    }
}

/// Runs `qemu-img info` on `image` (with `-U`, so it also answers for an image a
/// running VM holds; nothing is read but the header).
pub fn image_info(image: &Path) -> Result<ImageInfo> {
    let out = qemu_img(&["info", "-U", "--output=json"], image)?;
    if !out.status.success() {
        return Err(Error::Tool {
            program: "qemu-img info".into(),
            image: image.display().to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let raw: RawInfo = serde_json::from_slice(&out.stdout).map_err(|e| Error::Tool {
        program: "qemu-img info".into(),
        image: image.display().to_string(),
        message: format!("unexpected output: {e}"),
    })?;
    let bitmaps = raw
        .format_specific
        .and_then(|f| f.data)
        .map(|d| d.bitmaps)
        .unwrap_or_default()
        .into_iter()
        .map(|b| BitmapInfo {
            inconsistent: b.flags.iter().any(|f| f == "in-use"),
            name: b.name,
            granularity: b.granularity,
        })
        .collect();
    Ok(ImageInfo {
        format: raw.format,
        virtual_size: raw.virtual_size,
        bitmaps,
    })
}

/// Fails with [`Error::ImageLocked`] when a running QEMU holds `image` (then
/// `qemu-img info` without `-U` is refused its lock).
pub fn ensure_not_in_use(image: &Path) -> Result<()> {
    let out = qemu_img(&["info", "--output=json"], image)?;
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("lock") {
        return Err(Error::ImageLocked {
            image: image.display().to_string(),
        });
    }
    Ok(())
}

/// Runs `qemu-img bitmap OP IMAGE NAME`. Needs the image's write lock: it fails with
/// [`Error::ImageLocked`] while a VM runs on the image.
fn bitmap_op(image: &Path, op: &str, name: &str) -> Result<()> {
    let out = Command::new("qemu-img")
        .args(["bitmap", op])
        .arg(image)
        .arg(name)
        .output()
        .map_err(spawn_error)?;
    if out.status.success() {
        return Ok(());
    }
    let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if message.contains("lock") {
        return Err(Error::ImageLocked {
            image: image.display().to_string(),
        });
    }
    Err(Error::Tool {
        program: format!("qemu-img bitmap {op}"),
        image: image.display().to_string(),
        message,
    })
}

/// The persistent bitmap that records what changed in an image since recovery point
/// `point`. One bitmap per point (as libvirt's checkpoints do): an incremental backup
/// uses the bitmap named after its parent, so a bitmap can never be applied to the
/// wrong parent (a forgotten point, a failed bitmap update).
pub fn point_bitmap_name(point: &str) -> String {
    format!("tresor-{point}")
}

/// After recovery point `point` of a stopped VM's qcow2 image is committed: adds the
/// bitmap that tracks changes from now on, and removes the bitmaps of earlier points.
/// Fails with [`Error::ImageLocked`] if a VM has started on the image meanwhile; the
/// next backup then reads the whole image.
pub fn start_point_bitmap(image: &Path, point: &str) -> Result<()> {
    let name = point_bitmap_name(point);
    bitmap_op(image, "--add", &name)?;
    for old in image_info(image)?.bitmaps {
        if old.name.starts_with("tresor-") && old.name != name {
            bitmap_op(image, "--remove", &old.name)?;
        }
    }
    Ok(())
}
