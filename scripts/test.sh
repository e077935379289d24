#!/usr/bin/env bash
# The project's test command: the version matrix, one nox session (cell) each, two at a time.
#
#   scripts/test.sh                      the CI set (below), then the matrix report
#   scripts/test.sh --all                every cell, tests/unit and tests/live in every Dynamo
#                                        cell too (on demand: several times as long as CI)
#   scripts/test.sh dynamo-1.2           one cell (several names: several cells)
#   scripts/test.sh latest               the canary: newest ai-dynamo + vLLM-Omni, resolved
#                                        from the index now (never part of the CI set)
#   scripts/test.sh dynamo-1.2 -- -k size    arguments after -- go to pytest
#   scripts/test.sh --list               the cells
#   scripts/test.sh -j 1                 one cell at a time, its output live (default: 2 at
#                                        once, each cell's output printed when it ends)
#
# Needs only python3 (>= 3.10) with pip: uv and nox are installed into .venv-tools/.
# Environment: OMNI_SIZEFIX_KEEP_CELLS=1 keeps (and reuses) cells in .nox/; OMNI_SIZEFIX_LIVE
# and OMNI_SIZEFIX_UNIT name the host cells that also run tests/live and tests/unit
# (comma-separated, 'all', or '' for none; defaults below); OMNI_SIZEFIX_DESELECT the tests not
# run ('' runs all); OMNI_SIZEFIX_PYTHON the cells' Python (3.11); OMNI_SIZEFIX_JOBS as -j.
# Results: reports/<cell>.json + .xml, reports/matrix.md; exit status 1 if a cell failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
source scripts/tools.sh

# The CI set (under an hour on a fresh machine; docs/releases.md "Matrix cells and the canary"):
# dynamo-1.1-cpu, the release PR #8679 is about with vLLM-Omni's REAL engines on CPU behind the
# real Dynamo processes (tests/real); the package alone (every unit test); the top-level-size
# vLLM-Omni; and one cell per distinct ai-dynamo omni code base but 1.5 (1.3's utils.py is 1.2's,
# 1.7.0.dev's is 1.6's; 1.5 runs on demand to keep CI under an hour). tests/host runs in each
# (test_startable.py but its plain-text doctor run, below); tests/unit and tests/live (the real
# Dynamo processes over HTTP, fake engines) in one Dynamo cell, dynamo-1.1-tf5 (the unit tests
# that need a host skip in no-host). A named cell runs those suites as in CI; --all runs every
# suite in every cell.
ci_cells=(dynamo-1.1-cpu dynamo-1.1-tf5 dynamo-1.6 dynamo-1.4 dynamo-1.2-tf5 omni-0.18 no-host)  # longest first
cells=() pytest_args=() all=0 jobs=${OMNI_SIZEFIX_JOBS:-2}
while (($#)); do
    case "$1" in
        -j|--jobs) jobs=${2:?--jobs needs a number}; shift ;;
        -j[0-9]*) jobs=${1#-j} ;;
        --) shift; pytest_args=(-- "$@"); break ;;
        -l|--list) bootstrap && exec "$TOOLS/bin/nox" --list ;;
        -a|--all) all=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1 (pytest arguments go after --)" >&2; exit 2 ;;
        *) cells+=("$1") ;;
    esac
    shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "--jobs needs a positive number, not '$jobs'" >&2; exit 2; }
bootstrap || { echo "could not install uv and nox into $TOOLS" >&2; exit 2; }
export PATH="$PWD/$TOOLS/bin:$PATH"
unset VIRTUAL_ENV
if ((all)); then
    export OMNI_SIZEFIX_LIVE="${OMNI_SIZEFIX_LIVE-all}" OMNI_SIZEFIX_UNIT="${OMNI_SIZEFIX_UNIT-all}"
    export OMNI_SIZEFIX_LIVE_SHIPPED="${OMNI_SIZEFIX_LIVE_SHIPPED-1}"  # a third topology
else
    export OMNI_SIZEFIX_LIVE="${OMNI_SIZEFIX_LIVE-dynamo-1.1-tf5}"
    export OMNI_SIZEFIX_UNIT="${OMNI_SIZEFIX_UNIT-dynamo-1.1-tf5}"
fi
if ((${#cells[@]} == 0 && !all)); then
    # The CI set only: test_startable runs on the doctor --json run test_cli_check shares; its
    # plain-text test alone would cost one more doctor process per Dynamo cell (1-2.5 min).
    export OMNI_SIZEFIX_DESELECT="${OMNI_SIZEFIX_DESELECT-tests/host/test_startable.py::test_plain_doctor_prints_the_sentence_not_ok}"
fi
known=$(nox --list --json | python3 -c 'import json, sys
print(" ".join(s["session"] for s in json.load(sys.stdin)))') || exit 2
if ((${#cells[@]} == 0)); then
    ((all)) && read -ra cells <<<"$known" || cells=("${ci_cells[@]}")
    rm -f reports/*.json reports/*.xml reports/*.log reports/matrix.md  # a full run: no stale cells
fi
for cell in "${cells[@]}"; do
    [[ " $known latest " == *" $cell "* ]] || { echo "unknown cell '$cell'; cells: $known latest" >&2; exit 2; }
done

say "cells: ${cells[*]} ($(df -h --output=avail . | tail -1 | tr -d ' ') free; $jobs at a time)"
mkdir -p reports
rm -f reports/.*.done

# A cell's verdict: FAILED, or its report's status (passed, or partial: core tests not run).
verdict() {
    (($1 == 0)) || { echo "FAILED ($1)"; return; }
    python3 -c 'import json, sys
try:
    print(json.load(open(sys.argv[1])).get("status", "passed"))
except (OSError, ValueError):
    print("passed")' "reports/$2.json"
}

# One cell. With more than one job at a time its output goes to reports/CELL.log and is
# printed whole when the cell ends (one cell at a time, under a lock), so logs never interleave.
run_cell() {
    local cell=$1 start=$SECONDS rc
    if ((jobs == 1)); then
        nox --session "$cell" "${pytest_args[@]}"
        rc=$?
    else
        echo "  started $cell"
        nox --session "$cell" "${pytest_args[@]}" >"reports/$cell.log" 2>&1
        rc=$?
        (
            flock 9
            say "$cell: $(verdict "$rc" "$cell"), its output:"
            cat "reports/$cell.log"
        ) 9>reports/.print.lock
    fi
    echo "$rc $((SECONDS - start))" >"reports/.$cell.done"
    return "$rc"
}

# Each cell runs in its own process group (job control on), so that Ctrl-C or a TERM here
# interrupts every running cell as Ctrl-C would one cell (pytest ends its fixtures' servers).
set -m
cell_pids=()
stop_all() {
    trap '' INT TERM
    echo "interrupted: stopping the running cells" >&2
    for pid in "${cell_pids[@]}"; do
        kill -INT -- "-$pid" 2>/dev/null
    done
    wait
    exit 130
}
trap stop_all INT TERM
running=0
for cell in "${cells[@]}"; do
    if ((running >= jobs)); then
        wait -n
        running=$((running - 1))
    fi
    run_cell "$cell" &
    cell_pids+=($!) running=$((running + 1))
done
wait

failed=0 summary=()
for cell in "${cells[@]}"; do
    rc=1 took=0  # no record: the cell's runner itself died
    [[ -f reports/.$cell.done ]] && read -r rc took <"reports/.$cell.done"
    summary+=("$(printf '  %-22s %-16s %3dm%02ds' "$cell" "$(verdict "$rc" "$cell")" \
        $((took / 60)) $((took % 60)))")
    ((rc == 0)) || failed=1
done
rm -f reports/.*.done reports/.print.lock

say "matrix report"
python3 scripts/matrix_report.py || failed=1
say "summary"
printf '%s\n' "${summary[@]}"
[[ -f reports/latest.json && " ${cells[*]} " == *" latest "* ]] && python3 -c 'import json
print("  latest resolved:", json.load(open("reports/latest.json")).get("resolved"))'
printf '  total: %dm%02ds\n' $((SECONDS / 60)) $((SECONDS % 60))
python3 scripts/matrix_report.py --totals
exit "$failed"
