//! Validated names, after Azure's naming rules for the same resources.
//!
//! | type | Azure's rule, as Tresor applies it |
//! | --- | --- |
//! | [`VaultName`] | Recovery Services vault: 2–50 characters, starts with a letter, only letters, digits and hyphens |
//! | [`ResourceGroupName`] | resource group: 1–90 characters, letters, digits, underscores, hyphens, periods and parentheses, not ending in a period |
//! | [`Location`] | region label (`westeurope`, `local`): 1–64 characters, lowercase letters, digits and hyphens |
//! | [`PolicyName`] | backup policy: 3–150 characters, starts with a letter, only letters, digits, hyphens and underscores |
//!
//! Letters and digits are ASCII only: Azure accepts some Unicode letters in
//! resource group names, but Tresor's names end up in paths and URLs, and
//! ASCII keeps two names that look alike from being different.
//!
//! Names are case-preserving but, as in Azure, unique case-insensitively:
//! stores compare `key()`, the lowercase form.
//!
//! Every name serializes as a plain string; deserializing validates it.

use crate::error::{codes, RuleError};

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:ident, $pattern:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as this kind of name.
            pub fn parse(s: &str) -> Result<Self, RuleError> {
                $check(s)?;
                Ok($name(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The lowercase form, under which names are unique.
            pub fn key(&self) -> String {
                self.0.to_ascii_lowercase()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = RuleError;
            fn from_str(s: &str) -> Result<Self, RuleError> {
                $name::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = RuleError;
            fn try_from(s: String) -> Result<Self, RuleError> {
                $check(&s)?;
                Ok($name(s))
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        // A string, of the pattern the check behind deserializing enforces.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($pattern))
                    .examples([$example])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

name_type!(
    /// The name of a vault: 2–50 characters, a letter first, then ASCII
    /// letters, digits and hyphens.
    VaultName,
    check_vault_name,
    "^[A-Za-z][A-Za-z0-9-]{1,49}$",
    "Vault-2"
);
name_type!(
    /// The resource group a vault belongs to: 1–90 characters of ASCII
    /// letters, digits, `_`, `-`, `.`, `(` and `)`, not ending in `.`.
    ResourceGroupName,
    check_resource_group_name,
    "^[A-Za-z0-9_.()-]{0,89}[A-Za-z0-9_()-]$",
    "rg1"
);
name_type!(
    /// Where a vault is, as a label: 1–64 lowercase ASCII letters, digits and
    /// hyphens (`westeurope`, `local`).
    Location,
    check_location,
    "^[a-z0-9-]{1,64}$",
    "westeurope"
);
name_type!(
    /// The name of a backup policy: 3–150 characters, a letter first, then
    /// ASCII letters, digits, hyphens and underscores.
    PolicyName,
    check_policy_name,
    "^[A-Za-z][A-Za-z0-9_-]{2,149}$",
    "Policy-2"
);

fn length_ok(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.chars().count())
}

fn starts_with_letter(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

fn check_vault_name(s: &str) -> Result<(), RuleError> {
    let ok = length_ok(s, 2, 50)
        && starts_with_letter(s)
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then_some(()).ok_or_else(|| {
        RuleError::new(
            codes::INVALID_VAULT_NAME,
            format!("The vault name {s:?} is not valid."),
            "Use 2 to 50 characters: a letter first, then letters, digits and hyphens.",
        )
    })
}

fn check_resource_group_name(s: &str) -> Result<(), RuleError> {
    let ok = length_ok(s, 1, 90)
        && !s.ends_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.()".contains(c));
    ok.then_some(()).ok_or_else(|| {
        RuleError::new(
            codes::INVALID_RESOURCE_GROUP_NAME,
            format!("The resource group name {s:?} is not valid."),
            "Use 1 to 90 characters: letters, digits, underscores, hyphens, periods and \
             parentheses, not ending in a period.",
        )
    })
}

fn check_location(s: &str) -> Result<(), RuleError> {
    let ok = length_ok(s, 1, 64)
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then_some(()).ok_or_else(|| {
        RuleError::new(
            codes::INVALID_LOCATION,
            format!("The location {s:?} is not valid."),
            "Use 1 to 64 characters: lowercase letters, digits and hyphens, such as \"local\".",
        )
    })
}

fn check_policy_name(s: &str) -> Result<(), RuleError> {
    let ok = length_ok(s, 3, 150)
        && starts_with_letter(s)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then_some(()).ok_or_else(|| {
        RuleError::new(
            codes::INVALID_POLICY_NAME,
            format!("The policy name {s:?} is not valid."),
            "Use 3 to 150 characters: a letter first, then letters, digits, hyphens and \
             underscores.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples the API's description gives are names the checks accept.
    #[test]
    fn schema_examples_are_valid_names() {
        fn example<T: utoipa::PartialSchema>() -> String {
            let schema = serde_json::to_value(T::schema()).unwrap();
            schema["examples"][0].as_str().unwrap().to_string()
        }
        VaultName::parse(&example::<VaultName>()).unwrap();
        ResourceGroupName::parse(&example::<ResourceGroupName>()).unwrap();
        Location::parse(&example::<Location>()).unwrap();
        PolicyName::parse(&example::<PolicyName>()).unwrap();
    }

    fn code<T>(r: Result<T, RuleError>) -> &'static str {
        r.err().expect("should be refused").code
    }

    #[test]
    fn vault_names() {
        for ok in ["ab", "Vault-1", "a".repeat(50).as_str(), "prod-VMs-2026"] {
            assert_eq!(VaultName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["a", "1vault", "-vault", "vault_1", "vault.1", "väult", ""] {
            assert_eq!(code(VaultName::parse(bad)), "InvalidVaultName", "{bad}");
        }
        assert_eq!(code(VaultName::parse(&"a".repeat(51))), "InvalidVaultName");
        assert_eq!(VaultName::parse("Prod-Vault").unwrap().key(), "prod-vault");
    }

    #[test]
    fn resource_group_names() {
        for ok in ["r", "rg_prod-1.(eu)", "(x)", "a".repeat(90).as_str()] {
            ResourceGroupName::parse(ok).unwrap();
        }
        for bad in ["", "rg.", "rg/1", "rg 1", "a".repeat(91).as_str()] {
            let e = code(ResourceGroupName::parse(bad));
            assert_eq!(e, "InvalidResourceGroupName", "{bad}");
        }
    }

    #[test]
    fn locations() {
        for ok in ["local", "westeurope", "eu-west-2"] {
            Location::parse(ok).unwrap();
        }
        for bad in ["", "WestEurope", "west europe", "a".repeat(65).as_str()] {
            assert_eq!(code(Location::parse(bad)), "InvalidLocation", "{bad}");
        }
    }

    #[test]
    fn policy_names() {
        for ok in ["abc", "Daily_30-days", "a".repeat(150).as_str()] {
            PolicyName::parse(ok).unwrap();
        }
        for bad in [
            "ab",
            "1abc",
            "_abc",
            "daily policy",
            "a".repeat(151).as_str(),
        ] {
            assert_eq!(code(PolicyName::parse(bad)), "InvalidPolicyName", "{bad}");
        }
    }

    #[test]
    fn serde_validates() {
        let n: VaultName = serde_json::from_str("\"Vault-1\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"Vault-1\"");
        let e = serde_json::from_str::<VaultName>("\"1vault\"").unwrap_err();
        assert!(e.to_string().contains("InvalidVaultName"), "{e}");
        assert_eq!("rg".parse::<ResourceGroupName>().unwrap().to_string(), "rg");
    }
}
