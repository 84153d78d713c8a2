//! Locations, where each keeps its data, and which location is its pair.
//!
//! A vault lives in one location. Its recovery points are stored in that location's
//! storage target (the *primary*); a GeoRedundant vault keeps a second copy in the
//! target of the paired location (the *secondary*). The server's configuration file
//! (`DATA/server.toml`, or `tresor serve --config FILE`) names them:
//!
//! ```toml
//! [[location]]
//! name = "westeurope"
//! storage = "/srv/tresor"          # a folder; may be a mount of another machine's disk
//! paired = "northeurope"
//!
//! [[location]]
//! name = "northeurope"
//! storage = "/mnt/dr-site/tresor"
//! paired = "westeurope"
//!
//! [replication]
//! soft_delete = "14d"   # deletes reach the secondary only this long after the primary
//! retry_min = "15s"     # first retry after a failed replication run; doubles per failure
//! retry_max = "15m"
//! ```
//!
//! The embedded default, for every location the file does not name (and when there is
//! no file): primary `DATA/vaults`, secondary `DATA/replica`, the paired location
//! called `NAME-paired`. A configured location without `paired` holds only
//! LocallyRedundant vaults.
//!
//! Each target folder carries a marker file, `tresor-storage.json`. The server creates
//! it when it starts and finds the folder missing or empty; afterwards a folder without
//! the marker is unavailable. So an unmounted disk (an empty mount point) is never
//! mistaken for an empty target and filled with a copy that belongs elsewhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use serde::Deserialize;

/// The marker file of a storage target.
pub const MARKER: &str = "tresor-storage.json";

/// A storage target: one folder holding vaults' repositories (`V/hosts/A`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The location it belongs to.
    pub location: String,
    pub root: PathBuf,
}

impl Target {
    /// Whether the target is there (its marker is).
    pub fn check(&self) -> Result<(), String> {
        if self.root.join(MARKER).is_file() {
            Ok(())
        } else if self.root.is_dir() {
            Err(format!(
                "the storage target of location {} at {} has no {MARKER}: it is not the folder the server set up (a disk not mounted?)",
                self.location,
                self.root.display()
            ))
        } else {
            Err(format!(
                "the storage target of location {} at {} is not there",
                self.location,
                self.root.display()
            ))
        }
    }

    /// At start-up: a missing or empty folder becomes a target (its marker written).
    fn prepare(&self) -> std::io::Result<()> {
        if self.root.join(MARKER).is_file() {
            return Ok(());
        }
        let empty = match std::fs::read_dir(&self.root) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.root)?;
                true
            }
            Err(e) => return Err(e),
        };
        if !empty {
            tracing::warn!(
                location = %self.location,
                root = %self.root.display(),
                "storage target is not empty and has no {MARKER}; it stays unavailable until the marker is there"
            );
            return Ok(());
        }
        let marker = serde_json::json!({
            "format": "tresor-storage-target",
            "version": 1,
            "location": self.location,
            "created": jiff::Timestamp::now().to_string(),
        });
        tresor_storage::write_file_atomic(
            &self.root.join(MARKER),
            serde_json::to_string_pretty(&marker)
                .unwrap_or_default()
                .as_bytes(),
            0o644,
        )?;
        tracing::info!(location = %self.location, root = %self.root.display(), "storage target set up");
        Ok(())
    }
}

/// Replication's timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSettings {
    /// How long after a delete on the primary the secondary copy goes.
    pub soft_delete: SignedDuration,
    pub retry_min: SignedDuration,
    pub retry_max: SignedDuration,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            soft_delete: SignedDuration::from_hours(14 * 24),
            retry_min: SignedDuration::from_secs(15),
            retry_max: SignedDuration::from_mins(15),
        }
    }
}

/// The configured locations, or the embedded default.
#[derive(Debug, Clone)]
pub struct Locations {
    configured: BTreeMap<String, (PathBuf, Option<String>)>,
    default_primary: PathBuf,
    default_secondary: PathBuf,
    pub replication: ReplicationSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default, rename = "location")]
    locations: Vec<LocationEntry>,
    #[serde(default)]
    replication: ReplicationEntry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationEntry {
    name: String,
    storage: PathBuf,
    paired: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicationEntry {
    soft_delete: Option<String>,
    retry_min: Option<String>,
    retry_max: Option<String>,
}

/// Parses `14d`, `36h`, `15m`, `30s` (one number and one unit).
pub fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        format!("{s:?} is not a duration: write a number and a unit, like 14d, 36h, 15m or 30s")
    })?;
    let secs = match unit.trim() {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" => n,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?}; use d, h, m or s (14d, 36h, 15m, 30s)"
            ))
        }
    };
    Ok(SignedDuration::from_secs(secs))
}

impl Locations {
    /// The embedded default only.
    pub fn embedded(data_dir: &Path) -> Locations {
        Locations {
            configured: BTreeMap::new(),
            default_primary: data_dir.join("vaults"),
            default_secondary: data_dir.join("replica"),
            replication: ReplicationSettings::default(),
        }
    }

    /// Reads the configuration file; a missing file is the embedded default.
    pub fn load(data_dir: &Path, file: Option<&Path>) -> Result<Locations, String> {
        let default_file = data_dir.join("server.toml");
        let (path, required) = match file {
            Some(p) => (p.to_path_buf(), true),
            None => (default_file, false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Locations::embedded(data_dir))
            }
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        Locations::parse(data_dir, &text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(data_dir: &Path, text: &str) -> Result<Locations, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut out = Locations::embedded(data_dir);
        for l in file.locations {
            tresor_domain::Location::parse(&l.name).map_err(|e| e.to_string())?;
            if !l.storage.is_absolute() {
                return Err(format!(
                    "location {}: storage {} must be an absolute path",
                    l.name,
                    l.storage.display()
                ));
            }
            if out
                .configured
                .insert(l.name.clone(), (l.storage, l.paired))
                .is_some()
            {
                return Err(format!("location {} is named twice", l.name));
            }
        }
        for (name, (root, paired)) in &out.configured {
            if let Some(p) = paired {
                let Some((proot, _)) = out.configured.get(p) else {
                    return Err(format!(
                        "location {name} is paired with {p}, which has no [[location]] entry (give it a name and storage)"
                    ));
                };
                if p == name || proot == root {
                    return Err(format!(
                        "location {name} is paired with {p}, which stores in the same place: a pair needs two storage targets"
                    ));
                }
            }
        }
        let r = file.replication;
        let dur = |v: Option<String>, d: SignedDuration| v.map_or(Ok(d), |s| parse_duration(&s));
        out.replication = ReplicationSettings {
            soft_delete: dur(r.soft_delete, out.replication.soft_delete)?,
            retry_min: dur(r.retry_min, out.replication.retry_min)?,
            retry_max: dur(r.retry_max, out.replication.retry_max)?,
        };
        Ok(out)
    }

    /// The locations the configuration names.
    pub fn configured_names(&self) -> Vec<String> {
        self.configured.keys().cloned().collect()
    }

    /// Where a vault in `location` keeps its data.
    pub fn primary(&self, location: &str) -> Target {
        Target {
            location: location.to_string(),
            root: self
                .configured
                .get(location)
                .map(|(root, _)| root.clone())
                .unwrap_or_else(|| self.default_primary.clone()),
        }
    }

    /// Where a GeoRedundant vault in `location` keeps its second copy; `None` when the
    /// location has no pair.
    pub fn secondary(&self, location: &str) -> Option<Target> {
        match self.configured.get(location) {
            Some((_, None)) => None,
            Some((_, Some(p))) => Some(self.primary(p)),
            None => Some(Target {
                location: format!("{location}-paired"),
                root: self.default_secondary.clone(),
            }),
        }
    }

    /// Creates the marker of every target that is missing or empty (at start-up).
    pub fn prepare(&self) -> std::io::Result<()> {
        let mut targets = vec![
            Target {
                location: "(default)".into(),
                root: self.default_primary.clone(),
            },
            Target {
                location: "(default)-paired".into(),
                root: self.default_secondary.clone(),
            },
        ];
        for (name, (root, _)) in &self.configured {
            targets.push(Target {
                location: name.clone(),
                root: root.clone(),
            });
        }
        for t in targets {
            t.prepare()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_pairs_every_location() {
        let l = Locations::embedded(Path::new("/data"));
        assert_eq!(l.primary("local").root, Path::new("/data/vaults"));
        let s = l.secondary("local").unwrap();
        assert_eq!(s.root, Path::new("/data/replica"));
        assert_eq!(s.location, "local-paired");
    }

    #[test]
    fn configured_pairs() {
        let l = Locations::parse(
            Path::new("/data"),
            r#"
[[location]]
name = "westeurope"
storage = "/srv/a"
paired = "northeurope"
[[location]]
name = "northeurope"
storage = "/srv/b"
[replication]
soft_delete = "3s"
"#,
        )
        .unwrap();
        assert_eq!(l.primary("westeurope").root, Path::new("/srv/a"));
        assert_eq!(l.secondary("westeurope").unwrap().root, Path::new("/srv/b"));
        assert_eq!(l.secondary("northeurope"), None);
        assert_eq!(l.replication.soft_delete, SignedDuration::from_secs(3));
        assert_eq!(l.replication.retry_min, SignedDuration::from_secs(15));
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let e = Locations::parse(
            Path::new("/d"),
            "[[location]]\nname = \"a\"\nstorage = \"/x\"\npaired = \"b\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("paired with b, which has no [[location]]"),
            "{e}"
        );
        let e = Locations::parse(
            Path::new("/d"),
            "[[location]]\nname = \"a\"\nstorage = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = parse_duration("14 weeks").unwrap_err();
        assert!(e.contains("unknown unit"), "{e}");
        assert_eq!(parse_duration("2h").unwrap(), SignedDuration::from_hours(2));
    }

    #[test]
    fn markers_guard_targets() {
        let dir = tempfile::tempdir().unwrap();
        let t = Target {
            location: "x".into(),
            root: dir.path().join("t"),
        };
        assert!(t.check().unwrap_err().contains("not there"));
        t.prepare().unwrap();
        t.check().unwrap();
        // A non-empty folder without a marker is left alone and stays unavailable.
        let u = Target {
            location: "y".into(),
            root: dir.path().join("u"),
        };
        std::fs::create_dir_all(u.root.join("something")).unwrap();
        u.prepare().unwrap();
        assert!(u.check().unwrap_err().contains("no tresor-storage.json"));
    }
}
