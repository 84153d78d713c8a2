use super::*;

/// A stored definition as a compromised host could hand it over.
fn hostile(boot: &Path, elsewhere: &Path) -> String {
    format!(
        "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
           <name>web&amp;01</name><uuid>5e0c9f4e-0000-4000-8000-0000000000b1</uuid>
           <metadata><app:x xmlns:app='urn:x'>y</app:x></metadata>
           <memory unit='KiB'>262144</memory><vcpu placement='static'>2</vcpu>
           <sysinfo type='smbios'><system><entry name='uuid'>5e0c9f4e-0000-4000-8000-0000000000b1</entry></system></sysinfo>
           <os firmware='efi'><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
             <loader readonly='yes' type='pflash'>/etc/shadow</loader>
             <nvram template='/etc/passwd'>/var/lib/libvirt/qemu/nvram/web_VARS.fd</nvram>
             <kernel>{b}/vmlinuz</kernel><initrd>{e}/initrd.img</initrd>
             <cmdline>console=ttyS0 '&lt;x&gt;</cmdline><boot dev='hd'/>
           </os>
           <features><acpi/><apic/></features>
           <cpu mode='host-passthrough'><topology sockets='1' cores='2' threads='1'/></cpu>
           <on_reboot>restart</on_reboot><on_crash>$(reboot)</on_crash>
           <seclabel type='static' model='selinux' relabel='yes'><label>system_u:x</label></seclabel>
           <devices>
             <emulator>/tmp/evil/qemu</emulator>
             <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
               <source file='/var/lib/libvirt/images/other-vm.qcow2'/>
               <backingStore type='file'><source file='/etc/shadow'/></backingStore>
               <target dev='vda' bus='virtio'/><boot order='1'/></disk>
             <disk type='block' device='disk'><source dev='/dev/sda'/><target dev='vdb' bus='virtio'/></disk>
             <disk type='file' device='cdrom'><source file='/root/secret.iso'/><target dev='sda' bus='sata'/></disk>
             <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/><model type='virtio'/></interface>
             <interface type='ethernet'><script path='/tmp/evil.sh'/><target dev='tap0'/></interface>
             <interface type='bridge'><source bridge='br0&apos; onload=x'/></interface>
             <hostdev mode='subsystem' type='pci'><source><address bus='0x01'/></source></hostdev>
             <filesystem type='mount'><source dir='/'/><target dir='host'/></filesystem>
             <serial type='file'><source path='/etc/cron.d/evil'/><target port='0'/></serial>
             <channel type='unix'><source mode='bind' path='/etc/x'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
             <graphics type='vnc' port='5900' listen='0.0.0.0' passwd='x'/>
             <rng model='virtio'><backend model='random'>/dev/sda</backend></rng>
             <tpm model='tpm-crb'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>
           </devices>
           <qemu:commandline><qemu:arg value='-set'/></qemu:commandline>
         </domain>",
        b = boot.display(),
        e = elsewhere.display()
    )
}

#[test]
fn a_hostile_definition_keeps_only_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(boot.join("vmlinuz"), b"k").unwrap();
    std::fs::write(elsewhere.join("initrd.img"), b"i").unwrap();
    let disks = [NewDisk {
        target: "vda".into(),
        path: PathBuf::from("/srv/restore/copy/vda.qcow2"),
        format: "qcow2".into(),
    }];
    let adapted = adapt_for_new_domain(
        &hostile(&boot, &elsewhere),
        &NewDomain {
            name: "copy",
            disks: &disks,
            from_point: "p1",
            boot_dirs: std::slice::from_ref(&boot),
        },
    )
    .unwrap();
    let xml = &adapted.xml;
    for gone in [
        "5e0c9f4e",
        "52:54:00:12:34:56",
        "/etc/",
        "/dev/sda",
        "other-vm",
        "secret.iso",
        "evil",
        "hostdev",
        "filesystem",
        "seclabel",
        "commandline",
        "metadata",
        "sysinfo",
        "0.0.0.0",
        "passwd",
        "type='passthrough'",
        "br0",
        "initrd",
        "$(reboot)",
        "web",
        "backingStore",
    ] {
        assert!(!xml.contains(gone), "{gone} is in {xml}");
    }
    let canonical_kernel = boot.join("vmlinuz").canonicalize().unwrap();
    for kept in [
        "<name>copy</name>",
        "<source file='/srv/restore/copy/vda.qcow2'/>",
        "<driver name='qemu' type='qcow2'/>",
        "<boot order='1'/>",
        "<source network='default'/>",
        "name='org.qemu.guest_agent.0'",
        "<serial type='pty'><target port='0'/></serial>",
        "<on_reboot>restart</on_reboot>",
        "<cpu mode='host-passthrough'><topology",
        "<features><acpi/><apic/></features>",
        "<cmdline>console=ttyS0 &apos;&lt;x&gt;</cmdline>",
        "address='127.0.0.1'",
        "<backend model='random'>/dev/urandom</backend>",
        "firmware='efi'",
    ] {
        assert!(xml.contains(kept), "{kept} is not in {xml}");
    }
    assert!(xml.contains(&format!("<kernel>{}</kernel>", canonical_kernel.display())));
    // It reads back as a domain with one disk and one NIC without a MAC.
    let parsed = crate::domain_xml::parse(xml).unwrap();
    assert_eq!(parsed.disks.len(), 1);
    assert_eq!(parsed.nics.len(), 1);
    assert_eq!(parsed.nics[0].mac, None);
    assert!(parsed.guest_agent_channel.is_some());
    let notes = adapted.notes.join("\n");
    for said in [
        "initrd",
        "vdb",
        "ethernet",
        "hostdev",
        "commandline",
        "seclabel",
    ] {
        assert!(notes.contains(said), "{said} not in {notes}");
    }
}

#[test]
fn unusable_definitions_are_refused() {
    let new = NewDomain {
        name: "copy",
        disks: &[],
        from_point: "p1",
        boot_dirs: &[],
    };
    for (xml, why) in [
        (
            "<domain type='xen'><os><type>hvm</type></os></domain>",
            "not kvm or qemu",
        ),
        ("<domain type='kvm'><memory>1</memory></domain>", "<os>"),
        ("<vm/>", "not <domain>"),
        ("<!DOCTYPE x [<!ENTITY a 'b'>]><domain/>", "parse"),
    ] {
        let e = adapt_for_new_domain(xml, &new).unwrap_err().to_string();
        assert!(e.contains(why), "{xml}: {e}");
    }
    let big = "x".repeat(MAX_XML_BYTES + 1);
    assert!(matches!(
        adapt_for_new_domain(&big, &new),
        Err(XmlError::TooLarge(_))
    ));
}
