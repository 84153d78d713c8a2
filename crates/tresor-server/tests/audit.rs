//! The audit trail through the HTTPS API: changes and refusals are listed with who,
//! from where, what and the result; an entry edited in the database behind the
//! server's back is named by the check of the chain.

mod common;

use common::client;

use tresor_api::audit::AuditQuery;
use tresor_api::tokens::CreateToken;
use tresor_api::vaults::CreateVault;
use tresor_client::ClientError;

fn create(name: &str) -> CreateVault {
    serde_json::from_value(serde_json::json!({
        "name": name, "resourceGroup": "rg", "location": "local"
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_recorded_and_an_edited_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::quiet_server(dir.path()).await;
    let admin = client(&server, server.new_admin_token.as_deref());

    admin.create_vault(&create("audited")).await.unwrap();
    let again = admin.create_vault(&create("audited")).await;
    assert!(
        matches!(again, Err(ClientError::Api { ref code, .. }) if code == "VaultAlreadyExists")
    );
    let token = admin
        .create_token(&CreateToken {
            name: "ops".into(),
            roles: None,
            expires_in_days: None,
        })
        .await
        .unwrap();
    admin.delete_token(&token.id).await.unwrap();
    assert!(admin.delete_vault("nowhere").await.is_err());
    // A bad credential changes nothing and is no principal: not recorded.
    assert!(client(&server, Some("tresor_api_wrong"))
        .delete_vault("audited")
        .await
        .is_err());

    let log = admin.audit(&AuditQuery::default()).await.unwrap();
    let seen: Vec<(u64, &str, &str, &str)> = log
        .iter()
        .map(|e| {
            (
                e.seq,
                e.action.as_str(),
                e.object.as_str(),
                e.result.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "vault.create", "audited", "Succeeded"),
            (2, "vault.create", "audited", "VaultAlreadyExists"),
            (3, "token.create", "ops", "Succeeded"),
            (4, "token.delete", token.id.as_str(), "Succeeded"),
            (5, "vault.delete", "nowhere", "NotFound"),
        ]
    );
    for e in &log {
        assert_eq!(e.actor_kind, "admin");
        assert_eq!(e.actor, "admin");
        assert_eq!(e.origin, "127.0.0.1");
    }
    assert_eq!(log[0].vault, "audited");
    assert_eq!(log[0].prev_hash, "0".repeat(64));
    assert_eq!(log[1].prev_hash, log[0].hash);
    // Paging.
    let page = admin
        .audit(&AuditQuery {
            from: Some(2),
            limit: Some(2),
            vault: None,
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);

    let v = admin.verify_audit().await.unwrap();
    assert!(v.intact, "{v:?}");
    assert_eq!((v.entries, v.last_seq, v.broken_seq), (5, Some(5), None));
    assert_eq!(v.last_hash.as_deref(), Some(log[4].hash.as_str()));

    // Reading and verifying the log need an administrator.
    let nobody = client(&server, None);
    assert!(nobody.verify_audit().await.is_err());

    // Someone with the database file changes what entry 3 says.
    let db = rusqlite::Connection::open(dir.path().join("metadata.db")).unwrap();
    let n = db
        .execute("UPDATE audit SET object = 'someone-else' WHERE seq = 3", [])
        .unwrap();
    assert_eq!(n, 1);
    drop(db);

    let v = admin.verify_audit().await.unwrap();
    assert!(!v.intact);
    assert_eq!(v.broken_seq, Some(3), "{v:?}");
    assert_eq!(v.last_seq, Some(2));
    assert!(v.problem.unwrap().contains("altered"));

    // And an entry removed: the gap is named.
    let db = rusqlite::Connection::open(dir.path().join("metadata.db")).unwrap();
    db.execute("UPDATE audit SET object = 'ops' WHERE seq = 3", [])
        .unwrap();
    db.execute("DELETE FROM audit WHERE seq = 4", []).unwrap();
    drop(db);
    let v = admin.verify_audit().await.unwrap();
    assert_eq!(v.broken_seq, Some(5), "{v:?}");
    assert!(v.problem.unwrap().contains("seq 4 is missing"));
}
