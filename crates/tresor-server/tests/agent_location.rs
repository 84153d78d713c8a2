//! A host registered in a location no vault has is never silently left out: the
//! agent's ping (what `tresor agent check` asks with the agent's credential) and the
//! host agents list (the portal's page) say how many vaults its location holds.

mod common;

use common::client;
use common::world::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_without_a_vault_is_said() {
    let w = world().await;
    let id = w.create_vault("v1").await;
    let good = w.register_host("v1", &id, "kvm1", &["vm1"]).await;
    // A host whose location was typed wrong (the server's own agent takes the
    // location its configuration says).
    let typo = w
        .server
        .state
        .register_local_agent("kvm2", "westeurpe")
        .unwrap();
    let typo_api = client(&w.server, Some(&typo.credential));

    let ping = good.api.agent_ping().await.unwrap();
    assert_eq!(ping.location.as_deref(), Some("local"));
    assert_eq!(ping.vaults_in_location, Some(1));
    let ping = typo_api.agent_ping().await.unwrap();
    assert_eq!(ping.host, "kvm2");
    assert_eq!(ping.location.as_deref(), Some("westeurpe"));
    assert_eq!(ping.vaults_in_location, Some(0));

    let counts = |agents: Vec<tresor_api::agents::Agent>| -> Vec<(String, u32)> {
        agents
            .into_iter()
            .map(|a| (a.host, a.vaults_in_location))
            .collect()
    };
    assert_eq!(
        counts(w.admin.agents().await.unwrap()),
        [("kvm1".to_string(), 1), ("kvm2".to_string(), 0)]
    );
    // A vault made in that location ends the warning.
    let _: serde_json::Value = w
        .admin
        .post_json(
            "api/v1/vaults",
            &serde_json::json!({"name": "v2", "resourceGroup": "rg", "location": "westeurpe"}),
        )
        .await
        .unwrap();
    assert_eq!(
        typo_api.agent_ping().await.unwrap().vaults_in_location,
        Some(1)
    );
    w.finish().await;
}
