//! A libvirt domain's point restored as a new domain into a real libvirt storage
//! pool (type dir, defined and started here), against a real libvirtd (started as
//! root if none runs): the disks become new volumes `<new name>-<disk>.qcow2` in the
//! pool's folder, the pool lists them, the new domain's definition uses them, and
//! their bytes are the point's. A pool outside the restore roots and a pool libvirt
//! does not know are refused before anything is written. The domain is shut off (its
//! images read directly), so no guest boots. Needs QEMU and libvirt
//! (scripts/install-deps.sh).

mod common;
#[path = "../../tresor-libvirt/tests/common/mod.rs"]
mod libvirt_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_same, image_bytes, repo, MIB};
use libvirt_common::{Libvirtd, TestDomains};
use rand::{RngCore, SeedableRng};
use tresor_agent::confine::RestoreRoots;
use tresor_agent::libvirt_restore::{restore_new_domain, DiskTarget, NewDomainRequest};
use tresor_agent::{backup_vm, VmBackupOptions};
use tresor_libvirt::{LibvirtHost, LibvirtProvider};
use tresor_vm::VmRef;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::storage_pool::StoragePool;

const UUID: &str = "5e0c9f4e-0000-4000-8000-0000000000d1";
const SIZE: u64 = 8 * MIB;

/// A started storage pool of type dir, destroyed and undefined on drop.
struct Pool(StoragePool);

impl Pool {
    fn new(conn: &Connect, name: &str, folder: &Path) -> anyhow::Result<Pool> {
        std::fs::create_dir_all(folder)?;
        let xml = format!(
            "<pool type='dir'><name>{name}</name><target><path>{}</path></target></pool>",
            folder.display()
        );
        let pool = StoragePool::define_xml(conn, &xml, 0)?;
        pool.create(0)?;
        Ok(Pool(pool))
    }

    fn volumes(&self) -> Vec<String> {
        self.0.refresh(0).ok();
        let mut v = self.0.list_volumes().unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.0.destroy();
        let _ = self.0.undefine();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_domain_restored_into_a_storage_pool() -> anyhow::Result<()> {
    let _daemon = Libvirtd::ensure()?;
    let t = TestDomains::new("pool")?;
    // vda holds known bytes (made raw, converted to qcow2).
    let mut expected = vec![0u8; SIZE as usize];
    rand::rngs::StdRng::seed_from_u64(21).fill_bytes(&mut expected[..3 * MIB as usize]);
    let raw = t.images.join("vda.raw");
    std::fs::write(&raw, &expected)?;
    let vda = t.images.join("vda.qcow2");
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(&raw)
        .arg(&vda)
        .status()?;
    assert!(st.success());
    let domain_xml = format!(
        "<domain type='qemu'><name>{}</name><uuid>{UUID}</uuid>
           <memory unit='MiB'>128</memory><vcpu>1</vcpu>
           <os><type arch='x86_64' machine='q35'>hvm</type></os>
           <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
               <source file='{}'/><target dev='vda' bus='virtio'/></disk>
           </devices></domain>",
        t.name("vm"),
        vda.display()
    );
    t.define(&domain_xml)?;
    let work = tempfile::tempdir()?;
    let repo = repo(work.path());
    let point = backup_vm(
        &repo,
        &LibvirtProvider::new("qemu:///system"),
        &VmRef(UUID.into()),
        VmBackupOptions::default(),
    )
    .await?
    .manifest;

    let pool_dir = t.images.join("pool");
    let pool_name = t.name("pool");
    let pool = Pool::new(&t.conn, &pool_name, &pool_dir)?;
    let host = LibvirtHost::new("qemu:///system");
    let request = |name: &str, pool: &str| NewDomainRequest {
        name: Some(name.to_string()),
        target: DiskTarget::Pool(pool.to_string()),
        format: None,
        start: false,
        boot_dirs: Vec::new(),
    };

    // The pool's folder is not under the restore roots: refused, nothing written.
    let elsewhere = RestoreRoots::new(&[work.path().to_path_buf()], None);
    let e = tokio::task::block_in_place(|| {
        restore_new_domain(
            &repo,
            &point,
            &host,
            &elsewhere,
            &request(&t.name("a"), &pool_name),
            None,
        )
    })
    .unwrap_err();
    assert!(e.to_string().contains("restore_roots"), "{e}");
    let e = tokio::task::block_in_place(|| {
        restore_new_domain(
            &repo,
            &point,
            &host,
            &elsewhere,
            &request(&t.name("a"), "no-such-pool"),
            None,
        )
    })
    .unwrap_err();
    assert!(e.to_string().contains("no storage pool"), "{e}");
    assert!(pool.volumes().is_empty());
    assert!(Domain::lookup_by_name(&t.conn, &t.name("a")).is_err());

    // Under the roots: the disk is a new volume of the pool, used by the new domain.
    let roots = RestoreRoots::new(std::slice::from_ref(&pool_dir), None);
    let name = t.name("copy");
    let out = tokio::task::block_in_place(|| {
        restore_new_domain(
            &repo,
            &point,
            &host,
            &roots,
            &request(&name, &pool_name),
            None,
        )
    })?;
    let volume = format!("{name}-vda.qcow2");
    assert_eq!(pool.volumes(), std::slice::from_ref(&volume));
    let path: PathBuf = pool_dir.canonicalize()?.join(&volume);
    assert_eq!(out.disks.len(), 1);
    assert_eq!(out.disks[0].path, path);
    assert!(
        out.definition.is_none(),
        "a pool restore keeps no domain.xml"
    );
    let copy = Domain::lookup_by_name(&t.conn, &name)?;
    let xml = copy.get_xml_desc(0)?;
    assert!(xml.contains(&path.display().to_string()), "{xml}");
    assert_same(
        &image_bytes(&path, &work.path().join("copy.raw")),
        &expected,
    );

    // The same name again: its volume exists, so nothing is written over it.
    let _ = copy.undefine();
    let e = tokio::task::block_in_place(|| {
        restore_new_domain(
            &repo,
            &point,
            &host,
            &roots,
            &request(&name, &pool_name),
            None,
        )
    })
    .unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    Ok(())
}
