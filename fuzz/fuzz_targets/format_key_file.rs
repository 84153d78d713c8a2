//! Key files and the repository config: the two plain JSON objects a reader parses
//! before it has a key. (Unwrapping is not fuzzed: Argon2 is meant to be slow.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use tresor_format::config::RepoConfig;
use tresor_format::key_file::KeyFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = KeyFile::decode(data) {
        if let Ok(w) = k.wrapped() {
            if let tresor_crypto::Kdf::Argon2id(params) = w.kdf {
                let _ = params.check();
            }
        }
        assert_eq!(KeyFile::decode(&k.encode()).unwrap(), k);
    }
    if let Ok(c) = RepoConfig::decode(data) {
        assert_eq!(RepoConfig::decode(&c.encode()).unwrap(), c);
    }
});
