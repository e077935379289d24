# Sourced by scripts/test.sh and scripts/quickstart.sh: pinned uv and nox in .venv-tools/.
# shellcheck shell=bash
TOOLS=.venv-tools
TOOLS_REQUIREMENTS=("uv==0.13.9" "nox==2026.10.20")
PY=${PYTHON:-python3}

say() { printf '\n==> %s\n' "$*"; }

# Run a command quietly: its output (pip's notices about the local configuration included)
# is shown only when it fails, so a failure is never hidden.
quietly() {
    local output
    if ! output=$("$@" 2>&1); then
        printf '%s\n' "$output" >&2
        return 1
    fi
}

bootstrap() {
    local stamp="$TOOLS/.requirements"
    if [[ -x "$TOOLS/bin/nox" && -x "$TOOLS/bin/uv" && -f "$stamp" ]] \
        && [[ "$(cat "$stamp")" == "${TOOLS_REQUIREMENTS[*]}" ]]; then
        return 0
    fi
    say "bootstrapping $TOOLS (${TOOLS_REQUIREMENTS[*]})"
    rm -rf "$TOOLS"
    if ! "$PY" -m venv "$TOOLS" 2>/dev/null; then
        # No ensurepip (e.g. Debian without python3-venv): a bare venv, filled by the outer pip.
        rm -rf "$TOOLS"
        "$PY" -m venv --without-pip "$TOOLS" || return 1
        quietly "$PY" -m pip --python "$TOOLS/bin/python" install --disable-pip-version-check \
            "${TOOLS_REQUIREMENTS[@]}" || return 1
    else
        quietly "$TOOLS/bin/python" -m pip install --disable-pip-version-check \
            "${TOOLS_REQUIREMENTS[@]}" || return 1
    fi
    echo "${TOOLS_REQUIREMENTS[*]}" >"$stamp"
}

