//! The QEMU provider: VMs named by their QMP socket (and guest agent socket), found in
//! a folder of sockets, or defined by their disk images when stopped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tresor_vm::{
    BackupView, CheckCode, CheckResult, Consistency, GuestAgentState, QemuPointConfig, QemuSockets,
    Severity, ViewDisk, ViewRequest, VmConfig, VmDisk, VmError, VmInfo, VmProvider, VmRef, VmState,
};

use crate::fleece::{self, ViewPlan};
use crate::running::{self, COPY_BEFORE_WRITE, RUNNING_FORMATS};
use crate::scratch::{check_scratch, lock_vm};
use crate::{
    ensure_not_in_use, image_info, open_offline_disk, point_bitmap_name, start_point_bitmap,
};

/// Free space below which the scratch folder gets a warning.
const SCRATCH_LOW: u64 = 1 << 30;

/// One VM as the host agent's configuration names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuVmConfig {
    /// The VM's name in Tresor. Default: QEMU's `-name`, else the socket's file stem.
    #[serde(default)]
    pub name: Option<String>,
    /// QEMU's QMP socket (`-qmp unix:PATH,server=on,wait=off`).
    #[serde(default)]
    pub qmp: Option<PathBuf>,
    /// The host end of the guest agent's virtio-serial port.
    #[serde(default)]
    pub guest_agent: Option<PathBuf>,
    /// The VM's disk images, for backups while it is stopped (QMP unreachable).
    #[serde(default)]
    pub disks: Vec<PathBuf>,
    /// Where scratch overlays of running backups go. Default: `/var/tmp`.
    #[serde(default)]
    pub scratch_dir: Option<PathBuf>,
    /// The guest's freeze runs application hooks (qemu-ga's `--fsfreeze-hook`, or
    /// VSS on Windows): frozen points are application-consistent.
    #[serde(default)]
    pub application_hooks: bool,
}

impl QemuVmConfig {
    fn scratch_dir(&self) -> PathBuf {
        self.scratch_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/tmp"))
    }

    /// How the provider names this VM: the configured name, else the QMP socket's (or
    /// first image's) file stem. QEMU's `-name` names it only in [`VmInfo`].
    pub fn vm_ref(&self) -> VmRef {
        VmRef(self.fallback_name())
    }

    fn fallback_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        self.qmp
            .as_ref()
            .or(self.disks.first())
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vm".to_string())
    }
}

/// VMs of one host, reached through QEMU's own interfaces.
#[derive(Debug, Clone, Default)]
pub struct QemuProvider {
    vms: Vec<QemuVmConfig>,
    /// Folders of `NAME.qmp` sockets (with `NAME.qga` guest agent sockets beside).
    socket_dirs: Vec<PathBuf>,
    /// The scratch folder of VMs found in `socket_dirs` (default `/var/tmp`).
    default_scratch_dir: Option<PathBuf>,
}

/// A VM as looked up: its configuration and, when it runs, the QMP connection.
struct Found {
    config: QemuVmConfig,
    name: String,
    qmp: Option<tresor_qmp::Qmp>,
    qmp_error: Option<VmError>,
}

impl QemuProvider {
    pub fn new(vms: Vec<QemuVmConfig>) -> QemuProvider {
        QemuProvider {
            vms,
            socket_dirs: Vec::new(),
            default_scratch_dir: None,
        }
    }

    /// VMs found in socket folders put their overlays in `dir` (the agent's
    /// top-level `scratch_dir`; `[[vm]]`s get it from the agent's configuration).
    pub fn with_default_scratch_dir(mut self, dir: Option<PathBuf>) -> QemuProvider {
        self.default_scratch_dir = dir;
        self
    }

    /// Also offers every `NAME.qmp` socket in `dir` as VM `NAME`, with `NAME.qga` as
    /// its guest agent when that exists.
    pub fn with_socket_dir(mut self, dir: impl Into<PathBuf>) -> QemuProvider {
        self.socket_dirs.push(dir.into());
        self
    }

    fn configs(&self) -> Vec<QemuVmConfig> {
        let mut all = self.vms.clone();
        for dir in &self.socket_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "qmp"))
                .collect();
            found.sort();
            for qmp in found {
                let agent = qmp.with_extension("qga");
                let name = qmp.file_stem().map(|s| s.to_string_lossy().into_owned());
                if all
                    .iter()
                    .any(|c| c.qmp.as_ref() == Some(&qmp) || c.name == name)
                {
                    continue;
                }
                all.push(QemuVmConfig {
                    name,
                    guest_agent: agent.exists().then_some(agent),
                    qmp: Some(qmp),
                    scratch_dir: self.default_scratch_dir.clone(),
                    ..QemuVmConfig::default()
                });
            }
        }
        all
    }

    /// Finds `vm` and connects to its QEMU if it runs.
    async fn find(&self, vm: &VmRef) -> Result<Found, VmError> {
        for config in self.configs() {
            if config.fallback_name() != vm.0 && config.name.as_deref() != Some(vm.0.as_str()) {
                continue;
            }
            let (qmp, qmp_error) = match &config.qmp {
                None => (None, None),
                Some(socket) => match running::connect_qmp(socket).await {
                    Ok(q) => (Some(q), None),
                    Err(e) => (None, Some(e)),
                },
            };
            return Ok(Found {
                name: vm.0.clone(),
                config,
                qmp,
                qmp_error,
            });
        }
        Err(VmError::new(
            CheckCode::VmNotFound,
            format!("no VM named {:?} is configured on this host", vm.0),
        ))
    }

    /// What `found` is; its guest agent is asked only with `probe_agent` (a silent
    /// agent costs a timeout).
    async fn inspect_found(&self, found: &Found, probe_agent: bool) -> Result<VmInfo, VmError> {
        match &found.qmp {
            Some(qmp) => {
                let (qemu_name, uuid, state) = running::identity(qmp).await?;
                let disks = running::disks(qmp).await?;
                let guest_agent = match probe_agent {
                    true => {
                        running::probe_agent(found.config.guest_agent.as_deref())
                            .await
                            .0
                    }
                    false => GuestAgentState::NotConfigured,
                };
                Ok(VmInfo::basic(
                    found
                        .config
                        .name
                        .clone()
                        .or(qemu_name)
                        .unwrap_or_else(|| found.name.clone()),
                    uuid,
                    state,
                    disks,
                    guest_agent,
                ))
            }
            None => {
                if found.config.disks.is_empty() {
                    return Err(found.qmp_error.clone().unwrap_or_else(|| {
                        VmError::new(
                            CheckCode::NoDisks,
                            format!(
                                "VM {} has neither a QMP socket nor disk images configured",
                                found.name
                            ),
                        )
                    }));
                }
                let disks = found
                    .config
                    .disks
                    .iter()
                    .map(|image| offline_disk_info(image))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(VmInfo::basic(
                    found.name.clone(),
                    None,
                    VmState::Stopped,
                    disks,
                    GuestAgentState::NotConfigured,
                ))
            }
        }
    }
}

/// A stopped VM's disk as `qemu-img info` describes it.
fn offline_disk_info(image: &Path) -> Result<VmDisk, VmError> {
    if !image.exists() {
        return Err(VmError::new(
            CheckCode::ImageMissing,
            format!("disk image {} does not exist", image.display()),
        ));
    }
    let info =
        image_info(image).map_err(|e| VmError::new(CheckCode::ImageMissing, e.to_string()))?;
    Ok(VmDisk {
        name: image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| image.display().to_string()),
        node: None,
        image: image.display().to_string(),
        format: info.format,
        virtual_size: info.virtual_size,
        source: None,
        bus: None,
    })
}

/// What is saved with each point so the VM can be recreated (see `new_vm.rs`).
fn vm_config(
    info: &VmInfo,
    config: &QemuVmConfig,
    qemu_version: Option<String>,
    command_line: Option<Vec<String>>,
) -> VmConfig {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
    VmConfig::Qemu(QemuPointConfig {
        name: info.name.clone(),
        uuid: info.uuid.clone(),
        qemu_version,
        disks: info.disks.clone(),
        sockets: QemuSockets {
            qmp: path(&config.qmp),
            guest_agent: path(&config.guest_agent),
        },
        command_line,
    })
}

#[async_trait]
impl VmProvider for QemuProvider {
    async fn list(&self) -> Result<Vec<VmRef>, VmError> {
        Ok(self
            .configs()
            .iter()
            .map(|c| VmRef(c.fallback_name()))
            .collect())
    }

    async fn inspect(&self, vm: &VmRef) -> Result<VmInfo, VmError> {
        let found = self.find(vm).await?;
        self.inspect_found(&found, true).await
    }

    async fn preflight(&self, vm: &VmRef) -> Vec<CheckResult> {
        let found = match self.find(vm).await {
            Ok(f) => f,
            Err(e) => {
                return vec![CheckResult::problem(
                    "VM",
                    Severity::Error,
                    e.code,
                    e.message,
                    "add the VM to the agent's configuration, or put its QMP socket in a watched folder",
                )]
            }
        };
        preflight(self, &found).await
    }

    async fn open_view(
        &self,
        vm: &VmRef,
        req: &ViewRequest,
    ) -> Result<Box<dyn BackupView>, VmError> {
        let found = self.find(vm).await?;
        let Some(qmp) = &found.qmp else {
            let info = self.inspect_found(&found, true).await?;
            if info.disks.is_empty() {
                return Err(VmError::new(
                    CheckCode::NoDisks,
                    format!("VM {} has no disks", info.name),
                ));
            }
            return open_offline(&found.config, info, req)
                .map(|v| Box::new(v) as Box<dyn BackupView>);
        };
        let scratch = found.config.scratch_dir();
        check_scratch(&scratch).map_err(|(code, msg, _)| VmError::new(code, msg))?;
        let lock = lock_vm(&scratch, &vm.0)?;
        let mut warnings = Vec::new();
        if let Some(note) = fleece::clear_leftovers(qmp).await? {
            warnings.push(note);
        }
        let scratch_prefix = fleece::scratch_prefix(&vm.0);
        fleece::remove_stale_scratch(&scratch, &scratch_prefix);
        let info = self.inspect_found(&found, false).await?;
        if info.disks.is_empty() {
            return Err(VmError::new(
                CheckCode::NoDisks,
                format!("VM {} has no disks", info.name),
            ));
        }
        for d in &info.disks {
            if !RUNNING_FORMATS.contains(&d.format.as_str()) {
                return Err(unsupported_format(d));
            }
        }
        let qmp = found.qmp.expect("checked above");
        let (agent_state, agent) = running::probe_agent(found.config.guest_agent.as_deref()).await;
        let agent = match (&agent_state, req.quiesce, info.state) {
            (_, false, _) => None,
            (_, _, VmState::Paused) => {
                warnings.push("the VM is paused: its file systems cannot be frozen; the point is crash-consistent".into());
                None
            }
            (
                GuestAgentState::Responding {
                    can_freeze: true, ..
                },
                _,
                _,
            ) => agent,
            (GuestAgentState::Responding { .. }, _, _) => {
                warnings.push("the guest agent cannot freeze file systems (guest-fsfreeze-* disabled): the point is crash-consistent".into());
                None
            }
            (GuestAgentState::NotConfigured, _, _) => {
                warnings.push(
                    "no guest agent is configured for this VM: the point is crash-consistent"
                        .into(),
                );
                None
            }
            (GuestAgentState::NotResponding { reason }, _, _) => {
                warnings.push(format!(
                    "the guest agent does not answer ({reason}): the point is crash-consistent"
                ));
                None
            }
        };
        let config = vm_config(
            &info,
            &found.config,
            Some(qmp.version().to_string()),
            running::command_line(&qmp),
        );
        let view = fleece::open(
            qmp,
            ViewPlan {
                vm_name: &info.name,
                disks: info.disks.clone(),
                scratch_dir: &scratch,
                scratch_prefix,
                point: &req.point,
                parent: req.parent.as_deref(),
                agent,
                application_hooks: found.config.application_hooks,
                vm_config: config,
                warnings,
            },
        )
        .await?;
        Ok(Box::new(Locked { view, _lock: lock }))
    }
}

fn unsupported_format(d: &VmDisk) -> VmError {
    VmError::new(
        CheckCode::UnsupportedDiskFormat,
        format!(
            "disk {} is a {} image; Tresor backs up qcow2 and raw disks. Convert it with `qemu-img convert -O qcow2`",
            d.name, d.format
        ),
    )
}

/// A view together with the lock that keeps a second backup of the VM out.
struct Locked<V> {
    view: V,
    _lock: std::fs::File,
}

#[async_trait]
impl<V: BackupView> BackupView for Locked<V> {
    fn disks(&self) -> &[ViewDisk] {
        self.view.disks()
    }
    fn consistency(&self) -> Consistency {
        self.view.consistency()
    }
    fn warnings(&self) -> Vec<String> {
        self.view.warnings()
    }
    fn frozen_for(&self) -> Option<Duration> {
        self.view.frozen_for()
    }
    fn vm_config(&self) -> VmConfig {
        self.view.vm_config()
    }
    async fn finish(self: Box<Self>, committed: bool) -> Result<(), VmError> {
        let Locked { view, _lock } = *self;
        Box::new(view).finish(committed).await
    }
}

/// A stopped VM: its images through qemu-nbd (or directly when raw), with persistent
/// bitmaps for qcow2.
fn open_offline(
    config: &QemuVmConfig,
    info: VmInfo,
    req: &ViewRequest,
) -> Result<OfflineView, VmError> {
    let mut disks = Vec::new();
    let mut images = Vec::new();
    let mut warnings =
        vec!["the VM is stopped: the point is crash-consistent (as after a power cut)".to_string()];
    for (disk, image) in info.disks.iter().zip(&config.disks) {
        let bitmaps = disk.format == "qcow2";
        if !bitmaps {
            warnings.push(format!(
                "disk {} is {}: without persistent dirty bitmaps it is read whole at every backup (deduplicated)",
                disk.name, disk.format
            ));
        }
        let parent_bitmap = req
            .parent
            .as_deref()
            .filter(|_| bitmaps)
            .map(point_bitmap_name);
        let opened =
            open_offline_disk(image, bitmaps, parent_bitmap.as_deref()).map_err(|e| match e {
                crate::Error::ImageLocked { .. } => {
                    VmError::new(CheckCode::ImageLocked, e.to_string())
                }
                e => VmError::new(CheckCode::ImageMissing, e.to_string()),
            })?;
        disks.push(ViewDisk {
            name: disk.name.clone(),
            source: opened.source,
            dirty: opened.dirty,
            full_read_reason: opened.full_read_reason,
        });
        images.push((image.clone(), bitmaps));
    }
    Ok(OfflineView {
        vm_config: vm_config(&info, config, None, None),
        disks,
        images,
        point: req.point.clone(),
        warnings,
    })
}

/// The images of a stopped VM, open for reading.
pub struct OfflineView {
    disks: Vec<ViewDisk>,
    images: Vec<(PathBuf, bool)>,
    point: String,
    warnings: Vec<String>,
    vm_config: VmConfig,
}

#[async_trait]
impl BackupView for OfflineView {
    fn disks(&self) -> &[ViewDisk] {
        &self.disks
    }
    fn consistency(&self) -> Consistency {
        Consistency::CrashConsistent
    }
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
    fn frozen_for(&self) -> Option<Duration> {
        None
    }
    fn vm_config(&self) -> VmConfig {
        self.vm_config.clone()
    }
    async fn finish(mut self: Box<Self>, committed: bool) -> Result<(), VmError> {
        // qemu-nbd lets go of the images first; only then can their bitmaps change.
        self.disks.clear();
        if !committed {
            return Ok(());
        }
        let mut first = None;
        for (image, bitmaps) in &self.images {
            if !bitmaps {
                continue;
            }
            if let Err(e) = start_point_bitmap(image, &self.point) {
                let code = match e {
                    crate::Error::ImageLocked { .. } => CheckCode::ImageLocked,
                    _ => CheckCode::BackupFailed,
                };
                first.get_or_insert(VmError::new(
                    code,
                    format!(
                        "could not start the dirty bitmap of {} for this point ({e}); the next backup reads the whole image",
                        image.display()
                    ),
                ));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The checks behind [`VmProvider::preflight`].
async fn preflight(_provider: &QemuProvider, found: &Found) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let config = &found.config;
    let Some(qmp) = &found.qmp else {
        if let Some(e) = &found.qmp_error {
            let severity = if config.disks.is_empty() {
                Severity::Error
            } else {
                Severity::Warning
            };
            out.push(CheckResult::problem(
                "QMP socket",
                severity,
                e.code,
                e.message.clone(),
                if config.disks.is_empty() {
                    "start the VM, or list its disk images in its definition so it can be backed up while stopped"
                } else {
                    "the VM is backed up offline from its images while QMP is unreachable; start it for application-consistent backups"
                },
            ));
        }
        if config.disks.is_empty() {
            if found.qmp_error.is_none() {
                out.push(CheckResult::problem(
                    "VM",
                    Severity::Error,
                    CheckCode::NoDisks,
                    "neither a QMP socket nor disk images are configured",
                    "give the VM's QMP socket, or its disk images",
                ));
            }
            return out;
        }
        for image in &config.disks {
            out.push(offline_disk_check(image));
        }
        return out;
    };
    out.push(CheckResult::ok(
        "QMP socket",
        format!("QEMU {} answers", qmp.version()),
    ));
    match running::disks(qmp).await {
        Err(e) => out.push(CheckResult::problem(
            "disks",
            Severity::Error,
            e.code,
            e.message,
            "check QEMU",
        )),
        Ok(disks) if disks.is_empty() => out.push(CheckResult::problem(
            "disks",
            Severity::Error,
            CheckCode::NoDisks,
            "the VM has no disk",
            "attach a disk to the VM",
        )),
        Ok(disks) => {
            for d in &disks {
                let subject = format!("disk {}", d.name);
                if d.format == COPY_BEFORE_WRITE {
                    out.push(CheckResult::problem(
                        subject,
                        Severity::Warning,
                        CheckCode::BackupInProgress,
                        "a backup of this VM is running, or an interrupted one left its point-in-time view in QEMU",
                        "wait for the running backup; a view left behind is cleared by the next backup",
                    ));
                } else if !RUNNING_FORMATS.contains(&d.format.as_str()) {
                    let e = unsupported_format(d);
                    out.push(CheckResult::problem(
                        subject,
                        Severity::Error,
                        e.code,
                        e.message,
                        "convert the image to qcow2",
                    ));
                } else if d.format != "qcow2" {
                    out.push(CheckResult::problem(
                        subject,
                        Severity::Warning,
                        CheckCode::BitmapNotPersistent,
                        format!("{} is a {} image: changes are tracked only while QEMU runs; after a restart the disk is read whole once", d.image, d.format),
                        "convert the image to qcow2 for incremental backups across restarts",
                    ));
                } else {
                    out.push(CheckResult::ok(
                        subject,
                        format!("{} (qcow2, {} bytes)", d.image, d.virtual_size),
                    ));
                }
            }
        }
    }
    let (agent, _) = running::probe_agent(config.guest_agent.as_deref()).await;
    out.push(match agent {
        GuestAgentState::NotConfigured => CheckResult::problem(
            "guest agent",
            Severity::Warning,
            CheckCode::GuestAgentNotConfigured,
            "no guest agent socket is configured: recovery points are crash-consistent",
            "add a virtio-serial port named org.qemu.guest_agent.0 to the VM, install qemu-guest-agent in the guest, and configure the socket",
        ),
        GuestAgentState::NotResponding { reason } => CheckResult::problem(
            "guest agent",
            Severity::Warning,
            CheckCode::GuestAgentNotResponding,
            format!("the guest agent does not answer: {reason}"),
            "install and start qemu-guest-agent in the guest (systemctl enable --now qemu-guest-agent)",
        ),
        GuestAgentState::Responding { can_freeze: false, version } => CheckResult::problem(
            "guest agent",
            Severity::Warning,
            CheckCode::GuestAgentCannotFreeze,
            format!("qemu-ga {version} answers but cannot freeze file systems"),
            "enable guest-fsfreeze-freeze and guest-fsfreeze-thaw in the agent's configuration (they are blocked by --block-rpcs or an allow list)",
        ),
        GuestAgentState::Responding { version, .. } => {
            CheckResult::ok("guest agent", format!("qemu-ga {version} answers and can freeze file systems"))
        }
    });
    let scratch = config.scratch_dir();
    out.push(match check_scratch(&scratch) {
        Err((code, message, fix)) => {
            CheckResult::problem("scratch folder", Severity::Error, code, message, fix)
        }
        Ok(free) if free < SCRATCH_LOW => CheckResult::problem(
            "scratch folder",
            Severity::Warning,
            CheckCode::ScratchSpaceMissing,
            format!(
                "{} has only {} MiB free; writes the guest makes during a backup are kept there",
                scratch.display(),
                free >> 20
            ),
            "free space there or choose another scratch folder",
        ),
        Ok(free) => CheckResult::ok(
            "scratch folder",
            format!("{} ({} GiB free)", scratch.display(), free >> 30),
        ),
    });
    out
}

fn offline_disk_check(image: &Path) -> CheckResult {
    let subject = format!("disk {}", image.display());
    match offline_disk_info(image) {
        Err(e) => CheckResult::problem(
            subject,
            Severity::Error,
            e.code,
            e.message,
            "fix the path in the VM's definition",
        ),
        Ok(d) if d.format != "qcow2" && d.format != "raw" => {
            let e = unsupported_format(&d);
            CheckResult::problem(
                subject,
                Severity::Error,
                e.code,
                e.message,
                "convert the image to qcow2",
            )
        }
        Ok(d) => match std::fs::File::open(image) {
            Err(e) => CheckResult::problem(
                subject,
                Severity::Error,
                CheckCode::ImageMissing,
                format!("cannot read {}: {e}", image.display()),
                "give the agent read access to the image",
            ),
            Ok(_)
                if matches!(
                    ensure_not_in_use(image),
                    Err(crate::Error::ImageLocked { .. })
                ) =>
            {
                CheckResult::problem(
                    subject,
                    Severity::Error,
                    CheckCode::ImageLocked,
                    format!("{} is in use by a running QEMU", image.display()),
                    "configure the VM's QMP socket so it is backed up while running, or stop it",
                )
            }
            Ok(_) => CheckResult::ok(
                subject,
                format!("{} image, {} bytes", d.format, d.virtual_size),
            ),
        },
    }
}
