//! Client for the QEMU guest agent (`qemu-ga`) over the host end of its
//! virtio-serial port (a unix socket chardev, e.g.
//! `-chardev socket,path=qga.sock,server=on,wait=off,id=qga0
//!  -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0`).
//!
//! Protocol facts this client relies on:
//!
//! * qemu-ga speaks newline-separated JSON like QMP but sends **no greeting** and
//!   its replies carry no ids: one command, one reply, in order.
//! * The stream can hold stale data (replies to commands of an earlier client or
//!   to commands that timed out, half-written requests). To resynchronise, the
//!   client sends the byte `0xFF` (which resets the agent's JSON parser) followed
//!   by `guest-sync-delimited` with a random id; the agent answers with `0xFF`
//!   followed by `{"return": ID}`. Everything before that reply is discarded.
//! * A port with no agent behind it (guest not booted, agent not installed)
//!   accepts writes and never answers. Every call therefore has a timeout, and a
//!   timeout is the distinct error [`GuestAgentError::NotResponding`].
//!
//! The client synchronises before the first command and again after any
//! timeout or protocol error, so one bad exchange does not poison later ones.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::line::{read_line_bounded, LineError};

/// Largest line read from the guest agent. Its replies are small (`guest-info`
/// lists about 50 commands in a few KiB; file system lists stay well below this);
/// the guest is not trusted, and a longer line is a protocol error naming this
/// limit (while resynchronising, it is discarded as stale data).
pub const MAX_QGA_LINE: usize = 1024 * 1024;

/// The delimiter byte of `guest-sync-delimited` (never valid in UTF-8 JSON).
const DELIMITER: u8 = 0xFF;

/// Errors of the guest-agent client. Each names the command that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuestAgentError {
    /// The unix socket could not be connected.
    #[error("connecting to guest agent socket {path}: {source}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// No answer within the timeout: usually no agent runs in the guest.
    #[error("guest agent not responding to {command} within {timeout:?} (is qemu-ga running in the guest?)")]
    NotResponding {
        /// The command that got no answer.
        command: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The socket was closed (QEMU exited or the chardev was removed).
    #[error("guest agent connection closed during {command}")]
    Disconnected {
        /// The command during which the connection closed.
        command: String,
    },
    /// The agent answered with an `error` object.
    #[error("guest agent command {command} failed: {class}: {desc}")]
    Command {
        /// The command that failed.
        command: String,
        /// Error class, e.g. `GenericError`, `CommandNotFound`.
        class: String,
        /// Description from the agent.
        desc: String,
    },
    /// The agent sent something that is not a valid reply.
    #[error("guest agent command {command}: protocol error: {message}")]
    Protocol {
        /// The command being answered.
        command: String,
        /// What was wrong.
        message: String,
    },
    /// A reply did not have the expected shape.
    #[error("guest agent command {command}: unexpected reply shape: {source}")]
    Decode {
        /// The command whose reply could not be decoded.
        command: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// Socket I/O failed for a reason other than a closed connection.
    #[error("guest agent command {command}: socket I/O: {source}")]
    Io {
        /// The command being sent or answered.
        command: String,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Result type of this module.
pub type Result<T, E = GuestAgentError> = std::result::Result<T, E>;

/// File-system freeze state reported by `guest-fsfreeze-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsFreezeStatus {
    /// File systems are frozen.
    Frozen,
    /// File systems are not frozen.
    Thawed,
}

/// Reply of `guest-info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// qemu-ga version, e.g. `7.2.0`.
    pub version: String,
    /// Commands the agent knows, with whether each is enabled.
    #[serde(rename = "supported_commands", default)]
    pub supported_commands: Vec<AgentCommandInfo>,
}

impl AgentInfo {
    /// Whether `command` is known and enabled.
    pub fn supports(&self, command: &str) -> bool {
        self.supported_commands
            .iter()
            .any(|c| c.name == command && c.enabled)
    }
}

/// One entry of [`AgentInfo::supported_commands`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCommandInfo {
    /// Command name, e.g. `guest-fsfreeze-freeze`.
    pub name: String,
    /// Whether it is enabled (agents can block commands).
    pub enabled: bool,
    /// Whether it sends a reply on success (`guest-shutdown` does not).
    #[serde(rename = "success-response", default = "yes")]
    pub success_response: bool,
}

fn yes() -> bool {
    true
}

/// A connection to a guest agent. Commands run one at a time (`&mut self`).
#[derive(Debug)]
pub struct GuestAgent {
    stream: BufReader<UnixStream>,
    timeout: Duration,
    /// Set before the first command and after any failed exchange.
    needs_sync: bool,
}

impl GuestAgent {
    /// Connects to the host end of the agent's port. Does not talk to the agent
    /// yet (an absent agent is only noticed by the first command, which syncs first).
    ///
    /// `timeout` bounds the connect and every later command.
    pub async fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<GuestAgent> {
        let path = path.as_ref();
        let stream = match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(GuestAgentError::Connect {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Err(_) => {
                return Err(GuestAgentError::NotResponding {
                    command: format!("connect to {}", path.display()),
                    timeout,
                })
            }
        };
        Ok(GuestAgent {
            stream: BufReader::new(stream),
            timeout,
            needs_sync: true,
        })
    }

    /// The timeout of each command.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the timeout of later commands.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Resynchronises the stream: sends `0xFF` and `guest-sync-delimited` with a
    /// random id and discards everything up to the matching reply.
    pub async fn sync(&mut self) -> Result<()> {
        const CMD: &str = "guest-sync-delimited";
        let timeout = self.timeout;
        let id = random_id();
        let r = tokio::time::timeout(timeout, self.sync_inner(id)).await;
        match r {
            Ok(Ok(())) => {
                self.needs_sync = false;
                Ok(())
            }
            Ok(Err(e)) => {
                self.needs_sync = true;
                Err(e)
            }
            Err(_) => {
                self.needs_sync = true;
                Err(GuestAgentError::NotResponding {
                    command: CMD.into(),
                    timeout,
                })
            }
        }
    }

    async fn sync_inner(&mut self, id: u64) -> Result<()> {
        const CMD: &str = "guest-sync-delimited";
        let mut msg = vec![DELIMITER];
        msg.extend_from_slice(
            json!({ "execute": CMD, "arguments": { "id": id } })
                .to_string()
                .as_bytes(),
        );
        msg.push(b'\n');
        self.write(CMD, &msg).await?;
        loop {
            let line = match self.read_line(CMD).await {
                Ok(line) => line,
                // Stale data may be anything; the sync's timeout bounds the wait.
                Err(GuestAgentError::Protocol { .. }) => {
                    tracing::trace!("guest agent: discarding an over-long line before sync");
                    continue;
                }
                Err(e) => return Err(e),
            };
            match parse_sync_line(&line, id) {
                SyncLine::Synced => return Ok(()),
                SyncLine::Error(err) => return Err(command_error(CMD, &err)),
                SyncLine::Stale => {
                    tracing::trace!(len = line.len(), "guest agent: discarding data before sync")
                }
            }
        }
    }

    /// Runs `command` with optional `arguments` and returns its `return` value.
    /// Synchronises first if needed (first command, or after a failure).
    pub async fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        if self.needs_sync {
            self.sync().await?;
        }
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.execute_inner(command, arguments)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                // An error reply leaves the stream in step; anything else may not.
                if !matches!(e, GuestAgentError::Command { .. }) {
                    self.needs_sync = true;
                }
                Err(e)
            }
            Err(_) => {
                self.needs_sync = true;
                Err(GuestAgentError::NotResponding {
                    command: command.to_string(),
                    timeout,
                })
            }
        }
    }

    async fn execute_inner(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(b'\n');
        self.write(command, &bytes).await?;
        loop {
            let line = self.read_line(command).await?;
            if let Some(reply) = parse_reply_line(command, &line) {
                return reply;
            }
        }
    }

    /// Runs `command` and decodes its `return` value into `T`.
    pub async fn execute_as<T: DeserializeOwned>(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<T> {
        let v = self.execute(command, arguments).await?;
        serde_json::from_value(v).map_err(|source| GuestAgentError::Decode {
            command: command.to_string(),
            source,
        })
    }

    /// `guest-ping`: checks the agent answers.
    pub async fn ping(&mut self) -> Result<()> {
        self.execute("guest-ping", None).await?;
        Ok(())
    }

    /// `guest-info`: agent version and supported commands.
    pub async fn info(&mut self) -> Result<AgentInfo> {
        self.execute_as("guest-info", None).await
    }

    /// `guest-fsfreeze-freeze`: freezes the guest's file systems; returns how
    /// many were frozen. Thaw with [`GuestAgent::fsfreeze_thaw`] soon: a frozen
    /// guest blocks all writers.
    pub async fn fsfreeze_freeze(&mut self) -> Result<u64> {
        self.execute_as("guest-fsfreeze-freeze", None).await
    }

    /// `guest-fsfreeze-thaw`: thaws the guest's file systems; returns how many were thawed.
    pub async fn fsfreeze_thaw(&mut self) -> Result<u64> {
        self.execute_as("guest-fsfreeze-thaw", None).await
    }

    /// `guest-fsfreeze-status`: whether the file systems are frozen.
    pub async fn fsfreeze_status(&mut self) -> Result<FsFreezeStatus> {
        self.execute_as("guest-fsfreeze-status", None).await
    }

    async fn write(&mut self, command: &str, bytes: &[u8]) -> Result<()> {
        let s = self.stream.get_mut();
        let r = async {
            s.write_all(bytes).await?;
            s.flush().await
        }
        .await;
        r.map_err(|e| io_error(command, e))
    }

    /// Reads one line (without the newline) of at most [`MAX_QGA_LINE`] bytes. EOF
    /// is [`GuestAgentError::Disconnected`], a longer line [`GuestAgentError::Protocol`].
    async fn read_line(&mut self, command: &str) -> Result<Vec<u8>> {
        match read_line_bounded(&mut self.stream, MAX_QGA_LINE).await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => Err(GuestAgentError::Disconnected {
                command: command.to_string(),
            }),
            Err(LineError::Io(e)) => Err(io_error(command, e)),
            Err(LineError::TooLong { limit }) => Err(GuestAgentError::Protocol {
                command: command.to_string(),
                message: format!("reply line longer than the limit of {limit} bytes"),
            }),
        }
    }
}

/// What a line read while resynchronising is.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncLine {
    /// The reply to the `guest-sync-delimited` with the expected id.
    Synced,
    /// An error reply after the delimiter (the `error` object).
    Error(Value),
    /// Anything else: stale data to discard.
    Stale,
}

/// Parses a line read after sending `guest-sync-delimited` with `id`. Only what
/// follows the last delimiter on a line can be the reply. Pure (no I/O), public
/// for fuzzing and tests.
pub fn parse_sync_line(line: &[u8], id: u64) -> SyncLine {
    let Some(pos) = line.iter().rposition(|&b| b == DELIMITER) else {
        return SyncLine::Stale;
    };
    let Ok(v) = serde_json::from_slice::<Value>(&line[pos + 1..]) else {
        return SyncLine::Stale;
    };
    if v.get("return").and_then(Value::as_u64) == Some(id) {
        return SyncLine::Synced;
    }
    match v.get("error") {
        Some(err) => SyncLine::Error(err.clone()),
        None => SyncLine::Stale,
    }
}

/// Parses a line read after sending `command`: `None` for a blank line (read the
/// next), else the command's `return` value or its error. Pure (no I/O), public
/// for fuzzing and tests.
pub fn parse_reply_line(command: &str, line: &[u8]) -> Option<Result<Value>> {
    let text: Vec<u8> = line.iter().copied().filter(|&b| b != DELIMITER).collect();
    if text.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let v: Value = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => {
            let shown = String::from_utf8_lossy(&text[..text.len().min(200)]);
            return Some(Err(GuestAgentError::Protocol {
                command: command.to_string(),
                message: format!("unparsable reply ({e}): {}", shown.trim()),
            }));
        }
    };
    if let Some(err) = v.get("error") {
        return Some(Err(command_error(command, err)));
    }
    if let Some(r) = v.get("return") {
        return Some(Ok(r.clone()));
    }
    let shown = v.to_string();
    Some(Err(GuestAgentError::Protocol {
        command: command.to_string(),
        message: format!(
            "reply has neither return nor error: {}",
            shown.chars().take(200).collect::<String>()
        ),
    }))
}

fn command_error(command: &str, err: &Value) -> GuestAgentError {
    let s = |k: &str| {
        err.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    GuestAgentError::Command {
        command: command.to_string(),
        class: s("class"),
        desc: s("desc"),
    }
}

fn io_error(command: &str, e: std::io::Error) -> GuestAgentError {
    use std::io::ErrorKind::*;
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected | UnexpectedEof => {
            GuestAgentError::Disconnected {
                command: command.to_string(),
            }
        }
        _ => GuestAgentError::Io {
            command: command.to_string(),
            source: e,
        },
    }
}

/// A random id for `guest-sync-delimited`, below 2^53 so every JSON parser
/// keeps it exact.
fn random_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() & ((1 << 53) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_differ_and_fit() {
        let a = random_id();
        let b = random_id();
        assert_ne!(a, b);
        assert!(a < (1 << 53) && b < (1 << 53));
    }

    #[test]
    fn info_decodes() {
        let i: AgentInfo = serde_json::from_value(json!({
            "version": "7.2.0",
            "supported_commands": [
                {"enabled": true, "name": "guest-ping", "success-response": true},
                {"enabled": false, "name": "guest-exec", "success-response": true}
            ]
        }))
        .unwrap();
        assert!(i.supports("guest-ping"));
        assert!(!i.supports("guest-exec"));
        assert!(!i.supports("guest-nothing"));
    }
}
