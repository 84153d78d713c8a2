//! The connection: the socket, the reader task that dispatches what QEMU
//! sends, commands matched to their replies by id, and the event channel.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::{QmpError, Result};
use super::wire::{parse_greeting, parse_message, Message, QmpEvent, QmpVersion, Reply};
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

/// Pending commands: id -> the waiting caller. `None` once the reader has ended.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Outcome>>>>>;

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

fn line_error_message(e: LineError) -> String {
    match e {
        LineError::Io(e) => format!("reading: {e}"),
        LineError::TooLong { limit } => {
            format!("message longer than the limit of {limit} bytes")
        }
    }
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
