//! The vault service: every use case of Tresor, once, for an authenticated
//! [`Principal`], and the work behind them.
//!
//! Adapters (the REST API in `tresor-server`, the portal in `tresor-portal`) turn a
//! request into a principal (`Service::authenticate_admin`, `authenticate_agent`,
//! `session`) and a `tresor-api` type, call one method of [`Service`], and turn its
//! answer or [`ServiceError`] into their own form. They decide nothing themselves.
//!
//! - `usecases/`: one file per resource, each an `impl Service` block of use cases:
//!   vaults, policies, items (protection, back up now, restore, recovery points),
//!   jobs, agents (registration and the agent's job protocol), storage (an agent's
//!   objects and writers), tokens.
//! - `auth.rs`: secrets, [`Principal`] (made only here); `sessions.rs`: portal
//!   sessions; `attempts.rs`: failed attempts limited per client address.
//! - `audit.rs`: the audit trail: every change and refused change recorded in the
//!   catalogue's hash-chained log; reading and verifying it.
//! - `jobs.rs`: the job engine (leases, completion, the recovery point catalogue,
//!   retention); `scheduler.rs`: policies' schedules to backup jobs.
//! - `replication.rs`: GeoRedundant vaults copied to the paired location;
//!   `verify.rs`: re-reading a vault's data; `garbage.rs`: garbage collection;
//!   `soft_delete.rs`: deleted backup data kept, undeleted, purged when its time ends.
//! - `repos.rs`: one repository per (vault, host agent); `locations.rs`: locations,
//!   their storage targets and pairs (`server.toml`).
//! - `catalogue.rs`: finding rows by name; `views.rs`: rows as `tresor-api` types.
//! - `background.rs`: the loops that run the scheduler, leases, retention,
//!   replication and garbage collection until cancelled.
//!
//! **Architecture invariant:** knows nothing of HTTP, HTML or QEMU. Rules are the
//! domain's (`tresor-domain`), the catalogue is the metadata store's
//! (`tresor-metadata`), data is the engine's (`tresor-engine`).

pub mod attempts;
pub mod audit;
pub mod auth;
pub mod background;
pub mod catalogue;
pub mod error;
pub mod garbage;
pub mod jobs;
pub mod locations;
pub mod ranges;
pub mod replication;
pub mod repos;
pub mod scheduler;
pub mod sessions;
pub mod soft_delete;
pub mod state;
pub mod usecases;
pub mod verify;
pub mod views;

pub use auth::Principal;
pub use error::{ServiceError, ServiceResult};
pub use sessions::SignedIn;
pub use state::{Clock, Service, SystemClock};
pub use usecases::sign_in::csrf_mismatch;
