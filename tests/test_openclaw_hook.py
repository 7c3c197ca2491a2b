"""The real `costhook hook --agent openclaw` process with the payloads costhook's OpenClaw
plugin sends (hooks/openclaw/index.js): what it records, what it decides, that it fails
open and never stores prompts or tool data."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import zstandard
from conftest import db_rows, run_hook
from test_openclaw_source import (CRON, CRON_KEY, FILES, JOB, MAIN, SUB, SUB_KEY, add_session, build_agent_store,
                                  events_of)

SECRET = "SECRET-prompt-or-tool-data-91ac"


def assistant(message_index: int, session_id: str = MAIN) -> dict:
    """The n-th assistant message of a fixture session, slimmed as the plugin sends it."""
    messages = [e["message"] for e in events_of(session_id) if e["type"] == "message" and e["message"]["role"] == "assistant"]
    m = messages[message_index]
    tools = [b["name"] for b in m["content"] if b.get("type") == "toolCall"]
    return {"role": "assistant", "provider": m["provider"], "model": m["model"], "api": m["api"], "usage": m["usage"],
            "stopReason": m["stopReason"], "timestamp": m["timestamp"], "responseId": m["responseId"],
            "tools": tools, "ack": False}


def payload(hook: str, event: dict | None = None, **ctx) -> dict:
    base = {"agentId": "main", "sessionKey": "agent:main:main", "sessionId": MAIN, "runId": "run-main-0001",
            "trigger": "user", "workspaceDir": "/home/alice/.openclaw/workspace"}
    base.update(ctx)
    return {"hook": hook, "hook_event_name": hook, "plugin": "costhook", "ctx": base, "event": event or {}}


def hook(data, env=None, **kw):
    return run_hook(data, args=("--agent", "openclaw"), env=env, **kw)


def silent(proc):
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"", proc.stdout
    return proc


def errors(home) -> list[str]:
    log = home / "errors.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def state(tmp_path, monkeypatch):
    """An OpenClaw state dir whose agent store holds the fixture's main and cron sessions."""
    root = tmp_path / "openclaw-state"
    build_agent_store(root / "agents" / "main" / "agent" / "openclaw-agent.sqlite",
                      {MAIN: ("agent:main:main", events_of(MAIN)), CRON: (CRON_KEY, events_of(CRON))})
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(root))
    return root


def budget(home, tmp_path, text: str):
    (tmp_path / "config.toml").write_text(text)


# ------------------------------------------------------------------ recording -------


def test_message_hook_records_one_call_with_reported_cost(home, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "no-state"))
    message = assistant(0)
    message["note"] = SECRET  # anything else in the payload is ignored, never stored
    silent(hook(payload("message", {"message": message})))
    (row,) = db_rows("SELECT * FROM requests")
    assert row["key"] == "openclaw:msg_01MainA1@1778749202750"
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_5m_tokens"]) == (3200, 85, 0, 14800)
    assert (row["reported_cost_nanousd"], row["cost_nanousd"], row["cost_source"]) == (66_375_000, 66_375_000, "computed")
    assert (row["agent"], row["session_id"], row["session_key"], row["session_kind"], row["host_agent"], row["run_id"],
            row["is_heartbeat"], row["project"], json.loads(row["tools"])) == (
        "openclaw", MAIN, "agent:main:main", "main", "main", "run-main-0001", 0, "/home/alice/.openclaw/workspace", ["read"])
    assert SECRET.encode() not in (home / "costhook.db").read_bytes()
    assert errors(home) == []


def test_agent_end_catches_up_the_store_and_deduplicates_with_the_hook(home, state):
    silent(hook(payload("message", {"message": assistant(0)})))
    messages = [assistant(i) for i in range(3)]
    silent(hook(payload("agent_end", {"success": True, "durationMs": 9000, "messages": messages})))
    rows = db_rows("SELECT key, message_id, reported_cost_nanousd FROM requests WHERE session_id = ? ORDER BY timestamp", (MAIN,))
    assert len(rows) == 6  # the whole session from OpenClaw's store, each call once
    assert rows[0]["message_id"] == "3c9d0f4e-e005-4000-8000-000000000005"  # entry id filled in by the store
    assert sum(r["reported_cost_nanousd"] or 0 for r in rows) == 97_387_500
    assert errors(home) == []


def test_heartbeat_trigger_and_acknowledgement(home, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "none"))
    message = {"role": "assistant", "provider": "fake", "model": "fake-model", "timestamp": 1795375723236,
               "responseId": "chatcmpl-7ff8", "tools": [], "ack": True,
               "usage": {"input": 128, "output": 5, "cacheRead": 512, "cacheWrite": 0,
                         "cost": {"input": 0.000384, "output": 7.5e-05, "cacheRead": 0.0001536, "cacheWrite": 0, "total": 0.0006126}}}
    silent(hook(payload("agent_end", {"success": True, "messages": [message]}, trigger="heartbeat", runId="hb-run")))
    (row,) = db_rows("SELECT is_heartbeat, ack_only, cost_nanousd, cost_source, run_id FROM requests")
    assert row == {"is_heartbeat": 1, "ack_only": 1, "cost_nanousd": 612_600, "cost_source": "reported", "run_id": "hb-run"}


def test_subagent_label_and_parent_come_from_openclaws_session_row(home, tmp_path, monkeypatch):
    root = tmp_path / "oc"
    db = build_agent_store(root / "agents" / "main" / "agent" / "openclaw-agent.sqlite", {MAIN: ("agent:main:main", events_of(MAIN)[:3])})
    conn = sqlite3.connect(db)
    add_session(conn, SUB, SUB_KEY, events_of(SUB)[:4], spawned_by="agent:main:main", label="weekly-report")
    conn.commit()
    conn.close()
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(root))
    silent(hook(payload("message", {"message": assistant(0, SUB)}, sessionKey=SUB_KEY, sessionId=SUB, runId="run-sub-0001")))
    (row,) = db_rows("SELECT session_kind, parent_session_id, agent_type, agent_id, is_sidechain FROM requests")
    assert row == {"session_kind": "subagent", "parent_session_id": MAIN, "agent_type": "weekly-report",
                   "agent_id": "7e2b6a90-1c4d-4f3e-a8b5-2d9c0e1f4a77", "is_sidechain": 1}


def test_after_tool_call_records_sizes_not_content(home, state):
    event = {"toolName": "exec", "toolCallId": "toolu_01MAINexec", "durationMs": 31, "paramsBytes": 24, "resultBytes": 33}
    silent(hook(payload("after_tool_call", event, toolName="exec")))
    silent(hook(payload("after_tool_call", {"toolName": "tool_call", "toolCallId": "call_outer"})))  # the bridge's outer call
    silent(hook(payload("after_tool_call", {"toolName": "exec", "toolCallId": "call_blocked", "error": True})))
    calls = db_rows("SELECT tool_use_id, agent, tool_name, success, duration_ms, input_bytes, output_bytes FROM tool_calls ORDER BY tool_use_id")
    assert calls == [
        {"tool_use_id": "openclaw:call_blocked", "agent": "openclaw", "tool_name": "exec", "success": 0, "duration_ms": None,
         "input_bytes": None, "output_bytes": None},
        {"tool_use_id": "openclaw:toolu_01MAINexec", "agent": "openclaw", "tool_name": "exec", "success": 1, "duration_ms": 31,
         "input_bytes": 24, "output_bytes": 33},
    ]
    assert len(db_rows("SELECT key FROM requests WHERE session_id = ?", (MAIN,))) == 6  # caught up from the store


def test_session_end_reads_the_archive_of_a_deleted_session(home, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "oc"))
    folder = tmp_path / "oc" / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    archive = folder / f"{MAIN}.jsonl.deleted.2026-11-22T18-27-08.892Z.2488ff5e.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(FILES[MAIN].read_bytes()))
    event = {"sessionId": MAIN, "sessionKey": "agent:main:main", "reason": "deleted", "sessionFile": str(archive),
             "transcriptArchived": True}
    silent(hook(payload("session_end", event)))
    assert len(db_rows("SELECT key FROM requests WHERE session_id = ?", (MAIN,))) == 6
    assert db_rows("SELECT end_reason, session_key, agent FROM sessions WHERE session_id = ?", (MAIN,)) == [
        {"end_reason": "deleted", "session_key": "agent:main:main", "agent": "openclaw"}]


def test_cron_finished_records_the_run_and_its_calls(home, state):
    event = {"action": "finished", "jobId": JOB, "agentId": "main", "sessionTarget": "isolated", "runAtMs": 1778742000050,
             "durationMs": 6420, "status": "ok", "completionStatus": "succeeded", "sessionId": CRON,
             "sessionKey": f"{CRON_KEY}:run:{CRON}", "runId": "manual:5f0c:1", "model": "claude-sonnet-4-6",
             "provider": "anthropic",
             "job": {"id": JOB, "name": "Nightly repo check", "agentId": "main", "sessionTarget": "isolated",
                     "schedule": {"kind": "cron", "expr": "0 7 * * *"}, "payload": {"kind": "agentTurn"}}}
    silent(hook(payload("cron_changed", event, sessionKey=None, sessionId=None)))
    (run,) = db_rows("SELECT * FROM cron_runs")
    assert (run["run_id"], run["job_name"], run["status"], run["duration_ms"], run["session_id"], run["transcript_missing"],
            run["cron_run_id"], run["is_heartbeat"]) == (
        f"{JOB}@1778742000050", "Nightly repo check", "ok", 6420, CRON, 0, "manual:5f0c:1", 0)
    rows = db_rows("SELECT cron_job, session_key FROM requests WHERE session_id = ?", (CRON,))
    assert rows == [{"cron_job": JOB, "session_key": f"{CRON_KEY}:run:{CRON}"}] * 2
    assert db_rows("SELECT name, schedule, kind FROM cron_jobs") == [
        {"name": "Nightly repo check", "schedule": "cron 0 7 * * *", "kind": "agentTurn"}]


# ------------------------------------------------------------------ gates -----------


def test_gates_say_nothing_without_budgets(home, state):
    silent(hook(payload("before_tool_call", {"toolName": "exec", "toolCallId": "x"})))
    silent(hook(payload("before_agent_run")))


def test_spent_budget_blocks_tool_and_run(home, state, tmp_path):
    budget(home, tmp_path, '[[budgets]]\nscope = "session"\nperiod = "session"\nlimit = 0.05\naction = "block"\n')
    under = hook(payload("before_agent_run", sessionId=CRON, sessionKey=f"{CRON_KEY}:run:{CRON}", trigger="cron"))
    silent(under)  # the cron session cost $0.025: under the limit
    proc = hook(payload("before_tool_call", {"toolName": "exec", "toolCallId": "toolu_01MAINexec"}))
    assert proc.returncode == 0
    decision = json.loads(proc.stdout)
    assert decision["block"] is True
    assert decision["blockReason"].startswith("costhook: Budget session/session: $0.1137 of $0.05")  # 0.1136625: haiku priced too
    run = json.loads(hook(payload("before_agent_run")).stdout)
    assert (run["outcome"], run["reason"], run["category"]) == ("block", "costhook-budget", "cost_limit")
    assert "Raise or remove the budget" in run["message"]
    assert db_rows("SELECT DISTINCT budget_id FROM alerts") == [{"budget_id": "session-session"}]


def test_cron_budget_by_job_name(home, state, tmp_path):
    silent(hook(payload("cron_changed", {"action": "added", "jobId": JOB, "job": {"id": JOB, "name": "Nightly repo check",
                                                                             "payload": {"kind": "agentTurn"}}})))
    budget(home, tmp_path, '[[budgets]]\nscope = "cron:Nightly repo check"\nperiod = "run"\nlimit = 0.02\naction = "block"\n')
    ctx = {"sessionId": CRON, "sessionKey": f"{CRON_KEY}:run:{CRON}", "trigger": "cron", "runId": "run-cron-0002"}
    decision = json.loads(hook(payload("before_tool_call", {"toolName": "exec"}, **ctx)).stdout)
    assert decision["block"] is True and "$0.0251 of $0.02" in decision["blockReason"]
    silent(hook(payload("before_tool_call", {"toolName": "exec"})))  # the main session is not that cron


def test_a_gate_records_the_held_records_before_it_decides(home, tmp_path, monkeypatch):
    """The plugin holds a session's `message` / `after_tool_call` / `session_start` and
    hands them to the next gate in `records` (no process of their own): the gate records
    them, then decides — the call that asked for the tool counts, with no store to catch
    up from. (The old hook ignored `records`: under budget, nothing recorded.)"""
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "no-store"))
    budget(home, tmp_path, '[[budgets]]\nscope = "session"\nperiod = "session"\nlimit = 0.0001\naction = "block"\n')
    held = [payload("session_start", {"sessionId": MAIN, "sessionKey": "agent:main:main"}),
            payload("message", {"message": assistant(0)}),
            payload("after_tool_call", {"toolName": "exec", "toolCallId": "held-1", "durationMs": 5, "paramsBytes": 9}),
            {"hook": "before_tool_call", "ctx": {}, "event": {}},  # not a held hook: ignored
            "junk"]
    gate = hook({**payload("before_tool_call", {"toolName": "exec", "toolCallId": "held-2"}), "records": held})
    assert gate.returncode == 0 and json.loads(gate.stdout)["block"] is True, gate
    assert [r["key"] for r in db_rows("SELECT key FROM requests")] == [
        f"openclaw:{assistant(0)['responseId']}@{assistant(0)['timestamp']}"]
    assert [(r["tool_use_id"], r["input_bytes"]) for r in db_rows("SELECT tool_use_id, input_bytes FROM tool_calls")] == [
        ("openclaw:held-1", 9)]
    assert db_rows("SELECT started_at IS NOT NULL AS started FROM sessions WHERE session_id = ?", (MAIN,)) == [{"started": 1}]
    assert errors(home) == []


def test_without_budgets_a_gate_records_its_held_records_in_the_background(home, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "no-store"))
    held = [payload("message", {"message": assistant(0)}), payload("message", {"message": assistant(1)})]
    silent(hook({**payload("before_agent_run"), "records": held}))  # waits for the background work, as a test does
    assert len(db_rows("SELECT key FROM requests")) == 2
    assert errors(home) == []


def test_gate_fails_open_fast_when_the_store_is_locked(home, tmp_path, monkeypatch):
    root = tmp_path / "oc"
    db = build_agent_store(root / "agents" / "main" / "agent" / "openclaw-agent.sqlite",
                           {MAIN: ("agent:main:main", events_of(MAIN))}, journal="delete")
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(root))
    budget(home, tmp_path, '[[budgets]]\nscope = "session"\nperiod = "session"\nlimit = 0.05\naction = "block"\n')
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        silent(hook(payload("before_tool_call", {"toolName": "exec"})))  # nothing recorded yet: under budget
        assert time.monotonic() - t0 < 2.5
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert any("TheirDatabaseBusy" in line for line in errors(home))


@pytest.mark.parametrize("stdin", [b"", b"not json", b"[1,2]", json.dumps({"hook": "agent_end", "ctx": "nope", "event": 7}).encode()])
def test_bad_input_fails_open(home, stdin, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "none"))
    silent(hook(stdin))


def test_unknown_hook_is_ignored(home):
    silent(hook(payload("llm_input", {"prompt": SECRET})))
    assert not (home / "costhook.db").exists()


def test_a_served_hook_answers_requests_ahead_of_posted_events_and_records_them_before_it_exits(home, tmp_path, monkeypatch):
    """The plugin posts agent_end (and other events nobody waits for) to the resident: no
    answer, handled when no request is waiting, so a gate that arrives with it is decided
    first; and when stdin closes (the Gateway or one-shot CLI exited), the resident still
    records what it read, then exits. (The resident before this answered lines strictly in
    order, a gate waiting behind a run's recording, and handled only gates.)"""
    import subprocess

    from conftest import COSTHOOK

    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "no-state"))
    budget(home, tmp_path, '[[budgets]]\nscope = "session"\nperiod = "session"\nlimit = 0.05\naction = "block"\n')
    proc = subprocess.Popen([COSTHOOK, "hook", "--agent", "openclaw", "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        assert json.loads(proc.stdout.readline()) == {"serve": 1}
        posted = {"payload": payload("agent_end", {"success": True, "messages": [assistant(0)]})}  # $0.066: over the limit
        gate = {"id": 1, "payload": payload("before_tool_call", {"toolName": "exec"})}
        proc.stdin.write((json.dumps(posted) + "\n" + json.dumps(gate) + "\n").encode())  # one write: read together
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {"id": 1, "answer": None}  # decided ahead of the run's recording
        proc.stdin.close()  # the plugin's process is gone
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == b""  # nothing answered for the posted event
    finally:
        proc.kill()
        proc.wait()
    assert [r["key"] for r in db_rows("SELECT key FROM requests")] == ["openclaw:msg_01MainA1@1778749202750"]
    assert json.loads(hook(payload("before_tool_call", {"toolName": "exec"})).stdout)["block"] is True  # now it counts
    assert errors(home) == []


def test_a_served_hook_answers_gates_line_by_line_and_follows_changes(home, state, tmp_path):
    """`costhook hook --agent openclaw --serve` (the plugin's resident for gates): says it
    is ready, answers one line per request, sees a budget added to the config file, and
    writes into a new database file once the old one is replaced (a first import renames
    its new file into place) — never into the file that is gone."""
    import os
    import select
    import subprocess

    from conftest import COSTHOOK

    proc = subprocess.Popen([COSTHOOK, "hook", "--agent", "openclaw", "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)

    def line():
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no answer from the served hook"
        return json.loads(proc.stdout.readline())

    def ask(rid, data):
        proc.stdin.write(json.dumps({"id": rid, "payload": data}).encode() + b"\n")
        proc.stdin.flush()
        return line()

    try:
        assert line() == {"serve": 1}
        assert ask(1, payload("before_tool_call", {"toolName": "exec"})) == {"id": 1, "answer": None}  # no budgets
        budget(home, tmp_path, '[[budgets]]\nscope = "session"\nperiod = "session"\nlimit = 0.05\naction = "block"\n')
        assert ask(2, payload("before_tool_call", {"toolName": "exec"}))["answer"]["block"] is True
        assert len(db_rows("SELECT key FROM requests")) > 0
        for suffix in ("", "-wal", "-shm"):  # the database is replaced by a new, empty one
            if os.path.exists(str(home / "costhook.db") + suffix):
                os.unlink(str(home / "costhook.db") + suffix)
        assert ask(3, payload("before_agent_run"))["answer"]["outcome"] == "block"  # caught up into the new file
        assert len(db_rows("SELECT key FROM requests")) > 0, errors(home)
        assert ask(4, {"hook": "before_tool_call", "ctx": "junk"}) == {"id": 4, "answer": None}  # fails open
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_resident_never_keeps_gates_waiting_behind_the_clearance(home, tmp_path, monkeypatch):
    """After answering, the resident writes the next clearance under the write lock. While
    another process holds that lock (a catch-up, an import), it skips it — the next
    request's gate must not wait behind it — and says nothing in the error log; once the
    lock is free, the clearance comes."""
    import os
    import select
    import subprocess

    from conftest import COSTHOOK

    from costhook import paths

    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "no-state"))
    budget(home, tmp_path, '[[budgets]]\nscope = "global"\nperiod = "monthly"\nlimit = 1000\naction = "block"\n')
    silent(hook(payload("agent_end", {"success": True, "messages": [assistant(0)]})))  # one call recorded
    if os.path.exists(paths.clearance_file()):
        os.unlink(paths.clearance_file())
    proc = subprocess.Popen([COSTHOOK, "hook", "--agent", "openclaw", "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)

    def ask(rid):
        started = time.monotonic()
        proc.stdin.write(json.dumps({"id": rid, "payload": payload("before_tool_call", {"toolName": "exec"})}).encode()
                         + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, f"request {rid}: no answer within 10 s"
        assert json.loads(proc.stdout.readline()) == {"id": rid, "answer": None}
        return time.monotonic() - started

    holder = sqlite3.connect(home / "costhook.db", isolation_level=None)
    try:
        assert json.loads(proc.stdout.readline()) == {"serve": 1}
        holder.execute("BEGIN IMMEDIATE")  # another process's write lock
        assert ask(1) < 2
        time.sleep(0.5)  # the resident has tried to write the clearance meanwhile
        assert ask(2) < 2  # not behind a wait for the lock
        assert not os.path.exists(paths.clearance_file())
        holder.execute("ROLLBACK")
        ask(3)
        deadline = time.monotonic() + 10
        while not os.path.exists(paths.clearance_file()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.exists(paths.clearance_file())
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        holder.close()
        proc.kill()
        proc.wait()
    assert errors(home) == []
