//! The workspace's shape, checked: the absences ARCHITECTURE.md states hold.
//!
//! - Each crate's normal dependencies leave out what its room must not know (the
//!   engine nothing of HTTP, SQL or QEMU; the service nothing of HTTP; the portal
//!   nothing of the catalogue, the repositories or the REST handlers; ...). A crate
//!   that gains a forbidden dependency fails this test, naming the rule.
//! - No two files of a crate import each other, directly or around a circle
//!   (`use crate::a` in b and `crate::b` in a).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace root (this crate is `crates/tresor-cli`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Normal (not dev or build) dependencies of every workspace crate, by name.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut deps = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let names = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        deps.insert(p["name"].as_str().unwrap().to_string(), names);
    }
    deps
}

const HTTP: &[&str] = &[
    "axum",
    "axum-server",
    "hyper",
    "hyper-util",
    "http",
    "tower",
    "tower-http",
    "reqwest",
    "maud",
];
const SQL: &[&str] = &["rusqlite", "sqlx", "tresor-metadata"];
const QEMU: &[&str] = &[
    "tresor-qemu",
    "tresor-qmp",
    "tresor-nbd",
    "tresor-vm",
    "tresor-libvirt",
    "virt",
];
const SERVER_SIDE: &[&str] = &[
    "tresor-service",
    "tresor-web",
    "tresor-portal",
    "tresor-server",
];

/// (crate, what it must not depend on, why).
fn rules() -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
    let all = |lists: &[&[&'static str]]| lists.concat();
    vec![
        (
            "tresor-domain",
            all(&[HTTP, SQL, QEMU, SERVER_SIDE, &["tresor-engine", "tresor-storage", "tresor-api"]]),
            "the domain model is pure: rules, no I/O",
        ),
        (
            "tresor-api",
            all(&[HTTP, SQL, QEMU, SERVER_SIDE, &["tresor-engine", "tresor-storage", "tresor-client"]]),
            "the wire contract holds types and nothing else",
        ),
        (
            "tresor-format",
            all(&[HTTP, SQL, QEMU, SERVER_SIDE, &["tresor-api"]]),
            "formats know nothing of HTTP, SQL or QEMU",
        ),
        (
            "tresor-storage",
            all(&[HTTP, SQL, QEMU, SERVER_SIDE, &["tresor-api"]]),
            "storage knows nothing of HTTP, SQL or QEMU",
        ),
        (
            "tresor-engine",
            all(&[HTTP, SQL, QEMU, SERVER_SIDE, &["tresor-api"]]),
            "the engine imports nothing of HTTP, SQL or QEMU",
        ),
        (
            "tresor-metadata",
            all(&[HTTP, QEMU, SERVER_SIDE, &["tresor-engine", "tresor-storage"]]),
            "the catalogue is rows in, rows out",
        ),
        (
            "tresor-service",
            all(&[HTTP, QEMU, &["tresor-web", "tresor-portal", "tresor-server", "tresor-client", "tresor-agent"]]),
            "the service layer knows nothing of HTTP, HTML or QEMU",
        ),
        (
            "tresor-web",
            all(&[SQL, QEMU, &["tresor-engine", "tresor-storage", "tresor-portal", "tresor-server"]]),
            "the HTTP adapters' shared part reaches data only through the service",
        ),
        (
            "tresor-portal",
            all(&[SQL, QEMU, &["tresor-engine", "tresor-storage", "tresor-server", "reqwest"]]),
            "the portal is an adapter over the service, not over the REST handlers or the catalogue",
        ),
        (
            "tresor-server",
            all(&[QEMU, &["tresor-engine", "tresor-agent", "tresor-client", "rusqlite"]]),
            "the REST adapter reaches data only through the service",
        ),
        (
            "tresor-agent",
            all(&[SQL, SERVER_SIDE, &["axum", "axum-server", "maud", "reqwest"]]),
            "an agent talks to the server over the wire contract only, through tresor-client",
        ),
        (
            "tresor-client",
            all(&[SQL, QEMU, SERVER_SIDE, &["tresor-engine"]]),
            "the client is the wire contract over HTTPS",
        ),
        (
            "tresor-libvirt",
            // It reads disks with the QEMU crate's NBD source and image opener (one
            // reader for both providers), never the other way round.
            all(&[HTTP, SQL, SERVER_SIDE, &["tresor-engine", "tresor-storage", "tresor-client", "tresor-agent"]]),
            "the libvirt adapter knows libvirt, nothing of HTTP or the vault",
        ),
    ]
}

#[test]
fn no_crate_depends_on_what_its_room_must_not_know() {
    let deps = dependencies();
    let mut broken = Vec::new();
    for (krate, forbidden, why) in rules() {
        let have = deps
            .get(krate)
            .unwrap_or_else(|| panic!("{krate} is not in the workspace; update the rules"));
        for f in forbidden {
            if have.contains(f) {
                broken.push(format!("{krate} depends on {f}: {why}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "forbidden dependencies:\n{}",
        broken.join("\n")
    );
}

/// The module path of a source file (`src/usecases/vaults.rs` → `usecases::vaults`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod" && p != "lib" && p != "main")
        .collect();
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The crate's modules a file refers to (`crate::a::b` → the longest module that
/// exists), leaving out its own module, its ancestors and its descendants (a module
/// may use what it declares; children see their parent).
fn imports(text: &str, own: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // Code only: the text before a line comment. (Doc links name modules too, and
    // are left out: a doc link is no dependency.)
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut expanded = code.clone();
    // `use crate::{a, b::c}` → `crate::a crate::b::c`.
    while let Some(i) = expanded.find("crate::{") {
        let start = i + "crate::{".len();
        let mut depth = 1;
        let mut end = start;
        for (j, c) in expanded[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = start + j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner: Vec<String> = expanded[start..end]
            .split(',')
            .map(|p| format!("crate::{}", p.trim()))
            .collect();
        expanded.replace_range(i..=end, &inner.join(" "));
    }
    for (i, _) in expanded.match_indices("crate::") {
        let path: String = expanded[i + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let target = (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| modules.contains(m));
        if let Some(t) = target {
            let related = t == own
                || own.starts_with(&format!("{t}::"))
                || t.starts_with(&format!("{own}::"))
                || own.is_empty();
            if !related {
                found.insert(t);
            }
        }
    }
    found
}

/// A circle in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_files_of_a_crate_import_each_other_in_a_circle() {
    let mut circles = Vec::new();
    for e in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = e.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
        let mut graph = BTreeMap::new();
        for f in &files {
            let own = module_of(&src, f);
            let text = std::fs::read_to_string(f).unwrap();
            graph.insert(own.clone(), imports(&text, &own, &modules));
        }
        if let Some(c) = circle(&graph) {
            circles.push(format!("{}: {}", src.display(), c.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_import_scanner_sees_grouped_and_nested_paths() {
    let modules: BTreeSet<String> = ["a", "b", "b::c", "d"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let found = imports(
        "use crate::{a, b::c::Thing};\nfn f() { crate::d::g(); }\n// crate::x is a comment",
        "e",
        &modules,
    );
    assert_eq!(
        found,
        ["a", "b::c", "d"].iter().map(|s| s.to_string()).collect()
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert!(circle(&graph).is_some());
}
