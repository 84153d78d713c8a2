//! The repositories of a vault: one per (vault, host agent).
//!
//! Chunks deduplicate across all VMs of a host, and a host's agent can reach only its
//! own repository: its credential opens nothing of other hosts (what the design asks
//! of agents: append and read back their own, nothing else). Each repository has its
//! own key, wrapped by a random passphrase kept in the data directory (mode 0600);
//! the server hands it to the repository's agent with each job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tresor_engine::{InitOptions, LocalDir, Repository};

use crate::auth::new_secret;

/// Where repositories and their passphrases live.
pub struct Repos {
    root: PathBuf,
    secrets: PathBuf,
    open: Mutex<HashMap<(String, String), Arc<Repository>>>,
    /// Serialises creation, so two jobs never initialise one repository twice.
    creating: Mutex<()>,
}

impl Repos {
    pub fn new(data_dir: &Path) -> std::io::Result<Repos> {
        let root = data_dir.join("vaults");
        let secrets = data_dir.join("secrets");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&secrets)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))?;
        Ok(Repos {
            root,
            secrets,
            open: Mutex::new(HashMap::new()),
            creating: Mutex::new(()),
        })
    }

    pub fn path(&self, vault: &str, agent: &str) -> PathBuf {
        self.root.join(vault).join("hosts").join(agent)
    }

    pub fn vault_dir(&self, vault: &str) -> PathBuf {
        self.root.join(vault)
    }

    fn secret_path(&self, vault: &str, agent: &str) -> PathBuf {
        self.secrets.join(format!("{vault}-{agent}.passphrase"))
    }

    /// The passphrase of a repository (which must exist).
    pub fn passphrase(&self, vault: &str, agent: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.secret_path(vault, agent)).map(|s| s.trim().to_string())
    }

    /// Whether the repository exists.
    pub fn exists(&self, vault: &str, agent: &str) -> bool {
        self.path(vault, agent).join("config").exists()
    }

    /// The repository's storage, for the agent's object calls.
    pub fn backend(&self, vault: &str, agent: &str) -> tresor_storage::Result<LocalDir> {
        LocalDir::open(&self.path(vault, agent))
    }

    /// Opens the repository, creating it (and its passphrase) the first time.
    pub fn open_or_create(&self, vault: &str, agent: &str) -> Result<Arc<Repository>, String> {
        let key = (vault.to_string(), agent.to_string());
        if let Some(r) = self.open.lock().get(&key) {
            return Ok(r.clone());
        }
        let _creating = self.creating.lock();
        let path = self.path(vault, agent);
        let repo = if self.exists(vault, agent) {
            let pass = self
                .passphrase(vault, agent)
                .map_err(|e| format!("reading the passphrase of {}: {e}", path.display()))?;
            let backend = LocalDir::open(&path).map_err(|e| e.to_string())?;
            Repository::open(Arc::new(backend), pass.as_bytes()).map_err(|e| e.to_string())?
        } else {
            let pass = new_secret("tresor_repo");
            let secret = self.secret_path(vault, agent);
            tresor_storage::write_file_atomic(&secret, pass.as_bytes(), 0o600)
                .map_err(|e| format!("writing {}: {e}", secret.display()))?;
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            let backend = LocalDir::create(&path).map_err(|e| e.to_string())?;
            Repository::init(Arc::new(backend), pass.as_bytes(), &InitOptions::default())
                .map_err(|e| e.to_string())?
        };
        let repo = Arc::new(repo);
        self.open.lock().insert(key, repo.clone());
        Ok(repo)
    }

    /// Every repository of a vault, as (agent id, path).
    pub fn of_vault(&self, vault: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join(vault).join("hosts")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Forgets the open handles of a vault's repositories and removes them from disk.
    pub fn delete_vault(&self, vault: &str) -> std::io::Result<()> {
        self.open.lock().retain(|(v, _), _| v != vault);
        for agent in self.of_vault(vault) {
            let _ = std::fs::remove_file(self.secret_path(vault, &agent));
        }
        match std::fs::remove_dir_all(self.root.join(vault)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
