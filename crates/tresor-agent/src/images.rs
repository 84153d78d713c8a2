//! Disk images backed up as they are (`tresor repo backup IMAGE...`): a stopped VM's
//! images, raw files or block devices, read through the QEMU provider's offline
//! reader (which refuses an image a running VM holds). The sequence is the VM's
//! (`backup.rs`): parent, point id, disks opened, engine; after a committed point,
//! the images' persistent dirty bitmaps are started for it.

use std::path::PathBuf;

use tresor_blocksource::DirtyExtents;
use tresor_engine::backup::new_point_id;
use tresor_engine::{Consistency, Manifest, Repository};
use tresor_vm::ViewDisk;

use crate::backup::{full_read_reasons, write_point, NewPoint, Parent, RunOptions};

/// What to back up, and how.
pub struct ImagesBackup {
    /// The points' name; points of one name form its history.
    pub name: String,
    /// One disk per image, named after the image's file name.
    pub images: Vec<PathBuf>,
    pub parent: Parent,
    /// What changed since the parent, one file per image in order (`OFFSET LENGTH`
    /// lines or qemu-img map JSON). Empty: every image is read whole.
    pub dirty_extents: Vec<PathBuf>,
    /// Use the qcow2 images' persistent dirty bitmaps: read what the parent's bitmap
    /// marks, and start the new point's bitmap after the backup.
    pub bitmaps: bool,
    /// What the point records (the images cannot tell).
    pub consistency: Consistency,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImagesError {
    /// The request does not hold together.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Repository(#[from] tresor_engine::Error),
    #[error(transparent)]
    Image(#[from] tresor_qemu::Error),
    #[error(transparent)]
    DirtyExtents(#[from] tresor_blocksource::Error),
}

/// Images open for one new point.
pub struct OpenImages {
    id: String,
    name: String,
    parent: Option<Manifest>,
    disks: Vec<ViewDisk>,
    images: Vec<PathBuf>,
    bitmaps: bool,
    consistency: Consistency,
}

/// What an images backup did.
#[derive(Debug)]
pub struct ImagesOutcome {
    pub manifest: Manifest,
    /// The committed point's trouble after the fact (a bitmap that could not start).
    pub warnings: Vec<String>,
}

impl ImagesBackup {
    /// Refuses a request that does not hold together, before any repository is opened.
    pub fn check(&self) -> Result<(), ImagesError> {
        if !self.dirty_extents.is_empty() && self.dirty_extents.len() != self.images.len() {
            return Err(ImagesError::Invalid(format!(
                "{} --dirty-extents files for {} images: give one per image, in the same order",
                self.dirty_extents.len(),
                self.images.len()
            )));
        }
        Ok(())
    }

    /// Chooses the parent and the new point's id, and opens the images.
    pub fn open(self, repo: &Repository) -> Result<OpenImages, ImagesError> {
        self.check()?;
        let parent = self.parent.resolve(repo, &self.name)?;
        if self.parent == Parent::Latest && parent.is_none() && !self.dirty_extents.is_empty() {
            return Err(ImagesError::Invalid(format!(
                "--parent latest: no recovery point named {:?} yet, so dirty extents cannot be used; back up without them first",
                self.name
            )));
        }
        let parent_bitmap = match (&parent, self.bitmaps) {
            (Some(p), true) => Some(tresor_qemu::point_bitmap_name(&p.id)),
            _ => None,
        };
        let mut disks = Vec::new();
        for (i, image) in self.images.iter().enumerate() {
            let name = image
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    ImagesError::Invalid(format!("{} has no file name", image.display()))
                })?;
            let opened =
                tresor_qemu::open_offline_disk(image, self.bitmaps, parent_bitmap.as_deref())?;
            let mut dirty = opened.dirty;
            if let Some(f) = self.dirty_extents.get(i) {
                let mut d = DirtyExtents::load(f)?;
                d.clamp(opened.source.size());
                dirty = Some(d);
            }
            disks.push(ViewDisk {
                name,
                source: opened.source,
                dirty,
                full_read_reason: opened.full_read_reason,
            });
        }
        Ok(OpenImages {
            id: new_point_id(),
            name: self.name,
            parent,
            disks,
            images: self.images,
            bitmaps: self.bitmaps,
            consistency: self.consistency,
        })
    }
}

impl OpenImages {
    /// Why images are read whole although the parent's bitmap was asked for.
    pub fn notes(&self) -> Vec<String> {
        full_read_reasons(&self.disks)
    }

    /// Backs the images up as one recovery point; then, with bitmaps, starts each
    /// image's bitmap for the new point.
    pub fn run(
        self,
        repo: &Repository,
        opts: RunOptions<'_>,
    ) -> Result<ImagesOutcome, ImagesError> {
        let manifest = write_point(
            repo,
            NewPoint {
                id: self.id,
                name: self.name,
                parent: self.parent,
                disks: &self.disks,
                consistency: self.consistency,
                vm_config: None,
            },
            opts,
        )?;
        // qemu-nbd lets go of the images first: from now on the bitmaps record what
        // changes after this point.
        drop(self.disks);
        let mut warnings = Vec::new();
        if self.bitmaps {
            for image in &self.images {
                if let Err(e) = tresor_qemu::start_point_bitmap(image, &manifest.id) {
                    warnings.push(format!(
                        "could not start the dirty bitmap of {} for this point ({e}); the next backup reads the whole image",
                        image.display()
                    ));
                }
            }
        }
        Ok(ImagesOutcome { manifest, warnings })
    }
}
