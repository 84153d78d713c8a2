//! The queries of every table, in the order of the [`MetadataStore`] trait.

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use super::columns::*;
use super::values::{db, hash32, json, ms, names_text, ts, unique};
use super::SqliteStore;
use crate::{
    audit, AgentRow, AuditFilter, AuditRow, EnrollmentRow, ItemRow, JobFilter, JobRow,
    MetadataStore, NewAudit, PointRow, PolicyRow, Result, StoreError, TokenRow, UserRow, VaultRow,
    VmRow,
};

impl MetadataStore for SqliteStore {
    fn get_setting(&self, key: &str) -> Result<Option<String>> {
        self.optional("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.exec(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
            "setting",
        )
    }

    fn insert_token(&self, t: &TokenRow) -> Result<()> {
        self.exec(
            &format!("INSERT INTO tokens ({TOKEN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                t.id,
                t.name,
                t.hash,
                t.role,
                ms(t.created),
                t.user_id,
                t.expires.map(ms)
            ],
            "token",
        )
    }

    fn find_token(&self, hash: &str) -> Result<Option<TokenRow>> {
        self.optional(
            &format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"),
            [hash],
            token_row,
        )
    }

    fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        self.query(
            &format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY created, id"),
            [],
            token_row,
        )
    }

    fn delete_token(&self, id: &str) -> Result<()> {
        self.change_one(
            format!("token {id}"),
            "DELETE FROM tokens WHERE id = ?1",
            [id],
        )
    }

    fn insert_user(&self, u: &UserRow) -> Result<()> {
        self.exec(
            &format!(
                "INSERT INTO users ({USER_COLS}, name_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                u.id,
                u.name,
                u.password_hash,
                u.totp_secret,
                u.totp_pending,
                u.role,
                ms(u.created),
                u.name.to_lowercase()
            ],
            &format!("a user named {}", u.name),
        )
    }

    fn find_user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        self.optional(
            &format!("SELECT {USER_COLS} FROM users WHERE name_key = ?1"),
            [name.to_lowercase()],
            user_row,
        )
    }

    fn list_users(&self) -> Result<Vec<UserRow>> {
        self.query(
            &format!("SELECT {USER_COLS} FROM users ORDER BY name_key"),
            [],
            user_row,
        )
    }

    fn update_user(&self, u: &UserRow) -> Result<()> {
        self.change_one(
            format!("user {}", u.name),
            "UPDATE users SET password_hash = ?2, totp_secret = ?3, totp_pending = ?4, role = ?5 WHERE id = ?1",
            params![u.id, u.password_hash, u.totp_secret, u.totp_pending, u.role],
        )
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRow>> {
        self.optional(
            &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
            [id],
            user_row,
        )
    }

    fn accept_totp_step(&self, user_id: &str, step: u64) -> Result<bool> {
        let step = i64::try_from(step)
            .map_err(|_| StoreError::Database(format!("TOTP step {step} out of range")))?;
        let conn = self.conn.lock();
        let changed = conn
            .execute(
                "UPDATE users SET totp_last_step = ?2
                 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
                params![user_id, step],
            )
            .map_err(db)?;
        Ok(changed == 1)
    }

    fn delete_user(&self, id: &str) -> Result<()> {
        // Its tokens go with it (tokens.user_id is ON DELETE CASCADE).
        self.change_one(
            format!("user {id}"),
            "DELETE FROM users WHERE id = ?1",
            [id],
        )
    }

    fn insert_vault(&self, v: &VaultRow) -> Result<()> {
        self.exec(
            "INSERT INTO vaults (id, name, name_key, resource_group, location, redundancy, redundancy_locked, created, cross_region_restore, soft_delete_days, soft_delete_always_on, immutability)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![v.id, v.name, v.name.to_lowercase(), v.resource_group, v.location, v.redundancy, v.redundancy_locked, ms(v.created), v.cross_region_restore, v.soft_delete_days, v.soft_delete_always_on, v.immutability],
            &format!("a vault named {}", v.name),
        )
    }

    fn get_vault(&self, id: &str) -> Result<VaultRow> {
        self.one(
            format!("vault {id}"),
            &format!("SELECT {VAULT_COLS} FROM vaults WHERE id = ?1"),
            [id],
            vault_row,
        )
    }

    fn find_vault_by_name(&self, name: &str) -> Result<Option<VaultRow>> {
        self.optional(
            &format!("SELECT {VAULT_COLS} FROM vaults WHERE name_key = ?1"),
            [name.to_lowercase()],
            vault_row,
        )
    }

    fn list_vaults(&self) -> Result<Vec<VaultRow>> {
        self.query(
            &format!("SELECT {VAULT_COLS} FROM vaults ORDER BY name_key"),
            [],
            vault_row,
        )
    }

    fn update_vault(&self, v: &VaultRow) -> Result<()> {
        self.change_one(
            format!("vault {}", v.id),
            "UPDATE vaults SET resource_group = ?2, location = ?3, redundancy = ?4, redundancy_locked = ?5, cross_region_restore = ?6, soft_delete_days = ?7, soft_delete_always_on = ?8, immutability = ?9 WHERE id = ?1",
            params![v.id, v.resource_group, v.location, v.redundancy, v.redundancy_locked, v.cross_region_restore, v.soft_delete_days, v.soft_delete_always_on, v.immutability],
        )
    }

    fn delete_vault(&self, id: &str) -> Result<()> {
        self.change_one(
            format!("vault {id}"),
            "DELETE FROM vaults WHERE id = ?1",
            [id],
        )
    }

    fn insert_policy(&self, p: &PolicyRow) -> Result<()> {
        self.exec(
            "INSERT INTO policies (id, vault_id, name, name_key, body, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![p.id, p.vault_id, p.name, p.name.to_lowercase(), p.body.to_string(), ms(p.created)],
            &format!("a policy named {} in this vault", p.name),
        )
    }

    fn get_policy(&self, id: &str) -> Result<PolicyRow> {
        self.one(
            format!("policy {id}"),
            &format!("SELECT {POLICY_COLS} FROM policies WHERE id = ?1"),
            [id],
            policy_row,
        )
    }

    fn find_policy(&self, vault_id: &str, name: &str) -> Result<Option<PolicyRow>> {
        self.optional(
            &format!("SELECT {POLICY_COLS} FROM policies WHERE vault_id = ?1 AND name_key = ?2"),
            [vault_id, &name.to_lowercase()],
            policy_row,
        )
    }

    fn list_policies(&self, vault_id: &str) -> Result<Vec<PolicyRow>> {
        self.query(
            &format!("SELECT {POLICY_COLS} FROM policies WHERE vault_id = ?1 ORDER BY name_key"),
            [vault_id],
            policy_row,
        )
    }

    fn update_policy(&self, p: &PolicyRow) -> Result<()> {
        self.change_one(
            format!("policy {}", p.id),
            "UPDATE policies SET body = ?2 WHERE id = ?1",
            params![p.id, p.body.to_string()],
        )
    }

    fn delete_policy(&self, id: &str) -> Result<()> {
        self.change_one(
            format!("policy {id}"),
            "DELETE FROM policies WHERE id = ?1",
            [id],
        )
    }

    fn items_using_policy(&self, policy_id: &str) -> Result<Vec<ItemRow>> {
        self.query(
            &format!("SELECT {ITEM_COLS} FROM items WHERE policy_id = ?1 AND active = 1"),
            [policy_id],
            item_row,
        )
    }

    fn insert_enrollment(&self, e: &EnrollmentRow) -> Result<()> {
        self.exec(
            "INSERT INTO enrollments (id, vault_id, secret_hash, expires, used, location) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.id, e.vault_id, e.secret_hash, ms(e.expires), e.used, e.location],
            "enrollment",
        )
    }

    fn find_enrollment(&self, secret_hash: &str) -> Result<Option<EnrollmentRow>> {
        let conn = self.conn.lock();
        conn.query_row(
            "SELECT id, vault_id, secret_hash, expires, used, location FROM enrollments
             WHERE secret_hash = ?1",
            params![secret_hash],
            enrollment_row,
        )
        .optional()
        .map_err(db)
    }

    fn consume_enrollment(
        &self,
        secret_hash: &str,
        now: Timestamp,
    ) -> Result<Option<EnrollmentRow>> {
        let conn = self.conn.lock();
        let tx = conn.unchecked_transaction().map_err(db)?;
        let found = tx
            .query_row(
                "SELECT id, vault_id, secret_hash, expires, used, location FROM enrollments
                 WHERE secret_hash = ?1 AND used = 0 AND expires > ?2",
                params![secret_hash, ms(now)],
                |r| {
                    Ok(EnrollmentRow {
                        used: true,
                        ..enrollment_row(r)?
                    })
                },
            )
            .optional()
            .map_err(db)?;
        if let Some(e) = &found {
            tx.execute("UPDATE enrollments SET used = 1 WHERE id = ?1", [&e.id])
                .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(found)
    }

    fn insert_agent(&self, a: &AgentRow) -> Result<()> {
        self.exec(
            &format!("INSERT INTO agents ({AGENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![
                a.id,
                a.host,
                a.location,
                a.credential_hash,
                a.version,
                ms(a.registered),
                a.last_seen.map(ms),
                a.vault_id
            ],
            "agent",
        )
    }

    fn get_agent(&self, id: &str) -> Result<AgentRow> {
        self.one(
            format!("agent {id}"),
            &format!("SELECT {AGENT_COLS} FROM agents WHERE id = ?1"),
            [id],
            agent_row,
        )
    }

    fn find_agent_by_credential(&self, hash: &str) -> Result<Option<AgentRow>> {
        self.optional(
            &format!("SELECT {AGENT_COLS} FROM agents WHERE credential_hash = ?1"),
            [hash],
            agent_row,
        )
    }

    fn list_agents(&self) -> Result<Vec<AgentRow>> {
        self.query(
            &format!("SELECT {AGENT_COLS} FROM agents ORDER BY host"),
            [],
            agent_row,
        )
    }

    fn touch_agent(&self, id: &str, seen: Timestamp, version: Option<&str>) -> Result<()> {
        self.change_one(
            format!("agent {id}"),
            "UPDATE agents SET last_seen = ?2, version = COALESCE(?3, version) WHERE id = ?1",
            params![id, ms(seen), version],
        )
    }

    fn replace_inventory(&self, agent_id: &str, vms: &[VmRow]) -> Result<()> {
        let conn = self.conn.lock();
        let tx = conn.unchecked_transaction().map_err(db)?;
        tx.execute("DELETE FROM vms WHERE agent_id = ?1", [agent_id])
            .map_err(db)?;
        for v in vms {
            tx.execute(
                "INSERT INTO vms (agent_id, vm, body, seen) VALUES (?1, ?2, ?3, ?4)",
                params![agent_id, v.vm, v.body.to_string(), ms(v.seen)],
            )
            .map_err(unique(format!("VM {} reported twice", v.vm)))?;
        }
        tx.commit().map_err(db)
    }

    fn list_inventory(&self) -> Result<Vec<VmRow>> {
        self.query(
            "SELECT agent_id, vm, body, seen FROM vms ORDER BY agent_id, vm",
            [],
            |r| {
                Ok(VmRow {
                    agent_id: r.get(0)?,
                    vm: r.get(1)?,
                    body: json(r.get(2)?)?,
                    seen: ts(r.get(3)?)?,
                })
            },
        )
    }

    fn insert_item(&self, i: &ItemRow) -> Result<()> {
        self.exec(
            &format!("INSERT INTO items ({ITEM_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
            params![i.id, i.vault_id, i.agent_id, i.vm, i.vm_name, i.policy_id, i.state, i.last_window.map(ms), i.last_backup.map(ms), ms(i.created), i.active, i.soft_deleted.map(ms), i.delete_at.map(ms), names_text(&i.excluded_disks)],
            &format!("protection of VM {}", i.vm_name),
        )
    }

    fn get_item(&self, id: &str) -> Result<ItemRow> {
        self.one(
            format!("protected item {id}"),
            &format!("SELECT {ITEM_COLS} FROM items WHERE id = ?1"),
            [id],
            item_row,
        )
    }

    fn find_active_item(&self, agent_id: &str, vm: &str) -> Result<Option<ItemRow>> {
        self.optional(
            &format!(
                "SELECT {ITEM_COLS} FROM items WHERE agent_id = ?1 AND vm = ?2 AND active = 1"
            ),
            [agent_id, vm],
            item_row,
        )
    }

    fn list_items(&self, vault_id: &str, include_inactive: bool) -> Result<Vec<ItemRow>> {
        self.query(
            &format!(
                "SELECT {ITEM_COLS} FROM items WHERE vault_id = ?1 AND (active = 1 OR ?2) ORDER BY vm_name"
            ),
            params![vault_id, include_inactive],
            item_row,
        )
    }

    fn list_active_items(&self) -> Result<Vec<ItemRow>> {
        self.query(
            &format!("SELECT {ITEM_COLS} FROM items WHERE active = 1 ORDER BY created"),
            [],
            item_row,
        )
    }

    fn update_item(&self, i: &ItemRow) -> Result<()> {
        let conn = self.conn.lock();
        let n = conn
            .execute(
                "UPDATE items SET policy_id = ?2, state = ?3, last_window = ?4, last_backup = ?5, active = ?6, vm_name = ?7, soft_deleted = ?8, delete_at = ?9, excluded_disks = ?10 WHERE id = ?1",
                params![i.id, i.policy_id, i.state, i.last_window.map(ms), i.last_backup.map(ms), i.active, i.vm_name, i.soft_deleted.map(ms), i.delete_at.map(ms), names_text(&i.excluded_disks)],
            )
            .map_err(unique(format!("protection of VM {}", i.vm_name)))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: format!("protected item {}", i.id),
            });
        }
        Ok(())
    }

    fn insert_job(&self, j: &JobRow) -> Result<()> {
        self.exec(
            &format!("INSERT INTO jobs ({JOB_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
            params![j.id, j.vault_id, j.item_id, j.operation, j.status, j.agent_id, j.target_agent, ms(j.created), j.started.map(ms), j.ended.map(ms), j.lease_until.map(ms), j.body.to_string()],
            "an unfinished backup job of this item",
        )
    }

    fn get_job(&self, id: &str) -> Result<JobRow> {
        self.one(
            format!("job {id}"),
            &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
            [id],
            job_row,
        )
    }

    fn list_jobs(&self, f: &JobFilter) -> Result<Vec<JobRow>> {
        let mut sql = format!("SELECT {JOB_COLS} FROM jobs WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut add = |cond: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ?{}", args.len()));
        };
        if let Some(v) = &f.vault_id {
            add("vault_id =", v.clone().into());
        }
        if let Some(v) = &f.item_id {
            add("item_id =", v.clone().into());
        }
        if let Some(v) = &f.status {
            add("status =", v.clone().into());
        }
        if let Some(v) = &f.operation {
            add("operation =", v.clone().into());
        }
        if let Some(v) = f.from {
            add("created >=", ms(v).into());
        }
        if let Some(v) = f.to {
            add("created <", ms(v).into());
        }
        sql.push_str(&format!(
            " ORDER BY created DESC, id LIMIT {}",
            f.limit.unwrap_or(100).min(10_000)
        ));
        self.query(&sql, rusqlite::params_from_iter(args), job_row)
    }

    fn update_job(&self, j: &JobRow) -> Result<()> {
        self.change_one(
            format!("job {}", j.id),
            "UPDATE jobs SET status = ?2, agent_id = ?3, started = ?4, ended = ?5, lease_until = ?6, body = ?7 WHERE id = ?1",
            params![j.id, j.status, j.agent_id, j.started.map(ms), j.ended.map(ms), j.lease_until.map(ms), j.body.to_string()],
        )
    }

    fn claim_job(
        &self,
        agent_id: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<JobRow>> {
        let conn = self.conn.lock();
        let tx = conn.unchecked_transaction().map_err(db)?;
        let job = tx
            .query_row(
                &format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE agent_id IS NULL AND status = 'InProgress'
                     AND target_agent = ?1 ORDER BY created LIMIT 1"
                ),
                [agent_id],
                job_row,
            )
            .optional()
            .map_err(db)?;
        let Some(mut job) = job else {
            return Ok(None);
        };
        job.agent_id = Some(agent_id.to_string());
        job.started = Some(now);
        job.lease_until = Some(lease_until);
        tx.execute(
            "UPDATE jobs SET agent_id = ?2, started = ?3, lease_until = ?4 WHERE id = ?1",
            params![job.id, agent_id, ms(now), ms(lease_until)],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Some(job))
    }

    fn jobs_with_expired_lease(&self, now: Timestamp) -> Result<Vec<JobRow>> {
        self.query(
            &format!(
                "SELECT {JOB_COLS} FROM jobs WHERE status IN ('InProgress', 'Cancelling')
                 AND lease_until IS NOT NULL AND lease_until < ?1"
            ),
            [ms(now)],
            job_row,
        )
    }

    fn running_jobs_of_agent(&self, agent_id: &str) -> Result<Vec<JobRow>> {
        self.query(
            &format!(
                "SELECT {JOB_COLS} FROM jobs WHERE agent_id = ?1 AND status IN ('InProgress', 'Cancelling')"
            ),
            [agent_id],
            job_row,
        )
    }

    fn insert_point(&self, p: &PointRow) -> Result<()> {
        self.exec(
            &format!(
                "INSERT INTO points ({POINT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ),
            params![
                p.id,
                p.vault_id,
                p.item_id,
                ms(p.created),
                p.consistency,
                p.expires.map(ms),
                p.on_demand,
                p.size as i64,
                p.body.to_string(),
                p.replicated.map(ms),
                p.primary_deleted.map(ms),
                p.soft_deleted.map(ms),
                p.soft_delete_until.map(ms)
            ],
            &format!("recovery point {}", p.id),
        )
    }

    fn get_point(&self, id: &str) -> Result<PointRow> {
        self.one(
            format!("recovery point {id}"),
            &format!("SELECT {POINT_COLS} FROM points WHERE id = ?1"),
            [id],
            point_row,
        )
    }

    fn list_points(&self, item_id: &str) -> Result<Vec<PointRow>> {
        self.query(
            &format!("SELECT {POINT_COLS} FROM points WHERE item_id = ?1 AND primary_deleted IS NULL ORDER BY created"),
            [item_id],
            point_row,
        )
    }

    fn list_vault_points(&self, vault_id: &str) -> Result<Vec<PointRow>> {
        self.query(
            &format!("SELECT {POINT_COLS} FROM points WHERE vault_id = ?1 AND primary_deleted IS NULL ORDER BY created"),
            [vault_id],
            point_row,
        )
    }

    fn list_vault_points_with_deleted(&self, vault_id: &str) -> Result<Vec<PointRow>> {
        self.query(
            &format!("SELECT {POINT_COLS} FROM points WHERE vault_id = ?1 ORDER BY created"),
            [vault_id],
            point_row,
        )
    }

    fn update_point(&self, p: &PointRow) -> Result<()> {
        self.change_one(
            format!("recovery point {}", p.id),
            "UPDATE points SET expires = ?2, body = ?3, replicated = ?4, primary_deleted = ?5, soft_deleted = ?6, soft_delete_until = ?7 WHERE id = ?1",
            params![p.id, p.expires.map(ms), p.body.to_string(), p.replicated.map(ms), p.primary_deleted.map(ms), p.soft_deleted.map(ms), p.soft_delete_until.map(ms)],
        )
    }

    fn delete_point(&self, id: &str) -> Result<()> {
        self.change_one(
            format!("recovery point {id}"),
            "DELETE FROM points WHERE id = ?1",
            [id],
        )
    }

    fn get_replication(&self, vault_id: &str) -> Result<Option<Value>> {
        self.optional(
            "SELECT body FROM replication WHERE vault_id = ?1",
            [vault_id],
            |r| json(r.get(0)?),
        )
    }

    fn put_replication(&self, vault_id: &str, body: &Value) -> Result<()> {
        self.exec(
            "INSERT INTO replication (vault_id, body) VALUES (?1, ?2)
             ON CONFLICT (vault_id) DO UPDATE SET body = excluded.body",
            params![vault_id, body.to_string()],
            &format!("replication state of vault {vault_id}"),
        )
    }

    fn append_audit(&self, entry: &NewAudit) -> Result<u64> {
        let conn = self.conn.lock();
        // IMMEDIATE: the write lock is taken before the last hash is read, so no other
        // writer (another process on the same file) can append between the two.
        let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
            .map_err(db)?;
        let last: Option<(i64, Vec<u8>)> = tx
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        let (seq, prev) = match last {
            None => (1, audit::GENESIS),
            Some((seq, hash)) => (seq as u64 + 1, hash32(hash).map_err(db)?),
        };
        let row = audit::chain(entry, seq, prev);
        tx.execute(
            &format!(
                "INSERT INTO audit ({AUDIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ),
            params![
                row.seq as i64,
                ms(row.time),
                row.actor_kind,
                row.actor,
                row.origin,
                row.vault,
                row.action,
                row.object,
                row.result,
                row.detail,
                &row.prev_hash[..],
                &row.hash[..]
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(seq)
    }

    fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRow>> {
        let limit = f.limit.unwrap_or(100) as i64;
        let vault = f.vault.clone();
        let by_vault = if vault.is_some() {
            "AND vault = ?2 COLLATE NOCASE"
        } else {
            "AND ?2 IS NULL"
        };
        match f.from {
            Some(from) => self.query(
                &format!(
                    "SELECT {AUDIT_COLS} FROM audit WHERE seq >= ?1 {by_vault} ORDER BY seq LIMIT ?3"
                ),
                params![from.min(i64::MAX as u64) as i64, vault, limit],
                audit_row,
            ),
            None => {
                let mut rows = self.query(
                    &format!(
                        "SELECT {AUDIT_COLS} FROM audit WHERE ?1 IS NULL {by_vault} ORDER BY seq DESC LIMIT ?3"
                    ),
                    params![Option::<i64>::None, vault, limit],
                    audit_row,
                )?;
                rows.reverse();
                Ok(rows)
            }
        }
    }
}
