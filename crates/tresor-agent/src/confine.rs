//! Where restore jobs may write on the host: under the restore roots of the agent's
//! configuration, and nowhere else.
//!
//! A restore job's target path comes from the server, that is from whoever holds an
//! API token (or from a compromised server). The host protects itself: the path must
//! be absolute, free of `..`, and lead (after resolving every symbolic link in the
//! part that exists) strictly inside one of the roots. Folders that do not exist yet
//! are created one by one under the root, never through a link, and owned by the
//! agent alone (0700): a restored disk holds all of a VM's data.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The folder under the agent's state folder that is the restore root when the
/// configuration names none.
pub const DEFAULT_ROOT: &str = "restores";

/// System folders that can never be a restore root (nor hold one, for the
/// pseudo file systems and the boot, configuration and program folders).
const SYSTEM_FOLDERS: &[&str] = &[
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/sys", "/usr", "/var", "/var/lib", "/var/run", "/home", "/tmp", "/var/tmp",
    "/srv", "/opt", "/mnt", "/media",
];

/// Folders that cannot hold a restore root at any depth.
const SYSTEM_TREES: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin",
    "/sys", "/usr",
];

/// Why a restore target (or a configured root) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "restore target {path} is not allowed: {reason}. Restore roots on this host: {roots}. {fix}"
)]
pub struct PathRefused {
    pub path: String,
    pub reason: String,
    pub roots: String,
    pub fix: String,
}

/// The restore roots of an agent, each resolved (absolute, no links).
#[derive(Debug, Clone)]
pub struct RestoreRoots {
    roots: Vec<PathBuf>,
    /// Roots that were configured but could not be used, and why (said in refusals).
    unusable: Vec<String>,
}

impl RestoreRoots {
    /// Resolves `configured` (made absolute against the current folder). Roots that
    /// do not exist, are system folders or are writable by others are left out and
    /// named in refusals; the default root (see [`DEFAULT_ROOT`]) is created (0700).
    pub fn new(configured: &[PathBuf], default_root: Option<&Path>) -> RestoreRoots {
        let mut roots = Vec::new();
        let mut unusable = Vec::new();
        if configured.is_empty() {
            if let Some(d) = default_root {
                if let Err(e) = create_private_dir_all(d) {
                    unusable.push(format!("{} (cannot create it: {e})", d.display()));
                }
            }
        }
        let candidates: Vec<&Path> = if configured.is_empty() {
            default_root.into_iter().collect()
        } else {
            configured.iter().map(PathBuf::as_path).collect()
        };
        for root in candidates {
            match check_root(root) {
                Ok(r) => {
                    if !roots.contains(&r) {
                        roots.push(r)
                    }
                }
                Err(why) => {
                    tracing::warn!(root = %root.display(), "restore root not used: {why}");
                    unusable.push(format!("{} ({why})", root.display()));
                }
            }
        }
        RestoreRoots { roots, unusable }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn describe(&self) -> String {
        let mut s = if self.roots.is_empty() {
            "none".to_string()
        } else {
            self.roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.unusable.is_empty() {
            s.push_str(&format!(
                " (configured but not usable: {})",
                self.unusable.join(", ")
            ));
        }
        s
    }

    fn refuse(&self, path: &Path, reason: impl Into<String>) -> PathRefused {
        PathRefused {
            path: path.display().to_string(),
            reason: reason.into(),
            roots: self.describe(),
            fix: "Give a new folder under one of the roots as the target path, or add a root to restore_roots in the agent's configuration (agent.toml) and restart the agent".into(),
        }
    }

    /// Checks `target` and returns it resolved (links of its existing part followed),
    /// without creating anything. Refused: a relative path, `..`, a path that leads
    /// outside every root (also through a link), a root itself, a path through
    /// something that is not a folder.
    pub fn resolve(&self, target: &Path) -> Result<PathBuf, PathRefused> {
        if !target.is_absolute() {
            return Err(self.refuse(target, "it is not an absolute path"));
        }
        if target.components().any(|c| c == Component::ParentDir) {
            return Err(self.refuse(target, "it contains '..'"));
        }
        if target.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(self.refuse(target, "it contains a NUL byte"));
        }
        // Without `.` parts, so that every step up below drops one name.
        let norm: PathBuf = target
            .components()
            .filter(|c| *c != Component::CurDir)
            .collect();
        // The longest prefix that exists, resolved; the rest is appended as it is
        // (it holds no `..` and, not existing, no link).
        let mut existing = norm.clone();
        let mut rest = Vec::new();
        let resolved_prefix = loop {
            match existing.canonicalize() {
                Ok(p) => break p,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // A dangling link is not "missing": following it later could
                    // create its target anywhere.
                    if existing.symlink_metadata().is_ok() {
                        return Err(self.refuse(
                            target,
                            format!("{} is a link to nowhere", existing.display()),
                        ));
                    }
                    match (existing.file_name(), existing.parent()) {
                        (Some(name), Some(parent)) => {
                            rest.push(name.to_owned());
                            existing = parent.to_path_buf();
                        }
                        _ => return Err(self.refuse(target, "no part of it exists")),
                    }
                }
                Err(e) => {
                    return Err(self.refuse(
                        target,
                        format!("{} cannot be resolved: {e}", existing.display()),
                    ))
                }
            }
        };
        let mut resolved = resolved_prefix.clone();
        for name in rest.iter().rev() {
            resolved.push(name);
        }
        if self.roots.contains(&resolved) {
            return Err(self.refuse(
                target,
                "it is a restore root itself; a restore goes into a new folder under a root",
            ));
        }
        if !self.roots.iter().any(|r| resolved.starts_with(r)) {
            let how = if resolved != norm {
                format!(" (it resolves to {})", resolved.display())
            } else {
                String::new()
            };
            return Err(self.refuse(target, format!("it is outside the restore roots{how}")));
        }
        if !resolved_prefix.is_dir() {
            return Err(self.refuse(
                target,
                format!("{} exists and is not a folder", resolved_prefix.display()),
            ));
        }
        Ok(resolved)
    }

    /// [`resolve`](Self::resolve)s `target` and creates the folders it lacks, one at a
    /// time (0700), refusing any that turns out to be a link; checks the result again.
    pub fn create(&self, target: &Path) -> Result<PathBuf, PathRefused> {
        let resolved = self.resolve(target)?;
        let root = self
            .roots
            .iter()
            .filter(|r| resolved.starts_with(r))
            .max_by_key(|r| r.as_os_str().len())
            .expect("resolve checked the root");
        let mut at = root.clone();
        for part in resolved.strip_prefix(root).expect("under the root").iter() {
            at.push(part);
            match std::fs::DirBuilder::new().mode(0o700).create(&at) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let meta = at
                        .symlink_metadata()
                        .map_err(|e| self.refuse(target, format!("{}: {e}", at.display())))?;
                    if !meta.is_dir() {
                        return Err(self.refuse(
                            target,
                            format!("{} is not a folder (or is a link)", at.display()),
                        ));
                    }
                }
                Err(e) => {
                    return Err(self.refuse(target, format!("cannot create {}: {e}", at.display())))
                }
            }
        }
        // Someone may have swapped a folder for a link meanwhile: look again.
        let again = resolved
            .canonicalize()
            .map_err(|e| self.refuse(target, format!("{}: {e}", resolved.display())))?;
        if again != resolved {
            return Err(self.refuse(
                target,
                format!(
                    "it changed while its folders were made (now {})",
                    again.display()
                ),
            ));
        }
        Ok(resolved)
    }
}

/// A configured root, resolved, if it may be one.
fn check_root(root: &Path) -> Result<PathBuf, String> {
    let abs = if root.is_absolute() {
        root.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot resolve a relative path: {e}"))?
            .join(root)
    };
    let resolved = abs
        .canonicalize()
        .map_err(|e| format!("cannot resolve it: {e}"))?;
    let meta = std::fs::metadata(&resolved).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a folder".into());
    }
    if SYSTEM_FOLDERS.iter().any(|s| resolved == Path::new(s))
        || SYSTEM_TREES.iter().any(|s| resolved.starts_with(s))
    {
        return Err("a system folder cannot be a restore root; use a folder of its own, such as /srv/restore".into());
    }
    // Others who can write there could plant links where restores go.
    if meta.mode() & 0o002 != 0 {
        return Err("others can write to it; make it writable by its owner only".into());
    }
    Ok(resolved)
}

/// Creates `dir` and its missing parents with mode 0700 (an existing folder keeps
/// its mode).
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates `dir` (0700) if missing; if it exists and is the agent's own (state)
/// folder, takes the permissions of group and others away.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    create_private_dir_all(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Setup {
        _dir: tempfile::TempDir,
        base: PathBuf,
        roots: RestoreRoots,
    }

    /// `base/root` (a root), `base/outside`, `base/root/inside`, and links
    /// `root/escape -> ../outside`, `root/loop -> root/inside`, `root/dangling`.
    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join("inside")).unwrap();
        std::fs::create_dir(base.join("outside")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.join("inside"), root.join("alias")).unwrap();
        std::os::unix::fs::symlink(base.join("nowhere"), root.join("dangling")).unwrap();
        std::fs::write(root.join("file"), b"x").unwrap();
        let roots = RestoreRoots::new(&[root], None);
        assert_eq!(roots.roots().len(), 1, "{roots:?}");
        Setup {
            _dir: dir,
            base,
            roots,
        }
    }

    #[test]
    fn targets_are_resolved_inside_the_roots_only() {
        let s = setup();
        let root = s.base.join("root");
        let ok = |p: PathBuf, want: PathBuf| {
            assert_eq!(s.roots.resolve(&p), Ok(want), "{}", p.display());
        };
        let refused = |p: PathBuf, why: &str| {
            let e = s.roots.resolve(&p).unwrap_err();
            assert!(e.reason.contains(why), "{}: {e}", p.display());
            let text = e.to_string();
            assert!(text.contains(&p.display().to_string()), "{text}");
            assert!(text.contains(&root.display().to_string()), "{text}");
            assert!(text.contains("restore_roots"), "{text}");
        };
        // Allowed: new and existing folders under the root, nested, and through a
        // link that stays inside.
        ok(root.join("new"), root.join("new"));
        ok(root.join("a/b/c"), root.join("a/b/c"));
        ok(root.join("inside"), root.join("inside"));
        ok(root.join("alias/x"), root.join("inside/x"));
        ok(root.join("./inside/./y"), root.join("inside/y"));
        // Refused.
        refused(s.base.join("root/../outside/x"), "'..'");
        refused(root.join("inside/../../outside"), "'..'");
        refused(root.join("escape"), "outside the restore roots");
        refused(root.join("escape/deeper/x"), "outside the restore roots");
        refused(root.join("dangling"), "link to nowhere");
        refused(root.join("dangling/x"), "link to nowhere");
        refused(PathBuf::from("relative/path"), "not an absolute path");
        refused(PathBuf::from("root/x"), "not an absolute path");
        refused(root.clone(), "restore root itself");
        refused(root.join("."), "restore root itself");
        refused(s.base.join("outside/x"), "outside the restore roots");
        refused(PathBuf::from("/etc"), "outside the restore roots");
        refused(PathBuf::from("/"), "outside the restore roots");
        refused(root.join("file/x"), "cannot be resolved");
        refused(root.join("file"), "not a folder");
    }

    #[test]
    fn folders_are_created_under_the_root_only_and_private() {
        let s = setup();
        let root = s.base.join("root");
        let made = s.roots.create(&root.join("a/b")).unwrap();
        assert_eq!(made, root.join("a/b"));
        for d in [root.join("a"), root.join("a/b")] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        // A refused target creates nothing.
        assert!(s.roots.create(&root.join("escape/new")).is_err());
        assert!(!s.base.join("outside/new").exists());
        assert!(s.roots.create(&s.base.join("outside/new2")).is_err());
        assert!(!s.base.join("outside/new2").exists());
    }

    #[test]
    fn system_folders_and_open_folders_are_no_roots() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let roots = RestoreRoots::new(
            &[
                PathBuf::from("/"),
                PathBuf::from("/etc"),
                PathBuf::from("/usr/share"),
                PathBuf::from("/tmp"),
                dir.path().join("missing"),
                open.clone(),
            ],
            None,
        );
        assert!(roots.roots().is_empty(), "{roots:?}");
        let e = roots.resolve(&open.join("x")).unwrap_err();
        assert!(
            e.roots.starts_with("none (configured but not usable: /"),
            "{e}"
        );
        assert!(e.roots.contains("system folder"), "{e}");
        assert!(e.roots.contains("others can write"), "{e}");
    }

    #[test]
    fn the_default_root_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("state/restores");
        let roots = RestoreRoots::new(&[], Some(&default));
        assert_eq!(roots.roots(), &[default.canonicalize().unwrap()]);
        let mode = std::fs::metadata(&default).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Configured roots replace the default.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let roots = RestoreRoots::new(std::slice::from_ref(&other), Some(&default));
        assert_eq!(roots.roots(), &[other.canonicalize().unwrap()]);
    }
}
