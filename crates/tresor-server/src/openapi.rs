//! The OpenAPI 3.1 document of the API, served at `/openapi.json`.
//!
//! Built from one table of operations (every route of `api::router` has a row: the
//! test in this module checks both ways) and JSON schemas of what the API takes and
//! answers. The document is checked against a running server by
//! `scripts/api-fuzz.sh` (schemathesis: every operation with and without
//! credentials; statuses, content types and bodies as described here).
//!
//! Every error answers `{"code", "message", "recommendation"}` (`Error`) with one of
//! the statuses an operation lists; a 500 adds `requestId`.

use axum::Json;
use serde_json::{json, Map, Value};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// No credential.
    Anyone,
    /// No credential but a vault credentials file's one-time secret in the body.
    Registration,
    /// The admin token, an API token, or a portal session (its writes with the CSRF token).
    Admin,
    /// A registered host agent's credential.
    Agent,
}

/// What an operation takes as its body.
#[derive(Debug, Clone, Copy)]
enum Body {
    None,
    /// JSON of the named schema, required.
    Json(&'static str),
    /// JSON of the named schema, or no body at all (then the defaults).
    OptionalJson(&'static str),
    /// Bytes (an object of a repository).
    Bytes,
}

/// What an operation answers when it succeeds.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// This status with JSON of the named schema.
    Json(u16, &'static str),
    /// This status, no body.
    Empty(u16),
    /// 200 with the whole object, 206 with the part a `Range` asked for.
    Bytes,
}

struct Operation {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    caller: Caller,
    body: Body,
    answers: &'static [Answer],
    /// Query parameters: (name, schema name in `query_schema`).
    query: &'static [(&'static str, &'static str)],
    /// Error statuses besides those every operation of its kind has (see `errors`).
    errors: &'static [u16],
}

use Answer as A;
use Body as B;
use Caller as C;

const fn op(
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    caller: Caller,
    body: Body,
    answers: &'static [Answer],
) -> Operation {
    Operation {
        method,
        path,
        id,
        summary,
        caller,
        body,
        answers,
        query: &[],
        errors: &[],
    }
}

impl Operation {
    const fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Operation {
        self.query = query;
        self
    }

    const fn errors(mut self, errors: &'static [u16]) -> Operation {
        self.errors = errors;
        self
    }
}

const V: &str = "/api/v1/vaults/{vault}";

const OPERATIONS: &[Operation] = &[
    op("get", "/api/v1/ping", "ping", "Is the server there", C::Anyone, B::None, &[A::Json(200, "Ping")]),
    op("get", "/openapi.json", "openapi", "This document", C::Anyone, B::None, &[A::Json(200, "Document")]),
    op("post", "/api/v1/tokens", "createToken", "Create an API token (an admin credential with a name; shown once)", C::Admin, B::Json("CreateToken"), &[A::Json(201, "NewToken")]),
    op("get", "/api/v1/tokens", "listTokens", "List API tokens", C::Admin, B::None, &[A::Json(200, "TokenList")]),
    op("delete", "/api/v1/tokens/{id}", "deleteToken", "Revoke an API token (and its portal sessions)", C::Admin, B::None, &[A::Empty(204)]),
    op("post", "/api/v1/vaults", "createVault", "Create a vault (with DefaultPolicy)", C::Admin, B::Json("CreateVault"), &[A::Json(201, "Vault")]).errors(&[409]),
    op("get", "/api/v1/vaults", "listVaults", "List vaults", C::Admin, B::None, &[A::Json(200, "VaultList")]),
    op("get", V, "showVault", "Show a vault", C::Admin, B::None, &[A::Json(200, "Vault")]),
    op("delete", V, "deleteVault", "Delete an empty vault", C::Admin, B::None, &[A::Empty(204)]).errors(&[409]),
    op("put", "/api/v1/vaults/{vault}/backup-properties", "setBackupProperties", "Set storage redundancy (until the first backup) and cross-region restore", C::Admin, B::Json("BackupProperties"), &[A::Json(200, "Vault")]),
    op("post", "/api/v1/vaults/{vault}/credentials", "vaultCredentials", "Issue a vault credentials file for registering an agent", C::Admin, B::OptionalJson("CredentialsRequest"), &[A::Json(200, "CredentialsFile")]),
    op("post", "/api/v1/vaults/{vault}/replicate", "replicateVault", "Run a replication to the secondary region now (GeoRedundant vaults)", C::Admin, B::None, &[A::Json(202, "Job")]).errors(&[409]),
    op("post", "/api/v1/vaults/{vault}/verify", "verifyVault", "Verify the vault's data in the primary or the secondary region", C::Admin, B::OptionalJson("VerifyRequest"), &[A::Json(202, "Job")]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/policies", "listPolicies", "List backup policies", C::Admin, B::None, &[A::Json(200, "PolicyList")]),
    op("post", "/api/v1/vaults/{vault}/policies", "createPolicy", "Create a backup policy", C::Admin, B::Json("BackupPolicy"), &[A::Json(201, "Policy")]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/policies/default-for-vm", "defaultPolicy", "The policy VMs get by default", C::Admin, B::None, &[A::Json(200, "Policy")]),
    op("get", "/api/v1/vaults/{vault}/policies/{policy}", "showPolicy", "Show a backup policy", C::Admin, B::None, &[A::Json(200, "Policy")]),
    op("put", "/api/v1/vaults/{vault}/policies/{policy}", "updatePolicy", "Change a backup policy (applies to every item using it)", C::Admin, B::Json("BackupPolicy"), &[A::Json(200, "Policy")]),
    op("delete", "/api/v1/vaults/{vault}/policies/{policy}", "deletePolicy", "Delete a policy no item uses", C::Admin, B::None, &[A::Empty(204)]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/protectable-items", "listProtectable", "VMs in the vault's location that no vault protects", C::Admin, B::None, &[A::Json(200, "ProtectableList")]),
    op("get", "/api/v1/vaults/{vault}/items", "listItems", "List protected items", C::Admin, B::None, &[A::Json(200, "ItemList")]),
    op("post", "/api/v1/vaults/{vault}/items", "enableProtection", "Enable backup of a VM with a policy", C::Admin, B::Json("EnableProtection"), &[A::Json(201, "Item")]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/items/{item}", "showItem", "Show a protected item (by id, VM name or the agent's name for the VM)", C::Admin, B::None, &[A::Json(200, "Item")]),
    op("post", "/api/v1/vaults/{vault}/items/{item}/backup", "backupNow", "Back up now, keeping the point until a date", C::Admin, B::OptionalJson("BackupNow"), &[A::Json(202, "Job")]).errors(&[409]),
    op("post", "/api/v1/vaults/{vault}/items/{item}/disable", "disableProtection", "Stop protection, keeping or deleting the data", C::Admin, B::OptionalJson("Disable"), &[A::Json(200, "Job")]).errors(&[409]),
    op("post", "/api/v1/vaults/{vault}/items/{item}/restore", "restore", "Restore disks, create a VM, or replace the disks", C::Admin, B::Json("RestoreRequest"), &[A::Json(202, "Job")]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/items/{item}/recovery-points", "listRecoveryPoints", "List an item's recovery points, newest first (?useSecondaryRegion=true: those in the secondary region)", C::Admin, B::None, &[A::Json(200, "PointList")]).query(&[("useSecondaryRegion", "boolean")]),
    op("get", "/api/v1/vaults/{vault}/items/{item}/recovery-points/{point}", "showRecoveryPoint", "Show a recovery point", C::Admin, B::None, &[A::Json(200, "Point")]).query(&[("useSecondaryRegion", "boolean")]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/jobs", "listJobs", "List jobs, newest first", C::Admin, B::None, &[A::Json(200, "JobList")]).query(&[("status", "string"), ("operation", "string"), ("item", "string"), ("from", "date-time"), ("to", "date-time"), ("limit", "u32")]),
    op("get", "/api/v1/vaults/{vault}/jobs/{job}", "showJob", "Show a job", C::Admin, B::None, &[A::Json(200, "Job")]),
    op("post", "/api/v1/vaults/{vault}/jobs/{job}/cancel", "cancelJob", "Cancel a job", C::Admin, B::None, &[A::Json(200, "Job")]).errors(&[409]),
    op("get", "/api/v1/agents", "listAgents", "List host agents: online, version, last heartbeat, VMs with their preflight checks", C::Admin, B::None, &[A::Json(200, "AgentList")]),
    op("post", "/api/v1/agents/register", "registerAgent", "Register a host agent with a vault credentials secret", C::Registration, B::Json("RegisterRequest"), &[A::Json(201, "RegisterResponse")]).errors(&[429]),
    op("get", "/api/v1/agent/ping", "agentPing", "Check an agent's credential", C::Agent, B::None, &[A::Json(200, "AgentPing")]),
    op("post", "/api/v1/agent/heartbeat", "heartbeat", "Report that the agent lives, and its VMs", C::Agent, B::Json("Heartbeat"), &[A::Json(200, "HeartbeatAnswer")]),
    op("post", "/api/v1/agent/jobs/next", "nextJob", "Wait up to 20 s (or ?wait=N) for a job (204: none)", C::Agent, B::None, &[A::Json(200, "Assignment"), A::Empty(204)]).query(&[("wait", "u64")]),
    op("post", "/api/v1/agent/jobs/{job}/progress", "jobProgress", "Report progress; renews the job's lease; answers whether to cancel", C::Agent, B::Json("Progress"), &[A::Json(200, "ProgressAnswer")]).errors(&[403, 409]),
    op("post", "/api/v1/agent/jobs/{job}/complete", "jobComplete", "Report the end of a job", C::Agent, B::Json("Completion"), &[A::Json(200, "CompletionAnswer")]).errors(&[403, 409]),
    op("get", "/api/v1/agent/repos/{vault}/objects/{kind}", "listObjects", "List the agent's repository objects of a kind", C::Agent, B::None, &[A::Json(200, "ObjectList")]).errors(&[403]),
    op("get", "/api/v1/agent/repos/{vault}/objects/{kind}/{name}", "getObject", "Read an object (Range: bytes=A-B for part of it)", C::Agent, B::None, &[A::Bytes]).errors(&[403, 416]),
    op("get", "/api/v1/agent/repos/{vault}/secondary/objects/{kind}", "listSecondaryObjects", "List objects of the secondary copy (during a cross-region restore job)", C::Agent, B::None, &[A::Json(200, "ObjectList")]).errors(&[403]),
    op("get", "/api/v1/agent/repos/{vault}/secondary/objects/{kind}/{name}", "getSecondaryObject", "Read an object of the secondary copy (during a cross-region restore job)", C::Agent, B::None, &[A::Bytes]).errors(&[403, 416]),
    op("put", "/api/v1/agent/repos/{vault}/objects/{kind}/{name}", "putObject", "Add a pack, index file or manifest (never replaces: the same bytes again answer 200)", C::Agent, B::Bytes, &[A::Empty(201), A::Empty(200)]).errors(&[403, 409, 507]),
    op("post", "/api/v1/agent/repos/{vault}/writers", "registerWriter", "Register a running backup (garbage collection keeps its data)", C::Agent, B::Json("RegisterWriter"), &[A::Json(200, "WriterId")]).errors(&[403]),
    op("get", "/api/v1/agent/repos/{vault}/writers", "liveWriters", "Running backups of the repository", C::Agent, B::None, &[A::Json(200, "WriterList")]).errors(&[403]),
    op("delete", "/api/v1/agent/repos/{vault}/writers/{id}", "releaseWriter", "End a registration", C::Agent, B::None, &[A::Empty(204)]).errors(&[403]),
];

/// The error statuses of an operation: what every operation of its kind can answer,
/// and its own.
fn errors(o: &Operation) -> Vec<u16> {
    let mut e: Vec<u16> = match o.caller {
        C::Anyone => vec![],
        C::Registration => vec![401],
        C::Admin => vec![401, 403],
        C::Agent => vec![401],
    };
    // A path parameter that is not valid UTF-8 once decoded, a query parameter of the
    // wrong type: 400. A path naming nothing: 404.
    if o.path.contains('{') {
        e.extend([400, 404]);
    }
    if !o.query.is_empty() {
        e.push(400);
    }
    match o.body {
        B::None => {}
        // Bodies: invalid (400), too large (413), not JSON (415), JSON of another shape (422).
        B::Json(_) | B::OptionalJson(_) => e.extend([400, 413, 415, 422]),
        B::Bytes => e.extend([400, 413, 422]),
    }
    e.extend(o.errors);
    e.push(500);
    e.sort_unstable();
    e.dedup();
    e
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted: the job runs",
        204 => "No content",
        206 => "Part of the object (Content-Range says which)",
        400 => "Invalid request (the code says which rule it broke)",
        401 => "No valid credential",
        403 => "The credential may not do this",
        404 => "No such resource",
        409 => "Conflicts with the resource's state",
        413 => "Body too large (RequestTooLarge)",
        415 => "Not JSON (Content-Type: application/json expected)",
        416 => "Range outside the object (Content-Range: bytes */SIZE)",
        422 => "JSON of the wrong shape, or an object that is not what it claims",
        429 => "Too many attempts (Retry-After)",
        500 => "The server failed (InternalError with its requestId; the log has the cause)",
        507 => "The storage target is full (StorageFull)",
        _ => "",
    }
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn query_schema(kind: &str) -> Value {
    match kind {
        "boolean" => json!({"type": "boolean"}),
        "date-time" => json!({"type": "string", "format": "date-time"}),
        "u32" => json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
        "u64" => json!({"type": "integer", "minimum": 0, "maximum": 20}),
        _ => json!({"type": "string"}),
    }
}

fn path_parameter(name: &str) -> Value {
    let (description, schema) = match name {
        "vault" => (
            "A vault's name (any case) or id",
            json!({"type": "string", "example": "Vault-1"}),
        ),
        "policy" => (
            "A policy's name",
            json!({"type": "string", "example": "DefaultPolicy"}),
        ),
        "item" => (
            "A protected item's id, its VM's name, or the agent's name for the VM",
            json!({"type": "string", "example": "web01"}),
        ),
        "kind" => (
            "An object kind",
            json!({"type": "string", "enum": ["config", "keys", "data", "index", "points", "gc"]}),
        ),
        "name" => (
            "An object's name: letters, digits, '-' and '_'",
            json!({"type": "string"}),
        ),
        _ => ("An id", json!({"type": "string"})),
    };
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

// --- schemas --------------------------------------------------------------------

fn s() -> Value {
    json!({"type": "string"})
}

/// A count or size: an integer, never negative.
fn n() -> Value {
    json!({"type": "integer", "minimum": 0})
}

fn t() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn b() -> Value {
    json!({"type": "boolean"})
}

/// Any JSON value (what an agent reported, a job's parameters).
fn any() -> Value {
    json!({})
}

fn or_null(v: Value) -> Value {
    json!({"anyOf": [v, {"type": "null"}]})
}

fn enum_of(v: &[&str]) -> Value {
    json!({"type": "string", "enum": v})
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn list_of(name: &str) -> Value {
    array(r(name))
}

/// An object with these properties, all of them required.
fn obj(props: &[(&str, Value)]) -> Value {
    obj_opt(props, &[])
}

/// An object with `props` (required) and `optional` properties.
fn obj_opt(props: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (k, v) in props.iter().chain(optional) {
        m.insert(k.to_string(), v.clone());
    }
    let required: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
    json!({ "type": "object", "properties": m, "required": required })
}

/// A request body that refuses fields it does not know.
fn closed(mut v: Value) -> Value {
    v["additionalProperties"] = json!(false);
    v
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const JOB_STATUS: [&str; 6] = [
    "InProgress",
    "Completed",
    "CompletedWithWarnings",
    "Failed",
    "Cancelled",
    "Cancelling",
];

fn schemas() -> Value {
    let redundancy = enum_of(&["GeoRedundant", "LocallyRedundant"]);
    let weekdays = array(enum_of(&WEEKDAYS));
    fn policy_props(extra: &[(&'static str, Value)]) -> Vec<(&'static str, Value)> {
        let mut p = vec![
            (
                "name",
                json!({"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_-]{2,149}$", "example": "Policy-2"}),
            ),
            ("schedule", r("Schedule")),
            ("retention", r("Retention")),
        ];
        p.extend(extra.iter().cloned());
        p
    }
    let all: Vec<(&str, Value)> = vec![
        (
            "Error",
            obj_opt(
                &[("code", s()), ("message", s()), ("recommendation", s())],
                &[("requestId", s())],
            ),
        ),
        (
            "JobError",
            obj(&[("code", s()), ("message", s()), ("recommendation", s())]),
        ),
        ("Ping", obj(&[("service", s()), ("version", s())])),
        (
            "Document",
            json!({"type": "object", "required": ["openapi", "info", "paths"]}),
        ),
        (
            "CreateToken",
            closed(obj(&[(
                "name",
                json!({"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S", "example": "reports"}),
            )])),
        ),
        (
            "NewToken",
            obj(&[("id", s()), ("name", s()), ("created", t()), ("token", s())]),
        ),
        (
            "Token",
            obj(&[("id", s()), ("name", s()), ("created", t())]),
        ),
        ("TokenList", list_of("Token")),
        (
            "CreateVault",
            closed(obj_opt(
                &[
                    (
                        "name",
                        json!({"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9-]{1,49}$", "example": "Vault-2"}),
                    ),
                    (
                        "resourceGroup",
                        json!({"type": "string", "pattern": "^[A-Za-z0-9_.()-]{0,89}[A-Za-z0-9_()-]$", "example": "rg1"}),
                    ),
                    (
                        "location",
                        json!({"type": "string", "pattern": "^[a-z0-9-]{1,64}$", "example": "westeurope"}),
                    ),
                ],
                &[("storageRedundancy", or_null(redundancy.clone()))],
            )),
        ),
        (
            "Vault",
            obj(&[
                ("id", s()),
                ("name", s()),
                ("resourceGroup", s()),
                ("location", s()),
                ("storageRedundancy", redundancy.clone()),
                ("redundancyLocked", b()),
                ("crossRegionRestore", b()),
                ("replication", r("Replication")),
                ("created", t()),
            ]),
        ),
        (
            "Replication",
            obj_opt(
                &[
                    (
                        "status",
                        enum_of(&[
                            "NotApplicable",
                            "NoPairedLocation",
                            "UpToDate",
                            "Replicating",
                            "Failing",
                        ]),
                    ),
                    ("secondaryLocation", or_null(s())),
                ],
                &[
                    ("lagSeconds", json!({"type": "number", "minimum": 0})),
                    ("pendingRecoveryPoints", n()),
                    ("bytesPending", n()),
                    ("recoveryPointsOnSecondary", n()),
                    ("softDeletedRecoveryPoints", n()),
                    ("lastSuccess", or_null(t())),
                    (
                        "lastError",
                        or_null(obj(&[
                            ("code", s()),
                            ("message", s()),
                            ("recommendation", s()),
                            ("time", t()),
                        ])),
                    ),
                    ("nextAttempt", or_null(t())),
                    ("bytesReplicated", n()),
                ],
            ),
        ),
        (
            "VerifyRequest",
            closed(obj_opt(&[], &[("useSecondaryRegion", b())])),
        ),
        ("VaultList", list_of("Vault")),
        (
            "BackupProperties",
            closed(obj_opt(
                &[],
                &[
                    ("storageRedundancy", or_null(redundancy)),
                    ("crossRegionRestore", or_null(b())),
                ],
            )),
        ),
        (
            "CredentialsRequest",
            closed(obj_opt(
                &[],
                &[
                    (
                        "validDays",
                        or_null(json!({"type": "integer", "minimum": 1, "maximum": 10})),
                    ),
                    ("location", or_null(s())),
                ],
            )),
        ),
        (
            "CredentialsFile",
            obj(&[
                ("server", s()),
                ("fingerprint", s()),
                ("vault", s()),
                ("secret", s()),
                ("expires", t()),
                ("location", s()),
            ]),
        ),
        (
            "Schedule",
            obj(&[
                (
                    "frequency",
                    json!({"oneOf": [
                        enum_of(&["Daily"]),
                        closed(obj(&[("Weekly", closed(obj(&[("days", weekdays.clone())])))])),
                    ]}),
                ),
                (
                    "time",
                    json!({"type": "string", "description": "On the hour or half hour", "pattern": "^([01][0-9]|2[0-3]):[03]0(:00)?$", "example": "22:30:00"}),
                ),
                (
                    "timeZone",
                    json!({"type": "string", "description": "An IANA time zone", "example": "UTC"}),
                ),
            ]),
        ),
        (
            "DaySelector",
            json!({"oneOf": [
                closed(obj(&[("DaysOfMonth", array(json!({"oneOf": [
                    {"type": "integer", "minimum": 0, "maximum": 255},
                    enum_of(&["Last"]),
                ]})))])),
                closed(obj(&[("WeekdaysOfWeeks", obj(&[
                    ("weeks", array(enum_of(&["First", "Second", "Third", "Fourth", "Last"]))),
                    ("days", weekdays.clone()),
                ]))])),
            ]}),
        ),
        (
            "Retention",
            obj_opt(
                &[],
                &[
                    ("daily", obj(&[("days", n())])),
                    (
                        "weekly",
                        obj(&[("daysOfWeek", weekdays.clone()), ("weeks", n())]),
                    ),
                    (
                        "monthly",
                        obj(&[("selector", r("DaySelector")), ("months", n())]),
                    ),
                    (
                        "yearly",
                        obj(&[
                            ("monthsOfYear", array(enum_of(&MONTHS))),
                            ("selector", r("DaySelector")),
                            ("years", n()),
                        ]),
                    ),
                ],
            ),
        ),
        (
            "BackupPolicy",
            obj_opt(&policy_props(&[]), &[("instantRestoreDays", n())]),
        ),
        (
            "Policy",
            obj(&policy_props(&[
                ("id", s()),
                ("instantRestoreDays", n()),
                ("protectedItems", n()),
            ])),
        ),
        ("PolicyList", list_of("Policy")),
        (
            "Protectable",
            obj(&[
                ("host", s()),
                ("agentId", s()),
                ("vm", s()),
                ("name", s()),
                ("location", s()),
                ("agentOnline", b()),
                (
                    "info",
                    json!({"description": "What the agent reported of the VM (state, disks, guest agent, preflight)"}),
                ),
            ]),
        ),
        ("ProtectableList", list_of("Protectable")),
        (
            "EnableProtection",
            closed(obj_opt(
                &[
                    ("host", json!({"type": "string", "example": "kvm1"})),
                    ("vm", json!({"type": "string", "example": "app01"})),
                ],
                &[("policy", or_null(s()))],
            )),
        ),
        (
            "Item",
            obj_opt(
                &[
                    ("id", s()),
                    ("vmName", s()),
                    ("vm", s()),
                    ("host", s()),
                    ("agentId", s()),
                    ("policy", or_null(s())),
                    (
                        "protectionState",
                        enum_of(&[
                            "InitialBackupPending",
                            "Protected",
                            "ProtectionStopped",
                            "ProtectionError",
                        ]),
                    ),
                    ("lastBackupTime", or_null(t())),
                    ("created", t()),
                ],
                &[("replication", r("Replication"))],
            ),
        ),
        ("ItemList", list_of("Item")),
        (
            "BackupNow",
            closed(obj_opt(&[], &[("retainUntil", or_null(t()))])),
        ),
        (
            "Disable",
            closed(obj_opt(&[], &[("deleteBackupData", b())])),
        ),
        (
            "RestoreRequest",
            closed(obj_opt(
                &[
                    ("recoveryPoint", s()),
                    (
                        "mode",
                        enum_of(&["RestoreDisks", "CreateVm", "ReplaceDisks"]),
                    ),
                ],
                &[
                    ("targetPath", or_null(s())),
                    ("format", or_null(enum_of(&["qcow2", "raw"]))),
                    ("newName", or_null(s())),
                    ("useSecondaryRegion", b()),
                ],
            )),
        ),
        (
            "Point",
            obj(&[
                ("id", s()),
                ("itemId", s()),
                ("time", t()),
                (
                    "consistency",
                    enum_of(&["AppConsistent", "FileSystemConsistent", "CrashConsistent"]),
                ),
                ("expiry", or_null(t())),
                ("onDemand", b()),
                ("size", n()),
                ("details", any()),
                ("replicated", or_null(t())),
                ("deletedFromPrimary", or_null(t())),
            ]),
        ),
        ("PointList", list_of("Point")),
        (
            "Job",
            obj(&[
                ("id", s()),
                (
                    "operation",
                    enum_of(&[
                        "ConfigureBackup",
                        "Backup",
                        "Restore",
                        "DisableBackup",
                        "DeleteBackupData",
                        "Replication",
                        "Verify",
                    ]),
                ),
                ("status", enum_of(&JOB_STATUS)),
                ("itemId", or_null(s())),
                ("vmName", s()),
                ("startTime", t()),
                ("endTime", or_null(t())),
                ("duration", json!({"type": "number", "minimum": 0})),
                (
                    "tasks",
                    array(obj(&[("name", s()), ("status", enum_of(&JOB_STATUS))])),
                ),
                ("bytesDone", n()),
                ("bytesTotal", n()),
                (
                    "percent",
                    json!({"type": "number", "minimum": 0, "maximum": 100}),
                ),
                ("warnings", array(s())),
                ("error", or_null(r("JobError"))),
                ("result", any()),
            ]),
        ),
        ("JobList", list_of("Job")),
        (
            "Agent",
            obj(&[
                ("id", s()),
                ("host", s()),
                ("location", s()),
                ("version", or_null(s())),
                ("registered", t()),
                ("lastHeartbeat", or_null(t())),
                ("online", b()),
                (
                    "vms",
                    array(obj(&[("vm", s()), ("info", any()), ("seen", t())])),
                ),
            ]),
        ),
        ("AgentList", list_of("Agent")),
        (
            "RegisterRequest",
            obj_opt(
                &[
                    ("secret", s()),
                    ("host", json!({"type": "string", "example": "kvm2"})),
                ],
                &[
                    ("location", or_null(s())),
                    ("vault", or_null(s())),
                    ("version", or_null(s())),
                ],
            ),
        ),
        (
            "RegisterResponse",
            obj(&[
                ("agentId", s()),
                ("credential", s()),
                ("vault", s()),
                ("location", s()),
            ]),
        ),
        ("AgentPing", obj(&[("agentId", s()), ("host", s())])),
        (
            "Heartbeat",
            obj_opt(
                &[(
                    "vms",
                    array(obj_opt(
                        &[
                            ("vm", s()),
                            (
                                "info",
                                json!({"description": "The VM as the agent sees it (tresor_vm::VmInfo)"}),
                            ),
                        ],
                        &[(
                            "preflight",
                            json!({"description": "Preflight results (tresor_vm::CheckResult), or null"}),
                        )],
                    )),
                )],
                &[("version", or_null(s()))],
            ),
        ),
        ("HeartbeatAnswer", obj(&[("serverTime", t())])),
        (
            "Assignment",
            obj(&[
                ("jobId", s()),
                ("operation", s()),
                ("vaultId", s()),
                ("itemId", or_null(s())),
                ("vm", or_null(s())),
                ("pointName", or_null(s())),
                ("passphrase", s()),
                ("params", any()),
            ]),
        ),
        (
            "Progress",
            obj_opt(
                &[("bytesDone", n()), ("bytesTotal", n())],
                &[("task", or_null(s()))],
            ),
        ),
        ("ProgressAnswer", obj(&[("cancel", b())])),
        (
            "Completion",
            obj_opt(
                &[("status", enum_of(&JOB_STATUS))],
                &[
                    ("warnings", array(s())),
                    ("error", or_null(r("JobError"))),
                    ("pointId", or_null(s())),
                    ("frozenMs", or_null(n())),
                    ("result", any()),
                ],
            ),
        ),
        ("CompletionAnswer", obj(&[("status", enum_of(&JOB_STATUS))])),
        ("ObjectList", array(obj(&[("name", s()), ("size", n())]))),
        ("RegisterWriter", obj(&[("description", s())])),
        ("WriterId", obj(&[("id", s())])),
        (
            "WriterList",
            array(obj(&[("id", s()), ("description", s())])),
        ),
    ];
    Value::Object(all.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn operation(o: &Operation) -> Value {
    let mut params: Vec<Value> = o
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(path_parameter)
        .collect();
    for (name, kind) in o.query {
        params.push(
            json!({"name": name, "in": "query", "required": false, "schema": query_schema(kind)}),
        );
    }
    if matches!(o.answers, [A::Bytes]) {
        params.push(json!({
            "name": "Range", "in": "header", "required": false,
            "description": "One byte range: bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX",
            "schema": {"type": "string"}
        }));
    }
    let mut responses = Map::new();
    for a in o.answers {
        match a {
            A::Json(status, schema) => {
                responses.insert(
                    status.to_string(),
                    json!({"description": reason(*status), "content": {"application/json": {"schema": r(schema)}}}),
                );
            }
            A::Empty(status) => {
                responses.insert(status.to_string(), json!({"description": reason(*status)}));
            }
            A::Bytes => {
                for status in [200u16, 206] {
                    responses.insert(
                        status.to_string(),
                        json!({"description": reason(status), "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}),
                    );
                }
            }
        }
    }
    for status in errors(o) {
        responses.insert(
            status.to_string(),
            json!({"description": reason(status), "content": {"application/json": {"schema": r("Error")}}}),
        );
    }
    let who = match o.caller {
        C::Anyone => "anyone",
        C::Registration => "anyone with vault credentials",
        C::Admin => "admin (admin token, API token, or portal session)",
        C::Agent => "a host agent (its credential)",
    };
    let mut v = json!({
        "operationId": o.id,
        "summary": o.summary,
        "description": format!("Caller: {who}."),
        "parameters": params,
        "responses": responses,
    });
    match o.body {
        B::None => {}
        B::Json(schema) | B::OptionalJson(schema) => {
            v["requestBody"] = json!({
                "required": matches!(o.body, B::Json(_)),
                "content": {"application/json": {"schema": r(schema)}}
            });
        }
        B::Bytes => {
            v["requestBody"] = json!({
                "required": true,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
            });
        }
    }
    if matches!(o.caller, C::Anyone | C::Registration) {
        v["security"] = json!([]);
    }
    v
}

pub fn build() -> Value {
    let mut paths = Map::new();
    for o in OPERATIONS {
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method] = operation(o);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tresor vault API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Vaults, backup policies, protected VMs, jobs and recovery points; and the endpoints host agents use. Errors are JSON {code, message, recommendation} with stable codes."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "The admin token, an API token, or an agent's credential" } },
            "schemas": schemas()
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.trim_start_matches("#/components/schemas/").to_string());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_operation_is_documented_once_and_refers_to_known_schemas() {
        let doc = build();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut seen = std::collections::HashSet::new();
        for o in OPERATIONS {
            assert!(seen.insert(o.id), "operation id {} twice", o.id);
            assert!(
                seen.insert(Box::leak(
                    format!("{} {}", o.method, o.path).into_boxed_str()
                )),
                "{} {} twice",
                o.method,
                o.path
            );
            assert!(
                doc["paths"][o.path][o.method].is_object(),
                "{} {}",
                o.method,
                o.path
            );
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            assert!(
                schemas.contains_key(&r),
                "schema {r} is referred to and missing"
            );
        }
    }

    /// Every route the router serves is in the table, and every row is a route.
    #[test]
    fn the_table_and_the_router_agree() {
        let source = include_str!("api/mod.rs");
        let mut routed = std::collections::BTreeSet::new();
        // `.route(PATH, get(..).post(..))`: the path (with `{v}` for the vault prefix)
        // and each method named in the handler chain.
        for chunk in source.split(".route(").skip(1) {
            let end = chunk.find("\n        .").unwrap_or(chunk.len());
            let chunk = &chunk[..end];
            let path = if let Some(rest) = chunk.trim_start().strip_prefix('"') {
                rest[..rest.find('"').unwrap()].to_string()
            } else if let Some(rest) = chunk.trim_start().strip_prefix("&format!(\"") {
                rest[..rest.find('"').unwrap()]
                    .replace("{v}", V)
                    .replace("{{", "{")
                    .replace("}}", "}")
            } else if chunk.trim_start().starts_with("v,") {
                V.to_string()
            } else {
                panic!("unknown route form: {chunk}");
            };
            for method in ["get", "post", "put", "delete"] {
                if chunk.contains(&format!("{method}(")) {
                    routed.insert(format!("{method} {path}"));
                }
            }
        }
        let documented: std::collections::BTreeSet<String> = OPERATIONS
            .iter()
            .map(|o| format!("{} {}", o.method, o.path))
            .collect();
        assert_eq!(routed, documented);
    }
}
