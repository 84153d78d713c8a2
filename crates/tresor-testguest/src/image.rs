//! Building (and caching) the guest's kernel + initramfs from host packages.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{BufWriter, ErrorKind};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use anyhow::{anyhow, bail, Context, Result};

use crate::cpio::CpioWriter;
use crate::guest::INIT_SCRIPT;

/// Bumped whenever the layout of the initramfs changes in a way the other cache
/// key inputs do not capture.
const LAYOUT_VERSION: u32 = 1;

const BUSYBOX: &str = "/bin/busybox";
const QEMU_GA: &str = "/usr/sbin/qemu-ga";
const KERNEL_FLAVOUR: &str = "-cloud-amd64";

/// Kernel modules the guest needs (with their dependencies); those built into the
/// kernel are skipped. Required ones must be a module or built in.
const REQUIRED_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "virtio_console", "ext4"];
/// Loaded if they exist as modules: ext4 asks the crypto API for "crc32c" at mount
/// time, and without modprobe in the guest nothing would load it on demand.
const OPTIONAL_MODULES: &[&str] = &["crc32c_generic"];

/// Busybox applets `/init` uses.
const REQUIRED_APPLETS: &[&str] = &[
    "sh", "mount", "umount", "insmod", "mkdir", "ln", "cat", "echo", "sleep", "usleep", "yes",
    "head", "sync", "mv", "stat", "crc32", "poweroff", "stty",
];

/// A bootable test guest: a kernel and an initramfs whose `/init` is chosen by
/// [`GuestMode`](crate::GuestMode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestImage {
    /// The kernel (a copy of `/boot/vmlinuz-<version>`).
    pub kernel: PathBuf,
    /// The gzip-compressed newc initramfs.
    pub initrd: PathBuf,
    /// The kernel release, e.g. `6.1.0-56-cloud-amd64`.
    pub kernel_version: String,
    /// The cache directory holding both files.
    pub dir: PathBuf,
}

impl GuestImage {
    /// Returns the guest image for the host's packages, building it into the
    /// cache (see [`cache_root`]) unless an up-to-date one is there.
    pub fn build() -> Result<GuestImage> {
        GuestImage::build_in(&cache_root())
    }

    /// Like [`GuestImage::build`] with `cache_root` instead of the default cache.
    /// Safe to call from several processes at once: each builds into a temporary
    /// directory and renames it into place; a loser of that race uses the winner's.
    pub fn build_in(cache_root: &Path) -> Result<GuestImage> {
        let inputs = HostInputs::find()?;
        let key = inputs.cache_key();
        let dir = cache_root.join(format!("guest-{key:016x}"));
        let image = GuestImage {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            kernel_version: inputs.kernel_version.clone(),
            dir: dir.clone(),
        };
        if image.initrd.is_file() {
            tracing::debug!(dir = %dir.display(), "test guest: cached");
            return Ok(image);
        }
        fs::create_dir_all(cache_root)
            .with_context(|| format!("creating the cache directory {}", cache_root.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".build-guest-{key:016x}-"))
            .tempdir_in(cache_root)
            .with_context(|| format!("creating a build directory in {}", cache_root.display()))?;
        inputs
            .build_into(tmp.path())
            .context("building the test guest")?;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))?;
        let tmp = tmp.keep();
        match fs::rename(&tmp, &dir) {
            Ok(()) => {
                tracing::debug!(dir = %dir.display(), "test guest: built");
                Ok(image)
            }
            // Another process finished first: its directory is as good as ours.
            Err(_) if image.initrd.is_file() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(image)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e).with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))
            }
        }
    }
}

/// Where built guests are cached: `$TRESOR_TEST_CACHE` if set, else
/// `<target dir>/test-cache` with the target directory taken from
/// `$CARGO_TARGET_DIR` or else the workspace root's `target`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("TRESOR_TEST_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let workspace = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(t) => workspace.join(t), // join keeps an absolute path as it is
        None => workspace.join("target"),
    };
    target.join("test-cache")
}

/// The nearest ancestor of this crate's manifest directory whose `Cargo.toml`
/// declares a `[workspace]`.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest_dir.ancestors() {
        let Ok(toml) = fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        if toml.lines().any(|l| l.trim() == "[workspace]") {
            return dir.to_path_buf();
        }
    }
    manifest_dir.to_path_buf()
}

/// An error for a host file some Debian package provides.
fn missing(what: &str, package: &str) -> anyhow::Error {
    anyhow!(
        "{what} not found: install the Debian package {package} \
         (scripts/install-deps.sh, run as root, installs it)"
    )
}

/// Everything the image is built from, found on the host.
struct HostInputs {
    kernel: PathBuf,
    kernel_version: String,
    modules_dir: PathBuf,
    /// Shared libraries of qemu-ga (and busybox if dynamic), at the paths `ldd`
    /// shows, with the dynamic loader.
    libraries: Vec<PathBuf>,
}

impl HostInputs {
    fn find() -> Result<HostInputs> {
        let (kernel, kernel_version) = find_kernel()?;
        let modules_dir = Path::new("/lib/modules").join(&kernel_version);
        if !modules_dir.join("modules.dep").is_file() {
            return Err(missing(
                &format!("{}/modules.dep", modules_dir.display()),
                &format!("linux-image-{kernel_version}"),
            ));
        }
        if !Path::new(BUSYBOX).is_file() {
            return Err(missing(BUSYBOX, "busybox-static"));
        }
        if !Path::new(QEMU_GA).is_file() {
            return Err(missing(QEMU_GA, "qemu-guest-agent"));
        }
        // busybox-static needs none, but a dynamic busybox works too.
        let mut libraries = shared_libraries(Path::new(QEMU_GA))?;
        libraries.extend(shared_libraries(Path::new(BUSYBOX))?);
        libraries.sort();
        libraries.dedup();
        Ok(HostInputs {
            kernel,
            kernel_version,
            modules_dir,
            libraries,
        })
    }

    /// FNV-1a over everything that shapes the image, so a change to any input
    /// (a kernel, busybox, qemu-ga or library upgrade, an edited `/init`) gives a
    /// new key and a rebuild.
    fn cache_key(&self) -> u64 {
        let mut text = format!(
            "layout {LAYOUT_VERSION}\nkernel {}\n{}\n{}\n{}\nmodules {:?} {:?}\n",
            self.kernel_version,
            file_stamp(&self.kernel),
            file_stamp(Path::new(BUSYBOX)),
            file_stamp(Path::new(QEMU_GA)),
            REQUIRED_MODULES,
            OPTIONAL_MODULES,
        );
        for lib in &self.libraries {
            text.push_str(&file_stamp(lib));
            text.push('\n');
        }
        text.push_str(INIT_SCRIPT);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    fn build_into(&self, dir: &Path) -> Result<()> {
        fs::copy(&self.kernel, dir.join("vmlinuz")).with_context(|| {
            format!(
                "copying {} (it must be readable by this user)",
                self.kernel.display()
            )
        })?;
        let cpio_path = dir.join("initrd.cpio");
        let file = fs::File::create(&cpio_path)?;
        let mut w = CpioWriter::new(BufWriter::new(file));
        let mut dirs = DirSet::default();
        for d in [
            "dev", "proc", "sys", "run", "tmp", "data", "etc", "root", "var",
        ] {
            dirs.ensure(&mut w, d)?;
        }
        w.symlink("var/run", "../run")?;
        w.char_device("dev/console", 0o600, 5, 1)?;
        w.file("init", 0o755, INIT_SCRIPT.as_bytes())?;

        // busybox and its applets.
        dirs.ensure(&mut w, "bin")?;
        w.file("bin/busybox", 0o755, &read(Path::new(BUSYBOX))?)?;
        let applets = busybox_applets()?;
        let names: HashSet<&str> = applets
            .iter()
            .filter_map(|p| p.rsplit('/').next())
            .collect();
        let absent: Vec<&str> = REQUIRED_APPLETS
            .iter()
            .copied()
            .filter(|a| !names.contains(a))
            .collect();
        if !absent.is_empty() {
            bail!("{BUSYBOX} lacks the applets {absent:?}: install Debian's busybox-static");
        }

        // qemu-ga and its libraries, at the paths the loader looks for them.
        let mut taken: HashSet<String> = HashSet::new();
        for lib in &self.libraries {
            let rel = relative(lib);
            dirs.ensure_parent(&mut w, &rel)?;
            w.file(&rel, 0o755, &read(lib)?)?;
            taken.insert(rel);
        }
        dirs.ensure(&mut w, "usr/sbin")?;
        w.file("usr/sbin/qemu-ga", 0o755, &read(Path::new(QEMU_GA))?)?;
        taken.insert("usr/sbin/qemu-ga".into());
        taken.insert("bin/busybox".into());

        for applet in &applets {
            if taken.contains(applet.as_str()) {
                continue;
            }
            dirs.ensure_parent(&mut w, applet)?;
            w.symlink(applet, "/bin/busybox")?;
            taken.insert(applet.clone());
        }

        // Kernel modules, flat in /lib/modules, and their load order.
        let modules = resolve_modules(&self.modules_dir)?;
        dirs.ensure(&mut w, "lib/modules")?;
        let mut order = String::new();
        for (name, path) in &modules {
            let data = read_module(path)?;
            w.file(&format!("lib/modules/{name}.ko"), 0o644, &data)?;
            order.push_str(name);
            order.push('\n');
        }
        w.file("etc/tresor-modules", 0o644, order.as_bytes())?;
        w.finish()?.into_inner().map_err(|e| e.into_error())?;
        tracing::debug!(modules = ?modules.iter().map(|m| &m.0).collect::<Vec<_>>(), "test guest modules");

        // gzip is Essential in Debian, so it is always there.
        let status = Command::new("gzip")
            .args(["-n", "-6"])
            .arg(&cpio_path)
            .status()
            .context("running gzip")?;
        if !status.success() {
            bail!("gzip {} failed: {status}", cpio_path.display());
        }
        fs::rename(dir.join("initrd.cpio.gz"), dir.join("initrd.img"))?;
        fs::write(dir.join("modules.txt"), order.as_bytes())?;
        Ok(())
    }
}

/// The directories written to the archive so far; parents come before children.
#[derive(Default)]
struct DirSet(BTreeSet<String>);

impl DirSet {
    fn ensure<W: std::io::Write>(&mut self, w: &mut CpioWriter<W>, dir: &str) -> Result<()> {
        let mut so_far = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(part);
            if self.0.insert(so_far.clone()) {
                w.dir(&so_far, 0o755)?;
            }
        }
        Ok(())
    }

    fn ensure_parent<W: std::io::Write>(
        &mut self,
        w: &mut CpioWriter<W>,
        path: &str,
    ) -> Result<()> {
        match path.rsplit_once('/') {
            Some((parent, _)) => self.ensure(w, parent),
            None => Ok(()),
        }
    }
}

fn relative(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `"<path> <size> <mtime ns>"`, or `"<path> absent"`.
fn file_stamp(path: &Path) -> String {
    match fs::metadata(path) {
        Ok(m) => {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{} {} {}", path.display(), m.len(), mtime)
        }
        Err(_) => format!("{} absent", path.display()),
    }
}

/// The newest `/boot/vmlinuz-*-cloud-amd64` (by numeric version order).
fn find_kernel() -> Result<(PathBuf, String)> {
    let mut found: Vec<(Vec<u64>, String)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/boot") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(version) = name.strip_prefix("vmlinuz-") {
                if version.ends_with(KERNEL_FLAVOUR) {
                    found.push((version_key(version), version.to_string()));
                }
            }
        }
    }
    found.sort();
    let Some((_, version)) = found.pop() else {
        return Err(missing(
            &format!("a kernel /boot/vmlinuz-*{KERNEL_FLAVOUR}"),
            "linux-image-cloud-amd64",
        ));
    };
    Ok((PathBuf::from(format!("/boot/vmlinuz-{version}")), version))
}

/// The numbers in a kernel release, for ordering: `6.1.0-56-…` → `[6, 1, 0, 56]`.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The shared libraries `ldd` lists for `binary`, with the dynamic loader; none
/// for a static binary.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (Debian package libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)",
        // "/lib64/ld-linux-x86-64.so.2 (0x…)", "linux-vdso.so.1 (0x…)".
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next().unwrap_or(""),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if line.contains("not found") {
            bail!("ldd {}: {line}", binary.display());
        }
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    if !libs.iter().any(|l| {
        l.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ld-linux"))
    }) {
        bail!("ldd {} lists no dynamic loader", binary.display());
    }
    Ok(libs)
}

/// Module name of a `modules.dep` path: file name without `.ko[.xz|.zst|.gz]`,
/// with `-` as `_` (as the kernel names modules).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// The modules to load, dependencies first, as `(name, path)`.
fn resolve_modules(modules_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dep_text = fs::read_to_string(modules_dir.join("modules.dep"))
        .with_context(|| format!("reading {}/modules.dep", modules_dir.display()))?;
    let builtin_text = fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    let builtin: HashSet<String> = builtin_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(module_name)
        .collect();
    // name -> (relative path, dependency names)
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in dep_text.lines() {
        let Some((module, rest)) = line.split_once(':') else {
            continue;
        };
        deps.insert(
            module_name(module),
            (
                module.trim().to_string(),
                rest.split_whitespace().map(module_name).collect(),
            ),
        );
    }

    let mut order = Vec::new();
    let mut seen = HashSet::new();
    for (name, required) in REQUIRED_MODULES
        .iter()
        .map(|m| (m, true))
        .chain(OPTIONAL_MODULES.iter().map(|m| (m, false)))
    {
        if builtin.contains(*name) {
            continue;
        }
        if !deps.contains_key(*name) {
            if required {
                bail!(
                    "kernel module {name} is neither built into the kernel nor in {}",
                    modules_dir.display()
                );
            }
            continue;
        }
        visit(name, &deps, &mut seen, &mut order, 0)?;
    }
    Ok(order
        .into_iter()
        .map(|name| {
            let path = modules_dir.join(&deps[&name].0);
            (name, path)
        })
        .collect())
}

/// Depth-first: `name`'s dependencies, then `name`.
fn visit(
    name: &str,
    deps: &HashMap<String, (String, Vec<String>)>,
    seen: &mut HashSet<String>,
    order: &mut Vec<String>,
    depth: usize,
) -> Result<()> {
    if depth > 64 {
        bail!("module dependencies of {name} loop");
    }
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let Some((_, needs)) = deps.get(name) else {
        bail!("module {name} is a dependency but has no line in modules.dep");
    };
    for dep in needs {
        visit(dep, deps, seen, order, depth + 1)?;
    }
    order.push(name.to_string());
    Ok(())
}

/// A module's bytes, decompressed if the distribution compresses modules (busybox
/// `insmod` loads plain ELF objects only).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let (tool, package) = if name.ends_with(".ko") {
        return read(path);
    } else if name.ends_with(".ko.xz") {
        ("xz", "xz-utils")
    } else if name.ends_with(".ko.zst") {
        ("zstd", "zstd")
    } else if name.ends_with(".ko.gz") {
        ("gzip", "gzip")
    } else {
        bail!("unknown kernel module format: {name}");
    };
    let out = Command::new(tool)
        .args(["-d", "-c"])
        .arg(path)
        .output()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => missing(&format!("{tool} (to decompress {name})"), package),
            _ => anyhow!("running {tool}: {e}"),
        })?;
    if !out.status.success() {
        bail!(
            "{tool} -d {name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Every applet path (`usr/bin/yes`, ...) the host's busybox installs.
fn busybox_applets() -> Result<Vec<String>> {
    let out = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {BUSYBOX} --list-full"))?;
    if !out.status.success() {
        bail!("{BUSYBOX} --list-full failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        assert_eq!(
            module_name("kernel/drivers/virtio/virtio_pci.ko"),
            "virtio_pci"
        );
        assert_eq!(
            module_name("kernel/arch/x86/crypto/crc32c-intel.ko.xz"),
            "crc32c_intel"
        );
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko.zst"), "ext4");
        assert!(version_key("6.10.0-1-cloud-amd64") > version_key("6.9.12-3-cloud-amd64"));
        assert!(version_key("6.1.0-56-cloud-amd64") > version_key("6.1.0-9-cloud-amd64"));
    }

    #[test]
    fn modules_in_dependency_order() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("modules.dep"),
            "kernel/a/virtio_pci.ko.xz: kernel/a/virtio_pci_modern_dev.ko.xz kernel/a/virtio.ko.xz kernel/a/virtio_ring.ko.xz\n\
             kernel/a/virtio_pci_modern_dev.ko.xz:\n\
             kernel/a/virtio.ko.xz: kernel/a/virtio_ring.ko.xz\n\
             kernel/a/virtio_ring.ko.xz:\n\
             kernel/a/virtio_blk.ko.xz: kernel/a/virtio.ko.xz kernel/a/virtio_ring.ko.xz\n\
             kernel/a/virtio_console.ko.xz: kernel/a/virtio.ko.xz kernel/a/virtio_ring.ko.xz\n\
             kernel/fs/ext4.ko.xz: kernel/fs/jbd2.ko.xz kernel/fs/mbcache.ko.xz\n\
             kernel/fs/jbd2.ko.xz:\nkernel/fs/mbcache.ko.xz:\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("modules.builtin"),
            "kernel/crypto/crc32c_generic.ko\n",
        )
        .unwrap();
        let names: Vec<String> = resolve_modules(dir.path())
            .unwrap()
            .into_iter()
            .map(|m| m.0)
            .collect();
        let pos = |n: &str| names.iter().position(|m| m == n).unwrap();
        assert_eq!(names.len(), 9);
        assert!(pos("virtio_ring") < pos("virtio"));
        assert!(pos("virtio") < pos("virtio_pci"));
        assert!(pos("virtio_pci_modern_dev") < pos("virtio_pci"));
        assert!(pos("jbd2") < pos("ext4"));
        assert!(!names.contains(&"crc32c_generic".to_string()));
    }
}
