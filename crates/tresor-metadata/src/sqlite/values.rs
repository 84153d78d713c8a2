//! Conversions between the catalogue's values and SQLite's (times as
//! milliseconds, JSON bodies as text), and SQLite's errors as [`StoreError`]s.

use jiff::Timestamp;
use serde_json::Value;

use crate::StoreError;

pub(super) fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Maps a uniqueness violation to [`StoreError::Conflict`] naming `what`.
pub(super) fn unique(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let what = what.into();
    move |e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict { what }
        }
        _ => db(e),
    }
}

pub(super) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(super) fn ts(v: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_millisecond(v).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

pub(super) fn opt_ts(v: Option<i64>) -> rusqlite::Result<Option<Timestamp>> {
    v.map(ts).transpose()
}

pub(super) fn json(text: String) -> rusqlite::Result<Value> {
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A list of names (an item's excluded disks) as its JSON text, and back.
pub(super) fn names_text(names: &[String]) -> String {
    serde_json::to_string(names).unwrap_or_else(|_| "[]".into())
}

pub(super) fn names(text: String) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(super) fn not_found(what: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound { what },
        e => db(e),
    }
}

/// A stored hash: 32 bytes. A blob of another length (the table edited by hand) reads
/// as 32 bytes of 0xff, which no SHA-256 chain produces: verifying the log then names
/// that entry instead of failing to read it.
pub(super) fn hash32(v: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    Ok(<[u8; 32]>::try_from(v.as_slice()).unwrap_or([0xff; 32]))
}
