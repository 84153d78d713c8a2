//! API tokens: named credentials besides the admin token, each with its role
//! assignments (`tresor_domain::access`).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
pub use tresor_domain::access::{Role, RoleAssignment, Scope};
use utoipa::ToSchema;

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// 1 to 100 characters, unique.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S", example = "reports")]
    pub name: String,
    /// What the token may do: roles at scopes. Default: Owner of the installation
    /// (what every token was before roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<RoleAssignment>>,
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    pub roles: Vec<RoleAssignment>,
}

/// A token just made: the secret is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    pub roles: Vec<RoleAssignment>,
    pub token: String,
}
