"""Install and remove costhook's hooks in OpenAI Codex CLI, and have Codex trust them.

Codex reads command hooks from `$CODEX_HOME/hooks.json` (default `~/.codex`), the same
shape as Claude Code's `hooks` table: `{"hooks": {Event: [{"matcher": "*", "hooks":
[{"type": "command", "command": ..., "timeout": s}]}]}}`. `install_codex()` merges
costhook's entries into it like the Claude settings (agents/settings.py: other hooks
kept, backup, atomic write, idempotent, `--dry-run` diff); `uninstall_codex()` removes
exactly ours.

**Trust.** Codex 0.171.0 runs a new or changed non-managed hook only once it is trusted,
and skips it without a word until then (no warning, not even in `codex exec`). Trust is
`[hooks.state."<abs hooks.json>:<event>:<group>:<handler>"] trusted_hash = "sha256:…"` in
`$CODEX_HOME/config.toml`; the hash covers event, matcher, command and timeout and is
Codex's to compute. So install asks Codex itself, the way its `/hooks` screen does:
`codex app-server` (JSON-RPC lines on stdio), `hooks/list` (each hook's key, currentHash,
trustStatus), `config/batchWrite` of the trusted hashes (Codex writes its own config.toml;
costhook backs it up first), `hooks/list` again to verify. Only costhook's own hooks are
trusted, never someone else's — except that a hook the user had trusted before our edit
keeps its trust when our edit moved it to another key (removing our group shifts the
group numbers after it). Without a `codex` to ask (not on PATH, no
$COSTHOOK_CODEX_CLI), install says exactly what to do by hand.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from costhook.agents import settings
from costhook.agents.codex.hook import SPENDING_TOOL_PREFIX
from costhook.agents.settings import InstallResult, gate_launcher, hook_launcher, mentions_costhook, runs_costhook
from costhook.errors import InstallError
from costhook.text import term_text

AGENT = "codex"

# The events costhook listens to (agents/codex/hook.py). Codex 0.171.0 ignores a name it
# does not know; Interrupt is left out (nothing to read or decide there).
HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse", "PreCompact",
               "PostCompact", "SubagentStart", "SubagentStop", "Stop", "SessionEnd")
TOOL_EVENTS = ("PreToolUse", "PermissionRequest", "PostToolUse")  # their matcher filters on the tool name
# The events whose answer can stop work before it is billed (see hook.py): their hook
# holds Codex until it answers, or goes on in the background at once when it finds
# nothing to decide. Every other event records only, detached from the start.
GATE_EVENTS = ("UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse")
# The gates that say "go on" most of the time answer through agents/gate.sh while a
# clearance holds (agents/clearance.py), without starting Python.
SHELL_GATES = ("UserPromptSubmit", "PreToolUse")
# Seconds. Codex's default is 600 s, but 1 s for SessionEnd (which it clamps to 3 s at
# most); a timed-out hook is killed and Codex goes on (fail-open), so these only bound a
# stuck hook. The detached events return at once whatever they do.
HOOK_TIMEOUTS = {
    "SessionStart": 5,
    "UserPromptSubmit": 5,
    "PreToolUse": 5,
    "PermissionRequest": 5,
    "PostToolUse": 10,
    "PreCompact": 10,
    "PostCompact": 10,
    "SubagentStart": 10,
    "SubagentStop": 10,
    "Stop": 10,
    "SessionEnd": 3,
}
APP_SERVER_TIMEOUT_S = 20
TRUSTED = "trusted"


# -- locations -----------------------------------------------------------------


def codex_home() -> Path:
    """`$CODEX_HOME`, else `~/.codex` (Codex's own rule)."""
    explicit = os.environ.get("CODEX_HOME", "").strip()
    return Path(explicit).expanduser().absolute() if explicit else Path.home() / ".codex"


def hooks_path() -> Path:
    return codex_home() / "hooks.json"


def codex_cli() -> list[str] | None:
    """The command that runs Codex: `$COSTHOOK_CODEX_CLI` (shell words), else `codex` on
    PATH; None when there is none."""
    explicit = os.environ.get("COSTHOOK_CODEX_CLI", "").strip()
    if explicit:
        return shlex.split(explicit)
    found = shutil.which("codex")
    return [found] if found else None


# -- our entries -----------------------------------------------------------------


def not_prefixed(prefix: str) -> str:
    """A regex matching every whole tool name that does not start with `prefix`, without
    lookaround (Codex's matcher is a Rust regex, which has none: a `(?!...)` matcher never
    matches, measured on 0.171.0)."""
    differs = "|".join(f"{prefix[:i]}[^{prefix[i]}]" for i in range(len(prefix)))
    shorter = "|".join(prefix[:i] for i in range(1, len(prefix)))
    return f"^(?:{differs}).*$|^(?:{shorter})?$"


# After a tool, the hook can decide only when a sub-agent spent while it ran (hook.decides):
# PostToolUse gets two matcher groups, the gate for the sub-agent tools and a background
# hook for every other tool, so an ordinary tool call waits for no interpreter.
SPLIT_EVENTS = ("PostToolUse",)
SPENDING_MATCHER = f"^{SPENDING_TOOL_PREFIX}.*$"
OTHER_TOOLS_MATCHER = not_prefixed(SPENDING_TOOL_PREFIX)


def hook_commands(event: str) -> str | list:
    """hook_command, or for a split event (matcher, command) pairs: the gate, then the rest."""
    if event in SPLIT_EVENTS:
        return [(SPENDING_MATCHER, hook_command(event)), (OTHER_TOOLS_MATCHER, hook_command(event, gate=False))]
    return hook_command(event)


def hook_command(event: str, gate: bool | None = None) -> str:
    """`<launcher> hook --agent codex` for a gate (settings.hook_launcher); for any other event the same hook
    in its own session (`setsid -f`, output dropped: the shell returns at once and the
    work survives Codex's exit), or, without setsid, `--background` (it detaches itself)."""
    exe = hook_launcher()
    if event in GATE_EVENTS if gate is None else gate:
        return f"{gate_launcher() if event in SHELL_GATES else exe} hook --agent {AGENT}"
    if shutil.which("setsid"):
        return f"setsid -f {exe} hook --agent {AGENT} --background >/dev/null 2>&1"
    return f"{exe} hook --agent {AGENT} --background"


def is_costhook_hook(handler: object) -> bool:
    """One of ours: `<any dir>/costhook hook --agent codex`, also as edited since
    (`... 2>/dev/null`, `VAR=1 ...`, started by `setsid -f`)."""
    return isinstance(handler, dict) and is_costhook_command(handler.get("command"))


def is_costhook_command(command: object) -> bool:
    return runs_costhook(command, "hook", agent=AGENT)


def _handlers(hooks: dict, event: str):
    """(group index, handler index, handler) of every handler of `event`."""
    groups = hooks.get(event)
    for g, group in enumerate(groups if isinstance(groups, list) else []):
        handlers = group.get("hooks") if isinstance(group, dict) else None
        for h, handler in enumerate(handlers if isinstance(handlers, list) else []):
            yield g, h, handler


def our_commands(data: dict) -> dict[str, str]:
    """Event -> command of each costhook hook in a hooks.json's data (first one per event)."""
    hooks = data.get("hooks")
    found: dict[str, str] = {}
    for event in hooks if isinstance(hooks, dict) else ():
        for _, _, handler in _handlers(hooks, event):
            if is_costhook_hook(handler):
                found.setdefault(event, handler["command"])
    return found


def leftover_commands(data: dict) -> list[str]:
    """Commands that still run costhook after an uninstall (a wrapper, `x && costhook hook`)."""
    hooks = data.get("hooks")
    return [f"hooks.{event}: {handler['command']}"
            for event in (hooks if isinstance(hooks, dict) else ())
            for _, _, handler in _handlers(hooks, event)
            if isinstance(handler, dict) and mentions_costhook(handler.get("command"))]


# -- merging ---------------------------------------------------------------------


def _desired_group(event: str, command: str) -> dict:
    group: dict = {"matcher": "*"} if event in TOOL_EVENTS else {}
    group["hooks"] = [{"type": "command", "command": command, "timeout": HOOK_TIMEOUTS[event]}]
    return group


def _groups(hooks: dict, event: str) -> list:
    groups = hooks.get(event)
    if not isinstance(groups, list):
        raise InstallError(f'"hooks.{event}" in {hooks_path()} is not a JSON list; fix it by hand, then re-run')
    return groups


def _remove_ours(hooks: dict, event: str) -> None:
    """Drop our handlers from `event`; a group (or event) they leave empty goes too."""
    groups = _groups(hooks, event)
    kept = []
    for group in groups:
        handlers = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(handlers, list) or not any(is_costhook_hook(h) for h in handlers):
            kept.append(group)
            continue
        remaining = [h for h in handlers if not is_costhook_hook(h)]
        if remaining:
            kept.append({**group, "hooks": remaining})
    if kept:
        hooks[event] = kept
    elif groups:
        del hooks[event]


def _install_split(hooks: dict, event: str, pairs: list) -> None:
    """Our groups on `event`, one per (matcher, command): already so, nothing changes; else
    the first takes the place of our first group (the trust keys of the hooks after it
    stay), our others go, and the rest are appended (no other hook moves)."""
    desired = [{"matcher": matcher, "hooks": [{"type": "command", "command": command, "timeout": HOOK_TIMEOUTS[event]}]}
               for matcher, command in pairs]
    groups = _groups(hooks, event) if event in hooks else []
    mine = [i for i, g in enumerate(groups) if isinstance(g, dict) and isinstance(g.get("hooks"), list)
            and g["hooks"] and all(is_costhook_hook(h) for h in g["hooks"])]
    ours = sum(1 for _, _, h in _handlers(hooks, event) if is_costhook_hook(h))
    if [groups[i] for i in mine] == desired and ours == len(desired):
        return
    kept, placed = [], False
    for index, group in enumerate(groups):
        if index in mine:
            if not placed:
                kept.append(desired[0])
                placed = True
            continue
        handlers = group.get("hooks") if isinstance(group, dict) else None
        if isinstance(handlers, list) and any(is_costhook_hook(h) for h in handlers):
            group = {**group, "hooks": [h for h in handlers if not is_costhook_hook(h)]}
        kept.append(group)
    hooks[event] = kept + (desired[1:] if placed else desired)


def _install_event(hooks: dict, event: str, command) -> None:
    """Our group on `event`: an existing group of ours only (same place: the trust keys of
    the hooks after it stay), else a new group at the end (no other hook moves)."""
    if not isinstance(command, str):
        _install_split(hooks, event, command)
        return
    desired = _desired_group(event, command)
    if event not in hooks:
        hooks[event] = [desired]
        return
    groups = _groups(hooks, event)
    for index, group in enumerate(groups):
        handlers = group.get("hooks") if isinstance(group, dict) else None
        if isinstance(handlers, list) and handlers and all(is_costhook_hook(h) for h in handlers):
            # Every group before this one keeps at least one handler that is not ours (else
            # it would be this one), so the removal leaves them where they are.
            _remove_ours(hooks, event)
            hooks.setdefault(event, []).insert(index, desired)
            return
    _remove_ours(hooks, event)
    hooks.setdefault(event, []).append(desired)


def merge_install(data: dict, commands: dict[str, str]) -> dict:
    """A copy of the hooks.json data with costhook's hooks on HOOK_EVENTS (and none elsewhere)."""
    data = json.loads(json.dumps(data))
    hooks = settings.json_object(data, "hooks", True, f'"hooks" in {hooks_path()} is not a JSON object')
    for event in list(hooks):
        if event not in HOOK_EVENTS and isinstance(hooks[event], list):
            _remove_ours(hooks, event)  # left over from an older costhook
    for event in HOOK_EVENTS:
        _install_event(hooks, event, commands[event])
    return data


def merge_uninstall(data: dict) -> dict:
    """A copy of the hooks.json data without costhook's hooks."""
    data = json.loads(json.dumps(data))
    hooks = settings.json_object(data, "hooks", False, f'"hooks" in {hooks_path()} is not a JSON object')
    if hooks:
        for event in list(hooks):
            if isinstance(hooks[event], list):
                _remove_ours(hooks, event)
        if not hooks:
            del data["hooks"]
    return data


# -- trust, through `codex app-server` ---------------------------------------------


class AppServer:
    """`codex app-server`: JSON-RPC 2.0, one object per line on stdin/stdout."""

    def __init__(self, command: list[str]):
        try:
            self.process = subprocess.Popen(
                [*command, "app-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, cwd=str(codex_home().parent if codex_home().parent.is_dir() else "/"))
        except OSError as exc:
            raise InstallError(f"could not start `{shlex.join(command)} app-server`: {exc.strerror or exc}") from None
        self.buffer = b""
        self.next_id = 0
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def __enter__(self):
        self.request("initialize", {"clientInfo": {"name": "costhook", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "initialized"})
        return self

    def __exit__(self, *exc):
        self.selector.close()
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        return False

    def send(self, message: dict) -> None:
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            raise InstallError("`codex app-server` exited early") from None

    def request(self, method: str, params: dict):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        deadline = time.monotonic() + APP_SERVER_TIMEOUT_S
        while True:
            line = self._line(deadline)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("id") == self.next_id:
                if "error" in message:
                    error = message["error"]
                    detail = error.get("message") if isinstance(error, dict) else error
                    raise InstallError(f"codex app-server {method}: {term_text(detail)[:300]}")
                return message.get("result")

    def _line(self, deadline: float) -> bytes:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise InstallError(f"`codex app-server` did not answer within {APP_SERVER_TIMEOUT_S} s")
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                raise InstallError("`codex app-server` exited early")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def hooks(self) -> list[dict]:
        result = self.request("hooks/list", {}) or {}
        return [hook for entry in result.get("data", []) if isinstance(entry, dict)
                for hook in entry.get("hooks", []) if isinstance(hook, dict)]

    def trust(self, hooks: list[dict]) -> None:
        state = {hook["key"]: {"trusted_hash": hook["currentHash"]} for hook in hooks}
        self.request("config/batchWrite", {"edits": [
            {"keyPath": "hooks.state", "value": state, "mergeStrategy": "upsert"}]})


@dataclass
class Trust:
    """What Codex says about the hooks of one hooks.json."""

    ours: list[dict] = field(default_factory=list)  # costhook's hooks there, as hooks/list gives them
    restored: int = 0  # other hooks whose trust we carried over to their new key
    elsewhere: list[dict] = field(default_factory=list)  # costhook's Codex hooks in other files (config.toml, ...)

    @property
    def untrusted(self) -> list[dict]:
        return [hook for hook in self.ours if hook.get("trustStatus") != TRUSTED]


def _in_file(hooks: list[dict], path: Path) -> list[dict]:
    where = {str(path), os.path.realpath(path)}
    return [h for h in hooks if h.get("sourcePath") in where and not h.get("isManaged")
            and isinstance(h.get("key"), str) and isinstance(h.get("currentHash"), str)]


def _elsewhere(hooks: list[dict], path: Path) -> list[dict]:
    """costhook's Codex hooks that Codex reads from another file than `path` (its
    config.toml, a project's .codex/): they would run as well as ours."""
    mine = {id(h) for h in _in_file(hooks, path)}
    return [h for h in hooks if id(h) not in mine and is_costhook_command(h.get("command"))]


def check_trust(path: Path, command: list[str]) -> Trust:
    """Codex's view of costhook's hooks in `path` (for doctor); InstallError when Codex
    cannot be asked."""
    with AppServer(command) as server:
        hooks = server.hooks()
    return Trust([h for h in _in_file(hooks, path) if is_costhook_command(h.get("command"))],
                 elsewhere=_elsewhere(hooks, path))


def list_file_hooks(path: Path, command: list[str]) -> list[dict]:
    with AppServer(command) as server:
        return _in_file(server.hooks(), path)


def trust_ours(path: Path, command: list[str], before: list[dict] | None) -> Trust:
    """Trust costhook's hooks in `path` that Codex does not trust yet, and re-trust another
    hook that `before` (the list before our edit) shows trusted with the same hash; then
    list again and report."""
    with AppServer(command) as server:
        now = _in_file(server.hooks(), path)
        ours = [h for h in now if is_costhook_command(h.get("command"))]
        was_trusted = {(h.get("eventName"), h["currentHash"]) for h in before or ()
                       if h.get("trustStatus") == TRUSTED}
        moved = [h for h in now if h not in ours and h.get("trustStatus") != TRUSTED
                 and (h.get("eventName"), h["currentHash"]) in was_trusted]
        todo = [h for h in ours if h.get("trustStatus") != TRUSTED] + moved
        if todo:
            backup_config()
            server.trust(todo)
        listed = server.hooks()
    after = _in_file(listed, path)
    return Trust([h for h in after if is_costhook_command(h.get("command"))], restored=len(moved),
                 elsewhere=_elsewhere(listed, path))


def elsewhere_note(trust: Trust) -> str:
    """A line naming costhook hooks that Codex also runs from other files, or ''."""
    files = sorted({term_text(h.get("sourcePath") or "?") for h in trust.elsewhere})
    if not files:
        return ""
    return (f"Note: Codex also runs costhook's hook from {', '.join(files)} ({len(trust.elsewhere)} entries): "
            "each event then runs it twice; remove those entries by hand.")


def backup_config() -> Path | None:
    """A copy of `$CODEX_HOME/config.toml` before Codex writes the trust into it."""
    config = codex_home() / "config.toml"
    snapshot = settings.Snapshot(config, settings.write_target(config), None, {})
    try:
        snapshot.raw = settings.read_bounded(snapshot.target)
    except FileNotFoundError:
        return None
    return settings.backup_file(snapshot)


def by_hand(count: int) -> str:
    """What to do when costhook cannot trust its hooks itself."""
    return (f"Codex skips new or changed hooks silently until they are trusted: start `codex`, "
            f"type /hooks and trust the {count} costhook hooks (or set COSTHOOK_CODEX_CLI to your "
            "codex command and run `costhook install --agent codex` again). `costhook doctor` checks.")


# -- install / uninstall -----------------------------------------------------------------


def _done(verb: str, path: Path, backup: Path | None, data: dict) -> str:
    if verb == "install":
        events = our_commands(data)
        message = f"Installed costhook's Codex hooks ({', '.join(e for e in HOOK_EVENTS if e in events)}) in {path}."
    else:
        message = f"Removed costhook's Codex hooks from {path}."
    return message + (f" Backup: {backup}" if backup is not None else "")


def _before(path: Path, command: list[str] | None) -> list[dict] | None:
    """The hooks of `path` as Codex lists them before our edit (None: Codex not there)."""
    if command is None or not path.exists():
        return None
    try:
        return list_file_hooks(path, command)
    except InstallError:
        return None


def install_codex(dry_run: bool = False) -> InstallResult:
    """Merge costhook's hooks into `$CODEX_HOME/hooks.json` and have Codex trust them."""
    path = hooks_path()
    commands = {event: hook_commands(event) for event in HOOK_EVENTS}
    command = codex_cli()
    before = None if dry_run else _before(path, command)
    nothing = f"costhook's Codex hooks are already in {path}; nothing changed."
    result = settings.apply(path, lambda data: merge_install(data, commands), dry_run, "install", nothing, _done)
    if dry_run:
        result.message += (f" Codex would be asked to trust them (through `{shlex.join(command)} app-server`)."
                           if command else " " + by_hand(len(HOOK_EVENTS)))
        return result
    if command is None:
        result.message += "\n" + by_hand(len(HOOK_EVENTS))
        return result
    try:
        trust = trust_ours(path, command, before)
    except InstallError as exc:
        result.message += f"\nCould not ask Codex to trust them ({exc}). " + by_hand(len(HOOK_EVENTS))
        return result
    if trust.untrusted:
        result.message += (f"\nCodex still does not trust {len(trust.untrusted)} of them "
                           f"({', '.join(term_text(h.get('eventName', '?')) for h in trust.untrusted)}). " + by_hand(len(HOOK_EVENTS)))
    else:
        result.message += f"\nCodex trusts all {len(trust.ours)} costhook hooks (checked with `codex app-server`)."
    if trust.restored:
        result.message += f" Kept the trust of {trust.restored} other hooks that moved in the file."
    if trust.elsewhere:
        result.message += "\n" + elsewhere_note(trust)
    return result


def uninstall_codex(dry_run: bool = False) -> InstallResult:
    """Remove costhook's hooks from `$CODEX_HOME/hooks.json`; keep everything else (and the
    trust of the other hooks, which removing our groups may move)."""
    path = hooks_path()
    command = codex_cli()
    before = None if dry_run else _before(path, command)
    nothing = f"No costhook hooks in {path}; nothing changed."
    result = settings.apply(path, merge_uninstall, dry_run, "remove", nothing, _done)
    if result.changed and before and command:
        try:
            trust = trust_ours(path, command, before)
            if trust.restored:
                result.message += f" Kept the trust of {trust.restored} other hooks that moved in the file."
        except InstallError as exc:
            result.message += f"\nCould not check the trust of the other hooks with Codex ({exc})."
    after = settings.read_settings(path).data
    left = leftover_commands(merge_uninstall(after) if dry_run else after)
    if left:
        result.leftovers = tuple(left)
        result.message += (f"\nStill running costhook in {path} (each does more than run it, so costhook "
                           "left it; edit it by hand):\n" + "\n".join(f"  {line}" for line in left))
    return result
