//! The repositories of a vault: one per (vault, host agent), in the primary storage
//! target of the vault's location and, for a GeoRedundant vault, copied to the
//! secondary target of the paired location (see `locations.rs`, `replication.rs`).
//!
//! Chunks deduplicate across all VMs of a host, and a host's agent can reach only its
//! own repository: its credential opens nothing of other hosts (what the design asks
//! of agents: append and read back their own, nothing else). Each repository has its
//! own key, wrapped by a random passphrase kept in the data directory (mode 0600);
//! the server hands it to the repository's agent with each job. The secondary copy is
//! the same repository (same config, same key files), so the same passphrase opens it.
//!
//! Everything past this module reaches storage through [`Backend`]; only the mapping
//! of a target to folders is local here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tresor_api::ErrorCode;

use parking_lot::Mutex;
use tresor_engine::{InitOptions, LocalDir, Repository};
use tresor_metadata::VaultRow;
use tresor_storage::{Backend, ObjectKind};

use crate::auth::new_secret;
use crate::error::ServiceError;
use crate::locations::{Locations, Target};

/// Which copy of a vault's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    Primary,
    Secondary,
}

impl Region {
    pub fn of(use_secondary: bool) -> Region {
        if use_secondary {
            Region::Secondary
        } else {
            Region::Primary
        }
    }
}

/// A storage problem, with the stable code the API and jobs show.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RepoError {
    pub code: ErrorCode,
    pub message: String,
}

impl RepoError {
    pub fn unavailable(region: Region, message: String) -> RepoError {
        RepoError {
            code: match region {
                Region::Primary => ErrorCode::PrimaryStorageUnavailable,
                Region::Secondary => ErrorCode::SecondaryStorageUnavailable,
            },
            message,
        }
    }

    pub fn recommendation(&self) -> &'static str {
        match self.code {
            ErrorCode::PrimaryStorageUnavailable => "bring the vault's storage target back (mount it), or restore from the secondary region (--use-secondary-region)",
            ErrorCode::SecondaryStorageUnavailable => "bring the paired location's storage target back (mount it); replication catches up by itself",
            ErrorCode::NoSecondaryRegion => "use a GeoRedundant vault in a location with a pair ([[location]] paired = ... in the server's configuration)",
            _ => "see the server's log",
        }
    }
}

impl From<RepoError> for ServiceError {
    fn from(e: RepoError) -> ServiceError {
        let rec = e.recommendation();
        ServiceError::new(e.code, e.message, rec)
    }
}

/// Where repositories and their passphrases live.
pub struct Repos {
    locations: Locations,
    secrets: PathBuf,
    open: Mutex<HashMap<(String, String), Arc<Repository>>>,
    /// Serialises creation, so two jobs never initialise one repository twice.
    creating: Mutex<()>,
}

impl Repos {
    pub fn new(data_dir: &Path, locations: Locations) -> std::io::Result<Repos> {
        let secrets = data_dir.join("secrets");
        locations.prepare()?;
        std::fs::create_dir_all(&secrets)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))?;
        Ok(Repos {
            locations,
            secrets,
            open: Mutex::new(HashMap::new()),
            creating: Mutex::new(()),
        })
    }

    pub fn locations(&self) -> &Locations {
        &self.locations
    }

    /// The target holding `region`'s copy of the vault.
    pub fn target(&self, vault: &VaultRow, region: Region) -> Result<Target, RepoError> {
        match region {
            Region::Primary => Ok(self.locations.primary(&vault.location)),
            Region::Secondary => {
                self.locations
                    .secondary(&vault.location)
                    .ok_or_else(|| RepoError {
                        code: ErrorCode::NoSecondaryRegion,
                        message: format!(
                            "location {} has no paired location, so vault {} has no secondary copy",
                            vault.location, vault.name
                        ),
                    })
            }
        }
    }

    /// The target of `region`, which must be there (its marker present).
    pub fn available_target(&self, vault: &VaultRow, region: Region) -> Result<Target, RepoError> {
        let target = self.target(vault, region)?;
        target
            .check()
            .map_err(|m| RepoError::unavailable(region, m))?;
        Ok(target)
    }

    fn path(target: &Target, vault: &VaultRow, agent: &str) -> PathBuf {
        target.root.join(&vault.id).join("hosts").join(agent)
    }

    fn secret_path(&self, vault: &str, agent: &str) -> PathBuf {
        self.secrets.join(format!("{vault}-{agent}.passphrase"))
    }

    /// The passphrase of a repository (which must exist).
    pub fn passphrase(&self, vault: &str, agent: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.secret_path(vault, agent)).map(|s| s.trim().to_string())
    }

    /// Whether the region holds the repository (its config object).
    pub fn exists(&self, vault: &VaultRow, agent: &str, region: Region) -> bool {
        self.target(vault, region).is_ok_and(|t| {
            t.check().is_ok() && Self::path(&t, vault, agent).join("config").exists()
        })
    }

    /// The repository's storage in `region`; the target must be available, and with
    /// `create` a missing repository folder is made (for replication's first copy).
    pub fn backend(
        &self,
        vault: &VaultRow,
        agent: &str,
        region: Region,
        create: bool,
    ) -> Result<Arc<dyn Backend>, RepoError> {
        let target = self.available_target(vault, region)?;
        let path = Self::path(&target, vault, agent);
        let opened = if create && !path.exists() {
            std::fs::create_dir_all(&path)
                .map_err(|e| tresor_storage::Error::Io {
                    backend: path.display().to_string(),
                    what: "creating the repository folder".into(),
                    source: e,
                })
                .and_then(|_| LocalDir::create(&path))
        } else {
            LocalDir::open(&path)
        };
        opened
            .map(|b| Arc::new(b) as Arc<dyn Backend>)
            .map_err(|e| RepoError::unavailable(region, e.to_string()))
    }

    /// Opens the primary repository, creating it (and its passphrase) the first time.
    ///
    /// When the primary lost a repository whose secondary copy exists, it is set up
    /// again from the secondary's config and key files, so that new backups continue
    /// the same repository (and replication can go on into the same copy).
    pub fn open_or_create(
        &self,
        vault: &VaultRow,
        agent: &str,
    ) -> Result<Arc<Repository>, RepoError> {
        let key = (vault.id.clone(), agent.to_string());
        if let Some(r) = self.open.lock().get(&key) {
            if self.exists(vault, agent, Region::Primary) {
                return Ok(r.clone());
            }
        }
        let _creating = self.creating.lock();
        let other = |message: String| RepoError {
            code: ErrorCode::RepositoryError,
            message,
        };
        let primary = self.backend(vault, agent, Region::Primary, true)?;
        let secret = self.secret_path(&vault.id, agent);
        let repo = if self.exists(vault, agent, Region::Primary) {
            let pass = self.passphrase(&vault.id, agent).map_err(|e| {
                other(format!(
                    "reading the passphrase of {}: {e}",
                    primary.describe()
                ))
            })?;
            Repository::open(primary, pass.as_bytes()).map_err(|e| other(e.to_string()))?
        } else if secret.exists() {
            // The passphrase exists, so the repository did: never make a new key over it.
            let pass = self
                .passphrase(&vault.id, agent)
                .map_err(|e| other(format!("reading {}: {e}", secret.display())))?;
            let secondary = self
                .backend(vault, agent, Region::Secondary, false)
                .ok()
                .filter(|_| self.exists(vault, agent, Region::Secondary))
                .ok_or_else(|| RepoError::unavailable(
                    Region::Primary,
                    format!(
                        "the repository of vault {} for this host is gone from {} and no secondary copy exists to set it up again",
                        vault.name,
                        primary.describe()
                    ),
                ))?;
            for kind in [ObjectKind::Key, ObjectKind::Config] {
                for o in secondary.list(kind).map_err(|e| other(e.to_string()))? {
                    let bytes = secondary
                        .get(kind, &o.name)
                        .map_err(|e| other(e.to_string()))?;
                    primary
                        .put(kind, &o.name, &bytes)
                        .map_err(|e| other(e.to_string()))?;
                }
            }
            tracing::warn!(vault = %vault.name, agent, "primary repository was gone; set up again from the secondary copy");
            Repository::open(primary, pass.as_bytes()).map_err(|e| other(e.to_string()))?
        } else {
            let pass = new_secret("tresor_repo");
            tresor_storage::write_file_atomic(&secret, pass.as_bytes(), 0o600)
                .map_err(|e| other(format!("writing {}: {e}", secret.display())))?;
            Repository::init(primary, pass.as_bytes(), &InitOptions::default())
                .map_err(|e| other(e.to_string()))?
        };
        let repo = Arc::new(repo);
        self.open.lock().insert(key, repo.clone());
        Ok(repo)
    }

    /// Opens the existing repository in `region`: the primary's shared handle, or a new
    /// handle on the secondary copy (which the server only reads and replication
    /// writes). Never creates one.
    pub fn open(
        &self,
        vault: &VaultRow,
        agent: &str,
        region: Region,
    ) -> Result<Arc<Repository>, RepoError> {
        if region == Region::Primary {
            if !self.exists(vault, agent, region) {
                let target = self.available_target(vault, region)?;
                return Err(RepoError::unavailable(
                    region,
                    format!(
                        "the repository of vault {} for host agent {agent} is missing from {}",
                        vault.name,
                        target.root.display()
                    ),
                ));
            }
            return self.open_or_create(vault, agent);
        }
        let backend = self.backend(vault, agent, region, false)?;
        let pass = self.passphrase(&vault.id, agent).map_err(|e| RepoError {
            code: ErrorCode::RepositoryError,
            message: format!("reading the passphrase of vault {}: {e}", vault.name),
        })?;
        Repository::open(backend, pass.as_bytes())
            .map(Arc::new)
            .map_err(|e| RepoError::unavailable(region, e.to_string()))
    }

    /// The agents with a repository of the vault in `region`.
    pub fn of_vault(&self, vault: &VaultRow, region: Region) -> Vec<String> {
        let Ok(target) = self.target(vault, region) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(target.root.join(&vault.id).join("hosts")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Forgets the open handles of a vault's repositories and removes them from both
    /// regions, with their passphrases.
    pub fn delete_vault(&self, vault: &VaultRow) -> std::io::Result<()> {
        self.open.lock().retain(|(v, _), _| v != &vault.id);
        for region in [Region::Primary, Region::Secondary] {
            for agent in self.of_vault(vault, region) {
                let _ = std::fs::remove_file(self.secret_path(&vault.id, &agent));
            }
            if let Ok(t) = self.target(vault, region) {
                match std::fs::remove_dir_all(t.root.join(&vault.id)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
