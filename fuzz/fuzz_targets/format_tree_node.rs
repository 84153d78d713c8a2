//! Disk tree node plaintexts (what an opened tree blob holds). A node that decodes
//! encodes back to exactly the same bytes: the encoding is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_format::tree::TreeNode;

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = TreeNode::decode(data) {
        assert_eq!(node.encode(), data);
        let _ = node.is_all_zero();
    }
});
