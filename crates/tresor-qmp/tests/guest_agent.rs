//! Tests of the guest-agent client. Without a guest OS there is no real qemu-ga,
//! so the protocol is checked against a small fake agent, and the "nobody
//! answers" path against a silent listener and a real QEMU chardev socket with
//! nothing behind it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tresor_qmp::{FsFreezeStatus, GuestAgent, GuestAgentError};

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

/// Behaviour knobs of the fake agent.
#[derive(Clone, Copy, Default)]
struct Fake {
    /// Send stale data as soon as a client connects.
    garbage_on_connect: bool,
    /// Before each sync reply, send stale replies, junk and a wrong-id reply.
    garbage_before_sync: bool,
}

/// Starts a fake qemu-ga on a unix socket; returns its path and a counter of
/// `guest-sync-delimited` requests seen.
fn fake_agent(dir: &Path, fake: Fake) -> (PathBuf, Arc<AtomicUsize>) {
    let path = dir.join("qga.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let syncs = Arc::new(AtomicUsize::new(0));
    let syncs2 = syncs.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(s, fake, syncs2.clone()));
        }
    });
    (path, syncs)
}

async fn serve(s: UnixStream, fake: Fake, syncs: Arc<AtomicUsize>) {
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    if fake.garbage_on_connect {
        w.write_all(b"{\"return\": {}}\n\xff{\"return\": 99}\npartial {\"ret")
            .await
            .unwrap();
    }
    let mut frozen = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await.unwrap() == 0 {
            return;
        }
        // 0xFF resets the parser: only what follows the last one counts.
        let start = line.iter().rposition(|&b| b == 0xff).map_or(0, |p| p + 1);
        let Ok(req) = serde_json::from_slice::<Value>(&line[start..]) else {
            continue;
        };
        let cmd = req["execute"].as_str().unwrap_or_default().to_string();
        let reply: Vec<u8> = match cmd.as_str() {
            "guest-sync-delimited" => {
                syncs.fetch_add(1, Ordering::SeqCst);
                let id = req["arguments"]["id"].clone();
                let mut out = Vec::new();
                if fake.garbage_before_sync {
                    out.extend_from_slice(b"{\"return\": {}}\nnot json at all\n");
                    out.extend_from_slice(b"\xff{\"return\": 1}\n");
                    out.extend_from_slice(b"junk\xff\xfe\n");
                }
                out.push(0xff);
                out.extend_from_slice(json!({ "return": id }).to_string().as_bytes());
                out.push(b'\n');
                out
            }
            "guest-ping" => b"{\"return\": {}}\n".to_vec(),
            "guest-info" => json!({"return": {"version": "7.2.22", "supported_commands": [
                {"enabled": true, "name": "guest-ping", "success-response": true},
                {"enabled": true, "name": "guest-fsfreeze-freeze", "success-response": true},
                {"enabled": false, "name": "guest-exec", "success-response": true}
            ]}})
            .to_string()
            .into_bytes(),
            "guest-fsfreeze-freeze" if frozen => {
                json!({"error": {"class": "GenericError", "desc": "Command guest-fsfreeze-freeze has been disabled: the agent is in frozen state"}})
                    .to_string()
                    .into_bytes()
            }
            "guest-fsfreeze-freeze" => {
                frozen = true;
                b"{\"return\": 2}\n".to_vec()
            }
            "guest-fsfreeze-thaw" => {
                let n = if frozen { 2 } else { 0 };
                frozen = false;
                format!("{{\"return\": {n}}}").into_bytes()
            }
            "guest-fsfreeze-status" => {
                json!({"return": if frozen { "frozen" } else { "thawed" }})
                    .to_string()
                    .into_bytes()
            }
            // Answers only after a delay: the client times out first and the
            // late reply is stale data the next sync must discard.
            "guest-slow" => {
                tokio::time::sleep(SHORT * 2).await;
                b"{\"return\": \"late\"}\n".to_vec()
            }
            other => json!({"error": {"class": "CommandNotFound",
                                      "desc": format!("The command {other} has not been found")}})
            .to_string()
            .into_bytes(),
        };
        let mut reply = reply;
        if reply.last() != Some(&b'\n') {
            reply.push(b'\n');
        }
        if w.write_all(&reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn protocol_against_fake_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (path, syncs) = fake_agent(dir.path(), Fake::default());
    let mut ga = GuestAgent::connect(&path, LONG).await.unwrap();
    ga.sync().await.unwrap();
    ga.ping().await.unwrap();
    assert_eq!(syncs.load(Ordering::SeqCst), 1, "no resync needed");

    let info = ga.info().await.unwrap();
    assert_eq!(info.version, "7.2.22");
    assert!(info.supports("guest-fsfreeze-freeze"));
    assert!(!info.supports("guest-exec"));

    assert_eq!(ga.fsfreeze_status().await.unwrap(), FsFreezeStatus::Thawed);
    assert_eq!(ga.fsfreeze_freeze().await.unwrap(), 2);
    assert_eq!(ga.fsfreeze_status().await.unwrap(), FsFreezeStatus::Frozen);
    let err = ga.fsfreeze_freeze().await.unwrap_err();
    assert!(
        matches!(&err, GuestAgentError::Command { command, class, .. }
            if command == "guest-fsfreeze-freeze" && class == "GenericError"),
        "{err}"
    );
    assert_eq!(ga.fsfreeze_thaw().await.unwrap(), 2);
    assert_eq!(ga.fsfreeze_status().await.unwrap(), FsFreezeStatus::Thawed);

    let err = ga.execute("guest-nothing", None).await.unwrap_err();
    assert!(
        matches!(&err, GuestAgentError::Command { class, .. } if class == "CommandNotFound"),
        "{err}"
    );
    // Error replies keep the stream in step: no extra sync.
    ga.ping().await.unwrap();
    assert_eq!(syncs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn first_command_syncs_and_discards_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let (path, syncs) = fake_agent(
        dir.path(),
        Fake {
            garbage_on_connect: true,
            garbage_before_sync: true,
        },
    );
    let mut ga = GuestAgent::connect(&path, LONG).await.unwrap();
    // No explicit sync: the first command syncs, skipping the stale replies,
    // the junk and the reply with the wrong id.
    ga.ping().await.unwrap();
    assert_eq!(syncs.load(Ordering::SeqCst), 1);
    assert_eq!(ga.fsfreeze_status().await.unwrap(), FsFreezeStatus::Thawed);
    ga.sync().await.unwrap();
    assert_eq!(ga.fsfreeze_status().await.unwrap(), FsFreezeStatus::Thawed);
}

#[tokio::test]
async fn timeout_then_resync_discards_late_reply() {
    let dir = tempfile::tempdir().unwrap();
    let (path, syncs) = fake_agent(dir.path(), Fake::default());
    let mut ga = GuestAgent::connect(&path, SHORT).await.unwrap();
    ga.ping().await.unwrap();
    let start = Instant::now();
    let err = ga.execute("guest-slow", None).await.unwrap_err();
    assert!(
        matches!(&err, GuestAgentError::NotResponding { command, .. } if command == "guest-slow"),
        "{err}"
    );
    assert!(start.elapsed() < SHORT * 2);
    // The late `"late"` reply arrives while the next call resyncs and is dropped.
    ga.set_timeout(LONG);
    assert_eq!(ga.fsfreeze_status().await.unwrap(), FsFreezeStatus::Thawed);
    assert_eq!(syncs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn silent_listener_is_not_responding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let holder = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(LONG).await;
        drop(s);
    });
    let mut ga = GuestAgent::connect(&path, SHORT).await.unwrap();
    let start = Instant::now();
    let err = ga.ping().await.unwrap_err();
    assert!(
        matches!(&err, GuestAgentError::NotResponding { command, .. } if command == "guest-sync-delimited"),
        "{err}"
    );
    assert!(start.elapsed() < SHORT * 3);
    let err = ga.fsfreeze_status().await.unwrap_err();
    assert!(
        matches!(err, GuestAgentError::NotResponding { .. }),
        "{err}"
    );
    holder.abort();
}

#[tokio::test]
async fn closed_socket_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("closing.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        drop(s);
    });
    let mut ga = GuestAgent::connect(&path, LONG).await.unwrap();
    let err = ga.ping().await.unwrap_err();
    assert!(matches!(err, GuestAgentError::Disconnected { .. }), "{err}");

    let err = GuestAgent::connect(dir.path().join("missing.sock"), LONG)
        .await
        .unwrap_err();
    assert!(matches!(err, GuestAgentError::Connect { .. }), "{err}");
}

/// QEMU killed on drop.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real QEMU chardev socket with nothing (no device, no agent) behind it.
#[tokio::test]
async fn qemu_chardev_without_agent_is_not_responding() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("qga.sock");
    let child = Command::new("qemu-system-x86_64")
        .args(["-machine", "none", "-accel", "tcg", "-nodefaults"])
        .args(["-display", "none", "-monitor", "none"])
        .arg("-chardev")
        .arg(format!(
            "socket,path={},server=on,wait=off,id=qga0",
            sock.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 (qemu-system-x86) is needed by the tests");
    let mut qemu = Qemu(child);
    let start = Instant::now();
    while !sock.exists() {
        if let Some(st) = qemu.0.try_wait().unwrap() {
            panic!("QEMU exited early: {st}");
        }
        assert!(start.elapsed() < LONG, "chardev socket did not appear");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ga = GuestAgent::connect(&sock, SHORT).await.unwrap();
    let start = Instant::now();
    let err = ga.fsfreeze_status().await.unwrap_err();
    assert!(
        matches!(err, GuestAgentError::NotResponding { .. }),
        "{err}"
    );
    assert!(start.elapsed() < SHORT * 3);
}
