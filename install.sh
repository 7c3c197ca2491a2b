#!/bin/sh
# costhook one-command install (re-runnable):
#   ./install.sh                 isolated venv, `costhook` on PATH, Claude Code hooks at user
#                                scope, history imported, first report printed
#   ./install.sh --test [-- ARGS] project-local .venv with the test extras, then the whole
#                                pytest suite (exit code = pytest's); never touches ~/.claude
#   ./install.sh --uninstall     remove the hooks, the `costhook` link and the venv; keep data
# Options: --no-hooks, --no-import, --statusline, -v/--verbose (show the settings diff),
#          -h/--help.
# Environment: COSTHOOK_VENV (venv dir), COSTHOOK_BIN_DIR (default ~/.local/bin),
#              PYTHON (interpreter to use; must be >= 3.11).
set -eu

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "$0"
}

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }
warn() { echo "install.sh: warning: $*" >&2; }

mode=install
hooks=1
import=1
statusline=
verbose=
while [ $# -gt 0 ]; do
    case $1 in
        --test) mode=test ;;
        --uninstall) mode=uninstall ;;
        --no-hooks) hooks= ;;
        --no-import) import= ;;
        --statusline) statusline=--statusline ;;
        -v|--verbose) verbose=--verbose ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done
if [ "$mode" != test ] && [ $# -gt 0 ]; then
    die "arguments after -- are only for --test"
fi

repo=$(cd "$(dirname "$0")" && pwd -P)

python_ok() {  # $1: interpreter; true if it runs and is >= 3.11
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
    if [ -n "${PYTHON:-}" ]; then
        python_ok "$PYTHON" || die "PYTHON=$PYTHON is not a working Python >= 3.11"
        echo "$PYTHON"; return
    fi
    for candidate in python3 python3.14 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"; return
        fi
    done
    found=$(python3 --version 2>&1) || true
    case $found in Python*) ;; *) found="no python3 on PATH" ;; esac
    die "costhook needs Python >= 3.11 ($found). Install a newer Python, or point PYTHON= at one."
}

ensure_venv() {  # $1: venv dir
    if [ -x "$1/bin/python" ] && python_ok "$1/bin/python"; then
        return
    fi
    if [ -e "$1" ] && [ ! -f "$1/pyvenv.cfg" ] && [ -n "$(ls -A "$1" 2>/dev/null)" ]; then
        die "$1 exists and is not a virtualenv; set COSTHOOK_VENV to another directory"
    fi
    py=$(find_python)
    say "creating virtualenv $1 ($("$py" --version 2>&1))"
    mkdir -p "$(dirname "$1")"
    # -I: `python -m` would otherwise look in the working directory first (a venv.py or
    # pip.py in the folder install.sh is run from would run instead); the same below.
    "$py" -I -m venv --clear "$1" || die "could not create a virtualenv with $py (on Debian/Ubuntu: apt-get install python3-venv)"
}

# -- --test: the project's test command (README, CI) --------------------------------
if [ "$mode" = test ]; then
    venv=$repo/.venv
    ensure_venv "$venv"
    # Reinstall only when the package metadata changed (pip is slow even when satisfied).
    stamp=$venv/.costhook-test-install
    want=$(cksum < "$repo/pyproject.toml")
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$venv/bin/python" -c 'import costhook, pytest' 2>/dev/null; then
        say "installing costhook (editable) with test extras into $venv"
        "$venv/bin/python" -I -m pip install --quiet --disable-pip-version-check -e "$repo[test]"
        echo "$want" > "$stamp"
    fi
    # Keep the suite away from the real ~/.claude, ~/.openclaw and costhook data.
    sandbox=$(mktemp -d "${TMPDIR:-/tmp}/costhook-test.XXXXXX")
    trap 'rm -rf "$sandbox"' EXIT
    mkdir -p "$sandbox/home"
    export HOME="$sandbox/home"
    export XDG_DATA_HOME="$sandbox/home/.local/share"
    export XDG_CONFIG_HOME="$sandbox/home/.config"
    export XDG_CACHE_HOME="$sandbox/home/.cache"
    export CLAUDE_CONFIG_DIR="$sandbox/home/.claude"
    export OPENCLAW_STATE_DIR="$sandbox/home/.openclaw"
    export CODEX_HOME="$sandbox/home/.codex"
    export COSTHOOK_HOME="$sandbox/home/.local/share/costhook"
    unset COSTHOOK_DB COSTHOOK_CONFIG COSTHOOK_VENV COSTHOOK_CODEX_CLI
    cd "$repo"
    set +e
    "$venv/bin/python" -m pytest -q "$@"
    status=$?
    set -e
    exit $status
fi

# -- normal install / uninstall -------------------------------------------------------
: "${HOME:?HOME is not set}"
venv=${COSTHOOK_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/costhook/venv}
bin_dir=${COSTHOOK_BIN_DIR:-$HOME/.local/bin}
link=$bin_dir/costhook

if [ "$mode" = uninstall ]; then
    exe=
    if [ -x "$venv/bin/costhook" ]; then exe=$venv/bin/costhook
    elif command -v costhook >/dev/null 2>&1; then exe=$(command -v costhook)
    fi
    if [ -n "$exe" ]; then
        say "removing costhook hooks"
        "$exe" uninstall || die "costhook uninstall failed; settings were left as they are"
        # The OpenClaw plugin install registered (its config names this venv's costhook).
        if [ -n "${OPENCLAW_CONFIG_PATH:-}" ] || [ -d "${OPENCLAW_STATE_DIR:-${OPENCLAW_HOME:-$HOME}/.openclaw}" ]; then
            "$exe" uninstall --agent openclaw || warn "removing the OpenClaw plugin failed; run \`costhook uninstall --agent openclaw\`"
        fi
        if [ -f "${CODEX_HOME:-$HOME/.codex}/hooks.json" ]; then
            "$exe" uninstall --agent codex || warn "removing the Codex hooks failed; run \`costhook uninstall --agent codex\`"
        fi
    else
        warn "no costhook executable found; remove its hooks from ~/.claude/settings.json by hand"
    fi
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$venv/bin/costhook" ]; then
        rm -f "$link"
        say "removed $link"
    fi
    if [ -f "$venv/pyvenv.cfg" ]; then
        rm -rf "$venv"
        say "removed $venv"
    fi
    say "costhook's data was kept (costhook.db, config); delete it by hand if you want it gone"
    exit 0
fi

ensure_venv "$venv"
# costhook's data folder is private (0700), as costhook itself makes it; the default venv
# lives in it, and ensure_venv made it with the umask's mode.
data_dir=${COSTHOOK_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/costhook}
(umask 077 && mkdir -p "$data_dir") && chmod 700 "$data_dir" || die "cannot make $data_dir private"
say "installing costhook from $repo into $venv"
"$venv/bin/python" -I -m pip install --quiet --disable-pip-version-check --upgrade "$repo"
[ -x "$venv/bin/costhook" ] || die "pip did not install $venv/bin/costhook"

mkdir -p "$bin_dir"
if [ -L "$link" ] || [ ! -e "$link" ]; then
    if [ -L "$link" ] && [ "$(readlink "$link")" != "$venv/bin/costhook" ]; then
        warn "replacing $link (was -> $(readlink "$link"))"
    fi
    # -n: a link to a folder is replaced, not followed (the new link made inside that folder)
    ln -sfn "$venv/bin/costhook" "$link"
    say "linked $link -> $venv/bin/costhook"
else
    warn "$link exists and is not a symlink; left it alone (use $venv/bin/costhook)"
fi
case ":${PATH:-}:" in
    *":$bin_dir:"*) ;;
    *) warn "$bin_dir is not on your PATH; add it (e.g. export PATH=\"$bin_dir:\$PATH\" in your shell profile)" ;;
esac

costhook=$venv/bin/costhook
if [ -n "$hooks" ]; then
    say "registering Claude Code hooks (user scope)"
    # shellcheck disable=SC2086  # $statusline and $verbose are empty or one word
    "$costhook" install --scope user $statusline $verbose || die "costhook install failed (nothing else was changed)"
    openclaw_state=${OPENCLAW_STATE_DIR:-${OPENCLAW_HOME:-$HOME}/.openclaw}
    if [ -d "$openclaw_state" ]; then
        say "registering the OpenClaw plugin ($openclaw_state)"
        # shellcheck disable=SC2086
        "$costhook" install --agent openclaw $verbose || warn "OpenClaw plugin install failed; run \`costhook install --agent openclaw\` later"
    fi
    codex_home=${CODEX_HOME:-$HOME/.codex}
    if [ -d "$codex_home" ] || command -v codex >/dev/null 2>&1; then
        say "registering Codex CLI hooks ($codex_home/hooks.json), trusted through codex app-server"
        # shellcheck disable=SC2086
        "$costhook" install --agent codex $verbose || warn "Codex hooks install failed; run \`costhook install --agent codex\` later"
    fi
fi
if [ -n "$import" ]; then
    say "importing history"
    "$costhook" import || warn "history import failed; run \`costhook import\` later"
fi
say "first report"
"$costhook" report --by day || warn "\`costhook report --by day\` failed"
say "done. costhook records every Claude Code session from now on; see \`costhook --help\`"
