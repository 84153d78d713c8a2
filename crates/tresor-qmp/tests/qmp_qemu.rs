//! Tests of the QMP client against a real `qemu-system-x86_64` (no guest OS:
//! `-machine none`, TCG) with one qcow2 drive. They fail when QEMU is missing
//! (install it with `scripts/install-deps.sh`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tresor_qmp::{Qmp, QmpError, RunState, TransactionAction};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A running QEMU, killed on drop.
struct QemuGuard {
    child: Child,
    qmp_socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl QemuGuard {
    /// Starts QEMU with a 4 MiB qcow2 drive `drive0` (node `disk0`) and a QMP socket.
    fn start() -> QemuGuard {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.qcow2");
        let st = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&img)
            .arg("4M")
            .status()
            .expect("qemu-img (qemu-utils) is needed by the tests");
        assert!(st.success(), "qemu-img create failed");
        let qmp_socket = dir.path().join("qmp.sock");
        let child = Command::new("qemu-system-x86_64")
            .args(["-machine", "none", "-accel", "tcg", "-nodefaults"])
            .args(["-display", "none"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_socket.display()))
            .arg("-drive")
            .arg(format!(
                "if=none,id=drive0,file={},format=qcow2,node-name=disk0",
                img.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 (qemu-system-x86) is needed by the tests");
        let mut g = QemuGuard {
            child,
            qmp_socket,
            _dir: dir,
        };
        g.wait_for_socket();
        g
    }

    fn wait_for_socket(&mut self) {
        let start = Instant::now();
        while !self.qmp_socket.exists() {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("QEMU exited early: {st}");
            }
            assert!(start.elapsed() < TIMEOUT, "QMP socket did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn socket(&self) -> &Path {
        &self.qmp_socket
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn connect(q: &QemuGuard) -> Qmp {
    Qmp::connect(q.socket(), TIMEOUT).await.unwrap()
}

#[tokio::test]
async fn greeting_status_name_uuid() {
    let q = QemuGuard::start();
    let qmp = connect(&q).await;
    let v = qmp.version();
    assert!(v.major >= 7, "version {v}");
    eprintln!("QEMU {v}");
    let st = qmp.query_status().await.unwrap();
    assert!(st.running);
    assert_eq!(st.status, RunState::Running);
    assert_eq!(qmp.query_name().await.unwrap(), None);
    let uuid = qmp.query_uuid().await.unwrap();
    assert_eq!(uuid.len(), 36, "{uuid}");
}

#[tokio::test]
async fn block_nodes_and_dirty_bitmaps() {
    let q = QemuGuard::start();
    let qmp = connect(&q).await;

    let nodes = qmp.query_named_block_nodes().await.unwrap();
    let disk = nodes
        .iter()
        .find(|n| n.node_name.as_deref() == Some("disk0"))
        .expect("disk0 listed");
    assert_eq!(disk.drv, "qcow2");
    assert_eq!(disk.image.format, "qcow2");
    assert_eq!(disk.image.virtual_size, 4 << 20);
    assert!(disk.image.filename.ends_with("disk.qcow2"));
    assert!(disk.dirty_bitmaps.is_empty());
    // The protocol node below it is listed too (flat).
    assert!(nodes.iter().any(|n| n.drv == "file"));

    qmp.execute(
        "block-dirty-bitmap-add",
        Some(json!({"node": "disk0", "name": "b0", "persistent": true, "granularity": 65536})),
    )
    .await
    .unwrap();
    qmp.transaction(&[TransactionAction::block_dirty_bitmap_add(
        "disk0", "b1", None, false,
    )])
    .await
    .unwrap();

    let nodes = qmp.query_named_block_nodes().await.unwrap();
    let disk = nodes
        .iter()
        .find(|n| n.node_name.as_deref() == Some("disk0"))
        .unwrap();
    let b0 = disk
        .dirty_bitmaps
        .iter()
        .find(|b| b.name.as_deref() == Some("b0"))
        .expect("b0 listed");
    assert!(b0.persistent && b0.recording && !b0.inconsistent && !b0.busy);
    assert_eq!(b0.granularity, 65536);
    assert_eq!(b0.count, 0);
    let b1 = disk
        .dirty_bitmaps
        .iter()
        .find(|b| b.name.as_deref() == Some("b1"))
        .expect("b1 listed");
    assert!(!b1.persistent);

    // A write through qemu-io marks 64 KiB dirty.
    qmp.qemu_io("drive0", "write -P 0xab 0 64k").await.unwrap();
    let blocks = qmp.query_block().await.unwrap();
    let drive = blocks.iter().find(|b| b.device == "drive0").unwrap();
    let inserted = drive.inserted.as_ref().expect("medium inserted");
    assert_eq!(inserted.node_name.as_deref(), Some("disk0"));
    let b0 = inserted
        .dirty_bitmaps
        .iter()
        .find(|b| b.name.as_deref() == Some("b0"))
        .unwrap();
    assert_eq!(b0.count, 65536);

    // A failing transaction (duplicate bitmap) has no effect and reports the class.
    let err = qmp
        .transaction(&[
            TransactionAction::block_dirty_bitmap_add("disk0", "b2", None, false),
            TransactionAction::block_dirty_bitmap_add("disk0", "b0", None, false),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, QmpError::Command { command, class, .. } if command == "transaction" && class == "GenericError"),
        "{err}"
    );
    let nodes = qmp.query_named_block_nodes().await.unwrap();
    let disk = nodes
        .iter()
        .find(|n| n.node_name.as_deref() == Some("disk0"))
        .unwrap();
    assert!(!disk
        .dirty_bitmaps
        .iter()
        .any(|b| b.name.as_deref() == Some("b2")));
}

#[tokio::test]
async fn errors_are_typed() {
    let q = QemuGuard::start();
    let qmp = connect(&q).await;
    let err = qmp.execute("no-such-command", None).await.unwrap_err();
    match &err {
        QmpError::Command {
            command,
            class,
            desc,
        } => {
            assert_eq!(command, "no-such-command");
            assert_eq!(class, "CommandNotFound");
            assert!(desc.contains("no-such-command"), "{desc}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = qmp
        .execute(
            "block-dirty-bitmap-add",
            Some(json!({"node": "nope", "name": "x"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Command { .. }), "{err}");
    // The connection stays usable after errors.
    qmp.query_status().await.unwrap();
}

#[tokio::test]
async fn human_monitor_command() {
    let q = QemuGuard::start();
    let qmp = connect(&q).await;
    let out = qmp.human_monitor_command("info version").await.unwrap();
    assert!(out.starts_with(&format!("{}.{}", qmp.version().major, qmp.version().minor)));

    qmp.human_monitor_command_silent("qemu-io drive0 \"write -P 0xab 0 64k\"")
        .await
        .unwrap();
    qmp.qemu_io("drive0", "read -P 0xab 0 64k").await.unwrap();

    // HMP errors arrive as text in `return`; the helper turns them into errors.
    let err = qmp.qemu_io("nodrive", "read 0 4k").await.unwrap_err();
    match &err {
        QmpError::Hmp { command, output } => {
            assert!(command.contains("nodrive"));
            assert!(output.contains("nodrive"), "{output}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = qmp
        .human_monitor_command_silent("qemu-io drive0")
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Hmp { .. }), "{err}");
    let err = qmp
        .human_monitor_command_silent("no-such-hmp-command")
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Hmp { .. }), "{err}");
}

#[tokio::test]
async fn stop_and_cont_events() {
    let q = QemuGuard::start();
    let qmp = connect(&q).await;
    let mut events = qmp.events();
    qmp.execute("stop", None).await.unwrap();
    let ev = events.wait_for("STOP", |_| true, TIMEOUT).await.unwrap();
    assert!(ev.timestamp.is_some());
    assert_eq!(qmp.query_status().await.unwrap().status, RunState::Paused);
    qmp.execute("cont", None).await.unwrap();
    events.wait_for("RESUME", |_| true, TIMEOUT).await.unwrap();
    assert!(qmp.query_status().await.unwrap().running);

    // wait_event runs concurrently with the command that triggers the event.
    let (ev, r) = tokio::join!(qmp.wait_event("STOP", |_| true, TIMEOUT), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        qmp.execute("stop", None).await
    });
    r.unwrap();
    assert_eq!(ev.unwrap().event, "STOP");

    // No event: a timeout, not a hang.
    let err = events
        .wait_for("SHUTDOWN", |_| true, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn concurrent_commands_get_their_own_replies() {
    let q = QemuGuard::start();
    let qmp = connect(&q).await;
    let (a, b, c) = tokio::join!(
        qmp.query_status(),
        qmp.query_uuid(),
        qmp.query_named_block_nodes()
    );
    assert!(a.unwrap().running);
    assert_eq!(b.unwrap().len(), 36);
    assert!(!c.unwrap().is_empty());
}

#[tokio::test]
async fn killed_qemu_gives_disconnected() {
    let mut q = QemuGuard::start();
    let qmp = connect(&q).await;
    let mut events = qmp.events();
    qmp.query_status().await.unwrap();
    q.kill();
    let start = Instant::now();
    let err = qmp.query_status().await.unwrap_err();
    assert!(matches!(err, QmpError::Disconnected { .. }), "{err}");
    assert!(start.elapsed() < TIMEOUT);
    // Later calls and event waits fail the same way.
    let err = qmp.execute("query-name", None).await.unwrap_err();
    assert!(matches!(err, QmpError::Disconnected { .. }), "{err}");
    let err = events.next(TIMEOUT).await.unwrap_err();
    assert!(matches!(err, QmpError::Disconnected { .. }), "{err}");
    assert!(start.elapsed() < TIMEOUT);
}

#[tokio::test]
async fn connect_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Qmp::connect(dir.path().join("missing.sock"), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Connect { .. }), "{err}");

    // A socket that accepts but never greets: timeout, not a hang.
    let path = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let accept = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let err = Qmp::connect(&path, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, QmpError::Timeout { .. }), "{err}");
    accept.abort();
}
