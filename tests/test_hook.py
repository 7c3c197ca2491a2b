"""The real `costhook hook` process, JSON on stdin: what it records and that it fails open."""

import json
import subprocess
import sys
import os
import sqlite3
import stat
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import ACME_SESSION, ACME_SUBAGENT, acme_transcript, db_rows, payload, run_hook, totals
from transcript_lines import assistant


def acme_payload(claude_dir, name, **overrides):
    transcript = acme_transcript(claude_dir)
    data = payload(name, transcript_path=str(transcript), **overrides)
    if "agent_transcript_path" in data:
        data["agent_transcript_path"] = str(
            transcript.with_suffix("") / "subagents" / f"agent-{ACME_SUBAGENT}.jsonl"
        )
    return data


def assert_silent_success(proc):
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""


def error_lines(home) -> list[str]:
    log = home / "errors.log"
    return log.read_text().splitlines() if log.exists() else []


def test_post_tool_use_ingests_and_records_the_tool_call(home, claude_dir):
    marker = "SECRET-MARKER-tool-input-7f3a"
    data = acme_payload(claude_dir, "PostToolUse")
    data["tool_input"]["new_string"] += marker
    data["tool_response"]["newString"] = marker
    proc = run_hook(data)
    assert_silent_success(proc)
    assert totals()["calls"] == 6  # the main transcript's six calls, sub-agent not yet seen
    calls = db_rows("SELECT * FROM tool_calls")
    assert len(calls) == 1
    call = calls[0]
    assert (call["tool_name"], call["tool_use_id"], call["success"], call["duration_ms"]) == (
        "Edit",
        data["tool_use_id"],
        1,
        38,
    )
    assert call["input_bytes"] > len(marker) and call["output_bytes"] > len(marker)
    # Privacy: nothing of the tool's input or output reaches the database.
    assert marker.encode() not in (home / "costhook.db").read_bytes()
    assert error_lines(home) == []


def test_an_id_of_megabytes_is_stored_cut(home, claude_dir):
    """The ids in a payload are uuids and short tokens: one of megabytes (a broken or
    hostile caller) is cut, not stored whole in every row that names it."""
    huge = "x" * 4_000_000
    data = acme_payload(claude_dir, "PostToolUse", tool_use_id="toolu_" + huge, agent_id="a" + huge,
                        mcp_server="m" + huge, session_id="s" + huge)
    assert_silent_success(run_hook(data))
    call, = db_rows("SELECT tool_use_id, agent_id, mcp_server, session_id FROM tool_calls")
    assert [len(v) for v in call.values()] == [200, 200, 4096, 200], {k: len(v) for k, v in call.items()}
    assert (home / "costhook.db").stat().st_size < 2_000_000


def test_post_tool_use_failure_is_recorded_as_failed(home, claude_dir):
    proc = run_hook(acme_payload(claude_dir, "PostToolUseFailure"))
    assert_silent_success(proc)
    assert db_rows("SELECT success FROM tool_calls") == [{"success": 0}]


def test_hook_inside_a_subagent_reads_the_subagent_transcript(home, claude_dir):
    data = acme_payload(claude_dir, "PostToolUse", agent_id=ACME_SUBAGENT, agent_type="Explore")
    assert_silent_success(run_hook(data))
    rows = db_rows("SELECT agent_id, agent_type FROM requests WHERE agent_id IS NOT NULL")
    assert rows == [{"agent_id": ACME_SUBAGENT, "agent_type": "Explore"}] * 2


def test_subagent_stop_reads_agent_transcript_path(home, claude_dir):
    assert_silent_success(run_hook(acme_payload(claude_dir, "SubagentStop")))
    sub = db_rows("SELECT session_id, parent_session_id FROM requests WHERE agent_id = ?", (ACME_SUBAGENT,))
    assert sub == [{"session_id": ACME_SESSION, "parent_session_id": ACME_SESSION}] * 2


def test_stop_scans_subagents_folder(home, claude_dir):
    assert_silent_success(run_hook(acme_payload(claude_dir, "Stop")))
    assert totals()["calls"] == 8


def test_stop_waits_for_the_lagging_final_message(home, tmp_path):
    transcript = tmp_path / "s-1.jsonl"
    transcript.write_text(assistant("msg_tool", output_tokens=5, stop_reason="tool_use"))
    final = assistant("msg_final", output_tokens=33, content=[{"type": "text", "text": "All done: 3 files"}])

    def late_write():
        time.sleep(0.2)
        with open(transcript, "a") as f:
            f.write(final)

    writer = threading.Thread(target=late_write)
    writer.start()
    started = time.monotonic()
    proc = run_hook(
        {
            "hook_event_name": "Stop",
            "session_id": "s-1",
            "transcript_path": str(transcript),
            "cwd": str(tmp_path),
            "last_assistant_message": "All done: 3 files",
        }
    )
    writer.join()
    assert_silent_success(proc)
    assert {r["message_id"] for r in db_rows("SELECT message_id FROM requests")} == {"msg_tool", "msg_final"}
    assert time.monotonic() - started < 2


def test_stop_wait_is_bounded(home, tmp_path):
    transcript = tmp_path / "s-1.jsonl"
    transcript.write_text(assistant("msg_1"))
    started = time.monotonic()
    proc = run_hook(
        {
            "hook_event_name": "Stop",
            "session_id": "s-1",
            "transcript_path": str(transcript),
            "last_assistant_message": "a message that never arrives",
        }
    )
    elapsed = time.monotonic() - started
    assert_silent_success(proc)
    assert totals()["calls"] == 1
    assert 0.5 <= elapsed < 2.5


def test_background_work_yields_the_cpu_to_the_agent(home, tmp_path):
    """A hook that goes on in the background runs at a lower CPU priority (nice +10): on a
    small machine its work competes with the agent's own turn (issue 14)."""
    transcript = tmp_path / "s-1.jsonl"
    transcript.write_text(assistant("msg_1"))
    event = {"hook_event_name": "Stop", "session_id": "s-1", "transcript_path": str(transcript),
             "last_assistant_message": "a message that never arrives"}  # keeps it at work ~0.5 s
    proc = run_hook(event, args=("--background",), wait=False)
    assert_silent_success(proc)
    ours = f"COSTHOOK_HOME={home}".encode()
    expected = min(19, os.nice(0) + 10)
    deadline = time.monotonic() + 10
    seen = None
    # The detached child lowers its priority just after the fork (the parent, which the
    # agent waits for, exits at full priority), so a sample may come a moment too early.
    while seen != expected and time.monotonic() < deadline:
        for proc_dir in Path("/proc").iterdir():
            try:
                if not proc_dir.name.isdigit() or ours not in (proc_dir / "environ").read_bytes().split(b"\0") \
                        or b"--background" not in (proc_dir / "cmdline").read_bytes():
                    continue
                stat_line = (proc_dir / "stat").read_text()
            except OSError:
                continue
            seen = int(stat_line.rsplit(")", 1)[1].split()[16])  # field 19: nice
        time.sleep(0.01)
    run_hook({"hook_event_name": "Stop"}, wait=True)  # and let it finish
    assert seen == expected


def test_session_start_and_end(home, tmp_path, claude_dir):
    project = tmp_path / "proj"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/feature/x\n")
    start = acme_payload(claude_dir, "SessionStart", cwd=str(project / "sub" / "dir"))
    proc = run_hook(start, env={"CLAUDE_CODE_ENTRYPOINT": "sdk-cli"})
    assert_silent_success(proc)
    session = db_rows("SELECT * FROM sessions WHERE session_id = ?", (ACME_SESSION,))[0]
    assert session["git_branch"] == "feature/x"
    assert session["project"] == str(project / "sub" / "dir")
    assert (session["entrypoint"], session["interactive"], session["source"]) == ("sdk-cli", 0, "startup")
    assert_silent_success(run_hook(acme_payload(claude_dir, "SessionEnd")))
    session = db_rows("SELECT * FROM sessions WHERE session_id = ?", (ACME_SESSION,))[0]
    assert session["end_reason"] == "prompt_input_exit" and session["ended_at"]
    assert totals()["calls"] == 8  # main + sub-agent reconciled at the end


def big_transcript(folder, calls: int):
    """Session "big": `calls` calls, each after a 100 KB attachment line."""
    transcript = folder / "big.jsonl"
    filler = json.dumps({"type": "attachment", "attachment": {"content": "x" * 100_000}}) + "\n"
    with open(transcript, "w") as f:
        for i in range(calls):
            f.write(filler)
            f.write(assistant(f"msg_{i}", session_id="big"))
    return transcript


def test_session_end_hands_a_large_backlog_to_a_detached_process(home, tmp_path):
    transcript = big_transcript(tmp_path, 60)  # about 6 MB: more than SessionEnd may read itself
    started = time.monotonic()
    proc = run_hook({"hook_event_name": "SessionEnd", "session_id": "big", "transcript_path": str(transcript), "reason": "other"})
    assert_silent_success(proc)
    assert time.monotonic() - started < 1.5
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (totals()["calls"] or 0) < 60:
        time.sleep(0.1)
    assert totals()["calls"] == 60


def test_a_large_backlog_is_handed_over_only_after_the_hooks_own_writes(home, tmp_path):
    """The first hook on a large unseen transcript used to start its detached catch-up
    first and then wait for the write lock that catch-up had just taken to record its own
    tool call (issue 14: 280 ms instead of 47). Now the catch-up starts once the hook has
    committed: its lock file (made when the hook hands the file over) is younger than the
    tool call the hook recorded, and every call still arrives."""
    transcript = big_transcript(tmp_path, 200)  # about 20 MB: more than a hook reads itself
    proc = run_hook({"hook_event_name": "PostToolUse", "session_id": "big", "transcript_path": str(transcript),
                     "tool_name": "Bash", "tool_use_id": "toolu_big"})
    assert_silent_success(proc)
    recorded = db_rows("SELECT timestamp FROM tool_calls WHERE tool_use_id = 'toolu_big'")
    assert recorded, "the hook recorded its own tool call before handing the backlog over"
    locks = list((home / "catch-up").glob("*.lock"))
    assert len(locks) == 1
    handed_over = datetime.fromtimestamp(locks[0].stat().st_mtime, timezone.utc)
    assert datetime.fromisoformat(recorded[0]["timestamp"].replace("Z", "+00:00")) <= handed_over
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (totals()["calls"] or 0) < 200:
        time.sleep(0.1)
    assert totals()["calls"] == 200


def test_headless_and_interactive_sessions(home, claude_dir):
    run_hook(acme_payload(claude_dir, "SessionStart", session_id="a"), env={"CLAUDE_CODE_ENTRYPOINT": "cli"})
    run_hook(acme_payload(claude_dir, "SessionStart", session_id="b"), env={"CLAUDE_CODE_ENTRYPOINT": "sdk-ts"})
    rows = {r["session_id"]: r["interactive"] for r in db_rows("SELECT session_id, interactive FROM sessions")}
    assert rows["a"] == 1 and rows["b"] == 0


@pytest.mark.parametrize(
    "stdin",
    [b"", b"   \n", b"not json", b"[1, 2, 3]", b'"a string"', b'{"hook_event_name": "PostToolUse", "transcript_path": 12}\n'[:30]],
)
def test_bad_stdin_fails_open_with_one_log_line(home, stdin):
    proc = run_hook(stdin)
    assert_silent_success(proc)
    lines = error_lines(home)
    assert len(lines) == 1 and "hook" in lines[0]


@pytest.mark.parametrize(
    "data",
    [
        {"hook_event_name": "SomethingNew", "session_id": "x"},
        {"hook_event_name": "PostToolUse", "session_id": "x"},  # no transcript_path
        {"hook_event_name": "PostToolUse", "session_id": "x", "transcript_path": "/nonexistent/x.jsonl"},
        {"hook_event_name": "Stop", "session_id": "x", "transcript_path": ""},
        {"hook_event_name": "PostToolUse", "session_id": None, "transcript_path": None, "tool_use_id": 5},
    ],
)
def test_odd_but_valid_payloads_are_quietly_fine(home, data):
    assert_silent_success(run_hook(data))
    assert error_lines(home) == []


def test_corrupt_database_fails_open_and_nothing_is_lost(home, claude_dir):
    home.mkdir(parents=True)
    db = home / "costhook.db"
    db.write_bytes(b"this is not a database" * 100)
    data = acme_payload(claude_dir, "Stop")
    assert_silent_success(run_hook(data))
    assert len(error_lines(home)) == 1
    db.rename(home / "broken.db")
    assert_silent_success(run_hook(data))
    assert totals()["calls"] == 8


@pytest.mark.parametrize("event", ["UserPromptSubmit", "PreToolUse", "PostToolUse", "SessionEnd"])
def test_a_corrupt_database_is_one_line_whatever_the_hook_tried(home, claude_dir, tmp_path, event):
    """A hook that catches up, records a tool call and judges a budget meets the broken
    database at each step: one failure, one line (each step logged it, so every gate wrote
    the same line twice)."""
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 1000\n')
    home.mkdir(parents=True)
    (home / "costhook.db").write_bytes(b"this is not a database" * 100)
    assert_silent_success(run_hook(acme_payload(claude_dir, event)))
    assert len(error_lines(home)) == 1, error_lines(home)


def test_a_locked_database_holds_up_nobody_and_loses_nothing(home, claude_dir):
    """PostToolUse (after a tool that spends nothing) records in the background: with the
    database locked it answers at once; once the lock is gone, everything is recorded."""
    from conftest import wait_for_background

    data = acme_payload(claude_dir, "PostToolUse")
    assert_silent_success(run_hook(acme_payload(claude_dir, "SessionStart")))
    blocker = sqlite3.connect(home / "costhook.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        proc = run_hook(data, wait=False)
        elapsed = time.monotonic() - started
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert_silent_success(proc)
    assert elapsed < 2
    wait_for_background()
    assert totals()["calls"] == 6 and error_lines(home) == []


def test_a_locked_database_fails_a_gate_open_within_its_busy_timeout(home, claude_dir, tmp_path):
    """A gate with a budget to judge waits for a locked database at most its deadline, logs
    it, and decides on what is stored; the next hook catches up."""
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 1000\n')
    from costhook.store import db

    data = acme_payload(claude_dir, "PreToolUse")
    db.connect().close()  # the database exists; nothing recorded yet
    blocker = sqlite3.connect(home / "costhook.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        proc = run_hook(data)
        elapsed = time.monotonic() - started
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert_silent_success(proc)
    assert elapsed < 6
    assert any("locked" in line for line in error_lines(home))
    assert_silent_success(run_hook(data))
    assert totals()["calls"] == 6


def test_bad_config_is_logged_by_key_and_capture_goes_on(home, claude_dir, tmp_path):
    (tmp_path / "config.toml").write_text('[prices."my-model"]\ninput = "cheap"\noutput = 1\n')
    assert_silent_success(run_hook(acme_payload(claude_dir, "PostToolUse")))
    lines = error_lines(home)
    assert len(lines) == 1 and 'prices."my-model".input' in lines[0]
    assert totals()["calls"] == 6


def test_files_are_private(home, claude_dir):
    run_hook(b"garbage")
    assert_silent_success(run_hook(acme_payload(claude_dir, "PostToolUse")))
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(home / "costhook.db").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / "errors.log").st_mode) == 0o600


def test_errors_log_is_rotated(home):
    home.mkdir(parents=True)
    (home / "errors.log").write_text("x" * (1 << 20) + "\n")
    run_hook(b"garbage")
    assert (home / "errors.log.1").exists()
    assert len(error_lines(home)) == 1


def test_a_schema_upgrade_runs_detached_and_nothing_is_lost(home, claude_dir):
    """An old database is upgraded by a detached process, never inside the agent's hook."""
    from costhook.store import db

    data = acme_payload(claude_dir, "PostToolUse")
    assert_silent_success(run_hook(data))
    conn = sqlite3.connect(home / "costhook.db")
    conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION - 1}")  # the last step is due (steps are idempotent)
    conn.execute("DELETE FROM requests")
    conn.execute("DELETE FROM cursors")
    conn.execute("CREATE TABLE filler (b BLOB)")  # big enough not to be upgraded inline
    conn.execute("INSERT INTO filler VALUES (zeroblob(6000000))")
    conn.commit()
    conn.close()
    proc = run_hook(data)
    assert_silent_success(proc)
    assert any("schema upgrade" in line for line in error_lines(home))
    deadline = time.monotonic() + 20
    version = 0
    while time.monotonic() < deadline:
        version = sqlite3.connect(home / "costhook.db").execute("PRAGMA user_version").fetchone()[0]
        if version == db.SCHEMA_VERSION:
            break
        time.sleep(0.1)
    assert version == db.SCHEMA_VERSION
    assert_silent_success(run_hook(data))
    assert totals()["calls"] == 6


def test_a_hook_called_in_process_never_forks_or_ends_its_caller(home, tmp_path):
    """Only `costhook hook` started as its own process may fork its work into the background
    and exit. Called from Python (a test harness, an embedding) it runs in the foreground:
    before, the caller itself was forked and its parent exited 0 — a test run that called it
    reported success while it went on, detached, without anyone reading its result."""
    transcript = tmp_path / "s.jsonl"
    transcript.write_text(assistant("msg_1", session_id="s-1"))
    script = ("import io, os, sys\n"
              "from costhook.__main__ import hook\n"
              "pid = os.getpid()\n"
              "sys.stdin = io.TextIOWrapper(io.BytesIO(sys.argv[1].encode()))\n"
              "hook([])\n"
              "print('still here', os.getpid() == pid, flush=True)\n")
    payload = json.dumps({"hook_event_name": "Stop", "session_id": "s-1", "transcript_path": str(transcript)})
    proc = subprocess.run([sys.executable, "-c", script, payload], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "still here True\n", proc
    assert totals()["calls"] == 1  # the work was done, in the foreground
