//! A UEFI domain with an emulated TPM, against a real libvirtd (started here as root
//! if none runs), OVMF and swtpm: its variable store and TPM state are saved with a
//! backup of the shut-off domain and come back with its restores. A new domain gets
//! them before its first start (not libvirt's fresh store from the template, not a
//! new TPM from `swtpm_setup`) and starts with them; replacing the shut-off
//! original's disks puts its own store and TPM state back as they were at the point
//! (owners kept, a TPM file the point did not have removed). Needs QEMU, libvirt,
//! OVMF and swtpm (scripts/install-deps.sh).

mod common;
#[path = "../../tresor-libvirt/tests/common/mod.rs"]
mod libvirt_common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{repo, MIB};
use libvirt_common::{Libvirtd, TestDomains};
use tresor_agent::confine::RestoreRoots;
use tresor_agent::libvirt_restore::{
    replace_domain_disks, restore_new_domain, DiskTarget, NewDomainRequest,
};
use tresor_agent::{backup_vm, VmBackupOptions};
use tresor_libvirt::firmware_state::SWTPM_STATE_ROOT;
use tresor_libvirt::{LibvirtHost, LibvirtProvider};
use tresor_vm::VmRef;
use virt::domain::Domain;

const UUID: &str = "5e0c9f4e-0000-4000-8000-0000000000f1";
const CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const PERMALL: &str = "tpm2/tpm2-00.permall";

fn uefi_tpm_domain(name: &str, disk: &Path) -> String {
    format!(
        "<domain type='qemu'>
           <name>{name}</name><uuid>{UUID}</uuid>
           <memory unit='MiB'>128</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='q35'>hvm</type>
             <loader readonly='yes' type='pflash'>{CODE}</loader>
             <nvram template='{VARS}'/>
           </os>
           <features><acpi/></features>
           <devices>
             <emulator>/usr/bin/qemu-system-x86_64</emulator>
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
               <source file='{}'/><target dev='vda' bus='virtio'/></disk>
             <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
             <video><model type='none'/></video><memballoon model='none'/>
           </devices>
         </domain>",
        disk.display()
    )
}

/// The variable store libvirt gave `domain`.
fn nvram_of(domain: &Domain) -> PathBuf {
    let xml = domain
        .get_xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
        .unwrap();
    let start = xml.find("<nvram").expect("an nvram element");
    let text = &xml[start..];
    let open = text.find('>').unwrap() + 1;
    let close = text.find("</nvram>").unwrap();
    PathBuf::from(&text[open..close])
}

fn tpm_dir(uuid: &str) -> PathBuf {
    Path::new(SWTPM_STATE_ROOT).join(uuid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uefi_variables_and_tpm_state_come_back_with_restores() -> anyhow::Result<()> {
    for needed in [CODE, VARS, "/usr/bin/swtpm"] {
        assert!(
            Path::new(needed).exists(),
            "{needed} is missing: scripts/install-deps.sh installs ovmf and swtpm"
        );
    }
    let _daemon = Libvirtd::ensure()?;
    let t = TestDomains::new("firmware")?;
    let disk = t.image("data.qcow2", "qcow2", 16 * MIB)?;
    let domain = t.define(&uefi_tpm_domain(&t.name("vm"), &disk))?;
    // A first start makes the domain's variable store (from the template) and its
    // TPM (swtpm_setup); the firmware needs not get far.
    domain.create()?;
    std::thread::sleep(Duration::from_secs(2));
    domain.destroy()?;
    let nvram = nvram_of(&domain);
    // Bytes no template or fresh store has, in the store's last block.
    let mut vars = std::fs::read(&nvram)?;
    let mark = vars.len() - 16;
    vars[mark..].copy_from_slice(b"tresor-test-mark");
    std::fs::write(&nvram, &vars)?;
    let permall = std::fs::read(tpm_dir(UUID).join(PERMALL))?;
    let tpm_owner = std::fs::metadata(tpm_dir(UUID).join(PERMALL))?.uid();

    let work = tempfile::tempdir()?;
    let repo = repo(work.path());
    let provider = LibvirtProvider::new("qemu:///system");
    let point = backup_vm(
        &repo,
        &provider,
        &VmRef(UUID.into()),
        VmBackupOptions::default(),
    )
    .await?
    .manifest;
    let config = point.vm_config.as_ref().unwrap();
    assert_eq!(config["nvram"]["size"], vars.len() as u64, "{config}");
    assert!(config["tpm_state"]["files"]
        .as_array()
        .is_some_and(|f| !f.is_empty()));

    // A new domain: the point's store and TPM state are its own before it starts.
    let root = t.images.join("restores");
    std::fs::create_dir(&root)?;
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
    let roots = RestoreRoots::new(std::slice::from_ref(&root), None);
    let host = LibvirtHost::new("qemu:///system");
    let request = NewDomainRequest {
        name: Some(t.name("copy")),
        target: DiskTarget::Folder(roots.create(&root.join("copy"))?),
        format: None,
        start: false,
        boot_dirs: Vec::new(),
    };
    let out = tokio::task::block_in_place(|| {
        restore_new_domain(&repo, &point, &host, &roots, &request, None)
    })?;
    let made = out.domain.clone().expect("a domain was defined");
    assert_ne!(made.uuid, UUID);
    let copy = Domain::lookup_by_uuid_string(&t.conn, &made.uuid)?;
    let copy_nvram = nvram_of(&copy);
    assert_ne!(copy_nvram, nvram);
    assert_eq!(std::fs::read(&copy_nvram)?, vars, "{:?}", out.notes);
    assert_eq!(
        std::fs::read(tpm_dir(&made.uuid).join(PERMALL))?,
        permall,
        "{:?}",
        out.notes
    );
    assert!(
        out.notes.iter().any(|n| n.contains("TPM state")),
        "{:?}",
        out.notes
    );
    // libvirt starts it with them: QEMU reads the store, swtpm the state.
    host.start_domain(&made.uuid)?;
    assert!(copy.is_active()?);
    copy.destroy()?;

    // The original's disks replaced while shut off: its store and TPM are the
    // point's again, their owners kept, and a TPM file the point lacked is gone.
    let mut changed = vars.clone();
    changed[mark..].copy_from_slice(b"changed-later!!!");
    std::fs::write(&nvram, &changed)?;
    std::fs::write(tpm_dir(UUID).join(PERMALL), b"another TPM")?;
    let stray = tpm_dir(UUID).join("tpm2/tpm2-00.volatilestate");
    std::fs::write(&stray, b"volatile state of another TPM")?;
    let out =
        tokio::task::block_in_place(|| replace_domain_disks(&repo, &point, &host, UUID, None))?;
    assert_eq!(std::fs::read(&nvram)?, vars, "{:?}", out.notes);
    assert_eq!(std::fs::read(tpm_dir(UUID).join(PERMALL))?, permall);
    assert_eq!(
        std::fs::metadata(tpm_dir(UUID).join(PERMALL))?.uid(),
        tpm_owner
    );
    assert!(!stray.exists(), "{:?}", out.notes);
    domain.create()?;
    assert!(domain.is_active()?);
    domain.destroy()?;
    Ok(())
}
