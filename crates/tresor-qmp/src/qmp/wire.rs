//! The wire format: the greeting and each line QEMU sends on the monitor,
//! parsed by pure functions (no I/O), public for fuzzing and tests.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{QmpError, Result};

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

/// A reply to one command: the `return` value or the (class, desc) of the `error`.
pub type Reply = std::result::Result<Value, (String, String)>;

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
}
