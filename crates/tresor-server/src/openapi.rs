//! The OpenAPI 3.1 document of the API, served at `/openapi.json`.
//!
//! Generated, so that it cannot drift from the code: every body's schema is the
//! `utoipa::ToSchema` description of its `tresor-api` type (and of the domain types
//! it holds), derived beside the type's serde attributes; query parameters come from
//! the query types' `IntoParams`. What is written here is the table of operations:
//! method, path, who may call it, and which types it takes and answers (every route
//! of `api::router` has a row: the test in this module checks both ways). The
//! document is checked against a running server by `scripts/api-fuzz.sh`
//! (schemathesis: every operation with and without credentials; statuses, content
//! types and bodies as described here).
//!
//! Every error answers an [`ErrorBody`] with one of the statuses an operation lists;
//! the `ErrorCode` schema lists every code with its status.

use std::borrow::Cow;

use axum::Json;
use serde_json::Value;
use tresor_api::agents::{
    Agent, AgentPing, Assignment, Completion, CompletionAnswer, Heartbeat, HeartbeatAnswer,
    NextQuery, Progress, ProgressAnswer, RegisterRequest, RegisterResponse,
};
use tresor_api::audit::{AuditEntry, AuditQuery, AuditVerification};
use tresor_api::config::Ping;
use tresor_api::guards::{
    CreateGuardRequest, CreateResourceGuard, GuardRequest, ResourceGuard, UpdateResourceGuard,
};
use tresor_api::items::{
    BackupNow, Disable, EnableProtection, ModifyProtection, ProtectableVm, ProtectedItem,
    RecoveryPoint, RegionQuery, RestoreRequest,
};
use tresor_api::jobs::{Job, JobQuery};
use tresor_api::policies::{BackupPolicy, Policy};
use tresor_api::storage::{ObjectEntry, RegisterWriter, Writer};
use tresor_api::tokens::{CreateToken, NewToken, Token};
use tresor_api::users::{ConfirmTotp, CreateUser, SetPassword, SetRoles, TotpSetup, User};
use tresor_api::vaults::{
    BackupProperties, CreateVault, CredentialsFile, CredentialsRequest, ReplicationProgress, Vault,
    VerifyRequest,
};
use tresor_api::{ErrorBody, ErrorCode};
use utoipa::openapi::path::{OperationBuilder, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    Paths, Ref, RefOr, Required, ResponseBuilder, Server,
};
use utoipa::{IntoParams, ToSchema};

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

/// The components a schema is made of: its own, and those it refers to.
type Components = Vec<(String, RefOr<Schema>)>;

/// A body's type: a component (the type's schema), or a list of it.
#[derive(Clone, Copy)]
struct Shape {
    name: fn() -> Cow<'static, str>,
    collect: fn(&mut Components),
    list: bool,
}

/// The body is a `T`.
const fn schema<T: ToSchema>() -> Shape {
    Shape {
        name: T::name,
        collect: collect::<T>,
        list: false,
    }
}

/// The body is a list of `T`.
const fn list_of<T: ToSchema>() -> Shape {
    Shape {
        list: true,
        ..schema::<T>()
    }
}

fn collect<T: ToSchema>(out: &mut Components) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

impl Shape {
    fn reference(&self) -> RefOr<Schema> {
        let one = Ref::from_schema_name((self.name)());
        if self.list {
            ArrayBuilder::new().items(one).into()
        } else {
            one.into()
        }
    }
}

/// What an operation takes as its body.
#[derive(Clone, Copy)]
enum Body {
    None,
    /// JSON of this type, required.
    Json(Shape),
    /// JSON of this type, or no body at all (then the type's defaults).
    OptionalJson(Shape),
    /// Bytes (an object of a repository).
    Bytes,
}

/// What an operation answers when it succeeds.
#[derive(Clone, Copy)]
enum Answer {
    /// This status with JSON of this type.
    Json(u16, Shape),
    /// This status with this document (`/openapi.json`).
    Document(u16),
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
    /// The query parameters: a query type's `IntoParams`.
    query: Option<fn() -> Vec<Parameter>>,
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
        query: None,
        errors: &[],
    }
}

fn query_of<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

impl Operation {
    const fn query<T: IntoParams>(mut self) -> Operation {
        self.query = Some(query_of::<T>);
        self
    }

    const fn errors(mut self, errors: &'static [u16]) -> Operation {
        self.errors = errors;
        self
    }
}

const V: &str = "/api/v1/vaults/{vault}";

const OPERATIONS: &[Operation] = &[
    op("get", "/api/v1/ping", "ping", "Is the server there", C::Anyone, B::None, &[A::Json(200, schema::<Ping>())]),
    op("get", "/openapi.json", "openapi", "This document", C::Anyone, B::None, &[A::Document(200)]),
    op("post", "/api/v1/tokens", "createToken", "Create an API token (an admin credential with a name; shown once)", C::Admin, B::Json(schema::<CreateToken>()), &[A::Json(201, schema::<NewToken>())]),
    op("get", "/api/v1/tokens", "listTokens", "List API tokens", C::Admin, B::None, &[A::Json(200, list_of::<Token>())]),
    op("delete", "/api/v1/tokens/{id}", "deleteToken", "Revoke an API token (and its portal sessions)", C::Admin, B::None, &[A::Empty(204)]),
    op("post", "/api/v1/users", "createUser", "Create a user (name, password, role assignments)", C::Admin, B::Json(schema::<CreateUser>()), &[A::Json(201, schema::<User>())]).errors(&[409]),
    op("get", "/api/v1/users", "listUsers", "List users", C::Admin, B::None, &[A::Json(200, list_of::<User>())]),
    op("delete", "/api/v1/users/{name}", "deleteUser", "Delete a user (and their tokens and portal sessions)", C::Admin, B::None, &[A::Empty(204)]),
    op("put", "/api/v1/users/{name}/password", "setPassword", "Set a user's password (one's own with the current one, or anyone's with Access.Manage); their portal sessions end", C::Admin, B::Json(schema::<SetPassword>()), &[A::Empty(204)]),
    op("put", "/api/v1/users/{name}/roles", "setUserRoles", "Replace a user's role assignments (Access.Manage); their portal sessions end", C::Admin, B::Json(schema::<SetRoles>()), &[A::Json(200, schema::<User>())]),
    op("post", "/api/v1/users/{name}/totp", "enableTotp", "A new TOTP secret for a user, in effect once confirmed with its first code", C::Admin, B::None, &[A::Json(200, schema::<TotpSetup>())]),
    op("delete", "/api/v1/users/{name}/totp", "disableTotp", "Turn a user's TOTP off", C::Admin, B::None, &[A::Empty(204)]),
    op("post", "/api/v1/users/{name}/totp/confirm", "confirmTotp", "Confirm a new TOTP secret with the code it makes now", C::Admin, B::Json(schema::<ConfirmTotp>()), &[A::Empty(204)]),
    op("post", "/api/v1/resourceGuards", "createResourceGuard", "Create a resource guard: its approvers must approve the critical operations of the vaults bound to it (ResourceGuards.Manage)", C::Admin, B::Json(schema::<CreateResourceGuard>()), &[A::Json(201, schema::<ResourceGuard>())]).errors(&[409]),
    op("get", "/api/v1/resourceGuards", "listResourceGuards", "List resource guards (all with Vaults.Read somewhere; else those the caller approves for)", C::Admin, B::None, &[A::Json(200, list_of::<ResourceGuard>())]),
    op("get", "/api/v1/resourceGuards/{guard}", "showResourceGuard", "Show a resource guard: approvers, validity, bound vaults", C::Admin, B::None, &[A::Json(200, schema::<ResourceGuard>())]),
    op("put", "/api/v1/resourceGuards/{guard}", "updateResourceGuard", "Change a guard's approvers or validity (needs an approved ChangeResourceGuard request of the caller's)", C::Admin, B::Json(schema::<UpdateResourceGuard>()), &[A::Json(200, schema::<ResourceGuard>())]),
    op("delete", "/api/v1/resourceGuards/{guard}", "deleteResourceGuard", "Delete a guard no vault is bound to (needs an approved ChangeResourceGuard request of the caller's)", C::Admin, B::None, &[A::Empty(204)]).errors(&[409]),
    op("post", "/api/v1/resourceGuards/{guard}/requests", "createGuardRequest", "Ask the guard's approvers to approve one critical operation on one of its vaults (or on the guard)", C::Admin, B::Json(schema::<CreateGuardRequest>()), &[A::Json(201, schema::<GuardRequest>())]),
    op("get", "/api/v1/resourceGuards/{guard}/requests", "listGuardRequests", "A guard's requests for approval, newest first", C::Admin, B::None, &[A::Json(200, list_of::<GuardRequest>())]),
    op("get", "/api/v1/resourceGuards/{guard}/requests/{id}", "showGuardRequest", "Show a request for approval", C::Admin, B::None, &[A::Json(200, schema::<GuardRequest>())]),
    op("post", "/api/v1/resourceGuards/{guard}/requests/{id}/approve", "approveGuardRequest", "Approve a pending request (an approver of the guard, not the requester)", C::Admin, B::None, &[A::Json(200, schema::<GuardRequest>())]).errors(&[409]),
    op("post", "/api/v1/resourceGuards/{guard}/requests/{id}/reject", "rejectGuardRequest", "Reject a pending request (an approver of the guard, not the requester)", C::Admin, B::None, &[A::Json(200, schema::<GuardRequest>())]).errors(&[409]),
    op("post", "/api/v1/vaults", "createVault", "Create a vault (with DefaultPolicy)", C::Admin, B::Json(schema::<CreateVault>()), &[A::Json(201, schema::<Vault>())]).errors(&[409]),
    op("get", "/api/v1/vaults", "listVaults", "List vaults", C::Admin, B::None, &[A::Json(200, list_of::<Vault>())]),
    op("get", V, "showVault", "Show a vault", C::Admin, B::None, &[A::Json(200, schema::<Vault>())]),
    op("delete", V, "deleteVault", "Delete an empty vault", C::Admin, B::None, &[A::Empty(204)]).errors(&[409]),
    op("put", "/api/v1/vaults/{vault}/backup-properties", "setBackupProperties", "Set storage redundancy (until the first backup) and cross-region restore", C::Admin, B::Json(schema::<BackupProperties>()), &[A::Json(200, schema::<Vault>())]),
    op("post", "/api/v1/vaults/{vault}/credentials", "vaultCredentials", "Issue a vault credentials file for registering an agent", C::Admin, B::OptionalJson(schema::<CredentialsRequest>()), &[A::Json(200, schema::<CredentialsFile>())]),
    op("post", "/api/v1/vaults/{vault}/replicate", "replicateVault", "Run a replication to the secondary region now (GeoRedundant vaults)", C::Admin, B::None, &[A::Json(202, schema::<Job>())]).errors(&[409]),
    op("post", "/api/v1/vaults/{vault}/verify", "verifyVault", "Verify the vault's data in the primary or the secondary region", C::Admin, B::OptionalJson(schema::<VerifyRequest>()), &[A::Json(202, schema::<Job>())]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/policies", "listPolicies", "List backup policies", C::Admin, B::None, &[A::Json(200, list_of::<Policy>())]),
    op("post", "/api/v1/vaults/{vault}/policies", "createPolicy", "Create a backup policy", C::Admin, B::Json(schema::<BackupPolicy>()), &[A::Json(201, schema::<Policy>())]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/policies/default-for-vm", "defaultPolicy", "The policy VMs get by default", C::Admin, B::None, &[A::Json(200, schema::<Policy>())]),
    op("get", "/api/v1/vaults/{vault}/policies/{policy}", "showPolicy", "Show a backup policy", C::Admin, B::None, &[A::Json(200, schema::<Policy>())]),
    op("put", "/api/v1/vaults/{vault}/policies/{policy}", "updatePolicy", "Change a backup policy (applies to every item using it)", C::Admin, B::Json(schema::<BackupPolicy>()), &[A::Json(200, schema::<Policy>())]),
    op("delete", "/api/v1/vaults/{vault}/policies/{policy}", "deletePolicy", "Delete a policy no item uses", C::Admin, B::None, &[A::Empty(204)]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/protectable-items", "listProtectable", "VMs in the vault's location that no vault protects", C::Admin, B::None, &[A::Json(200, list_of::<ProtectableVm>())]),
    op("get", "/api/v1/vaults/{vault}/items", "listItems", "List protected items", C::Admin, B::None, &[A::Json(200, list_of::<ProtectedItem>())]),
    op("post", "/api/v1/vaults/{vault}/items", "enableProtection", "Enable backup of a VM with a policy", C::Admin, B::Json(schema::<EnableProtection>()), &[A::Json(201, schema::<ProtectedItem>())]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/items/{item}", "showItem", "Show a protected item (by id, VM name or the agent's name for the VM)", C::Admin, B::None, &[A::Json(200, schema::<ProtectedItem>())]),
    op("put", "/api/v1/vaults/{vault}/items/{item}", "modifyProtection", "Protect the item under another policy, or resume a stopped item's protection; its scheduled points then expire as that policy says", C::Admin, B::Json(schema::<ModifyProtection>()), &[A::Json(200, schema::<ProtectedItem>())]).errors(&[409]),
    op("post", "/api/v1/vaults/{vault}/items/{item}/backup", "backupNow", "Back up now, keeping the point until a date", C::Admin, B::OptionalJson(schema::<BackupNow>()), &[A::Json(202, schema::<Job>())]).errors(&[409]),
    op("post", "/api/v1/vaults/{vault}/items/{item}/disable", "disableProtection", "Stop protection, keeping or soft-deleting the data (kept for the vault's soft-delete period, then purged)", C::Admin, B::OptionalJson(schema::<Disable>()), &[A::Json(200, schema::<Job>())]).errors(&[409]),
    op("post", "/api/v1/vaults/{vault}/items/{item}/undelete", "undeleteItem", "Undelete a soft-deleted item: it comes back with its recovery points, protection stopped", C::Admin, B::None, &[A::Json(200, schema::<ProtectedItem>())]).errors(&[409]),
    op("post", "/api/v1/vaults/{vault}/items/{item}/restore", "restore", "Restore disks, create a VM, or replace the disks", C::Admin, B::Json(schema::<RestoreRequest>()), &[A::Json(202, schema::<Job>())]).errors(&[409]),
    op("get", "/api/v1/vaults/{vault}/items/{item}/recovery-points", "listRecoveryPoints", "List an item's recovery points, newest first (?useSecondaryRegion=true: those in the secondary region)", C::Admin, B::None, &[A::Json(200, list_of::<RecoveryPoint>())]).query::<RegionQuery>(),
    op("get", "/api/v1/vaults/{vault}/items/{item}/recovery-points/{point}", "showRecoveryPoint", "Show a recovery point", C::Admin, B::None, &[A::Json(200, schema::<RecoveryPoint>())]).query::<RegionQuery>().errors(&[409]),
    op("delete", "/api/v1/vaults/{vault}/items/{item}/recovery-points/{point}", "deleteRecoveryPoint", "Delete a recovery point: it is soft-deleted, kept for the vault's soft-delete period, then purged", C::Admin, B::None, &[A::Json(200, schema::<RecoveryPoint>())]).errors(&[409]),
    op("post", "/api/v1/vaults/{vault}/items/{item}/recovery-points/{point}/undelete", "undeleteRecoveryPoint", "Undelete a soft-deleted recovery point", C::Admin, B::None, &[A::Json(200, schema::<RecoveryPoint>())]),
    op("get", "/api/v1/vaults/{vault}/jobs", "listJobs", "List jobs, newest first", C::Admin, B::None, &[A::Json(200, list_of::<Job>())]).query::<JobQuery>(),
    op("get", "/api/v1/vaults/{vault}/jobs/{job}", "showJob", "Show a job", C::Admin, B::None, &[A::Json(200, schema::<Job>())]),
    op("post", "/api/v1/vaults/{vault}/jobs/{job}/cancel", "cancelJob", "Cancel a job", C::Admin, B::None, &[A::Json(200, schema::<Job>())]).errors(&[409]),
    op("get", "/api/v1/audit", "listAudit", "List the audit log in seq order: from a seq on, or the newest entries", C::Admin, B::None, &[A::Json(200, list_of::<AuditEntry>())]).query::<AuditQuery>(),
    op("get", "/api/v1/audit/verify", "verifyAudit", "Check the audit log's hash chain; names the first entry that does not fit", C::Admin, B::None, &[A::Json(200, schema::<AuditVerification>())]),
    op("get", "/api/v1/agents", "listAgents", "List host agents: online, version, last heartbeat, VMs with their preflight checks", C::Admin, B::None, &[A::Json(200, list_of::<Agent>())]),
    op("post", "/api/v1/agents/register", "registerAgent", "Register a host agent with a vault credentials secret", C::Registration, B::Json(schema::<RegisterRequest>()), &[A::Json(201, schema::<RegisterResponse>())]).errors(&[429]),
    op("get", "/api/v1/agent/ping", "agentPing", "Check an agent's credential", C::Agent, B::None, &[A::Json(200, schema::<AgentPing>())]),
    op("post", "/api/v1/agent/heartbeat", "heartbeat", "Report that the agent lives, and its VMs", C::Agent, B::Json(schema::<Heartbeat>()), &[A::Json(200, schema::<HeartbeatAnswer>())]),
    op("post", "/api/v1/agent/jobs/next", "nextJob", "Wait up to 20 s (or ?wait=N) for a job (204: none)", C::Agent, B::None, &[A::Json(200, schema::<Assignment>()), A::Empty(204)]).query::<NextQuery>(),
    op("post", "/api/v1/agent/jobs/{job}/progress", "jobProgress", "Report progress; renews the job's lease; answers whether to cancel", C::Agent, B::Json(schema::<Progress>()), &[A::Json(200, schema::<ProgressAnswer>())]).errors(&[403, 409]),
    op("post", "/api/v1/agent/jobs/{job}/complete", "jobComplete", "Report the end of a job", C::Agent, B::Json(schema::<Completion>()), &[A::Json(200, schema::<CompletionAnswer>())]).errors(&[403, 409]),
    op("get", "/api/v1/agent/repos/{vault}/objects/{kind}", "listObjects", "List the agent's repository objects of a kind", C::Agent, B::None, &[A::Json(200, list_of::<ObjectEntry>())]).errors(&[403]),
    op("get", "/api/v1/agent/repos/{vault}/objects/{kind}/{name}", "getObject", "Read an object (Range: bytes=A-B for part of it)", C::Agent, B::None, &[A::Bytes]).errors(&[403, 416]),
    op("get", "/api/v1/agent/repos/{vault}/secondary/objects/{kind}", "listSecondaryObjects", "List objects of the secondary copy (during a cross-region restore job)", C::Agent, B::None, &[A::Json(200, list_of::<ObjectEntry>())]).errors(&[403]),
    op("get", "/api/v1/agent/repos/{vault}/secondary/objects/{kind}/{name}", "getSecondaryObject", "Read an object of the secondary copy (during a cross-region restore job)", C::Agent, B::None, &[A::Bytes]).errors(&[403, 416]),
    op("put", "/api/v1/agent/repos/{vault}/objects/{kind}/{name}", "putObject", "Add a pack, index file or manifest (never replaces: the same bytes again answer 200)", C::Agent, B::Bytes, &[A::Empty(201), A::Empty(200)]).errors(&[403, 409, 507]),
    op("post", "/api/v1/agent/repos/{vault}/writers", "registerWriter", "Register a running backup (garbage collection keeps its data)", C::Agent, B::Json(schema::<RegisterWriter>()), &[A::Json(200, schema::<Writer>())]).errors(&[403]),
    op("get", "/api/v1/agent/repos/{vault}/writers", "liveWriters", "Running backups of the repository", C::Agent, B::None, &[A::Json(200, list_of::<Writer>())]).errors(&[403]),
    op("delete", "/api/v1/agent/repos/{vault}/writers/{id}", "releaseWriter", "End a registration", C::Agent, B::None, &[A::Empty(204)]).errors(&[403]),
];

/// Components no operation names but the document has: every error code with its
/// status, and what `ReplicationStatus`'s flattened figures refer to (its schema is
/// made by hand, so the derive does not collect them).
const OTHER_COMPONENTS: &[Shape] = &[schema::<ErrorCode>(), schema::<ReplicationProgress>()];

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
    if o.query.is_some() {
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

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn bytes() -> ObjectBuilder {
    string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
}

/// An OpenAPI document (the answer of `/openapi.json`): the format's own, not one of
/// the API's types.
fn document_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .required("openapi")
        .required("info")
        .required("paths")
}

fn path_parameter(name: &str) -> Parameter {
    let (description, schema) = match name {
        "vault" => (
            "A vault's name (any case) or id",
            string().examples(["Vault-1"]),
        ),
        "policy" => ("A policy's name", string().examples(["DefaultPolicy"])),
        "guard" => (
            "A resource guard's name (any case)",
            string().examples(["Guard-1"]),
        ),
        "item" => (
            "A protected item's id, its VM's name, or the agent's name for the VM",
            string().examples(["web01"]),
        ),
        "kind" => (
            "An object kind",
            string().enum_values(Some(["config", "keys", "data", "index", "points", "gc"])),
        ),
        "name" => ("An object's name: letters, digits, '-' and '_'", string()),
        _ => ("An id", string()),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn json(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn operation(o: &Operation) -> utoipa::openapi::path::Operation {
    let mut params: Vec<Parameter> = o
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(path_parameter)
        .collect();
    if let Some(query) = o.query {
        params.extend(query());
    }
    if matches!(o.answers, [A::Bytes]) {
        params.push(
            ParameterBuilder::new()
                .name("Range")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "One byte range: bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX",
                ))
                .schema(Some(string()))
                .build(),
        );
    }
    let who = match o.caller {
        C::Anyone => "anyone",
        C::Registration => "anyone with vault credentials",
        C::Admin => "admin (admin token, API token, or portal session)",
        C::Agent => "a host agent (its credential)",
    };
    let mut b = OperationBuilder::new()
        .operation_id(Some(o.id))
        .summary(Some(o.summary))
        .description(Some(format!("Caller: {who}.")))
        .parameters(Some(params));
    for a in o.answers {
        b = match a {
            A::Json(status, shape) => b.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(reason(*status))
                    .content("application/json", json(shape.reference())),
            ),
            A::Document(status) => b.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(reason(*status))
                    .content("application/json", json(document_schema())),
            ),
            A::Empty(status) => b.response(
                status.to_string(),
                ResponseBuilder::new().description(reason(*status)),
            ),
            A::Bytes => [200u16, 206].into_iter().fold(b, |b, status| {
                b.response(
                    status.to_string(),
                    ResponseBuilder::new()
                        .description(reason(status))
                        .content("application/octet-stream", json(bytes())),
                )
            }),
        };
    }
    for status in errors(o) {
        b = b.response(
            status.to_string(),
            ResponseBuilder::new().description(reason(status)).content(
                "application/json",
                json(Ref::from_schema_name(ErrorBody::name())),
            ),
        );
    }
    let body = |required: bool, content_type: &str, schema: RefOr<Schema>| {
        Some(
            RequestBodyBuilder::new()
                .required(Some(if required {
                    Required::True
                } else {
                    Required::False
                }))
                .content(content_type, json(schema))
                .build(),
        )
    };
    b = match o.body {
        B::None => b,
        B::Json(shape) => b.request_body(body(true, "application/json", shape.reference())),
        B::OptionalJson(shape) => {
            b.request_body(body(false, "application/json", shape.reference()))
        }
        B::Bytes => b.request_body(body(true, "application/octet-stream", bytes().into())),
    };
    if matches!(o.caller, C::Anyone | C::Registration) {
        b = b.securities(Some(Vec::<SecurityRequirement>::new()));
    }
    b.build()
}

/// Every component the document refers to, from the types' `ToSchema`: the body
/// types the operations name, the error answer, and those they refer to. The same
/// name twice is the same type (a test checks).
fn components() -> Components {
    let mut all = Components::new();
    collect::<ErrorBody>(&mut all);
    for shape in OPERATIONS
        .iter()
        .flat_map(|o| {
            let body = match o.body {
                B::Json(s) | B::OptionalJson(s) => Some(s),
                B::None | B::Bytes => None,
            };
            let answers = o.answers.iter().filter_map(|a| match a {
                A::Json(_, s) => Some(*s),
                A::Document(_) | A::Empty(_) | A::Bytes => None,
            });
            body.into_iter().chain(answers)
        })
        .chain(OTHER_COMPONENTS.iter().copied())
    {
        (shape.collect)(&mut all);
    }
    all
}

pub fn openapi() -> OpenApi {
    let mut paths = Paths::new();
    for o in OPERATIONS {
        let method = match o.method {
            "get" => HttpMethod::Get,
            "post" => HttpMethod::Post,
            "put" => HttpMethod::Put,
            "delete" => HttpMethod::Delete,
            other => unreachable!("the table has no {other} operation"),
        };
        let item = PathItem::new(method, operation(o));
        match paths.paths.get_mut(o.path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                paths.paths.insert(o.path.to_string(), item);
            }
        }
    }
    let mut builder = ComponentsBuilder::new().security_scheme(
        "bearer",
        SecurityScheme::Http({
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description =
                Some("The admin token, an API token, or an agent's credential".into());
            http
        }),
    );
    for (name, schema) in components() {
        builder = builder.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Tresor vault API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Vaults, backup policies, protected VMs, jobs and recovery points; and \
                     the endpoints host agents use. Errors are JSON {code, message, \
                     recommendation} with stable codes (ErrorCode lists them).",
                )),
        )
        .servers(Some([Server::new("/")]))
        .security(Some([SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]))
        .paths(paths)
        .components(Some(builder.build()))
        .build()
}

pub fn build() -> Value {
    serde_json::to_value(openapi()).expect("an OpenAPI document serializes")
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
            assert!(seen.insert(o.id.to_string()), "operation id {} twice", o.id);
            assert!(
                seen.insert(format!("{} {}", o.method, o.path)),
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

    /// Two types with one schema name would overwrite each other's component.
    #[test]
    fn one_name_one_schema() {
        let mut by_name = std::collections::BTreeMap::new();
        for (name, schema) in components() {
            let schema = serde_json::to_value(schema).unwrap();
            if let Some(earlier) = by_name.insert(name.clone(), schema.clone()) {
                assert_eq!(earlier, schema, "two types are called {name}");
            }
        }
    }

    /// The error codes' list is ErrorCode's, with their statuses.
    #[test]
    fn error_codes_are_listed_with_their_statuses() {
        let doc = build();
        let codes = &doc["components"]["schemas"]["ErrorCode"];
        let listed: Vec<&str> = codes["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, all);
        let description = codes["description"].as_str().unwrap();
        assert!(
            description.contains("- `NotFound` (404): "),
            "{description}"
        );
    }

    /// Request types with `deny_unknown_fields` say so (`additionalProperties: false`).
    #[test]
    fn request_bodies_refuse_unknown_fields_as_serde_does() {
        let doc = build();
        let schemas = &doc["components"]["schemas"];
        for name in [
            "CreateVault",
            "BackupProperties",
            "CreateToken",
            "CreateUser",
            "SetPassword",
            "ConfirmTotp",
            "RestoreRequest",
        ] {
            assert_eq!(
                schemas[name]["additionalProperties"],
                Value::Bool(false),
                "{name}"
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

    /// `TRESOR_OPENAPI_OUT=FILE cargo test -p tresor-server --lib openapi` writes the
    /// document to FILE (to compare two versions of it).
    #[test]
    fn write_the_document_when_asked() {
        if let Some(path) = std::env::var_os("TRESOR_OPENAPI_OUT") {
            let text = serde_json::to_string_pretty(&build()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }
}
