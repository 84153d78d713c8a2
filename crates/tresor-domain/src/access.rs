//! Who may do what, and where: permissions, roles, scopes and role assignments,
//! after Azure's role-based access control.
//!
//! - A [`Permission`] is one kind of thing a use case does (`Vaults.Delete`,
//!   `Items.Restore`).
//! - A [`Role`] is a named set of permissions, Azure's built-in roles for
//!   Recovery Services vaults: `Owner`, `Contributor`, `BackupOperator`,
//!   `RestoreOperator`, `Reader`. [`Role::grants`] is the table; the roles are
//!   nested, each granting all that the next one grants:
//!   Reader ⊆ RestoreOperator ⊆ BackupOperator ⊆ Contributor ⊆ Owner.
//! - A [`Scope`] is where an assignment applies: the whole installation, one
//!   resource group (its vaults), or one vault.
//! - A [`RoleAssignment`] gives a role at a scope; [`authorize`] answers whether
//!   any of a caller's assignments grants a permission on a [`Target`] (the
//!   installation, or one vault), and refuses with `MissingPermission` if none
//!   does.
//!
//! Where a permission is granted depends on its [`Reach`]:
//!
//! - most permissions act on a vault and its contents, and are granted by an
//!   assignment whose scope covers the vault (the installation, the vault's
//!   resource group, or the vault itself); acting on the installation as a
//!   whole (listing host agents, the whole audit log) needs the installation
//!   scope;
//! - `Vaults.Create`, `Access.Manage` and `ResourceGuards.Manage` are granted
//!   at the installation scope only: vault names are unique across the
//!   installation, role assignments and resource guards are the installation's
//!   own safeguards, and an assignment to a resource group or a vault must not
//!   reach beyond it;
//! - `Tokens.ManageOwn` concerns the caller's own tokens, which carry no more
//!   than the caller's own assignments: any assignment of a role that grants
//!   it does, whatever its scope.
//!
//! A narrower scope never grants more than a wider one (a test checks every
//! permission, role, scope and target).
//!
//! Names compare as they do everywhere in the vault: a vault or resource group
//! named in a scope is the same whatever the case of its letters. A vault
//! scope names the vault with its resource group, so an assignment to vault
//! `v` of group `a` does not cover a vault `v` later created in group `b`.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{codes, RuleError};
use crate::names::{ResourceGroupName, VaultName};

/// One kind of thing a use case does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Permission {
    /// Read vaults and everything in them: properties, policies, protected
    /// items, jobs, recovery points, storage use; and host agents, their VMs
    /// and locations.
    ReadVaults,
    /// Read the audit log: who did what, from which address.
    ReadAudit,
    /// Create a vault.
    CreateVault,
    /// Change a vault's properties: storage redundancy, cross-region restore,
    /// soft delete, immutability.
    UpdateVault,
    /// Delete an (empty) vault.
    DeleteVault,
    /// Issue a vault credentials file, with which a host registers an agent.
    IssueAgentCredentials,
    /// Create, change and delete backup policies (their schedules and
    /// retention).
    ManagePolicies,
    /// Protect a VM not yet protected, under an existing policy.
    EnableProtection,
    /// Change a protected item's policy, or resume protection of a stopped
    /// item: the policy's retention then applies to the points already kept.
    ModifyProtection,
    /// Back an item up now, with its own retention date.
    BackupNow,
    /// Restore from a recovery point (disks, a new VM, or over the original's
    /// disks; from either region).
    Restore,
    /// Stop protecting an item and keep its data.
    StopProtection,
    /// Stop protecting an item and delete its recovery points.
    DeleteBackupData,
    /// Bring back an item's soft-deleted backup data.
    UndeleteBackupData,
    /// Delete one recovery point.
    DeleteRecoveryPoint,
    /// Cancel a job.
    CancelJob,
    /// Replicate a vault to its paired location now.
    Replicate,
    /// Verify a vault's stored data.
    Verify,
    /// Manage users, role assignments and other people's tokens.
    ManageAccess,
    /// Create, list and revoke one's own API tokens.
    ManageOwnTokens,
    /// Manage the resource guards that protect critical operations.
    ManageResourceGuard,
}

/// Where a permission is granted from; see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reach {
    /// By an assignment whose scope covers the target.
    Target,
    /// By an assignment at the installation scope only, whatever the target.
    Installation,
    /// The caller's own things: by an assignment of a role that grants it, at
    /// any scope.
    Own,
}

impl Permission {
    /// Every permission, in the order of the documentation's table.
    pub const ALL: &'static [Permission] = &[
        Permission::ReadVaults,
        Permission::ReadAudit,
        Permission::CreateVault,
        Permission::UpdateVault,
        Permission::DeleteVault,
        Permission::IssueAgentCredentials,
        Permission::ManagePolicies,
        Permission::EnableProtection,
        Permission::ModifyProtection,
        Permission::BackupNow,
        Permission::Restore,
        Permission::StopProtection,
        Permission::DeleteBackupData,
        Permission::UndeleteBackupData,
        Permission::DeleteRecoveryPoint,
        Permission::CancelJob,
        Permission::Replicate,
        Permission::Verify,
        Permission::ManageAccess,
        Permission::ManageOwnTokens,
        Permission::ManageResourceGuard,
    ];

    /// The name messages use, `Resource.Action`.
    pub fn name(self) -> &'static str {
        match self {
            Permission::ReadVaults => "Vaults.Read",
            Permission::ReadAudit => "Audit.Read",
            Permission::CreateVault => "Vaults.Create",
            Permission::UpdateVault => "Vaults.Update",
            Permission::DeleteVault => "Vaults.Delete",
            Permission::IssueAgentCredentials => "Vaults.IssueCredentials",
            Permission::ManagePolicies => "Policies.Manage",
            Permission::EnableProtection => "Items.EnableProtection",
            Permission::ModifyProtection => "Items.ModifyProtection",
            Permission::BackupNow => "Items.BackupNow",
            Permission::Restore => "Items.Restore",
            Permission::StopProtection => "Items.StopProtection",
            Permission::DeleteBackupData => "Items.DeleteBackupData",
            Permission::UndeleteBackupData => "Items.UndeleteBackupData",
            Permission::DeleteRecoveryPoint => "RecoveryPoints.Delete",
            Permission::CancelJob => "Jobs.Cancel",
            Permission::Replicate => "Vaults.Replicate",
            Permission::Verify => "Vaults.Verify",
            Permission::ManageAccess => "Access.Manage",
            Permission::ManageOwnTokens => "Tokens.ManageOwn",
            Permission::ManageResourceGuard => "ResourceGuards.Manage",
        }
    }

    /// Where the permission is granted from.
    pub fn reach(self) -> Reach {
        match self {
            Permission::CreateVault
            | Permission::ManageAccess
            | Permission::ManageResourceGuard => Reach::Installation,
            Permission::ManageOwnTokens => Reach::Own,
            Permission::ReadVaults
            | Permission::ReadAudit
            | Permission::UpdateVault
            | Permission::DeleteVault
            | Permission::IssueAgentCredentials
            | Permission::ManagePolicies
            | Permission::EnableProtection
            | Permission::ModifyProtection
            | Permission::BackupNow
            | Permission::Restore
            | Permission::StopProtection
            | Permission::DeleteBackupData
            | Permission::UndeleteBackupData
            | Permission::DeleteRecoveryPoint
            | Permission::CancelJob
            | Permission::Replicate
            | Permission::Verify => Reach::Target,
        }
    }

    /// The roles that grant the permission: the one table of the model.
    ///
    /// The operators' lines follow Azure's Backup Operator: they keep backups
    /// running and restore, but delete no data and change no retention, so
    /// that a stolen operator's credential cannot shorten what is kept
    /// (policies, stopping protection, changing an item's policy, deleting
    /// points are the Contributor's). The audit log names people, tokens and
    /// addresses: Owners and Contributors read it.
    fn roles(self) -> &'static [Role] {
        use Role::*;
        const READERS: &[Role] = &[Owner, Contributor, BackupOperator, RestoreOperator, Reader];
        const RESTORERS: &[Role] = &[Owner, Contributor, BackupOperator, RestoreOperator];
        const OPERATORS: &[Role] = &[Owner, Contributor, BackupOperator];
        const CONTRIBUTORS: &[Role] = &[Owner, Contributor];
        const OWNERS: &[Role] = &[Owner];
        match self {
            Permission::ReadVaults | Permission::ManageOwnTokens => READERS,
            Permission::Restore => RESTORERS,
            Permission::IssueAgentCredentials
            | Permission::EnableProtection
            | Permission::BackupNow
            | Permission::UndeleteBackupData
            | Permission::CancelJob
            | Permission::Replicate
            | Permission::Verify => OPERATORS,
            Permission::ReadAudit
            | Permission::CreateVault
            | Permission::UpdateVault
            | Permission::DeleteVault
            | Permission::ManagePolicies
            | Permission::ModifyProtection
            | Permission::StopProtection
            | Permission::DeleteBackupData
            | Permission::DeleteRecoveryPoint => CONTRIBUTORS,
            Permission::ManageAccess | Permission::ManageResourceGuard => OWNERS,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A named set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Role {
    /// Everything, access management included.
    Owner,
    /// Everything but access management and resource guards.
    Contributor,
    /// Keeps backups running and restores: protects VMs, backs up now,
    /// restores, cancels jobs, replicates, verifies, registers hosts, reads.
    /// Deletes no data, changes no policy or retention, stops no protection.
    BackupOperator,
    /// Restores, and reads.
    RestoreOperator,
    /// Reads.
    Reader,
}

impl Role {
    /// Every role, widest first.
    pub const ALL: &'static [Role] = &[
        Role::Owner,
        Role::Contributor,
        Role::BackupOperator,
        Role::RestoreOperator,
        Role::Reader,
    ];

    /// Whether the role grants `permission` (at the scopes its reach allows).
    pub fn grants(self, permission: Permission) -> bool {
        permission.roles().contains(&self)
    }

    /// Whether this role grants everything `other` grants (the roles are nested:
    /// each includes those after it in [`Role::ALL`]).
    pub fn includes(self, other: Role) -> bool {
        let rank = |r: Role| Role::ALL.iter().position(|x| *x == r);
        rank(self) <= rank(other)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where a role assignment applies. As a string, Azure's scope paths
/// shortened: `/`, `/resourceGroups/{group}`,
/// `/resourceGroups/{group}/vaults/{vault}`.
///
/// Two scopes are equal when they name the same thing, whatever the case of
/// the names' letters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    /// The whole installation: every vault, and what belongs to no vault.
    Installation,
    /// The vaults of one resource group.
    ResourceGroup(ResourceGroupName),
    /// One vault.
    Vault {
        resource_group: ResourceGroupName,
        vault: VaultName,
    },
}

/// What an operation acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The installation as a whole: creating vaults, access, host agents.
    Installation,
    /// A vault, or something in it.
    Vault {
        resource_group: ResourceGroupName,
        vault: VaultName,
    },
}

impl Target {
    pub fn vault(resource_group: ResourceGroupName, vault: VaultName) -> Target {
        Target::Vault {
            resource_group,
            vault,
        }
    }

    /// The narrowest scope that covers the target.
    pub fn scope(&self) -> Scope {
        match self {
            Target::Installation => Scope::Installation,
            Target::Vault {
                resource_group,
                vault,
            } => Scope::Vault {
                resource_group: resource_group.clone(),
                vault: vault.clone(),
            },
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Installation => f.write_str("the installation"),
            Target::Vault {
                resource_group,
                vault,
            } => write!(f, "vault {vault} (resource group {resource_group})"),
        }
    }
}

impl Scope {
    /// Whether an assignment at this scope applies to `target`.
    pub fn covers(&self, target: &Target) -> bool {
        match (self, target) {
            (Scope::Installation, _) => true,
            (_, Target::Installation) => false,
            (Scope::ResourceGroup(group), Target::Vault { resource_group, .. }) => {
                group.key() == resource_group.key()
            }
            (
                Scope::Vault {
                    resource_group: group,
                    vault: name,
                },
                Target::Vault {
                    resource_group,
                    vault,
                },
            ) => group.key() == resource_group.key() && name.key() == vault.key(),
        }
    }

    /// Whether `other` lies within this scope (every scope lies within itself).
    pub fn contains(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Installation, _) => true,
            (_, Scope::Installation) => false,
            (Scope::ResourceGroup(group), Scope::ResourceGroup(other_group)) => {
                group.key() == other_group.key()
            }
            (Scope::ResourceGroup(group), Scope::Vault { resource_group, .. }) => {
                group.key() == resource_group.key()
            }
            (Scope::Vault { .. }, Scope::ResourceGroup(_)) => false,
            (Scope::Vault { .. }, Scope::Vault { .. }) => self == other,
        }
    }

    /// The lowercase form, under which scopes compare.
    pub fn key(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }

    pub fn parse(s: &str) -> Result<Scope, RuleError> {
        let bad = || {
            RuleError::new(
                codes::INVALID_SCOPE,
                format!("The scope {s:?} is not valid."),
                "Write / (the installation), /resourceGroups/GROUP or \
                 /resourceGroups/GROUP/vaults/VAULT.",
            )
        };
        if s == "/" {
            return Ok(Scope::Installation);
        }
        let parts: Vec<&str> = s.strip_prefix('/').ok_or_else(bad)?.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            ["resourceGroups", group] => Ok(Scope::ResourceGroup(ResourceGroupName::parse(group)?)),
            ["resourceGroups", group, "vaults", vault] => Ok(Scope::Vault {
                resource_group: ResourceGroupName::parse(group)?,
                vault: VaultName::parse(vault)?,
            }),
            _ => Err(bad()),
        }
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Scope) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Scope {}

impl Hash for Scope {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Installation => f.write_str("/"),
            Scope::ResourceGroup(group) => write!(f, "/resourceGroups/{group}"),
            Scope::Vault {
                resource_group,
                vault,
            } => write!(f, "/resourceGroups/{resource_group}/vaults/{vault}"),
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = RuleError;
    fn from_str(s: &str) -> Result<Scope, RuleError> {
        Scope::parse(s)
    }
}

impl TryFrom<String> for Scope {
    type Error = RuleError;
    fn try_from(s: String) -> Result<Scope, RuleError> {
        Scope::parse(&s)
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.to_string()
    }
}

// A string of the shape `parse` accepts.
impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(
                "^/(resourceGroups/[A-Za-z0-9_.()-]+(/vaults/[A-Za-z][A-Za-z0-9-]+)?)?$",
            ))
            .examples(["/resourceGroups/rg1/vaults/Vault-2"])
            .into()
    }
}

impl ToSchema for Scope {}

/// A role given at a scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    pub role: Role,
    pub scope: Scope,
}

impl RoleAssignment {
    pub fn new(role: Role, scope: Scope) -> RoleAssignment {
        RoleAssignment { role, scope }
    }

    /// Whether this assignment alone grants `permission` on `target`.
    pub fn grants(&self, permission: Permission, target: &Target) -> bool {
        self.role.grants(permission)
            && match permission.reach() {
                Reach::Target => self.scope.covers(target),
                Reach::Installation => self.scope == Scope::Installation,
                Reach::Own => true,
            }
    }
}

impl RoleAssignment {
    /// Whether this assignment grants at least what `other` grants, wherever
    /// `other` does: a role as strong or stronger, at a scope containing `other`'s.
    pub fn covers(&self, other: &RoleAssignment) -> bool {
        self.role.includes(other.role) && self.scope.contains(&other.scope)
    }
}

/// Whether every assignment of `wanted` is covered by one of `held` (a token
/// holds no more than its maker); refused with `TokenRoleNotHeld` naming the
/// first that is not.
pub fn within(held: &[RoleAssignment], wanted: &[RoleAssignment]) -> Result<(), RuleError> {
    match wanted.iter().find(|w| !held.iter().any(|h| h.covers(w))) {
        None => Ok(()),
        Some(w) => Err(RuleError::new(
            codes::TOKEN_ROLE_NOT_HELD,
            format!(
                "The role {} at the scope {} is more than the caller holds.",
                w.role, w.scope
            ),
            "Ask for a role the caller holds at that scope or a wider one (or a weaker \
             role), or leave the roles out to give the token the caller's own.",
        )),
    }
}

/// Whether any of `assignments` grants `permission` on `target`; refused with
/// `MissingPermission`, naming both, if none does.
pub fn authorize(
    assignments: &[RoleAssignment],
    permission: Permission,
    target: &Target,
) -> Result<(), RuleError> {
    if assignments.iter().any(|a| a.grants(permission, target)) {
        return Ok(());
    }
    let roles = Role::ALL
        .iter()
        .filter(|r| r.grants(permission))
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let recommendation = match permission.reach() {
        Reach::Target => format!(
            "Ask an Owner of the installation for a role assignment that grants {permission} \
             at the scope {} or one containing it (role: {roles}).",
            target.scope()
        ),
        Reach::Installation => format!(
            "Ask an Owner of the installation for a role assignment that grants {permission} \
             at the installation's scope / (role: {roles})."
        ),
        Reach::Own => format!(
            "Ask an Owner of the installation for a role assignment that grants {permission}, \
             at any scope (role: {roles})."
        ),
    };
    Err(RuleError::new(
        codes::MISSING_PERMISSION,
        format!("No role assignment of the caller grants {permission} on {target}."),
        recommendation,
    ))
}

#[cfg(test)]
mod tests;
