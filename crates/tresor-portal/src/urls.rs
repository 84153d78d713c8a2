//! Percent-encoding for the links and redirects the pages build, and decoding for
//! checking where a redirect leads.

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes one path segment: as [`url_encode`], and `/` too (a VM's name may
/// hold one).
pub fn path_segment(s: &str) -> String {
    url_encode(s).replace('/', "%2F")
}

/// A VM's own page (`vm_page.rs`): VM `vm` (its agent's id for it) of the agent
/// `agent` (its id).
pub fn vm_url(agent: &str, vm: &str) -> String {
    format!("/agents/{}/vms/{}", path_segment(agent), path_segment(vm))
}

/// Decodes `%XX` escapes (invalid ones stay as they are; bytes that are not UTF-8
/// become U+FFFD).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_and_decoded() {
        assert_eq!(url_encode("/vaults?x=a b"), "/vaults%3Fx%3Da%20b");
        assert_eq!(percent_decode("/vaults%3Fx%3Da%20b"), "/vaults?x=a b");
        assert_eq!(percent_decode("%zz%2"), "%zz%2");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
