//! The use cases, one file per resource; each is an `impl Service` block whose
//! methods take the caller's [`Principal`](crate::Principal) first.

pub mod account;
pub mod agents;
pub mod guards;
pub mod items;
pub mod jobs;
pub mod overview;
pub mod permissions;
pub mod policies;
pub mod portal_reads;
pub mod protection;
pub mod sign_in;
pub mod startup;
pub mod storage;
pub mod tokens;
pub mod users;
pub mod vaults;
pub mod vm_page;
