//! API tokens: named credentials besides the admin token, each with its role
//! assignments (`tresor_domain::access`), owned by the user who made it (or by the
//! installation: the first admin token, and those made by an installation token with
//! `Access.Manage`), and expiring when asked to.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
pub use tresor_domain::access::{Role, RoleAssignment, Scope};
use utoipa::ToSchema;

/// The longest a token may be made to live, in days (ten years).
pub const MAX_EXPIRES_IN_DAYS: u32 = 3650;

/// `POST /api/v1/tokens`. A user's token is made by that user only: there is no
/// owner field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateToken {
    /// 1 to 100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S", example = "reports")]
    pub name: String,
    /// What the token may do: roles at scopes, each covered by one of the caller's
    /// own (a role as strong at a scope containing it). Default: the caller's own
    /// assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<RoleAssignment>>,
    /// Days until the token stops working (1 to 3650). Default: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3650, example = 90)]
    pub expires_in_days: Option<u32>,
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub name: String,
    /// The user it belongs to (`None`: the installation's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    /// When it stops working (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires: Option<Timestamp>,
    /// Its own role assignments. A user's token acts with those of them the user
    /// still holds.
    pub roles: Vec<RoleAssignment>,
}

/// A token just made: the secret is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires: Option<Timestamp>,
    pub roles: Vec<RoleAssignment>,
    pub token: String,
}
