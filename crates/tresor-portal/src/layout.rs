//! The page shell and the small pieces every page uses: header and navigation,
//! breadcrumbs, status badges, times, error boxes, the CSRF field.
//!
//! Pages are plain HTML (maud escapes every value). They work without scripts; the
//! portal's one script (`/assets/portal.js`) adds live validation and live job
//! progress where the page asks for it with `data-*` attributes.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use jiff::Timestamp;
use maud::{html, Markup, PreEscaped, Render, DOCTYPE};
use serde::{Deserialize, Serialize};

use tresor_api::vaults::ReplicationError;
use tresor_api::ErrorCode;
use tresor_service::ServiceError;

use crate::permissions::{Permission, PermissionSet};
use crate::session::Operator;
use crate::urls::url_encode;

/// Where a page sits, for the breadcrumb trail: (label, link).
pub type Crumbs<'a> = &'a [(&'a str, &'a str)];

/// A whole page.
pub fn page(title: &str, op: Option<&Operator>, crumbs: Crumbs, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                @if let Some(op) = op { meta name="csrf-token" content=(op.csrf); }
                title { (title) " · Tresor" }
                link rel="stylesheet" href="/assets/portal.css";
                script src="/assets/portal.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" aria-label="Tresor home" {
                        span.logo aria-hidden="true" { "◆" } " Tresor"
                    }
                    @if let Some(op) = op {
                        nav aria-label="Main" {
                            a href="/vaults" { "Recovery Services vaults" }
                            // Host agents and the audit log are the installation's
                            // (their use cases ask for `/`).
                            @if op.can.allows(Permission::ReadVaults) { a href="/agents" { "Host agents" } }
                            @if op.can.allows(Permission::ReadAudit) { a href="/audit" { "Audit log" } }
                            @if op.can.allows(Permission::ManageAccess) { a href="/users" { "Users" } }
                            // Whoever reads vaults somewhere, or approves for a guard.
                            @if op.sees_guards { a href="/guards" { "Resource guards" } }
                        }
                        form.signout method="post" action="/logout" {
                            (csrf_field(op))
                            @if op.is_user() {
                                a.who href="/account" title="My account" { (op.who) }
                            } @else {
                                span.who { (op.who) }
                            }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    @if !crumbs.is_empty() {
                        nav.crumbs aria-label="Breadcrumb" {
                            ol {
                                @for (label, href) in crumbs {
                                    li { a href=(href) { (label) } }
                                }
                                li aria-current="page" { (title) }
                            }
                        }
                    }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(op: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(op.csrf); }
}

/// A badge for a status or state, coloured by what it means.
pub fn badge(text: &str) -> Markup {
    let class = match text {
        "Completed"
        | "Protected"
        | "UpToDate"
        | "Online"
        | "Healthy"
        | "ok"
        | "AppConsistent"
        | "FileSystemConsistent"
        | "Approved" => "good",
        "CompletedWithWarnings"
        | "InitialBackupPending"
        | "Replicating"
        | "Cancelling"
        | "CrashConsistent"
        | "Pending"
        | "WARNING"
        | "ProtectionStopped" => "warn",
        "Failed" | "ProtectionError" | "Failing" | "Offline" | "Unhealthy" | "ERROR"
        | "Rejected" => "bad",
        "InProgress" => "busy",
        _ => "plain",
    };
    html! { span class={ "badge " (class) } { (spaced(text)) } }
}

/// `InitialBackupPending` → `Initial backup pending`: names read as words.
pub fn spaced(name: &str) -> String {
    let mut out = String::new();
    let mut prev: Option<char> = None;
    for c in name.chars() {
        if c.is_uppercase() && prev.is_some_and(|p| !p.is_uppercase()) {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

/// A time, readable and machine-readable (UTC).
pub fn time(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => {
            let text = t.strftime("%Y-%m-%d %H:%M UTC").to_string();
            html! { time datetime=(t.to_string()) { (text) } }
        }
        None => html! { span.muted { "–" } },
    }
}

/// Bytes in binary units.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A service error as the operator sees it: what, its code, and what to do.
pub fn error_box(e: &ServiceError) -> Markup {
    html! {
        div.alert.bad role="alert" {
            p { strong { (e.message) } }
            p.small { "Code " code { (e.code) } }
            @if !e.recommendation.is_empty() {
                p { "What to do: " (e.recommendation) }
            }
        }
    }
}

/// The message of `error` beside the form field it concerns: when its code is one of
/// `codes`, what is wrong and what to do.
pub fn field_error(error: Option<&ServiceError>, codes: &[ErrorCode]) -> Option<String> {
    let e = error?;
    codes
        .contains(&e.code)
        .then(|| format!("{} {}", e.message, e.recommendation))
}

/// Why the last replication run failed, as the vault and item pages show it.
pub fn replication_error(e: &ReplicationError) -> Markup {
    html! {
        div.alert.bad role="alert" {
            p { strong { (e.message) } }
            p.small { "Code " code { (e.code) } }
            p { "What to do: " (e.recommendation) }
        }
    }
}

/// A one-line notice after an action (`?done=...`).
pub fn notice(text: &str) -> Markup {
    html! { div.alert.good role="status" { (text) } }
}

/// A redirect to `path` with a notice of what was done (the page shows `?done=`).
pub fn redirect_done(path: &str, text: &str) -> Response {
    Redirect::to(&format!("{path}?done={}", url_encode(text))).into_response()
}

/// The value of field `key` of a form read as pairs ("" when missing): forms with
/// repeated fields (checkboxes) are read that way.
pub fn form_value<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// An empty state: a sentence and, maybe, the way out of it.
pub fn empty(text: &str, action: Option<(&str, &str)>) -> Markup {
    html! {
        div.empty {
            p { (text) }
            @if let Some((label, href)) = action {
                a.button.primary href=(href) { (label) }
            }
        }
    }
}

/// Raw markup the page builds itself (only constant strings).
pub fn raw(s: &'static str) -> PreEscaped<&'static str> {
    PreEscaped(s)
}

/// The tabs of a vault's pages; "+ Backup" for those who may enable protection.
pub fn vault_tabs(vault: &str, current: &str, can: &PermissionSet) -> Markup {
    let tabs = [
        ("Overview", format!("/vaults/{vault}")),
        ("Backup items", format!("/vaults/{vault}/items")),
        ("Backup jobs", format!("/vaults/{vault}/jobs")),
        ("Backup policies", format!("/vaults/{vault}/policies")),
        (
            "Backup configuration",
            format!("/vaults/{vault}/configuration"),
        ),
    ];
    html! {
        nav.tabs aria-label="Vault" {
            @for (label, href) in &tabs {
                @if *label == current {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
            @if can.allows(Permission::EnableProtection) {
                a.button.primary href={ "/vaults/" (vault) "/backup" } { "+ Backup" }
            }
        }
    }
}

/// The query of a page that can say what was just done (`?done=...`): after a form
/// succeeds, its handler redirects there with a sentence the page shows as a notice.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    pub done: Option<String>,
}

/// Sets the response's status to the error's, if there is one.
///
/// A form shown again after the service refused it carries the error's status (400, 404,
/// 409...), so every page builder that takes an optional error ends with this.
pub fn with_status(mut r: Response, error: Option<&ServiceError>) -> Response {
    if let Some(e) = error {
        *r.status_mut() = status_of(e);
    }
    r
}

/// The HTTP status of a service error.
pub fn status_of(e: &ServiceError) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The name an enum value has on the wire (`GeoRedundant`, `InProgress`), to show and
/// to match on.
pub fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The breadcrumb trail of a vault's subpages: "Vaults", the vault, then `more`.
///
/// Every vault page starts its trail the same way; the links are owned strings
/// because the vault's link is built from its name.
pub fn vault_crumbs(vault: &str, more: Crumbs) -> Vec<(String, String)> {
    let mut out = vec![
        ("Vaults".to_string(), "/vaults".to_string()),
        (vault.to_string(), format!("/vaults/{}", url_encode(vault))),
    ];
    out.extend(more.iter().map(|(l, h)| (l.to_string(), h.to_string())));
    out
}

/// A page under a vault: [`page`] with the trail of [`vault_crumbs`].
pub fn vault_page(title: &str, op: &Operator, vault: &str, more: Crumbs, body: Markup) -> Response {
    let owned = vault_crumbs(vault, more);
    let crumbs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(l, h)| (l.as_str(), h.as_str()))
        .collect();
    page(title, Some(op), &crumbs, body)
}

/// One input of a form, with its label, hint and error line.
///
/// Every form of the portal renders its inputs the same way: the input `#X` (named
/// `X`) is described by `#X-hint` and `#X-error` (a polite live region the portal's
/// script also fills), and is marked `aria-invalid` while it has an error. The script
/// and the browser tests rely on these ids, so they are made here, once. Build it with
/// [`Field::new`], add the attributes the input needs, and put it in a page as `(field)`.
pub struct Field<'a> {
    id: &'a str,
    kind: &'a str,
    label: Markup,
    value: &'a str,
    hint: Markup,
    error: Option<&'a str>,
    class: &'a str,
    required: bool,
    validate: Option<&'a str>,
    list: Option<&'a str>,
    autocomplete: Option<&'a str>,
    placeholder: Option<&'a str>,
    min: Option<&'a str>,
    max: Option<&'a str>,
    step: Option<&'a str>,
    inputmode: Option<&'a str>,
    after: Markup,
}

impl<'a> Field<'a> {
    /// A text input `#id` (named `id`) with its label, value, hint and error message.
    pub fn new(
        id: &'a str,
        label: impl Render,
        value: &'a str,
        hint: impl Render,
        error: Option<&'a str>,
    ) -> Self {
        Field {
            id,
            kind: "text",
            label: label.render(),
            value,
            hint: hint.render(),
            error,
            class: "",
            required: false,
            validate: None,
            list: None,
            autocomplete: None,
            placeholder: None,
            min: None,
            max: None,
            step: None,
            inputmode: None,
            after: Markup::default(),
        }
    }

    /// More classes for the field's `div.field` (such as `for-create`).
    pub fn class(mut self, class: &'a str) -> Self {
        self.class = class;
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Live validation by the portal's script (`data-validate`, see `/portal/validate`).
    pub fn validate(mut self, kind: &'a str) -> Self {
        self.validate = Some(kind);
        self
    }

    /// For names and paths the browser should not suggest from other sites' forms.
    pub fn no_autocomplete(mut self) -> Self {
        self.autocomplete = Some("off");
        self
    }

    pub fn placeholder(mut self, example: &'a str) -> Self {
        self.placeholder = Some(example);
        self
    }

    /// Suggestions: the `datalist` `#list` (rendered after the input).
    pub fn suggest(mut self, list: &'a str, datalist: Markup) -> Self {
        self.list = Some(list);
        self.after = datalist;
        self
    }

    /// A date input, `min` its first allowed day.
    pub fn date(mut self, min: &'a str) -> Self {
        self.kind = "date";
        self.min = Some(min);
        self
    }

    /// A whole number from 1 (to `max`), in steps of `step`.
    pub fn number(mut self, max: Option<&'a str>, step: Option<&'a str>) -> Self {
        self.kind = "number";
        self.inputmode = Some("numeric");
        self.min = Some("1");
        self.max = max;
        self.step = step;
        self
    }
}

impl Render for Field<'_> {
    fn render(&self) -> Markup {
        let id = self.id;
        html! {
            div class={ "field" @if !self.class.is_empty() { " " (self.class) } } {
                label for=(id) { (self.label) }
                input id=(id) type=(self.kind) name=(id) value=(self.value) required[self.required]
                    autocomplete=[self.autocomplete] placeholder=[self.placeholder] list=[self.list]
                    min=[self.min] max=[self.max] step=[self.step] inputmode=[self.inputmode]
                    data-validate=[self.validate]
                    aria-describedby={ (id) "-hint " (id) "-error" }
                    aria-invalid=[self.error.map(|_| "true")];
                (self.after)
                p.hint id={ (id) "-hint" } { (self.hint) }
                p.error id={ (id) "-error" } aria-live="polite" { @if let Some(m) = self.error { (m) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_words() {
        assert_eq!(spaced("InitialBackupPending"), "Initial backup pending");
        assert_eq!(spaced("Completed"), "Completed");
        assert_eq!(spaced("ERROR"), "ERROR");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(wire_name(&tresor_api::JobStatus::InProgress), "InProgress");
    }
}
