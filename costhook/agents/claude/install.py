"""Register and remove costhook's hooks in Claude Code's settings files.

Settings files are merged, never overwritten: every foreign hook, matcher group and
setting is kept; ours are found by their command (`<dir>/costhook hook`), so a second
install changes nothing and an install after the venv moved replaces the old path.
Every change is backed up first and written atomically (agents/settings.py).

Standard library only; the CLI calls these functions and prints `message` and `diff`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from costhook.agents.settings import (
    InstallResult,
    apply,
    gate_launcher,
    gate_words,
    hook_launcher,
    is_launcher,
    json_object,
    mentions_costhook,
    read_settings,
    runs_costhook,
)
from costhook.agents.claude.hook import SPENDING_TOOLS
from costhook.errors import InstallError

HOOK_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PreSkillShellCommand",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SubagentStop",
    "SessionEnd",
)

# Events newer than the oldest supported Claude Code (2.1.330), with the first version that
# knows them. An older CLI ignores an unknown event (2.1.330: a settings warning, the other
# hooks still run; measured), so it is left out only when the installed CLI is known to
# be older; when `claude --version` cannot tell, everything is installed.
EVENT_SINCE = {"PreSkillShellCommand": (2, 1, 332)}

# Events whose matcher filters on the tool name; the others get no matcher (= all).
TOOL_EVENTS = ("PreToolUse", "PreSkillShellCommand", "PostToolUse", "PostToolUseFailure")

# Per-hook timeouts in seconds. Claude Code's default is 600 s, and a timed-out hook is
# non-blocking, so a small cap only bounds how long a stuck costhook can stall the agent.
# Budget checks (prompt, PreToolUse) must stay snappy; ingest events get more room for a
# first read of a long transcript. SessionEnd's whole budget (1.5 s by default) is raised
# to the largest `timeout` in the settings files (cap 60 s), so nothing here is large.
HOOK_TIMEOUTS = {
    "SessionStart": 5,
    "UserPromptSubmit": 5,
    "PreToolUse": 5,
    "PreSkillShellCommand": 5,
    "PostToolUse": 10,
    "PostToolUseFailure": 5,
    "Stop": 10,
    "SubagentStop": 10,
    "SessionEnd": 5,
}

SCOPES = ("user", "project", "local")


# -- locations -----------------------------------------------------------------


def claude_settings_path(scope: str, project_dir: Path | None = None) -> Path:
    """user: `$CLAUDE_CONFIG_DIR/settings.json` or `~/.claude/settings.json`;
    project: `<project>/.claude/settings.json`; local: `<project>/.claude/settings.local.json`.
    """
    if scope == "user":
        config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
        base = Path(config_dir).expanduser() if config_dir else Path.home() / ".claude"
        return base / "settings.json"
    if scope in ("project", "local"):
        project = Path(project_dir).expanduser() if project_dir else Path.cwd()
        name = "settings.json" if scope == "project" else "settings.local.json"
        return project.absolute() / ".claude" / name
    raise InstallError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")


# The events whose answer can stop the agent run in the turn (and go on in the background
# at once when they find nothing to decide: hook.decides); every other event only records,
# so its hook returns at once and does its work detached (after the agent has moved on,
# even after it has exited): issue 14 measured the hooks at +53 % of a short `claude -p`
# turn when all of them held it.
GATE_EVENTS = ("UserPromptSubmit", "PreToolUse", "PreSkillShellCommand", "PostToolUse", "PostToolUseFailure")

# After a tool, the hook can decide only when a sub-agent spent while the tool ran
# (hook.decides): these events get two matcher groups, the gate for the spending tools
# and a background hook for every other tool, so an ordinary tool call waits for no
# interpreter (issue 14: ~20 ms of each tool call). Both Claude Code versions honour the
# JavaScript regex (measured).
SPLIT_EVENTS = ("PostToolUse", "PostToolUseFailure")

# The gates that say "go on" most of the time, through agents/gate.sh: a clearance written
# after each recording answers them without starting Python (agents/clearance.py).
SHELL_GATES = ("UserPromptSubmit", "PreToolUse", "PreSkillShellCommand")
SPENDING_MATCHER = "|".join(SPENDING_TOOLS)
OTHER_TOOLS_MATCHER = f"^(?!(?:{SPENDING_MATCHER})$).*"


def hook_command(event: str = "PreToolUse", in_turn: bool | None = None) -> str:
    """`<launcher> hook` for a gate (or `in_turn`: settings.hook_launcher); for any other event the same
    hook started in its own session with `setsid -f` (it survives the CLI's exit, and the
    shell returns at once), or, without setsid, `hook --background`, which detaches itself
    after reading the event. Shell-quoted where the path needs it."""
    exe = hook_launcher()
    if event in GATE_EVENTS if in_turn is None else in_turn:
        return f"{gate_launcher() if event in SHELL_GATES else exe} hook"
    if shutil.which("setsid"):
        return f"setsid -f {exe} hook --background >/dev/null 2>&1"
    return f"{exe} hook --background"


def statusline_command() -> str:
    return f"{hook_launcher()} statusline"


def claude_cli_version(timeout: float = 10) -> tuple[int, ...] | None:
    """The version of the `claude` on PATH, e.g. (2, 1, 332); None when there is none or
    it does not say (install goes on: this only chooses events)."""
    exe = shutil.which("claude")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], stdin=subprocess.DEVNULL, capture_output=True, check=False,
                             text=True, timeout=timeout, env={**os.environ, "DISABLE_AUTOUPDATER": "1"}).stdout
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    words = out.split()
    parts = words[0].split(".") if words else []
    if not parts or not all(p.isdigit() and len(p) < 10 for p in parts):
        return None
    return tuple(int(p) for p in parts)


def hook_events(cli_version: tuple[int, ...] | None) -> tuple[str, ...]:
    """The events to install for Claude Code `cli_version` (None: unknown, all of them)."""
    return tuple(e for e in HOOK_EVENTS if cli_version is None or cli_version >= EVENT_SINCE.get(e, ()))


# -- recognising our entries -----------------------------------------------------


def is_costhook_hook(handler: object) -> bool:
    """One of ours: `<any dir>/costhook hook`, also as the user may have edited it since
    (`... hook 2>/dev/null`, `VAR=1 ... hook || true`; settings.runs_costhook)."""
    return isinstance(handler, dict) and runs_costhook(handler.get("command"), "hook")


def is_costhook_statusline(value: object) -> bool:
    return isinstance(value, dict) and runs_costhook(value.get("command"), "statusline")


def leftover_commands(settings: dict) -> list[str]:
    """Commands in `settings` that still run costhook (hooks and statusLine): what an
    uninstall left because they do more than run it (a wrapper, `other && costhook hook`)."""
    found = []
    hooks = settings.get("hooks")
    for event, groups in hooks.items() if isinstance(hooks, dict) else ():
        for group in groups if isinstance(groups, list) else []:
            handlers = group.get("hooks") if isinstance(group, dict) else None
            for handler in handlers if isinstance(handlers, list) else []:
                command = handler.get("command") if isinstance(handler, dict) else None
                if mentions_costhook(command):
                    found.append(f"hooks.{event}: {command}")
    status = settings.get("statusLine")
    command = status.get("command") if isinstance(status, dict) else None
    if mentions_costhook(command):
        found.append(f"statusLine: {command}")
    return found


# -- merging ---------------------------------------------------------------------


def _desired_handler(event: str, command: str) -> dict:
    return {"type": "command", "command": command, "timeout": HOOK_TIMEOUTS[event]}


def _desired_group(event: str, command: str) -> dict:
    group: dict = {}
    if event in TOOL_EVENTS:
        group["matcher"] = "*"
    group["hooks"] = [_desired_handler(event, command)]
    return group


def _matches_everything(group: dict) -> bool:
    return group.get("matcher") in (None, "", "*")


def _hooks_table(settings: dict, create: bool) -> dict | None:
    return json_object(settings, "hooks", create, '"hooks" is not a JSON object')


def _groups(hooks: dict, event: str) -> list:
    groups = hooks.get(event)
    if not isinstance(groups, list):
        raise InstallError(f'"hooks.{event}" is not a JSON list; fix it by hand, then re-run')
    return groups


def _remove_ours(hooks: dict, event: str, keep: int | None = None) -> None:
    """Drop our handlers from `event`, except the first one in group number `keep`.

    A group or event left empty by the removal goes too; one that was already empty stays.
    """
    groups = _groups(hooks, event)
    new_groups = []
    for index, group in enumerate(groups):
        handlers = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(handlers, list) or not any(is_costhook_hook(h) for h in handlers):
            new_groups.append(group)
            continue
        remaining = []
        spare = 1 if index == keep else 0
        for handler in handlers:
            if is_costhook_hook(handler):
                if not spare:
                    continue
                spare -= 1
            remaining.append(handler)
        if remaining:
            new_groups.append({**group, "hooks": remaining})
    if new_groups:
        hooks[event] = new_groups
    elif groups:
        del hooks[event]


def _install_split(hooks: dict, event: str, pairs: list) -> None:
    """Our hooks on `event` as one matcher group per (matcher, command) pair, in order.
    Already so: nothing changes; else ours go and the groups are appended."""
    desired = [{"matcher": matcher, "hooks": [_desired_handler(event, command)]} for matcher, command in pairs]
    if event in hooks:
        groups = _groups(hooks, event)
        mine = [g for g in groups if isinstance(g, dict) and isinstance(g.get("hooks"), list)
                and any(is_costhook_hook(h) for h in g["hooks"])]
        if mine == desired:
            return
        _remove_ours(hooks, event)
    hooks.setdefault(event, []).extend(desired)


def _install_event(hooks: dict, event: str, command) -> None:
    if not isinstance(command, str):
        _install_split(hooks, event, command)
        return
    if event not in hooks:
        hooks[event] = [_desired_group(event, command)]
        return
    groups = _groups(hooks, event)
    # Reuse the first all-matching group that already holds one of ours (keeps its place).
    for index, group in enumerate(groups):
        if not isinstance(group, dict) or not _matches_everything(group):
            continue
        handlers = group.get("hooks")
        if not isinstance(handlers, list):
            continue
        for position, handler in enumerate(handlers):
            if is_costhook_hook(handler):
                handlers = list(handlers)
                handlers[position] = _desired_handler(event, command)
                groups[index] = {**group, "hooks": handlers}
                _remove_ours(hooks, event, keep=index)
                return
    _remove_ours(hooks, event)
    hooks.setdefault(event, []).append(_desired_group(event, command))


def merge_install(settings: dict, command, statusline: str | None = None,
                  force_statusline: bool = False, events: tuple[str, ...] = HOOK_EVENTS) -> dict:
    """Return a copy of `settings` with costhook's hooks on `events` (and statusLine) in
    place; `command(event)` is each event's hook command, or a list of (matcher, command)
    for an event split by tool (or one string for all)."""
    settings = json.loads(json.dumps(settings))
    hooks = _hooks_table(settings, create=True)
    for event in list(hooks):
        if event not in events and isinstance(hooks[event], list):
            _remove_ours(hooks, event)  # left over from an older costhook, or for a newer CLI
    for event in events:
        _install_event(hooks, event, command(event) if callable(command) else command)
    if statusline is not None:
        current = settings.get("statusLine")
        if current is None or force_statusline:
            settings["statusLine"] = {"type": "command", "command": statusline, "padding": 0}
        elif is_costhook_statusline(current):
            settings["statusLine"] = {**current, "type": "command", "command": statusline}
        else:
            shown = current.get("command") if isinstance(current, dict) else current
            raise InstallError(
                f"a statusLine is already set ({json.dumps(shown)}); costhook left it alone. "
                "To replace it, run `costhook install --statusline --force` "
                "(the backup keeps the old one), or install without --statusline."
            )
    return settings


def merge_uninstall(settings: dict) -> dict:
    """Return a copy of `settings` without any of costhook's hooks or statusLine."""
    settings = json.loads(json.dumps(settings))
    hooks = _hooks_table(settings, create=False)
    if hooks:
        for event in list(hooks):
            if isinstance(hooks[event], list):
                _remove_ours(hooks, event)
        if not hooks:  # emptied by us: drop the key we most likely added
            del settings["hooks"]
    if is_costhook_statusline(settings.get("statusLine")):
        del settings["statusLine"]
    return settings


def _our_events(settings: dict) -> list[str]:
    """The events `settings` runs our hook on, in HOOK_EVENTS order."""
    hooks = settings.get("hooks")
    found = set()
    for event, groups in hooks.items() if isinstance(hooks, dict) else ():
        for group in groups if isinstance(groups, list) else []:
            handlers = group.get("hooks") if isinstance(group, dict) else None
            if isinstance(handlers, list) and any(is_costhook_hook(h) for h in handlers):
                found.add(event)
    return [event for event in HOOK_EVENTS if event in found]


def _done_message(verb: str, path: Path, backup: Path | None, data: dict) -> str:
    if verb == "install":
        message = f"Installed costhook hooks ({', '.join(_our_events(data))}) in {path}."
    else:
        message = f"Removed costhook hooks from {path}."
    if backup is not None:
        message += f" Backup: {backup}"
    if verb == "install" and data.get("disableAllHooks") is True:
        message += (
            f"\nNote: {path} sets \"disableAllHooks\": true, so Claude Code will not run any "
            "hooks (costhook's included) until that is removed."
        )
    return message


def command_files(command: str) -> list[str]:
    """The files a hook command of ours runs: the executable, or the interpreter and
    costhook's entry file (settings.hook_launcher); maybe edited since (`... 2>/dev/null`)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return []
    if words[:2] == ["setsid", "-f"]:
        words = words[2:]
    skip = gate_words(words)
    gate, words = words[1:skip], words[skip:]
    return gate + ([words[0], words[2]] if is_launcher(words[:3]) else words[:1])


def claude_hook_commands(scope: str = "user", project_dir: Path | None = None) -> dict[str, str]:
    """Event -> command of each costhook hook registered in that settings file (for doctor).

    Empty when the file is missing or holds none; InstallError when it cannot be parsed.
    """
    data = read_settings(claude_settings_path(scope, project_dir)).data
    hooks = data.get("hooks")
    found: dict[str, str] = {}
    if not isinstance(hooks, dict):
        return found
    for event, groups in hooks.items():
        for group in groups if isinstance(groups, list) else []:
            handlers = group.get("hooks") if isinstance(group, dict) else None
            for handler in handlers if isinstance(handlers, list) else []:
                if is_costhook_hook(handler):
                    found.setdefault(event, handler["command"])
    return found


def install_claude(scope: str = "user", project_dir: Path | None = None, dry_run: bool = False,
                   statusline: bool = False, force_statusline: bool = False) -> InstallResult:
    """Merge costhook's hooks (and optionally its statusLine) into Claude Code's settings."""
    path = claude_settings_path(scope, project_dir)
    commands = {event: hook_command(event) for event in HOOK_EVENTS}
    for event in SPLIT_EVENTS:
        commands[event] = [(SPENDING_MATCHER, hook_command(event, in_turn=True)),
                           (OTHER_TOOLS_MATCHER, hook_command(event, in_turn=False))]
    status = statusline_command() if statusline else None
    events = hook_events(claude_cli_version())

    def transform(data: dict) -> dict:
        return merge_install(data, commands.get, status, force_statusline, events)

    nothing = f"costhook hooks are already installed in {path}; nothing changed."
    return apply(path, transform, dry_run, "install", nothing, _done_message)


def uninstall_claude(scope: str = "user", project_dir: Path | None = None,
                     dry_run: bool = False) -> InstallResult:
    """Remove costhook's hooks and statusLine from Claude Code's settings; keep the rest."""
    path = claude_settings_path(scope, project_dir)
    nothing = f"No costhook hooks in {path}; nothing changed."
    result = apply(path, merge_uninstall, dry_run, "remove", nothing, _done_message)
    # What is in the file now (or would be, on a dry run): never claim what is still there.
    after = read_settings(path).data
    left = leftover_commands(merge_uninstall(after) if dry_run else after)
    if left:
        result.leftovers = tuple(left)
        if dry_run:
            head = result.message
        elif result.changed:
            head = f"Removed some costhook hooks from {path}." + (f" Backup: {result.backup}" if result.backup else "")
        else:
            head = f"costhook removed nothing from {path}."
        result.message = head + (
            f"\nStill running costhook in {path} (each does more than run it, so costhook left it; "
            "edit it by hand):\n" + "\n".join(f"  {line}" for line in left)
        )
    return result
