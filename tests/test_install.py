"""Installing and removing costhook's hooks in Claude Code settings, and the plugin files."""

import copy
import json
import os
import shlex
import shutil
import sqlite3
import stat
import subprocess
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from e2e import harness

import costhook

from costhook.agents.claude.install import (
    HOOK_EVENTS,
    HOOK_TIMEOUTS,
    TOOL_EVENTS,
    InstallError,
    claude_hook_commands,
    claude_settings_path,
    hook_command,
    install_claude,
    uninstall_claude,
)

REPO = Path(__file__).resolve().parents[1]

FOREIGN = {
    "model": "opus",
    "env": {"FOO": "1"},
    "permissions": {"allow": ["Bash(npm test:*)"], "deny": []},
    "enabledPlugins": {"other@market": True},
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "~/guard.sh", "timeout": 30}]},
        ],
        "PostToolUse": [
            {"matcher": "*", "hooks": [{"type": "command", "command": "fmt.sh", "async": True}]},
            {"matcher": "Edit|Write", "hooks": [{"type": "command", "command": "lint.sh"}]},
        ],
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
        "Notification": [{"matcher": "", "hooks": [{"type": "command", "command": "say hi"}]}],
        "SessionEnd": [],
    },
    "statusLine": {"type": "command", "command": "~/.claude/statusline.sh", "padding": 1},
    "cleanupPeriodDays": 99,
}


def write_exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def costhook_exe(tmp_path, monkeypatch):
    """A stand-in for the installed console script, found as the running command."""
    exe = write_exe(tmp_path / "venv" / "bin" / "costhook")
    monkeypatch.setattr(sys, "argv", [str(exe), "install"])
    return exe


@pytest.fixture
def config_dir(tmp_path, monkeypatch, costhook_exe):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    directory = tmp_path / "claude-config"
    directory.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(directory))
    # No `claude` on PATH unless a test puts one in bin/ (install asks it for its version).
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    return directory


def fake_claude(config_dir: Path, script: str) -> None:
    """A `claude` on PATH (the config_dir fixture's bin/) running `script`."""
    exe = config_dir.parent / "bin" / "claude"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(0o755)


def write_settings(path: Path, data) -> bytes:
    raw = (json.dumps(data, indent=4) + "\n").encode()
    path.write_bytes(raw)
    return raw


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".costhook-backup-*"))


GATES = ("UserPromptSubmit", "PreToolUse", "PreSkillShellCommand", "PostToolUse", "PostToolUseFailure")  # can stop the agent


def expected_command(exe, event: str) -> str:
    """What install writes, independent of install.py: a gate runs `<exe> hook` in the turn;
    every other event starts it in its own session and the shell returns at once."""
    quoted = shlex.quote(str(exe))
    return f"{quoted} hook" if event in GATES else f"setsid -f {quoted} hook --background >/dev/null 2>&1"


# After a tool, only Agent/Task (a sub-agent spent while it ran) can lead to a decision: those
# events get the gate for them and a background hook for every other tool.
SPLIT = {"PostToolUse", "PostToolUseFailure"}
SPENDING, OTHER_TOOLS = "Agent|Task", "^(?!(?:Agent|Task)$).*"


def expected_groups(exe, event: str) -> list[tuple[str | None, str]]:
    """(matcher, command) of each of our groups on `event`, in order, independent of install.py."""
    if event in SPLIT:
        background = f"setsid -f {shlex.quote(str(exe))} hook --background >/dev/null 2>&1"
        return [(SPENDING, expected_command(exe, event)), (OTHER_TOOLS, background)]
    return [("*" if event in TOOL_EVENTS else None, expected_command(exe, event))]


def is_ours(handler) -> bool:
    """Independent of install.py: `<dir>/costhook hook`, or `setsid -f <dir>/costhook hook
    --background >/dev/null 2>&1`."""
    if not isinstance(handler, dict) or not isinstance(handler.get("command"), str):
        return False
    words = shlex.split(handler["command"])
    if words[:2] == ["setsid", "-f"] and words[-3:] == ["--background", ">/dev/null", "2>&1"]:
        words = words[2:-3]
    if words[:1] == ["/bin/sh"] and words[1:2] and words[1].endswith("/costhook/agents/gate.sh"):
        words = words[2:]  # a gate: the shell script that runs the hook unless its clearance holds
    if len(words) == 4 and os.path.basename(words[0]).startswith("python") and words[1] == "-IS" \
            and words[2].endswith("/costhook/__main__.py"):
        words = words[2:]  # how an install with its interpreter beside the script starts the hook
    return len(words) == 2 and os.path.basename(words[0]) in ("costhook", "__main__.py") and words[1] == "hook"


def ours(data: dict) -> dict[str, list[tuple[dict, dict]]]:
    """event -> [(group, handler)] for every costhook handler."""
    found = {}
    for event, groups in data.get("hooks", {}).items():
        for group in groups:
            for handler in group.get("hooks", []):
                if is_ours(handler):
                    found.setdefault(event, []).append((group, handler))
    return found


def strip_ours(data: dict, original: dict) -> dict:
    """`data` minus costhook's handlers, and the groups/events only they filled."""
    data = copy.deepcopy(data)
    for event in list(data.get("hooks", {})):
        groups = []
        for group in data["hooks"][event]:
            handlers = [h for h in group.get("hooks", []) if not is_ours(h)]
            if handlers or not group.get("hooks"):
                groups.append({**group, "hooks": handlers})
        if groups or event in original.get("hooks", {}):
            data["hooks"][event] = groups
        else:
            del data["hooks"][event]
    if "hooks" not in original and data.get("hooks") == {}:
        del data["hooks"]
    return data


# -- merging ---------------------------------------------------------------------


def test_install_merges_and_keeps_everything_foreign(config_dir, costhook_exe):
    path = config_dir / "settings.json"
    write_settings(path, FOREIGN)

    result = install_claude()

    assert result.changed and result.path == path
    data = json.loads(path.read_text())
    assert strip_ours(data, FOREIGN) == FOREIGN
    found = ours(data)
    assert set(found) == set(HOOK_EVENTS)
    for event in HOOK_EVENTS:
        assert [(group.get("matcher"), handler["command"]) for group, handler in found[event]] == \
            expected_groups(costhook_exe, event)
        for group, handler in found[event]:
            assert handler == {"type": "command", "command": handler["command"], "timeout": HOOK_TIMEOUTS[event]}
            assert group["hooks"] == [handler]  # never mixed into a foreign group
    text = path.read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "')


def test_install_is_idempotent(config_dir):
    path = config_dir / "settings.json"
    write_settings(path, FOREIGN)
    install_claude()
    first = path.read_bytes()
    mtime = path.stat().st_mtime_ns

    again = install_claude()

    assert not again.changed and again.backup is None and again.diff == ""
    assert path.read_bytes() == first and path.stat().st_mtime_ns == mtime
    assert len(backups(path)) == 1


def test_backup_equals_original_and_is_private(config_dir):
    path = config_dir / "settings.json"
    original = write_settings(path, FOREIGN)

    result = install_claude()

    assert result.backup is not None and result.backup in backups(path)
    assert result.backup.read_bytes() == original
    assert stat.S_IMODE(result.backup.stat().st_mode) == 0o600
    assert str(result.backup) in result.message


def test_uninstall_restores_original_meaning(config_dir):
    path = config_dir / "settings.json"
    write_settings(path, FOREIGN)
    install_claude()

    result = uninstall_claude()

    assert result.changed and result.backup is not None
    assert json.loads(path.read_text()) == {k: v for k, v in FOREIGN.items()} | {
        "hooks": {k: v for k, v in FOREIGN["hooks"].items() if k != "SessionEnd"}
    }
    again = uninstall_claude()
    assert not again.changed and again.backup is None


def test_install_then_uninstall_round_trip_without_hooks_key(config_dir):
    path = config_dir / "settings.json"
    original = {"model": "sonnet", "statusLine": {"type": "command", "command": "x"}}
    write_settings(path, original)
    install_claude()
    uninstall_claude()
    assert json.loads(path.read_text()) == original


def test_uninstall_missing_file_changes_nothing(config_dir):
    result = uninstall_claude()
    assert not result.changed
    assert not (config_dir / "settings.json").exists()


def test_dry_run_changes_nothing_and_shows_a_diff(config_dir, costhook_exe):
    path = config_dir / "settings.json"
    original = write_settings(path, FOREIGN)

    result = install_claude(dry_run=True)

    assert not result.changed and result.backup is None
    assert path.read_bytes() == original and backups(path) == []
    assert result.diff.startswith("---") and "+++" in result.diff
    assert f'+            "command": "{costhook_exe} hook",' in result.diff

    install_claude()
    installed = path.read_bytes()
    dry = uninstall_claude(dry_run=True)
    assert not dry.changed and path.read_bytes() == installed
    assert f'-            "command": "{costhook_exe} hook",' in dry.diff


def test_dry_run_does_not_create_a_missing_file(config_dir):
    result = install_claude(dry_run=True)
    assert not (config_dir / "settings.json").exists()
    assert "+++" in result.diff


def test_symlinked_settings_are_written_through(config_dir, tmp_path):
    target = tmp_path / "dotfiles" / "claude-settings.json"
    target.parent.mkdir()
    original = write_settings(target, FOREIGN)
    link = config_dir / "settings.json"
    link.symlink_to(target)

    result = install_claude()

    assert result.changed
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert set(ours(json.loads(target.read_text()))) == set(HOOK_EVENTS)
    assert result.backup.read_bytes() == original
    assert list(target.parent.iterdir()) == [target]  # no temp or backup left by the target

    uninstall_claude()
    assert link.is_symlink()
    assert ours(json.loads(target.read_text())) == {}


def test_read_only_file_is_refused_and_unchanged(config_dir):
    path = config_dir / "settings.json"
    original = write_settings(path, FOREIGN)
    path.chmod(0o444)

    with pytest.raises(InstallError, match="read-only"):
        install_claude()

    assert path.read_bytes() == original and backups(path) == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert [p.name for p in config_dir.iterdir()] == ["settings.json"]


def test_read_only_file_refused_on_uninstall(config_dir):
    path = config_dir / "settings.json"
    write_settings(path, FOREIGN)
    install_claude()
    path.chmod(0o400)
    before = path.read_bytes()
    with pytest.raises(InstallError, match="read-only"):
        uninstall_claude()
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", ['{"hooks": {', "{'single': 'quotes'}", '{"a": 1} trailing'])
def test_invalid_json_is_refused_and_unchanged(config_dir, content):
    path = config_dir / "settings.json"
    path.write_text(content)

    with pytest.raises(InstallError, match="not valid JSON"):
        install_claude()
    with pytest.raises(InstallError, match="not valid JSON"):
        uninstall_claude()

    assert path.read_text() == content and backups(path) == []


@pytest.mark.parametrize("data", [[], "text", 3, None])
def test_non_object_settings_are_refused(config_dir, data):
    path = config_dir / "settings.json"
    original = write_settings(path, data)
    with pytest.raises(InstallError, match="not an object"):
        install_claude()
    assert path.read_bytes() == original


def test_hooks_that_are_not_an_object_are_refused(config_dir):
    path = config_dir / "settings.json"
    original = write_settings(path, {"hooks": ["nope"]})
    with pytest.raises(InstallError, match='"hooks"'):
        install_claude()
    assert path.read_bytes() == original


def test_odd_foreign_event_values_are_left_alone(config_dir):
    path = config_dir / "settings.json"
    original = {"hooks": {"Notification": {"not": "a list"}, "Stop": [42, {"hooks": "x"}]}}
    write_settings(path, original)
    install_claude()
    uninstall_claude()
    assert json.loads(path.read_text()) == original


def test_our_event_that_is_not_a_list_is_refused(config_dir):
    path = config_dir / "settings.json"
    before = write_settings(path, {"hooks": {"PreToolUse": {"matcher": "*"}}})
    with pytest.raises(InstallError, match="hooks.PreToolUse"):
        install_claude()
    assert path.read_bytes() == before


def test_empty_file_counts_as_empty_settings(config_dir):
    path = config_dir / "settings.json"
    path.write_text("")
    result = install_claude()
    assert result.changed and result.backup is not None
    assert set(ours(json.loads(path.read_text()))) == set(HOOK_EVENTS)


def test_existing_file_mode_is_kept(config_dir):
    path = config_dir / "settings.json"
    write_settings(path, FOREIGN)
    path.chmod(0o640)
    install_claude()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_created_file_is_private(tmp_path, monkeypatch, costhook_exe):
    config = tmp_path / "new" / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))

    result = install_claude()

    path = config / "settings.json"
    assert result.changed and result.backup is None and result.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert set(ours(json.loads(path.read_text()))) == set(HOOK_EVENTS)
    assert path.read_text().endswith("\n")


def test_claude_hook_commands_reports_what_is_registered(config_dir, costhook_exe):
    assert claude_hook_commands() == {}
    write_settings(config_dir / "settings.json", FOREIGN)
    assert claude_hook_commands() == {}
    install_claude()
    assert claude_hook_commands() == {event: expected_command(costhook_exe, event) for event in HOOK_EVENTS}
    (config_dir / "settings.json").write_text("{oops")
    with pytest.raises(InstallError):
        claude_hook_commands()


# -- events per Claude Code version ---------------------------------------------


@pytest.mark.parametrize("script, skill_shell", [
    ('echo "2.1.330 (Claude Code)"', False),  # the oldest supported: does not know the event
    ('echo "2.1.331 (Claude Code)"', False),
    ('echo "2.1.332 (Claude Code)"', True),   # the first that does
    ('echo "2.2.0 (Claude Code)"', True),     # a newer CLI is tried, not refused
    ("exit 1", True),                         # cannot tell: install everything (harmless)
    ("echo 'Claude Code, version unknown'", True),
    ("sleep 30", True),
], ids=["2.1.330", "2.1.331", "2.1.332", "2.2.0", "failing", "unreadable", "hanging"])
def test_pre_skill_shell_command_only_where_the_cli_knows_it(config_dir, script, skill_shell, monkeypatch):
    from costhook.agents.claude import install as installer

    monkeypatch.setattr(installer.claude_cli_version, "__defaults__", (1,))  # the hanging case
    fake_claude(config_dir, script)
    path = config_dir / "settings.json"
    result = install_claude()
    found = set(ours(json.loads(path.read_text())))
    expected = set(HOOK_EVENTS) - ({"PreSkillShellCommand"} if not skill_shell else set())
    assert found == expected
    assert ("PreSkillShellCommand" in result.message) is skill_shell
    if skill_shell:
        [(group, handler)] = ours(json.loads(path.read_text()))["PreSkillShellCommand"]
        assert group["matcher"] == "*" and handler["timeout"] == HOOK_TIMEOUTS["PreSkillShellCommand"]


def test_pre_skill_shell_command_follows_cli_upgrades_and_downgrades(config_dir):
    path = config_dir / "settings.json"
    write_settings(path, FOREIGN)
    fake_claude(config_dir, 'echo "2.1.330 (Claude Code)"')
    install_claude()
    assert "PreSkillShellCommand" not in ours(json.loads(path.read_text()))
    fake_claude(config_dir, 'echo "2.1.332 (Claude Code)"')
    assert install_claude().changed
    assert set(ours(json.loads(path.read_text()))) == set(HOOK_EVENTS)
    assert not install_claude().changed
    fake_claude(config_dir, 'echo "2.1.330 (Claude Code)"')
    assert install_claude().changed
    data = json.loads(path.read_text())
    assert "PreSkillShellCommand" not in data["hooks"]
    assert strip_ours(data, FOREIGN) == FOREIGN


# -- locations -------------------------------------------------------------------


def test_claude_config_dir_is_respected(config_dir):
    assert claude_settings_path("user") == config_dir / "settings.json"
    install_claude()
    assert (config_dir / "settings.json").exists()


def test_user_scope_defaults_to_home(tmp_path, monkeypatch, costhook_exe):
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert claude_settings_path("user") == tmp_path / ".claude" / "settings.json"
    install_claude()
    assert (tmp_path / ".claude" / "settings.json").exists()


def test_project_and_local_scopes(tmp_path, monkeypatch, config_dir):
    project = tmp_path / "proj"
    project.mkdir()
    assert claude_settings_path("project", project) == project / ".claude" / "settings.json"
    assert claude_settings_path("local", project) == project / ".claude" / "settings.local.json"

    monkeypatch.chdir(project)
    assert claude_settings_path("project") == project / ".claude" / "settings.json"

    install_claude(scope="project")
    install_claude(scope="local", project_dir=project)
    assert set(ours(json.loads((project / ".claude" / "settings.json").read_text()))) == set(HOOK_EVENTS)
    assert set(ours(json.loads((project / ".claude" / "settings.local.json").read_text()))) == set(HOOK_EVENTS)
    assert not (config_dir / "settings.json").exists()

    uninstall_claude(scope="local", project_dir=project)
    assert ours(json.loads((project / ".claude" / "settings.local.json").read_text())) == {}
    assert set(ours(json.loads((project / ".claude" / "settings.json").read_text()))) == set(HOOK_EVENTS)


def test_unknown_scope_is_an_install_error():
    with pytest.raises(InstallError, match="scope"):
        claude_settings_path("global")


# -- the command -----------------------------------------------------------------


def test_hook_command_is_absolute_and_quoted(tmp_path, monkeypatch):
    exe = write_exe(tmp_path / "dir with space" / "costhook")
    monkeypatch.setattr(sys, "argv", [str(exe)])
    command = hook_command()
    assert shlex.split(command) == [str(exe), "hook"]
    assert command != "costhook hook" and "'" in command


def test_hook_command_falls_back_to_path(tmp_path, monkeypatch):
    exe = write_exe(tmp_path / "bin" / "costhook")
    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setenv("PATH", str(exe.parent))
    assert hook_command() == f"{exe} hook"


def test_the_hook_starts_without_site_when_the_interpreter_is_beside_the_script(config_dir, home, tmp_path, monkeypatch):
    """A venv install (the interpreter beside the console script) gets `<python> -IS
    <package>/__main__.py hook`: no pip script (which imports `re`), no `site`, nothing of
    the environment or the working directory on the path — and that command is a working
    hook: with a spent blocking budget it denies the tool."""
    python = Path(sys.executable).parent / "python"  # this venv's: its console script runs the install
    monkeypatch.setattr(sys, "argv", [str(python.parent / "costhook"), "install"])
    install_claude()
    entry = Path(costhook.__file__).resolve().parent / "__main__.py"
    hook = f"{shlex.quote(str(python))} -IS {shlex.quote(str(entry))} hook"
    gate = f"/bin/sh {shlex.quote(str(entry.parent / 'agents' / 'gate.sh'))} {hook}"
    found = ours(json.loads((config_dir / "settings.json").read_text()))
    assert found["PreToolUse"][0][1]["command"] == gate
    assert found["PostToolUse"][0][1]["command"] == hook  # after a sub-agent: the gate that records, in Python
    assert found["Stop"][0][1]["command"] == f"setsid -f {hook} --background >/dev/null 2>&1"
    assert install_claude().changed is False

    Path(os.environ["COSTHOOK_CONFIG"]).write_text(
        '[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = "0.000001"\naction = "block"\n')
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(json.dumps({"type": "assistant", "requestId": "r1", "sessionId": "s1", "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                      "message": {"id": "m1", "model": "claude-sonnet-4-5-20250929",
                                                  "usage": {"input_tokens": 500, "output_tokens": 7}}}) + "\n")
    event = {"hook_event_name": "PreToolUse", "session_id": "s1", "transcript_path": str(transcript), "tool_name": "Bash"}
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "elsewhere")}  # ignored (-I)
    done = subprocess.run(["sh", "-c", gate], input=json.dumps(event), capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_hook_command_missing_is_an_install_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InstallError, match="costhook"):
        hook_command()


def test_stale_costhook_path_is_replaced_not_duplicated(config_dir, costhook_exe, tmp_path, monkeypatch):
    path = config_dir / "settings.json"
    old = "'/old venv/bin/costhook' hook"
    settings = copy.deepcopy(FOREIGN)
    settings["hooks"]["PreToolUse"].append(
        {"matcher": "*", "hooks": [{"type": "command", "command": "echo before"},
                                   {"type": "command", "command": old, "timeout": 99}]})
    settings["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "/a/costhook hook"}]})
    settings["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "/b/costhook hook"}]})
    settings["hooks"]["Notification"][0]["hooks"].append({"type": "command", "command": "/a/costhook hook"})
    write_settings(path, settings)

    install_claude()

    data = json.loads(path.read_text())
    found = ours(data)
    assert set(found) == set(HOOK_EVENTS)  # the stray Notification one is gone
    for event, entries in found.items():
        assert [(g.get("matcher"), h["command"]) for g, h in entries] == expected_groups(costhook_exe, event), event
    # Replaced in place: the shared PreToolUse group keeps its foreign handler and position.
    pre = data["hooks"]["PreToolUse"]
    assert pre[1]["hooks"] == [{"type": "command", "command": "echo before"},
                               {"type": "command", "command": hook_command(), "timeout": 5}]
    assert data["hooks"]["Notification"] == FOREIGN["hooks"]["Notification"]

    # A moved venv: a second install from elsewhere swaps the path.
    moved = write_exe(tmp_path / "moved" / "costhook")
    monkeypatch.setattr(sys, "argv", [str(moved)])
    assert install_claude().changed
    found = ours(json.loads(path.read_text()))
    assert all([(g.get("matcher"), h["command"]) for g, h in v] == expected_groups(moved, event)
               for event, v in found.items())

    uninstall_claude()
    data = json.loads(path.read_text())
    assert ours(data) == {}
    assert data["hooks"]["PreToolUse"][1]["hooks"] == [{"type": "command", "command": "echo before"}]


def test_lookalike_commands_are_not_ours(config_dir):
    path = config_dir / "settings.json"
    foreign = {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
        {"type": "command", "command": "/x/costhook-hook hook"},
        {"type": "command", "command": "echo costhook hook"},
        {"type": "command", "command": "/x/costhook report"},
        {"type": "command", "command": "/x/costhook hook --extra"},
        {"type": "http", "url": "http://localhost/costhook"},
    ]}]}}
    write_settings(path, foreign)
    install_claude()
    uninstall_claude()
    assert json.loads(path.read_text()) == foreign


def test_disable_all_hooks_is_pointed_out(config_dir):
    write_settings(config_dir / "settings.json", {"disableAllHooks": True})
    assert "disableAllHooks" in install_claude().message


# -- statusLine ------------------------------------------------------------------


def test_statusline_is_added_when_absent(config_dir, costhook_exe):
    path = config_dir / "settings.json"
    write_settings(path, {"model": "opus"})
    install_claude(statusline=True)
    data = json.loads(path.read_text())
    assert data["statusLine"] == {"type": "command", "command": f"{costhook_exe} statusline", "padding": 0}
    assert not install_claude(statusline=True).changed
    assert not install_claude().changed  # a plain re-install keeps our statusLine

    uninstall_claude()
    assert json.loads(path.read_text()) == {"model": "opus"}


def test_statusline_conflict_is_refused(config_dir):
    path = config_dir / "settings.json"
    original = write_settings(path, FOREIGN)
    with pytest.raises(InstallError, match="--force") as error:
        install_claude(statusline=True)
    assert "statusline.sh" in str(error.value)
    assert path.read_bytes() == original and backups(path) == []


def test_statusline_conflict_can_be_forced(config_dir, costhook_exe):
    path = config_dir / "settings.json"
    original = write_settings(path, FOREIGN)
    result = install_claude(statusline=True, force_statusline=True)
    data = json.loads(path.read_text())
    assert data["statusLine"]["command"] == f"{costhook_exe} statusline"
    assert json.loads(result.backup.read_bytes())["statusLine"] == FOREIGN["statusLine"]
    assert result.backup.read_bytes() == original


def test_uninstall_keeps_a_foreign_statusline(config_dir):
    path = config_dir / "settings.json"
    write_settings(path, FOREIGN)
    install_claude()
    uninstall_claude()
    assert json.loads(path.read_text())["statusLine"] == FOREIGN["statusLine"]


# -- the plugin ------------------------------------------------------------------


def load(relative: str):
    return json.loads((REPO / relative).read_text())


def plugin_paths(command: str) -> list[str]:
    return [word.split("${CLAUDE_PLUGIN_ROOT}/", 1)[1]
            for word in shlex.split(command) if "${CLAUDE_PLUGIN_ROOT}/" in word]


def test_plugin_manifests_parse_and_reference_existing_files():
    plugin = load(".claude-plugin/plugin.json")
    marketplace = load(".claude-plugin/marketplace.json")
    hooks = load("hooks/hooks.json")

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert plugin["name"] == "costhook" and plugin["version"] == version
    assert "hooks" not in plugin  # hooks/hooks.json is loaded anyway; naming it loads it twice
    assert isinstance(plugin["author"], dict) and plugin["author"]["name"]

    assert marketplace["name"] and marketplace["owner"]["name"]
    [entry] = marketplace["plugins"]
    assert entry["name"] == plugin["name"]
    assert entry["source"].startswith("./")
    root = (REPO / entry["source"]).resolve()
    assert (root / ".claude-plugin" / "plugin.json").is_file()
    assert (root / "hooks" / "hooks.json").is_file()

    assert set(hooks["hooks"]) == set(HOOK_EVENTS)
    for event, groups in hooks["hooks"].items():
        [group] = groups
        assert group.get("matcher") == ("*" if event in TOOL_EVENTS else None)
        [handler] = group["hooks"]
        assert handler["type"] == "command"
        assert handler["timeout"] == HOOK_TIMEOUTS[event]
        [relative] = plugin_paths(handler["command"])
        assert (root / relative).is_file(), relative


def test_plugin_hook_script_is_executable_posix_sh():
    script = REPO / "hooks" / "costhook-hook"
    assert os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0


def hook_env(tmp_path, path: str) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": path, "HOME": str(home)}


def test_plugin_hook_script_is_silent_without_costhook(tmp_path):
    path = "/usr/bin:/bin"
    if shutil.which("costhook", path=path):
        pytest.skip("a costhook is installed system-wide")
    event = json.dumps({"hook_event_name": "PreToolUse"})
    for argv in (["sh", str(REPO / "hooks" / "costhook-hook")], [str(REPO / "hooks" / "costhook-hook")]):
        done = subprocess.run(argv, input=event, capture_output=True, text=True,
                              env=hook_env(tmp_path, path), timeout=30)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_plugin_hook_script_runs_installed_costhook(tmp_path):
    fake = tmp_path / "bin" / "costhook"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "args: $*"\ncat\nexit 2\n')
    fake.chmod(0o755)
    done = subprocess.run(["sh", str(REPO / "hooks" / "costhook-hook")], input='{"e": 1}',
                          capture_output=True, text=True,
                          env=hook_env(tmp_path, f"{fake.parent}:/usr/bin:/bin"), timeout=30)
    assert done.returncode == 2  # a budget decision gets through
    assert done.stdout == 'args: hook\n{"e": 1}'


def test_plugin_hook_script_finds_costhook_in_local_bin(tmp_path):
    env = hook_env(tmp_path, "/usr/bin:/bin")
    fake = Path(env["HOME"]) / ".local" / "bin" / "costhook"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "found $1"\n')
    fake.chmod(0o755)
    done = subprocess.run(["sh", str(REPO / "hooks" / "costhook-hook")], input="{}",
                          capture_output=True, text=True, env=env, timeout=30)
    assert (done.returncode, done.stdout) == (0, "found hook\n")


# -- install.sh ------------------------------------------------------------------


def test_install_sh_parses_and_helps():
    script = REPO / "install.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "--test" in done.stdout and "--uninstall" in done.stdout
    bad = subprocess.run([str(script), "--bogus"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "unknown option" in bad.stderr


def test_install_sh_refuses_an_old_python(tmp_path):
    bin_dir = tmp_path / "only-old-python"
    bin_dir.mkdir()
    for tool in ("dirname", "mkdir", "ls", "cat", "sed"):  # everything but a usable python
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    old = bin_dir / "python3"
    old.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.9.2"\nexit 1\n')
    old.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path / "home"),
           "COSTHOOK_VENV": str(tmp_path / "venv"), "COSTHOOK_BIN_DIR": str(tmp_path / "bin")}
    done = subprocess.run([str(REPO / "install.sh"), "--no-import"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert "Python >= 3.11 (Python 3.9.2)" in done.stderr
    assert not (tmp_path / "venv").exists() and not (tmp_path / "home").exists()

    env["PYTHON"] = str(old)
    done = subprocess.run([str(REPO / "install.sh")], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and "not a working Python >= 3.11" in done.stderr


# -- the plugin under the real Claude Code CLI ---------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("version", harness.claude_versions(), ids=lambda v: f"cc{v}")
def test_plugin_installs_and_records_under_real_claude_code(tmp_path, version):
    """`claude plugin marketplace add` + `plugin install costhook@costhook`, then a headless
    run: the plugin's hooks must reach the installed `costhook hook` (found on PATH). Its
    hooks.json names PreSkillShellCommand, which 2.1.330 does not know: the plugin must
    load and record there all the same."""
    claude, reason = harness.claude_binary(version)
    if claude is None:
        pytest.skip(f"e2e: Claude Code unavailable: {reason}")
    layout = harness.make_layout(tmp_path / "case")
    marketplace = tmp_path / "marketplace"  # only the plugin's files, not the whole checkout
    for part in (".claude-plugin", "hooks"):
        shutil.copytree(REPO / part, marketplace / part, symlinks=True)
    env = {**harness.base_env(layout), "DISABLE_AUTOUPDATER": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1"}
    for args in (["plugin", "marketplace", "add", str(marketplace)],
                 ["plugin", "install", "costhook@costhook", "--scope", "user"]):
        done = subprocess.run([*harness.netns_prefix(), str(claude), *args], env=env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
    settings = json.loads(layout.settings.read_text())
    assert settings["enabledPlugins"] == {"costhook@costhook": True}
    assert "hooks" not in settings  # the plugin alone, no settings hooks

    run = harness.run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash"}, claude=claude)

    assert run.rc == 0, run.describe()
    with sqlite3.connect(layout.db) as db:
        counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("requests", "tool_calls", "sessions")}
    assert counts == {"requests": 2, "tool_calls": 1, "sessions": 1}, run.describe()
    assert not layout.errors_log.exists() or not layout.errors_log.read_text()


# -- install.sh, for real: a fresh HOME, its own venv, re-run every way -------------


def _fresh_home_env(tmp_path) -> dict:
    """A user's environment with nothing of costhook's: HOME is tmp, no COSTHOOK_* at all."""
    home = tmp_path / "home"
    home.mkdir()
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def _settings_state(home: Path) -> tuple[bytes, list[Path]]:
    settings = home / ".claude" / "settings.json"
    return settings.read_bytes(), backups(settings)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`./install.sh` once into a fresh HOME: (env, HOME, its output)."""
    env = _fresh_home_env(tmp_path_factory.mktemp("install-sh"))
    done = subprocess.run([str(REPO / "install.sh")], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return env, Path(env["HOME"]), done.stdout


@pytest.mark.slow
def test_install_sh_makes_the_data_folder_private(installed):
    _, home, _ = installed
    assert stat.S_IMODE((home / ".local" / "share" / "costhook").stat().st_mode) == 0o700


@pytest.mark.slow
def test_install_sh_prints_a_summary_not_the_settings_diff(installed):
    _, _, out = installed
    assert "+++" not in out and '"hooks"' not in out, out
    assert len(out.splitlines()) <= 15, out
    assert "Installed costhook hooks" in out


@pytest.mark.slow
def test_install_sh_does_not_say_no_claude_directories_after_making_one(installed):
    _, home, out = installed
    assert (home / ".claude").is_dir()
    assert "no Claude directories found" not in out
    assert "No Claude Code transcripts to import yet" in out


@pytest.mark.slow
def test_reinstalling_every_way_writes_the_same_command_and_no_backup(installed):
    """./install.sh again, `~/.local/bin/costhook install`, `python -m costhook install` and
    `install --statusline` all write the same hook command: no rewrite, no new backup."""
    env, home, _ = installed
    settings = home / ".claude" / "settings.json"
    installed_bytes = settings.read_bytes()
    assert backups(settings) == []
    commands = {handler["command"] for entries in ours(json.loads(installed_bytes)).values() for _, handler in entries}
    assert len(commands) == 3  # the shell gates', the other gates' and the background hooks', of one executable

    link = home / ".local" / "bin" / "costhook"
    venv_python = home / ".local" / "share" / "costhook" / "venv" / "bin" / "python"
    for argv in ([str(link), "install"], [str(venv_python), "-m", "costhook", "install"],
                 [str(REPO / "install.sh"), "--no-import"]):
        again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already installed" in again.stdout, (argv, again.stdout)
        assert (settings.read_bytes(), backups(settings)) == (installed_bytes, []), argv

    status = subprocess.run([str(link), "install", "--statusline"], capture_output=True, text=True, env=env, timeout=60)
    assert status.returncode == 0, status.stderr
    data = json.loads(settings.read_text())
    assert {handler["command"] for entries in ours(data).values() for _, handler in entries} == commands
    gate = min(commands, key=len)  # `<exe> hook`
    assert data["statusLine"]["command"] == gate.replace(" hook", " statusline")
    assert len(backups(settings)) == 1  # adding the statusLine was a change
    twice = subprocess.run([str(REPO / "install.sh"), "--no-import", "--statusline"], capture_output=True, text=True,
                           env=env, timeout=600)
    assert twice.returncode == 0 and "already installed" in twice.stdout, twice.stdout + twice.stderr
    assert len(backups(settings)) == 1


def test_install_prints_the_diff_only_on_a_dry_run_or_when_verbose(config_dir, tmp_path):
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(config_dir)}
    exe = str(Path(sys.executable).parent / "costhook")
    dry = subprocess.run([exe, "install", "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
    assert "+++" in dry.stdout and not (config_dir / "settings.json").exists()
    quiet = subprocess.run([exe, "install"], capture_output=True, text=True, env=env, timeout=60)
    assert quiet.returncode == 0 and "+++" not in quiet.stdout
    assert quiet.stdout.startswith("Installed costhook hooks") and len(quiet.stdout.splitlines()) == 1
    removed = subprocess.run([exe, "uninstall", "--verbose"], capture_output=True, text=True, env=env, timeout=60)
    assert removed.returncode == 0 and "+++" in removed.stdout and "Removed" in removed.stdout


@pytest.mark.parametrize("content", ['{"model": "opus", "model": "sonnet"}\n', '{"hooks": {"Stop": [], "Stop": [{"hooks": []}]}}\n'])
def test_a_key_written_twice_is_refused_not_dropped(config_dir, content):
    """JSON with a key twice parses (the last wins) but cannot be written back as it was:
    install kept the last and dropped the other from the user's file without a word."""
    path = config_dir / "settings.json"
    path.write_text(content)
    for verb in (install_claude, uninstall_claude):
        with pytest.raises(InstallError, match="twice"):
            verb()
    assert path.read_text() == content and backups(path) == []


def test_install_sh_uninstall_removes_the_openclaw_plugin_too(tmp_path):
    """./install.sh --uninstall removed Claude Code's hooks (and Codex's) and the venv, but
    left costhook's plugin registered in OpenClaw's config, naming a costhook that is gone."""
    home, venv, log = tmp_path / "home", tmp_path / "venv", tmp_path / "calls.log"
    (home / ".openclaw").mkdir(parents=True)
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    write_exe(venv / "bin" / "costhook").write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "COSTHOOK_VENV": str(venv), "COSTHOOK_BIN_DIR": str(tmp_path / "bin")}
    done = subprocess.run([str(REPO / "install.sh"), "--uninstall"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert log.read_text().splitlines() == ["uninstall", "uninstall --agent openclaw"]
    assert not venv.exists()


@pytest.mark.slow
def test_install_sh_imports_nothing_from_the_working_directory(tmp_path):
    """`python -m venv` and `python -m pip` put the working directory first on sys.path:
    ./install.sh run from a folder holding a venv.py or pip.py ran that file instead."""
    cwd, marker = tmp_path / "downloads", tmp_path / "ran"
    cwd.mkdir()
    for name in ("venv", "pip"):
        (cwd / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r})\nraise SystemExit(1)\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "PYTHON": sys.executable,
           "COSTHOOK_VENV": str(tmp_path / "venv"), "COSTHOOK_BIN_DIR": str(tmp_path / "bin"),
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "none")}  # never the network: the build may fail
    subprocess.run([str(REPO / "install.sh"), "--no-hooks", "--no-import"], capture_output=True, text=True,
                   env=env, cwd=cwd, timeout=300)
    assert not marker.exists(), marker.read_text()
    assert (tmp_path / "venv" / "pyvenv.cfg").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("owned", ["file", "folder"])
def test_settings_of_another_user_are_refused(config_dir, owned):
    """Run as root (sudo keeping HOME) on another user's settings, install rewrote them with
    the hooks of root's costhook, left a backup only root can read beside them, or made a
    settings file root owns in their folder, which their agent then cannot read."""
    path = config_dir / "settings.json"
    if owned == "file":
        original = write_settings(path, FOREIGN)
        os.chown(path, 65534, 65534)
    os.chown(config_dir, 65534, 65534)
    with pytest.raises(InstallError, match="another user"):
        install_claude()
    assert sorted(p.name for p in config_dir.iterdir()) == (["settings.json"] if owned == "file" else [])
    if owned == "file":
        assert path.read_bytes() == original


@pytest.mark.slow
def test_install_sh_replaces_a_link_to_a_folder_not_links_inside_it(tmp_path):
    """~/.local/bin/costhook a symlink to a folder (a checkout, say): `ln -sf` followed it
    and made the link inside that folder, leaving the old one in place on PATH."""
    env = _fresh_home_env(tmp_path)
    bin_dir = Path(env["HOME"]) / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (bin_dir / "costhook").symlink_to(checkout)
    done = subprocess.run([str(REPO / "install.sh"), "--no-hooks", "--no-import"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(checkout.iterdir()) == []
    assert os.readlink(bin_dir / "costhook") == str(Path(env["HOME"]) / ".local" / "share" / "costhook" / "venv" / "bin" / "costhook")
