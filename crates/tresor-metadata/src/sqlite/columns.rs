//! Each table's column list and how one of its result rows becomes its row
//! type; the columns are read in the order the list names them.

use rusqlite::Row;

use super::values::{hash32, json, names, opt_ts, ts};
use crate::{
    AgentRow, AuditRow, EnrollmentRow, ItemRow, JobRow, PointRow, PolicyRow, TokenRow, UserRow,
    VaultRow,
};

pub(super) fn enrollment_row(r: &Row) -> rusqlite::Result<EnrollmentRow> {
    Ok(EnrollmentRow {
        id: r.get(0)?,
        vault_id: r.get(1)?,
        secret_hash: r.get(2)?,
        expires: ts(r.get(3)?)?,
        used: r.get(4)?,
        location: r.get(5)?,
    })
}

pub(super) const TOKEN_COLS: &str = "id, name, hash, role, created, user_id, expires";
pub(super) fn token_row(r: &Row) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        hash: r.get(2)?,
        role: r.get(3)?,
        created: ts(r.get(4)?)?,
        user_id: r.get(5)?,
        expires: opt_ts(r.get(6)?)?,
    })
}

pub(super) const USER_COLS: &str =
    "id, name, password_hash, totp_secret, totp_pending, role, created";
pub(super) fn user_row(r: &Row) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        name: r.get(1)?,
        password_hash: r.get(2)?,
        totp_secret: r.get(3)?,
        totp_pending: r.get(4)?,
        role: r.get(5)?,
        created: ts(r.get(6)?)?,
    })
}

pub(super) const VAULT_COLS: &str =
    "id, name, resource_group, location, redundancy, redundancy_locked, created, cross_region_restore, soft_delete_days, soft_delete_always_on, immutability";
pub(super) fn vault_row(r: &Row) -> rusqlite::Result<VaultRow> {
    Ok(VaultRow {
        id: r.get(0)?,
        name: r.get(1)?,
        resource_group: r.get(2)?,
        location: r.get(3)?,
        redundancy: r.get(4)?,
        redundancy_locked: r.get(5)?,
        created: ts(r.get(6)?)?,
        cross_region_restore: r.get(7)?,
        soft_delete_days: r.get(8)?,
        soft_delete_always_on: r.get(9)?,
        immutability: r.get(10)?,
    })
}

pub(super) const POLICY_COLS: &str = "id, vault_id, name, body, created";
pub(super) fn policy_row(r: &Row) -> rusqlite::Result<PolicyRow> {
    Ok(PolicyRow {
        id: r.get(0)?,
        vault_id: r.get(1)?,
        name: r.get(2)?,
        body: json(r.get(3)?)?,
        created: ts(r.get(4)?)?,
    })
}

pub(super) const AGENT_COLS: &str =
    "id, host, location, credential_hash, version, registered, last_seen, vault_id";
pub(super) fn agent_row(r: &Row) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        id: r.get(0)?,
        host: r.get(1)?,
        location: r.get(2)?,
        credential_hash: r.get(3)?,
        version: r.get(4)?,
        registered: ts(r.get(5)?)?,
        last_seen: opt_ts(r.get(6)?)?,
        vault_id: r.get(7)?,
    })
}

pub(super) const ITEM_COLS: &str =
    "id, vault_id, agent_id, vm, vm_name, policy_id, state, last_window, last_backup, created, active, soft_deleted, delete_at, excluded_disks";
pub(super) fn item_row(r: &Row) -> rusqlite::Result<ItemRow> {
    Ok(ItemRow {
        id: r.get(0)?,
        vault_id: r.get(1)?,
        agent_id: r.get(2)?,
        vm: r.get(3)?,
        vm_name: r.get(4)?,
        policy_id: r.get(5)?,
        state: r.get(6)?,
        last_window: opt_ts(r.get(7)?)?,
        last_backup: opt_ts(r.get(8)?)?,
        created: ts(r.get(9)?)?,
        active: r.get(10)?,
        soft_deleted: opt_ts(r.get(11)?)?,
        delete_at: opt_ts(r.get(12)?)?,
        excluded_disks: names(r.get(13)?)?,
    })
}

pub(super) const JOB_COLS: &str = "id, vault_id, item_id, operation, status, agent_id, target_agent, created, started, ended, lease_until, body";
pub(super) fn job_row(r: &Row) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: r.get(0)?,
        vault_id: r.get(1)?,
        item_id: r.get(2)?,
        operation: r.get(3)?,
        status: r.get(4)?,
        agent_id: r.get(5)?,
        target_agent: r.get(6)?,
        created: ts(r.get(7)?)?,
        started: opt_ts(r.get(8)?)?,
        ended: opt_ts(r.get(9)?)?,
        lease_until: opt_ts(r.get(10)?)?,
        body: json(r.get(11)?)?,
    })
}

pub(super) const POINT_COLS: &str =
    "id, vault_id, item_id, created, consistency, expires, on_demand, size, body, replicated, primary_deleted, soft_deleted, soft_delete_until";
pub(super) fn point_row(r: &Row) -> rusqlite::Result<PointRow> {
    Ok(PointRow {
        id: r.get(0)?,
        vault_id: r.get(1)?,
        item_id: r.get(2)?,
        created: ts(r.get(3)?)?,
        consistency: r.get(4)?,
        expires: opt_ts(r.get(5)?)?,
        on_demand: r.get(6)?,
        size: r.get::<_, i64>(7)? as u64,
        body: json(r.get(8)?)?,
        replicated: opt_ts(r.get(9)?)?,
        primary_deleted: opt_ts(r.get(10)?)?,
        soft_deleted: opt_ts(r.get(11)?)?,
        soft_delete_until: opt_ts(r.get(12)?)?,
    })
}

pub(super) const AUDIT_COLS: &str =
    "seq, time, actor_kind, actor, origin, vault, action, object, result, detail, prev_hash, hash";
pub(super) fn audit_row(r: &Row) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: r.get::<_, i64>(0)? as u64,
        time: ts(r.get(1)?)?,
        actor_kind: r.get(2)?,
        actor: r.get(3)?,
        origin: r.get(4)?,
        vault: r.get(5)?,
        action: r.get(6)?,
        object: r.get(7)?,
        result: r.get(8)?,
        detail: r.get(9)?,
        prev_hash: hash32(r.get(10)?)?,
        hash: hash32(r.get(11)?)?,
    })
}
