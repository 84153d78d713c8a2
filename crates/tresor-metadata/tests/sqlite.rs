//! The SQLite store against a real database file: the catalogue's rules that the
//! database itself enforces, and persistence across reopening.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tresor_metadata::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn vault(id: &str, name: &str) -> VaultRow {
    VaultRow {
        id: id.into(),
        name: name.into(),
        resource_group: "rg".into(),
        location: "local".into(),
        redundancy: "GeoRedundant".into(),
        redundancy_locked: false,
        cross_region_restore: false,
        soft_delete_days: 14,
        soft_delete_always_on: false,
        immutability: "Disabled".into(),
        created: t("2026-01-01T00:00:00Z"),
    }
}

fn item(id: &str, vault_id: &str, vm: &str) -> ItemRow {
    ItemRow {
        id: id.into(),
        vault_id: vault_id.into(),
        agent_id: "a1".into(),
        vm: vm.into(),
        vm_name: vm.into(),
        policy_id: None,
        state: "InitialBackupPending".into(),
        last_window: None,
        last_backup: None,
        created: t("2026-01-01T00:00:00Z"),
        active: true,
        soft_deleted: None,
        delete_at: None,
        excluded_disks: Vec::new(),
    }
}

fn job(id: &str, item: &str, op: &str, created: &str) -> JobRow {
    JobRow {
        id: id.into(),
        vault_id: "v2".into(),
        item_id: Some(item.into()),
        operation: op.into(),
        status: "InProgress".into(),
        agent_id: None,
        target_agent: Some("a1".into()),
        created: t(created),
        started: None,
        ended: None,
        lease_until: None,
        body: json!({}),
    }
}

#[test]
fn catalogue_rules_hold_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.insert_vault(&vault("v1", "Prod-Vault")).unwrap();
        // Names are unique whatever their case.
        assert!(matches!(
            s.insert_vault(&vault("v2", "prod-vault")),
            Err(StoreError::Conflict { .. })
        ));
        s.insert_vault(&vault("v2", "other")).unwrap();
        assert_eq!(
            s.find_vault_by_name("PROD-VAULT").unwrap().unwrap().id,
            "v1"
        );
        s.insert_agent(&AgentRow {
            id: "a1".into(),
            host: "kvm1".into(),
            location: "local".into(),
            credential_hash: "h".into(),
            version: None,
            registered: t("2026-01-01T00:00:00Z"),
            last_seen: None,
            vault_id: Some("v1".into()),
        })
        .unwrap();

        // A VM is protected by one vault at a time.
        s.insert_item(&item("i1", "v1", "web")).unwrap();
        assert!(matches!(
            s.insert_item(&item("i2", "v2", "web")),
            Err(StoreError::Conflict { .. })
        ));
        let mut stopped = s.get_item("i1").unwrap();
        stopped.active = false;
        s.update_item(&stopped).unwrap();
        s.insert_item(&item("i2", "v2", "web")).unwrap();

        // One unfinished backup per item.
        s.insert_job(&job("j1", "i2", "Backup", "2026-01-02T00:00:00Z"))
            .unwrap();
        assert!(matches!(
            s.insert_job(&job("j2", "i2", "Backup", "2026-01-02T00:01:00Z")),
            Err(StoreError::Conflict { .. })
        ));
        s.insert_job(&job("j3", "i2", "Restore", "2026-01-02T00:02:00Z"))
            .unwrap();
        s.set_setting("k", "v").unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.get_setting("k").unwrap().as_deref(), Some("v"));
    assert_eq!(s.list_vaults().unwrap().len(), 2);

    // Claims go to the target agent, oldest first, once.
    let now = t("2026-01-02T01:00:00Z");
    let lease = now + SignedDuration::from_secs(120);
    let first = s.claim_job("a1", now, lease).unwrap().unwrap();
    assert_eq!(first.id, "j1");
    assert_eq!(s.claim_job("a1", now, lease).unwrap().unwrap().id, "j3");
    assert!(s.claim_job("a1", now, lease).unwrap().is_none());
    assert!(s.claim_job("other", now, lease).unwrap().is_none());
    assert_eq!(s.running_jobs_of_agent("a1").unwrap().len(), 2);
    let expired = s
        .jobs_with_expired_lease(lease + SignedDuration::from_secs(1))
        .unwrap();
    assert_eq!(expired.len(), 2);

    // Finished, the item may back up again.
    let mut done = s.get_job("j1").unwrap();
    done.status = "Completed".into();
    s.update_job(&done).unwrap();
    s.insert_job(&job("j4", "i2", "Backup", "2026-01-03T00:00:00Z"))
        .unwrap();

    // Newest first, filtered.
    let all = s.list_jobs(&JobFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["j4", "j3", "j1"]
    );
    let backups = s
        .list_jobs(&JobFilter {
            operation: Some("Backup".into()),
            status: Some("Completed".into()),
            ..JobFilter::default()
        })
        .unwrap();
    assert_eq!(backups.len(), 1);

    // Enrollment secrets work once, and not after they expire.
    s.insert_enrollment(&EnrollmentRow {
        id: "e1".into(),
        vault_id: "v1".into(),
        secret_hash: "s".into(),
        expires: t("2026-01-05T00:00:00Z"),
        used: false,
        location: Some("westeurope".into()),
    })
    .unwrap();
    assert!(s
        .consume_enrollment("s", t("2026-01-06T00:00:00Z"))
        .unwrap()
        .is_none());
    let used = s
        .consume_enrollment("s", t("2026-01-04T00:00:00Z"))
        .unwrap()
        .unwrap();
    assert_eq!(used.location.as_deref(), Some("westeurope"));
    // Found even when used, so that the server can say why it is refused.
    let found = s.find_enrollment("s").unwrap().unwrap();
    assert!(found.used && found.vault_id == "v1");
    assert!(s.find_enrollment("other").unwrap().is_none());
    assert!(s
        .consume_enrollment("s", t("2026-01-04T00:00:00Z"))
        .unwrap()
        .is_none());

    // Deleting a vault deletes what is in it.
    s.delete_vault("v2").unwrap();
    assert!(s.list_jobs(&JobFilter::default()).unwrap().is_empty());
    assert!(matches!(s.get_item("i2"), Err(StoreError::NotFound { .. })));
}

#[test]
fn points_deleted_from_the_primary_stay_listed_for_the_secondary() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("m.db")).unwrap();
    s.insert_vault(&vault("v1", "Vault-1")).unwrap();
    s.insert_item(&item("i1", "v1", "vm1")).unwrap();
    let point = |id: &str, created: &str| PointRow {
        id: id.into(),
        vault_id: "v1".into(),
        item_id: "i1".into(),
        created: t(created),
        consistency: "CrashConsistent".into(),
        expires: None,
        on_demand: false,
        size: 1,
        body: json!({}),
        replicated: None,
        primary_deleted: None,
        soft_deleted: None,
        soft_delete_until: None,
    };
    s.insert_point(&point("p1", "2026-01-02T00:00:00Z"))
        .unwrap();
    s.insert_point(&point("p2", "2026-01-03T00:00:00Z"))
        .unwrap();
    let mut p1 = s.get_point("p1").unwrap();
    p1.replicated = Some(t("2026-01-02T00:01:00Z"));
    p1.primary_deleted = Some(t("2026-01-04T00:00:00Z"));
    s.update_point(&p1).unwrap();

    let ids = |rows: Vec<PointRow>| rows.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_points("i1").unwrap()), ["p2"]);
    assert_eq!(ids(s.list_vault_points("v1").unwrap()), ["p2"]);
    assert_eq!(
        ids(s.list_vault_points_with_deleted("v1").unwrap()),
        ["p1", "p2"]
    );
    assert_eq!(s.get_point("p1").unwrap(), p1);

    // The replication document round-trips and is replaced whole.
    assert_eq!(s.get_replication("v1").unwrap(), None);
    s.put_replication("v1", &json!({"failures": 1})).unwrap();
    s.put_replication("v1", &json!({"failures": 2})).unwrap();
    assert_eq!(
        s.get_replication("v1").unwrap(),
        Some(json!({"failures": 2}))
    );
    let mut v = s.get_vault("v1").unwrap();
    v.cross_region_restore = true;
    s.update_vault(&v).unwrap();
    assert!(s.get_vault("v1").unwrap().cross_region_restore);
    s.delete_vault("v1").unwrap();
    assert_eq!(s.get_replication("v1").unwrap(), None);
}

fn audit_entry(vault: &str, action: &str, object: &str) -> NewAudit {
    NewAudit {
        time: t("2026-02-01T12:00:00.5Z"),
        actor_kind: "admin".into(),
        actor: "admin".into(),
        origin: "127.0.0.1".into(),
        vault: vault.into(),
        action: action.into(),
        object: object.into(),
        result: "Succeeded".into(),
        detail: String::new(),
    }
}

#[test]
fn the_audit_log_is_a_chain_that_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(
            s.append_audit(&audit_entry("v1", "vault.create", "v1"))
                .unwrap(),
            1
        );
        assert_eq!(
            s.append_audit(&audit_entry("", "token.create", "ops"))
                .unwrap(),
            2
        );
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(
        s.append_audit(&audit_entry("V1", "vault.delete", "v1"))
            .unwrap(),
        3
    );
    let all = s.list_audit(&AuditFilter::default()).unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[0].prev_hash, audit::GENESIS);
    assert_eq!(all[1].prev_hash, all[0].hash);
    assert_eq!(all[0].time, t("2026-02-01T12:00:00.5Z"));
    let v = audit::verify_chain(&all);
    assert_eq!((v.entries, v.broken), (3, None));
    // Paging, newest, by vault.
    let page = s
        .list_audit(&AuditFilter {
            from: Some(2),
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    let newest = s
        .list_audit(&AuditFilter {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(newest.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
    let of_v1 = s
        .list_audit(&AuditFilter {
            vault: Some("v1".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(of_v1.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 3]);
    drop(s);

    // Edited behind the store's back: the edited entry is named.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE audit SET object = 'v9' WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    let s = SqliteStore::open(&path).unwrap();
    let v = audit::verify_chain(&s.list_audit(&AuditFilter::default()).unwrap());
    assert_eq!(v.broken, Some((2, audit::Break::Hash)));
}

#[test]
fn users_are_unique_by_name_whatever_the_case_and_take_their_tokens_along() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("m.db")).unwrap();
    let mut alice = UserRow {
        id: "u1".into(),
        name: "Alice".into(),
        password_hash: "$argon2id$x".into(),
        totp_secret: None,
        totp_pending: None,
        role: r#"[{"role":"Reader","scope":"/"}]"#.into(),
        created: t("2026-01-01T00:00:00Z"),
    };
    s.insert_user(&alice).unwrap();
    let twin = UserRow {
        id: "u2".into(),
        name: "ALICE".into(),
        ..alice.clone()
    };
    assert!(matches!(
        s.insert_user(&twin),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(s.find_user_by_name("alice").unwrap().unwrap(), alice);
    alice.totp_secret = Some("JBSWY3DPEHPK3PXP".into());
    alice.password_hash = "$argon2id$y".into();
    s.update_user(&alice).unwrap();
    assert_eq!(s.list_users().unwrap(), vec![alice.clone()]);

    assert_eq!(s.get_user("u1").unwrap().unwrap(), alice);

    // A TOTP step is taken once, and none before the last taken.
    assert!(s.accept_totp_step("u1", 100).unwrap());
    assert!(!s.accept_totp_step("u1", 100).unwrap());
    assert!(!s.accept_totp_step("u1", 99).unwrap());
    assert!(s.accept_totp_step("u1", 101).unwrap());
    assert!(!s.accept_totp_step("nobody", 102).unwrap());

    // A token of hers, with its expiry, goes when she does.
    let token = TokenRow {
        id: "t1".into(),
        name: "alice-scripts".into(),
        hash: "h1".into(),
        role: alice.role.clone(),
        created: alice.created,
        user_id: Some("u1".into()),
        expires: Some(t("2026-02-01T00:00:00Z")),
    };
    s.insert_token(&token).unwrap();
    assert_eq!(s.find_token("h1").unwrap().unwrap(), token);
    s.delete_user("u1").unwrap();
    assert!(s.find_token("h1").unwrap().is_none());
    assert!(s.find_user_by_name("Alice").unwrap().is_none());
    assert!(matches!(
        s.delete_user("u1"),
        Err(StoreError::NotFound { .. })
    ));
}
