//! API tokens: named admin credentials besides the admin token.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// 1 to 100 characters, unique.
    pub name: String,
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub name: String,
    pub created: Timestamp,
}

/// A token just made: the secret is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub created: Timestamp,
    pub token: String,
}
