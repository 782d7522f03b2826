#!/usr/bin/env bash
# The README's hub tour, runnable as written: a hub and two plants on this machine (loopback), real field files
# from the kit (../shared). From the repository root after `cargo build --release`:  bash examples/hub-tour.sh
# Stops at the first command that does not end as the tour says it should. Data goes to a temporary directory.
set -euo pipefail
E=${E:-target/release/datum-edge}
H=${H:-target/release/datum-hub}
F=../shared/fixtures/versions
T=$(mktemp -d)
export DATUM_ACTOR=alice
. "$(dirname "$0")/tour-lib.sh"
# The value of a "key": "value" line of pretty JSON.
field() { sed -n "s/.*\"$1\": \"\\([^\"]*\\)\".*/\\1/p"; }
HUB_PID=
start_hub() {
  $H --data "$T/hub" serve --listen "$1" > "$T/serve.out" 2> "$T/serve.log" &
  HUB_PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$T/serve.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed -n 's/.* listening on \([^ ]*\) .*/\1/p' "$T/serve.out")
  [ -n "$ADDR" ] || { cat "$T/serve.log" >&2; exit 1; }
  echo "hub listening on $ADDR"
}
trap '[ -n "$HUB_PID" ] && kill $HUB_PID 2>/dev/null; true' EXIT

run $H --data "$T/hub" init --name acme-ot
$H --data "$T/hub" site add north --json > "$T/north.json"
$H --data "$T/hub" site add south --json > "$T/south.json"
FP=$(field fingerprint < "$T/north.json")
start_hub 127.0.0.1:0                                   # QUIC and TLS/TCP on the same port number

for site in north south; do
  run $E --data "$T/$site" init --site "$site"          # the site name the hub was told
  run $E --data "$T/$site" asset add FW-01 --kind firewall --criticality high --zone dmz
  run $E --data "$T/$site" config capture FW-01 $F/pybatfish_filters_rtr-with-acl.v1.cfg
  run $E --data "$T/$site" enroll --hub "$ADDR" --token "$(field token < "$T/$site.json")" --fingerprint "$FP"
  run $E --data "$T/$site" sync --once                  # exit 0: the hub holds everything
done
run $H --data "$T/hub" asset list                       # every plant's assets
expect 1 $H --data "$T/hub" status                      # per site: sync, drift, overdue backups (no restore tests yet)…

kill $HUB_PID; wait $HUB_PID 2>/dev/null || true        # pull the plug: plants keep working
run $E --data "$T/north" config capture FW-01 $F/pybatfish_filters_rtr-with-acl.v2.cfg
expect 1 $E --data "$T/north" sync --once               # "not in sync … working offline; nothing was lost"
start_hub "$ADDR"                                       # plug it back in: the next pass sends what happened
run $E --data "$T/north" sync --once
run $H --data "$T/hub" asset list --site north

run $H --data "$T/hub" report --all --out "$T/audit"    # the auditor's packs from the hub's copy, one per site
run $E report verify "$T/audit"                         # checked with nothing but the folder
run $H --data "$T/hub" site revoke south                # refused from the next handshake
expect 2 $E --data "$T/south" sync --once

# north's disk died: rebuild it from the hub as a new node of the same site
$H --data "$T/hub" site token north --json > "$T/north-again.json"
run $E --data "$T/north-new" restore-from-hub --hub "$ADDR" --token "$(field token < "$T/north-again.json")" \
    --fingerprint "$FP"
run $E --data "$T/north-new" audit verify
run $E --data "$T/north-new" backup verify
echo
echo "tour finished; its data is in $T"
