//! A stopped VM's disk images, opened for a crash-consistent backup.

use std::path::Path;
use std::sync::Arc;

use tresor_blocksource::{BlockSource, DirtyExtents, Extent, RawFile};

use crate::image_lock::ImageReadLock;
use crate::{image_info, Error, Result, ServedImage};

/// One image opened for reading, with what changed since the parent point when its
/// persistent bitmap says so.
pub struct OfflineDisk {
    pub source: Arc<dyn BlockSource>,
    pub dirty: Option<DirtyExtents>,
    /// Why the image is read whole although the parent's bitmap was asked for.
    pub full_read_reason: Option<String>,
}

/// Opens `image` of a stopped VM.
///
/// Raw files and block devices are read directly (fast: `SEEK_DATA` skips holes)
/// unless bitmaps are wanted; anything else, and any image when `use_bitmaps`, goes
/// through `qemu-nbd`. Either way QEMU's image locks are taken, so an image a running
/// VM holds is refused ([`Error::ImageLocked`]) and a VM cannot start on it while it
/// is read.
///
/// With `parent_bitmap`, the image's persistent bitmap of that name gives the dirty
/// extents; a missing or inconsistent bitmap means a whole read, with the reason.
pub fn open_offline_disk(
    image: &Path,
    use_bitmaps: bool,
    parent_bitmap: Option<&str>,
) -> Result<OfflineDisk> {
    let whole = |source: Arc<dyn BlockSource>| OfflineDisk {
        source,
        dirty: None,
        full_read_reason: None,
    };
    let is_block_device = std::fs::metadata(image)
        .map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()))
        .unwrap_or(false);
    if !use_bitmaps && is_block_device {
        return Ok(whole(Arc::new(open_raw(image)?)));
    }
    let info = image_info(image)?;
    if use_bitmaps && info.format != "qcow2" {
        return Err(Error::Tool {
            program: "dirty bitmaps".into(),
            image: image.display().to_string(),
            message: format!(
                "a {} image cannot store persistent dirty bitmaps; convert it to qcow2 (qemu-img convert -O qcow2) or back it up without bitmaps",
                info.format
            ),
        });
    }
    if !use_bitmaps && info.format == "raw" {
        return Ok(whole(Arc::new(open_raw(image)?)));
    }
    let mut full_read_reason = None;
    let usable = match parent_bitmap {
        None => None,
        Some(b) => match info.bitmaps.iter().find(|x| x.name == b) {
            None => {
                full_read_reason = Some(format!(
                    "{} has no dirty bitmap for the parent point (it was restored, replaced or never tracked): reading it whole, deduplicated against what is stored",
                    image.display()
                ));
                None
            }
            Some(x) if x.inconsistent => {
                full_read_reason = Some(format!(
                    "the dirty bitmap of {} is inconsistent (QEMU stopped without saving it): reading it whole, deduplicated against what is stored",
                    image.display()
                ));
                None
            }
            Some(_) => Some(b),
        },
    };
    let served = ServedImage::open(image, usable)?;
    let dirty = match usable {
        Some(_) => Some(served.dirty_extents()?),
        None => None,
    };
    Ok(OfflineDisk {
        source: Arc::new(served),
        dirty,
        full_read_reason,
    })
}

fn open_raw(image: &Path) -> Result<LockedRaw> {
    let lock = ImageReadLock::acquire(image)?;
    let raw = RawFile::open(image).map_err(|e| Error::Tool {
        program: "open".into(),
        image: image.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(LockedRaw { raw, _lock: lock })
}

/// A raw image read directly, holding QEMU's read locks on it.
struct LockedRaw {
    raw: RawFile,
    _lock: ImageReadLock,
}

impl BlockSource for LockedRaw {
    fn describe(&self) -> String {
        self.raw.describe()
    }

    fn size(&self) -> u64 {
        self.raw.size()
    }

    fn extents(&self, offset: u64, len: u64) -> tresor_blocksource::Result<Vec<Extent>> {
        self.raw.extents(offset, len)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> tresor_blocksource::Result<()> {
        self.raw.read_at(offset, buf)
    }
}
