#!/usr/bin/env bash
# Tresor on the embedded default, end to end, in one command: builds `tresor`, makes a
# disk image with a real ext4 file system, creates an encrypted repository in
# ./tresor-data, backs the image up, changes some blocks, takes an incremental backup
# with the changed extents, verifies the repository, restores both points and checks
# they are byte-identical to the disk at backup time. Then the same on the vault
# service: `tresor serve --with-local-agent` (HTTPS, SQLite, local storage) protects a
# running QEMU VM with that disk, through the CLI as the seed's click path goes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
  scripts/install-deps.sh
fi
cargo build --release -p tresor
tresor=target/release/tresor
data=${TRESOR_DATA:-tresor-data}
export TRESOR_PASSWORD=${TRESOR_PASSWORD:-tresor-demo-passphrase}

rm -rf "$data"
mkdir -p "$data/files"
cp -r /usr/share/doc "$data/files/" 2>/dev/null || true
head -c $((32 << 20)) /dev/urandom > "$data/files/random.bin"
truncate -s 512M "$data/disk.raw"
mkfs.ext4 -q -F -d "$data/files" "$data/disk.raw"
rm -rf "$data/files"

echo "== create the repository"
"$tresor" repo init "$data/repo"
echo "== full backup"
full=$("$tresor" repo backup "$data/repo" --name demo-vm "$data/disk.raw" | tail -n 1)
cp --sparse=always "$data/disk.raw" "$data/disk-at-full.raw"

echo "== 8 MiB of random 64 KiB writes, then an incremental backup of just those extents"
python3 - "$data/disk.raw" <<'PY'
import os, random, sys
path = sys.argv[1]
size = os.path.getsize(path)
rng = random.Random(7)
with open(path, "r+b") as f, open(path + ".dirty", "w") as d:
    for _ in range(128):
        off = rng.randrange(size // 65536) * 65536
        f.seek(off); f.write(os.urandom(65536))
        d.write(f"{off} 65536\n")
PY
incr=$("$tresor" repo backup "$data/repo" --name demo-vm --parent "$full" --dirty-extents "$data/disk.raw.dirty" "$data/disk.raw" | tail -n 1)

echo "== recovery points"
"$tresor" repo list "$data/repo"
echo "== verify"
"$tresor" repo verify "$data/repo"
echo "== restore both points and compare"
"$tresor" repo restore "$data/repo" "$full" --disk disk.raw --output "$data/restored-full.raw"
"$tresor" repo restore "$data/repo" "$incr" --disk disk.raw --output "$data/restored-incr.qcow2" --format qcow2
cmp "$data/disk-at-full.raw" "$data/restored-full.raw"
qemu-img compare -q "$data/disk.raw" "$data/restored-incr.qcow2"
echo "OK: both recovery points restore byte-identical. Repository: $data/repo"

echo "== the vault service: a running VM, a server with its local agent, the CLI"
qemu-img convert -O qcow2 "$data/disk.raw" "$data/vm.qcow2"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
qemu-system-x86_64 -machine none -accel tcg -nodefaults -display none -name demo-vm \
  -drive "if=none,id=vda,node-name=disk0,format=qcow2,file=$data/vm.qcow2" \
  -qmp "unix:$data/vm.qmp,server=on,wait=off" </dev/null >/dev/null 2>&1 &
pids+=($!)
cat > "$data/agent.toml" <<TOML
state_dir = "$data/agent"
host = "demo-host"
location = "local"
scratch_dir = "$(pwd)/$data"
restore_roots = ["$(pwd)/$data"]
[[vm]]
name = "demo-vm"
qmp = "$(pwd)/$data/vm.qmp"
TOML
"$tresor" serve --data-dir "$data/server" --listen 127.0.0.1:0 --with-local-agent \
  --agent-config "$data/agent.toml" > "$data/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -f "$data/server/cli.json" ] && break; sleep 0.2; done
export TRESOR_CONFIG="$data/server/cli.json"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
"$tresor" vault create -n Demo-Vault -g demo -l local
"$tresor" vault backup-properties set -n Demo-Vault --backup-storage-redundancy LocallyRedundant
for _ in $(seq 100); do
  "$tresor" protectable-item list -v Demo-Vault -o json | grep -q demo-vm && break
  sleep 0.3
done
"$tresor" protectable-item list -v Demo-Vault
"$tresor" protection enable-for-vm -v Demo-Vault --vm demo-vm --host demo-host
job=$("$tresor" protection backup-now -v Demo-Vault -i demo-vm -o json | json '["id"]')
"$tresor" job wait -v Demo-Vault -n "$job"
"$tresor" recoverypoint list -v Demo-Vault -i demo-vm
rp=$("$tresor" recoverypoint list -v Demo-Vault -i demo-vm -o json | json '[0]["id"]')
job=$("$tresor" restore restore-disks -v Demo-Vault -i demo-vm --rp-name "$rp" \
  --target-path "$(pwd)/$data/service-restore" --format raw -o json | json '["id"]')
"$tresor" job wait -v Demo-Vault -n "$job"
cmp "$data/disk.raw" "$data/service-restore/vda.raw"
"$tresor" job list -v Demo-Vault
echo "OK: the vault service backed up the running VM and restored it byte-identical. Server data: $data/server"
