//! Discovery against a real libvirtd (started here if none runs; needs root then):
//! domains running, paused and shut off, persistent and transient, each reported
//! with its fields; then renamed, undefined, destroyed and new domains, followed by
//! the next listing with nothing restarted.

mod common;

use std::collections::BTreeMap;

use common::{domain_xml, DomainSpec, Libvirtd, TestDomains};
use tresor_api::inventory::{
    DiskSource, FirmwareKind, GuestAgentChannel, GuestAgentState, VmInfo, VmProviderKind, VmState,
    VmTpm,
};
use tresor_libvirt::{preflight, LibvirtProvider};
use tresor_vm::{CheckCode, VmProvider, VmRef};

const RUNNING: &str = "5e0c9f4e-0000-4000-8000-000000000001";
const PAUSED: &str = "5e0c9f4e-0000-4000-8000-000000000002";
const OFF: &str = "5e0c9f4e-0000-4000-8000-000000000003";
const GONE: &str = "5e0c9f4e-0000-4000-8000-000000000004";
const TRANSIENT: &str = "5e0c9f4e-0000-4000-8000-000000000005";
const NEW: &str = "5e0c9f4e-0000-4000-8000-000000000006";
const MIB: u64 = 1 << 20;

/// The test's own domains, by UUID, from a listing of the whole daemon.
async fn listing(provider: &LibvirtProvider, t: &TestDomains) -> BTreeMap<String, VmInfo> {
    let found = provider.discover().await.expect("discovery");
    found
        .domains
        .into_iter()
        .filter(|d| d.info.name.starts_with(&t.prefix))
        .map(|d| {
            assert_eq!(d.info.uuid.as_deref(), Some(d.vm.as_str()));
            (d.vm, d.info)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_follows_every_domain_without_a_restart() -> anyhow::Result<()> {
    let _daemon = Libvirtd::ensure()?;
    let t = TestDomains::new("disc")?;
    let raw = t.image("running.raw", "raw", MIB)?;
    let qcow2 = t.image("paused.qcow2", "qcow2", 2 * MIB)?;
    let off_disk = t.image("off.qcow2", "qcow2", 3 * MIB)?;
    let transient_disk = t.image("transient.raw", "raw", MIB)?;

    let running = t.define(&domain_xml(&DomainSpec {
        name: &t.name("running"),
        uuid: RUNNING,
        memory_mib: 64,
        vcpus: 1,
        disks: vec![("vda", "raw", &raw)],
        devices: "",
        os: "",
    }))?;
    running.create()?;
    let paused = t.define(&domain_xml(&DomainSpec {
        name: &t.name("paused"),
        uuid: PAUSED,
        memory_mib: 64,
        vcpus: 2,
        disks: vec![("vda", "qcow2", &qcow2)],
        devices: "",
        os: "",
    }))?;
    paused.create()?;
    paused.suspend()?;
    // Shut off, UEFI with its own variable store, a TPM (the host's: an emulated one
    // needs swtpm to be defined), and a disk that
    // lives on an NBD server (of which a shut-off domain's size is unknown).
    let nvram = t.images.join("off_VARS.fd");
    t.define(&domain_xml(&DomainSpec {
        name: &t.name("off"),
        uuid: OFF,
        memory_mib: 128,
        vcpus: 2,
        disks: vec![("vda", "qcow2", &off_disk)],
        devices: "<disk type='network' device='disk'><driver name='qemu' type='raw'/>\
                  <source protocol='nbd' name='export1'><host name='nbd.example' port='10809'/></source>\
                  <target dev='vdb' bus='virtio'/></disk>\
                  <tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>",
        os: &format!(
            "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader><nvram>{}</nvram>",
            nvram.display()
        ),
    }))?;
    let gone = t.define(&domain_xml(&DomainSpec {
        name: &t.name("gone"),
        uuid: GONE,
        memory_mib: 64,
        vcpus: 1,
        disks: vec![],
        devices: "",
        os: "",
    }))?;
    let transient = t.create_transient(&domain_xml(&DomainSpec {
        name: &t.name("transient"),
        uuid: TRANSIENT,
        memory_mib: 64,
        vcpus: 1,
        disks: vec![("vda", "raw", &transient_disk)],
        devices: "",
        os: "",
    }))?;

    let provider = LibvirtProvider::new("qemu:///system");
    let vms = listing(&provider, &t).await;
    assert_eq!(
        vms.keys().map(String::as_str).collect::<Vec<_>>(),
        [RUNNING, PAUSED, OFF, GONE, TRANSIENT]
    );
    for vm in vms.values() {
        assert_eq!(vm.provider, VmProviderKind::Libvirt);
    }

    let r = &vms[RUNNING];
    assert_eq!(r.name, t.name("running"));
    assert_eq!(r.state, VmState::Running);
    assert_eq!(r.persistent, Some(true));
    assert_eq!((r.vcpus, r.memory_bytes), (Some(1), Some(64 * MIB)));
    assert_eq!(r.disks.len(), 1);
    assert_eq!(r.disks[0].name, "vda");
    assert_eq!(r.disks[0].format, "raw");
    assert_eq!(r.disks[0].virtual_size, MIB);
    assert_eq!(r.disks[0].bus.as_deref(), Some("virtio"));
    assert_eq!(r.disks[0].image, raw.display().to_string());
    assert_eq!(
        r.disks[0].source,
        Some(DiskSource::File {
            path: raw.display().to_string()
        })
    );
    assert_eq!(
        r.firmware.as_ref().map(|f| f.kind),
        Some(FirmwareKind::Bios)
    );
    assert_eq!(r.tpm, None);
    // libvirt chose the channel's socket when the domain started; no qemu-ga runs
    // in a guest that only has SeaBIOS.
    let channel = r.guest_agent_channel.as_ref().expect("guest agent channel");
    assert!(channel
        .path
        .as_deref()
        .is_some_and(|p| p.ends_with("org.qemu.guest_agent.0")));
    assert_eq!(channel.connected, Some(false));
    assert!(matches!(
        r.guest_agent,
        GuestAgentState::NotResponding { .. }
    ));
    assert_eq!(r.nics.len(), 1);
    assert_eq!(r.nics[0].kind, "user");
    assert_eq!(r.nics[0].mac.as_deref(), Some("52:54:00:12:34:56"));
    assert_eq!(r.nics[0].model.as_deref(), Some("virtio"));

    let p = &vms[PAUSED];
    assert_eq!(p.state, VmState::Paused);
    assert_eq!((p.vcpus, p.memory_bytes), (Some(2), Some(64 * MIB)));
    assert_eq!(p.disks[0].format, "qcow2");
    assert_eq!(p.disks[0].virtual_size, 2 * MIB);

    let o = &vms[OFF];
    assert_eq!(o.state, VmState::Stopped);
    assert_eq!(o.persistent, Some(true));
    assert_eq!(o.memory_bytes, Some(128 * MIB));
    let fw = o.firmware.as_ref().expect("firmware");
    assert_eq!(fw.kind, FirmwareKind::Uefi);
    assert_eq!(fw.nvram.as_deref(), Some(nvram.to_str().unwrap()));
    assert_eq!(
        o.tpm,
        Some(VmTpm {
            model: Some("tpm-tis".into()),
            backend: "passthrough".into(),
            version: None,
        })
    );
    assert_eq!(o.disks.len(), 2);
    // A shut-off domain's image is measured by libvirt from the file.
    assert_eq!(
        (o.disks[0].format.as_str(), o.disks[0].virtual_size),
        ("qcow2", 3 * MIB)
    );
    assert_eq!(
        o.disks[1].source,
        Some(DiskSource::Network {
            protocol: "nbd".into(),
            name: Some("export1".into()),
            hosts: vec!["nbd.example:10809".into()],
        })
    );
    assert_eq!(o.disks[1].image, "nbd://nbd.example:10809/export1");
    assert_eq!(o.disks[1].virtual_size, 0);
    assert_eq!(
        o.guest_agent_channel,
        Some(GuestAgentChannel {
            path: None,
            connected: None
        })
    );
    assert!(matches!(
        o.guest_agent,
        GuestAgentState::NotResponding { .. }
    ));

    let tr = &vms[TRANSIENT];
    assert_eq!((tr.state, tr.persistent), (VmState::Running, Some(false)));
    assert!(vms[GONE].disks.is_empty());

    // The preflight no longer refuses libvirt domains; it says what it found.
    let checks = preflight(&vms[GONE]);
    let codes: Vec<_> = checks.iter().filter_map(|c| c.code).collect();
    assert!(!codes.contains(&CheckCode::BackupNotSupported));
    assert!(codes.contains(&CheckCode::NoDisks));
    // Through the provider interface: one domain by its UUID.
    let inspected = provider.inspect(&VmRef(OFF.into())).await?;
    assert_eq!(inspected, vms[OFF]);
    let unknown = provider
        .inspect(&VmRef("5e0c9f4e-0000-4000-8000-0000000000ff".into()))
        .await
        .unwrap_err();
    assert_eq!(unknown.code, CheckCode::VmNotFound);
    assert_eq!(
        provider
            .inspect(&VmRef("not a uuid\0".into()))
            .await
            .unwrap_err()
            .code,
        CheckCode::VmNotFound
    );

    // Changes made behind the provider's back, read by the same provider.
    let off = virt::domain::Domain::lookup_by_uuid_string(&t.conn, OFF)?;
    off.rename(&t.name("off-renamed"), 0)?;
    gone.undefine()?;
    transient.destroy()?;
    // A running domain undefined lives on, transient, until it stops.
    paused.undefine()?;
    t.define(&domain_xml(&DomainSpec {
        name: &t.name("new"),
        uuid: NEW,
        memory_mib: 64,
        vcpus: 1,
        disks: vec![],
        devices: "",
        os: "",
    }))?;

    let vms = listing(&provider, &t).await;
    assert_eq!(
        vms.keys().map(String::as_str).collect::<Vec<_>>(),
        [RUNNING, PAUSED, OFF, NEW]
    );
    assert_eq!(vms[OFF].name, t.name("off-renamed"));
    assert_eq!(
        (vms[PAUSED].state, vms[PAUSED].persistent),
        (VmState::Paused, Some(false))
    );
    assert_eq!(vms[NEW].state, VmState::Stopped);
    Ok(())
}
