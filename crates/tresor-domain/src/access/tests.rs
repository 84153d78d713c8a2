//! The access model against its spec: the full table of permissions, roles, scopes
//! and targets, written out.

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
    let e =
        serde_json::from_str::<RoleAssignment>(r#"{"role":"Reader","scope":"/x"}"#).unwrap_err();
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

/// A token's assignment is allowed when one of its maker's covers it; and what
/// covers an assignment grants at least what it grants, on every target.
#[test]
fn a_covered_assignment_never_grants_more_than_what_covers_it() {
    let mut covered = 0;
    for held_scope in scopes() {
        for wanted_scope in scopes() {
            for held_role in Role::ALL {
                for wanted_role in Role::ALL {
                    let held = RoleAssignment::new(*held_role, held_scope.clone());
                    let wanted = RoleAssignment::new(*wanted_role, wanted_scope.clone());
                    if !held.covers(&wanted) {
                        continue;
                    }
                    covered += 1;
                    for target in targets() {
                        for p in Permission::ALL {
                            assert!(
                                !wanted.grants(*p, &target) || held.grants(*p, &target),
                                "{held:?} covers {wanted:?}, yet only the latter grants {p} on {target}"
                            );
                        }
                    }
                }
            }
        }
    }
    // The containing pairs (26) times the role pairs where the first includes the
    // second (5 + 4 + 3 + 2 + 1).
    assert_eq!(covered, 26 * 15);

    let operator = vec![RoleAssignment::new(
        Role::BackupOperator,
        scope("/resourceGroups/rg-a"),
    )];
    within(&operator, &operator).unwrap();
    within(
        &operator,
        &[RoleAssignment::new(
            Role::Reader,
            scope("/resourceGroups/RG-A/vaults/Vault-1"),
        )],
    )
    .unwrap();
    within(&operator, &[]).unwrap();
    for more in [
        RoleAssignment::new(Role::Owner, scope("/resourceGroups/rg-a")),
        RoleAssignment::new(
            Role::Contributor,
            scope("/resourceGroups/rg-a/vaults/Vault-1"),
        ),
        RoleAssignment::new(Role::Reader, scope("/")),
        RoleAssignment::new(Role::Reader, scope("/resourceGroups/rg-b")),
    ] {
        let e = within(&operator, std::slice::from_ref(&more)).unwrap_err();
        assert_eq!(e.code, codes::TOKEN_ROLE_NOT_HELD);
        assert!(e.message.contains(&more.scope.to_string()), "{e}");
        assert!(e.message.contains(&more.role.to_string()), "{e}");
    }
}
