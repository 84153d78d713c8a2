//! A QEMU or guest agent that streams garbage (an endless line, a huge message) is
//! cut off with an error naming the protocol's line limit: never an unbounded
//! buffer, never a hang.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tresor_qmp::guest_agent::MAX_QGA_LINE;
use tresor_qmp::qmp::MAX_QMP_LINE;
use tresor_qmp::{GuestAgent, GuestAgentError, Qmp, QmpError};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Writes `x` until the peer goes away: an endless line.
async fn endless(w: &mut (impl AsyncWriteExt + Unpin)) {
    let junk = vec![b'x'; 64 * 1024];
    while w.write_all(&junk).await.is_ok() {}
}

/// One connection of a fake QEMU monitor: greeting, capabilities, then `then`.
fn fake_qmp(path: &std::path::Path, endless_greeting: bool) {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        if endless_greeting {
            endless(&mut w).await;
            return;
        }
        w.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": []}}\n")
            .await
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        let id = serde_json::from_str::<Value>(&line).unwrap()["id"].clone();
        w.write_all(format!("{{\"return\": {{}}, \"id\": {id}}}\n").as_bytes())
            .await
            .unwrap();
        // The next command is answered with a line that never ends.
        line.clear();
        r.read_line(&mut line).await.unwrap();
        endless(&mut w).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qmp_endless_reply_is_a_protocol_error_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    fake_qmp(&path, false);
    let qmp = Qmp::connect(&path, TIMEOUT).await.unwrap();
    let e = qmp.execute("query-status", None).await.unwrap_err();
    assert!(
        matches!(&e, QmpError::Protocol { .. })
            && e.to_string()
                .contains(&format!("limit of {MAX_QMP_LINE} bytes")),
        "{e}"
    );
    // The connection is closed: later commands fail at once.
    assert!(matches!(
        qmp.execute("query-status", None).await,
        Err(QmpError::Disconnected { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qmp_endless_greeting_is_a_protocol_error_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qmp.sock");
    fake_qmp(&path, true);
    let e = Qmp::connect(&path, TIMEOUT).await.unwrap_err();
    assert!(
        e.to_string().contains("greeting") && e.to_string().contains("limit of"),
        "{e}"
    );
}

/// A fake guest agent: answers the sync after `stale` bytes of junk on one line,
/// then answers every command with an endless line.
fn fake_agent(path: &std::path::Path, stale: usize) {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        let (s, _): (UnixStream, _) = listener.accept().await.unwrap();
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let start = line.iter().rposition(|&b| b == 0xff).map_or(0, |p| p + 1);
            let Ok(req) = serde_json::from_slice::<Value>(&line[start..]) else {
                continue;
            };
            if req["execute"] == "guest-sync-delimited" {
                let mut out = vec![b'j'; stale];
                out.push(b'\n');
                out.push(0xff);
                out.extend_from_slice(
                    format!("{{\"return\": {}}}\n", req["arguments"]["id"]).as_bytes(),
                );
                w.write_all(&out).await.unwrap();
            } else {
                endless(&mut w).await;
                return;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_agent_endless_reply_is_a_protocol_error_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qga.sock");
    // Stale data longer than a line may be is discarded while syncing.
    fake_agent(&path, 3 * MAX_QGA_LINE);
    let mut ga = GuestAgent::connect(&path, TIMEOUT).await.unwrap();
    ga.sync().await.unwrap();
    let e = ga.ping().await.unwrap_err();
    assert!(
        matches!(&e, GuestAgentError::Protocol { .. })
            && e.to_string()
                .contains(&format!("limit of {MAX_QGA_LINE} bytes")),
        "{e}"
    );
}

#[test]
fn pure_parsers_classify_lines() {
    use tresor_qmp::guest_agent::{parse_reply_line, parse_sync_line, SyncLine};
    use tresor_qmp::qmp::{parse_message, Message};
    assert!(matches!(
        parse_message(b"{\"return\": 5, \"id\": 3}"),
        Message::Reply {
            id: 3,
            reply: Ok(Value::Number(_))
        }
    ));
    assert!(matches!(
        parse_message(b"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}"),
        Message::Event(ev) if ev.event == "STOP" && ev.timestamp == Some((1, 2))
    ));
    assert!(matches!(parse_message(b"\xff\xfe"), Message::Ignored(_)));
    assert_eq!(
        parse_sync_line(b"junk\xff{\"return\": 7}", 7),
        SyncLine::Synced
    );
    assert_eq!(parse_sync_line(b"{\"return\": 7}", 7), SyncLine::Stale);
    assert!(parse_reply_line("guest-ping", b"  ").is_none());
    assert!(matches!(
        parse_reply_line(
            "guest-ping",
            b"{\"error\": {\"class\": \"X\", \"desc\": \"y\"}}"
        ),
        Some(Err(GuestAgentError::Command { .. }))
    ));
}
