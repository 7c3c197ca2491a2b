"""Register and remove costhook's hooks in Claude Code's settings files.

Settings files are merged, never overwritten: every foreign hook, matcher group and
setting is kept; ours are found by their command (`<dir>/costhook hook`), so a second
install changes nothing and an install after the venv moved replaces the old path.
Every change is backed up first and written atomically (temp file + os.replace).

Standard library only; the CLI calls these functions and prints `message` and `diff`.
"""

from __future__ import annotations

import difflib
import json
import os
import shlex
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from costhook.errors import InstallError

HOOK_EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "SubagentStop",
    "SessionEnd",
)

# Events whose matcher filters on the tool name; the others get no matcher (= all).
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure")

# Per-hook timeouts in seconds. Claude Code's default is 600 s, and a timed-out hook is
# non-blocking, so a small cap only bounds how long a stuck costhook can stall the agent.
# Budget checks (prompt, PreToolUse) must stay snappy; ingest events get more room for a
# first read of a long transcript. SessionEnd's whole budget (1.5 s by default) is raised
# to the largest `timeout` in the settings files (cap 60 s), so nothing here is large.
HOOK_TIMEOUTS = {
    "SessionStart": 5,
    "UserPromptSubmit": 5,
    "PreToolUse": 5,
    "PostToolUse": 10,
    "PostToolUseFailure": 5,
    "Stop": 10,
    "SubagentStop": 10,
    "SessionEnd": 5,
}

EXECUTABLE = "costhook"
SCOPES = ("user", "project", "local")
_RETRIES = 3



@dataclass
class InstallResult:
    path: Path
    changed: bool
    diff: str
    backup: Path | None
    message: str


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


def costhook_executable() -> Path:
    """Absolute path of the `costhook` console script that should run the hooks.

    Prefer the one running now (argv[0]), then the one beside this interpreter (same
    install as this code), then PATH. Symlinks are kept as they are: a stable
    `~/.local/bin/costhook` link is better in settings than the venv path behind it.
    """
    candidates: list[str] = []
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and _is_costhook_name(os.path.basename(argv0)):
        candidates.append(os.path.abspath(argv0))
    bin_dir = os.path.dirname(sys.executable) if sys.executable else ""
    if bin_dir:
        candidates.append(os.path.join(bin_dir, EXECUTABLE))
    found = shutil.which(EXECUTABLE)
    if found:
        candidates.append(os.path.abspath(found))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise InstallError(
        "could not find the installed `costhook` executable (looked at the running "
        "command, beside this Python and on PATH); install costhook first with ./install.sh"
    )


def hook_command() -> str:
    """`<absolute costhook> hook`, shell-quoted if the path needs it."""
    return f"{shlex.quote(str(costhook_executable()))} hook"


def statusline_command() -> str:
    return f"{shlex.quote(str(costhook_executable()))} statusline"


# -- recognising our entries -----------------------------------------------------


def _is_costhook_name(name: str) -> bool:
    return name in (EXECUTABLE, EXECUTABLE + ".exe")


def _is_costhook_command(command: object, subcommand: str) -> bool:
    """True for `<any dir>/costhook <subcommand>` (quoted or not)."""
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return (
        len(words) == 2
        and _is_costhook_name(os.path.basename(words[0]))
        and words[1] == subcommand
    )


def is_costhook_hook(handler: object) -> bool:
    return isinstance(handler, dict) and _is_costhook_command(handler.get("command"), "hook")


def is_costhook_statusline(value: object) -> bool:
    return isinstance(value, dict) and _is_costhook_command(value.get("command"), "statusline")


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


def json_object(parent: dict, key: str, create: bool, problem: str) -> dict | None:
    """`parent[key]` as a JSON object: None when missing (or null), a new empty one with
    `create`; anything else is the user's to fix, so InstallError(`problem`)."""
    value = parent.get(key)
    if value is None:
        if not create:
            return None
        value = parent[key] = {}
    if not isinstance(value, dict):
        raise InstallError(f"{problem}; fix it by hand, then re-run")
    return value


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


def _install_event(hooks: dict, event: str, command: str) -> None:
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


def merge_install(settings: dict, command: str, statusline: str | None = None,
                  force_statusline: bool = False) -> dict:
    """Return a copy of `settings` with costhook's hooks (and statusLine) in place."""
    settings = json.loads(json.dumps(settings))
    hooks = _hooks_table(settings, create=True)
    for event in list(hooks):
        if event not in HOOK_EVENTS and isinstance(hooks[event], list):
            _remove_ours(hooks, event)  # left over from an older costhook
    for event in HOOK_EVENTS:
        _install_event(hooks, event, command)
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


# -- reading and writing ---------------------------------------------------------


@dataclass
class _Snapshot:
    path: Path  # the settings path as given (maybe a symlink)
    target: Path  # the file actually written (symlink resolved)
    raw: bytes | None  # None: the file does not exist
    data: dict


def write_target(path: Path) -> Path:
    """The file a write to `path` replaces: a symlink's target, so the link stays."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _read(path: Path) -> _Snapshot:
    target = write_target(path)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        return _Snapshot(path, target, None, {})
    except IsADirectoryError:
        raise InstallError(f"{path} is a directory, not a settings file") from None
    except PermissionError:
        raise InstallError(f"cannot read {path}: permission denied") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InstallError(f"{path} is not UTF-8 text; fix it by hand, then re-run") from None
    if not text.strip():
        return _Snapshot(path, target, raw, {})
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InstallError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column "
            f"{error.colno}); costhook changed nothing. Fix the file, then re-run."
        ) from None
    if not isinstance(data, dict):
        raise InstallError(
            f"{path} holds a JSON {type(data).__name__}, not an object; costhook changed nothing"
        )
    return _Snapshot(path, target, raw, data)


def _render(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _diff(snapshot: _Snapshot, new_text: str) -> str:
    old = snapshot.raw.decode("utf-8-sig", "replace") if snapshot.raw is not None else ""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=str(snapshot.path) if snapshot.raw is not None else "/dev/null",
        tofile=str(snapshot.path),
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _check_writable(snapshot: _Snapshot) -> None:
    target = snapshot.target
    if snapshot.raw is not None:
        mode = target.stat().st_mode
        # The mode bits matter even for root, who os.access() would let through.
        if not os.access(target, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise InstallError(
                f"{snapshot.path} is read-only; costhook changed nothing. "
                f"Make it writable (chmod u+w {shlex.quote(str(target))}) and re-run."
            )
    directory = _existing_parent(target.parent)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InstallError(f"cannot write in {directory}: permission denied; costhook changed nothing")


def _existing_parent(directory: Path) -> Path:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def _make_private_dirs(directory: Path) -> None:
    """Create missing directories as 0700 (only those we create)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)


def _backup(snapshot: _Snapshot) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"{snapshot.path.name}.costhook-backup-{stamp}"
    for attempt in range(100):
        name = base if attempt == 0 else f"{base}-{attempt}"
        backup = snapshot.path.parent / name
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(snapshot.raw or b"")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(backup, 0o600)
        return backup
    raise InstallError(f"could not create a backup next to {snapshot.path}")


def _current_bytes(target: Path) -> bytes | None:
    try:
        return target.read_bytes()
    except FileNotFoundError:
        return None


def _write(snapshot: _Snapshot, text: str) -> None:
    """Atomically replace the target file, keeping its mode (0600 for a new file)."""
    target = snapshot.target
    _make_private_dirs(target.parent)
    if snapshot.raw is not None:
        st = target.stat()
        mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
    else:
        mode, owner = 0o600, None
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".costhook-tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        if owner is not None and hasattr(os, "chown"):
            try:
                os.chown(temp, *owner)
            except OSError:
                pass
        if _current_bytes(target) != snapshot.raw:
            raise _Changed()
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


class _Changed(Exception):
    """The file changed under us between reading and writing; start over."""


def write_with_backup(snapshot: _Snapshot, text: str) -> Path | None:
    """Back up the file (if it exists), then replace it with `text`; the backup (None for a
    new file). A failed write takes its backup with it: InstallError, or _Changed when the
    file changed since it was read (read it again and retry)."""
    _check_writable(snapshot)
    backup = _backup(snapshot) if snapshot.raw is not None else None
    try:
        _write(snapshot, text)
    except (_Changed, OSError) as error:
        if backup is not None:
            backup.unlink()
        if isinstance(error, _Changed):
            raise
        raise InstallError(f"could not write {snapshot.path}: {error}; costhook changed nothing") from None
    return backup


def _apply(path: Path, transform, dry_run: bool, verb: str, nothing: str) -> InstallResult:
    for _ in range(_RETRIES):
        snapshot = _read(path)
        new_data = transform(snapshot.data)
        if new_data == snapshot.data:
            return InstallResult(path, False, "", None, nothing)
        text = _render(new_data)
        diff = _diff(snapshot, text)
        if dry_run:
            return InstallResult(path, False, diff, None, f"Dry run: would {verb} costhook in {path}.")
        try:
            backup = write_with_backup(snapshot, text)
        except _Changed:
            continue
        return InstallResult(path, True, diff, backup, _done_message(verb, path, backup, new_data))
    raise InstallError(f"{path} kept changing while costhook was updating it; try again")


def _done_message(verb: str, path: Path, backup: Path | None, data: dict) -> str:
    if verb == "install":
        message = f"Installed costhook hooks ({', '.join(HOOK_EVENTS)}) in {path}."
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


def claude_hook_commands(scope: str = "user", project_dir: Path | None = None) -> dict[str, str]:
    """Event -> command of each costhook hook registered in that settings file (for doctor).

    Empty when the file is missing or holds none; InstallError when it cannot be parsed.
    """
    data = _read(claude_settings_path(scope, project_dir)).data
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
    command = hook_command()
    status = statusline_command() if statusline else None

    def transform(data: dict) -> dict:
        return merge_install(data, command, status, force_statusline)

    nothing = f"costhook hooks are already installed in {path}; nothing changed."
    return _apply(path, transform, dry_run, "install", nothing)


def uninstall_claude(scope: str = "user", project_dir: Path | None = None,
                     dry_run: bool = False) -> InstallResult:
    """Remove costhook's hooks and statusLine from Claude Code's settings; keep the rest."""
    path = claude_settings_path(scope, project_dir)
    nothing = f"No costhook hooks in {path}; nothing changed."
    return _apply(path, merge_uninstall, dry_run, "remove", nothing)
