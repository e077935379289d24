#!/usr/bin/env bash
# The project's test command: the version matrix, one cell after another.
#
#   scripts/test.sh                      the CI set (below), then the matrix report
#   scripts/test.sh --all                every cell of the matrix, the live suite in every Dynamo
#                                        cell (on demand: several times as long as CI)
#   scripts/test.sh dynamo-1.2           one cell (several names: several cells)
#   scripts/test.sh latest               the canary: newest ai-dynamo + vLLM-Omni, resolved
#                                        from the index now (never part of the default run)
#   scripts/test.sh dynamo-1.2 -- -k size    arguments after -- go to pytest
#   scripts/test.sh --list               the cells
#
# Needs only python3 (>= 3.10) with pip: uv and nox are installed into .venv-tools/.
# Environment: OMNI_SIZEFIX_KEEP_CELLS=1 keeps (and reuses) cell environments in .nox/;
# OMNI_SIZEFIX_PYTHON picks the cells' Python (default 3.11); PYTHON the bootstrap interpreter.
# OMNI_SIZEFIX_LIVE names the cells that also run tests/live (the real Dynamo processes over
# HTTP, several minutes a cell): default dynamo-1.1-tf5 (with --all: 'all', every Dynamo
# cell, and OMNI_SIZEFIX_LIVE_SHIPPED=1); a comma-separated list of cells; '' none.
# Results: reports/<cell>.json and reports/matrix.md; exit status 1 if any cell failed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
source scripts/tools.sh

cells=()
pytest_args=()
list_only=0
all=0
while (($#)); do
    case "$1" in
        --) shift; pytest_args=("$@"); break ;;
        -l|--list) list_only=1 ;;
        -a|--all) all=1 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1 (pytest arguments go after --)" >&2; exit 2 ;;
        *) cells+=("$1") ;;
    esac
    shift
done

say "free disk"
df -h .

bootstrap || { echo "could not install uv and nox into $TOOLS" >&2; exit 2; }
export PATH="$PWD/$TOOLS/bin:$PATH"
# Cells build with uv; keep its cache where it is, but never let a stale VIRTUAL_ENV leak in.
unset VIRTUAL_ENV

all_cells=()
while IFS= read -r cell; do all_cells+=("$cell"); done < <(
    nox --list --json | "$TOOLS/bin/python" -c \
        'import json, sys; print("\n".join(s["session"] for s in json.load(sys.stdin)))'
)
# Cells that run only when named (nox sessions with default=False): the canary.
on_demand=(latest)
# The CI set (kept under an hour on a fresh machine): the package alone, the top-level-size
# vLLM-Omni, and one cell per distinct ai-dynamo omni code base (the broken 1.1 as a GLM-Image
# deployment runs it). ai-dynamo 1.3's utils.py is 1.2's and 1.7.0.dev's utils.py and
# stage_worker.py are 1.6's (byte-identical in the wheels): their cells,
# and every other cell (another vLLM-Omni or transformers beside the same Dynamo), run with
# --all or by name.
ci_cells=(no-host omni-0.18 dynamo-1.1-tf5 dynamo-1.2-tf5 dynamo-1.4 dynamo-1.5 dynamo-1.6)
# The live suite (two or three topology start-ups, 6-16 min a cell): CI runs it in one cell to
# stay under an hour; --all runs it in every cell with ai-dynamo. OMNI_SIZEFIX_LIVE overrides.
if ((all)); then
    export OMNI_SIZEFIX_LIVE="${OMNI_SIZEFIX_LIVE-all}"
    # ... with the shipped stage config too (non-square sizes both ways, 2048x2048 where the
    # frontend takes it): a third topology per cell.
    export OMNI_SIZEFIX_LIVE_SHIPPED="${OMNI_SIZEFIX_LIVE_SHIPPED-1}"
else
    export OMNI_SIZEFIX_LIVE="${OMNI_SIZEFIX_LIVE-dynamo-1.1-tf5}"
fi
if ((${#all_cells[@]} == 0)); then
    echo "no cells found (nox --list failed?)" >&2
    exit 2
fi
if ((list_only)); then
    nox --list
    exit 0
fi

full=0
if ((${#cells[@]} == 0)); then
    if ((all)); then
        cells=("${all_cells[@]}")
    else
        cells=("${ci_cells[@]}")
    fi
    full=1
fi
for cell in "${cells[@]}"; do
    if [[ " ${all_cells[*]} ${on_demand[*]} " != *" $cell "* ]]; then
        echo "unknown cell '$cell'; cells: ${all_cells[*]}; on demand: ${on_demand[*]}" >&2
        exit 2
    fi
done

mkdir -p reports
if ((full)); then
    # A full run rebuilds the whole matrix: no results of cells that no longer exist.
    rm -f reports/*.json reports/matrix.md
fi

say "cells: ${cells[*]}"
declare -A result duration
failed=0
interrupted=0
for cell in "${cells[@]}"; do
    say "cell $cell ($(df -h --output=avail . | tail -1 | tr -d ' ') free)"
    start=$SECONDS
    if ((${#pytest_args[@]})); then
        nox --session "$cell" -- "${pytest_args[@]}"
    else
        nox --session "$cell"
    fi
    rc=$?
    duration[$cell]=$((SECONDS - start))
    if ((rc == 0)); then
        result[$cell]=passed
    else
        result[$cell]="FAILED (nox exit $rc)"
        failed=1
        if ((rc == 130 || rc == 137 || rc == 143)); then
            result[$cell]="INTERRUPTED"
            interrupted=1
            break
        fi
    fi
done

if [[ -d .nox/.trash ]]; then
    say "waiting for removed cells to be deleted"
    rm -rf .nox/.trash 2>/dev/null || true
fi

say "matrix report"
"$TOOLS/bin/python" scripts/matrix_report.py || failed=1

say "summary (free disk: $(df -h --output=avail . | tail -1 | tr -d ' '))"
for cell in "${cells[@]}"; do
    [[ -n "${result[$cell]:-}" ]] || continue
    printf '  %-20s %-28s %3dm%02ds\n' "$cell" "${result[$cell]}" \
        $((duration[$cell] / 60)) $((duration[$cell] % 60))
    if [[ " ${on_demand[*]} " == *" $cell "* && -f "reports/$cell.json" ]]; then
        "$TOOLS/bin/python" -c 'import json, sys
r = json.load(open(sys.argv[1])).get("resolved") or {}
print("  " + sys.argv[2] + " resolved: " + ", ".join(
    f"{k} {r[k]}" for k in ("ai-dynamo", "vllm", "vllm-omni") if k in r) + (
    f" ({r[\"resolved\"]})" if "resolved" in r else ""))' "reports/$cell.json" "$cell"
    fi
done
printf '  total: %dm%02ds\n' $((SECONDS / 60)) $((SECONDS % 60))
# The closing line: every cell's tests counted together.
"$TOOLS/bin/python" scripts/matrix_report.py --totals || failed=1

if ((interrupted)); then
    exit 130
fi
exit "$failed"
