#!/usr/bin/env bash
# A ten-minute tour of datum-edge with real field files from ../shared/fixtures.
# Run from the repository root after `cargo build --release`:  bash examples/tour.sh
set -euo pipefail
E=${E:-target/release/datum-edge}
F=../shared/fixtures
export DATUM_DATA=${DATUM_DATA:-$(mktemp -d)/plant}
export DATUM_ACTOR=alice
say() { printf '\n$ %s\n' "$*"; "$@" || true; }

say $E init --site plant-north
say $E asset import examples/inventory.csv
say $E asset list
say $E config capture FW-DMZ $F/versions/pybatfish_filters_rtr-with-acl.v1.cfg --note "from the running box"
say $E baseline approve FW-DMZ --reason "commissioning baseline"
say $E config capture FW-DMZ $F/versions/pybatfish_filters_rtr-with-acl.v2.cfg
say $E drift
say $E config diff FW-DMZ
say $E change new --title "Allow historian replication" --reason "PI to PI" --asset FW-DMZ --risk high \
    --impact "new conduit dmz->corp" --rollback "re-apply v1 ruleset"
say $E change submit CR-0001
say $E change approve CR-0001
DATUM_ACTOR=bob say $E change approve CR-0001 --comment "checked rule order"
DATUM_ACTOR=carol say $E change approve CR-0001
say $E config capture FW-DMZ $F/versions/pybatfish_filters_rtr-with-acl.v3.cfg --change CR-0001
say $E change implement CR-0001 --note "applied 20:10"
say $E change verify CR-0001
say $E drift
say $E restore-test record FW-DMZ --version 3 --result pass --method "loaded on spare FortiGate in the lab"
say $E backup status
say $E review record --zone dmz --outcome findings --notes "HIST-01 has no capture yet"
say $E audit log
say $E audit verify
say $E dump --out "$DATUM_DATA.dump"
