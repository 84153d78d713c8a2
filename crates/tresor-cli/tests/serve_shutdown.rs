//! `tresor serve` stops on SIGTERM: it stops accepting, lets requests in flight end
//! within its deadline, ends its background loops, and exits 0.

mod common;

use std::time::{Duration, Instant};

use common::service::*;

#[test]
fn a_server_exits_cleanly_within_its_deadline_on_sigterm() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("server");
    let mut server = start_server(&data);
    let cli = Cli {
        config: data.join("cli.json"),
    };
    // Up and answering, with its background loops running.
    cli.ok(&["vault", "list"]);
    let sent = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(15),
            "the server did not exit within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    // Stopped accepting: the CLI now fails to connect.
    let out = cli.run(&["vault", "list"]);
    assert!(!out.status.success());
}
