//! The wire contract of Tresor: every body the vault server's REST API takes and
//! answers, every message between a host agent and the server, and the files the
//! server hands out (vault credentials, the CLI's configuration), as Rust types.
//!
//! The server, the agent, the CLI and the portal all speak through these types, and
//! `/openapi.json` is generated from them, so the document cannot drift from the code.
//!
//! JSON uses camelCase field names and Azure's spelling of enum values
//! (`"GeoRedundant"`, `"InProgress"`).
//!
//! - [`vaults`]: vaults, backup properties, vault credentials, verify.
//! - [`policies`]: backup policies as the API shows them.
//! - [`items`]: protectable VMs, protected items, back up now, restore, recovery points.
//! - [`jobs`]: jobs, their operations, statuses and filters.
//! - [`agents`]: registration, heartbeat, job assignment, progress and completion.
//! - [`inventory`]: what an agent reports of its VMs (state, disks, guest agent, preflight).
//! - [`overview`]: a vault's storage figures, reported VMs with the vault protecting each.
//! - [`storage`]: an agent's access to its repository (objects, writers).
//! - [`tokens`]: API tokens.
//! - [`audit`]: the audit log and the check of its chain.
//! - [`guards`]: resource guards and requests for approval of critical operations.
//! - [`error`]: the error answer and its codes.
//! - [`config`]: the CLI's configuration file and the service's ping.
//!
//! **Architecture invariant:** holds types and their serde shape, nothing else: no
//! HTTP, no storage, no rules (those are `tresor-domain`'s).

#![forbid(unsafe_code)]

pub mod agents;
pub mod audit;
pub mod config;
pub mod error;
pub mod guards;
pub mod inventory;
pub mod items;
pub mod jobs;
pub mod overview;
pub mod policies;
pub mod storage;
pub mod tokens;
pub mod users;
pub mod vaults;

pub use error::{ErrorBody, ErrorCode};
pub use jobs::{JobOperation, JobStatus};
