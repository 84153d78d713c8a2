//! Backup items: the protected VMs of a vault, one VM's details and recovery points
//! (in the primary region, and in the secondary one with cross-region restore),
//! "Back up now" with a retention date, restore (new VM, disks, or over the original),
//! "Stop backup" (keeping or deleting the data), "Undelete" (soft-deleted data),
//! "Change policy" and "Resume backup", a libvirt domain's "Disks to back up", and
//! deleting or undeleting one point.
//! Each page shows only what the operator may do (`crate::permissions`).
//!
//! Every page reads through the service's use cases and every form builds the API's
//! request and calls the use case, so the portal obeys exactly the API's rules.
//!
//! - `page.rs`: the list and one item's page.
//! - `shared.rs`: what those pages share.
//! - `backup_now.rs`, `restore.rs`, `stop.rs`, `undelete.rs`, `policy.rs`, `disks.rs`:
//!   the forms (`disks.rs` also tells whether the item's VM is a libvirt domain).
//! - `points.rs`: the recovery points table, deleting and undeleting one point.

mod backup_now;
mod disks;
mod page;
mod points;
mod policy;
mod restore;
mod shared;
mod stop;
mod undelete;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tresor_service::Service;

use crate::items::backup_now::{backup, backup_form};
use crate::items::disks::{change_disks, disks_form};
use crate::items::page::{details, list};
use crate::items::points::{
    delete as delete_point, delete_form as delete_point_form, undelete as undelete_point,
};
use crate::items::policy::{change_policy, policy_form};
use crate::items::restore::{restore, restore_form};
use crate::items::stop::{stop, stop_form};
use crate::items::undelete::undelete;

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/vaults/{vault}/items", get(list))
        .route("/vaults/{vault}/items/{item}", get(details))
        .route(
            "/vaults/{vault}/items/{item}/backup",
            get(backup_form).post(backup),
        )
        .route(
            "/vaults/{vault}/items/{item}/restore",
            get(restore_form).post(restore),
        )
        .route(
            "/vaults/{vault}/items/{item}/stop",
            get(stop_form).post(stop),
        )
        .route("/vaults/{vault}/items/{item}/undelete", post(undelete))
        .route(
            "/vaults/{vault}/items/{item}/policy",
            get(policy_form).post(change_policy),
        )
        .route(
            "/vaults/{vault}/items/{item}/disks",
            get(disks_form).post(change_disks),
        )
        .route(
            "/vaults/{vault}/items/{item}/points/{point}/delete",
            get(delete_point_form).post(delete_point),
        )
        .route(
            "/vaults/{vault}/items/{item}/points/{point}/undelete",
            post(undelete_point),
        )
}
