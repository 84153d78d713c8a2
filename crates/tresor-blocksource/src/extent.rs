//! Extents: contiguous byte ranges of a disk with one kind.

/// What a range of a disk holds, as far as its source knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentKind {
    /// Allocated; may hold any bytes (including zeros).
    Data,
    /// Known to read as zeros (a hole, an unallocated or zeroed cluster).
    Zero,
}

/// A contiguous range `offset .. offset + len` of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First byte of the range.
    pub offset: u64,
    /// Length in bytes; extents returned by a [`crate::BlockSource`] are never empty.
    pub len: u64,
    /// What the range holds.
    pub kind: ExtentKind,
}

impl Extent {
    /// One past the last byte (`offset + len`), where the next extent starts.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}
