//! QMP client: greeting, capabilities negotiation, commands matched to replies by
//! id, and an event channel.
//!
//! One [`Qmp`] owns one unix-socket connection. A reader task owns the read half:
//! it parses every line QEMU sends, hands replies to the waiting caller (by the
//! `id` sent with the command) and broadcasts events. Commands may be issued
//! concurrently from several tasks through `&Qmp`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::line::{read_line_bounded, LineError};

/// Largest QMP message (one line) read from QEMU. Replies can be large:
/// `query-named-block-nodes` lists every node with its whole backing chain and
/// dirty bitmaps, a few MiB for a VM with many disks and snapshots. A line longer
/// than this ends the connection with a protocol error naming the limit.
pub const MAX_QMP_LINE: usize = 16 * 1024 * 1024;

/// Largest event kept. Events are a few hundred bytes; each subscriber buffers up
/// to 1024 of them, so a bigger one is dropped (with a warning) rather than
/// multiplied into the subscribers' queues.
pub const MAX_QMP_EVENT_LINE: usize = 64 * 1024;

/// How many events the broadcast channel buffers per subscriber before a slow
/// subscriber starts missing the oldest ones.
const EVENT_CAPACITY: usize = 1024;

/// Errors of the QMP client. Each names the command or step that failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The unix socket could not be connected.
    #[error("connecting to QMP socket {path}: {source}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// No (complete) answer within the timeout.
    #[error("QMP {what}: no answer within {timeout:?}")]
    Timeout {
        /// The command or step that timed out (`greeting`, `connect`, a command name, an event name).
        what: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The connection was closed, typically because QEMU exited.
    #[error("QMP {what}: connection closed (QEMU exited or closed the monitor)")]
    Disconnected {
        /// The command or step during which the connection was found closed.
        what: String,
    },
    /// QEMU answered the command with an `error` object.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The command that failed.
        command: String,
        /// QMP error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`.
        class: String,
        /// Human-readable description from QEMU.
        desc: String,
    },
    /// `human-monitor-command` succeeded at the QMP level but its text output
    /// reports an error (HMP has no structured errors).
    #[error("HMP command {command:?} reported: {output}")]
    Hmp {
        /// The HMP command line.
        command: String,
        /// The output, trimmed.
        output: String,
    },
    /// QEMU sent something that is not valid QMP.
    #[error("QMP {what}: protocol error: {message}")]
    Protocol {
        /// The step in which the bad message arrived.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// A reply did not have the shape the typed wrapper expects.
    #[error("QMP command {command}: unexpected reply shape: {source}")]
    Decode {
        /// The command whose reply could not be decoded.
        command: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// Writing to the socket failed for a reason other than a closed connection.
    #[error("QMP command {command}: socket I/O: {source}")]
    Io {
        /// The command being sent.
        command: String,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Result type of this module.
pub type Result<T, E = QmpError> = std::result::Result<T, E>;

/// QEMU version from the QMP greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QmpVersion {
    /// Major version, e.g. 7.
    pub major: u32,
    /// Minor version, e.g. 2.
    pub minor: u32,
    /// Micro version, e.g. 22.
    pub micro: u32,
    /// Distribution package string, e.g. `Debian 1:7.2+dfsg-7+deb12u18+b3` (may be empty).
    pub package: String,
}

impl std::fmt::Display for QmpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)?;
        if !self.package.is_empty() {
            write!(f, " ({})", self.package)?;
        }
        Ok(())
    }
}

/// An asynchronous QMP event such as `STOP`, `RESUME`, `SHUTDOWN` or `BLOCK_JOB_COMPLETED`.
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    /// Event name.
    pub event: String,
    /// The `data` member (`Value::Null` when absent).
    pub data: Value,
    /// QEMU's timestamp as (seconds, microseconds) since the epoch, if present.
    pub timestamp: Option<(i64, i64)>,
}

/// Pending commands: id -> the waiting caller. `None` once the reader has ended.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Outcome>>>>>;

/// A reply to one command: the `return` value or the (class, desc) of the `error`.
pub type Reply = std::result::Result<Value, (String, String)>;

/// What a waiting command receives: a reply, or why the connection ended.
type Outcome = std::result::Result<Reply, String>;

/// A connected QMP monitor.
///
/// Dropping it stops the reader task and closes the socket.
pub struct Qmp {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    /// Kept only so [`Qmp::events`] can subscribe; the reader task owns the
    /// sender, so subscribers see the channel closed when the connection ends.
    events_rx: broadcast::Receiver<QmpEvent>,
    next_id: AtomicU64,
    timeout: Duration,
    version: QmpVersion,
    capabilities: Vec<String>,
    /// Process id of the QEMU at the other end (from `SO_PEERCRED`).
    peer_pid: Option<i32>,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("version", &self.version)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for Qmp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Qmp {
    /// Connects to the QMP unix socket at `path`, reads the greeting and
    /// negotiates capabilities (`qmp_capabilities`, no optional ones).
    ///
    /// `timeout` bounds each step here and becomes the default timeout of every
    /// later command ([`Qmp::execute`]).
    pub async fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Qmp> {
        let path = path.as_ref();
        let stream = tokio::time::timeout(timeout, UnixStream::connect(path))
            .await
            .map_err(|_| QmpError::Timeout {
                what: format!("connect to {}", path.display()),
                timeout,
            })?
            .map_err(|source| QmpError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        let peer_pid = stream.peer_cred().ok().and_then(|c| c.pid());
        let (read, write) = stream.into_split();
        let mut read = BufReader::new(read);

        let line = tokio::time::timeout(timeout, read_line_bounded(&mut read, MAX_QMP_LINE))
            .await
            .map_err(|_| QmpError::Timeout {
                what: "greeting".into(),
                timeout,
            })?
            .map_err(|e| QmpError::Protocol {
                what: "greeting".into(),
                message: line_error_message(e),
            })?
            .ok_or_else(|| QmpError::Disconnected {
                what: "greeting".into(),
            })?;
        let (version, capabilities) = parse_greeting(&line)?;
        tracing::debug!(%version, path = %path.display(), "QMP greeting");

        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (events_tx, events_rx) = broadcast::channel(EVENT_CAPACITY);
        let reader = tokio::spawn(reader_task(read, pending.clone(), events_tx));
        let qmp = Qmp {
            writer: tokio::sync::Mutex::new(write),
            pending,
            events_rx,
            next_id: AtomicU64::new(1),
            timeout,
            version,
            capabilities,
            peer_pid,
            reader,
        };
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// The process id of QEMU, as the kernel reports the socket's peer (so it can be
    /// trusted, unlike anything QEMU says). `None` where the platform cannot tell.
    pub fn peer_pid(&self) -> Option<i32> {
        self.peer_pid
    }

    /// QEMU's version from the greeting.
    pub fn version(&self) -> &QmpVersion {
        &self.version
    }

    /// Capabilities QEMU offered in the greeting (e.g. `oob`); none are enabled.
    pub fn offered_capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// The default timeout of commands on this connection.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `command` with optional `arguments` and returns its `return` value,
    /// waiting at most the connection's timeout.
    ///
    /// Errors: [`QmpError::Command`] with QEMU's class and description,
    /// [`QmpError::Disconnected`] if the connection is or becomes closed,
    /// [`QmpError::Timeout`] if no reply arrives in time.
    pub async fn execute(&self, command: &str, arguments: Option<Value>) -> Result<Value> {
        self.execute_with_timeout(command, arguments, self.timeout)
            .await
    }

    /// Like [`Qmp::execute`] with an explicit timeout, for commands known to be slow.
    pub async fn execute_with_timeout(
        &self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().expect("pending lock poisoned");
            match pending.as_mut() {
                Some(map) => {
                    map.insert(id, tx);
                }
                None => {
                    return Err(QmpError::Disconnected {
                        what: command.to_string(),
                    })
                }
            }
        }
        let mut msg = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut line = serde_json::to_string(&msg).expect("JSON value serializes");
        line.push('\n');
        tracing::trace!(id, command, "QMP send");

        let result = tokio::time::timeout_at(deadline, async {
            {
                let mut w = self.writer.lock().await;
                if let Err(e) = w.write_all(line.as_bytes()).await {
                    return Err(io_error(command, e));
                }
            }
            match rx.await {
                Ok(Ok(Ok(v))) => Ok(v),
                Ok(Ok(Err((class, desc)))) => Err(QmpError::Command {
                    command: command.to_string(),
                    class,
                    desc,
                }),
                Ok(Err(message)) => Err(QmpError::Protocol {
                    what: command.to_string(),
                    message,
                }),
                Err(_) => Err(QmpError::Disconnected {
                    what: command.to_string(),
                }),
            }
        })
        .await;
        match result {
            Ok(r) => {
                if r.is_err() {
                    self.forget(id);
                }
                r
            }
            Err(_) => {
                self.forget(id);
                Err(QmpError::Timeout {
                    what: command.to_string(),
                    timeout,
                })
            }
        }
    }

    /// Drops the pending entry of a command nobody waits for any more.
    fn forget(&self, id: u64) {
        if let Some(map) = self.pending.lock().expect("pending lock poisoned").as_mut() {
            map.remove(&id);
        }
    }

    /// Runs `command` and decodes its `return` value into `T`.
    pub async fn execute_as<T: DeserializeOwned>(
        &self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<T> {
        let v = self.execute(command, arguments).await?;
        serde_json::from_value(v).map_err(|source| QmpError::Decode {
            command: command.to_string(),
            source,
        })
    }

    /// Subscribes to the events arriving from now on.
    ///
    /// Subscribe *before* issuing the command whose event you want to see; events
    /// that arrived earlier are not replayed.
    pub fn events(&self) -> Events {
        Events {
            rx: self.events_rx.resubscribe(),
        }
    }

    /// Waits for the next event named `name` for which `predicate` returns true,
    /// arriving after this call; others are skipped.
    ///
    /// To avoid missing an event caused by a command, subscribe with
    /// [`Qmp::events`] before the command and use [`Events::wait_for`].
    pub async fn wait_event(
        &self,
        name: &str,
        predicate: impl FnMut(&QmpEvent) -> bool,
        timeout: Duration,
    ) -> Result<QmpEvent> {
        self.events().wait_for(name, predicate, timeout).await
    }

    /// `query-status`: the VM's run state.
    pub async fn query_status(&self) -> Result<StatusInfo> {
        self.execute_as("query-status", None).await
    }

    /// `query-name`: the VM name given with `-name`, or `None`.
    pub async fn query_name(&self) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct NameInfo {
            name: Option<String>,
        }
        let n: NameInfo = self.execute_as("query-name", None).await?;
        Ok(n.name)
    }

    /// `query-uuid`: the VM UUID (all zeros when none was set with `-uuid`).
    pub async fn query_uuid(&self) -> Result<String> {
        #[derive(Deserialize)]
        struct UuidInfo {
            #[serde(rename = "UUID")]
            uuid: String,
        }
        let u: UuidInfo = self.execute_as("query-uuid", None).await?;
        Ok(u.uuid)
    }

    /// `query-block`: the block devices (drives) and the node inserted in each.
    pub async fn query_block(&self) -> Result<Vec<BlockInfo>> {
        self.execute_as("query-block", None).await
    }

    /// `query-named-block-nodes` (flat): every named block node, including the
    /// protocol (`file`) nodes below format nodes.
    pub async fn query_named_block_nodes(&self) -> Result<Vec<BlockDeviceInfo>> {
        self.execute_as("query-named-block-nodes", Some(json!({ "flat": true })))
            .await
    }

    /// `transaction`: runs `actions` atomically (all succeed or none takes effect).
    pub async fn transaction(&self, actions: &[TransactionAction]) -> Result<()> {
        let actions = serde_json::to_value(actions).expect("actions serialize");
        self.execute("transaction", Some(json!({ "actions": actions })))
            .await?;
        Ok(())
    }

    /// `human-monitor-command`: runs an HMP command line and returns its text output.
    ///
    /// HMP errors are *not* QMP errors: they come back as text in the output
    /// (e.g. `Error: Device 'x' not found`). See [`Qmp::human_monitor_command_silent`].
    pub async fn human_monitor_command(&self, command_line: &str) -> Result<String> {
        let v = self
            .execute(
                "human-monitor-command",
                Some(json!({ "command-line": command_line })),
            )
            .await?;
        match v {
            Value::String(s) => Ok(s),
            other => Err(QmpError::Protocol {
                what: "human-monitor-command".into(),
                message: format!("return is not a string: {other}"),
            }),
        }
    }

    /// Runs an HMP command that prints nothing when it succeeds and fails with
    /// [`QmpError::Hmp`] carrying the output otherwise.
    pub async fn human_monitor_command_silent(&self, command_line: &str) -> Result<()> {
        let out = self.human_monitor_command(command_line).await?;
        let out = out.trim();
        if out.is_empty() {
            Ok(())
        } else {
            Err(QmpError::Hmp {
                command: command_line.to_string(),
                output: out.to_string(),
            })
        }
    }

    /// Runs `qemu-io DEVICE "COMMAND"` through HMP (tests and debugging: write a
    /// pattern, read back) and treats any output in the reply as an error.
    ///
    /// Caveat seen with QEMU 7.2: errors of the monitor command itself (unknown
    /// device or node, bad syntax) come back in the reply and are reported, but
    /// the output of the qemu-io sub-command (`wrote ...`, `write failed: ...`,
    /// `command "x" not found`) goes to QEMU's stdout, not into the reply, so a
    /// failing sub-command is **not** detected here. `command` must not contain `"`.
    pub async fn qemu_io(&self, device: &str, command: &str) -> Result<()> {
        if command.contains('"') || device.contains(char::is_whitespace) {
            return Err(QmpError::Protocol {
                what: "qemu-io".into(),
                message: format!("cannot quote device {device:?} / command {command:?} for HMP"),
            });
        }
        self.human_monitor_command_silent(&format!("qemu-io {device} \"{command}\""))
            .await
    }
}

/// Maps a write error: a closed peer is [`QmpError::Disconnected`].
fn io_error(command: &str, e: std::io::Error) -> QmpError {
    use std::io::ErrorKind::*;
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected | UnexpectedEof => {
            QmpError::Disconnected {
                what: command.to_string(),
            }
        }
        _ => QmpError::Io {
            command: command.to_string(),
            source: e,
        },
    }
}

/// What a line that QEMU sends on the monitor is.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// An asynchronous event.
    Event(QmpEvent),
    /// The reply to the command sent with `id`.
    Reply {
        /// The id the command was sent with.
        id: u64,
        /// Its `return` value or the class and description of its `error`.
        reply: Reply,
    },
    /// Something else (not JSON, no id, an empty line): ignored, with the reason.
    Ignored(String),
}

fn line_error_message(e: LineError) -> String {
    match e {
        LineError::Io(e) => format!("reading: {e}"),
        LineError::TooLong { limit } => {
            format!("message longer than the limit of {limit} bytes")
        }
    }
}

/// Parses `{"QMP": {"version": {"qemu": {...}, "package": ...}, "capabilities": [...]}}`.
/// Pure (no I/O), public for fuzzing and tests.
pub fn parse_greeting(line: &[u8]) -> Result<(QmpVersion, Vec<String>)> {
    #[derive(Deserialize)]
    struct Greeting {
        #[serde(rename = "QMP")]
        qmp: GreetingBody,
    }
    #[derive(Deserialize)]
    struct GreetingBody {
        version: GreetingVersion,
        #[serde(default)]
        capabilities: Vec<String>,
    }
    #[derive(Deserialize)]
    struct GreetingVersion {
        qemu: Triple,
        #[serde(default)]
        package: String,
    }
    #[derive(Deserialize)]
    struct Triple {
        major: u32,
        minor: u32,
        micro: u32,
    }
    let g: Greeting = serde_json::from_slice(line).map_err(|e| QmpError::Protocol {
        what: "greeting".into(),
        message: format!("{e}: {}", excerpt(line)),
    })?;
    let v = g.qmp.version;
    Ok((
        QmpVersion {
            major: v.qemu.major,
            minor: v.qemu.minor,
            micro: v.qemu.micro,
            package: v.package.trim().to_string(),
        },
        g.qmp.capabilities,
    ))
}

/// At most this much of a bad message goes into an error or a log line.
fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(200)]);
    text.trim().to_string()
}

/// Parses one line QEMU sent on the monitor. Pure (no I/O), public for fuzzing
/// and tests.
pub fn parse_message(line: &[u8]) -> Message {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Message::Ignored("empty line".into());
    }
    let msg: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => return Message::Ignored(format!("unparsable ({e}): {}", excerpt(line))),
    };
    if let Some(name) = msg.get("event").and_then(Value::as_str) {
        let timestamp = msg.get("timestamp").and_then(|t| {
            Some((
                t.get("seconds")?.as_i64()?,
                t.get("microseconds")?.as_i64()?,
            ))
        });
        return Message::Event(QmpEvent {
            event: name.to_string(),
            data: msg.get("data").cloned().unwrap_or(Value::Null),
            timestamp,
        });
    }
    let Some(id) = msg.get("id").and_then(Value::as_u64) else {
        return Message::Ignored(format!("neither id nor event: {}", excerpt(line)));
    };
    let reply: Reply = if let Some(err) = msg.get("error") {
        let s = |k: &str| {
            err.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Err((s("class"), s("desc")))
    } else {
        Ok(msg.get("return").cloned().unwrap_or(Value::Null))
    };
    Message::Reply { id, reply }
}

/// Reads messages until EOF or error, dispatching replies and events. On exit
/// it closes the pending map, which fails all waiting and later commands with
/// [`QmpError::Disconnected`] (or, after a message over [`MAX_QMP_LINE`], the
/// waiting ones with a protocol error naming the limit), and drops the event sender.
async fn reader_task(
    mut read: BufReader<OwnedReadHalf>,
    pending: Pending,
    events: broadcast::Sender<QmpEvent>,
) {
    let mut failure = None;
    loop {
        let line = match read_line_bounded(&mut read, MAX_QMP_LINE).await {
            Ok(Some(line)) => line,
            Ok(None) => {
                tracing::debug!("QMP connection closed by QEMU");
                break;
            }
            Err(e) => {
                let message = line_error_message(e);
                tracing::warn!(%message, "QMP: closing the connection");
                failure = Some(message);
                break;
            }
        };
        match parse_message(&line) {
            Message::Event(ev) => {
                if line.len() > MAX_QMP_EVENT_LINE {
                    tracing::warn!(event = %ev.event, len = line.len(), limit = MAX_QMP_EVENT_LINE,
                        "QMP: dropping an oversized event");
                    continue;
                }
                tracing::trace!(event = %ev.event, "QMP event");
                // No subscribers is fine: the event is simply not wanted.
                let _ = events.send(ev);
            }
            Message::Reply { id, reply } => {
                let waiter = pending
                    .lock()
                    .expect("pending lock poisoned")
                    .as_mut()
                    .and_then(|m| m.remove(&id));
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(Ok(reply));
                    }
                    None => {
                        tracing::debug!(
                            id,
                            "QMP: reply for a command nobody waits for (timed out?)"
                        )
                    }
                }
            }
            Message::Ignored(why) => tracing::warn!(%why, "QMP: ignoring a message"),
        }
    }
    let waiters = pending.lock().expect("pending lock poisoned").take();
    if let (Some(message), Some(waiters)) = (failure, waiters) {
        for (_, tx) in waiters {
            let _ = tx.send(Err(message.clone()));
        }
    }
}

/// A subscription to QMP events, from [`Qmp::events`].
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<QmpEvent>,
}

impl Events {
    /// The next event, waiting at most `timeout`.
    ///
    /// If this subscriber fell more than the channel capacity behind, the
    /// missed events are skipped (with a warning) and the oldest kept one is returned.
    pub async fn next(&mut self, timeout: Duration) -> Result<QmpEvent> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Ok(r) => r,
            Err(_) => Err(QmpError::Timeout {
                what: "next event".into(),
                timeout,
            }),
        }
    }

    async fn recv(&mut self) -> Result<QmpEvent> {
        loop {
            match self.rx.recv().await {
                Ok(ev) => return Ok(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "QMP event subscriber lagged")
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(QmpError::Disconnected {
                        what: "waiting for event".into(),
                    })
                }
            }
        }
    }

    /// Waits at most `timeout` for an event named `name` for which `predicate`
    /// returns true, skipping all others.
    pub async fn wait_for(
        &mut self,
        name: &str,
        mut predicate: impl FnMut(&QmpEvent) -> bool,
        timeout: Duration,
    ) -> Result<QmpEvent> {
        let fut = async {
            loop {
                let ev = self.recv().await?;
                if ev.event == name && predicate(&ev) {
                    return Ok(ev);
                }
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(QmpError::Timeout {
                what: format!("event {name}"),
                timeout,
            }),
        }
    }
}

/// VM run state from `query-status` (QAPI `RunState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// QEMU was started with `-S` and the VM has not run yet.
    Prelaunch,
    /// The guest is running.
    Running,
    /// Paused by `stop` or the monitor.
    Paused,
    /// Paused because of a block I/O error (`werror=stop`).
    IoError,
    /// Paused for an internal error.
    InternalError,
    /// Waiting for an incoming migration.
    Inmigrate,
    /// Paused after a completed outgoing migration.
    Postmigrate,
    /// Finishing an outgoing migration.
    FinishMigrate,
    /// Restoring a snapshot.
    RestoreVm,
    /// Saving a snapshot.
    SaveVm,
    /// The guest shut down and `-no-shutdown` keeps QEMU alive.
    Shutdown,
    /// The guest is suspended (ACPI S3).
    Suspended,
    /// Stopped by the watchdog.
    Watchdog,
    /// The guest panicked.
    GuestPanicked,
    /// Debugger stop.
    Debug,
    /// COLO fault tolerance.
    Colo,
    /// A state this crate does not know.
    #[serde(other)]
    Other,
}

/// Reply of `query-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// Whether the vCPUs are running.
    pub running: bool,
    /// The detailed run state.
    pub status: RunState,
}

/// One entry of `query-block`: a block device (drive) as seen by the guest side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// Device (drive) name, e.g. `drive0`; may be empty for `-blockdev`-only setups.
    pub device: String,
    /// Qdev id or path of the guest device the drive is attached to, if any.
    #[serde(default)]
    pub qdev: Option<String>,
    /// Whether the medium is removable.
    #[serde(default)]
    pub removable: bool,
    /// Whether the medium is locked.
    #[serde(default)]
    pub locked: bool,
    /// The node tree inserted in the device, `None` for an empty drive.
    #[serde(default)]
    pub inserted: Option<BlockDeviceInfo>,
}

/// A block node (`BlockDeviceInfo`): used in `query-block` (`inserted`) and
/// `query-named-block-nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDeviceInfo {
    /// Node name (auto-generated `#blockNNN` when none was given).
    #[serde(rename = "node-name", default)]
    pub node_name: Option<String>,
    /// File name or JSON description of the node.
    pub file: String,
    /// Driver (format or protocol), e.g. `qcow2`, `raw`, `file`.
    pub drv: String,
    /// Read-only?
    #[serde(default)]
    pub ro: bool,
    /// Backing file name, if any.
    #[serde(default)]
    pub backing_file: Option<String>,
    /// Depth of the backing chain.
    #[serde(default)]
    pub backing_file_depth: u32,
    /// Image details, including the virtual size.
    pub image: ImageInfo,
    /// Dirty bitmaps on this node (empty when none).
    #[serde(rename = "dirty-bitmaps", default)]
    pub dirty_bitmaps: Vec<DirtyBitmapInfo>,
}

/// Image information (`ImageInfo`) of a block node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageInfo {
    /// Image file name.
    pub filename: String,
    /// Image format, e.g. `qcow2`, `raw`, `file`.
    pub format: String,
    /// Size the guest sees, in bytes.
    pub virtual_size: u64,
    /// Bytes the image occupies on the host, if known.
    #[serde(default)]
    pub actual_size: Option<u64>,
    /// Cluster size, for formats that have one.
    #[serde(default)]
    pub cluster_size: Option<u64>,
    /// Whether the image is marked dirty (not cleanly closed).
    #[serde(default)]
    pub dirty_flag: Option<bool>,
    /// Backing file name as stored in the image.
    #[serde(default)]
    pub backing_filename: Option<String>,
    /// Information on the backing image, if any.
    #[serde(default)]
    pub backing_image: Option<Box<ImageInfo>>,
}

/// A dirty bitmap on a block node (`BlockDirtyInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirtyBitmapInfo {
    /// Bitmap name (absent for anonymous bitmaps).
    #[serde(default)]
    pub name: Option<String>,
    /// Number of dirty bytes.
    #[serde(default)]
    pub count: u64,
    /// Granularity in bytes.
    pub granularity: u64,
    /// Whether writes are being recorded (bitmap enabled).
    #[serde(default)]
    pub recording: bool,
    /// Whether the bitmap is in use by an operation (backup job, NBD export, ...).
    #[serde(default)]
    pub busy: bool,
    /// Whether the bitmap is stored in the image (qcow2) and survives QEMU restarts.
    #[serde(default)]
    pub persistent: bool,
    /// Whether the bitmap was found not cleanly saved; its content cannot be trusted.
    #[serde(default)]
    pub inconsistent: bool,
}

/// One action of a [`Qmp::transaction`]: `{"type": ..., "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransactionAction {
    /// Action type, e.g. `block-dirty-bitmap-add`, `blockdev-backup`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Arguments of the action.
    pub data: Value,
}

impl TransactionAction {
    /// Any action type with its arguments.
    pub fn new(kind: impl Into<String>, data: Value) -> Self {
        TransactionAction {
            kind: kind.into(),
            data,
        }
    }

    /// `block-dirty-bitmap-add` of bitmap `name` on `node`; `granularity` in
    /// bytes (QEMU's default when `None`).
    pub fn block_dirty_bitmap_add(
        node: &str,
        name: &str,
        granularity: Option<u32>,
        persistent: bool,
    ) -> Self {
        let mut data = json!({ "node": node, "name": name, "persistent": persistent });
        if let Some(g) = granularity {
            data["granularity"] = json!(g);
        }
        Self::new("block-dirty-bitmap-add", data)
    }

    /// `block-dirty-bitmap-clear` of bitmap `name` on `node`.
    pub fn block_dirty_bitmap_clear(node: &str, name: &str) -> Self {
        Self::new(
            "block-dirty-bitmap-clear",
            json!({ "node": node, "name": name }),
        )
    }

    /// `block-dirty-bitmap-remove` of bitmap `name` on `node`.
    pub fn block_dirty_bitmap_remove(node: &str, name: &str) -> Self {
        Self::new(
            "block-dirty-bitmap-remove",
            json!({ "node": node, "name": name }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_parses() {
        let (v, caps) = parse_greeting(
            br#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#,
        )
        .unwrap();
        assert_eq!((v.major, v.minor, v.micro), (7, 2, 22));
        assert_eq!(caps, vec!["oob".to_string()]);
        assert_eq!(v.to_string(), "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)");
        assert!(matches!(
            parse_greeting(b"{\"return\": {}}"),
            Err(QmpError::Protocol { .. })
        ));
    }

    #[test]
    fn run_state_unknown_is_other() {
        let s: StatusInfo =
            serde_json::from_value(json!({"running": false, "status": "brand-new"})).unwrap();
        assert_eq!(s.status, RunState::Other);
        let s: StatusInfo =
            serde_json::from_value(json!({"running": false, "status": "io-error"})).unwrap();
        assert_eq!(s.status, RunState::IoError);
    }

    #[test]
    fn transaction_action_shape() {
        let a = TransactionAction::block_dirty_bitmap_add("disk0", "b", Some(65536), true);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"type": "block-dirty-bitmap-add",
                   "data": {"node": "disk0", "name": "b", "persistent": true, "granularity": 65536}})
        );
    }
}
