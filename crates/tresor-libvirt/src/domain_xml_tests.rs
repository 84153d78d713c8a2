use super::*;

/// A running UEFI domain as libvirt 9.0 describes it live (trimmed).
const UEFI_DOMAIN: &str = r#"<domain type='kvm' id='3' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>web01</name>
  <uuid>6f1f6a4e-1d2c-4b1a-9d55-0e0c1c6b2a11</uuid>
  <metadata><app:disk xmlns:app='http://example.org/app'><disk type='file'/></app:disk></metadata>
  <memory unit='KiB'>1048576</memory>
  <vcpu placement='static'>2</vcpu>
  <os firmware='efi'>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <firmware><feature enabled='yes' name='secure-boot'/></firmware>
    <loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'>/var/lib/libvirt/qemu/nvram/web01_VARS.fd</nvram>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web01.qcow2' index='2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/vg0/web01-data'/>
      <target dev='sda' bus='scsi'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/web01-logs'>
        <host name='mon1' port='6789'/>
        <host name='mon2'/>
      </source>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <source pool='default' volume='web01-extra.img'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/srv/iso/debian.iso'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='disk'>
      <target dev='vdd' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:cc'/>
      <source network='default' bridge='virbr0'/>
      <target dev='vnet2'/>
      <model type='virtio'/>
    </interface>
    <interface type='user'>
      <mac address='52:54:00:aa:bb:cd'/>
      <model type='e1000'/>
    </interface>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-3-web01/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
    </channel>
    <channel type='spicevmc'>
      <target type='virtio' name='com.redhat.spice.0'/>
    </channel>
    <tpm model='tpm-crb'>
      <backend type='emulator' version='2.0'/>
    </tpm>
  </devices>
</domain>"#;

#[test]
fn a_uefi_domain_reads_whole() {
    let d = parse(UEFI_DOMAIN).unwrap();
    assert_eq!(
        d.firmware,
        VmFirmware {
            kind: FirmwareKind::Uefi,
            loader: Some("/usr/share/OVMF/OVMF_CODE_4M.ms.fd".into()),
            nvram: Some("/var/lib/libvirt/qemu/nvram/web01_VARS.fd".into()),
            secure_boot: true,
        }
    );
    let targets: Vec<_> = d.disks.iter().map(|d| d.target.as_str()).collect();
    // The CD-ROM and the disk without a source are not the VM's data.
    assert_eq!(targets, ["vda", "sda", "vdb", "vdc"]);
    assert_eq!(d.disks[0].format, "qcow2");
    assert_eq!(d.disks[0].bus.as_deref(), Some("virtio"));
    assert_eq!(
        d.disks[0].source,
        DiskSource::File {
            path: "/var/lib/libvirt/images/web01.qcow2".into()
        }
    );
    assert_eq!(
        d.disks[1].source,
        DiskSource::Block {
            path: "/dev/vg0/web01-data".into()
        }
    );
    assert_eq!(
        d.disks[2].source,
        DiskSource::Network {
            protocol: "rbd".into(),
            name: Some("pool/web01-logs".into()),
            hosts: vec!["mon1:6789".into(), "mon2".into()],
        }
    );
    // No <driver type>: libvirt's default, raw.
    assert_eq!(d.disks[3].format, "raw");
    assert_eq!(
        d.disks[3].source,
        DiskSource::Volume {
            pool: "default".into(),
            volume: "web01-extra.img".into()
        }
    );
    assert_eq!(d.nics.len(), 2);
    assert_eq!(
        d.nics[0],
        VmNic {
            kind: "network".into(),
            mac: Some("52:54:00:aa:bb:cc".into()),
            model: Some("virtio".into()),
            source: Some("default".into()),
        }
    );
    assert_eq!(d.nics[1].kind, "user");
    assert_eq!(d.nics[1].source, None);
    assert_eq!(
        d.guest_agent_channel,
        Some(GuestAgentChannel {
            path: Some(
                "/var/lib/libvirt/qemu/channel/target/domain-3-web01/org.qemu.guest_agent.0".into()
            ),
            connected: Some(true),
        })
    );
    assert_eq!(
        d.tpm,
        Some(VmTpm {
            model: Some("tpm-crb".into()),
            backend: "emulator".into(),
            version: Some("2.0".into()),
        })
    );
    assert!(d.warnings.is_empty());
}

#[test]
fn a_bare_domain_is_bios_without_devices() {
    let d = parse("<domain type='qemu'><name>x</name></domain>").unwrap();
    assert_eq!(d.firmware.kind, FirmwareKind::Bios);
    assert!(d.disks.is_empty() && d.nics.is_empty());
    assert_eq!(d.tpm, None);
    assert_eq!(d.guest_agent_channel, None);
}

#[test]
fn hostile_descriptions_are_refused_with_what_is_wrong() {
    assert!(matches!(parse("<domain"), Err(XmlError::Parse(_))));
    assert!(matches!(
        parse("<network/>"),
        Err(XmlError::NotADomain(n)) if n == "network"
    ));
    let huge = format!("<domain>{}</domain>", " ".repeat(MAX_XML_BYTES));
    assert!(matches!(parse(&huge), Err(XmlError::TooLarge(_))));
    // Entities and DTDs (billion laughs) are not read.
    assert!(parse("<!DOCTYPE d [<!ENTITY a 'aaaa'>]><domain>&a;</domain>").is_err());

    let many = |n: usize| {
        let disk = "<disk type='file'><source file='/i'/><target dev='vda'/></disk>";
        format!("<domain><devices>{}</devices></domain>", disk.repeat(n))
    };
    assert_eq!(parse(&many(MAX_DISKS)).unwrap().disks.len(), MAX_DISKS);
    assert_eq!(
        parse(&many(MAX_DISKS + 1)),
        Err(XmlError::TooMany {
            what: "disks",
            max: MAX_DISKS
        })
    );

    let with_target = |dev: &str| {
        format!("<domain><devices><disk type='file'><source file='/i'/><target dev='{dev}'/></disk></devices></domain>")
    };
    let err = parse(&with_target(&"v".repeat(MAX_NAME + 1))).unwrap_err();
    assert_eq!(err.to_string(), "its disk target is longer than 255 bytes");
    let err = parse(&with_target("vd&#9;a")).unwrap_err();
    assert_eq!(err.to_string(), "its disk target holds control characters");
    let err =
        parse("<domain><devices><disk type='file'><source file='/i'/></disk></devices></domain>")
            .unwrap_err();
    assert_eq!(err.to_string(), "its target of a disk is missing");

    let path = format!("/{}", "p".repeat(MAX_TEXT));
    let err = parse(&format!(
        "<domain><devices><disk type='file'><source file='{path}'/><target dev='vda'/></disk></devices></domain>"
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "its disk vda's source file is longer than 4096 bytes"
    );
}

#[test]
fn unknown_disk_sources_are_warned_about_not_reported() {
    let d = parse(
        "<domain><devices><disk type='nvme' device='disk'><source type='pci'/><target dev='vde'/></disk></devices></domain>",
    )
    .unwrap();
    assert!(d.disks.is_empty());
    assert_eq!(
        d.warnings,
        ["disk vde: source type \"nvme\" is not reported"]
    );
}

#[test]
fn bios_with_a_rom_loader_and_a_disconnected_agent() {
    let d = parse(
        "<domain><os><type>hvm</type><loader type='rom'>/usr/share/seabios/bios.bin</loader></os>\
         <devices><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='disconnected'/></channel></devices></domain>",
    )
    .unwrap();
    assert_eq!(d.firmware.kind, FirmwareKind::Bios);
    assert_eq!(
        d.firmware.loader.as_deref(),
        Some("/usr/share/seabios/bios.bin")
    );
    assert_eq!(
        d.guest_agent_channel,
        Some(GuestAgentChannel {
            path: None,
            connected: Some(false)
        })
    );
}
