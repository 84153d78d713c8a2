//! API tokens: named admin credentials besides the admin token.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// 1 to 100 characters, unique.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S", example = "reports")]
    pub name: String,
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
}

/// A token just made: the secret is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created: Timestamp,
    pub token: String,
}
