"""`costhook install/uninstall --agent codex` on real files in a temporary CODEX_HOME:
foreign hooks kept, idempotent, backup, dry run, uninstall; no Codex to ask for trust
(the trust through the real `codex app-server` is tests/e2e/test_codex_install_e2e.py)."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from costhook.agents.settings import gate_launcher

from costhook.agents.codex import install as codex

COSTHOOK = str(Path(sys.executable).parent / "costhook")
FOREIGN = {"type": "command", "command": "python3 /opt/guard.py", "timeout": 7}


@pytest.fixture
def codex_home(tmp_path, monkeypatch, home):
    folder = tmp_path / "codex-home"
    folder.mkdir()
    monkeypatch.setenv("CODEX_HOME", str(folder))
    monkeypatch.delenv("COSTHOOK_CODEX_CLI", raising=False)
    return folder


def cli(*args, env=None):
    """The real `costhook` with no `codex` on PATH (trust cannot be asked for here, unless
    `env` names one)."""
    environment = {**os.environ, "PATH": f"{Path(COSTHOOK).parent}:/usr/bin:/bin"}
    environment.pop("COSTHOOK_CODEX_CLI", None)
    environment.update(env or {})
    return subprocess.run([COSTHOOK, *args], capture_output=True, text=True, env=environment, timeout=60)


def hooks_of(folder: Path) -> dict:
    return json.loads((folder / "hooks.json").read_text())["hooks"]


def ours(hooks: dict, event: str) -> list:
    return [h for group in hooks.get(event, []) for h in group["hooks"] if codex.is_costhook_hook(h)]


def write(folder: Path, data: dict) -> bytes:
    raw = json.dumps(data, indent=1).encode()
    (folder / "hooks.json").write_bytes(raw)
    return raw


def backups(folder: Path) -> list:
    return sorted(folder.glob("hooks.json.costhook-backup-*"))


def test_install_merges_keeps_foreign_hooks_and_backs_up(codex_home):
    old = write(codex_home, {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [FOREIGN]}],
                                       "Interrupt": [{"hooks": [FOREIGN]}]}, "x-note": "kept"})
    proc = cli("install", "--agent", "codex")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((codex_home / "hooks.json").read_text())
    hooks = data["hooks"]
    assert data["x-note"] == "kept"
    assert hooks["PreToolUse"][0] == {"matcher": "Bash", "hooks": [FOREIGN]}  # first: its trust key stays
    assert hooks["Interrupt"] == [{"hooks": [FOREIGN]}]
    for event in codex.HOOK_EVENTS:
        if event == "PostToolUse":  # the gate after the sub-agent tools, in the background after the others
            gate, other = ours(hooks, event)
            assert [g["matcher"] for g in hooks[event]] == [codex.SPENDING_MATCHER, codex.OTHER_TOOLS_MATCHER]
            assert "setsid -f" not in gate["command"] and "setsid -f" in other["command"]
            continue
        (handler,) = ours(hooks, event)
        assert handler["timeout"] == codex.HOOK_TIMEOUTS[event]
        assert "--agent codex" in handler["command"]
        assert ("setsid -f" in handler["command"]) == (event not in codex.GATE_EVENTS)
    assert ours(hooks, "SessionEnd")[0]["timeout"] == 3  # Codex's SessionEnd default is 1 s
    assert hooks["PreToolUse"][1]["matcher"] == "*"
    (backup,) = backups(codex_home)
    assert backup.read_bytes() == old and stat.S_IMODE(backup.stat().st_mode) == 0o600
    # No codex to ask: the user is told exactly what to do, and that nothing runs until then.
    assert "/hooks" in proc.stdout and "silently" in proc.stdout and "COSTHOOK_CODEX_CLI" in proc.stdout


def test_the_split_keeps_the_place_of_our_group_and_moves_no_other_hook(codex_home):
    """An install from before the PostToolUse split (one group of ours, a user's hook after
    it): our first group keeps its place, so the user's keeps its trust key
    (`<file>:<event>:<group>:<handler>`); the second of ours goes to the end."""
    older = {"type": "command", "command": "/old/venv/bin/costhook hook --agent codex", "timeout": 10}
    write(codex_home, {"hooks": {"PostToolUse": [{"matcher": "*", "hooks": [older]},
                                                 {"matcher": "Bash", "hooks": [FOREIGN]}]}})
    assert cli("install", "--agent", "codex").returncode == 0
    groups = hooks_of(codex_home)["PostToolUse"]
    assert [g["matcher"] for g in groups] == [codex.SPENDING_MATCHER, "Bash", codex.OTHER_TOOLS_MATCHER]
    assert groups[1] == {"matcher": "Bash", "hooks": [FOREIGN]}
    proc = cli("install", "--agent", "codex")
    assert "nothing changed" in proc.stdout


def test_install_is_idempotent_and_a_new_file_is_private(codex_home):
    assert cli("install", "--agent", "codex").returncode == 0
    path = codex_home / "hooks.json"
    first = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not backups(codex_home)
    proc = cli("install", "--agent", "codex")
    assert proc.returncode == 0 and "nothing changed" in proc.stdout
    assert path.read_bytes() == first and not backups(codex_home)


def test_dry_run_shows_the_diff_and_writes_nothing(codex_home):
    old = write(codex_home, {"hooks": {"Stop": [{"hooks": [FOREIGN]}]}})
    proc = cli("install", "--agent", "codex", "--dry-run")
    assert proc.returncode == 0
    assert "+++ " in proc.stdout and "hook --agent codex" in proc.stdout and "Dry run" in proc.stdout
    assert (codex_home / "hooks.json").read_bytes() == old and not backups(codex_home)


def test_uninstall_removes_only_ours(codex_home):
    write(codex_home, {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [FOREIGN]}]}})
    assert cli("install", "--agent", "codex").returncode == 0
    proc = cli("uninstall", "--agent", "codex")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert hooks_of(codex_home) == {"PreToolUse": [{"matcher": "Bash", "hooks": [FOREIGN]}]}
    assert len(backups(codex_home)) == 2
    proc = cli("uninstall", "--agent", "codex")
    assert "nothing changed" in proc.stdout and len(backups(codex_home)) == 2


def test_uninstall_of_ours_alone_leaves_no_hooks_key(codex_home):
    assert cli("install", "--agent", "codex").returncode == 0
    assert cli("uninstall", "--agent", "codex").returncode == 0
    assert json.loads((codex_home / "hooks.json").read_text()) == {}


def test_reinstall_with_a_new_path_replaces_ours_in_place(codex_home):
    """A moved costhook (a new venv): our group keeps its place, so the hooks after it keep
    their trust keys (`<file>:<event>:<group>:<handler>`)."""
    moved = {"type": "command", "command": "/old/venv/bin/costhook hook --agent codex", "timeout": 5}
    write(codex_home, {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [moved]},
                                                {"matcher": "Bash", "hooks": [FOREIGN]}]}})
    assert cli("install", "--agent", "codex").returncode == 0
    groups = hooks_of(codex_home)["PreToolUse"]
    assert len(groups) == 2 and groups[1] == {"matcher": "Bash", "hooks": [FOREIGN]}
    assert groups[0]["hooks"][0]["command"] == f"{gate_launcher()} hook --agent codex"  # this install's


def test_a_claude_hook_in_hooks_json_is_not_ours(codex_home):
    """`costhook hook` without `--agent codex` would run Claude's handler: install leaves it
    (and adds its own), uninstall leaves it and names it (exit 1)."""
    claude = {"type": "command", "command": "/x/costhook hook", "timeout": 5}
    write(codex_home, {"hooks": {"Stop": [{"hooks": [claude]}]}})
    assert cli("install", "--agent", "codex").returncode == 0
    assert hooks_of(codex_home)["Stop"][0] == {"hooks": [claude]}
    proc = cli("uninstall", "--agent", "codex")
    assert proc.returncode == 1 and "Still running costhook" in proc.stdout and "/x/costhook hook" in proc.stdout
    assert hooks_of(codex_home) == {"Stop": [{"hooks": [claude]}]}


@pytest.mark.parametrize("command", [
    "/a/costhook hook --agent codex",
    "setsid -f /a/costhook hook --agent codex --background >/dev/null 2>&1",
    "/a/costhook hook --background --agent codex",
    "COSTHOOK_DB=/x.db /a/costhook hook --agent codex 2>/dev/null || true",
])
def test_ours_as_written_or_edited(command):
    assert codex.is_costhook_command(command)


@pytest.mark.parametrize("command", [
    "/a/costhook hook", "/a/costhook hook --agent openclaw", "/a/costhook hook --agent codex --agent codex",
    "/a/costhook hook --agent codex && notify-send x", "echo costhook hook --agent codex",
])
def test_not_ours(command):
    assert not codex.is_costhook_command(command)


def test_a_broken_hooks_json_is_left_alone(codex_home):
    (codex_home / "hooks.json").write_text('{"hooks": {"Stop": {}}}')
    proc = cli("install", "--agent", "codex")
    assert proc.returncode == 1 and "Codex:" in proc.stderr and "not a JSON list" in proc.stderr
    assert (codex_home / "hooks.json").read_text() == '{"hooks": {"Stop": {}}}' and not backups(codex_home)


def test_doctor_names_the_codex_hooks_and_that_trust_is_unchecked(codex_home):
    assert cli("install", "--agent", "codex").returncode == 0
    out = cli("doctor").stdout
    assert f"codex      {codex_home / 'hooks.json'}: 11 events" in out
    assert "trust not checked" in out


def test_all_installs_codex_too(codex_home, tmp_path):
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude"), "OPENCLAW_STATE_DIR": str(tmp_path / "oc"),
           "HOME": str(tmp_path / "home")}
    proc = cli("install", "--agent", "all", "--dry-run", env=env)
    assert proc.returncode == 0, proc.stderr
    assert str(codex_home / "hooks.json") in proc.stdout


def test_duplicates_of_ours_collapse_into_the_first_place(codex_home):
    stale = {"type": "command", "command": "/old/costhook hook --agent codex", "timeout": 5}
    write(codex_home, {"hooks": {"Stop": [{"hooks": [FOREIGN]}, {"hooks": [stale]}, {"hooks": [FOREIGN, stale]},
                                          {"hooks": [stale]}]}})
    assert cli("install", "--agent", "codex").returncode == 0
    groups = hooks_of(codex_home)["Stop"]
    assert groups[0] == {"hooks": [FOREIGN]} and groups[2] == {"hooks": [FOREIGN]} and len(groups) == 3
    assert codex.is_costhook_hook(groups[1]["hooks"][0]) and "/old/" not in groups[1]["hooks"][0]["command"]


def test_a_codex_that_cannot_answer_leaves_the_hooks_installed_and_says_what_to_do(codex_home):
    proc = cli("install", "--agent", "codex", env={"COSTHOOK_CODEX_CLI": "false"})
    assert proc.returncode == 0, proc.stderr
    assert "Could not ask Codex to trust them (`codex app-server` exited early)" in proc.stdout
    assert "/hooks" in proc.stdout and len(ours(hooks_of(codex_home), "Stop")) == 1


def test_what_a_hostile_app_server_says_is_printed_escaped(codex_home, tmp_path):
    server = tmp_path / "fake-codex.py"
    server.write_text("import json, sys\n"
                      "for line in sys.stdin:\n"
                      "    msg = json.loads(line)\n"
                      "    if 'id' in msg:\n"
                      "        print(json.dumps({'id': msg['id'], 'error': {'message': '\\x1b]0;owned\\x07\\x1b[2J'}}), flush=True)\n")
    proc = cli("install", "--agent", "codex", env={"COSTHOOK_CODEX_CLI": f"{sys.executable} {server}"})
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert "codex app-server initialize: \\x1b]0;owned" in proc.stdout


def test_doctor_counts_a_missing_codex_event_as_a_problem(codex_home):
    assert cli("install", "--agent", "codex").returncode == 0
    data = json.loads((codex_home / "hooks.json").read_text())
    del data["hooks"]["PreToolUse"]
    (codex_home / "hooks.json").write_text(json.dumps(data))
    proc = cli("doctor")
    assert proc.returncode == 1
    assert "10 events" in proc.stdout and "missing PreToolUse (run `costhook install --agent codex`)" in proc.stdout
