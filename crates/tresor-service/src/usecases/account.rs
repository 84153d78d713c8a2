//! A signed-in user's own account, as the portal's "My account" page shows it: name,
//! role assignments and whether signing in needs a TOTP code. Reading one's own
//! record needs no permission; changing it goes through `users.rs` (`set_password`,
//! `enable_totp`, `confirm_totp`, `disable_totp`), which check who may.

use std::sync::Arc;

use tresor_api::users::User;
use tresor_api::ErrorCode;

use crate::auth::Principal;
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;
use crate::usecases::users::user_roles;

impl Service {
    /// The caller's own user. A token (or an agent) has no account: refused with
    /// `Unauthorized`, saying to sign in as a user.
    pub async fn own_user(self: &Arc<Self>, who: &Principal) -> ServiceResult<User> {
        let no_account = || {
            ServiceError::new(
                ErrorCode::Unauthorized,
                "this session was opened with a token, which has no account",
                "sign in with a user's name and password to manage your account",
            )
        };
        let (Some(id), name) = (who.user_id().map(str::to_string), who.name().to_string()) else {
            return Err(no_account());
        };
        self.blocking(move |s| {
            // By name, then checked by id: a user deleted and made again under the
            // same name is someone else.
            let row = s
                .store
                .find_user_by_name(&name)?
                .filter(|u| u.id == id)
                .ok_or_else(|| ServiceError::not_found(format!("user {name}")))?;
            Ok(User {
                id: row.id.clone(),
                name: row.name.clone(),
                created: row.created,
                roles: user_roles(&row)?,
                totp: row.totp_secret.is_some(),
            })
        })
        .await
    }
}
