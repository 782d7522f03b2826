#!/usr/bin/env bash
# The README's plant tour, runnable as written: datum-edge with real field files from the kit (../shared).
# From the repository root after `cargo build --release`:  bash examples/tour.sh
# Stops at the first command that does not end as the tour says it should. Data goes to a temporary directory.
set -euo pipefail
E=${E:-target/release/datum-edge}
F=../shared/fixtures/versions
T=$(mktemp -d)
export DATUM_DATA="$T/plant" DATUM_ACTOR=alice
. "$(dirname "$0")/tour-lib.sh"

run $E init --site plant-north
run $E asset import examples/inventory.csv
run $E asset add RTU-7 --kind rtu --criticality high --zone field --ip 10.10.9.7
run $E asset list --zone cell-1
run $E config capture FW-DMZ $F/pybatfish_filters_rtr-with-acl.v1.cfg --note "from the running box"
run $E config capture FW-DMZ $F/pybatfish_filters_rtr-with-acl.v1.cfg   # same bytes: checked, unchanged
run $E baseline approve FW-DMZ --reason "commissioning baseline"
run $E config capture FW-DMZ $F/pybatfish_filters_rtr-with-acl.v2.cfg   # someone changed it...
expect 1 $E drift                                                        # ...unauthorized drift
run $E config diff FW-DMZ
expect 1 $E diff $F/LogixLibraries_Num_IPv4toStr_AOI.v1.L5X $F/LogixLibraries_Num_IPv4toStr_AOI.v2.L5X
run $E change new --title "Allow historian replication" --reason "PI to PI" --asset FW-DMZ --risk high \
    --impact "new conduit dmz->corp" --rollback "re-apply v1 ruleset"
run $E change submit CR-0001
expect 2 $E change approve CR-0001                                       # the requester may not approve
DATUM_ACTOR=bob run $E change approve CR-0001 --comment "checked rule order"
DATUM_ACTOR=carol run $E change approve CR-0001                          # high risk: two approvers
run $E config capture FW-DMZ $F/pybatfish_filters_rtr-with-acl.v3.cfg --change CR-0001
run $E change implement CR-0001 --note "applied 20:10"
run $E change verify CR-0001                                             # the verified version is the baseline
run $E change close CR-0001
expect 1 $E drift                                    # FW-DMZ matches its new baseline; the rest was never captured
run $E config export FW-DMZ --version 1 --out "$T/restore.cfg"          # exact bytes, hash-verified
run $E restore-test record FW-DMZ --version 3 --result pass --method "loaded on the spare router in the lab"
expect 1 $E backup status                                                # other assets have no backup yet
run $E review due                                                        # new assets: nothing due yet
run $E review record --zone dmz --outcome findings --notes "HIST-01 has no capture yet"
run $E audit log --asset FW-DMZ
run $E audit verify
run $E dump --out "$T/plant.dump"
DATUM_DATA="$T/plant-copy" run $E restore-dump "$T/plant.dump"
echo
echo "tour finished; its data is in $T"
