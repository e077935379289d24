# Sourced by scripts/test.sh and scripts/quickstart.sh: pinned uv and nox in .venv-tools/.
# shellcheck shell=bash
TOOLS=.venv-tools
TOOLS_REQUIREMENTS=("uv==0.13.9" "nox==2026.10.20")
PY=${PYTHON:-python3}

say() { printf '\n==> %s\n' "$*"; }

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
        "$PY" -m pip --python "$TOOLS/bin/python" install -q --disable-pip-version-check \
            "${TOOLS_REQUIREMENTS[@]}" || return 1
    else
        "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check \
            "${TOOLS_REQUIREMENTS[@]}" || return 1
    fi
    echo "${TOOLS_REQUIREMENTS[*]}" >"$stamp"
}

