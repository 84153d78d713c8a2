//! Reads the portal needs to decide what to show, answered by the same rules the use
//! cases apply, so a page never guesses: whether the caller sees resource guards at
//! all (the header's link), and which of a guard's requests it may decide (the
//! Approve and Reject buttons). The use cases still refuse on their own whatever a
//! page showed.

use std::sync::Arc;

use tresor_domain::access::Permission;
use tresor_domain::guard::RequestStatus;

use crate::auth::Principal;
use crate::error::ServiceResult;
use crate::state::Service;
use crate::usecases::guards::{find_guard, is_approver, is_requester, MAX_LIST};

impl Service {
    /// Whether `resource_guards` would list anything to the caller: it reads vaults
    /// somewhere, or approves for a guard. A failed catalogue read answers no (the
    /// link is hidden; the page itself would show the error).
    pub async fn sees_resource_guards(self: &Arc<Self>, who: &Principal) -> bool {
        if who.require_somewhere(Permission::ReadVaults).is_ok() {
            return true;
        }
        if who.user_id().is_none() {
            return false;
        }
        let caller = who.clone();
        self.blocking(move |s| {
            Ok(s.store
                .list_guards()?
                .iter()
                .any(|g| is_approver(g, &caller)))
        })
        .await
        .unwrap_or(false)
    }

    /// The ids of the requests of guard `guard_name` the caller may approve or reject
    /// now: pending (not expired by the server's clock), the caller one of the guard's
    /// approvers, and not the one who asked (the checks of `approve_guard_request`).
    pub async fn decidable_guard_requests(
        self: &Arc<Self>,
        who: &Principal,
        guard_name: String,
    ) -> ServiceResult<Vec<String>> {
        let caller = who.clone();
        self.blocking(move |s| {
            let g = find_guard(s, &guard_name)?;
            if !is_approver(&g, &caller) {
                return Ok(Vec::new());
            }
            let now = s.now();
            Ok(s.store
                .list_guard_requests(&g.id, MAX_LIST)?
                .into_iter()
                .filter(|r| {
                    RequestStatus::parse(&r.status).map(|st| st.at(r.expires, now))
                        == Some(RequestStatus::Pending)
                })
                .filter(|r| !is_requester(r, &caller))
                .map(|r| r.id)
                .collect())
        })
        .await
    }
}
