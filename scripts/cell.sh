#!/usr/bin/env bash
# Work inside one cell of the version matrix (a kept environment in .nox/).
#
#   scripts/cell.sh dynamo-1.2                 build the cell (or reuse it) and keep it; print its path
#   scripts/cell.sh dynamo-1.2 -- CMD ARGS...  ... then run CMD in it, e.g.
#       scripts/cell.sh dynamo-1.2 -- pytest tests/host -k size -x
#       scripts/cell.sh dynamo-1.2 -- python -c 'import dynamo.vllm.omni.utils'
#   scripts/cell.sh --refresh dynamo-1.2       reinstall omni-sizefix from the working tree
#   scripts/cell.sh --rm dynamo-1.2            remove the kept cell
#
# The build is scripts/test.sh's (same pins, same install check) without running tests.
# Commands run from the repository root with PYTHONSAFEPATH=1, so `python -c` imports the
# installed omni-sizefix wheel, not the source tree. A kept cell weighs 7-12 GB: --rm it.
set -euo pipefail

cd "$(dirname "$0")/.."
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

remove=0 refresh=0
case "${1:-}" in
    --rm) remove=1; shift ;;
    --refresh) refresh=1; shift ;;
esac
[[ $# -ge 1 && "$1" != -* ]] || usage 2
cell=$1; shift
if [[ $# -gt 0 ]]; then
    [[ "$1" == "--" ]] || usage 2
    shift
fi

environment() {  # the cell's environment, as recorded by its last nox run
    [[ -f "reports/$cell.json" ]] || return 0
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("environment", ""))' \
        "reports/$cell.json"
}

if ((remove)); then
    env_dir=$(environment)
    if [[ -n "$env_dir" && -d "$env_dir" ]]; then
        rm -rf -- "$env_dir"
        echo "removed $env_dir"
    else
        echo "no kept environment for $cell"
    fi
    exit 0
fi

env_dir=$(environment)
if ((refresh)) || [[ -z "$env_dir" || ! -x "$env_dir/bin/python" ]]; then
    OMNI_SIZEFIX_KEEP_CELLS=1 OMNI_SIZEFIX_SUITES=none scripts/test.sh "$cell"
    env_dir=$(environment)
fi
[[ -n "$env_dir" && -x "$env_dir/bin/python" ]] || { echo "cell $cell was not built" >&2; exit 1; }

if [[ $# -eq 0 ]]; then
    echo "$env_dir"
    exit 0
fi
export VIRTUAL_ENV="$PWD/$env_dir" PYTHONPATH="$PWD/tests/harness" OMNI_SIZEFIX_CELL="$cell"
export PYTHONSAFEPATH=1
export PATH="$VIRTUAL_ENV/bin:$PATH"
exec "$@"
