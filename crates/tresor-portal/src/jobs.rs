//! Backup jobs: a vault's jobs, filtered by status and operation, with running jobs
//! updated in place (portal.js: `table[data-live-jobs]`); one job's details, tasks,
//! warnings, result or error, and "Cancel" while it runs.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use tresor_api::jobs::{Job, JobQuery, JobStatus};
use tresor_api::vaults::Vault;
use tresor_service::{Service, ServiceError};

use crate::layout::{
    badge, bytes, csrf_field, empty, error_box, notice, spaced, time, vault_page, vault_tabs,
    wire_name, with_status, Done,
};
use crate::permissions::{on_vault, Permission};
use crate::session::Operator;
use crate::urls::url_encode;
use crate::vaults::vault_of;

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/vaults/{vault}/jobs", get(list))
        .route("/vaults/{vault}/jobs/{job}", get(details))
        .route("/vaults/{vault}/jobs/{job}/cancel", post(cancel))
}

const STATUSES: [&str; 5] = [
    "InProgress",
    "Completed",
    "CompletedWithWarnings",
    "Failed",
    "Cancelled",
];

const OPERATIONS: [&str; 7] = [
    "Backup",
    "Restore",
    "ConfigureBackup",
    "DisableBackup",
    "DeleteBackupData",
    "Replication",
    "Verify",
];

/// Seconds as people read them: `42 s`, `3 min 5 s`, `2 h 10 min` (portal.js the same).
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// The task a job is at: the first one running, else the last one.
fn current_task(j: &Job) -> Option<&str> {
    j.tasks
        .iter()
        .find(|t| t.status == JobStatus::InProgress)
        .or(j.tasks.last())
        .map(|t| t.name.as_str())
}

/// A progress bar with its percent (portal.js draws the bar and updates both).
fn progress(percent: f64) -> Markup {
    let p = percent.clamp(0.0, 100.0);
    html! {
        div.progress-cell {
            div.progress role="progressbar" aria-label="Progress" aria-valuemin="0" aria-valuemax="100"
                aria-valuenow=(format!("{:.0}", p)) {
                // The width is set by portal.js from data-percent: the content security
                // policy allows no style attribute.
                span data-percent=(format!("{:.1}", p)) {}
            }
            span.percent data-field="percent" { (format!("{:.0} %", p)) }
        }
    }
}

/// A job's status badge, the element portal.js rewrites (`data-field=status`).
fn status_badge(status: &str) -> Markup {
    let b = badge(status).into_string();
    // badge() renders `<span class="badge ...">`; the live script needs the field name on it.
    maud::PreEscaped(b.replacen(
        "<span ",
        "<span data-field=\"status\" aria-live=\"polite\" ",
        1,
    ))
}

fn job_url(vault: &str, id: &str) -> String {
    format!("/vaults/{}/jobs/{}", url_encode(vault), url_encode(id))
}

fn item_link(vault: &str, j: &Job) -> Markup {
    let name = if j.vm_name.is_empty() {
        "–"
    } else {
        j.vm_name.as_str()
    };
    html! {
        @match &j.item_id {
            Some(id) if !j.vm_name.is_empty() => a href={ "/vaults/" (url_encode(vault)) "/items/" (url_encode(id)) } { (name) },
            _ => span.muted { (name) },
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    item: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    done: Option<String>,
}

fn chosen(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty() && *s != "all")
        .map(str::to_string)
}

async fn list(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path(vault): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let v = or_return!(vault_of(&state, &op, &vault).await);
    let status = chosen(q.status.as_deref());
    let operation = chosen(q.operation.as_deref());
    let item = chosen(q.item.as_deref());
    let query = JobQuery {
        status: status.clone(),
        operation: operation.clone(),
        item: item.clone(),
        limit: q.limit,
        ..JobQuery::default()
    };
    let jobs = or_page!(&op, state.jobs(&op.principal, v.name.clone(), query).await);
    let item_name = item.as_ref().map(|id| {
        jobs.iter()
            .find(|j| j.item_id.as_deref() == Some(id))
            .map(|j| j.vm_name.clone())
            .unwrap_or_else(|| id.clone())
    });
    let vurl = format!("/vaults/{}", url_encode(&v.name));
    let filtered = status.is_some() || operation.is_some() || item.is_some();
    let can = on_vault(&state, &op, &v);
    let body = html! {
        h1 { (v.name) }
        p.muted { "Recovery Services vault · " (v.location) }
        @if let Some(d) = &q.done { (notice(d)) }
        (vault_tabs(&v.name, "Backup jobs", &can))
        form.toolbar.job-filters #job-filters method="get" action={ (vurl) "/jobs" } aria-label="Filter jobs" {
            div.field {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" selected[status.is_none()] { "All" }
                    @for s in STATUSES {
                        option value=(s) selected[status.as_deref() == Some(s)] { (spaced(s)) }
                    }
                }
            }
            div.field {
                label for="operation" { "Operation" }
                select #operation name="operation" {
                    option value="" selected[operation.is_none()] { "All" }
                    @for o in OPERATIONS {
                        option value=(o) selected[operation.as_deref() == Some(o)] { (spaced(o)) }
                    }
                }
            }
            @if let Some(id) = &item {
                input type="hidden" name="item" value=(id);
            }
            div.filter-buttons {
                button.primary type="submit" { "Filter" }
                @if filtered { " " a.button href={ (vurl) "/jobs" } { "Clear filters" } }
            }
        }
        @if let Some(n) = &item_name {
            p.muted #job-item-filter { "Jobs of " strong { (n) } " only." }
        }
        @if jobs.is_empty() {
            @if filtered {
                (empty("No job matches these filters.", Some(("Show all jobs", &format!("{vurl}/jobs")))))
            } @else {
                (empty("No job yet. Jobs appear when backup is configured, a VM is backed up or restored.", None))
            }
        } @else {
            p.muted.small #jobs-count { (jobs.len()) " jobs, newest first." }
            (jobs_table(&v, &jobs))
        }
    };
    vault_page("Backup jobs", &op, &v.name, &[], body)
}

fn jobs_table(v: &Vault, jobs: &[Job]) -> Markup {
    html! {
        table #jobs data-live-jobs=(v.name) {
            caption.sr-only { "Backup jobs" }
            thead { tr {
                th scope="col" { "Operation" }
                th scope="col" { "Status" }
                th scope="col" { "VM" }
                th scope="col" { "Current task" }
                th scope="col" { "Start time" }
                th scope="col" { "Duration" }
                th scope="col" { "Progress" }
                th scope="col" { span.sr-only { "Details" } }
            } }
            tbody {
                @for j in jobs {
                    @let status = wire_name(&j.status);
                    @let operation = spaced(j.operation.as_str());
                    tr data-job=(j.id) data-status=(status) {
                        td { (operation) }
                        td { (status_badge(&status)) }
                        td { (item_link(&v.name, j)) }
                        td data-field="task" { (current_task(j).unwrap_or("–")) }
                        td { (time(Some(j.start_time))) }
                        td data-field="duration" { (duration(j.duration)) }
                        td { (progress(j.percent)) }
                        td { a href=(job_url(&v.name, &j.id)) aria-label={ "Details of the " (operation.to_lowercase()) " job of " (j.vm_name) ", " (j.start_time.strftime("%Y-%m-%d %H:%M UTC").to_string()) } { "Details" } }
                    }
                }
            }
        }
    }
}

async fn details(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, id)): Path<(String, String)>,
    Query(q): Query<Done>,
) -> Response {
    job_page(&op, &state, &vault, &id, q.done.as_deref(), None).await
}

/// A result's key as words: `bytesRead` → `Bytes read`.
fn key_words(key: &str) -> String {
    let s = spaced(key);
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// One value of a job's result.
fn result_value(key: &str, value: &Value) -> Markup {
    let k = key.to_ascii_lowercase();
    html! {
        @match value {
            Value::Null => span.muted { "–" },
            Value::Bool(b) => (if *b { "Yes" } else { "No" }),
            Value::Number(n) if k.contains("bytes") && n.as_u64().is_some() => (bytes(n.as_u64().unwrap_or(0))),
            Value::Number(n) if k.ends_with("ms") => { (n.to_string()) " ms" },
            Value::Number(n) => (n.to_string()),
            Value::String(s) => (s),
            Value::Array(a) if a.is_empty() => span.muted { "None" },
            Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
                ul.plain { @for x in a { li { code { (x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())) } } } }
            },
            Value::Array(a) => {
                ul.plain { @for x in a { li { code { (x.to_string()) } } } }
            },
            Value::Object(_) => code { (value.to_string()) },
        }
    }
}

/// What a finished job produced: its recovery point, restored disks, figures.
fn result_section(v: &Vault, j: &Job) -> Markup {
    let Some(obj) = j.result.as_object().filter(|o| !o.is_empty()) else {
        return html! {};
    };
    let vault = url_encode(&v.name);
    // What matters first: the point, its consistency, what was restored.
    const FIRST: [&str; 6] = [
        "recoveryPoint",
        "consistency",
        "item",
        "disks",
        "definition",
        "startScript",
    ];
    let rank = |k: &str| FIRST.iter().position(|f| *f == k).unwrap_or(FIRST.len());
    let mut entries: Vec<(&String, &Value)> = obj.iter().collect();
    entries.sort_by_key(|(k, _)| rank(k));
    html! {
        section.card aria-labelledby="result-h" {
            h2 #result-h { "Result" }
            dl.props #job-result {
                @for (key, value) in entries {
                    dt { (match key.as_str() {
                        "recoveryPoint" => "Recovery point".to_string(),
                        "item" => "Protected item".to_string(),
                        "disks" => "Restored disks".to_string(),
                        "startScript" => "Start script".to_string(),
                        "definition" => "VM definition".to_string(),
                        "frozenMs" => "File systems frozen for".to_string(),
                        k => key_words(k),
                    }) }
                    dd {
                        @match (key.as_str(), value) {
                            ("recoveryPoint", Value::String(p)) => {
                                @match &j.item_id {
                                    Some(item) => a #result-point href={ "/vaults/" (vault) "/items/" (url_encode(item)) "#point-" (p) } { code { (p) } },
                                    None => code { (p) },
                                }
                            },
                            ("item", Value::String(item)) => a href={ "/vaults/" (vault) "/items/" (url_encode(item)) } { (if j.vm_name.is_empty() { item.as_str() } else { j.vm_name.as_str() }) },
                            ("disks", Value::Array(disks)) => {
                                ul.plain { @for d in disks {
                                    li {
                                        @if let Some(path) = d["path"].as_str() { code { (path) } } @else { code { (d.to_string()) } }
                                        @if let Some(f) = d["format"].as_str() { " " span.muted { "(" (f) ")" } }
                                    }
                                } }
                            },
                            ("consistency", Value::String(c)) => (badge(c)),
                            (k, value) => (result_value(k, value)),
                        }
                    }
                }
            }
        }
    }
}

async fn job_page(
    op: &Operator,
    state: &Arc<Service>,
    vault: &str,
    id: &str,
    done: Option<&str>,
    error: Option<&ServiceError>,
) -> Response {
    let v = or_return!(vault_of(state, op, vault).await);
    let j = or_page!(
        op,
        state
            .job(&op.principal, v.name.clone(), id.to_string())
            .await
    );
    let vurl = format!("/vaults/{}", url_encode(&v.name));
    let url = job_url(&v.name, &j.id);
    let can = on_vault(state, op, &v);
    let running = matches!(j.status, JobStatus::InProgress | JobStatus::Cancelling);
    let status = wire_name(&j.status);
    let operation = spaced(j.operation.as_str());
    let what = if j.vm_name.is_empty() {
        operation.clone()
    } else {
        format!("{operation} of {}", j.vm_name)
    };
    let cancel_question = format!(
        "Cancel this {} job{}? It stops at its next step and ends as Cancelled.",
        operation.to_lowercase(),
        if j.vm_name.is_empty() {
            String::new()
        } else {
            format!(" of {}", j.vm_name)
        }
    );
    let body = html! {
        h1 { (what) }
        p.muted { "Job " code { (j.id) } " · vault " (v.name) }
        @if let Some(d) = done { (notice(d)) }
        @if let Some(e) = error { (error_box(e)) }
        (vault_tabs(&v.name, "Backup jobs", &can))
        @if let Some(err) = &j.error {
            div.alert.bad.job-error #job-error role="alert" aria-labelledby="job-error-h" {
                h2 #job-error-h { @if j.status == JobStatus::Failed { "This job failed" } @else { "Error" } }
                p #job-error-message { strong { (err.message) } }
                p #job-error-code { "Error code: " code { (err.code) } }
                @if !err.recommendation.is_empty() {
                    p #job-error-recommendation { "Recommended action: " (err.recommendation) }
                }
            }
        }
        div.toolbar {
            @if j.status == JobStatus::InProgress && can.allows(Permission::CancelJob) {
                form.inline #cancel-job method="post" action={ (url) "/cancel" }
                    data-confirm=(cancel_question) {
                    (csrf_field(op))
                    button.danger type="submit" { "Cancel job" }
                }
            }
            span.grow {}
            @if running { a href=(url) { "Refresh" } }
            a href={ (vurl) "/jobs" } { "All jobs" }
        }
        table #job data-live-jobs=(v.name) {
            caption.sr-only { "Progress" }
            thead { tr {
                th scope="col" { "Status" }
                th scope="col" { "Current task" }
                th scope="col" { "Duration" }
                th scope="col" { "Progress" }
            } }
            tbody {
                tr data-job=(j.id) data-status=(status) {
                    td { (status_badge(&status)) }
                    td data-field="task" { (current_task(&j).unwrap_or("–")) }
                    td data-field="duration" { (duration(j.duration)) }
                    td { (progress(j.percent)) }
                }
            }
        }
        @if running {
            p.muted.small { "Progress updates by itself; refresh the page to see the result when the job ends." }
        }
        div.cards {
            section.card aria-labelledby="props-h" {
                h2 #props-h { "Details" }
                dl.props #job-details {
                    dt { "Operation" } dd { (operation) }
                    dt { "Status" } dd { (badge(&status)) }
                    dt { "VM" } dd { (item_link(&v.name, &j)) }
                    dt { "Start time" } dd { (time(Some(j.start_time))) }
                    dt { "End time" } dd { (time(j.end_time)) }
                    dt { "Duration" } dd { (duration(j.duration)) }
                    dt { "Data" } dd {
                        @if j.bytes_total > 0 { (bytes(j.bytes_done)) " of " (bytes(j.bytes_total)) }
                        @else if j.bytes_done > 0 { (bytes(j.bytes_done)) }
                        @else { span.muted { "–" } }
                    }
                    dt { "Job ID" } dd { code { (j.id) } }
                }
            }
            section.card aria-labelledby="tasks-h" {
                h2 #tasks-h { "Tasks" }
                @if j.tasks.is_empty() {
                    p.muted { "This job has no separate tasks." }
                } @else {
                    table #tasks {
                        caption.sr-only { "Tasks" }
                        thead { tr { th scope="col" { "Task" } th scope="col" { "Status" } } }
                        tbody {
                            @for t in &j.tasks {
                                @let s = wire_name(&t.status);
                                tr { td { (t.name) } td { (badge(&s)) } }
                            }
                        }
                    }
                }
            }
        }
        @if !j.warnings.is_empty() {
            section.alert.warn #job-warnings aria-labelledby="warnings-h" {
                h2 #warnings-h { "Warnings" }
                ul { @for w in &j.warnings { li { (w) } } }
            }
        }
        (result_section(&v, &j))
    };
    with_status(
        vault_page(
            &what,
            op,
            &v.name,
            &[("Backup jobs", &format!("{vurl}/jobs"))],
            body,
        ),
        error,
    )
}

#[derive(Debug, Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
}

async fn cancel(
    op: Operator,
    State(state): State<Arc<Service>>,
    Path((vault, id)): Path<(String, String)>,
    Form(f): Form<CancelForm>,
) -> Response {
    if let Some(r) = op.csrf_rejection(&f.csrf) {
        return r;
    }
    match state
        .cancel_job(&op.principal, vault.clone(), id.clone())
        .await
    {
        Ok(j) => {
            let text = if j.status == JobStatus::Cancelled {
                "Job cancelled.".to_string()
            } else {
                "Cancel requested: the job stops at its next step and ends as Cancelled."
                    .to_string()
            };
            Redirect::to(&format!(
                "{}?done={}",
                job_url(&vault, &j.id),
                url_encode(&text)
            ))
            .into_response()
        }
        Err(e) => job_page(&op, &state, &vault, &id, None, Some(&e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(0.4), "0 s");
        assert_eq!(duration(42.0), "42 s");
        assert_eq!(duration(185.0), "3 min 5 s");
        assert_eq!(duration(7800.0), "2 h 10 min");
        assert_eq!(key_words("bytesRead"), "Bytes read");
    }

    #[test]
    fn the_status_badge_carries_its_field() {
        let b = status_badge("InProgress").into_string();
        assert!(b.starts_with("<span data-field=\"status\""), "{b}");
        assert!(b.contains("badge busy"), "{b}");
    }
}
