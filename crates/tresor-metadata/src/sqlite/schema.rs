//! The schema: every version of it, in order, and bringing a database up to the
//! newest one this program knows (refusing a newer one).

use rusqlite::Connection;

use super::values::db;
use crate::{Result, StoreError};

/// Schema versions, in order; `user_version` counts how many were applied.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE vaults (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, name_key TEXT NOT NULL UNIQUE,
    resource_group TEXT NOT NULL, location TEXT NOT NULL, redundancy TEXT NOT NULL,
    redundancy_locked INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE policies (
    id TEXT PRIMARY KEY, vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
    name TEXT NOT NULL, name_key TEXT NOT NULL, body TEXT NOT NULL, created INTEGER NOT NULL,
    UNIQUE (vault_id, name_key));
CREATE TABLE enrollments (
    id TEXT PRIMARY KEY, vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE, expires INTEGER NOT NULL, used INTEGER NOT NULL);
CREATE TABLE agents (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, location TEXT NOT NULL,
    credential_hash TEXT NOT NULL UNIQUE, version TEXT, registered INTEGER NOT NULL,
    last_seen INTEGER);
CREATE TABLE vms (
    agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE, vm TEXT NOT NULL,
    body TEXT NOT NULL, seen INTEGER NOT NULL, PRIMARY KEY (agent_id, vm));
CREATE TABLE items (
    id TEXT PRIMARY KEY, vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
    agent_id TEXT NOT NULL, vm TEXT NOT NULL, vm_name TEXT NOT NULL, policy_id TEXT,
    state TEXT NOT NULL, last_window INTEGER, last_backup INTEGER, created INTEGER NOT NULL,
    active INTEGER NOT NULL);
-- A VM is protected by one vault at a time.
CREATE UNIQUE INDEX items_one_vault ON items (agent_id, vm) WHERE active = 1;
CREATE INDEX items_by_vault ON items (vault_id);
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
    item_id TEXT, operation TEXT NOT NULL, status TEXT NOT NULL, agent_id TEXT,
    target_agent TEXT, created INTEGER NOT NULL, started INTEGER, ended INTEGER,
    lease_until INTEGER, body TEXT NOT NULL);
CREATE INDEX jobs_by_time ON jobs (created DESC);
CREATE INDEX jobs_by_vault ON jobs (vault_id, created DESC);
CREATE INDEX jobs_waiting ON jobs (target_agent, created) WHERE agent_id IS NULL AND status = 'InProgress';
-- One unfinished backup per item.
CREATE UNIQUE INDEX jobs_one_backup ON jobs (item_id)
    WHERE operation = 'Backup' AND status IN ('InProgress', 'Cancelling');
CREATE TABLE points (
    id TEXT PRIMARY KEY, vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
    item_id TEXT NOT NULL, created INTEGER NOT NULL, consistency TEXT NOT NULL,
    expires INTEGER, on_demand INTEGER NOT NULL, size INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX points_by_item ON points (item_id, created);
"#,
    r#"
-- Job lists are read newest first, per vault or per item, with ties broken by id:
-- indexes in that order let SQLite stop after LIMIT rows instead of sorting them all.
DROP INDEX jobs_by_time;
DROP INDEX jobs_by_vault;
CREATE INDEX jobs_by_time ON jobs (created DESC, id);
CREATE INDEX jobs_by_vault ON jobs (vault_id, created DESC, id);
CREATE INDEX jobs_by_item ON jobs (item_id, created DESC, id);
"#,
    r#"
-- Geo-redundant storage: whether points may be read from the secondary, when each
-- point reached the secondary, and when it was deleted from the primary (the row then
-- stays until the soft-delete window ends and the secondary copy goes too).
ALTER TABLE vaults ADD COLUMN cross_region_restore INTEGER NOT NULL DEFAULT 0;
ALTER TABLE points ADD COLUMN replicated INTEGER;
ALTER TABLE points ADD COLUMN primary_deleted INTEGER;
CREATE TABLE replication (
    vault_id TEXT PRIMARY KEY REFERENCES vaults(id) ON DELETE CASCADE, body TEXT NOT NULL);
"#,
    r#"
-- Vault credentials name the location of the agent that registers with them (the
-- operator's word, not the agent's); NULL means the vault's location.
ALTER TABLE enrollments ADD COLUMN location TEXT;
"#,
    r#"
-- The audit log: every change, who, from where, with its result; each entry's hash
-- covers it and the previous entry's hash (FORMAT.md, appendix "Audit log").
-- Appended only: the store has no statement that updates or deletes a row here.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL, origin TEXT NOT NULL, vault TEXT NOT NULL, action TEXT NOT NULL,
    object TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
CREATE INDEX audit_by_vault ON audit (vault, seq);
"#,
    r#"
-- A token's role column holds its role assignments as JSON ([{"role", "scope"}], see
-- tresor_domain::access); every token made before roles was an administrator.
UPDATE tokens SET role = '[{"role":"Owner","scope":"/"}]' WHERE role = 'admin';
"#,
    r#"
-- Users: a name (unique whatever the case of its letters: name_key is it in lower
-- case), an Argon2id password hash (PHC string), a TOTP secret (base32) once one is
-- confirmed and one waiting for its first code, and role assignments as JSON like
-- tokens'. A token may belong to a user (user_id; NULL: the installation's).
CREATE TABLE users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, name_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL, totp_secret TEXT, totp_pending TEXT,
    role TEXT NOT NULL, created INTEGER NOT NULL);
ALTER TABLE tokens ADD COLUMN user_id TEXT REFERENCES users(id) ON DELETE CASCADE;
"#,
    r#"
-- Soft delete: deleting an item's backup data keeps the item and its points, marked
-- (when, and until when), for the vault's soft-delete period (14 to 180 days; always
-- on); they are purged when it ends.
ALTER TABLE vaults ADD COLUMN soft_delete_days INTEGER NOT NULL DEFAULT 14;
ALTER TABLE vaults ADD COLUMN soft_delete_always_on INTEGER NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN soft_deleted INTEGER;
ALTER TABLE items ADD COLUMN delete_at INTEGER;
ALTER TABLE points ADD COLUMN soft_deleted INTEGER;
ALTER TABLE points ADD COLUMN soft_delete_until INTEGER;
"#,
    r#"
-- A vault's immutability (Disabled, Enabled, Locked; tresor_domain::Immutability).
ALTER TABLE vaults ADD COLUMN immutability TEXT NOT NULL DEFAULT 'Disabled';
"#,
    r#"
-- Resource guards (multi-user authorization): a guard's approvers (user ids, JSON)
-- and how long a request waits and an approval lasts; requests for approval of one
-- critical operation (on a vault, or on the guard itself: vault_id NULL), their
-- decision and use; a vault's binding to a guard (a bound guard cannot be deleted).
CREATE TABLE resource_guards (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, name_key TEXT NOT NULL UNIQUE,
    approvers TEXT NOT NULL, validity_minutes INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE guard_requests (
    id TEXT PRIMARY KEY,
    guard_id TEXT NOT NULL REFERENCES resource_guards(id) ON DELETE CASCADE,
    vault_id TEXT, vault TEXT, operation TEXT NOT NULL, reason TEXT NOT NULL,
    requester_kind TEXT NOT NULL, requester_id TEXT NOT NULL, requester_name TEXT NOT NULL,
    created INTEGER NOT NULL, status TEXT NOT NULL, decided_by TEXT, decided_by_id TEXT,
    decided_at INTEGER, expires INTEGER NOT NULL, used INTEGER);
CREATE INDEX guard_requests_by_guard ON guard_requests (guard_id, created DESC, id);
ALTER TABLE vaults ADD COLUMN resource_guard TEXT REFERENCES resource_guards(id);
"#,
    r#"
-- Tokens of users expire when asked to (expires: NULL, never). The TOTP replay
-- guard: the last time step whose code a user's sign-in used (a code is taken once).
-- The vault whose credentials file registered an agent (NULL: registered before
-- this, or the server's own agent): readers of that vault see the agent.
ALTER TABLE tokens ADD COLUMN expires INTEGER;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
ALTER TABLE agents ADD COLUMN vault_id TEXT REFERENCES vaults(id) ON DELETE SET NULL;
"#,
    r#"
-- Selective disk backup: the disks a protected item leaves out of its points, a JSON
-- list of the VM's names for them (["vdb"]); [] backs every disk up.
ALTER TABLE items ADD COLUMN excluded_disks TEXT NOT NULL DEFAULT '[]';
"#,
];

/// Applies the migrations a database at `user_version` has not had yet, each in
/// its own transaction.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "the metadata database has schema version {version}, newer than this program knows ({}); use a newer tresor",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction().map_err(db)?;
        tx.execute_batch(sql).map_err(db)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(db)?;
        tx.commit().map_err(db)?;
        tracing::info!(version = i + 1, "metadata schema migrated");
    }
    Ok(())
}
