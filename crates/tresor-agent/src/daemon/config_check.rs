//! agent.toml checked whole before it is used: every problem at once (unknown keys
//! with the nearest known one, wrong types, relative paths, missing files, duplicate
//! VM names, bad URIs and names), each naming its key as `vm[2].qmp` (the second
//! `[[vm]]` section, counted from 1), so one edit fixes them all.
//!
//! The keys and their kinds are listed here once ([`TOP`], [`VM`], [`PROXY`],
//! [`LIBVIRT`]); a test checks that they are exactly the fields serde accepts and
//! that docs/agent.md names every one.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::{Table, Value};

use super::config::AgentConfig;

/// One problem of a configuration: the key that is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// `location`, `vm[2].qmp`, `proxy.port`; empty for the file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// What a key holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// Text of at most this many characters, no control characters.
    Text(usize),
    /// An absolute path.
    Path,
    /// A list of absolute paths.
    Paths,
    Bool,
    /// A whole number in this range.
    Integer(i64, i64),
    /// A `[section]` with these keys.
    Section(&'static [Key]),
    /// `[[section]]`s, each with these keys.
    Sections(&'static [Key]),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn key(name: &'static str, kind: Kind) -> Key {
    Key {
        name,
        kind,
        required: false,
    }
}

const fn required(name: &'static str, kind: Kind) -> Key {
    Key {
        name,
        kind,
        required: true,
    }
}

/// Longest host name, VM name or proxy host accepted.
const MAX_NAME: usize = 255;

/// Longest drain time: a day.
const MAX_DRAIN_SECS: i64 = 86_400;

/// `[[vm]]`: `tresor_qemu::QemuVmConfig`.
pub(super) const VM: &[Key] = &[
    key("name", Kind::Text(MAX_NAME)),
    key("qmp", Kind::Path),
    key("guest_agent", Kind::Path),
    key("disks", Kind::Paths),
    key("scratch_dir", Kind::Path),
    key("application_hooks", Kind::Bool),
];

/// `[proxy]`: `tresor_client::ProxyConfig`.
pub(super) const PROXY: &[Key] = &[
    required("host", Kind::Text(MAX_NAME)),
    required("port", Kind::Integer(1, 65_535)),
];

/// `[libvirt]`: `LibvirtConfig`.
pub(super) const LIBVIRT: &[Key] = &[
    key("uri", Kind::Text(super::config::MAX_LIBVIRT_URI)),
    key("enabled", Kind::Bool),
];

/// The top level: `AgentConfig`.
pub(super) const TOP: &[Key] = &[
    key("credentials", Kind::Path),
    required("state_dir", Kind::Path),
    key("host", Kind::Text(MAX_NAME)),
    required("location", Kind::Text(64)),
    key("scratch_dir", Kind::Path),
    key("socket_dirs", Kind::Paths),
    key("proxy", Kind::Section(PROXY)),
    key("restore_roots", Kind::Paths),
    key("drain_timeout_secs", Kind::Integer(0, MAX_DRAIN_SECS)),
    key("vm", Kind::Sections(VM)),
    key("libvirt", Kind::Section(LIBVIRT)),
];

/// Reads `table` as an agent configuration, checking it whole: the configuration, or
/// every problem found. Keys of the wrong kind are left out to check the rest (a
/// required one missing stands in with a harmless value), so that their neighbours'
/// problems show too.
pub(super) fn checked(mut table: Table) -> Result<AgentConfig, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    check_table(&table, TOP, "", &mut problems);
    for p in &problems {
        remove_at(&mut table, &p.key);
    }
    // A section left without a required key goes whole (its problem is listed).
    let mut left = Vec::new();
    check_table(&table, TOP, "", &mut left);
    for p in left {
        if let Some((section, _)) = p.key.rsplit_once('.') {
            remove_at(&mut table, section);
        }
    }
    for (k, stand_in) in [("state_dir", "/nonexistent"), ("location", "local")] {
        table
            .entry(k)
            .or_insert_with(|| Value::String(stand_in.into()));
    }
    match AgentConfig::deserialize(table) {
        Ok(config) => {
            for p in meaning_problems(&config) {
                if !problems.iter().any(|q| q.key == p.key) {
                    problems.push(p);
                }
            }
            if problems.is_empty() {
                return Ok(config);
            }
        }
        // What the checks above let through (they know every key's kind).
        Err(e) if problems.is_empty() => problems.push(ConfigProblem {
            key: String::new(),
            message: e.to_string().trim().to_string(),
        }),
        Err(_) => {}
    }
    Err(problems)
}

/// Removes the entry a problem's key names (`a`, `a.b`, `a[2]`, `a[2].b`; a list
/// goes whole).
fn remove_at(table: &mut Table, key: &str) {
    let segments: Vec<&str> = key.split('.').collect();
    let Some((last, path)) = segments.split_last() else {
        return;
    };
    let mut here = table;
    for seg in path {
        let (name, index) = split_index(seg);
        let next = match (here.get_mut(name), index) {
            (Some(Value::Table(t)), None) => t,
            (Some(Value::Array(items)), Some(i)) => match items.get_mut(i) {
                Some(Value::Table(t)) => t,
                _ => return,
            },
            _ => return,
        };
        here = next;
    }
    here.remove(split_index(last).0);
}

/// `vm[2]` → (`vm`, Some(1)): the index counted from 0.
fn split_index(seg: &str) -> (&str, Option<usize>) {
    match seg.split_once('[') {
        Some((name, rest)) => (
            name,
            rest.trim_end_matches(']')
                .parse::<usize>()
                .ok()
                .and_then(|i| i.checked_sub(1)),
        ),
        None => (seg, None),
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn check_table(table: &Table, keys: &[Key], prefix: &str, out: &mut Vec<ConfigProblem>) {
    for k in keys {
        if k.required && !table.contains_key(k.name) {
            out.push(ConfigProblem {
                key: join(prefix, k.name),
                message: "missing: this key is required".into(),
            });
        }
    }
    for (name, value) in table {
        let path = join(prefix, name);
        match keys.iter().find(|k| k.name == name) {
            Some(k) => check_value(value, k.kind, &path, out),
            None => out.push(ConfigProblem {
                message: unknown(name, keys),
                key: path,
            }),
        }
    }
}

/// "unknown key", with the nearest known one when one is close.
fn unknown(name: &str, keys: &[Key]) -> String {
    let nearest = keys
        .iter()
        .map(|k| (distance(&name.to_lowercase(), k.name), k.name))
        .min();
    let known: Vec<&str> = keys.iter().map(|k| k.name).collect();
    match nearest {
        Some((d, k)) if d <= 3 && d < name.len().max(2) => {
            format!(
                "unknown key; did you mean `{k}`? (known here: {})",
                known.join(", ")
            )
        }
        _ => format!("unknown key (known here: {})", known.join(", ")),
    }
}

/// Edit distance (insertions, deletions, substitutions) between two short names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "a whole number",
        Value::Float(_) => "a number with a fraction",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

fn check_value(value: &Value, kind: Kind, key: &str, out: &mut Vec<ConfigProblem>) {
    let mut problem = |message: String| {
        out.push(ConfigProblem {
            key: key.to_string(),
            message,
        })
    };
    match (kind, value) {
        (Kind::Text(max), Value::String(s)) => {
            if s.trim().is_empty() {
                problem("empty: give a value or leave the key out".into());
            } else if s.chars().count() > max || s.chars().any(char::is_control) {
                problem(format!(
                    "at most {max} characters, without control characters"
                ));
            }
        }
        (Kind::Path, Value::String(s)) => {
            if let Some(m) = path_problem(s) {
                problem(m);
            }
        }
        (Kind::Paths, Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                check_value(item, Kind::Path, &format!("{key}[{}]", i + 1), out);
            }
        }
        (Kind::Bool, Value::Boolean(_)) => {}
        (Kind::Integer(min, max), Value::Integer(n)) => {
            if !(min..=max).contains(n) {
                problem(format!("{n} is out of range: write {min} to {max}"));
            }
        }
        (Kind::Section(keys), Value::Table(t)) => check_table(t, keys, key, out),
        (Kind::Sections(keys), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{}]", i + 1);
                match item {
                    Value::Table(t) => check_table(t, keys, &at, out),
                    other => out.push(ConfigProblem {
                        key: at,
                        message: format!("expected a [[{key}]] table, found {}", type_name(other)),
                    }),
                }
            }
        }
        (Kind::Sections(_), Value::Table(_)) => problem(format!(
            "write each one as [[{key}]] (double brackets: there may be several), not [{key}]"
        )),
        (kind, other) => problem(format!(
            "expected {}, found {}",
            match kind {
                Kind::Text(_) => "a string in quotes".to_string(),
                Kind::Path => "an absolute path in quotes".to_string(),
                Kind::Paths => "a list of absolute paths, [\"/a\", \"/b\"]".to_string(),
                Kind::Bool => "true or false".to_string(),
                Kind::Integer(min, max) => format!("a whole number from {min} to {max}"),
                Kind::Section(_) => format!("a [{key}] section"),
                Kind::Sections(_) => format!("[[{key}]] sections"),
            },
            type_name(other)
        )),
    }
}

/// What is wrong with a configured path: relative (the agent runs as a service, from
/// any folder), empty or with control characters.
fn path_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        Some("empty: give an absolute path or leave the key out".into())
    } else if s.chars().any(char::is_control) {
        Some("a path without control characters".into())
    } else if !Path::new(s).is_absolute() {
        Some(format!(
            "{s:?} is relative: write an absolute path (the agent runs as a service, from any folder)"
        ))
    } else {
        None
    }
}

/// The checks of a configuration that parsed: what the keys say together and what
/// the host holds.
fn meaning_problems(config: &AgentConfig) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    let mut problem = |key: String, message: String| out.push(ConfigProblem { key, message });
    if let Err(e) = tresor_domain::Location::parse(&config.location) {
        problem(
            "location".into(),
            format!(
                "{:?} is not a location: {} (it must be the location of the vault whose credentials this host registers with)",
                config.location, e.message
            ),
        );
    }
    if let Some(creds) = &config.credentials {
        if creds.is_absolute() && !creds.is_file() && !super::registration::is_registered(config) {
            problem(
                "credentials".into(),
                format!(
                    "{} does not exist: the agent is not registered yet and needs it; download one with `tresor vault credentials` (or the portal's Host agents page)",
                    creds.display()
                ),
            );
        }
    }
    let dirs = [("scratch_dir".to_string(), config.scratch_dir.as_ref())]
        .into_iter()
        .chain(
            config
                .vms
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("vm[{}].scratch_dir", i + 1), v.scratch_dir.as_ref())),
        );
    for (key, dir) in dirs {
        if let Some(dir) = dir.filter(|d| d.exists() && !d.is_dir()) {
            problem(key, format!("{} is not a folder", dir.display()));
        }
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, vm) in config.vms.iter().enumerate() {
        let at = format!("vm[{}]", i + 1);
        if vm.name.is_none() && vm.qmp.is_none() && vm.disks.is_empty() {
            problem(
                at.clone(),
                "names no VM: give qmp (a running VM's QMP socket) or disks (its images), and a name".into(),
            );
            continue;
        }
        let name = vm.vm_ref().0;
        if let Some(first) = names.insert(name.clone(), i + 1) {
            let key = if vm.name.is_some() {
                format!("{at}.name")
            } else {
                at.clone()
            };
            problem(
                key,
                format!(
                    "the VM name {name:?} is also vm[{first}]'s: give each [[vm]] its own name"
                ),
            );
        }
    }
    if let Err(message) = config.libvirt.check() {
        problem("libvirt.uri".into(), message);
    }
    out
}

#[cfg(test)]
pub(super) mod fields {
    //! The field names serde accepts for a struct, read from its derived
    //! `Deserialize` (which hands them to `deserialize_struct`).

    use serde::de::{self, Deserialize, Visitor};

    #[derive(Debug)]
    struct Found(&'static [&'static str]);

    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("fields")
        }
    }

    impl std::error::Error for Found {}

    impl de::Error for Found {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Found(&[])
        }
    }

    struct Probe;

    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Found;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    pub fn of<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
        match T::deserialize(Probe) {
            Err(Found(fields)) => fields.to_vec(),
            Ok(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(keys: &[Key]) -> Vec<&'static str> {
        let mut v: Vec<_> = keys.iter().map(|k| k.name).collect();
        v.sort_unstable();
        v
    }

    fn sorted(mut v: Vec<&'static str>) -> Vec<&'static str> {
        v.sort_unstable();
        v
    }

    /// The checked keys are the keys serde reads, section by section.
    #[test]
    fn the_checked_keys_are_the_structs_fields() {
        use super::super::config::LibvirtConfig;
        assert_eq!(names(TOP), sorted(fields::of::<AgentConfig>()));
        assert_eq!(names(VM), sorted(fields::of::<tresor_qemu::QemuVmConfig>()));
        assert_eq!(
            names(PROXY),
            sorted(fields::of::<tresor_client::ProxyConfig>())
        );
        assert_eq!(names(LIBVIRT), sorted(fields::of::<LibvirtConfig>()));
    }

    /// docs/agent.md names every key, in its section, as `key` in its table.
    #[test]
    fn docs_agent_md_names_every_key() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/agent.md"))
                .expect("docs/agent.md");
        let mut missing = Vec::new();
        for (section, keys) in [
            ("", TOP),
            ("vm.", VM),
            ("proxy.", PROXY),
            ("libvirt.", LIBVIRT),
        ] {
            for k in keys {
                let row = format!("| `{section}{}` |", k.name);
                if !doc.contains(&row) {
                    missing.push(row);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "docs/agent.md lacks the rows {missing:?}"
        );
    }

    #[test]
    fn distances() {
        assert_eq!(distance("scratchdir", "scratch_dir"), 1);
        assert_eq!(distance("locaton", "location"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert!(unknown("scrach_dir", TOP).contains("did you mean `scratch_dir`?"));
        assert!(!unknown("zzzzzzzz", TOP).contains("did you mean"));
    }
}
