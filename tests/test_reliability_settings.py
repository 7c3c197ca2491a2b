"""Settings safety (design.md §9, issue item 4): install and uninstall on 1,000 generated
Claude Code settings files keep every foreign thing, are idempotent, back up first, and
refuse (changing nothing) what they must not touch.

The generator writes what real settings files hold: foreign hooks on our events and on
others, matchers (`*`, "", tool names, regexes), groups with several handlers or none,
extra keys, stale costhook entries from an older install (another path, quoted paths,
duplicates, on events costhook no longer uses), foreign and costhook statusLines, other
settings of every JSON type; serialised with unusual whitespace (tabs, CRLF, no
newline, a BOM, one line). Some files are symlinks, some read-only, some invalid JSON or
not an object, some have a `hooks` value costhook cannot merge into.

* 500 cases through the file functions (install_claude / uninstall_claude) on real files;
* 500 more through merge_install / merge_uninstall on the same kind of data.

"Meaning" is checked with an independent oracle (no costhook code): remove every costhook
handler (`<any dir>/costhook hook`), the groups that held only those, and empty event
lists, from both sides; the rest must be equal, in order.
"""

import json
import os
import random
import shlex
import stat
from pathlib import Path

import pytest

from costhook.agents.claude.install import (
    HOOK_EVENTS,
    HOOK_TIMEOUTS,
    InstallError,
    hook_command,
    install_claude,
    merge_install,
    merge_uninstall,
    uninstall_claude,
)

FILE_CASES = int(os.environ.get("COSTHOOK_SETTINGS_FILE_CASES", "500"))
DATA_CASES = int(os.environ.get("COSTHOOK_SETTINGS_DATA_CASES", "500"))
OTHER_EVENTS = ("Notification", "PreCompact", "SubagentStart", "UserPromptExpansion", "PermissionRequest")
TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure")
MATCHERS = (None, "*", "", "Bash", "Edit|Write", "mcp__github__.*", "Read", "Task")
STALE = ("/old/venv/bin/costhook hook", "'/path with space/bin/costhook' hook", "costhook hook", "/usr/local/bin/costhook  hook",
         "setsid -f /old/venv/bin/costhook hook --background >/dev/null 2>&1")
LOOKALIKES = ("costhook-hook", "/bin/costhook statusline", "costhook hook --agent openclaw", "echo costhook hook", "costhookx hook",
              "setsid -f costhook hook --agent openclaw >/dev/null 2>&1", "setsid costhook-hook --background")


# ------------------------------------------------------------------ the oracle ---


def is_costhook_hook(handler) -> bool:
    if not isinstance(handler, dict) or not isinstance(handler.get("command"), str):
        return False
    try:
        words = shlex.split(handler["command"])
    except ValueError:
        return False
    if words[:2] == ["setsid", "-f"] and words[-3:] == ["--background", ">/dev/null", "2>&1"]:
        words = words[2:-3]  # a hook that runs in the background
    return starts_costhook(words, "hook")


def starts_costhook(words: list, subcommand: str) -> bool:
    """`<dir>/costhook SUB`, or `<dir>/python -IS <dir>/costhook/__main__.py SUB` (an install
    with its interpreter beside the script), maybe after `/bin/sh <dir>/costhook/agents/gate.sh`
    (a gate: the shell script that runs the hook unless its clearance holds)."""
    if words[:1] == ["/bin/sh"] and words[1:2] and words[1].endswith("/costhook/agents/gate.sh"):
        words = words[2:]
    if len(words) == 4 and os.path.basename(words[0]).startswith("python") and words[1] == "-IS" \
            and words[2].endswith("/costhook/__main__.py"):
        words = words[2:]
    return len(words) == 2 and os.path.basename(words[0]) in ("costhook", "__main__.py") and words[1] == subcommand


def is_costhook_statusline(value) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("command"), str):
        return False
    return starts_costhook(shlex.split(value["command"]), "statusline")


def foreign(settings: dict) -> dict:
    """`settings` without costhook: its handlers, the groups they alone filled, emptied
    event lists and an emptied `hooks` (all meaning nothing to Claude Code), its statusLine."""
    settings = json.loads(json.dumps(settings))
    hooks = settings.get("hooks")
    if isinstance(hooks, dict):
        for event in list(hooks):
            groups = hooks[event]
            if not isinstance(groups, list):
                continue
            kept = []
            for group in groups:
                handlers = group.get("hooks") if isinstance(group, dict) else None
                if isinstance(handlers, list) and any(is_costhook_hook(h) for h in handlers):
                    rest = [h for h in handlers if not is_costhook_hook(h)]
                    if rest:
                        kept.append({**group, "hooks": rest})
                else:
                    kept.append(group)
            if kept:
                hooks[event] = kept
            else:
                del hooks[event]
        if not hooks:
            del settings["hooks"]
    if is_costhook_statusline(settings.get("statusLine")):
        del settings["statusLine"]
    return settings


def ours(settings: dict) -> dict:
    """event -> [(group, handler)] of every costhook handler."""
    found = {}
    for event, groups in (settings.get("hooks") or {}).items():
        for group in groups if isinstance(groups, list) else []:
            handlers = group.get("hooks") if isinstance(group, dict) else None
            for handler in handlers if isinstance(handlers, list) else []:
                if is_costhook_hook(handler):
                    found.setdefault(event, []).append((group, handler))
    return found


def assert_installed(original: dict, result: dict, command) -> None:
    """`command(event)`: what install writes for each event."""
    assert foreign(result) == foreign(original)
    found = ours(result)
    assert set(found) == set(HOOK_EVENTS), found.keys()
    for event, entries in found.items():
        if callable(command) and event in ("PostToolUse", "PostToolUseFailure"):
            # after a tool: the gate for the tools a sub-agent spends in, a background hook for the rest
            assert [(g.get("matcher"), h["command"]) for g, h in entries] == [
                ("Agent|Task", command(event, in_turn=True)),
                ("^(?!(?:Agent|Task)$).*", command(event, in_turn=False))], (event, entries)
            continue
        assert len(entries) == 1, (event, entries)  # stale copies replaced, never duplicated
        group, handler = entries[0]
        expected = command(event) if callable(command) else command
        assert handler == {"type": "command", "command": expected, "timeout": HOOK_TIMEOUTS[event]}
        assert group.get("matcher") in (None, "", "*")  # a group that matches every tool


def assert_uninstalled(original: dict, result: dict) -> None:
    assert ours(result) == {}
    assert not is_costhook_statusline(result.get("statusLine"))
    assert foreign(result) == foreign(original)


# ------------------------------------------------------------------ generator ----


def scalar(rng):
    return rng.choice([None, True, False, 0, -1, 2**53, 3.25, "", "x", "é — ✓ 𝄞", "a\nb\t\"q\"", "C:\\path"])


def value(rng, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.5:
        return scalar(rng)
    if r < 0.75:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{rng.randint(0, 99)}": value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def handler(rng):
    r = rng.random()
    if r < 0.12:
        return {"type": "command", "command": rng.choice(STALE), "timeout": rng.choice([5, 30])}
    if r < 0.2:
        return {"type": "command", "command": rng.choice(LOOKALIKES)}
    h = {"type": rng.choice(["command", "command", "prompt"]), "command": f"~/bin/hook-{rng.randint(0, 999)}.sh --flag {rng.randint(0, 9)}"}
    if rng.random() < 0.4:
        h["timeout"] = rng.choice([1, 30, 600])
    if rng.random() < 0.2:
        h["async"] = True
    if rng.random() < 0.1:
        h["x-extra"] = value(rng)
    return h


def group(rng, event):
    g = {}
    matcher = rng.choice(MATCHERS)
    if matcher is not None:
        g["matcher"] = matcher
    g["hooks"] = [handler(rng) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
    if rng.random() < 0.1:
        g["note"] = value(rng)
    return g


def settings_for(rng) -> tuple[dict, bool]:
    """A settings object, and whether costhook may merge into it."""
    data, mergeable = {}, True
    for _ in range(rng.randint(0, 6)):
        data[rng.choice(["model", "env", "permissions", "cleanupPeriodDays", "includeCoAuthoredBy", "enabledPlugins",
                         "apiKeyHelper", "outputStyle", "x-custom", "disableAllHooks"])] = value(rng)
    if rng.random() < 0.3:
        data["permissions"] = {"allow": ["Bash(npm test:*)", "Read(~/**)"], "deny": [], "defaultMode": "acceptEdits"}
    r = rng.random()
    if r < 0.85:
        hooks = {}
        for event in rng.sample(HOOK_EVENTS + OTHER_EVENTS, rng.randint(0, 8)):
            hooks[event] = [group(rng, event) for _ in range(rng.randint(0, 3))]
            if rng.random() < 0.04:
                hooks[event].append(rng.choice(["odd", 5, None]))  # a non-object group: left alone
        if rng.random() < 0.05:
            event = rng.choice(OTHER_EVENTS)
            hooks[event] = rng.choice([{"a": 1}, "string", 3])  # a foreign event that is not a list: left alone
        if rng.random() < 0.03:
            hooks[rng.choice(HOOK_EVENTS)] = {"not": "a list"}  # ours, unmergeable: refused
            mergeable = False
        data["hooks"] = hooks
    elif r < 0.88:
        data["hooks"] = rng.choice([[], "hooks", 7])  # not an object: refused
        mergeable = False
    s = rng.random()
    if s < 0.3:
        data["statusLine"] = {"type": "command", "command": "~/.claude/statusline.sh", "padding": rng.randint(0, 2)}
    elif s < 0.4:
        data["statusLine"] = {"type": "command", "command": "/old/bin/costhook statusline", "padding": 0}
    return data, mergeable


def render(rng, data) -> bytes:
    """JSON text as a person or another tool may have left it."""
    style = rng.randrange(7)
    if style == 0:
        text = json.dumps(data)
    elif style == 1:
        text = json.dumps(data, indent="\t") + "\n"
    elif style == 2:
        text = json.dumps(data, indent=2).replace("\n", "\r\n") + "\r\n"
    elif style == 3:
        text = json.dumps(data, separators=(",", ":"))
    elif style == 4:
        text = "\n\n  " + json.dumps(data, indent=7, ensure_ascii=False) + "  \n\n"
    elif style == 5:
        text = "\ufeff" + json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    return text.encode("utf-8")


INVALID = [
    b'{"model": "opus",}\n',  # trailing comma
    b'{\n  // comments are not JSON\n  "model": "opus"\n}\n',
    b'{"hooks": {"Stop": [}\n',
    b"[1, 2, 3]\n",
    b'"just a string"\n',
    b"null\n",
    b"\xff\xfe{}",  # not UTF-8
    b'{"a": 1}{"b": 2}',
]


# ------------------------------------------------------------------ on real files ---


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def files_in(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.is_symlink()}


def test_install_uninstall_on_generated_settings_files(config_dir, monkeypatch):
    command = hook_command
    counts = {"installed": 0, "refused": 0, "symlinked": 0, "read-only": 0, "invalid": 0, "missing": 0}
    for n in range(FILE_CASES):
        rng = random.Random(n)
        case = config_dir / f"case-{n}"
        case.mkdir()
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(case / "claude"))
        settings = case / "claude" / "settings.json"
        kind = rng.choices(["normal", "symlink", "read-only", "invalid", "missing"], [70, 10, 8, 8, 4])[0]
        data, mergeable = settings_for(rng)
        raw = render(rng, data) if kind != "invalid" else rng.choice(INVALID)
        if kind == "missing":
            data, mergeable = {}, True
        else:
            settings.parent.mkdir()
            target = settings
            if kind == "symlink":  # dotfiles repo style: the settings file is a link elsewhere
                target = case / "dotfiles" / "claude-settings.json"
                target.parent.mkdir()
                settings.symlink_to(target)
            target.write_bytes(raw)
            mode = rng.choice([0o600, 0o644, 0o640])
            target.chmod(0o444 if kind == "read-only" else mode)
        before = {d: files_in(d) for d in (settings.parent, case / "dotfiles") if d.exists()}

        if kind in ("read-only", "invalid") or (kind != "missing" and not mergeable):
            # install is refused with a clear message, and not a byte changes (no backup, no temp file)
            with pytest.raises(InstallError) as error:
                install_claude()
            message = str(error.value)
            assert "changed nothing" in message or "fix it by hand" in message, message
            assert {d: files_in(d) for d in before} == before, (n, kind)
            # uninstall: refused the same way, or (nothing of ours to remove) a no-op, or, for a
            # file whose `hooks` costhook could not merge into, a clean removal of what is ours
            try:
                result = uninstall_claude()
            except InstallError as error:
                message = str(error)
                assert "changed nothing" in message or "fix it by hand" in message, message
                assert {d: files_in(d) for d in before} == before, (n, kind)
            else:
                if result.changed:
                    assert kind not in ("read-only", "invalid"), (n, kind)
                    assert_uninstalled(data, json.loads(settings.read_text()))
                else:
                    assert {d: files_in(d) for d in before} == before, (n, kind)
            counts["refused" if kind in ("normal", "symlink") else kind] += 1
            continue

        # install: foreign content kept in meaning, our eight hooks present once each
        first = install_claude()
        installed = json.loads(settings.read_text())
        assert_installed(data, installed, command)
        if kind == "missing":
            assert first.changed and first.backup is None
            assert stat.S_IMODE(settings.stat().st_mode) == 0o600
        elif first.changed:
            assert first.backup is not None and first.backup.read_bytes() == raw  # the backup is the original
            assert first.backup.parent == settings.parent
            assert stat.S_IMODE(first.backup.stat().st_mode) == 0o600
            assert stat.S_IMODE(os.stat(settings).st_mode) == mode  # the file's own mode is kept
        if kind == "symlink":
            assert settings.is_symlink() and json.loads(target.read_text()) == installed
        # idempotent: a second install changes nothing, not even whitespace, and makes no backup
        snapshot = {d: files_in(d) for d in (settings.parent, case / "dotfiles") if d.exists()}
        second = install_claude()
        assert not second.changed and second.backup is None
        assert {d: files_in(d) for d in snapshot} == snapshot

        # uninstall: back to the original meaning; again: nothing to do
        third = uninstall_claude()
        assert third.changed and third.backup is not None
        removed = json.loads(settings.read_text())
        assert_uninstalled(data, removed)
        assert foreign(removed) == foreign(data)
        assert not uninstall_claude().changed
        leftovers = [p.name for p in settings.parent.iterdir() if p.name.endswith(".costhook-tmp")]
        assert leftovers == []
        counts["symlinked" if kind == "symlink" else "missing" if kind == "missing" else "installed"] += 1
    print(f"\n{FILE_CASES} settings files: {counts}")
    assert counts["installed"] > FILE_CASES // 2 and counts["symlinked"] and counts["read-only"] and counts["invalid"] and counts["refused"]


# ------------------------------------------------------------------ on plain data ---


def test_merge_install_uninstall_on_generated_settings():
    quoted = f"{shlex.quote('/opt/costhook venv/bin/costhook')} hook"  # a path that needs quoting
    refused = 0
    for n in range(FILE_CASES, FILE_CASES + DATA_CASES):
        rng = random.Random(n)
        data, mergeable = settings_for(rng)
        original = json.loads(json.dumps(data))
        if not mergeable:
            with pytest.raises(InstallError):
                merge_install(data, quoted)
            assert data == original  # the input is never modified
            refused += 1
            continue
        installed = merge_install(data, quoted)
        assert data == original
        assert_installed(original, installed, quoted)
        assert merge_install(installed, quoted) == installed  # idempotent
        # a re-install from another place (venv moved) replaces, never duplicates
        moved = merge_install(installed, "/new/place/costhook hook")
        assert_installed(original, moved, "/new/place/costhook hook")
        removed = merge_uninstall(installed)
        assert_uninstalled(original, removed)
        assert merge_uninstall(removed) == removed
        # uninstall of a file that never had costhook changes nothing of it
        clean = foreign(original)
        assert merge_uninstall(clean) == clean
    assert refused and DATA_CASES - refused > DATA_CASES * 0.8
