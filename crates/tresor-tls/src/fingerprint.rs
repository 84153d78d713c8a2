//! The SHA-256 fingerprint of a certificate: what clients pin.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// SHA-256 of a certificate's DER encoding.
///
/// Displayed as 64 lowercase hex digits; parsed from that form or from the
/// colon-separated form (`AA:BB:…`, as `openssl x509 -fingerprint -sha256`
/// prints it, with or without its `sha256 Fingerprint=` prefix), in either
/// case. Serialized as the lowercase hex string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate given as DER.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// A fingerprint from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Fingerprint {
        Fingerprint(bytes)
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The colon-separated uppercase form, `AA:BB:…`.
    pub fn to_colon_hex(&self) -> String {
        let mut out = String::with_capacity(95);
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&format!("{b:02X}"));
        }
        out
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A string that is not a SHA-256 fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 fingerprint ({reason}): expected 64 hex digits, optionally as 32 colon-separated pairs")]
pub struct ParseFingerprintError {
    reason: &'static str,
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(s: &str) -> Result<Fingerprint, ParseFingerprintError> {
        // Tolerate openssl's `sha256 Fingerprint=AA:BB:…` as pasted.
        let s = s.rsplit_once('=').map_or(s, |(_, fp)| fp).trim();
        let digits: String = if s.contains(':') {
            let pairs: Vec<&str> = s.split(':').collect();
            if pairs.len() != 32 {
                return Err(ParseFingerprintError {
                    reason: "colon form must have 32 pairs",
                });
            }
            if pairs.iter().any(|p| p.len() != 2) {
                return Err(ParseFingerprintError {
                    reason: "each colon-separated group must have 2 digits",
                });
            }
            pairs.concat()
        } else {
            s.to_owned()
        };
        if digits.len() != 64 {
            return Err(ParseFingerprintError {
                reason: "wrong length",
            });
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| ParseFingerprintError {
            reason: "not a hex digit",
        })?;
        Ok(Fingerprint(bytes))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fingerprint, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn parses_and_displays_lowercase_hex() {
        let fp: Fingerprint = HEX.parse().unwrap();
        assert_eq!(fp.to_string(), HEX);
        let upper: Fingerprint = HEX.to_uppercase().parse().unwrap();
        assert_eq!(upper, fp);
    }

    #[test]
    fn parses_colon_form_in_either_case() {
        let fp: Fingerprint = HEX.parse().unwrap();
        let colon = fp.to_colon_hex();
        assert!(colon.starts_with("00:11:22:33:"));
        assert_eq!(colon.len(), 95);
        assert_eq!(colon.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(colon.to_lowercase().parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("  {colon}\n").parse::<Fingerprint>().unwrap(), fp);
        let openssl = format!("sha256 Fingerprint={colon}");
        assert_eq!(openssl.parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn rejects_malformed_fingerprints() {
        for bad in [
            "",
            &HEX[..62],
            &format!("{HEX}00"),
            &HEX.replace('a', "g"),
            "00:11",
            &format!("0{}", &HEX[1..]).replacen("00", "0:0", 1),
            &"001:".repeat(31),
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn serde_uses_the_hex_string() {
        let fp: Fingerprint = HEX.parse().unwrap();
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(json, format!("\"{HEX}\""));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
        let colon = format!("\"{}\"", fp.to_colon_hex());
        assert_eq!(serde_json::from_str::<Fingerprint>(&colon).unwrap(), fp);
        assert!(serde_json::from_str::<Fingerprint>("\"abc\"").is_err());
    }

    #[test]
    fn of_der_is_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(
            Fingerprint::of_der(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
