//! Restores of a libvirt domain's recovery point as libvirt domains, against a real
//! libvirtd (started here as root if none runs) and the TCG test guest running
//! qemu-guest-agent, through the functions the agent's restore job calls.
//!
//! The running domain is backed up; the point is restored as a new domain (its own
//! name, a UUID and MACs libvirt chose, started) whose guest agent answers and whose
//! disk holds the point's bytes; the name taken is refused before anything is
//! written; replacing the original's disks while it runs is refused with
//! `VmNotShutOff`; shut off, its disks are replaced (identity kept, Tresor's
//! checkpoints forgotten) and its next backup reads every disk whole; the point's
//! disks restore into a folder as for a QEMU VM. Needs QEMU, libvirt and the test
//! guest's packages (scripts/install-deps.sh).

mod common;
#[path = "../../tresor-libvirt/tests/common/mod.rs"]
mod libvirt_common;
mod libvirt_guest;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{assert_same, backup_of, image_bytes, repo, MIB};
use libvirt_common::{Libvirtd, TestDomains};
use libvirt_guest::{agent, boot, domain_xml, image, tresor_checkpoints, write};
use tresor_agent::confine::RestoreRoots;
use tresor_agent::libvirt_restore::{
    replace_domain_disks, restore_new_domain, DiskTarget, NewDomainRequest,
};
use tresor_agent::restore::{restore_point, RestoreMode};
use tresor_libvirt::{LibvirtHost, LibvirtProvider};
use tresor_testguest::GuestImage;
use virt::domain::Domain;

const UUID: &str = "5e0c9f4e-0000-4000-8000-0000000000c1";
const MAC: &str = "52:54:00:7e:50:01";
const DATA_SIZE: u64 = 16 * MIB;

/// The kernel and initrd in libvirt's boot folder (the only one a restored domain
/// boots a kernel from), removed on drop.
struct BootDir(PathBuf);

impl Drop for BootDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wait_for_agent(domain: &Domain) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while agent(domain, "guest-ping", serde_json::json!({})).is_err() {
        assert!(
            Instant::now() < deadline,
            "the restored domain's guest agent did not answer within 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_domain_that_boots_and_replaced_disks_of_the_shut_off_original() -> anyhow::Result<()> {
    let _daemon = Libvirtd::ensure()?;
    // Waiting for a guest agent fails many times; libvirt would print each.
    virt::error::clear_error_callback();
    let t = TestDomains::new("restore")?;
    let guest = GuestImage::build()?;
    let boot_dir = BootDir(PathBuf::from(tresor_libvirt::restore_xml::BOOT_DIR).join(&t.prefix));
    std::fs::create_dir_all(&boot_dir.0)?;
    std::fs::copy(&guest.kernel, boot_dir.0.join("vmlinuz"))?;
    std::fs::copy(&guest.initrd, boot_dir.0.join("initrd.img"))?;
    image(&t.images, "data.qcow2", false, DATA_SIZE);
    image(&t.images, "fs.qcow2", true, 16 * MIB);
    let nic =
        format!("<interface type='user'><mac address='{MAC}'/><model type='virtio'/></interface>");
    let domain = t.define(&domain_xml(
        &t.name("vm"),
        UUID,
        &t.images,
        &boot_dir.0,
        &nic,
    ))?;
    boot(&domain)?;
    let work = tempfile::tempdir()?;
    let repo = repo(work.path());
    let provider =
        LibvirtProvider::new("qemu:///system").with_scratch_dir(t.images.join("scratch"));
    let mut expected = vec![0u8; DATA_SIZE as usize];
    write(&domain, &mut expected, 0, MIB, 1);
    write(&domain, &mut expected, 9 * MIB, MIB / 2, 2);
    let point = backup_of(&repo, &provider, UUID).await.manifest;
    assert_eq!(point.disks.len(), 2);

    // Restore roots as an agent has them; libvirt's QEMU must pass through.
    let root = t.images.join("restores");
    std::fs::create_dir(&root)?;
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
    let roots = RestoreRoots::new(std::slice::from_ref(&root), None);
    let host = LibvirtHost::new("qemu:///system");
    let new_request = |name: String, folder: PathBuf| NewDomainRequest {
        name: Some(name),
        target: DiskTarget::Folder(folder),
        format: None,
        start: true,
        boot_dirs: vec![boot_dir.0.clone()],
    };

    // A new domain, started: its own identity, the point's bytes, an agent answering.
    let folder = roots.create(&root.join("copy"))?;
    let out = tokio::task::block_in_place(|| {
        restore_new_domain(
            &repo,
            &point,
            &host,
            &roots,
            &new_request(t.name("copy"), folder.clone()),
            None,
        )
    })
    .unwrap();
    let made = out.domain.clone().expect("a domain was defined");
    assert_eq!(made.name, t.name("copy"));
    assert_ne!(made.uuid, UUID);
    assert!(made.started, "{:?}", out.notes);
    assert_eq!(made.macs.len(), 1, "{made:?}");
    assert_ne!(made.macs[0], MAC);
    let copy = Domain::lookup_by_uuid_string(&t.conn, &made.uuid)?;
    let copy_xml = copy.get_xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)?;
    assert!(!copy_xml.contains(UUID) && !copy_xml.contains(MAC));
    assert!(!copy_xml.contains(&t.images.join("data.qcow2").display().to_string()));
    assert_eq!(out.disks.len(), 2);
    for d in &out.disks {
        assert!(d.path.starts_with(&folder), "{}", d.path.display());
        assert!(
            copy_xml.contains(&d.path.display().to_string()),
            "{copy_xml}"
        );
    }
    assert!(folder.join("domain.xml").exists());
    wait_for_agent(&copy);
    let vda = out.disks.iter().find(|d| d.name == "vda").unwrap();
    assert_same(
        &image_bytes(&vda.path, &work.path().join("copy.raw")),
        &expected,
    );
    copy.destroy()?;

    // The name taken: refused before anything is written.
    let again = root.join("again");
    let e = tokio::task::block_in_place(|| {
        restore_new_domain(
            &repo,
            &point,
            &host,
            &roots,
            &new_request(t.name("copy"), again.clone()),
            None,
        )
    })
    .unwrap_err();
    assert_eq!(e.code(), "VmNameExists", "{e}");
    assert!(!again.exists());

    // Replacing the running original's disks: refused, naming its state.
    let e = tokio::task::block_in_place(|| replace_domain_disks(&repo, &point, &host, UUID, None))
        .unwrap_err();
    assert_eq!(e.code(), "VmNotShutOff", "{e}");
    assert!(e.to_string().contains("running"), "{e}");

    // Shut off: the disks are the point's again, its identity kept, and Tresor's
    // checkpoints forgotten.
    let mut changed = expected.clone();
    write(&domain, &mut changed, 2 * MIB, MIB, 3);
    domain.destroy()?;
    assert!(!tresor_checkpoints(&domain).is_empty());
    let out =
        tokio::task::block_in_place(|| replace_domain_disks(&repo, &point, &host, UUID, None))
            .unwrap();
    assert_eq!(out.disks.len(), 2);
    assert_same(
        &image_bytes(&t.images.join("data.qcow2"), &work.path().join("orig.raw")),
        &expected,
    );
    assert_eq!(tresor_checkpoints(&domain), Vec::<String>::new());
    let same = Domain::lookup_by_uuid_string(&t.conn, UUID)?;
    assert_eq!(same.get_name()?, t.name("vm"));
    assert!(same.get_xml_desc(0)?.contains(MAC));

    // It boots from its replaced disks, and its next backup reads them whole.
    boot(&domain)?;
    let next = backup_of(&repo, &provider, UUID).await;
    assert!(next.full_reads >= 2, "{:?}", next.warnings);
    assert_same(
        &common::restored(&repo, &next.manifest, "vda", work.path()),
        &expected,
    );

    // The disks only, into a folder, as for a QEMU VM.
    let disks_folder = roots.create(&root.join("disks"))?;
    let out = tokio::task::block_in_place(|| {
        restore_point(
            &repo,
            &point,
            &RestoreMode::Disks {
                folder: disks_folder.clone(),
                format: None,
            },
            None,
        )
    })?;
    let vda = out.disks.iter().find(|d| d.name == "vda").unwrap();
    assert_eq!(vda.format, "qcow2");
    assert_same(
        &image_bytes(&vda.path, &work.path().join("disks.raw")),
        &expected,
    );
    domain.destroy()?;
    Ok(())
}
