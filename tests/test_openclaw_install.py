"""`costhook install / uninstall --agent openclaw`: the plugin copied, OpenClaw's config
merged (never overwritten), backups, idempotence, dry runs, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import COSTHOOK

REPO = Path(__file__).resolve().parents[1]
PLUGIN_FILES = {"openclaw.plugin.json", "package.json", "index.js"}


@pytest.fixture
def oc(home, tmp_path, monkeypatch):
    state = tmp_path / "openclaw"
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(state))
    monkeypatch.delenv("OPENCLAW_CONFIG_PATH", raising=False)
    monkeypatch.delenv("OPENCLAW_CONFIG_READONLY", raising=False)
    monkeypatch.delenv("OPENCLAW_NIX_MODE", raising=False)
    monkeypatch.delenv("COSTHOOK_OPENCLAW_CLI", raising=False)
    monkeypatch.setenv("PATH", f"{Path(COSTHOOK).parent}:/usr/bin:/bin")  # no `openclaw` here
    return state


def costhook(*args, env=None):
    return subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def config(state: Path) -> dict:
    return json.loads((state / "openclaw.json").read_text())


def backups(state: Path) -> list:
    return sorted(state.glob("openclaw.json.costhook-backup-*"))


def test_install_into_a_fresh_state_dir(home, oc):
    proc = costhook("install", "--agent", "openclaw")
    assert proc.returncode == 0, proc.stderr
    assert "Installed and enabled costhook's OpenClaw plugin" in proc.stdout
    plugin = home / "openclaw-plugin"
    assert {p.name for p in plugin.iterdir()} == PLUGIN_FILES
    for name in PLUGIN_FILES:
        assert (plugin / name).read_bytes() == (REPO / "hooks" / "openclaw" / name).read_bytes()
    data = config(oc)
    assert data["plugins"]["load"]["paths"] == [str(plugin)]
    assert data["plugins"]["entries"]["costhook"] == {
        "enabled": True,
        "hooks": {"allowConversationAccess": True},
        "config": {"command": [COSTHOOK, "hook", "--agent", "openclaw"]},
    }
    assert oct((oc / "openclaw.json").stat().st_mode & 0o777) == "0o600"
    assert backups(oc) == []


def test_install_merges_keeps_everything_else_and_is_idempotent(home, oc):
    oc.mkdir()
    original = {
        "agents": {"defaults": {"model": {"primary": "anthropic/claude-sonnet-4-6"}}},
        "plugins": {
            "allow": ["memory-core"],
            "load": {"paths": ["/opt/other-plugin", str(home / "old-costhook" / "openclaw-plugin")]},
            "entries": {"other": {"enabled": True}, "costhook": {"config": {"gateTimeoutMs": 2000}, "hooks": {"timeoutMs": 9000}}},
        },
    }
    (oc / "openclaw.json").write_text(json.dumps(original))
    os.chmod(oc / "openclaw.json", 0o640)
    proc = costhook("install", "--agent", "openclaw")
    assert proc.returncode == 0, proc.stderr
    data = config(oc)
    assert data["agents"] == original["agents"]
    assert data["plugins"]["allow"] == ["memory-core", "costhook"]
    assert data["plugins"]["load"]["paths"] == ["/opt/other-plugin", str(home / "openclaw-plugin")]  # the old copy replaced
    assert data["plugins"]["entries"]["other"] == {"enabled": True}
    assert data["plugins"]["entries"]["costhook"] == {
        "config": {"gateTimeoutMs": 2000, "command": [COSTHOOK, "hook", "--agent", "openclaw"]},
        "hooks": {"timeoutMs": 9000, "allowConversationAccess": True},
        "enabled": True,
    }
    assert oct((oc / "openclaw.json").stat().st_mode & 0o777) == "0o640"
    (backup,) = backups(oc)
    assert json.loads(backup.read_text()) == original
    before = (oc / "openclaw.json").read_bytes()
    again = costhook("install", "--agent", "openclaw")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert (oc / "openclaw.json").read_bytes() == before and len(backups(oc)) == 1


def test_uninstall_removes_only_what_install_added(home, oc):
    oc.mkdir()
    (oc / "openclaw.json").write_text(json.dumps({"plugins": {"load": {"paths": ["/opt/other"]}, "entries": {"other": {}}}}))
    costhook("install", "--agent", "openclaw")
    proc = costhook("uninstall", "--agent", "openclaw")
    assert proc.returncode == 0, proc.stderr
    assert config(oc) == {"plugins": {"load": {"paths": ["/opt/other"]}, "entries": {"other": {}}}}
    assert not (home / "openclaw-plugin").exists()
    again = costhook("uninstall", "--agent", "openclaw")
    assert again.returncode == 0 and "nothing changed" in again.stdout


def test_dry_run_changes_nothing(home, oc):
    proc = costhook("install", "--agent", "openclaw", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert '"allowConversationAccess": true' in proc.stdout and "Dry run" in proc.stdout
    assert not (oc / "openclaw.json").exists() and not (home / "openclaw-plugin").exists()


def test_config_path_override(home, oc, tmp_path):
    target = tmp_path / "elsewhere" / "oc.json"
    proc = costhook("install", "--agent", "openclaw", env={"OPENCLAW_CONFIG_PATH": str(target)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(target.read_text())["plugins"]["entries"]["costhook"]["enabled"] is True


def test_externally_managed_config_is_refused(home, oc):
    oc.mkdir()
    (oc / "openclaw.json").write_text("{}")
    proc = costhook("install", "--agent", "openclaw", env={"OPENCLAW_CONFIG_READONLY": "1"})
    assert proc.returncode != 0 and "externally managed" in proc.stderr
    assert (oc / "openclaw.json").read_text() == "{}"


def test_json5_config_without_the_openclaw_cli_is_refused(home, oc):
    oc.mkdir()
    text = '// my config\n{ agents: { defaults: {} }, }\n'
    (oc / "openclaw.json").write_text(text)
    proc = costhook("install", "--agent", "openclaw")
    assert proc.returncode != 0 and "JSON5" in proc.stderr and "`openclaw`" in proc.stderr
    assert (oc / "openclaw.json").read_text() == text


def test_broken_plugins_section_is_left_alone(home, oc):
    oc.mkdir()
    (oc / "openclaw.json").write_text(json.dumps({"plugins": ["not", "an", "object"]}))
    proc = costhook("install", "--agent", "openclaw")
    assert proc.returncode != 0 and '"plugins"' in proc.stderr


def test_install_all_does_claude_and_openclaw(home, oc, tmp_path, monkeypatch):
    claude = tmp_path / "claude-config"
    proc = costhook("install", "--agent", "all", env={"CLAUDE_CONFIG_DIR": str(claude)})
    assert proc.returncode == 0, proc.stderr
    assert "hook" in (claude / "settings.json").read_text()
    assert config(oc)["plugins"]["entries"]["costhook"]["enabled"] is True
    proc = costhook("uninstall", "--agent", "all", env={"CLAUDE_CONFIG_DIR": str(claude)})
    assert proc.returncode == 0, proc.stderr
    assert "costhook" not in json.dumps(config(oc))


@pytest.mark.parametrize("agent", ["claude", "openclaw", "codex"])
@pytest.mark.parametrize("odd", ["symlink-loop", "file-as-folder"])
def test_an_unreadable_settings_path_is_one_line_not_a_traceback(home, oc, tmp_path, agent, odd):
    """A settings file that is a loop of symlinks, or whose folder is a file: an OSError
    other than 'missing', 'a folder' or 'permission denied' went up as a traceback."""
    folder = {"claude": tmp_path / "claude-config", "openclaw": oc, "codex": tmp_path / "codex-home"}[agent]
    name = {"claude": "settings.json", "openclaw": "openclaw.json", "codex": "hooks.json"}[agent]
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config")}
    if odd == "symlink-loop":
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(name)
    else:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.write_text("")  # a file where the agent's folder should be
    for verb in ("install", "uninstall"):
        proc = costhook(verb, "--agent", agent, env=env)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("Error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_config_that_is_not_utf8_is_refused_not_rewritten(home, oc):
    """A byte that is not UTF-8 in OpenClaw's config was read as U+FFFD and written back:
    the user's text changed where costhook changed nothing of it."""
    oc.mkdir()
    raw = b'{"agents": {"defaults": {"name": "caf\xe9"}}}\n'
    (oc / "openclaw.json").write_bytes(raw)
    proc = costhook("install", "--agent", "openclaw")
    assert proc.returncode == 1 and "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (oc / "openclaw.json").read_bytes() == raw and backups(oc) == []


@pytest.mark.parametrize("plant", ["world-writable", "foreign"])
def test_a_plugin_folder_others_can_write_is_refused(home, oc, plant):
    """The Gateway runs the index.js in costhook's plugin folder as the user: a folder
    another user owns or may write (planted before the first install) would let them swap
    it for their own code. install copied into it and registered it all the same."""
    folder = home / "openclaw-plugin"
    folder.mkdir(parents=True)
    os.chmod(home, 0o700)
    os.chmod(folder, 0o777)
    if plant == "foreign":
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        os.chown(folder, 65534, 65534)
        os.chmod(folder, 0o700)
    proc = costhook("install", "--agent", "openclaw")
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert str(folder) in proc.stderr
    assert list(folder.iterdir()) == [] and not (oc / "openclaw.json").exists()


def test_the_folders_install_creates_are_private(oc, tmp_path):
    """costhook's home made by install (as the plugin folder's parent) was 0755: makedirs
    gives its mode to the last folder only, and the home then stayed open to everyone's
    listing, since it is tightened only when costhook itself makes it."""
    home = tmp_path / "data" / "costhook"
    proc = costhook("install", "--agent", "openclaw", env={"COSTHOOK_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    for folder in (tmp_path / "data", home, home / "openclaw-plugin"):
        assert oct(folder.stat().st_mode & 0o777) == "0o700", folder


def test_a_key_written_twice_goes_to_openclaws_cli_not_dropped(home, oc):
    """Plain JSON with a key twice: written back by costhook, the first was dropped."""
    oc.mkdir()
    text = '{"agents": {"defaults": {}}, "agents": {"list": []}}\n'
    (oc / "openclaw.json").write_text(text)
    proc = costhook("install", "--agent", "openclaw")
    assert proc.returncode == 1 and "`openclaw`" in proc.stderr, proc.stderr
    assert (oc / "openclaw.json").read_text() == text and backups(oc) == []


def test_an_empty_allow_list_stays_empty(home, oc):
    """OpenClaw reads `plugins.allow: []` as no allowlist at all (only a non-empty list
    restricts: `allow.length > 0 && !allow.includes(id)`). install appended costhook to it,
    and the list that allowed every plugin then allowed costhook alone."""
    oc.mkdir()
    (oc / "openclaw.json").write_text(json.dumps({"plugins": {"allow": [], "entries": {"mine": {"enabled": True}}}}))
    proc = costhook("install", "--agent", "openclaw")
    assert proc.returncode == 0, proc.stderr
    assert config(oc)["plugins"]["allow"] == [] and config(oc)["plugins"]["entries"]["mine"] == {"enabled": True}
    assert costhook("uninstall", "--agent", "openclaw").returncode == 0
    assert config(oc) == {"plugins": {"allow": [], "entries": {"mine": {"enabled": True}}}}


FAKE_OPENCLAW_CLI = """import json, sys
# A stand-in for `openclaw config get PATH --json` / `openclaw config patch --stdin` over a
# JSON5 config: it answers from the JSON in argv[1] and appends each patch to argv[2].
args = sys.argv[3:]
if args[:2] == ["config", "get"]:
    value = json.load(open(sys.argv[1]))
    for part in args[2].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:  # as OpenClaw's: "Config path is valid but unset", exit 1
        print(json.dumps({"ok": False, "error": "unset"}))
        sys.exit(1)
    print(json.dumps(value))
elif args[:2] == ["config", "patch"]:
    open(sys.argv[2], "a").write(sys.stdin.read().replace("\\n", " ") + "\\n")
"""


def test_a_json5_config_with_an_allow_list_gets_costhook_added(home, oc, tmp_path):
    """A JSON5 config is changed through `openclaw config patch`, whose patch never named
    `plugins.allow`: with a non-empty allowlist OpenClaw did not load the plugin that
    install said it had installed (a plain-JSON config gets costhook added to the list)."""
    oc.mkdir()
    (oc / "openclaw.json").write_text("// mine\n{ plugins: { allow: ['mine'] }, }\n")
    current = tmp_path / "as-json.json"
    current.write_text(json.dumps({"plugins": {"allow": ["mine"]}}))
    cli, patches = tmp_path / "openclaw_cli.py", tmp_path / "patches.jsonl"
    cli.write_text(FAKE_OPENCLAW_CLI)
    env = {"COSTHOOK_OPENCLAW_CLI": f"{sys.executable} {cli} {current} {patches}"}
    proc = costhook("install", "--agent", "openclaw", env=env)
    assert proc.returncode == 0, proc.stderr
    patch = json.loads(patches.read_text().splitlines()[-1])
    assert patch["plugins"]["allow"] == ["mine", "costhook"]
    current.write_text(json.dumps({"plugins": {"allow": ["mine", "costhook"]}}))
    proc = costhook("uninstall", "--agent", "openclaw", env=env)
    assert proc.returncode == 0, proc.stderr
    patch = json.loads(patches.read_text().splitlines()[-1])
    assert patch["plugins"]["allow"] == ["mine"] and patch["plugins"]["entries"] == {"costhook": None}
    current.write_text(json.dumps({"plugins": {"load": {"paths": []}}}))  # no allowlist: none in the patch
    proc = costhook("install", "--agent", "openclaw", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "allow" not in json.loads(patches.read_text().splitlines()[-1])["plugins"]
