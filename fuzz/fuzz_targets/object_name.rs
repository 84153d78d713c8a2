//! Object names as agents send them in upload and read paths
//! (`tresor_storage::check_name`): whatever is accepted is a plain name that no
//! backend can read as a path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if tresor_storage::check_name(name).is_ok() {
        assert!(!name.is_empty() && name.len() <= 200);
        assert!(!name.contains(['/', '\\', '.', '\0']));
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
});
