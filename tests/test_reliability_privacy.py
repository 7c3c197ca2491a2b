"""Privacy and permissions (issue item 5), with real processes in a fresh home.

* No prompt text, tool input, tool output, model output or file content reaches the
  database (its file, its WAL, every table) or the logs: marker strings go in through
  every door — transcript lines of every kind (also malformed ones, so the error paths
  run), every hook event's payload, a failing config, a failing hook — and are then
  searched for in every byte costhook wrote. (tests/e2e/test_privacy_e2e.py does the same
  through the real Claude Code CLI.)
* Everything costhook creates in its own places is private: directories 0700, files
  0600 — database and its -wal/-shm, lock files, error logs (rotated too), config, its
  lock, the statusline cache — with the usual umask 022, default locations (no
  COSTHOOK_* variables).
* Lock files and the error log are never followed through a symlink planted in their
  place: the symlink's target keeps its bytes and mode.

filelock: pyproject pins `filelock>=3.20.3`. UnixFileLock stopped following symlinks
(O_NOFOLLOW) in 3.20.1 (CVE-2025-68146, GHSA-w853-jp5j-5j7f); SoftFileLock in 3.20.3
(CVE-2026-22701, GHSA-qmgc-5h2g-mvrw). The pin covers both; on Linux costhook's
FileLock is the UnixFileLock. test_filelock_pin_has_the_symlink_fixes checks the
installed version against the pin.
"""

import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

from conftest import COSTHOOK
from leaks import markers_in
from transcript_lines import assistant, tool_use, user

from costhook.store import writes

MARKERS = {
    "prompt": "MARKER-PROMPT-1b7e",
    "assistant_text": "MARKER-ANSWER-9c2d",
    "thinking": "MARKER-THINKING-4a11",
    "tool_input": "MARKER-TOOLIN-7f3a",
    "tool_output": "MARKER-TOOLOUT-2e9b",
    "file_content": "MARKER-FILE-CONTENT-55d0",
    "error": "MARKER-ERROR-8b3c",
    "summary": "MARKER-SUMMARY-3f6e",
}


def fresh_env(tmp_path: Path) -> dict:
    """A user with nothing of costhook yet, default locations, umask 022 (set by `sh`)."""
    home = tmp_path / "user"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTHOOK_", "XDG_", "CLAUDE_"))}
    env["HOME"] = str(home)
    return env


def run(args, env, stdin: bytes | None = None, timeout=60) -> subprocess.CompletedProcess:
    cmd = ["sh", "-c", 'umask 022; exec "$@"', "sh", COSTHOOK, *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=timeout)


def costhook_home(env) -> Path:
    return Path(env["HOME"]) / ".local" / "share" / "costhook"


def config_dir(env) -> Path:
    return Path(env["HOME"]) / ".config" / "costhook"


def transcript_with_markers(path: Path, session: str) -> None:
    m = MARKERS
    lines = [
        user(f"please {m['prompt']} now", session_id=session),
        json.dumps({"type": "summary", "summary": m["summary"], "leafUuid": "x"}) + "\n",
        assistant("msg_p1", session_id=session, content=[
            {"type": "thinking", "thinking": m["thinking"], "signature": "sig"},
            {"type": "text", "text": m["assistant_text"]},
            tool_use("Bash", "toolu_p1", command=f"cat notes.txt # {m['tool_input']}"),
        ]),
        user([{"type": "tool_result", "tool_use_id": "toolu_p1", "content": f"{m['tool_output']} {m['file_content']}"}],
             session_id=session, toolUseResult={"stdout": m["tool_output"], "file": {"content": m["file_content"]}}),
        json.dumps({"type": "attachment", "attachment": {"type": "file", "content": m["file_content"]}, "sessionId": session}) + "\n",
        assistant("msg_p2", session_id=session, content=[tool_use("Skill", "toolu_p2", skill="review", args=m["tool_input"])]),
        assistant("msg_p3", session_id=session, content=[tool_use("mcp__github__create_issue", "toolu_p3", body=m["tool_input"])]),
        # malformed lines holding markers: the skip-and-count paths
        '{"type": "assistant", "message": {"content": "' + m["assistant_text"] + '", "usage": \n',
        '{"type":"user","message":{"content":"<command-name>/x</command-name> ' + m["prompt"] + '"}\x00\x00\n',
        assistant("msg_p4", session_id=session, content=[{"type": "text", "text": m["assistant_text"]}])[:-60] + "\n",
        user(f"<command-name>/deploy</command-name><command-args>{m['prompt']}</command-args>", session_id=session),
        assistant("msg_p5", session_id=session, content=[{"type": "text", "text": m["assistant_text"]}]),
        json.dumps({"type": "cost-state", "sessionId": session, "totalCostUSD": 0.5, "note": m["summary"]}) + "\n",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def all_payloads(session: str, transcript: Path) -> list[dict]:
    m = MARKERS
    base = {"session_id": session, "transcript_path": str(transcript), "cwd": str(transcript.parent)}
    tool = {"tool_name": "Bash", "tool_use_id": "toolu_p1", "tool_input": {"command": f"cat notes.txt # {m['tool_input']}"}}
    return [
        {**base, "hook_event_name": "SessionStart", "source": "startup", "model": "claude-sonnet-4-5-20250929"},
        {**base, "hook_event_name": "UserPromptSubmit", "prompt": f"please {m['prompt']} now"},
        {**base, "hook_event_name": "PreToolUse", **tool},
        {**base, "hook_event_name": "PostToolUse", **tool, "duration_ms": 7,
         "tool_response": {"stdout": f"{m['tool_output']} {m['file_content']}", "stderr": m["error"]}},
        {**base, "hook_event_name": "PostToolUseFailure", **tool, "tool_use_id": "toolu_p9", "error": m["error"]},
        {**base, "hook_event_name": "Stop", "last_assistant_message": m["assistant_text"]},
        {**base, "hook_event_name": "SubagentStop", "agent_id": "a0", "last_assistant_message": m["assistant_text"],
         "agent_transcript_path": str(transcript)},
        {**base, "hook_event_name": "PreCompact", "custom_instructions": m["prompt"]},
        {**base, "hook_event_name": "SessionEnd", "reason": "other"},
    ]


def leaked(folder: Path) -> list[str]:
    return markers_in(folder, MARKERS)


def test_no_content_reaches_the_database_or_the_logs(tmp_path):
    env = fresh_env(tmp_path)
    session = "priv-session"
    transcript = Path(env["HOME"]) / ".claude" / "projects" / "-work-priv" / f"{session}.jsonl"
    transcript_with_markers(transcript, session)
    sub = transcript.parent / session / "subagents" / "agent-a0.jsonl"
    transcript_with_markers(sub, session)
    # Budgets, so that UserPromptSubmit and PreToolUse do their whole work too.
    assert run(["budget", "set", "--scope", "global", "--period", "daily", "--limit", "100"], env).returncode == 0
    for payload in all_payloads(session, transcript):
        proc = run(["hook"], env, json.dumps(payload).encode())
        assert proc.returncode == 0 and proc.stderr == b"", proc
    # Failing hooks: invalid JSON holding markers, a transcript that is a directory, a broken config.
    for bad in (f'{{"hook_event_name": "PostToolUse", "prompt": "{MARKERS["prompt"]}", '.encode(),
                json.dumps({"hook_event_name": "Stop", "session_id": "x", "transcript_path": str(transcript.parent),
                            "last_assistant_message": MARKERS["assistant_text"]}).encode()):
        assert run(["hook"], env, bad).returncode == 0
    config = config_dir(env) / "config.toml"
    good_config = config.read_text()
    config.write_text(f'[prices."m"]\ninput = "{MARKERS["error"]}"\n')
    assert run(["hook"], env, json.dumps(all_payloads(session, transcript)[3]).encode()).returncode == 0
    config.write_text(good_config)
    # The CLI paths over the same data.
    assert run(["import", "--claude-dir", str(transcript.parents[2]), "-q"], env).returncode == 0
    for args in (["report", "--by", "session", "--format", "json"], ["doctor"]):
        run(args, env)
    run(["statusline"], env, json.dumps({"session_id": session, "transcript_path": str(transcript),
                                         "model": {"id": "claude-sonnet-4-5-20250929"}, "cwd": "/work/priv"}).encode())

    home = costhook_home(env)
    rows = sqlite3.connect(home / "costhook.db").execute("SELECT count(*) FROM requests").fetchone()[0]
    assert rows == 4  # msg_p1, p2, p3, p5: the capture did happen
    assert (home / "errors.log").exists()  # and so did the failures
    assert leaked(home) == []
    assert leaked(config_dir(env)) == []
    assert MARKERS["prompt"].encode() in transcript.read_bytes()  # the markers were there to leak


def test_a_cursor_from_before_keeps_its_place_and_loses_the_bytes_it_held(tmp_path):
    """Cursors of schema v14 kept a transcript's first 128 bytes as hex (a prompt or a
    summary when the first line is one: test_no_content_reaches_the_database_or_the_logs
    finds it now). m015 turns them into the hash cursors keep now, at the database's first
    use, whether or not the file is ever read again; the cursor still knows its file.
    (Imports, not hooks: nothing left running in the background between the steps.)"""
    env = fresh_env(tmp_path)
    session = "old-cursor"
    transcript = Path(env["HOME"]) / ".claude" / "projects" / "-work-old" / f"{session}.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_text(user(f"please {MARKERS['prompt']} now", session_id=session)
                          + assistant("msg_o1", session_id=session))
    claude_dir = str(transcript.parents[2])
    assert run(["import", "--claude-dir", claude_dir, "-q"], env).returncode == 0
    db = sqlite3.connect(costhook_home(env) / "costhook.db")
    (offset, head), = db.execute("SELECT offset, head FROM cursors").fetchall()
    first_bytes = transcript.read_bytes()[:128]
    assert head.partition("|")[0] == writes.head_id(first_bytes)
    with db:  # as schema v14 left it
        db.execute("UPDATE cursors SET head = ?", (first_bytes.hex() + "|" + head.partition("|")[2],))
        db.execute("PRAGMA user_version = 14")
    found = leaked(costhook_home(env))
    assert found and all(f.endswith("prompt (hex)") for f in found), found  # the leak this is about
    done = run(["report"], env, b"")  # the first use upgrades it
    assert done.returncode == 0, done.stderr
    assert db.execute("SELECT offset, head FROM cursors").fetchall() == [(offset, head)]
    assert leaked(costhook_home(env)) == []
    with open(transcript, "a") as f:
        f.write(assistant("msg_o2", session_id=session))
    assert run(["import", "--claude-dir", claude_dir, "-q"], env).returncode == 0
    assert [r[0] for r in db.execute("SELECT message_id FROM requests ORDER BY message_id")] == ["msg_o1", "msg_o2"]
    assert db.execute("SELECT offset FROM cursors").fetchone()[0] > offset
    db.close()


def modes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.lstat().st_mode) for p in [folder, *folder.rglob("*")]}


def assert_private(folder: Path) -> None:
    bad = {name: oct(mode) for name, mode in modes(folder).items()
           if mode != (0o700 if (folder / name).is_dir() else 0o600)}
    assert bad == {}, bad


def test_everything_costhook_creates_is_private(tmp_path):
    env = fresh_env(tmp_path)
    session = "perm-session"
    transcript = Path(env["HOME"]) / ".claude" / "projects" / "-work-perm" / f"{session}.jsonl"
    transcript_with_markers(transcript, session)
    assert run(["budget", "set", "--scope", "global", "--period", "daily", "--limit", "100"], env).returncode == 0
    for payload in all_payloads(session, transcript):
        assert run(["hook"], env, json.dumps(payload).encode()).returncode == 0
    home = costhook_home(env)
    (home / "errors.log").write_bytes(b"x" * (1 << 20) + b"\n")
    (home / "errors.log").chmod(0o600)
    assert run(["hook"], env, b"not json").returncode == 0  # rotates: errors.log.1 + a new errors.log
    assert run(["import", "-q"], env).returncode == 0
    run(["statusline"], env, json.dumps({"session_id": session, "transcript_path": str(transcript),
                                         "model": {"id": "claude-sonnet-4-5-20250929"}, "cwd": "/work/perm"}).encode())
    names = set(modes(home))
    assert {"costhook.db", "costhook.db.migrate.lock", "costhook.db.lock", "errors.log", "errors.log.1"} <= names, names
    assert {"config.toml", "config.toml.lock"} <= set(modes(config_dir(env))), modes(config_dir(env))
    assert_private(home)
    assert_private(config_dir(env))


def test_dashboard_lock_and_stamp_are_private(tmp_path):
    env = fresh_env(tmp_path)
    vault = tmp_path / "vault"
    vault.mkdir()
    assert run(["hook"], env, b"not json").returncode == 0  # the home exists, as after any hook
    proc = run(["dashboard", "--vault", str(vault)], env)
    assert proc.returncode == 0, proc.stderr
    home = costhook_home(env)
    assert {"dashboard.lock", "dashboard.stamp"} <= set(modes(home))
    assert_private(home)


# ------------------------------------------------------------------ symlinks -----


def plant(link: Path, tmp_path: Path) -> Path:
    """A victim file elsewhere, and a symlink to it where costhook would create a file."""
    victim = tmp_path / f"victim-{link.name}"
    victim.write_bytes(b"precious\n")
    victim.chmod(0o644)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim)
    return victim


def assert_untouched(victim: Path) -> None:
    assert victim.read_bytes() == b"precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_migration_lock_and_error_log_are_not_followed(tmp_path):
    env = fresh_env(tmp_path)
    home = costhook_home(env)
    lock_victim = plant(home / "costhook.db.migrate.lock", tmp_path)
    open_lock_victim = plant(home / "costhook.db.lock", tmp_path)
    log_victim = plant(home / "errors.log", tmp_path)
    payload = {"hook_event_name": "SessionStart", "session_id": "s", "transcript_path": "", "cwd": "/"}
    proc = run(["hook"], env, json.dumps(payload).encode())
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""  # fails open
    assert run(["hook"], env, b"not json").returncode == 0
    assert_untouched(lock_victim)
    assert_untouched(open_lock_victim)
    assert_untouched(log_victim)
    assert (home / "costhook.db.migrate.lock").is_symlink() and (home / "errors.log").is_symlink()


def test_config_lock_is_not_followed(tmp_path):
    env = fresh_env(tmp_path)
    victim = plant(config_dir(env) / "config.toml.lock", tmp_path)
    proc = run(["budget", "set", "--scope", "global", "--period", "daily", "--limit", "5"], env)
    assert proc.returncode != 0  # refused
    assert_untouched(victim)
    assert not (config_dir(env) / "config.toml").exists()


def test_config_lock_symlink_is_a_clear_error(tmp_path):
    env = fresh_env(tmp_path)
    plant(config_dir(env) / "config.toml.lock", tmp_path)
    proc = run(["budget", "set", "--scope", "global", "--period", "daily", "--limit", "5"], env)
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr and b"config.toml.lock" in proc.stderr


def test_dashboard_lock_is_not_followed(tmp_path):
    env = fresh_env(tmp_path)
    vault = tmp_path / "vault"
    vault.mkdir()
    victim = plant(costhook_home(env) / "dashboard.lock", tmp_path)
    run(["dashboard", "--vault", str(vault)], env)
    assert_untouched(victim)


def test_dashboard_stamp_is_not_followed(tmp_path):
    env = fresh_env(tmp_path)
    vault = tmp_path / "vault"
    vault.mkdir()
    home = costhook_home(env)
    home.mkdir(parents=True)
    target = tmp_path / "elsewhere" / "created-by-costhook"
    target.parent.mkdir()
    (home / "dashboard.stamp").symlink_to(target)
    run(["dashboard", "--vault", str(vault)], env)
    assert not target.exists()


def test_filelock_pin_has_the_symlink_fixes():
    """pyproject's pin must not allow a filelock that follows symlinks (fixed in 3.20.1
    for UnixFileLock, 3.20.3 for SoftFileLock), and the installed one must satisfy it."""
    import tomllib
    from importlib.metadata import version

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    (pin,) = [d for d in project["dependencies"] if d.replace(" ", "").startswith("filelock")]
    floor = tuple(int(x) for x in pin.split(">=")[1].split(",")[0].split("."))
    assert floor >= (3, 20, 3), pin
    installed = tuple(int(x) for x in version("filelock").split(".")[:3])
    assert installed >= floor
