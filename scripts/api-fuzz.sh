#!/usr/bin/env bash
# API fuzzing of a running vault server from its own /openapi.json, with schemathesis.
#
#   scripts/api-fuzz.sh [MAX_EXAMPLES]      (default 10 per operation and pass: a few minutes)
#   API_FUZZ_PASSES="agent" scripts/api-fuzz.sh 50      (some passes only)
#   API_FUZZ_SEED=$RANDOM scripts/api-fuzz.sh 50         (other inputs than the fixed seed 1)
#
# Builds tresor (debug), starts `tresor serve` in a fresh data folder on a free loopback
# port, makes a small world through the API (a vault, a policy, an agent registered with
# vault credentials that reports a VM, a protected item with a backup job the agent has
# taken, a throwaway vault), then runs schemathesis against
# https://127.0.0.1:PORT/openapi.json (TLS verification off: the certificate is
# self-signed; the real clients pin its fingerprint) three times: with the admin token,
# with the agent's credential, and with no credential. Every answer is checked:
# no 5xx (not_a_server_error), a status the document lists (status_code_conformance),
# the documented content type (content_type_conformance) and body
# (response_schema_conformance). Ends with one line "N passed, M failed" (one per
# pass) and exits non-zero when a pass failed.
#
# Path parameters are drawn from dictionaries of the world's names (vault, policy,
# item, job, agent id) most of the time and generated otherwise, so that calls reach
# past "not found".
#
# What does not run like the rest, and why:
# - nextJob (POST /api/v1/agent/jobs/next) is a long poll of up to 20 s; it is called
#   with ?wait=0 (a hook sets it) so that a pass does not spend its time waiting.
# - The destructive calls (deleteVault, deletePolicy, deleteToken, disableProtection,
#   releaseWriter, cancelJob) run in a last pass of their own, with the admin token,
#   after the others: run earlier they would take the world apart under the other
#   calls (and with it what those calls can reach). They are fuzzed all the same.
#
# The Python tools go into a virtual environment under target/api-fuzz (made here,
# never system-wide); on Debian, python3-venv is installed with apt-get when missing
# (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
max_examples=${1:-10}
work=$root/target/api-fuzz
venv=$work/venv
schemathesis_version=4.32.5
mkdir -p "$work"

log() { printf 'api-fuzz: %s\n' "$*" >&2; }

# --- Python tools -----------------------------------------------------------------
if ! command -v curl >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl >/dev/null
  else
    log "curl is missing (apt-get install curl)"
    exit 1
  fi
fi
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$schemathesis_version"; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      log "installing python3-venv"
      DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
      python3 -m venv "$venv"
    else
      log "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"
      exit 1
    fi
  fi
  log "installing schemathesis $schemathesis_version into $venv"
  "$venv/bin/pip" install -q "schemathesis==$schemathesis_version"
fi
st=$venv/bin/st

# --- the server -------------------------------------------------------------------
log "building tresor"
cargo build -q -p tresor
tresor=$root/target/debug/tresor

data=$(mktemp -d "${TMPDIR:-/tmp}/tresor-api-fuzz.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=https://127.0.0.1:$port
# With qemu-nbd (qemu-utils), the server also runs its local agent for a stopped VM of
# one raw image: its backup gives the world a real recovery point (and real objects),
# so that recovery point and restore calls reach past "not found".
local_agent=()
if command -v qemu-nbd >/dev/null; then
  mkdir -p "$data/restores" "$data/scratch"
  head -c 1048576 /dev/urandom >"$data/vm-local.raw"
  truncate -s 4M "$data/vm-local.raw"
  cat >"$data/agent.toml" <<TOML
state_dir = "$data/agent"
host = "local-kvm"
location = "westeurope"
scratch_dir = "$data/scratch"
restore_roots = ["$data/restores"]
[[vm]]
name = "vm-local"
disks = ["$data/vm-local.raw"]
TOML
  local_agent=(--with-local-agent --agent-config "$data/agent.toml")
else
  log "qemu-nbd is missing (qemu-utils): no recovery point in the world"
fi
"$tresor" serve --data-dir "$data/server" --listen "127.0.0.1:$port" "${local_agent[@]}" \
  >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
  curl -ksf "$url/api/v1/ping" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { log "the server did not start:"; cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
curl -ksf "$url/api/v1/ping" >/dev/null || { log "the server does not answer at $url"; exit 1; }
token=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' "$data/server/cli.json")
log "server at $url (pid $server_pid)"

# --- the world ----------------------------------------------------------------------
# call METHOD PATH [JSON] [TOKEN]: the answer's body; fails on an HTTP error.
call() {
  local method=$1 path=$2 body=${3:-} bearer=${4:-$token}
  local args=(-ksS --fail-with-body -X "$method" -H "Authorization: Bearer $bearer")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data "$body")
  curl "${args[@]}" "$url$path"
}
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

vault=Vault-1
throwaway=Throwaway-1
call POST /api/v1/vaults '{"name":"'$vault'","resourceGroup":"rg1","location":"westeurope"}' >/dev/null
call POST /api/v1/vaults '{"name":"'$throwaway'","resourceGroup":"rg1","location":"westeurope","storageRedundancy":"LocallyRedundant"}' >/dev/null
policy_body=$(call GET "/api/v1/vaults/$vault/policies/DefaultPolicy" |
  python3 -c 'import json, sys; p = json.load(sys.stdin); print(json.dumps({"name": "Policy-1", "schedule": p["schedule"], "retention": p["retention"], "instantRestoreDays": p["instantRestoreDays"]}))')
call POST "/api/v1/vaults/$vault/policies" "$policy_body" >/dev/null
call POST "/api/v1/vaults/$throwaway/policies" "$policy_body" >/dev/null
secret=$(call POST "/api/v1/vaults/$vault/credentials" '{"validDays":1}' | field secret)
spare_secret=$(call POST "/api/v1/vaults/$vault/credentials" '{}' | field secret)
registered=$(call POST /api/v1/agents/register '{"secret":"'"$secret"'","host":"kvm1","vault":"'$vault'","version":"0.1.0"}' "")
agent=$(printf '%s' "$registered" | field credential)
agent_id=$(printf '%s' "$registered" | field agentId)
# VMs as an agent reports them (tresor_api::inventory::VmInfo): the server shows them
# back in agents and protectable items, checked against the same schema.
vm_info() { # NAME STATE FORMAT
  printf '{"vm":"%s","info":{"name":"%s","uuid":null,"state":"%s","disks":[{"name":"vda","node":null,"image":"/srv/%s.%s","format":"%s","virtual_size":1048576}],"guest_agent":{"state":"not-configured"}}}' \
    "$1" "$1" "$2" "$1" "$3" "$3"
}
vm=$(vm_info web01 running qcow2)
vm2=$(vm_info db01 stopped raw)
vm3=$(vm_info app01 running qcow2)
call POST /api/v1/agent/heartbeat '{"version":"0.1.0","vms":['"$vm"','"$vm2"','"$vm3"']}' "$agent" >/dev/null
item=$(call POST "/api/v1/vaults/$vault/items" '{"host":"kvm1","vm":"web01","policy":"Policy-1"}' | field id)
call POST "/api/v1/vaults/$vault/items" '{"host":"'"$agent_id"'","vm":"db01"}' >/dev/null
job=$(call POST "/api/v1/vaults/$vault/items/web01/backup" '{}' | field id)
# The agent takes it: progress and completion calls then reach a running job.
call POST "/api/v1/agent/jobs/next?wait=1" '' "$agent" >/dev/null
call POST "/api/v1/vaults/$vault/items/db01/backup" '{}' >/dev/null
writer=$(call POST "/api/v1/agent/repos/$(call GET "/api/v1/vaults/$vault" | field id)/writers" '{"description":"api-fuzz"}' "$agent" | field id)
vault_id=$(call GET "/api/v1/vaults/$vault" | field id)
point=none
if [ ${#local_agent[@]} -gt 0 ]; then
  for _ in $(seq 100); do
    call GET "/api/v1/vaults/$vault/protectable-items" | grep -q vm-local && break
    sleep 0.2
  done
  call POST "/api/v1/vaults/$vault/items" '{"host":"local-kvm","vm":"vm-local"}' >/dev/null
  local_job=$(call POST "/api/v1/vaults/$vault/items/vm-local/backup" '{}' | field id)
  for _ in $(seq 300); do
    status=$(call GET "/api/v1/vaults/$vault/jobs/$local_job" | field status)
    [ "$status" != InProgress ] && break
    sleep 0.2
  done
  if [[ "$status" == Completed* ]]; then
    point=$(call GET "/api/v1/vaults/$vault/items/vm-local/recovery-points" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
  else
    log "the local agent's backup ended $status: no recovery point in the world"
    call GET "/api/v1/vaults/$vault/jobs/$local_job" >&2
  fi
fi
api_token_id=$(call POST /api/v1/tokens '{"name":"api-fuzz"}' | field id)
# Names of the objects in the agent's repository (made when it took its first job).
objects=$(for kind in config keys; do call GET "/api/v1/agent/repos/$vault_id/objects/$kind" '' "$agent"; echo; done |
  python3 -c 'import json, sys; print(", ".join(json.dumps(o["name"]) for l in sys.stdin if l.strip() for o in json.loads(l)))')
log "world: vaults $vault and $throwaway, policy Policy-1, agent kvm1 ($agent_id), items web01 ($item), db01 and vm-local (point $point), job $job"

# --- schemathesis -------------------------------------------------------------------
config=$work/schemathesis.toml
cat >"$config" <<EOF
[dictionaries.vault]
values = ["$vault", "$throwaway", "$vault_id", "vault-1"]
[dictionaries.policy]
values = ["Policy-1", "DefaultPolicy"]
[dictionaries.item]
values = ["web01", "db01", "vm-local", "$item"]
[dictionaries.job]
values = ["$job"]
[dictionaries.point]
values = ["$point"]
[dictionaries.vault_id]
values = ["$vault_id"]
[dictionaries.object]
values = [$objects, "missing-object"]
[dictionaries.kind]
values = ["config", "keys", "data", "index", "points", "gc"]
[dictionaries.id]
values = ["$writer", "$api_token_id"]
[dictionaries.wait]
values = [0]

[parameters]
"path.vault" = { dictionary = "vault", probability = 0.7 }
"path.policy" = { dictionary = "policy", probability = 0.7 }
"path.item" = { dictionary = "item", probability = 0.7 }
"path.job" = { dictionary = "job", probability = 0.7 }
"path.kind" = { dictionary = "kind", probability = 0.8 }
"path.id" = { dictionary = "id", probability = 0.5 }
"query.wait" = { dictionary = "wait", probability = 1.0 }

# The agents' repositories are named by vault id.
[[operations]]
include-path-regex = "^/api/v1/agent/repos/"
parameters = { "path.vault" = { dictionary = "vault_id", probability = 0.8 }, "path.name" = { dictionary = "object", probability = 0.7 } }
EOF

# nextJob's long poll: whatever the generator chose (no ?wait, or up to 20 s), a
# valid wait becomes 0; invalid values go as they are (they are answered at once).
cat >"$work/hooks.py" <<'PY'
import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path != "/api/v1/agent/jobs/next":
        return
    query = dict(case.query or {})
    wait = str(query.get("wait", "0"))
    if wait.isdigit():
        query["wait"] = 0
        case.query = query
PY
export SCHEMATHESIS_HOOKS=$work/hooks.py

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
destructive=(deleteVault deletePolicy deleteToken disableProtection releaseWriter cancelJob)
summary=()
failed=0
# pass NAME AUTH-HEADER-OR-EMPTY [st options...]
pass() {
  local name=$1 auth=$2
  shift 2
  local args=(--config-file "$config" run "$url/openapi.json" --tls-verify false
    --checks "$checks" --max-examples "$max_examples" --workers 1 --no-color
    --request-timeout 30 --request-retries 1 --seed "${API_FUZZ_SEED:-1}" --generation-database none
    --report junit --report-junit-path "$work/junit-$name.xml")
  [ -n "$auth" ] && args+=(-H "Authorization: Bearer $auth")
  log "pass $name"
  local status=0
  # (From $work: schemathesis keeps its cache in the current folder.)
  (cd "$work" && "$st" "${args[@]}" "$@") >"$work/st-$name.log" 2>&1 || status=$?
  tail -n 40 "$work/st-$name.log" >&2
  local tests failures errors
  read -r tests failures errors < <(python3 - "$work/junit-$name.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 0, 1); sys.exit()
suites = [r] if r.tag == "testsuite" else list(r)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) for s in suites)
e = sum(int(s.get("errors", 0)) for s in suites)
print(t, f, e)
PY
  )
  summary+=("$name: $tests operations, $failures failed, $errors errors (exit $status; log $work/st-$name.log)")
  if [ "$status" -ne 0 ]; then failed=$((failed + 1)); fi
}
exclude=()
for op in "${destructive[@]}"; do exclude+=(--exclude-operation-id "$op"); done
include=()
for op in "${destructive[@]}"; do include+=(--include-operation-id "$op"); done

start=$(date +%s)
passes=${API_FUZZ_PASSES:-admin agent anonymous destructive}
for p in $passes; do
  case $p in
    admin) pass admin "$token" "${exclude[@]}" ;;
    agent) pass agent "$agent" "${exclude[@]}" ;;
    anonymous) pass anonymous "" "${exclude[@]}" ;;
    destructive) pass destructive "$token" "${include[@]}" ;;
    *) log "unknown pass $p"; exit 2 ;;
  esac
done

if grep -q 'request failed' "$work/server.log"; then
  log "the server logged failed requests (5xx):"
  grep 'request failed' "$work/server.log" | head -20 >&2
fi
echo "api-fuzz: $(( $(date +%s) - start )) s, $max_examples examples per operation and pass"
for line in "${summary[@]}"; do echo "  $line"; done
echo "api-fuzz: $(( $(wc -w <<<"$passes") - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
