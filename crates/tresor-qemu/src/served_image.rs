//! An image of a stopped VM, served by `qemu-nbd` and read as a block source.

use std::path::Path;
use std::time::Duration;

use tresor_blocksource::{BlockSource, DirtyExtents, Extent};

use crate::qemu_nbd::EXPORT;
use crate::{image_info, Error, ImageInfo, NbdSource, QemuNbdServer, Result};

/// Connections (and so parallel reads) to one served image.
const CONNECTIONS: u32 = 4;

/// A disk image read through `qemu-nbd`, whatever its format: qcow2 clusters, backing
/// files and compression are QEMU's business, and its image lock keeps a VM from
/// starting on the image while it is read.
pub struct ServedImage {
    // Field order is drop order: disconnect before the server stops.
    source: NbdSource,
    _server: QemuNbdServer,
    info: ImageInfo,
}

impl ServedImage {
    /// Serves `image`; with `bitmap`, also exposes that persistent dirty bitmap (it
    /// must exist and be consistent).
    pub fn open(image: &Path, bitmap: Option<&str>) -> Result<ServedImage> {
        let info = image_info(image)?;
        if let Some(name) = bitmap {
            match info.bitmaps.iter().find(|b| b.name == name) {
                None => {
                    return Err(Error::NoSuchBitmap {
                        image: image.display().to_string(),
                        bitmap: name.to_string(),
                        available: info
                            .bitmaps
                            .iter()
                            .map(|b| b.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
                Some(b) if b.inconsistent => {
                    return Err(Error::InconsistentBitmap {
                        image: image.display().to_string(),
                        bitmap: name.to_string(),
                    })
                }
                Some(_) => {}
            }
        }
        let mut server = QemuNbdServer::start(image, &info.format, bitmap, CONNECTIONS)?;
        let source = match NbdSource::connect_unix(
            &image.display().to_string(),
            server.socket(),
            EXPORT,
            bitmap,
            CONNECTIONS as usize,
        ) {
            Ok(s) => s,
            // qemu-nbd's own reason (a locked image) explains a refused connection best.
            Err(e) => return Err(server.exit_error(Duration::from_secs(2)).unwrap_or(e)),
        };
        Ok(ServedImage {
            source,
            _server: server,
            info,
        })
    }

    pub fn info(&self) -> &ImageInfo {
        &self.info
    }

    /// What the bitmap given to [`ServedImage::open`] marks as changed.
    pub fn dirty_extents(&self) -> Result<DirtyExtents> {
        self.source.dirty_extents()
    }
}

impl BlockSource for ServedImage {
    fn describe(&self) -> String {
        self.source.describe()
    }

    fn size(&self) -> u64 {
        self.source.size()
    }

    fn extents(&self, offset: u64, len: u64) -> tresor_blocksource::Result<Vec<Extent>> {
        self.source.extents(offset, len)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> tresor_blocksource::Result<()> {
        self.source.read_at(offset, buf)
    }
}
