//! Jobs: the record of every operation on a protected item, as in Azure
//! Backup's jobs view, with their tasks and errors.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::RuleError;

/// What a job does (Azure's `operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum JobOperation {
    ConfigureBackup,
    Backup,
    Restore,
    DisableBackup,
    DeleteBackupData,
    /// Copying a GeoRedundant vault's new data to its paired location (the server's
    /// own job).
    Replication,
    /// Re-reading a vault's data in one region (the server's own job).
    Verify,
    /// Removing data no recovery point needs (the server's own job).
    GarbageCollection,
}

impl JobOperation {
    /// Its name in JSON and in the catalogue (`"DeleteBackupData"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobOperation::ConfigureBackup => "ConfigureBackup",
            JobOperation::Backup => "Backup",
            JobOperation::Restore => "Restore",
            JobOperation::DisableBackup => "DisableBackup",
            JobOperation::DeleteBackupData => "DeleteBackupData",
            JobOperation::Replication => "Replication",
            JobOperation::Verify => "Verify",
            JobOperation::GarbageCollection => "GarbageCollection",
        }
    }
}

/// Where a job, or one of its tasks, stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum JobStatus {
    InProgress,
    Completed,
    /// Done, with something to look at (a crash-consistent point where an
    /// application-consistent one was asked for, say).
    CompletedWithWarnings,
    Failed,
    Cancelled,
    /// Cancel was asked; the job is winding down.
    Cancelling,
}

impl JobStatus {
    /// Whether the job is over and its status final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed
                | JobStatus::CompletedWithWarnings
                | JobStatus::Failed
                | JobStatus::Cancelled
        )
    }
}

/// A step of a job, such as "Take snapshot" or "Transfer data to vault".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTask {
    pub name: String,
    pub status: JobStatus,
}

/// Why a job failed or warned: a code, what happened, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobErrorInfo {
    pub code: String,
    pub message: String,
    pub recommendation: String,
}

impl From<RuleError> for JobErrorInfo {
    fn from(e: RuleError) -> Self {
        JobErrorInfo {
            code: e.code.to_owned(),
            message: e.message,
            recommendation: e.recommendation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses() {
        use JobStatus::*;
        let terminal: Vec<_> = [
            InProgress,
            Completed,
            CompletedWithWarnings,
            Failed,
            Cancelled,
            Cancelling,
        ]
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
        assert_eq!(
            terminal,
            [Completed, CompletedWithWarnings, Failed, Cancelled]
        );
    }

    #[test]
    fn serde() {
        let task = JobTask {
            name: "Take snapshot".into(),
            status: JobStatus::InProgress,
        };
        let json = serde_json::to_value(&task).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "Take snapshot", "status": "InProgress"})
        );
        assert_eq!(
            serde_json::to_value(JobOperation::DeleteBackupData).unwrap(),
            "DeleteBackupData"
        );
        let info = JobErrorInfo::from(RuleError::new("ProtectionStopped", "m", "r"));
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "ProtectionStopped", "message": "m", "recommendation": "r"})
        );
        assert_eq!(serde_json::from_value::<JobErrorInfo>(json).unwrap(), info);
    }
}
