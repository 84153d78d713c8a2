#!/usr/bin/env python3
"""The benchmarks' guest writes, in one place: which blocks change, and how.

    random_writes.py file IMAGE TOTAL_MIB BLOCK_KIB SEED
        writes into an image file (what bench/random-writes.sh runs)
    random_writes.py libvirt URI DOMAIN TARGET SIZE TOTAL_MIB BLOCK_KIB SEED DATA_DIR
        writes into the disk TARGET (vda) of a running libvirt domain, through its
        QEMU's monitor (HMP qemu-io), then flushes; SIZE is the disk's virtual size
        in bytes; DATA_DIR a folder QEMU may read (the data of each write is handed
        to it as a file there, deleted afterwards)

Both write TOTAL_MIB MiB of /dev/urandom data (incompressible, never seen before) as
BLOCK_KIB KiB writes at distinct random BLOCK-aligned offsets. The offsets depend
only on SEED, the disk's size and the block size: a 4 GiB image file and a running
domain's 4 GiB disk get the same ones. Both write the changed extents to a list
(IMAGE.dirty, or DATA_DIR/TARGET.dirty): a "#" comment line, then one "OFFSET LENGTH"
line per write (decimal bytes, sorted), the text form `tresor repo backup
--dirty-extents` reads.
"""
import os
import random
import sys
import time


def die(message):
    sys.exit(f"random-writes: error: {message}")


def pick_blocks(size, total_mib, block_kib, seed):
    """The blocks (in units of BLOCK_KIB KiB) that change, in the order written."""
    bs = block_kib * 1024
    total = total_mib * 1024 * 1024
    if total % bs:
        die(f"{total_mib} MiB is not a whole number of {block_kib} KiB blocks")
    n = total // bs
    nblocks = size // bs
    if n > nblocks:
        die(f"{n} distinct {block_kib} KiB blocks do not fit in a {size}-byte disk")
    # distinct: exactly TOTAL_MIB MiB change
    return random.Random(seed).sample(range(nblocks), n)


def write_dirty_list(path, blocks, bs, seed):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"# random-writes.sh: {len(blocks)} writes of {bs} bytes, seed {seed}: OFFSET LENGTH (bytes)\n")
        for b in sorted(blocks):
            f.write(f"{b * bs} {bs}\n")
    os.replace(tmp, path)


def into_file(image, total_mib, block_kib, seed):
    bs = block_kib * 1024
    size = os.path.getsize(image)
    blocks = pick_blocks(size, total_mib, block_kib, seed)
    start = time.monotonic()
    fd = os.open(image, os.O_WRONLY)  # no O_TRUNC, no O_CREAT: the image keeps its size
    try:
        with open("/dev/urandom", "rb", buffering=0) as ur:
            for b in blocks:
                if os.pwrite(fd, ur.read(bs), b * bs) != bs:
                    die("short write")
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.monotonic() - start
    assert os.path.getsize(image) == size
    dirty = image + ".dirty"
    write_dirty_list(dirty, blocks, bs, seed)
    offs = sorted(blocks)
    print(f"random-writes: wrote {len(blocks)} x {block_kib} KiB = {total_mib} MiB of /dev/urandom data "
          f"at random {block_kib} KiB-aligned offsets of {image} "
          f"({size / 2**30:.2f} GiB, seed {seed}) in {elapsed:.2f} s; "
          f"offsets {offs[0] * bs} .. {offs[-1] * bs}; extents listed in {dirty}")


def into_libvirt(uri, domain_name, target, size, total_mib, block_kib, seed, data_dir):
    import xml.etree.ElementTree as ET

    import libvirt  # Debian: python3-libvirt (virtnbdbackup depends on it)
    import libvirt_qemu

    bs = block_kib * 1024
    blocks = pick_blocks(size, total_mib, block_kib, seed)
    conn = libvirt.open(uri)
    dom = conn.lookupByName(domain_name)
    if not dom.isActive():
        die(f"domain {domain_name} is not running")
    # The disk's device id in QEMU is libvirt's alias for it (virtio-disk0).
    alias = None
    for disk in ET.fromstring(dom.XMLDesc(0)).findall("./devices/disk"):
        t = disk.find("target")
        a = disk.find("alias")
        if t is not None and t.get("dev") == target and a is not None:
            alias = a.get("name")
    if alias is None:
        die(f"domain {domain_name} has no running disk {target}")
    device = f"/machine/peripheral/{alias}/virtio-backend"

    def hmp(command):
        out = libvirt_qemu.qemuMonitorCommand(dom, command, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
        # qemu-io reports its errors as text, not as a monitor error.
        if out.strip():
            die(f"{command}: {out.strip()}")

    start = time.monotonic()
    with open("/dev/urandom", "rb", buffering=0) as ur:
        for i, b in enumerate(blocks):
            path = os.path.join(data_dir, f"write-{i}")
            with open(path, "wb") as f:
                f.write(ur.read(bs))
            os.chmod(path, 0o644)
            try:
                hmp(f'qemu-io -d {device} "write -s {path} {b * bs} {bs}"')
            finally:
                os.remove(path)
    hmp(f'qemu-io -d {device} "flush"')
    elapsed = time.monotonic() - start
    dirty = os.path.join(data_dir, f"{target}.dirty")
    write_dirty_list(dirty, blocks, bs, seed)
    offs = sorted(blocks)
    print(f"random-writes: wrote {len(blocks)} x {block_kib} KiB = {total_mib} MiB of /dev/urandom data "
          f"at random {block_kib} KiB-aligned offsets of {domain_name}'s {target} through QEMU "
          f"({size / 2**30:.2f} GiB, seed {seed}) in {elapsed:.2f} s; "
          f"offsets {offs[0] * bs} .. {offs[-1] * bs}; extents listed in {dirty}")


def main(argv):
    if len(argv) == 6 and argv[1] == "file":
        into_file(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
    elif len(argv) == 10 and argv[1] == "libvirt":
        uri, dom, target, size, mib, kib, seed, data_dir = argv[2:]
        into_libvirt(uri, dom, target, int(size), int(mib), int(kib), int(seed), data_dir)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
