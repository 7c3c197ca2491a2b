# costhook's budget gate for the agents' hooks that must decide before the agent goes on
# (Claude Code's UserPromptSubmit, PreToolUse, PreSkillShellCommand; Codex's UserPromptSubmit
# and PreToolUse). Run as `/bin/sh gate.sh <costhook hook command...>`.
#
# Why a shell script: a hook process is on the agent's critical path, and starting Python
# costs ~25 ms of the ~30 ms a gate takes (issue 14). While no budget threshold can be
# crossed soon, the answer is known in advance: "go on, say nothing". costhook writes that
# down after each recording (agents/clearance.py): `<home>/gate/clearance`, valid for a few
# gates — each takes one ticket by appending a byte to `used.<generation>` — until a write
# that moves spend removes it, the config changes, or the tickets run out. Anything unusual
# (no clearance, another database or config than the one it was computed for, a path this
# script would have to expand, an odd line) runs the Python gate, which decides in full.
# This script reads no input: it never parses what the agent sends, only drains it (in the
# background, so it never waits for the end of it).

umask 077
full() { exec "$@"; }

case "${COSTHOOK_HOME-}${XDG_DATA_HOME-}${COSTHOOK_DB-}${COSTHOOK_CONFIG-}${XDG_CONFIG_HOME-}" in
  "~"*) full "$@" ;;  # Python expands a leading ~ (paths.home_dir); leave that to it
esac
if [ -n "${COSTHOOK_HOME-}" ]; then home=$COSTHOOK_HOME; else home=${XDG_DATA_HOME:-$HOME/.local/share}/costhook; fi
db=${COSTHOOK_DB:-$home/costhook.db}
config=${COSTHOOK_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/costhook/config.toml}
dir=$home/gate
file=$dir/clearance

[ -d "$dir" ] && [ -O "$dir" ] && [ ! -L "$dir" ] && [ -f "$file" ] && [ -O "$file" ] && [ ! -L "$file" ] || full "$@"
{ read -r tickets generation && read -r for_db && read -r for_config && read -r for_tz; } <"$file" || full "$@"
case "$tickets" in *[!0-9]* | "") full "$@" ;; esac
case "$generation" in *[!0-9a-f]* | "") full "$@" ;; esac
[ "$for_db" = "$db" ] && [ "$for_config" = "$config" ] && [ "$for_tz" = "${TZ-}" ] || full "$@"
# Edited since the clearance, or in the same tick of a coarse file clock (~4 ms): Python
# decides. (-nt is false when a file is missing: no config at all is no edit.)
[ ! -e "$config" ] || [ "$file" -nt "$config" ] || full "$@"

used=$dir/used.$generation
printf . >>"$used" 2>/dev/null || full "$@"
read -r taken <"$used"  # no newline: read says "end of file", and has read the dots
[ "${#taken}" -le "$tickets" ] || full "$@"
# Answer now and drain the event behind us, so the agent's write always finds a reader.
# Draining in the foreground waited for the end of the input, which a writer that keeps
# the pipe open never gives: the gate was held until the agent's hook timeout. (Our stdin
# goes through fd 3: an asynchronous command's own stdin is /dev/null before any `<&0`.)
exec 3<&0
cat <&3 3<&- >/dev/null 2>&1 &
exit 0
