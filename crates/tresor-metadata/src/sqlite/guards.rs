//! The queries of resource guards, their requests, and vaults' bindings to them
//! ([`GuardStore`]).

use jiff::Timestamp;
use rusqlite::{params, Row};

use super::values::{db, ms, opt_ts, ts};
use super::SqliteStore;
use crate::{GuardDecision, GuardRequestRow, GuardRow, GuardStore, Result};

const GUARD_COLS: &str = "id, name, approvers, validity_minutes, created";

fn guard_row(r: &Row) -> rusqlite::Result<GuardRow> {
    let approvers: String = r.get(2)?;
    Ok(GuardRow {
        id: r.get(0)?,
        name: r.get(1)?,
        approvers: serde_json::from_str(&approvers).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        validity_minutes: r.get(3)?,
        created: ts(r.get(4)?)?,
    })
}

const REQUEST_COLS: &str = "id, guard_id, vault_id, vault, operation, reason, requester_kind, requester_id, requester_name, created, status, decided_by, decided_by_id, decided_at, expires, used";

fn request_row(r: &Row) -> rusqlite::Result<GuardRequestRow> {
    Ok(GuardRequestRow {
        id: r.get(0)?,
        guard_id: r.get(1)?,
        vault_id: r.get(2)?,
        vault: r.get(3)?,
        operation: r.get(4)?,
        reason: r.get(5)?,
        requester_kind: r.get(6)?,
        requester_id: r.get(7)?,
        requester_name: r.get(8)?,
        created: ts(r.get(9)?)?,
        status: r.get(10)?,
        decided_by: r.get(11)?,
        decided_by_id: r.get(12)?,
        decided_at: opt_ts(r.get(13)?)?,
        expires: ts(r.get(14)?)?,
        used: opt_ts(r.get(15)?)?,
    })
}

fn approvers_json(g: &GuardRow) -> String {
    serde_json::to_string(&g.approvers).unwrap_or_else(|_| "[]".into())
}

impl GuardStore for SqliteStore {
    fn insert_guard(&self, g: &GuardRow) -> Result<()> {
        self.exec(
            &format!("INSERT INTO resource_guards ({GUARD_COLS}, name_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            params![g.id, g.name, approvers_json(g), g.validity_minutes, ms(g.created), g.name.to_lowercase()],
            &format!("a resource guard named {}", g.name),
        )
    }

    fn get_guard(&self, id: &str) -> Result<GuardRow> {
        self.one(
            format!("resource guard {id}"),
            &format!("SELECT {GUARD_COLS} FROM resource_guards WHERE id = ?1"),
            [id],
            guard_row,
        )
    }

    fn find_guard_by_name(&self, name: &str) -> Result<Option<GuardRow>> {
        self.optional(
            &format!("SELECT {GUARD_COLS} FROM resource_guards WHERE name_key = ?1"),
            [name.to_lowercase()],
            guard_row,
        )
    }

    fn list_guards(&self) -> Result<Vec<GuardRow>> {
        self.query(
            &format!("SELECT {GUARD_COLS} FROM resource_guards ORDER BY name_key"),
            [],
            guard_row,
        )
    }

    fn update_guard(&self, g: &GuardRow) -> Result<()> {
        self.change_one(
            format!("resource guard {}", g.name),
            "UPDATE resource_guards SET approvers = ?2, validity_minutes = ?3 WHERE id = ?1",
            params![g.id, approvers_json(g), g.validity_minutes],
        )
    }

    fn delete_guard(&self, id: &str) -> Result<()> {
        // Its requests go with it (ON DELETE CASCADE); a bound vault's reference
        // makes the database refuse.
        self.change_one(
            format!("resource guard {id}"),
            "DELETE FROM resource_guards WHERE id = ?1",
            [id],
        )
    }

    fn vault_guard(&self, vault_id: &str) -> Result<Option<String>> {
        self.one(
            format!("vault {vault_id}"),
            "SELECT resource_guard FROM vaults WHERE id = ?1",
            [vault_id],
            |r| r.get(0),
        )
    }

    fn set_vault_guard(&self, vault_id: &str, guard_id: Option<&str>) -> Result<()> {
        self.change_one(
            format!("vault {vault_id}"),
            "UPDATE vaults SET resource_guard = ?2 WHERE id = ?1",
            params![vault_id, guard_id],
        )
    }

    fn vaults_guarded_by(&self, guard_id: &str) -> Result<Vec<String>> {
        self.query(
            "SELECT name FROM vaults WHERE resource_guard = ?1 ORDER BY name_key",
            [guard_id],
            |r| r.get(0),
        )
    }

    fn insert_guard_request(&self, q: &GuardRequestRow) -> Result<()> {
        self.exec(
            &format!("INSERT INTO guard_requests ({REQUEST_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
            params![
                q.id, q.guard_id, q.vault_id, q.vault, q.operation, q.reason, q.requester_kind,
                q.requester_id, q.requester_name, ms(q.created), q.status, q.decided_by,
                q.decided_by_id, q.decided_at.map(ms), ms(q.expires), q.used.map(ms)
            ],
            "a request of that id",
        )
    }

    fn get_guard_request(&self, id: &str) -> Result<GuardRequestRow> {
        self.one(
            format!("request {id}"),
            &format!("SELECT {REQUEST_COLS} FROM guard_requests WHERE id = ?1"),
            [id],
            request_row,
        )
    }

    fn list_guard_requests(&self, guard_id: &str, limit: u32) -> Result<Vec<GuardRequestRow>> {
        self.query(
            &format!("SELECT {REQUEST_COLS} FROM guard_requests WHERE guard_id = ?1 ORDER BY created DESC, id LIMIT ?2"),
            params![guard_id, limit],
            request_row,
        )
    }

    fn usable_guard_requests(
        &self,
        guard_id: &str,
        vault_id: Option<&str>,
        operation: &str,
        now: Timestamp,
    ) -> Result<Vec<GuardRequestRow>> {
        self.query(
            &format!(
                "SELECT {REQUEST_COLS} FROM guard_requests
                 WHERE guard_id = ?1 AND vault_id IS ?2 AND operation = ?3
                   AND status = 'Approved' AND expires > ?4
                 ORDER BY created, id"
            ),
            params![guard_id, vault_id, operation, ms(now)],
            request_row,
        )
    }

    fn decide_guard_request(&self, id: &str, d: &GuardDecision) -> Result<bool> {
        let conn = self.conn.lock();
        let n = conn
            .execute(
                "UPDATE guard_requests SET status = ?2, decided_by = ?3, decided_by_id = ?4,
                     decided_at = ?5, expires = ?6
                 WHERE id = ?1 AND status = 'Pending' AND expires > ?5",
                params![
                    id,
                    d.status,
                    d.decided_by,
                    d.decided_by_id,
                    ms(d.decided_at),
                    ms(d.expires)
                ],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn use_guard_request(&self, id: &str, now: Timestamp) -> Result<bool> {
        let conn = self.conn.lock();
        let n = conn
            .execute(
                "UPDATE guard_requests SET status = 'Used', used = ?2
                 WHERE id = ?1 AND status = 'Approved' AND expires > ?2",
                params![id, ms(now)],
            )
            .map_err(db)?;
        Ok(n == 1)
    }
}
