//! The OpenAPI 3.1 document of the API, served at `/openapi.json`.
//!
//! Built from one table of operations (kept next to the router in review: a route
//! without a row here fails the test in this module) and JSON schemas of the main
//! resources.

use axum::Json;
use serde_json::{json, Map, Value};

/// (method, path, operation id, summary, who may call, request schema, response schema)
type Operation = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

const OPERATIONS: &[Operation] = &[
    (
        "get",
        "/api/v1/ping",
        "ping",
        "Is the server there",
        "anyone",
        None,
        None,
    ),
    (
        "post",
        "/api/v1/vaults",
        "createVault",
        "Create a vault (with DefaultPolicy)",
        "admin",
        Some("CreateVault"),
        Some("Vault"),
    ),
    (
        "get",
        "/api/v1/vaults",
        "listVaults",
        "List vaults",
        "admin",
        None,
        Some("VaultList"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}",
        "showVault",
        "Show a vault",
        "admin",
        None,
        Some("Vault"),
    ),
    (
        "delete",
        "/api/v1/vaults/{vault}",
        "deleteVault",
        "Delete an empty vault",
        "admin",
        None,
        None,
    ),
    (
        "put",
        "/api/v1/vaults/{vault}/backup-properties",
        "setBackupProperties",
        "Set storage redundancy (until the first backup) and cross-region restore",
        "admin",
        Some("BackupProperties"),
        Some("Vault"),
    ),
    (
        "post",
        "/api/v1/vaults/{vault}/credentials",
        "vaultCredentials",
        "Issue a vault credentials file for registering an agent",
        "admin",
        Some("CredentialsRequest"),
        Some("CredentialsFile"),
    ),
    (
        "post",
        "/api/v1/vaults/{vault}/replicate",
        "replicateVault",
        "Run a replication to the secondary region now (GeoRedundant vaults)",
        "admin",
        None,
        Some("Job"),
    ),
    (
        "post",
        "/api/v1/vaults/{vault}/verify",
        "verifyVault",
        "Verify the vault's data in the primary or the secondary region",
        "admin",
        Some("VerifyRequest"),
        Some("Job"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/policies",
        "listPolicies",
        "List backup policies",
        "admin",
        None,
        Some("PolicyList"),
    ),
    (
        "post",
        "/api/v1/vaults/{vault}/policies",
        "createPolicy",
        "Create a backup policy",
        "admin",
        Some("BackupPolicy"),
        Some("Policy"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/policies/default-for-vm",
        "defaultPolicy",
        "The policy VMs get by default",
        "admin",
        None,
        Some("Policy"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/policies/{policy}",
        "showPolicy",
        "Show a backup policy",
        "admin",
        None,
        Some("Policy"),
    ),
    (
        "put",
        "/api/v1/vaults/{vault}/policies/{policy}",
        "updatePolicy",
        "Change a backup policy (applies to every item using it)",
        "admin",
        Some("BackupPolicy"),
        Some("Policy"),
    ),
    (
        "delete",
        "/api/v1/vaults/{vault}/policies/{policy}",
        "deletePolicy",
        "Delete a policy no item uses",
        "admin",
        None,
        None,
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/protectable-items",
        "listProtectable",
        "VMs in the vault's location that no vault protects",
        "admin",
        None,
        Some("ProtectableList"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/items",
        "listItems",
        "List protected items",
        "admin",
        None,
        Some("ItemList"),
    ),
    (
        "post",
        "/api/v1/vaults/{vault}/items",
        "enableProtection",
        "Enable backup of a VM with a policy",
        "admin",
        Some("EnableProtection"),
        Some("Item"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/items/{item}",
        "showItem",
        "Show a protected item",
        "admin",
        None,
        Some("Item"),
    ),
    (
        "post",
        "/api/v1/vaults/{vault}/items/{item}/backup",
        "backupNow",
        "Back up now, keeping the point until a date",
        "admin",
        Some("BackupNow"),
        Some("Job"),
    ),
    (
        "post",
        "/api/v1/vaults/{vault}/items/{item}/disable",
        "disableProtection",
        "Stop protection, keeping or deleting the data",
        "admin",
        Some("Disable"),
        Some("Job"),
    ),
    (
        "post",
        "/api/v1/vaults/{vault}/items/{item}/restore",
        "restore",
        "Restore disks, create a VM, or replace the disks",
        "admin",
        Some("RestoreRequest"),
        Some("Job"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/items/{item}/recovery-points",
        "listRecoveryPoints",
        "List an item's recovery points, newest first (?useSecondaryRegion=true: those in the secondary region)",
        "admin",
        None,
        Some("PointList"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/items/{item}/recovery-points/{point}",
        "showRecoveryPoint",
        "Show a recovery point",
        "admin",
        None,
        Some("Point"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/jobs",
        "listJobs",
        "List jobs, newest first (filters: status, operation, item, from, to, limit)",
        "admin",
        None,
        Some("JobList"),
    ),
    (
        "get",
        "/api/v1/vaults/{vault}/jobs/{job}",
        "showJob",
        "Show a job",
        "admin",
        None,
        Some("Job"),
    ),
    (
        "post",
        "/api/v1/vaults/{vault}/jobs/{job}/cancel",
        "cancelJob",
        "Cancel a job",
        "admin",
        None,
        Some("Job"),
    ),
    (
        "get",
        "/api/v1/agents",
        "listAgents",
        "List host agents: online, version, last heartbeat, VMs with their preflight checks",
        "admin",
        None,
        None,
    ),
    (
        "post",
        "/api/v1/agents/register",
        "registerAgent",
        "Register a host agent with a vault credentials secret",
        "anyone with vault credentials",
        Some("RegisterRequest"),
        Some("RegisterResponse"),
    ),
    (
        "get",
        "/api/v1/agent/ping",
        "agentPing",
        "Check an agent's credential",
        "agent",
        None,
        None,
    ),
    (
        "post",
        "/api/v1/agent/heartbeat",
        "heartbeat",
        "Report that the agent lives, and its VMs",
        "agent",
        Some("Heartbeat"),
        None,
    ),
    (
        "post",
        "/api/v1/agent/jobs/next",
        "nextJob",
        "Wait up to 20 s (or ?wait=N) for a job (204: none)",
        "agent",
        None,
        Some("Assignment"),
    ),
    (
        "post",
        "/api/v1/agent/jobs/{job}/progress",
        "jobProgress",
        "Report progress; renews the job's lease; answers whether to cancel",
        "agent",
        Some("Progress"),
        None,
    ),
    (
        "post",
        "/api/v1/agent/jobs/{job}/complete",
        "jobComplete",
        "Report the end of a job",
        "agent",
        Some("Completion"),
        None,
    ),
    (
        "get",
        "/api/v1/agent/repos/{vault}/objects/{kind}",
        "listObjects",
        "List the agent's repository objects of a kind",
        "agent",
        None,
        None,
    ),
    (
        "get",
        "/api/v1/agent/repos/{vault}/objects/{kind}/{name}",
        "getObject",
        "Read an object (Range: bytes=A-B for part of it)",
        "agent",
        None,
        None,
    ),
    (
        "get",
        "/api/v1/agent/repos/{vault}/secondary/objects/{kind}",
        "listSecondaryObjects",
        "List objects of the secondary copy (during a cross-region restore job)",
        "agent",
        None,
        None,
    ),
    (
        "get",
        "/api/v1/agent/repos/{vault}/secondary/objects/{kind}/{name}",
        "getSecondaryObject",
        "Read an object of the secondary copy (during a cross-region restore job)",
        "agent",
        None,
        None,
    ),
    (
        "put",
        "/api/v1/agent/repos/{vault}/objects/{kind}/{name}",
        "putObject",
        "Add a pack, index file or manifest (never replaces)",
        "agent",
        None,
        None,
    ),
    (
        "post",
        "/api/v1/agent/repos/{vault}/writers",
        "registerWriter",
        "Register a running backup (garbage collection keeps its data)",
        "agent",
        None,
        None,
    ),
    (
        "get",
        "/api/v1/agent/repos/{vault}/writers",
        "liveWriters",
        "Running backups of the repository",
        "agent",
        None,
        None,
    ),
    (
        "delete",
        "/api/v1/agent/repos/{vault}/writers/{id}",
        "releaseWriter",
        "End a registration",
        "agent",
        None,
        None,
    ),
];

fn obj(props: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (k, v) in props {
        m.insert(k.to_string(), v.clone());
    }
    json!({ "type": "object", "properties": m })
}

fn s() -> Value {
    json!({"type": "string"})
}

fn n() -> Value {
    json!({"type": "integer"})
}

fn t() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn list_of(name: &str) -> Value {
    json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}})
}

fn schemas() -> Value {
    let enum_of = |v: &[&str]| json!({"type": "string", "enum": v});
    json!({
        "CreateToken": obj(&[("name", s())]),
        "Error": obj(&[("code", s()), ("message", s()), ("recommendation", s())]),
        "CreateVault": obj(&[("name", s()), ("resourceGroup", s()), ("location", s()), ("storageRedundancy", enum_of(&["GeoRedundant", "LocallyRedundant"]))]),
        "Vault": obj(&[("id", s()), ("name", s()), ("resourceGroup", s()), ("location", s()), ("storageRedundancy", s()), ("redundancyLocked", json!({"type":"boolean"})), ("crossRegionRestore", json!({"type":"boolean"})), ("replication", json!({"$ref":"#/components/schemas/Replication"})), ("created", t())]),
        "Replication": obj(&[("status", enum_of(&["NotApplicable", "NoPairedLocation", "UpToDate", "Replicating", "Failing"])), ("secondaryLocation", s()), ("lagSeconds", n()), ("pendingRecoveryPoints", n()), ("bytesPending", n()), ("recoveryPointsOnSecondary", n()), ("softDeletedRecoveryPoints", n()), ("lastSuccess", t()), ("lastError", json!({"type":"object"})), ("nextAttempt", t()), ("bytesReplicated", n())]),
        "VerifyRequest": obj(&[("useSecondaryRegion", json!({"type":"boolean"}))]),
        "VaultList": list_of("Vault"),
        "BackupProperties": obj(&[("storageRedundancy", enum_of(&["GeoRedundant", "LocallyRedundant"])), ("crossRegionRestore", json!({"type":"boolean"}))]),
        "CredentialsRequest": obj(&[("validDays", n()), ("location", s())]),
        "CredentialsFile": obj(&[("server", s()), ("fingerprint", s()), ("vault", s()), ("secret", s()), ("expires", t()), ("location", s())]),
        "BackupPolicy": obj(&[("name", s()), ("schedule", json!({"type":"object"})), ("retention", json!({"type":"object"})), ("instantRestoreDays", n())]),
        "Policy": obj(&[("id", s()), ("name", s()), ("schedule", json!({"type":"object"})), ("retention", json!({"type":"object"})), ("instantRestoreDays", n()), ("protectedItems", n())]),
        "PolicyList": list_of("Policy"),
        "Protectable": obj(&[("host", s()), ("agentId", s()), ("vm", s()), ("name", s()), ("location", s()), ("agentOnline", json!({"type":"boolean"})), ("info", json!({"type":"object"}))]),
        "ProtectableList": list_of("Protectable"),
        "EnableProtection": obj(&[("host", s()), ("vm", s()), ("policy", s())]),
        "Item": obj(&[("id", s()), ("vmName", s()), ("vm", s()), ("host", s()), ("agentId", s()), ("policy", s()), ("protectionState", enum_of(&["InitialBackupPending", "Protected", "ProtectionStopped", "ProtectionError"])), ("lastBackupTime", t()), ("created", t()), ("replication", json!({"$ref":"#/components/schemas/Replication"}))]),
        "ItemList": list_of("Item"),
        "BackupNow": obj(&[("retainUntil", t())]),
        "Disable": obj(&[("deleteBackupData", json!({"type":"boolean"}))]),
        "RestoreRequest": obj(&[("recoveryPoint", s()), ("mode", enum_of(&["RestoreDisks", "CreateVm", "ReplaceDisks"])), ("targetPath", s()), ("format", enum_of(&["qcow2", "raw"])), ("newName", s()), ("useSecondaryRegion", json!({"type":"boolean"}))]),
        "Point": obj(&[("id", s()), ("itemId", s()), ("time", t()), ("consistency", enum_of(&["AppConsistent", "FileSystemConsistent", "CrashConsistent"])), ("expiry", t()), ("onDemand", json!({"type":"boolean"})), ("size", n()), ("details", json!({"type":"object"})), ("replicated", t()), ("deletedFromPrimary", t())]),
        "PointList": list_of("Point"),
        "Job": obj(&[("id", s()), ("operation", enum_of(&["ConfigureBackup", "Backup", "Restore", "DisableBackup", "DeleteBackupData", "Replication", "Verify"])), ("status", enum_of(&["InProgress", "Completed", "CompletedWithWarnings", "Failed", "Cancelled", "Cancelling"])), ("itemId", s()), ("vmName", s()), ("startTime", t()), ("endTime", t()), ("duration", json!({"type":"number"})), ("tasks", json!({"type":"array"})), ("bytesDone", n()), ("bytesTotal", n()), ("percent", json!({"type":"number"})), ("warnings", json!({"type":"array","items":{"type":"string"}})), ("error", json!({"$ref":"#/components/schemas/Error"})), ("result", json!({"type":"object"}))]),
        "JobList": list_of("Job"),
        "RegisterRequest": obj(&[("secret", s()), ("host", s()), ("location", s()), ("vault", s()), ("version", s())]),
        "RegisterResponse": obj(&[("agentId", s()), ("credential", s()), ("vault", s()), ("location", s())]),
        "Heartbeat": obj(&[("version", s()), ("vms", json!({"type":"array"}))]),
        "Assignment": obj(&[("jobId", s()), ("operation", s()), ("vaultId", s()), ("itemId", s()), ("vm", s()), ("pointName", s()), ("passphrase", s()), ("params", json!({"type":"object"}))]),
        "Progress": obj(&[("bytesDone", n()), ("bytesTotal", n()), ("task", s())]),
        "Completion": obj(&[("status", s()), ("warnings", json!({"type":"array"})), ("error", json!({"$ref":"#/components/schemas/Error"})), ("pointId", s()), ("frozenMs", n()), ("result", json!({"type":"object"}))]),
    })
}

pub fn build() -> Value {
    let mut paths = Map::new();
    for (method, path, id, summary, who, req, resp) in OPERATIONS {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "operationId": id,
            "summary": summary,
            "description": format!("Caller: {who}."),
            "parameters": params,
            "responses": {
                "200": { "description": "OK" },
                "default": { "description": "An error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        });
        if let Some(r) = resp {
            op["responses"]["200"]["content"] = json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{r}")}}});
        }
        if let Some(r) = req {
            op["requestBody"] = json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{r}")}}}});
        }
        if *who == "anyone" || who.starts_with("anyone") {
            op["security"] = json!([]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
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

    #[test]
    fn every_operation_is_documented_once_and_refers_to_known_schemas() {
        let doc = build();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut seen = std::collections::HashSet::new();
        for (method, path, id, _, _, req, resp) in OPERATIONS {
            assert!(seen.insert(*id), "operation id {id} twice");
            assert!(doc["paths"][*path][*method].is_object(), "{method} {path}");
            for r in [req, resp].into_iter().flatten() {
                assert!(schemas.contains_key(*r), "schema {r} of {id}");
            }
        }
    }
}
