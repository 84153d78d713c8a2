//! What runs inside the guest: the `/init` script, its modes, and host-side
//! helpers to predict and parse what it writes.

use std::fmt;

/// Prefix of every line the guest's `/init` prints on the serial console.
pub const SERIAL_PREFIX: &str = "TRESOR-GUEST: ";

/// Size of every `f-<n>` file the writer creates.
pub const FILE_SIZE: usize = 64 * 1024;

/// The default pause of [`GuestMode::Writer`] between two files, in milliseconds.
pub const DEFAULT_WRITER_PAUSE_MS: u64 = 50;

/// What the guest does once it is up, passed as `tresor.mode=` on the kernel
/// command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestMode {
    /// Mounts `/dev/vda` (ext4) read-write at `/data` and writes `f-0`, `f-1`, ...
    /// forever, each [`FILE_SIZE`] bytes of [`expected_file_content`]. A file is
    /// written as `tmp-<n>`, fsynced, renamed to `f-<n>` and the directory fsynced;
    /// then `TRESOR-GUEST: wrote <n>` is printed. So any `f-<n>` on a
    /// crash-consistent copy of the disk is complete, and every `f-<n>` reported
    /// as written is on the disk. Numbering starts at the first `n` without an
    /// `f-<n>`, so a writer booted again on the same disk continues.
    Writer {
        /// Sleep between two files, in milliseconds (`tresor.pause=`).
        pause_ms: u64,
    },
    /// Mounts `/dev/vda` read-only at `/data` (replaying the journal if needed;
    /// without replay if the disk cannot be written), prints
    /// `TRESOR-GUEST: file <name> <size> <crc32>` for each regular file in it, then
    /// `TRESOR-GUEST: check done`, and powers off. See [`parse_check_report`].
    Check,
    /// Does nothing but run the guest agent (if enabled); sleeps forever.
    Idle,
}

impl GuestMode {
    /// The writer with the default pause.
    pub fn writer() -> GuestMode {
        GuestMode::Writer {
            pause_ms: DEFAULT_WRITER_PAUSE_MS,
        }
    }

    /// The `tresor.*` kernel command line arguments for this mode.
    pub fn kernel_args(&self) -> String {
        match self {
            GuestMode::Writer { pause_ms } => format!("tresor.mode=writer tresor.pause={pause_ms}"),
            GuestMode::Check => "tresor.mode=check".into(),
            GuestMode::Idle => "tresor.mode=idle".into(),
        }
    }
}

/// The exact content the writer puts in `f-<n>`: the line `file <n>\n` repeated
/// and cut to [`FILE_SIZE`] bytes (the last line is usually cut short).
pub fn expected_file_content(n: u64) -> Vec<u8> {
    let line = format!("file {n}\n");
    line.as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(FILE_SIZE)
        .collect()
}

/// The CRC-32 (IEEE 802.3, as zlib and busybox `crc32` compute it) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// One line of the check mode's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestFile {
    /// File name inside `/data`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 of the content, see [`crc32`].
    pub crc32: u32,
}

impl GuestFile {
    /// `n` if the file is named `f-<n>`.
    pub fn index(&self) -> Option<u64> {
        self.name.strip_prefix("f-")?.parse().ok()
    }

    /// Whether this is an `f-<n>` with exactly [`expected_file_content`]`(n)`.
    pub fn is_intact(&self) -> bool {
        self.index().is_some_and(|n| {
            let expected = expected_file_content(n);
            self.size == expected.len() as u64 && self.crc32 == crc32(&expected)
        })
    }
}

impl fmt::Display for GuestFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} bytes, crc32 {:08x})",
            self.name, self.size, self.crc32
        )
    }
}

/// The files listed by a check-mode guest in `serial` (the serial log), in the
/// order printed. Lines that do not parse are skipped.
pub fn parse_check_report(serial: &str) -> Vec<GuestFile> {
    guest_lines(serial)
        .filter_map(|l| {
            let mut it = l.strip_prefix("file ")?.split_whitespace();
            let name = it.next()?.to_string();
            let size = it.next()?.parse().ok()?;
            let crc32 = u32::from_str_radix(it.next()?, 16).ok()?;
            Some(GuestFile { name, size, crc32 })
        })
        .collect()
}

/// The highest `n` of a `TRESOR-GUEST: wrote <n>` line in `serial`, if any.
pub fn last_written(serial: &str) -> Option<u64> {
    guest_lines(serial)
        .filter_map(|l| l.strip_prefix("wrote ")?.trim().parse().ok())
        .max()
}

/// The text after [`SERIAL_PREFIX`] of each guest line in `serial`.
pub fn guest_lines(serial: &str) -> impl Iterator<Item = &str> {
    serial.lines().filter_map(|l| {
        let at = l.find(SERIAL_PREFIX)?;
        Some(l[at + SERIAL_PREFIX.len()..].trim_end_matches('\r'))
    })
}

/// The guest's `/init` (busybox `sh`, PID 1). Its text is part of the image's
/// cache key, so editing it rebuilds the image.
pub(crate) const INIT_SCRIPT: &str = r#"#!/bin/sh
# /init of the Tresor test guest: busybox sh as PID 1, driven by tresor.* on the
# kernel command line. Every line for the host starts with "TRESOR-GUEST: ".
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
say() { echo "TRESOR-GUEST: $*"; }
fail() {
  say "error $*"
  poweroff -f
  sleep 5
  exit 1
}
# Polls (every 20 ms, at most 10 s) until the test in "$@" succeeds.
wait_for() {
  i=0
  until "$@"; do
    i=$((i + 1))
    [ "$i" -le 500 ] || return 1
    usleep 20000
  done
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
# Plain "\n" line ends on the serial console, so host-side matching is simple.
stty -onlcr 2>/dev/null

mode=idle
agent=0
pause=50
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    tresor.mode=*) mode=${arg#tresor.mode=} ;;
    tresor.agent=*) agent=${arg#tresor.agent=} ;;
    tresor.pause=*) pause=${arg#tresor.pause=} ;;
  esac
done

while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/modules/$m.ko" || say "warning: insmod $m failed"
done < /etc/tresor-modules

say up

# There is no udev: find the agent's virtio-serial port by its name in sysfs and
# make the /dev/virtio-ports symlink udev would make.
agent_port() {
  for f in /sys/class/virtio-ports/*/name; do
    [ -f "$f" ] || continue
    if [ "$(cat "$f")" = org.qemu.guest_agent.0 ]; then
      port=${f%/name}
      port=${port##*/}
      [ -c "/dev/$port" ] && return 0
    fi
  done
  return 1
}
if [ "$agent" = 1 ]; then
  wait_for agent_port || fail "no virtio-serial port org.qemu.guest_agent.0"
  mkdir -p /dev/virtio-ports
  ln -sf "../$port" /dev/virtio-ports/org.qemu.guest_agent.0
  qemu-ga -d -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 \
    -f /run/qemu-ga.pid -t /run -l /run/qemu-ga.log || fail "qemu-ga did not start"
  say "agent started"
fi

have_disk() { [ -b /dev/vda ]; }

case "$mode" in
  writer)
    wait_for have_disk || fail "no /dev/vda"
    mount -t ext4 /dev/vda /data || fail "cannot mount /dev/vda"
    n=0
    while [ -e "/data/f-$n" ]; do n=$((n + 1)); done
    say "writing from $n"
    while :; do
      yes "file $n" | head -c 65536 > "/data/tmp-$n" || fail "cannot write tmp-$n"
      sync "/data/tmp-$n" || fail "cannot fsync tmp-$n"
      mv "/data/tmp-$n" "/data/f-$n" || fail "cannot rename tmp-$n"
      sync /data || fail "cannot fsync /data"
      say "wrote $n"
      n=$((n + 1))
      [ "$pause" -gt 0 ] && usleep $((pause * 1000))
    done
    ;;
  check)
    wait_for have_disk || fail "no /dev/vda"
    mount -t ext4 -o ro /dev/vda /data 2>/dev/null \
      || mount -t ext4 -o ro,noload /dev/vda /data \
      || fail "cannot mount /dev/vda"
    for f in /data/*; do
      [ -f "$f" ] || continue
      set -- $(crc32 "$f")
      say "file ${f#/data/} $(stat -c %s "$f") $1"
    done
    say "check done"
    umount /data
    poweroff -f
    ;;
  idle) ;;
  *) fail "unknown tresor.mode=$mode" ;;
esac
while :; do sleep 3600; done
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"hello\n"), 0x363a_3020);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn content_is_repeated_line() {
        let c = expected_file_content(12);
        assert_eq!(c.len(), FILE_SIZE);
        assert!(c.starts_with(b"file 12\nfile 12\n"));
        // 65536 = 8192 lines of 8 bytes: ends on a full line.
        assert!(c.ends_with(b"file 12\n"));
        let c = expected_file_content(3);
        // 7-byte lines: 65536 % 7 = 2, so the file ends with "fi".
        assert!(c.ends_with(b"file 3\nfi"));
    }

    #[test]
    fn parses_report() {
        let content = expected_file_content(0);
        let log = format!(
            "junk\r\nTRESOR-GUEST: up\r\nTRESOR-GUEST: file f-0 65536 {:08x}\r\n\
             [  1.0] kernel TRESOR-GUEST: file tmp-1 100 0000abcd\n\
             TRESOR-GUEST: wrote 7\nTRESOR-GUEST: wrote 12\nTRESOR-GUEST: check done\n",
            crc32(&content)
        );
        let files = parse_check_report(&log);
        assert_eq!(files.len(), 2);
        assert!(files[0].is_intact());
        assert_eq!(files[0].index(), Some(0));
        assert_eq!(files[1].name, "tmp-1");
        assert_eq!(files[1].crc32, 0xabcd);
        assert!(!files[1].is_intact());
        assert_eq!(last_written(&log), Some(12));
    }
}
