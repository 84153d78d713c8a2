//! `tresor audit ...`: list the audit log, verify its hash chain.

use anyhow::{bail, Result};
use tresor_api::audit::AuditQuery;
use tresor_client::ApiClient;

use super::output::print;
use crate::cli::{AuditCommand, Output};

const AUDIT_COLUMNS: &[(&str, &str)] = &[
    ("SEQ", "seq"),
    ("TIME", "time"),
    ("KIND", "actorKind"),
    ("ACTOR", "actor"),
    ("ORIGIN", "origin"),
    ("ACTION", "action"),
    ("VAULT", "vault"),
    ("OBJECT", "object"),
    ("RESULT", "result"),
];

const VERIFY_COLUMNS: &[(&str, &str)] = &[
    ("INTACT", "intact"),
    ("ENTRIES", "entries"),
    ("LAST SEQ", "lastSeq"),
    ("LAST HASH", "lastHash"),
    ("BROKEN SEQ", "brokenSeq"),
];

pub async fn audit(api: &ApiClient, output: Output, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::List { from, limit, vault } => {
            let query = AuditQuery {
                from,
                limit: Some(limit),
                vault,
            };
            print(output, &api.audit(&query).await?, AUDIT_COLUMNS)
        }
        AuditCommand::Verify => {
            let v = api.verify_audit().await?;
            print(output, &v, VERIFY_COLUMNS)?;
            match (v.broken_seq, v.problem) {
                (Some(_), Some(problem)) => bail!("the audit log's chain is broken at {problem}"),
                (Some(seq), None) => bail!("the audit log's chain is broken at entry {seq}"),
                (None, _) => Ok(()),
            }
        }
    }
}
