//! Every magic number of the repository format, in one place.
//!
//! Each is the first 8 bytes of SHA-256 of a versioned string. A new incompatible version
//! of a format gets a new string and so a new magic, and old readers refuse it.
//! **Never change these values**: stored repositories depend on them.

/// SHA-256("tresor pack v1")[..8]: starts and ends every pack file.
pub const PACK_MAGIC_V1: [u8; 8] = [0x1f, 0xd1, 0x0a, 0x11, 0xb0, 0xf4, 0xe4, 0x0e];
/// SHA-256("tresor index v1")[..8]: starts the plaintext of every index file.
pub const INDEX_MAGIC_V1: [u8; 8] = [0x79, 0xa6, 0x35, 0x1a, 0x6c, 0xa8, 0x55, 0x94];
/// SHA-256("tresor tree node v1")[..8]: starts the plaintext of every disk tree node.
pub const TREE_MAGIC_V1: [u8; 8] = [0x06, 0xea, 0xeb, 0x35, 0xd6, 0x1e, 0xb7, 0xc3];
/// SHA-256("tresor recovery point v1")[..8]: starts the plaintext of every manifest.
pub const POINT_MAGIC_V1: [u8; 8] = [0xb7, 0x3d, 0xfd, 0xc7, 0x6a, 0x0d, 0xc0, 0x47];
/// SHA-256("tresor gc state v1")[..8]: starts the plaintext of the GC state.
pub const GC_MAGIC_V1: [u8; 8] = [0x9e, 0xe4, 0xd5, 0x1f, 0xe8, 0x52, 0xde, 0x4f];

/// Associated data of index files, bound into their AEAD tag.
pub const INDEX_AAD: &[u8] = b"tresor index v1";
/// Associated data of pack trailers.
pub const PACK_TRAILER_AAD: &[u8] = b"tresor pack trailer v1";
/// Associated data prefix of manifests (followed by the recovery point id).
pub const POINT_AAD: &[u8] = b"tresor recovery point v1";
/// Associated data of the GC state.
pub const GC_AAD: &[u8] = b"tresor gc state v1";

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(s: &str) -> [u8; 8] {
        let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
        d.as_ref()[..8].try_into().unwrap()
    }

    #[test]
    fn magics_match_their_derivation() {
        assert_eq!(PACK_MAGIC_V1, derive("tresor pack v1"));
        assert_eq!(INDEX_MAGIC_V1, derive("tresor index v1"));
        assert_eq!(TREE_MAGIC_V1, derive("tresor tree node v1"));
        assert_eq!(POINT_MAGIC_V1, derive("tresor recovery point v1"));
        assert_eq!(GC_MAGIC_V1, derive("tresor gc state v1"));
    }
}
