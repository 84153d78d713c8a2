//! Time-based one-time passwords (RFC 6238), the second factor of a user's sign-in:
//! HMAC-SHA-1, 30-second steps, 6 digits, the step before and after accepted too (a
//! phone's clock a little off). The secret is 20 random bytes, written in base32
//! (RFC 4648, without padding) as authenticator apps expect, and offered to them as an
//! `otpauth://totp/...` URI.

use rand::RngCore;
use ring::hmac;

/// Seconds per step.
pub const STEP: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps before and after the current one that are accepted.
pub const SKEW: u64 = 1;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `bytes` in base32 (RFC 4648), without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Base32 (RFC 4648) back to bytes: letters of either case, padding, spaces and
/// dashes (as people copy secrets) ignored; `None` for any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars() {
        if matches!(c, '=' | ' ' | '-') {
            continue;
        }
        let c = c.to_ascii_uppercase() as u8;
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// A new secret: 20 random bytes (SHA-1's size, as RFC 4226 recommends), in base32.
pub fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut b);
    base32_encode(&b)
}

/// The code of `key` at `step` (RFC 4226's HOTP with the step as counter).
pub fn code_at(key: &[u8], step: u64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let h = mac.as_ref();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let binary =
        u32::from_be_bytes([h[offset], h[offset + 1], h[offset + 2], h[offset + 3]]) & 0x7fff_ffff;
    binary % 10u32.pow(DIGITS)
}

/// The code of a base32 `secret` at `unix_seconds`, as six digits (`None`: the secret
/// does not decode).
pub fn code(secret: &str, unix_seconds: u64) -> Option<String> {
    let key = base32_decode(secret)?;
    Some(format!(
        "{:0width$}",
        code_at(&key, unix_seconds / STEP),
        width = DIGITS as usize
    ))
}

/// Whether `given` is the code of `secret` at `unix_seconds`, or one step off.
/// Compares in constant time.
pub fn verify(secret: &str, given: &str, unix_seconds: u64) -> bool {
    matching_step(secret, given, unix_seconds).is_some()
}

/// The time step whose code `given` is, of those [`verify`] accepts at
/// `unix_seconds` (the latest, should two steps share a code): what the replay guard
/// records, so that no code is taken twice. Compares in constant time.
pub fn matching_step(secret: &str, given: &str, unix_seconds: u64) -> Option<u64> {
    let given = given.trim();
    if given.len() != DIGITS as usize || !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let key = base32_decode(secret)?;
    let now = unix_seconds / STEP;
    let mut found = None;
    for step in now.saturating_sub(SKEW)..=now + SKEW {
        let want = format!("{:0width$}", code_at(&key, step), width = DIGITS as usize);
        if crate::auth::same_secret(&want, given) {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI an authenticator app reads (from a QR code or pasted):
/// issuer `Tresor`, the account `user`.
pub fn uri(secret: &str, user: &str) -> String {
    format!(
        "otpauth://totp/Tresor:{}?secret={secret}&issuer=Tresor&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        percent_encode(user)
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 rows (key "12345678901234567890"; the RFC's
    /// codes have 8 digits, whose last 6 are the 6-digit code).
    #[test]
    fn rfc_6238_test_vectors() {
        let key = b"12345678901234567890";
        let secret = base32_encode(key);
        assert_eq!(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        for (time, eight) in [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(
                code_at(key, time / STEP) % 100_000_000,
                eight.parse::<u32>().unwrap() % 1_000_000,
                "{time}"
            );
            assert_eq!(code(&secret, time).unwrap(), &eight[2..], "{time}");
            assert!(verify(&secret, &eight[2..], time));
        }
    }

    #[test]
    fn codes_one_step_off_are_accepted_and_no_further() {
        let secret = new_secret();
        let t = 1_700_000_000u64;
        let now = code(&secret, t).unwrap();
        assert!(verify(&secret, &now, t + STEP));
        assert!(verify(&secret, &now, t - STEP));
        let far = code(&secret, t + 3 * STEP).unwrap();
        assert!(far == now || !verify(&secret, &far, t));
        // Its own step (or, should a neighbour share the code, a later one).
        for at in [t, t + STEP] {
            let step = matching_step(&secret, &now, at).unwrap();
            assert!(step >= t / STEP, "{at}");
            assert_eq!(code(&secret, step * STEP).unwrap(), now);
        }
        assert!(!verify(&secret, "12345", t));
        assert!(!verify(&secret, "12345a", t));
        assert!(!verify("not base32!", &now, t));
    }

    #[test]
    fn base32_round_trips() {
        // RFC 4648, section 10 (without padding).
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw-6ytb oi==").unwrap(), b"foobar");
        assert!(base32_decode("MZXW1").is_none());
        let s = new_secret();
        assert_eq!(s.len(), 32);
        assert_eq!(base32_decode(&s).unwrap().len(), 20);
    }

    #[test]
    fn the_uri_names_the_user_and_the_secret() {
        assert_eq!(
            uri("JBSWY3DPEHPK3PXP", "alice smith"),
            "otpauth://totp/Tresor:alice%20smith?secret=JBSWY3DPEHPK3PXP&issuer=Tresor&algorithm=SHA1&digits=6&period=30"
        );
    }
}
