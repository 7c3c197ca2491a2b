"""`costhook install --agent codex` against the real Codex CLI 0.171.0: Codex skips an
untrusted hook without a word, so the installer has Codex trust costhook's hooks through
`codex app-server`, doctor tells when they are not trusted, and uninstall keeps the trust
of the user's own hooks. Runs are offline (tests/e2e/codex_harness.py) and **without**
`--dangerously-bypass-hook-trust`: only trust makes the hooks run.

The proof that a hook ran: a spent blocking budget, which costhook's UserPromptSubmit
hook turns into "no API call at all"."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone

import pytest

from . import codex_harness


@pytest.fixture(scope="module")
def codex_bin():
    path, why = codex_harness.codex_binary()
    if path is None:
        pytest.skip(f"e2e: Codex {codex_harness.CODEX_VERSION} unavailable: {why} "
                    "(install it with `python tests/e2e/codex_harness.py --install`)")
    return path


def costhook(box, *args, codex=None):
    """The real `costhook` in the box's environment; `codex`: the Codex it may ask for trust."""
    env = {**box.env(), **({"COSTHOOK_CODEX_CLI": str(codex)} if codex else {})}
    return subprocess.run([str(codex_harness.costhook_exe()), *args], cwd=box.work, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def spend_today(box, sonnet_input_tokens: int = 100_000) -> None:
    """$0.30 spent today, through a Claude transcript (a global budget counts every agent)."""
    folder = box.root / "claude" / "projects" / "-p"
    folder.mkdir(parents=True)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    line = {"type": "assistant", "sessionId": "seed", "timestamp": now, "cwd": "/p", "requestId": "req_seed",
            "message": {"id": "msg_seed", "model": "claude-sonnet-4-5-20250929", "role": "assistant",
                        "content": [{"type": "text", "text": "ok"}],
                        "usage": {"input_tokens": sonnet_input_tokens, "output_tokens": 0}}}
    (folder / "seed.jsonl").write_text(json.dumps(line) + "\n")
    proc = costhook(box, "import", "--claude-dir", str(box.root / "claude"), "-q")
    assert proc.returncode == 0, proc.stderr
    box.costhook_config.write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 0.10\naction = "block"\n')


def test_installed_hooks_run_only_once_trusted_and_install_trusts_them(tmp_path, codex_bin):
    box = codex_harness.Sandbox.make(tmp_path, codex_bin)
    spend_today(box)

    # No Codex to ask (not on PATH): the hooks are written, the user is told what to do...
    first = costhook(box, "install", "--agent", "codex")
    assert first.returncode == 0, first.stderr
    assert "/hooks" in first.stdout and "silently" in first.stdout
    # ...and until then Codex skips them without a word: the spent budget blocks nothing.
    run = box.run("hello", hook_trust=False)
    assert run.rc == 0 and len(run.billed) == 1
    doctor = costhook(box, "doctor", codex=codex_bin)
    assert "PROBLEM: Codex skips 12 costhook hooks silently" in doctor.stdout, doctor.stdout
    assert doctor.returncode == 1

    # Installing with Codex at hand trusts them (Codex computes the hashes, not costhook).
    second = costhook(box, "install", "--agent", "codex", codex=codex_bin)
    assert second.returncode == 0, second.stderr
    assert "nothing changed" in second.stdout and "Codex trusts all 12 costhook hooks" in second.stdout
    assert list(box.codex_home.glob("config.toml.costhook-backup-*")) == []  # there was no config.toml yet
    config = (box.codex_home / "config.toml").read_text()
    assert config.count("trusted_hash") == 12
    doctor = costhook(box, "doctor", codex=codex_bin)
    assert "Codex trusts all 12 of them" in doctor.stdout, doctor.stdout

    # Now the hooks run without any bypass flag: the spent budget stops the prompt, 0 API calls.
    run = box.run("hello again", hook_trust=False)
    assert run.rc == 0 and run.requests == []

    # A third install changes nothing, not even the trust (config.toml untouched).
    third = costhook(box, "install", "--agent", "codex", codex=codex_bin)
    assert "nothing changed" in third.stdout and (box.codex_home / "config.toml").read_text() == config


def user_hooks(box, codex_bin, monkeypatch) -> list:
    """The hooks of the box's hooks.json as Codex lists them (what its /hooks screen shows)."""
    from costhook.agents.codex import install

    monkeypatch.setenv("CODEX_HOME", str(box.codex_home))
    monkeypatch.setenv("HOME", str(box.home))
    return install.list_file_hooks(box.codex_home / "hooks.json", [str(codex_bin)])


def test_uninstall_keeps_the_trust_of_a_hook_that_moves(tmp_path, codex_bin, monkeypatch):
    """A hook the user added (and trusted) after ours sits at group 1 of its event; when
    uninstall removes our group 0 it becomes group 0, a new trust key: Codex would skip it
    silently. Uninstall carries the user's trust over (same hash), and trusts nothing else."""
    from costhook.agents.codex import install

    box = codex_harness.Sandbox.make(tmp_path, codex_bin)
    assert costhook(box, "install", "--agent", "codex", codex=codex_bin).returncode == 0
    path = box.codex_home / "hooks.json"
    data = json.loads(path.read_text())
    mine = {"type": "command", "command": f"touch {box.root / 'user-hook-ran'}", "timeout": 5}
    data["hooks"]["UserPromptSubmit"].append({"hooks": [mine]})
    data["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "true", "timeout": 5}]})  # never trusted
    path.write_text(json.dumps(data, indent=2))
    # The user trusts their hook (as Codex's /hooks screen does: its own hash, through app-server).
    (theirs,) = [h for h in user_hooks(box, codex_bin, monkeypatch) if h["command"].startswith("touch")]
    with install.AppServer([str(codex_bin)]) as server:
        server.trust([theirs])

    config = (box.codex_home / "config.toml").read_bytes()
    proc = costhook(box, "uninstall", "--agent", "codex", codex=codex_bin)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Kept the trust of 1 other hooks" in proc.stdout
    (backup,) = box.codex_home.glob("config.toml.costhook-backup-*")  # before Codex wrote the carried-over trust
    assert backup.read_bytes() == config and oct(backup.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text())["hooks"]["UserPromptSubmit"] == [{"hooks": [mine]}]
    after = {h["command"]: h for h in user_hooks(box, codex_bin, monkeypatch)}
    assert after[mine["command"]]["trustStatus"] == "trusted" and after[mine["command"]]["key"] != theirs["key"]
    assert after["true"]["trustStatus"] != "trusted"  # never trusted by the user: still not
    box.run("hello", hook_trust=False)
    assert (box.root / "user-hook-ran").exists()  # it really runs at its new place


def test_costhook_hooks_in_config_toml_too_are_named(tmp_path, codex_bin):
    """Codex also reads hooks from config.toml: a costhook entry there would run beside the
    one in hooks.json. install and doctor name it (Codex lists it with its file)."""
    box = codex_harness.Sandbox.make(tmp_path, codex_bin)
    command = f"{codex_harness.costhook_exe()} hook --agent codex"
    (box.codex_home / "config.toml").write_text(
        f'[[hooks.Stop]]\n[[hooks.Stop.hooks]]\ntype = "command"\ncommand = "{command}"\n')
    proc = costhook(box, "install", "--agent", "codex", codex=codex_bin)
    assert proc.returncode == 0, proc.stderr
    note = f"Note: Codex also runs costhook's hook from {box.codex_home / 'config.toml'} (1 entries)"
    assert note in proc.stdout, proc.stdout
    assert note in costhook(box, "doctor", codex=codex_bin).stdout


def test_after_every_tool_exactly_one_costhook_hook_runs(tmp_path, codex_bin):
    """PostToolUse has two groups of ours (install.SPLIT_EVENTS): the gate for the sub-agent
    tools, a background hook for every other one. Their matchers (Rust regexes, no
    lookaround) must split the tools between them: each tool call is recorded once — none
    missed, none twice — a shell command and the sub-agent tools alike."""
    import sqlite3

    box = codex_harness.Sandbox.make(tmp_path, codex_bin)
    assert costhook(box, "install", "--agent", "codex").returncode == 0
    groups = json.loads((box.codex_home / "hooks.json").read_text())["hooks"]["PostToolUse"]
    assert len(groups) == 2 and "--background" in groups[1]["hooks"][0]["command"]
    run = box.run("please SPAWN[TOOLS:2]", "--enable", "multi_agent_v2")
    assert run.rc == 0, run.stderr[-2000:]
    box.wait_for_hooks()
    conn = sqlite3.connect(box.db)
    counts = dict(conn.execute("SELECT tool_name, count(*) FROM tool_calls GROUP BY tool_name"))
    ids = conn.execute("SELECT count(*), count(DISTINCT tool_use_id) FROM tool_calls").fetchone()
    conn.close()
    asked = [r["tool"] for r in run.requests if r["kind"] == "call"]
    assert sum(counts.values()) == len(asked) == ids[1], (counts, asked)
    assert {"collaborationspawn_agent", "collaborationwait_agent"} <= set(counts), counts
    assert any(not name.startswith("collaboration") for name in counts), counts
