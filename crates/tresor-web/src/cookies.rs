//! The portal's cookies: the session (`tresor_session`) and the sign-in form's
//! double-submit token (`tresor_login`). Both are `HttpOnly` (no script reads them),
//! `Secure` (HTTPS only; the server speaks nothing else) and `SameSite=Strict` (no
//! other site's page can send them).

use axum::http::{header, HeaderMap, HeaderValue};

pub const SESSION_COOKIE: &str = "tresor_session";
pub const LOGIN_COOKIE: &str = "tresor_login";

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the portal's attributes. Values are the server's own
/// (random hex secrets, or empty to clear), always a valid header.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("tresor_invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; tresor_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
