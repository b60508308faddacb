# Sourced by scripts/demo and scripts/test: make .venv (if missing) and install l4d2ctl into it.
# Usage: ensure_venv [EXTRA]   e.g. ensure_venv test
ensure_venv() {
    local python
    python=$(command -v python3.11 || command -v python3) \
        || { echo "l4d2ctl needs Python >= 3.11 (python3.11 or python3 on PATH)" >&2; return 2; }
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv || return 2
    fi
    .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "l4d2ctl needs Python >= 3.11 in .venv" >&2; return 2; }
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${1:+[$1]}" || return 2
    # Bytecode, as a regular install leaves it: an editable install compiles nothing, and where
    # PYTHONDONTWRITEBYTECODE is set no run does either, so every l4d2ctl would compile itself from source.
    .venv/bin/python -m compileall -q commands ledger projections host_adapters >/dev/null
}
