//! `tresor job ...`: list, show, wait for and stop jobs; and how every command that
//! starts a job shows it.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Deserialize;
use tresor_api::jobs::{BackupResult, Job, JobOperation, JobQuery, JobStatus};
use tresor_client::ApiClient;

use super::output::{print, wire_name};
use crate::cli::{JobCommand, Output};

pub const JOB_COLUMNS: &[(&str, &str)] = &[
    ("NAME", "id"),
    ("OPERATION", "operation"),
    ("STATUS", "status"),
    ("ITEM", "vmName"),
    ("START", "startTime"),
    ("DURATION", "duration"),
    ("PERCENT", "percent"),
];

pub async fn job(api: &ApiClient, output: Output, cmd: JobCommand) -> Result<()> {
    match cmd {
        JobCommand::List {
            vault,
            status,
            operation,
            limit,
        } => {
            let query = JobQuery {
                status,
                operation,
                limit: Some(limit),
                ..JobQuery::default()
            };
            print(
                output,
                &api.jobs(&vault.vault_name, &query).await?,
                JOB_COLUMNS,
            )
        }
        JobCommand::Show { vault, name } => {
            print_job(output, &api.job(&vault.vault_name, &name).await?)
        }
        JobCommand::Stop { vault, name } => print(
            output,
            &api.cancel_job(&vault.vault_name, &name).await?,
            JOB_COLUMNS,
        ),
        JobCommand::Wait {
            vault,
            name,
            timeout,
        } => {
            let job = wait_for_job(api, &vault.vault_name, &name, timeout).await?;
            print_job(output, &job)?;
            job_succeeded(&job)
        }
    }
}

/// Polls a job until it ends, with a progress bar on a terminal.
pub async fn wait_for_job(api: &ApiClient, vault: &str, name: &str, timeout: u64) -> Result<Job> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(100);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}%").expect("template"),
        );
        b
    });
    let started = std::time::Instant::now();
    let job = loop {
        let job = api.job(vault, name).await?;
        if let Some(b) = &bar {
            b.set_message(format!("{} {}", job.operation.as_str(), job.vm_name));
            b.set_position(job.percent as u64);
        }
        if job.status.is_terminal() {
            break job;
        }
        if started.elapsed() > Duration::from_secs(timeout) {
            bail!("job {name} still runs after {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(job)
}

/// Ok when the job completed; an error naming its code and message otherwise.
pub fn job_succeeded(job: &Job) -> Result<()> {
    match job.status {
        JobStatus::Completed | JobStatus::CompletedWithWarnings => Ok(()),
        status => {
            let (code, message) = job
                .error
                .as_ref()
                .map_or(("", ""), |e| (e.code.as_str(), e.message.as_str()));
            bail!(
                "job {} ended {}: {code} {message}",
                job.id,
                wire_name(&status)
            )
        }
    }
}

/// A job, with its tasks, warnings, error and recovery point under the table.
pub fn print_job(output: Output, job: &Job) -> Result<()> {
    print(output, job, JOB_COLUMNS)?;
    if output == Output::Table {
        for t in &job.tasks {
            println!("  task {:<28} {}", t.name, wire_name(&t.status));
        }
        for w in &job.warnings {
            println!("  warning: {w}");
        }
        if let Some(e) = &job.error {
            println!("  error {}: {}", e.code, e.message);
            println!("  recommended action: {}", e.recommendation);
        }
        if job.operation == JobOperation::Backup {
            if let Ok(r) = BackupResult::deserialize(&job.result) {
                println!("  recovery point: {}", r.recovery_point);
            }
        }
    }
    Ok(())
}
