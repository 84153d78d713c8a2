//! `tresor vm ...` and `tresor repo backup --vm-qmp | --libvirt-domain`: VMs on this
//! host through the QEMU provider (a QMP socket, or disk images) or the libvirt one
//! (a domain of a libvirt connection).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tresor_agent::{backup_vm, VmBackupOptions};
use tresor_engine::Repository;
use tresor_libvirt::LibvirtProvider;
use tresor_qemu::{QemuProvider, QemuVmConfig};
use tresor_vm::{GuestAgentState, Severity, VmProvider, VmRef};

use crate::cli::{VmArgs, VmCommand};
use crate::commands::repo::human;
use crate::commands::runtime;
use crate::progress_bar::with_progress;

/// A provider that knows the VM the command line names, and the VM's reference in it.
async fn provider(vm: &VmArgs, disks: Vec<PathBuf>) -> Result<(Box<dyn VmProvider>, VmRef)> {
    if let Some(domain) = &vm.libvirt_domain {
        let mut p = LibvirtProvider::new(
            vm.libvirt_uri
                .clone()
                .unwrap_or_else(|| tresor_libvirt::SYSTEM_URI.to_string()),
        );
        if let Some(dir) = &vm.scratch_dir {
            p = p.with_scratch_dir(dir);
        }
        let uuid = libvirt_uuid(&p, domain).await?;
        return Ok((Box::new(p), VmRef(uuid)));
    }
    let config = QemuVmConfig {
        name: None,
        qmp: vm.qmp.clone(),
        guest_agent: vm.guest_agent.clone(),
        disks,
        scratch_dir: vm.scratch_dir.clone(),
        application_hooks: vm.application_hooks,
    };
    let vm_ref = config.vm_ref();
    Ok((Box::new(QemuProvider::new(vec![config])), vm_ref))
}

/// The UUID of the domain named `name_or_uuid` (its name or its UUID, as virsh takes them).
async fn libvirt_uuid(p: &LibvirtProvider, name_or_uuid: &str) -> Result<String> {
    let found = p
        .discover()
        .await
        .with_context(|| format!("looking for the libvirt domain {name_or_uuid:?}"))?;
    let hit = found
        .domains
        .iter()
        .find(|d| d.info.name == name_or_uuid || d.vm.eq_ignore_ascii_case(name_or_uuid));
    match hit {
        Some(d) => Ok(d.vm.clone()),
        None => {
            let names: Vec<&str> = found.domains.iter().map(|d| d.info.name.as_str()).collect();
            bail!(
                "libvirt at {} has no domain named {name_or_uuid:?} (by name or UUID); it has: {}",
                p.uri(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        }
    }
}

const NAME_THE_VM: &str = "name the VM: --vm-qmp SOCKET for a running VM, --libvirt-domain NAME for a libvirt domain, or --disk IMAGE for each disk of a stopped one";

pub fn run(cmd: VmCommand) -> Result<()> {
    let rt = runtime()?;
    match cmd {
        VmCommand::Inspect { vm, disks, json } => rt.block_on(async {
            if vm.qmp.is_none() && vm.libvirt_domain.is_none() && disks.is_empty() {
                bail!(NAME_THE_VM);
            }
            let (p, vm_ref) = provider(&vm, disks).await?;
            let info = p.inspect(&vm_ref).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            println!("name:        {}", info.name);
            println!("uuid:        {}", info.uuid.as_deref().unwrap_or("-"));
            println!("state:       {}", info.state);
            println!(
                "guest agent: {}",
                match &info.guest_agent {
                    GuestAgentState::NotConfigured => "not configured".to_string(),
                    GuestAgentState::NotResponding { reason } =>
                        format!("not responding ({reason})"),
                    GuestAgentState::Responding {
                        version,
                        can_freeze,
                    } => format!(
                        "qemu-ga {version}{}",
                        if *can_freeze {
                            ", can freeze"
                        } else {
                            ", cannot freeze"
                        }
                    ),
                }
            );
            for d in &info.disks {
                println!(
                    "disk {:<8} {} ({}, {})",
                    d.name,
                    d.image,
                    d.format,
                    human(d.virtual_size)
                );
            }
            Ok(())
        }),
        VmCommand::Preflight { vm, disks, json } => rt.block_on(async {
            if vm.qmp.is_none() && vm.libvirt_domain.is_none() && disks.is_empty() {
                bail!(NAME_THE_VM);
            }
            let (p, vm_ref) = provider(&vm, disks).await?;
            let checks = p.preflight(&vm_ref).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&checks)?);
            } else {
                for c in &checks {
                    let label = match c.severity {
                        Severity::Ok => "ok",
                        Severity::Warning => "WARNING",
                        Severity::Error => "ERROR",
                    };
                    match c.code {
                        Some(code) => println!("{label:<8} {}: {} [{code}]", c.subject, c.message),
                        None => println!("{label:<8} {}: {}", c.subject, c.message),
                    }
                    if let Some(fix) = &c.fix {
                        println!("         fix: {fix}");
                    }
                }
            }
            let errors = checks
                .iter()
                .filter(|c| c.severity == Severity::Error)
                .count();
            if errors > 0 {
                bail!(
                    "{errors} checks failed: backups of this VM will not work until they are fixed"
                );
            }
            Ok(())
        }),
    }
}

/// `tresor repo backup DIR --vm-qmp SOCKET | --libvirt-domain NAME ...`: one backup
/// of a VM: incremental after the newest point of its name where change tracking
/// allows.
pub fn backup(
    repo: &Repository,
    vm: &VmArgs,
    name: Option<String>,
    full: bool,
    no_quiesce: bool,
    threads: usize,
) -> Result<()> {
    let rt = runtime()?;
    let (p, vm_ref) = rt.block_on(provider(vm, Vec::new()))?;
    // Without --name, the VM's own name (QEMU's -name, else the socket's file name;
    // the libvirt domain's name) names its points.
    let outcome = with_progress("backup", |progress| {
        rt.block_on(backup_vm(
            repo,
            p.as_ref(),
            &vm_ref,
            VmBackupOptions {
                name,
                parent: if full {
                    tresor_agent::Parent::None
                } else {
                    tresor_agent::Parent::Latest
                },
                no_quiesce,
                progress: Some(progress),
                workers: threads,
                ..VmBackupOptions::default()
            },
        ))
    })
    .map_err(|e| anyhow::anyhow!("{e} [{}]", e.code))?;
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    let m = &outcome.manifest;
    let s = &m.stats;
    println!(
        "{} point of {}{}: read {} in {:.2} s; stored {} new{}",
        m.consistency,
        m.name,
        match &m.parent {
            Some(p) => format!(" (incremental after {p})"),
            None => " (full)".to_string(),
        },
        human(s.bytes_read),
        s.duration_ms as f64 / 1000.0,
        human(s.bytes_added),
        match outcome.frozen_for {
            Some(d) => format!("; file systems frozen for {} ms", d.as_millis()),
            None => String::new(),
        }
    );
    println!("{}", m.id);
    Ok(())
}
