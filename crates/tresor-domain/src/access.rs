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
mod tests {
    use super::*;

    /// The model, written out: which roles grant each permission, and which
    /// scopes grant it (given a role that does) on vault `Vault-1` of group
    /// `rg-a`, and on the installation.
    ///
    /// Roles: Owner, Contributor, BackupOperator, RestoreOperator, Reader.
    /// Scopes on the vault: `/`, its group `rg-a`, another group `rg-b`, the
    /// vault itself, another vault `Vault-2` of `rg-a`. On the installation:
    /// `/`, a group, a vault.
    const SPEC: &str = "
        permission             Own Con BOp ROp Rea | /  rg-a rg-b V-1 V-2 | /  rg  vault
        ReadVaults             x   x   x   x   x   | x  x    .    x   .   | x  .   .
        ReadAudit              x   x   .   .   .   | x  x    .    x   .   | x  .   .
        CreateVault            x   x   .   .   .   | x  .    .    .   .   | x  .   .
        UpdateVault            x   x   .   .   .   | x  x    .    x   .   | x  .   .
        DeleteVault            x   x   .   .   .   | x  x    .    x   .   | x  .   .
        IssueAgentCredentials  x   x   x   .   .   | x  x    .    x   .   | x  .   .
        ManagePolicies         x   x   .   .   .   | x  x    .    x   .   | x  .   .
        EnableProtection       x   x   x   .   .   | x  x    .    x   .   | x  .   .
        ModifyProtection       x   x   .   .   .   | x  x    .    x   .   | x  .   .
        BackupNow              x   x   x   .   .   | x  x    .    x   .   | x  .   .
        Restore                x   x   x   x   .   | x  x    .    x   .   | x  .   .
        StopProtection         x   x   .   .   .   | x  x    .    x   .   | x  .   .
        DeleteBackupData       x   x   .   .   .   | x  x    .    x   .   | x  .   .
        UndeleteBackupData     x   x   x   .   .   | x  x    .    x   .   | x  .   .
        DeleteRecoveryPoint    x   x   .   .   .   | x  x    .    x   .   | x  .   .
        CancelJob              x   x   x   .   .   | x  x    .    x   .   | x  .   .
        Replicate              x   x   x   .   .   | x  x    .    x   .   | x  .   .
        Verify                 x   x   x   .   .   | x  x    .    x   .   | x  .   .
        ManageAccess           x   .   .   .   .   | x  .    .    .   .   | x  .   .
        ManageOwnTokens        x   x   x   x   x   | x  x    x    x   x   | x  x   x
        ManageResourceGuard    x   .   .   .   .   | x  .    .    .   .   | x  .   .
    ";

    struct Row {
        permission: Permission,
        roles: Vec<bool>,
        on_vault: Vec<bool>,
        on_installation: Vec<bool>,
    }

    fn spec() -> Vec<Row> {
        SPEC.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("permission"))
            .map(|line| {
                let mut words = line.split_whitespace().filter(|w| *w != "|");
                let name = words.next().unwrap();
                let permission = *Permission::ALL
                    .iter()
                    .find(|p| format!("{p:?}") == name)
                    .unwrap_or_else(|| panic!("{name} is no permission"));
                let marks: Vec<bool> = words
                    .map(|w| match w {
                        "x" => true,
                        "." => false,
                        _ => panic!("{w} in the line of {name}"),
                    })
                    .collect();
                assert_eq!(marks.len(), 13, "{name}");
                Row {
                    permission,
                    roles: marks[..5].to_vec(),
                    on_vault: marks[5..10].to_vec(),
                    on_installation: marks[10..].to_vec(),
                }
            })
            .collect()
    }

    fn group(s: &str) -> ResourceGroupName {
        ResourceGroupName::parse(s).unwrap()
    }

    fn vault(group_name: &str, name: &str) -> Target {
        Target::vault(group(group_name), VaultName::parse(name).unwrap())
    }

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    #[test]
    fn the_table_lists_every_permission_once_in_order() {
        let listed: Vec<Permission> = spec().iter().map(|r| r.permission).collect();
        assert_eq!(listed, Permission::ALL);
    }

    /// Adding a permission fails to compile here until it is placed in `ALL`
    /// (and so in the table).
    #[test]
    fn all_has_every_variant() {
        fn position(p: Permission) -> usize {
            use Permission::*;
            match p {
                ReadVaults => 0,
                ReadAudit => 1,
                CreateVault => 2,
                UpdateVault => 3,
                DeleteVault => 4,
                IssueAgentCredentials => 5,
                ManagePolicies => 6,
                EnableProtection => 7,
                ModifyProtection => 8,
                BackupNow => 9,
                Restore => 10,
                StopProtection => 11,
                DeleteBackupData => 12,
                UndeleteBackupData => 13,
                DeleteRecoveryPoint => 14,
                CancelJob => 15,
                Replicate => 16,
                Verify => 17,
                ManageAccess => 18,
                ManageOwnTokens => 19,
                ManageResourceGuard => 20,
            }
        }
        for (i, p) in Permission::ALL.iter().enumerate() {
            assert_eq!(position(*p), i, "{p:?}");
        }
        fn role_position(r: Role) -> usize {
            match r {
                Role::Owner => 0,
                Role::Contributor => 1,
                Role::BackupOperator => 2,
                Role::RestoreOperator => 3,
                Role::Reader => 4,
            }
        }
        for (i, r) in Role::ALL.iter().enumerate() {
            assert_eq!(role_position(*r), i, "{r:?}");
        }
    }

    #[test]
    fn roles_grant_what_the_table_says() {
        for row in spec() {
            for (role, expected) in Role::ALL.iter().zip(&row.roles) {
                assert_eq!(
                    role.grants(row.permission),
                    *expected,
                    "{role} and {}",
                    row.permission
                );
            }
        }
    }

    /// Every permission × role × scope, on a vault and on the installation.
    #[test]
    fn the_full_matrix() {
        let on_vault = vault("rg-a", "Vault-1");
        let vault_scopes = [
            "/",
            "/resourceGroups/rg-a",
            "/resourceGroups/rg-b",
            "/resourceGroups/rg-a/vaults/Vault-1",
            "/resourceGroups/rg-a/vaults/Vault-2",
        ];
        let installation_scopes = [
            "/",
            "/resourceGroups/rg-a",
            "/resourceGroups/rg-a/vaults/Vault-1",
        ];
        let mut wrong = Vec::new();
        for row in spec() {
            let p = row.permission;
            for (role, role_grants) in Role::ALL.iter().zip(&row.roles) {
                let cases = vault_scopes
                    .iter()
                    .zip(&row.on_vault)
                    .map(|(s, ok)| (s, ok, &on_vault))
                    .chain(
                        installation_scopes
                            .iter()
                            .zip(&row.on_installation)
                            .map(|(s, ok)| (s, ok, &Target::Installation)),
                    );
                for (s, scope_grants, target) in cases {
                    let a = RoleAssignment::new(*role, scope(s));
                    let expected = *role_grants && *scope_grants;
                    let got = authorize(&[a], p, target).is_ok();
                    if got != expected {
                        wrong.push(format!("{p} as {role} at {s} on {target}: {got}"));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// The scopes and targets the lattice tests go over.
    fn scopes() -> Vec<Scope> {
        [
            "/",
            "/resourceGroups/rg-a",
            "/resourceGroups/RG-A",
            "/resourceGroups/rg-b",
            "/resourceGroups/rg-a/vaults/Vault-1",
            "/resourceGroups/rg-a/vaults/vault-1",
            "/resourceGroups/rg-a/vaults/Vault-2",
            "/resourceGroups/rg-b/vaults/Vault-1",
        ]
        .iter()
        .map(|s| scope(s))
        .collect()
    }

    fn targets() -> Vec<Target> {
        vec![
            Target::Installation,
            vault("rg-a", "Vault-1"),
            vault("RG-A", "VAULT-1"),
            vault("rg-a", "Vault-2"),
            vault("rg-b", "Vault-1"),
            vault("rg-c", "Vault-3"),
        ]
    }

    #[test]
    fn a_narrower_scope_never_grants_more() {
        let mut pairs = 0;
        for wide in scopes() {
            for narrow in scopes().iter().filter(|n| wide.contains(n)) {
                pairs += 1;
                for target in targets() {
                    assert!(
                        !narrow.covers(&target) || wide.covers(&target),
                        "{narrow} covers {target}, {wide} does not"
                    );
                    for role in Role::ALL {
                        for p in Permission::ALL {
                            let n = RoleAssignment::new(*role, narrow.clone());
                            let w = RoleAssignment::new(*role, wide.clone());
                            assert!(
                                !n.grants(*p, &target) || w.grants(*p, &target),
                                "{p} as {role}: {narrow} grants it on {target}, {wide} does not"
                            );
                        }
                    }
                }
            }
        }
        // `/` contains all 8; each spelling of rg-a its 5 (itself, the other
        // spelling, three vaults); rg-b 2; each spelling of Vault-1 of rg-a 2;
        // the last two themselves.
        assert_eq!(pairs, 8 + 5 + 5 + 2 + 2 + 2 + 1 + 1);
    }

    #[test]
    fn containment() {
        let root = scope("/");
        let a = scope("/resourceGroups/rg-a");
        let v1 = scope("/resourceGroups/rg-a/vaults/Vault-1");
        let b_v1 = scope("/resourceGroups/rg-b/vaults/Vault-1");
        assert!(root.contains(&a) && root.contains(&v1) && root.contains(&root));
        assert!(a.contains(&v1) && a.contains(&scope("/resourceGroups/RG-A")));
        assert!(!a.contains(&root) && !v1.contains(&a) && !v1.contains(&root));
        assert!(!a.contains(&b_v1) && !v1.contains(&b_v1));
        assert!(v1.contains(&scope("/resourceGroups/RG-a/vaults/VAULT-1")));
    }

    #[test]
    fn names_in_scopes_compare_whatever_their_case() {
        let a = RoleAssignment::new(
            Role::Contributor,
            scope("/resourceGroups/RG-A/vaults/VAULT-1"),
        );
        assert!(authorize(
            std::slice::from_ref(&a),
            Permission::DeleteVault,
            &vault("rg-a", "Vault-1")
        )
        .is_ok());
        let g = RoleAssignment::new(Role::Reader, scope("/resourceGroups/Rg-A"));
        assert!(authorize(&[g], Permission::ReadVaults, &vault("rg-a", "vault-1")).is_ok());
        assert_eq!(
            scope("/resourceGroups/RG-A/vaults/VAULT-1"),
            scope("/resourceGroups/rg-a/vaults/vault-1")
        );
        // Case is preserved in the scope's text.
        assert_eq!(a.scope.to_string(), "/resourceGroups/RG-A/vaults/VAULT-1");
    }

    #[test]
    fn a_vault_scope_names_its_resource_group() {
        // A vault of the same name made later in another group is another vault.
        let a = RoleAssignment::new(Role::Owner, scope("/resourceGroups/rg-a/vaults/Vault-1"));
        let elsewhere = vault("rg-b", "Vault-1");
        assert!(authorize(&[a], Permission::DeleteBackupData, &elsewhere).is_err());
    }

    #[test]
    fn any_one_assignment_suffices_and_none_grants_nothing() {
        let target = vault("rg-a", "Vault-1");
        assert!(authorize(&[], Permission::ReadVaults, &target).is_err());
        assert!(authorize(&[], Permission::ManageOwnTokens, &Target::Installation).is_err());
        let assignments = [
            RoleAssignment::new(Role::Reader, scope("/")),
            RoleAssignment::new(Role::Contributor, scope("/resourceGroups/rg-b")),
            RoleAssignment::new(
                Role::BackupOperator,
                scope("/resourceGroups/rg-a/vaults/Vault-1"),
            ),
        ];
        assert!(authorize(&assignments, Permission::BackupNow, &target).is_ok());
        assert!(authorize(&assignments, Permission::ReadVaults, &Target::Installation).is_ok());
        assert!(authorize(&assignments, Permission::DeleteBackupData, &target).is_err());
        assert!(authorize(
            &assignments,
            Permission::DeleteBackupData,
            &vault("rg-b", "V-9")
        )
        .is_ok());
        // Contributor of a group creates no vault, in it or elsewhere.
        assert!(authorize(&assignments, Permission::CreateVault, &target).is_err());
        assert!(authorize(&assignments, Permission::CreateVault, &Target::Installation).is_err());
    }

    #[test]
    fn roles_are_nested() {
        for pair in Role::ALL.windows(2) {
            let (wider, narrower) = (pair[0], pair[1]);
            for p in Permission::ALL {
                assert!(
                    !narrower.grants(*p) || wider.grants(*p),
                    "{narrower} grants {p}, {wider} does not"
                );
            }
        }
        assert!(Permission::ALL.iter().all(|p| Role::Owner.grants(*p)));
    }

    /// What the roles are for, said once more in words.
    #[test]
    fn operators_delete_nothing_and_change_no_retention() {
        let destructive = [
            Permission::UpdateVault,
            Permission::DeleteVault,
            Permission::ManagePolicies,
            Permission::ModifyProtection,
            Permission::StopProtection,
            Permission::DeleteBackupData,
            Permission::DeleteRecoveryPoint,
            Permission::ManageAccess,
            Permission::ManageResourceGuard,
        ];
        for role in [Role::BackupOperator, Role::RestoreOperator, Role::Reader] {
            for p in destructive {
                assert!(!role.grants(p), "{role} grants {p}");
            }
        }
        for p in [Permission::ManageAccess, Permission::ManageResourceGuard] {
            assert!(!Role::Contributor.grants(p), "{p}");
        }
        let reads: Vec<_> = Permission::ALL
            .iter()
            .filter(|p| Role::Reader.grants(**p))
            .collect();
        assert_eq!(
            reads,
            [&Permission::ReadVaults, &Permission::ManageOwnTokens]
        );
    }

    #[test]
    fn the_refusal_names_the_permission_the_target_and_who_can_help() {
        let a = RoleAssignment::new(Role::Reader, scope("/resourceGroups/rg-a"));
        let e = authorize(
            std::slice::from_ref(&a),
            Permission::DeleteVault,
            &vault("rg-a", "Vault-1"),
        )
        .unwrap_err();
        assert_eq!(e.code, "MissingPermission");
        assert_eq!(
            e.message,
            "No role assignment of the caller grants Vaults.Delete on vault Vault-1 \
             (resource group rg-a)."
        );
        assert_eq!(
            e.recommendation,
            "Ask an Owner of the installation for a role assignment that grants Vaults.Delete \
             at the scope /resourceGroups/rg-a/vaults/Vault-1 or one containing it \
             (role: Owner, Contributor)."
        );
        let e = authorize(&[a], Permission::ManageAccess, &Target::Installation).unwrap_err();
        assert_eq!(
            e.message,
            "No role assignment of the caller grants Access.Manage on the installation."
        );
        assert!(e
            .recommendation
            .contains("at the installation's scope / (role: Owner)"));
    }

    #[test]
    fn permission_names() {
        let mut names: Vec<&str> = Permission::ALL.iter().map(|p| p.name()).collect();
        for n in &names {
            let (resource, action) = n.split_once('.').unwrap();
            for part in [resource, action] {
                assert!(part.starts_with(|c: char| c.is_ascii_uppercase()), "{n}");
                assert!(part.chars().all(|c| c.is_ascii_alphanumeric()), "{n}");
            }
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Permission::ALL.len());
        assert_eq!(Permission::Restore.to_string(), "Items.Restore");
    }

    #[test]
    fn scopes_parse_and_print() {
        for ok in [
            "/",
            "/resourceGroups/rg_1.(eu)",
            "/resourceGroups/rg/vaults/Vault-2",
        ] {
            assert_eq!(scope(ok).to_string(), ok);
        }
        for bad in [
            "",
            "rg",
            "//",
            "/resourceGroups",
            "/resourceGroups/",
            "/resourceGroups/rg/",
            "/resourcegroups/rg",
            "/resourceGroups/rg/vaults",
            "/resourceGroups/rg/vaults/v/items/x",
            "/vaults/Vault-1",
        ] {
            assert_eq!(
                Scope::parse(bad).unwrap_err().code,
                "InvalidScope",
                "{bad:?}"
            );
        }
        // A name that breaks its own rule says so.
        let e = Scope::parse("/resourceGroups/rg/vaults/1vault").unwrap_err();
        assert_eq!(e.code, "InvalidVaultName");
        let e = Scope::parse("/resourceGroups/rg./vaults/v1").unwrap_err();
        assert_eq!(e.code, "InvalidResourceGroupName");
    }

    #[test]
    fn serde() {
        let roles: Vec<String> = Role::ALL
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        assert_eq!(
            roles,
            [
                "\"Owner\"",
                "\"Contributor\"",
                "\"BackupOperator\"",
                "\"RestoreOperator\"",
                "\"Reader\""
            ]
        );
        for r in Role::ALL {
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), *r);
        }
        for p in Permission::ALL {
            let json = serde_json::to_string(p).unwrap();
            assert_eq!(json, format!("\"{p:?}\""));
            assert_eq!(serde_json::from_str::<Permission>(&json).unwrap(), *p);
        }
        let a = RoleAssignment::new(Role::BackupOperator, scope("/resourceGroups/rg-a"));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"role":"BackupOperator","scope":"/resourceGroups/rg-a"}"#
        );
        assert_eq!(serde_json::from_str::<RoleAssignment>(&json).unwrap(), a);
        let e = serde_json::from_str::<RoleAssignment>(r#"{"role":"Reader","scope":"/x"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("InvalidScope"), "{e}");
        let e = serde_json::from_str::<Role>("\"Administrator\"");
        assert!(e.is_err());
    }

    /// The example the API's description gives is a scope `parse` accepts.
    #[test]
    fn schema_example_is_a_valid_scope() {
        let schema = serde_json::to_value(<Scope as utoipa::PartialSchema>::schema()).unwrap();
        Scope::parse(schema["examples"][0].as_str().unwrap()).unwrap();
    }
}
