//! The catalogue in one SQLite file (WAL mode, foreign keys on).
//!
//! One connection behind a mutex: the server's catalogue traffic is small next to the
//! data path, and SQLite serialises writers anyway. Schema changes go through
//! [`schema::MIGRATIONS`], applied in order at open and recorded in `user_version`.
//!
//! This file owns the connection: opening it, its settings, and the few ways a
//! statement is run. The schema is in `schema`, how each table's rows read in
//! `columns`, how values and errors convert in `values`, and the queries of every
//! table, as the [`MetadataStore`](crate::MetadataStore) trait orders them, in `store`.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row};

use crate::{Result, StoreError};
use values::{db, not_found, unique};

mod columns;
mod guards;
mod schema;
mod store;
mod values;

/// The catalogue in a SQLite database file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let conn = Connection::open(path).map_err(db)?;
        Self::init(conn)
    }

    /// A private database in memory (tests, benchmarks).
    pub fn in_memory() -> Result<SqliteStore> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(conn: Connection) -> Result<SqliteStore> {
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        // WAL: readers do not wait for the writer; NORMAL sync is durable at checkpoints
        // and safe against corruption, the usual choice with WAL.
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        schema::migrate(&conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn query<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnMut(&Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(params, map).map_err(db)?;
        rows.collect::<rusqlite::Result<Vec<T>>>().map_err(db)
    }

    fn one<T>(
        &self,
        what: String,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnOnce(&Row) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        stmt.query_row(params, map).map_err(not_found(what))
    }

    fn optional<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnOnce(&Row) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(sql).map_err(db)?;
        stmt.query_row(params, map).optional().map_err(db)
    }

    /// Runs a statement that must change exactly one row.
    fn change_one(&self, what: String, sql: &str, params: impl rusqlite::Params) -> Result<()> {
        let conn = self.conn.lock();
        let n = conn.execute(sql, params).map_err(db)?;
        if n == 0 {
            return Err(StoreError::NotFound { what });
        }
        Ok(())
    }

    fn exec(&self, sql: &str, params: impl rusqlite::Params, conflict: &str) -> Result<()> {
        let conn = self.conn.lock();
        conn.execute(sql, params).map_err(unique(conflict))?;
        Ok(())
    }
}
