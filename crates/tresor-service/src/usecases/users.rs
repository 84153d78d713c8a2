//! Users: people who sign in to the portal with a name and a password (Argon2id,
//! `passwords.rs`), and a TOTP code once they enabled one (`totp.rs`). Each holds role
//! assignments like a token. Creating, listing and deleting users needs
//! `Access.Manage`; a user changes their own password (giving the current one) and
//! their own TOTP, and `Access.Manage` does it for anyone.
//!
//! The first user is made with the admin token (`tresor user create`); the admin
//! token keeps working beside them.

use std::sync::Arc;

use tresor_api::users::{ConfirmTotp, CreateUser, SetPassword, SetRoles, TotpSetup, User};
use tresor_api::ErrorCode;
use tresor_domain::access::{Permission, RoleAssignment};
use tresor_metadata::UserRow;

use crate::audit::Target;
use crate::auth::{new_id, Principal};
use crate::auth::{passwords, totp};
use crate::error::{ServiceError, ServiceResult};
use crate::state::Service;
use crate::usecases::tokens::roles_text;

/// The longest user name.
pub const MAX_NAME: usize = 64;

/// A user's name: 1 to 64 letters, digits and `. _ - @`.
pub fn check_name(name: &str) -> ServiceResult<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::InvalidUserName,
            format!("a user's name has 1 to {MAX_NAME} letters, digits and . _ - @"),
            "use the person's login name or e-mail address (\"alice\", \"alice@example.org\")",
        ))
    }
}

/// The role assignments of a user row; a row that does not read grants nothing.
pub(crate) fn user_roles(row: &UserRow) -> ServiceResult<Vec<RoleAssignment>> {
    serde_json::from_str(&row.role)
        .map_err(|e| ServiceError::internal(format!("user {}'s roles do not read: {e}", row.id)))
}

fn view(row: &UserRow) -> ServiceResult<User> {
    Ok(User {
        id: row.id.clone(),
        name: row.name.clone(),
        created: row.created,
        roles: user_roles(row)?,
        totp: row.totp_secret.is_some(),
    })
}

fn unix_seconds(s: &Service) -> u64 {
    s.now().as_second().max(0) as u64
}

impl Service {
    pub async fn create_user(
        self: &Arc<Self>,
        who: &Principal,
        req: CreateUser,
    ) -> ServiceResult<User> {
        let target = Target::object(&req.name);
        let r: ServiceResult<User> = async {
            who.require_installation(Permission::ManageAccess)?;
            let name = req.name.trim().to_string();
            check_name(&name)?;
            passwords::check_strength(&req.password)?;
            let role = roles_text(&req.roles)?;
            self.blocking(move |s| {
                let row = UserRow {
                    id: new_id(),
                    name,
                    password_hash: passwords::hash(&req.password)?,
                    totp_secret: None,
                    totp_pending: None,
                    role,
                    created: s.now(),
                };
                s.store.insert_user(&row)?;
                view(&row)
            })
            .await
        }
        .await;
        let target = match &r {
            Ok(u) => target.detail(format!("id {} roles {}", u.id, roles_text(&u.roles)?)),
            Err(_) => target,
        };
        self.audited(who, "user.create", target, r).await
    }

    pub async fn users(self: &Arc<Self>, who: &Principal) -> ServiceResult<Vec<User>> {
        who.require_installation(Permission::ManageAccess)?;
        self.blocking(|s| s.store.list_users()?.iter().map(view).collect())
            .await
    }

    /// Deletes a user, their tokens and their portal sessions.
    pub async fn delete_user(self: &Arc<Self>, who: &Principal, name: String) -> ServiceResult<()> {
        let target = Target::object(&name);
        let r: ServiceResult<()> = async {
            who.require_installation(Permission::ManageAccess)?;
            let caller = who.clone();
            self.blocking(move |s| {
                let user = s.find_user(&name)?;
                crate::usecases::guards::protect_approver(s, &caller, &user, true)?;
                s.store.delete_user(&user.id)?;
                let ended = s.sessions.close_for_user(&user.id);
                tracing::info!(user = ?user.name, sessions_ended = ended, "user deleted");
                Ok(())
            })
            .await
        }
        .await;
        self.audited(who, "user.delete", target, r).await
    }

    /// Stores a changed user and ends their portal sessions, so that the change (a
    /// password, roles) holds from their next sign-in on.
    fn save_user_signed_out(&self, user: &UserRow, what: &str) -> ServiceResult<()> {
        self.store.update_user(user)?;
        let ended = self.sessions.close_for_user(&user.id);
        tracing::info!(user = ?user.name, sessions_ended = ended, "{what}");
        Ok(())
    }

    /// Replaces a user's role assignments (`Access.Manage`). The user's portal
    /// sessions end, so that the new roles hold from the next sign-in on.
    pub async fn set_user_roles(
        self: &Arc<Self>,
        who: &Principal,
        name: String,
        req: SetRoles,
    ) -> ServiceResult<User> {
        let role = roles_text(&req.roles);
        let target = Target::object(&name).detail(role.clone().unwrap_or_default());
        let r: ServiceResult<User> = async {
            who.require_installation(Permission::ManageAccess)?;
            let role = role?;
            let caller = who.clone();
            self.blocking(move |s| {
                let mut user = s.find_user(&name)?;
                crate::usecases::guards::protect_approver(s, &caller, &user, false)?;
                user.role = role;
                s.save_user_signed_out(&user, "roles changed")?;
                view(&user)
            })
            .await
        }
        .await;
        self.audited(who, "user.roles", target, r).await
    }

    /// Sets a user's password: one's own (with the current one), or anyone's with
    /// `Access.Manage`. The user's portal sessions end.
    pub async fn set_password(
        self: &Arc<Self>,
        who: &Principal,
        name: String,
        req: SetPassword,
    ) -> ServiceResult<()> {
        let target = Target::object(&name);
        let r: ServiceResult<()> = async {
            passwords::check_strength(&req.password)?;
            let who = who.clone();
            self.blocking(move |s| {
                let (mut user, manager) = s.user_for(&who, &name)?;
                crate::usecases::guards::protect_approver(s, &who, &user, false)?;
                if !manager {
                    let current = req.current_password.as_deref().unwrap_or("");
                    if !passwords::verify(current, &user.password_hash) {
                        return Err(ServiceError::new(
                            ErrorCode::InvalidSignIn,
                            "the current password is wrong",
                            "give your password now as currentPassword",
                        ));
                    }
                }
                user.password_hash = passwords::hash(&req.password)?;
                s.save_user_signed_out(&user, "password changed")
            })
            .await
        }
        .await;
        self.audited(who, "user.password", target, r).await
    }

    /// A new TOTP secret for a user (one's own, or anyone's with `Access.Manage`). It
    /// takes effect once [`Service::confirm_totp`] is given its first code; until then
    /// signing in works as before.
    pub async fn enable_totp(
        self: &Arc<Self>,
        who: &Principal,
        name: String,
    ) -> ServiceResult<TotpSetup> {
        let target = Target::object(&name);
        let w = who.clone();
        let r = self
            .blocking(move |s| {
                let (mut user, _) = s.user_for(&w, &name)?;
                crate::usecases::guards::protect_approver(s, &w, &user, false)?;
                let secret = totp::new_secret();
                user.totp_pending = Some(secret.clone());
                s.store.update_user(&user)?;
                Ok(TotpSetup {
                    uri: totp::uri(&secret, &user.name),
                    secret,
                })
            })
            .await;
        self.audited(who, "user.totp.enable", target, r).await
    }

    /// Confirms the TOTP secret [`Service::enable_totp`] handed out with a code it
    /// makes now: from then on, signing in needs a code. The code is taken once, as
    /// at sign-in; wrong codes count against the caller's address like failed
    /// sign-ins (`TooManyAttempts` when too many).
    pub async fn confirm_totp(
        self: &Arc<Self>,
        who: &Principal,
        name: String,
        req: ConfirmTotp,
    ) -> ServiceResult<()> {
        let target = Target::object(&name);
        let w = who.clone();
        let r = match self.sign_in_allowed(who.origin()) {
            Err(e) => Err(e),
            Ok(()) => self.check_totp_confirmation(w, name, req).await,
        };
        self.audited(who, "user.totp.confirm", target, r).await
    }

    async fn check_totp_confirmation(
        self: &Arc<Self>,
        w: Principal,
        name: String,
        req: ConfirmTotp,
    ) -> ServiceResult<()> {
        self.blocking(move |s| {
                let (mut user, _) = s.user_for(&w, &name)?;
                let Some(secret) = user.totp_pending.take() else {
                    return Err(ServiceError::new(
                        ErrorCode::InvalidTotpCode,
                        format!("no TOTP secret of {} waits for its first code", user.name),
                        "enable TOTP first (POST /api/v1/users/{name}/totp), then confirm with a code",
                    ));
                };
                let Some(step) = totp::matching_step(&secret, &req.code, unix_seconds(s)) else {
                    if let Err(wait) = s.limiters.sign_in.take(w.origin(), std::time::Instant::now()) {
                        return Err(wait.error("failed sign-ins and TOTP codes"));
                    }
                    return Err(ServiceError::new(
                        ErrorCode::InvalidTotpCode,
                        "that is not the code of the new secret now",
                        "type the six digits the authenticator app shows for Tresor; check the phone's clock",
                    ));
                };
                if !s.store.accept_totp_step(&user.id, step)? {
                    return Err(ServiceError::new(
                        ErrorCode::InvalidTotpCode,
                        "that code's 30 seconds were used for a sign-in or a confirmation already",
                        "wait for the authenticator app's next code and give that one",
                    ));
                }
                user.totp_secret = Some(secret);
                s.store.update_user(&user)?;
                Ok(())
            })
            .await
    }

    /// Turns a user's TOTP off: signing in needs the password only.
    pub async fn disable_totp(
        self: &Arc<Self>,
        who: &Principal,
        name: String,
    ) -> ServiceResult<()> {
        let target = Target::object(&name);
        let w = who.clone();
        let r = self
            .blocking(move |s| {
                let (mut user, _) = s.user_for(&w, &name)?;
                crate::usecases::guards::protect_approver(s, &w, &user, false)?;
                user.totp_secret = None;
                user.totp_pending = None;
                s.store.update_user(&user)?;
                Ok(())
            })
            .await;
        self.audited(who, "user.totp.disable", target, r).await
    }

    fn find_user(&self, name: &str) -> ServiceResult<UserRow> {
        self.store
            .find_user_by_name(name)?
            .ok_or_else(|| ServiceError::not_found(format!("user {name}")))
    }

    /// The user `name`, if `who` is that user (signed in with their password, not
    /// through one of their tokens) or may manage access (and whether it may). Anyone
    /// else is refused before the name is looked up, so that no one learns which
    /// users exist.
    fn user_for(&self, who: &Principal, name: &str) -> ServiceResult<(UserRow, bool)> {
        let denied = match who.require_installation(Permission::ManageAccess) {
            Ok(()) => return Ok((self.find_user(name)?, true)),
            Err(e) => e,
        };
        let Some(own) = who.user_id() else {
            return Err(denied);
        };
        match self.store.find_user_by_name(name)? {
            // A user's password and TOTP are the person: a stolen token of theirs
            // must not turn their TOTP off or to a secret of its own.
            Some(u) if u.id == own && who.token_id().is_some() => Err(ServiceError::forbidden(
                "a user's password and TOTP are changed signed in with the password, not with a token",
            )),
            Some(u) if u.id == own => Ok((u, false)),
            _ => Err(denied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_short_and_plain() {
        for ok in ["alice", "Alice.Smith", "a@example.org", "ops_2-b", "zoë"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a:b", &"x".repeat(MAX_NAME + 1)] {
            assert_eq!(
                check_name(bad).unwrap_err().code,
                ErrorCode::InvalidUserName,
                "{bad}"
            );
        }
    }
}
