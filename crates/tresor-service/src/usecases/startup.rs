//! What a start of the server does before it serves.

use crate::error::ServiceResult;
use crate::state::Service;

impl Service {
    /// What a start does before serving: leases of jobs agents held are extended (the
    /// agents come back), and the server's own runs that a stop cut off end as failed.
    pub fn recover_after_restart(&self) -> ServiceResult<()> {
        crate::jobs::extend_leases_after_restart(self)?;
        crate::replication::fail_interrupted_runs(self)?;
        Ok(())
    }

    /// At the first start of a data directory: the admin token, made once, kept only as
    /// its hash; `None` on every later start.
    pub fn first_admin_token(&self) -> ServiceResult<Option<String>> {
        if self.store.get_setting("admin_token_created")?.is_some() {
            return Ok(None);
        }
        let token = crate::auth::new_secret("tresor_admin");
        self.store.insert_token(&tresor_metadata::TokenRow {
            id: crate::auth::new_id(),
            name: "admin".into(),
            hash: crate::auth::hash_secret(&token),
            role: crate::usecases::tokens::roles_text(
                &crate::usecases::tokens::owner_of_installation(),
            )?,
            created: self.now(),
            user_id: None,
            expires: None,
        })?;
        self.store
            .set_setting("admin_token_created", &self.now().to_string())?;
        Ok(Some(token))
    }
}
