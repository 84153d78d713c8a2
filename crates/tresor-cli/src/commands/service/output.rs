//! What the management commands print: an answer as JSON or as a table, the
//! replication lines under a vault or item, and confirmations.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;
use tresor_api::vaults::{ReplicationHealth, ReplicationStatus};

use crate::cli::Output;
use crate::commands::repo::human;

/// `answer` (one object or a list) as JSON, or as a table of `columns`
/// (header, JSON field).
pub fn print<T: Serialize + ?Sized>(
    output: Output,
    answer: &T,
    columns: &[(&str, &str)],
) -> Result<()> {
    let v = serde_json::to_value(answer)?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let rows: Vec<&Value> = match &v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let cell = |row: &Value, field: &str| -> String {
        match &row[field] {
            Value::Null => "-".into(),
            Value::String(s) => s.clone(),
            Value::Number(n) if field == "size" => {
                n.as_u64().map(human).unwrap_or_else(|| n.to_string())
            }
            Value::Number(n) if field == "duration" || field == "percent" => {
                format!("{:.0}", n.as_f64().unwrap_or(0.0))
            }
            other => other.to_string(),
        }
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|(h, f)| {
            rows.iter()
                .map(|r| cell(r, f).len())
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|(h, _)| h.to_string()).collect());
    for r in &rows {
        line(columns.iter().map(|(_, f)| cell(r, f)).collect());
    }
    Ok(())
}

/// A value's name on the wire (`"CompletedWithWarnings"`), for messages.
pub fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Goes on when `yes` or the user says `y`; refuses without a terminal to ask.
pub fn confirm(yes: bool, what: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{what}: add --yes to confirm");
    }
    eprint!("{what}? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !answer.trim().eq_ignore_ascii_case("y") {
        bail!("not confirmed");
    }
    Ok(())
}

/// The replication status the server reports for a vault or an item.
pub fn print_replication(r: &ReplicationStatus) {
    if r.status == ReplicationHealth::NotApplicable {
        return;
    }
    let p = r.progress.as_ref();
    let soft_deleted = p.map_or(0, |p| p.soft_deleted_recovery_points);
    println!(
        "  replication to {}: {}; lag {:.0} s, {} pending in {} recovery points, {} recovery points in the secondary region{}",
        r.secondary_location.as_deref().unwrap_or("?"),
        wire_name(&r.status),
        p.map_or(0.0, |p| p.lag_seconds),
        human(p.map_or(0, |p| p.bytes_pending)),
        p.map_or(0, |p| p.pending_recovery_points),
        p.map_or(0, |p| p.recovery_points_on_secondary),
        if soft_deleted > 0 {
            format!(" ({soft_deleted} deleted from the primary, kept for the soft-delete window)")
        } else {
            String::new()
        }
    );
    let Some(p) = p else { return };
    if let Some(t) = p.last_success {
        println!("  last replicated: {t}");
    }
    if let Some(e) = &p.last_error {
        println!("  last error {} at {}: {}", e.code, e.time, e.message);
        println!("  recommended action: {}", e.recommendation);
        if let Some(t) = p.next_attempt {
            println!("  next attempt: {t}");
        }
    }
}
