//! `tresor serve --with-local-agent` as its help says: the agent's configuration
//! needs neither credentials nor a state folder, the agent is registered by the
//! server and reports; started again at another port, the server writes its new
//! address into the agent's state and the agent reports there. `tresor agent check`
//! with that state tests the credential and says when the host's location has no
//! vault; a wrong agent.toml is refused with every problem and its key.

mod common;

use std::time::Duration;

use common::service::*;
use serde_json::Value;

fn stop(mut p: Proc) {
    let pid = p.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let _ = p.0.wait();
}

/// The host agents the server lists (id, last heartbeat), asked with the admin
/// token of its cli.json.
fn agents(cli: &Cli) -> Vec<(String, Option<jiff::Timestamp>)> {
    let c: Value = serde_json::from_slice(&std::fs::read(&cli.config).unwrap()).unwrap();
    let addr = tresor_client::ServerAddress::parse(
        c["server"].as_str().unwrap(),
        c["fingerprint"].as_str().unwrap(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let transport =
            tresor_client::Transport::new(&addr, None, Duration::from_secs(10)).unwrap();
        let api = tresor_client::ApiClient::new(transport, c["token"].as_str().map(String::from));
        api.agents()
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.id, a.last_heartbeat))
            .collect()
    })
}

#[test]
fn the_local_agent_needs_no_registration_and_follows_the_server() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let agent_toml = d.path().join("agent.toml");
    // No credentials, no state_dir: the help says they are not needed.
    std::fs::write(
        &agent_toml,
        "host = \"kvm-local\"\nlocation = \"local\"\n[libvirt]\nenabled = false\n",
    )
    .unwrap();
    let cli = Cli {
        config: data.join("cli.json"),
    };
    let state = data.join("local-agent/agent.json");
    let server_in_state = || -> String {
        let s: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        s["server"].as_str().unwrap().to_string()
    };

    let first = free_port();
    let server = serve_with_local_agent(&data, first, &agent_toml);
    assert_eq!(server_in_state(), format!("https://127.0.0.1:{first}"));
    let agent_id = {
        let s: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        s["agentId"].as_str().unwrap().to_string()
    };

    // `tresor agent check` with the local agent's state: the credential is taken,
    // and no vault is in its location yet.
    let check_toml = d.path().join("check.toml");
    std::fs::write(
        &check_toml,
        format!(
            "state_dir = \"{}\"\nlocation = \"local\"\n[libvirt]\nenabled = false\n",
            data.join("local-agent").display()
        ),
    )
    .unwrap();
    let check = |expect: &str| {
        let out = tresor_bin()
            .args(["agent", "check", "--config"])
            .arg(&check_toml)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains(expect), "{expect:?} not in {text}");
    };
    check("WARNING: no vault is in location local");
    cli.ok(&[
        "vault",
        "create",
        "-n",
        "v1",
        "-g",
        "rg",
        "-l",
        "local",
        "--storage-redundancy",
        "LocallyRedundant",
    ]);
    check("1 vault(s) in local can protect its VMs");
    stop(server);

    // Started again elsewhere: the agent's state names the new address, and the
    // same agent (no second registration) reports there.
    let second = free_port();
    let server = serve_with_local_agent(&data, second, &agent_toml);
    assert_eq!(server_in_state(), format!("https://127.0.0.1:{second}"));
    // (cli.json is written at the first start only: the CLI is pointed by hand.)
    let mut c: Value = serde_json::from_slice(&std::fs::read(&cli.config).unwrap()).unwrap();
    c["server"] = format!("https://127.0.0.1:{second}").into();
    std::fs::write(&cli.config, serde_json::to_vec(&c).unwrap()).unwrap();
    let restarted = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    wait_for(
        "the local agent's heartbeat",
        Duration::from_secs(30),
        || {
            let hosts = agents(&cli);
            hosts.len() == 1 && hosts[0].0 == agent_id && hosts[0].1.is_some_and(|t| t >= restarted)
        },
    );
    stop(server);
}

#[test]
fn a_wrong_agent_toml_is_refused_with_every_problem() {
    let d = tempfile::tempdir().unwrap();
    let toml = d.path().join("agent.toml");
    std::fs::write(
        &toml,
        "state_dir = \"state\"\nlocation = \"local\"\nscratchdir = \"/var/tmp\"\n[[vm]]\nname = \"a\"\nqmp = 5\n",
    )
    .unwrap();
    for command in ["check", "run"] {
        let out = tresor_bin()
            .args(["agent", command, "--config"])
            .arg(&toml)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("has 3 problems to fix"), "{err}");
        assert!(err.contains("state_dir: \"state\" is relative"), "{err}");
        assert!(
            err.contains("scratchdir: unknown key; did you mean `scratch_dir`?"),
            "{err}"
        );
        assert!(
            err.contains("vm[1].qmp: expected an absolute path"),
            "{err}"
        );
    }
}
