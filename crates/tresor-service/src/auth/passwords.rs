//! Users' passwords: Argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes, one
//! lane), kept as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) so that
//! its parameters travel with it. Hashing takes tens of milliseconds on purpose: call
//! it off the async threads.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use tresor_api::ErrorCode;

use crate::error::{ServiceError, ServiceResult};

/// The shortest password accepted, in characters.
pub const MIN_LENGTH: usize = 12;
/// The longest (a bound on the work one request can ask for).
pub const MAX_LENGTH: usize = 1024;

/// Refuses a password shorter than [`MIN_LENGTH`] characters (or absurdly long):
/// `WeakPassword`.
pub fn check_strength(password: &str) -> ServiceResult<()> {
    let n = password.chars().count();
    if n < MIN_LENGTH || password.len() > MAX_LENGTH {
        return Err(ServiceError::new(
            ErrorCode::WeakPassword,
            format!("a password needs {MIN_LENGTH} to {MAX_LENGTH} characters"),
            "use a passphrase of several words, or a password manager's",
        ));
    }
    Ok(())
}

/// The PHC string of `password` with a new random salt.
pub fn hash(password: &str) -> ServiceResult<String> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(ServiceError::internal)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ServiceError::internal)
}

/// Whether `password` is the one `phc` was made from. A PHC string that does not
/// parse matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of no one's password, checked when a sign-in names an unknown user so that
/// the answer takes as long as for a known one.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("no user has this password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert_ne!(h, hash("correct horse battery").unwrap(), "salted");
        assert!(!verify("x", "not a phc string"));
        assert!(!verify("no user has this password!", decoy()));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert_eq!(
            check_strength("elevenchars").unwrap_err().code,
            ErrorCode::WeakPassword
        );
        assert!(check_strength("twelve chars").is_ok());
        // Characters, not bytes.
        assert!(check_strength("ééééééééééé").is_err());
        assert!(check_strength(&"x".repeat(MAX_LENGTH + 1)).is_err());
    }
}
