//! The typed commands (`query-status`, `query-block`, `transaction`, HMP...)
//! and the shapes of their arguments and replies.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::connection::Qmp;
use super::error::{QmpError, Result};

impl Qmp {
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
