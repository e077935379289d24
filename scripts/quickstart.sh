#!/usr/bin/env bash
# The main job: build a host cell of the broken ai-dynamo 1.1.1 release, install
# omni-sizefix into it the way a deployment would (a wheel, pip-installed into the
# populated environment), then run `omni-sizefix doctor`, `omni-sizefix check` and
# `omni-sizefix check --live` there (the last starts the real Dynamo processes on
# 127.0.0.1 with fake engines, twice: with and without the plugin; several minutes).
#
#   bash scripts/quickstart.sh [CELL]      (CELL: a file name under tests/requirements/)
set -euo pipefail
cd "$(dirname "$0")/.."
CELL="${1:-dynamo-1.1-tf5}"
REQ="tests/requirements/$CELL.txt"
[ -f "$REQ" ] || { echo "no such cell: $REQ" >&2; exit 2; }
ENV=".cells/$CELL"
start=$(date +%s)
source scripts/tools.sh

step() { echo; echo "==> [$(( $(date +%s) - start ))s] $*"; }

bootstrap || { echo "could not install uv and nox into $TOOLS" >&2; exit 2; }
UV="$TOOLS/bin/uv"
unset VIRTUAL_ENV

step "creating $ENV (host pins from $REQ; ~10 GB, about 1 minute with a warm cache, several from an empty one)"
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
VIRTUAL_ENV="$ENV" "$UV" pip install --reinstall-package omni-sizefix dist/omni_sizefix-*.whl

step "omni-sizefix doctor"
"$ENV/bin/omni-sizefix" doctor || true

step "omni-sizefix check (real host code; engines faked, no GPU needed; -v shows the host's log lines)"
status=0
"$ENV/bin/omni-sizefix" check || status=$?

step "omni-sizefix check --live (four real Dynamo processes over HTTP; engines faked; 2 x 2-4 min to start)"
"$ENV/bin/omni-sizefix" check --live || status=$?
step "done (exit $status); remove the cell with: rm -rf $ENV"
exit "$status"
