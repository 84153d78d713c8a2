//! Users: people who sign in to the portal with a name and a password, and a TOTP
//! code once they enabled it; each with role assignments like a token's.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
pub use tresor_domain::access::RoleAssignment;
use utoipa::ToSchema;

/// `POST /api/v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    /// 1 to 64 letters, digits and `. _ - @`; unique whatever the case of its letters.
    #[schema(min_length = 1, max_length = 64, example = "alice")]
    pub name: String,
    /// At least 12 characters.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
    /// What the user may do: roles at scopes.
    pub roles: Vec<RoleAssignment>,
}

/// A user as listed (never the password or the TOTP secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    pub roles: Vec<RoleAssignment>,
    /// Signing in needs a TOTP code.
    pub totp: bool,
}

/// `PUT /api/v1/users/{name}/password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetPassword {
    /// At least 12 characters.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: String,
    /// The password now: needed to change one's own, unless one may manage access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// `POST /api/v1/users/{name}/totp`: a new TOTP secret, for an authenticator app. It
/// takes effect once confirmed with its first code
/// (`POST /api/v1/users/{name}/totp/confirm`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpSetup {
    /// Base32 (RFC 4648, no padding), for typing in.
    pub secret: String,
    /// `otpauth://totp/Tresor:NAME?secret=...`, for a QR code.
    pub uri: String,
}

/// `POST /api/v1/users/{name}/totp/confirm`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmTotp {
    /// The six digits the authenticator app shows now.
    #[schema(example = "123456")]
    pub code: String,
}

/// `PUT /api/v1/users/{name}/roles`: the user's role assignments, all of them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoles {
    pub roles: Vec<RoleAssignment>,
}
