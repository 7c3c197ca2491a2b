"""OpenClaw ingest: the fixture transcripts (hand-computed totals in tests/fixtures/openclaw/
README.md), real SQLite stores built from OpenClaw 2026.9.6's own DDL, zstd rows and
archives, cursors, a store locked by a writer, old header versions, pruned cron runs.

The builders here are shared by the other test_openclaw_* modules.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
import zstandard

from costhook.pricing.prices import pricer
from costhook.store import db, writes
from costhook.agents.openclaw import events as oc
from costhook.agents.openclaw import importer, their_db

FIXTURE = Path(__file__).parent / "fixtures" / "openclaw"
SESSIONS = FIXTURE / "state" / "agents" / "main" / "sessions"
MAIN = "3c9d0f4e-8a61-4b7e-9d2a-5f1e6c7b8a01"
SUB = "b41f2c7d-6e58-4a93-8c01-9d7e3f2a6b12"
CRON = "e8a7d6c5-4b3a-4291-8f0e-1d2c3b4a5968"
BEAT = "019f6b2e-4c1a-7d3b-8e5f-6a7b8c9d0e1f"
JOB = "5f0c9a7e-2b1d-4c8e-9a63-7d4e1f0b2c38"
SUB_KEY = "agent:main:subagent:7e2b6a90-1c4d-4f3e-a8b5-2d9c0e1f4a77"
CRON_KEY = f"agent:main:cron:{JOB}"
FILES = {
    MAIN: SESSIONS / f"{MAIN}.jsonl",
    SUB: SESSIONS / f"{SUB}.jsonl",
    CRON: SESSIONS / f"{CRON}.jsonl",
    BEAT: FIXTURE / "state" / "agents" / "main" / "sessions-v4-export" / f"{BEAT}.jsonl",
}
KEYS = {MAIN: "agent:main:main", SUB: SUB_KEY, CRON: CRON_KEY, BEAT: "agent:main:main:heartbeat"}

# From the fixtures README (hand computed there, checked here).
REPORTED_TOTAL = 132_238_300  # 0.1322383 USD: every recorded usage.cost.total
PRICED_TOTAL = 148_513_300  # 0.1485133 USD: + haiku's 0.016275 priced from the table


def events_of(session_id: str) -> list[dict]:
    return [json.loads(line) for line in FILES[session_id].read_text().splitlines()]


# ------------------------------------------------------------------ builders --------


def build_agent_store(path: Path, sessions: dict, *, compress=lambda event: False, spawned_by=None, labels=None,
                      journal: str = "wal") -> Path:
    """A real OpenClaw agent store: OpenClaw 2026.9.6's DDL, one row per event, compressed
    events as zstd frames in event_zstd (event_json NULL), as OpenClaw writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA journal_mode = {journal}")
    db.executescript((FIXTURE / "agent-schema.sql").read_text())
    db.execute("INSERT INTO schema_meta VALUES ('primary', 'agent', 23, 'main', '2026.9.6', 0, 0)")
    for session_id, (key, events) in sessions.items():
        add_session(db, session_id, key, events, compress=compress, spawned_by=(spawned_by or {}).get(session_id),
                    label=(labels or {}).get(session_id))
    db.commit()
    db.close()
    return path


def add_session(db, session_id, key, events, *, compress=lambda e: False, spawned_by=None, label=None, first_seq=0):
    db.execute("INSERT OR IGNORE INTO session_nodes (session_key, current_session_id, entry_json, updated_at, created_via, "
               "spawned_by, label) VALUES (?, ?, '{}', 0, ?, ?, ?)",
               (key, session_id, "cron" if ":cron:" in key else ("spawn" if spawned_by else "run"), spawned_by, label))
    db.execute("INSERT OR IGNORE INTO session_windows (session_id, session_key, created_at, updated_at) VALUES (?, ?, 0, 0)",
               (session_id, key))
    append_events(db, session_id, events, compress=compress, first_seq=first_seq)


def append_events(db, session_id, events, *, compress=lambda e: False, first_seq=None):
    if first_seq is None:
        first_seq = (db.execute("SELECT coalesce(max(seq), -1) FROM transcript_events WHERE session_id = ?",
                                (session_id,)).fetchone()[0]) + 1
    for seq, event in enumerate(events, start=first_seq):
        text = json.dumps(event)
        if compress(event):
            blob = zstandard.ZstdCompressor().compress(text.encode())
            db.execute("INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, "
                       "event_utf8_bytes, navigation_json) VALUES (?, ?, NULL, 0, ?, ?, '{}')",
                       (session_id, seq, blob, len(text.encode())))
        else:
            db.execute("INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, 0)",
                       (session_id, seq, text))


def fixture_store(state: Path, compress_assistant: bool = True) -> Path:
    """The four fixture sessions as a 2026.9 agent store, every assistant event compressed."""
    sessions = {sid: (KEYS[sid], events_of(sid)) for sid in FILES}
    return build_agent_store(
        state / "agents" / "main" / "agent" / "openclaw-agent.sqlite",
        sessions,
        compress=(lambda e: e.get("type") == "message" and e["message"].get("role") == "assistant") if compress_assistant else (lambda e: False),
        spawned_by={SUB: "agent:main:main"},
        labels={SUB: "weekly-report"},
    )


def build_state_db(path: Path, jobs: list, runs: list) -> Path:
    """OpenClaw's shared state DB with cron jobs and task_runs rows (runtime 'cron')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript((FIXTURE / "state-schema.sql").read_text())
    for job in jobs:
        db.execute("INSERT INTO cron_jobs (store_key, job_id, name, enabled, agent_id, payload_kind, job_json, updated_at) "
                   "VALUES ('s', ?, ?, 1, ?, ?, ?, 0)",
                   (job["id"], job["name"], job.get("agentId"), job["payload"]["kind"], json.dumps(job)))
    for n, run in enumerate(runs):
        db.execute("INSERT INTO task_runs (task_id, runtime, task_kind, source_id, owner_key, scope_kind, child_session_key, "
                   "agent_id, run_id, label, task, status, delivery_status, notify_policy, created_at, detail_json) "
                   "VALUES (?, 'cron', 'automation_run', ?, '', 'system', ?, 'main', ?, ?, 'x', 'succeeded', 'n', 'silent', 0, ?)",
                   (f"task-{n}", run["jobId"], run.get("sessionKey"), f"cron:{run['jobId']}:{n}", run.get("jobName"),
                    json.dumps({"kind": "cron-run", **run})))
    db.commit()
    db.close()
    return path


@pytest.fixture
def conn(home):
    connection = db.connect()
    yield connection
    connection.close()


@pytest.fixture
def state(tmp_path):
    """A copy of the fixture state dir (legacy files, sessions.json, cron run log)."""
    target = tmp_path / "openclaw"
    shutil.copytree(FIXTURE / "state", target)
    return target


def rows(conn, sql="SELECT * FROM requests ORDER BY timestamp", args=()):
    return [dict(r) for r in conn.execute(sql, args)]


def sums(conn, where="1", args=()):
    return dict(conn.execute(
        f"""SELECT count(*) AS calls, sum(input_tokens) AS input, sum(output_tokens) AS output,
                  sum(cache_read_tokens) AS read, sum(cache_write_5m_tokens) AS write,
                  sum(reported_cost_nanousd) AS reported, sum(cost_nanousd) AS cost,
                  sum(cost_nanousd IS NULL) AS unpriced FROM requests WHERE {where}""", args).fetchone())


def import_dir(conn, folder):
    return importer.import_dirs(conn, [Path(folder)], price=pricer())


# ------------------------------------------------------------------ fixture totals --


def test_fixture_files_give_the_readme_totals(conn, state):
    summary = import_dir(conn, state)
    assert summary.calls == 12 and summary.cron_runs == 3
    assert sums(conn) == {"calls": 12, "input": 28685, "output": 1579, "read": 100094, "write": 17340,
                          "reported": REPORTED_TOTAL, "cost": PRICED_TOTAL, "unpriced": 0}
    per_file = {
        MAIN: (6, 20025, 558, 61350, 15830, 97_387_500),
        SUB: (3, 3420, 765, 6144, 0, 6_468_300),
        CRON: (2, 3140, 250, 20800, 1510, 25_072_500),
        BEAT: (1, 2100, 6, 11800, 0, 3_310_000),
    }
    for sid, (calls, inp, out, read, write, reported) in per_file.items():
        got = sums(conn, "session_id = ?", (sid,))
        assert (got["calls"], got["input"], got["output"], got["read"], got["write"], got["reported"]) == (
            calls, inp, out, read, write, reported), sid
    assert sum(r["input_tokens"] + r["output_tokens"] + r["cache_read_tokens"] + r["cache_write_5m_tokens"]
               for r in rows(conn)) == 147698


def test_a_message_without_cost_is_priced_from_the_table_never_zero(conn, state):
    import_dir(conn, state)
    (haiku,) = rows(conn, "SELECT * FROM requests WHERE request_id = 'msg_01MainA6'")
    assert haiku["reported_cost_nanousd"] is None
    assert (haiku["cost_nanousd"], haiku["cost_source"]) == (16_275_000, "computed")  # 0.0161 + 0.000175
    assert (haiku["model"], haiku["provider"], haiku["input_tokens"], haiku["output_tokens"]) == (
        "claude-haiku-4-5", "anthropic", 16100, 35)


def test_by_model_and_by_run(conn, state):
    import_dir(conn, state)
    by_model = {r["model"]: r for r in rows(conn, """SELECT model, count(*) n, sum(input_tokens) i, sum(output_tokens) o,
        sum(cache_read_tokens) r, sum(cache_write_5m_tokens) w, sum(reported_cost_nanousd) c FROM requests
        WHERE session_id = ? GROUP BY model""", (MAIN,))}
    assert by_model["claude-sonnet-4-6"] == {"model": "claude-sonnet-4-6", "n": 5, "i": 3925, "o": 523, "r": 61350,
                                             "w": 15830, "c": 97_387_500}
    assert (by_model["claude-haiku-4-5"]["n"], by_model["claude-haiku-4-5"]["c"]) == (1, None)
    by_run = {r["run_id"]: (r["n"], r["c"]) for r in rows(conn, """SELECT run_id, count(*) n, sum(reported_cost_nanousd) c
        FROM requests WHERE session_id = ? GROUP BY run_id""", (MAIN,))}
    assert by_run == {"run-main-0001": (3, 84_007_500), "run-main-0002": (2, 13_380_000), "run-main-0003": (1, None)}


def test_attribution_from_keys_sessions_json_and_prompts(conn, state):
    import_dir(conn, state)
    sub = rows(conn, "SELECT DISTINCT session_key, session_kind, parent_session_id, agent_id, agent_type, is_sidechain, "
                     "host_agent, is_heartbeat, cron_job FROM requests WHERE session_id = ?", (SUB,))
    assert sub == [{"session_key": SUB_KEY, "session_kind": "subagent", "parent_session_id": MAIN,
                    "agent_id": "7e2b6a90-1c4d-4f3e-a8b5-2d9c0e1f4a77", "agent_type": "weekly-report", "is_sidechain": 1,
                    "host_agent": "main", "is_heartbeat": 0, "cron_job": None}]
    cron = rows(conn, "SELECT DISTINCT session_key, session_kind, cron_job, is_heartbeat FROM requests WHERE session_id = ?", (CRON,))
    assert cron == [{"session_key": f"{CRON_KEY}:run:{CRON}", "session_kind": "cron", "cron_job": JOB, "is_heartbeat": 0}]
    main = rows(conn, "SELECT DISTINCT session_key, session_kind, is_heartbeat, cron_job, project FROM requests WHERE session_id = ?", (MAIN,))
    assert main == [{"session_key": "agent:main:main", "session_kind": "main", "is_heartbeat": 0, "cron_job": None,
                     "project": "/home/alice/.openclaw/workspace"}]
    # the heartbeat export has no sessions.json entry: recognised from the poll's provenance
    (beat,) = rows(conn, "SELECT * FROM requests WHERE session_id = ?", (BEAT,))
    assert (beat["is_heartbeat"], beat["ack_only"], json.loads(beat["tools"])) == (1, 1, [])
    tools = {r["request_id"]: json.loads(r["tools"]) for r in rows(conn)}
    assert tools["msg_01MainA1"] == ["read"] and tools["msg_01MainA4"] == ["sessions_spawn"] and tools["resp_sub_b2"] == ["write"]
    session = rows(conn, "SELECT session_key, session_kind, parent_session_key, label, agent FROM sessions WHERE session_id = ?", (SUB,))
    assert session == [{"session_key": SUB_KEY, "session_kind": "subagent", "parent_session_key": "agent:main:main",
                        "label": "weekly-report", "agent": "openclaw"}]
    assert rows(conn, "SELECT name FROM cron_jobs WHERE job_id = ?", (JOB,)) == [{"name": "Nightly repo check"}]


def test_sessions_json_counters_are_not_spend(conn, state):
    """2026.9 counters hold the last run / the context size; costhook sums the calls."""
    import_dir(conn, state)
    index = json.loads((SESSIONS / "sessions.json").read_text())
    assert index["agent:main:main"]["inputTokens"] == 16100 != sums(conn, "session_id = ?", (MAIN,))["input"]


def test_reimport_changes_nothing_and_appends_are_incremental(conn, state):
    import_dir(conn, state)
    again = import_dir(conn, state)
    assert (again.calls, again.changed, again.bytes_read) == (0, 0, 0)
    main = state / "agents" / "main" / "sessions" / f"{MAIN}.jsonl"
    extra = events_of(MAIN)[-1]
    extra["message"] = {**extra["message"], "responseId": "msg_01MainA7", "timestamp": extra["message"]["timestamp"] + 60000}
    line = json.dumps(extra) + "\n"
    with open(main, "a") as f:
        f.write(line)
        f.write(line[:40])  # a partial last line waits for the next read
    third = import_dir(conn, state)
    assert (third.calls, third.changed, third.bytes_read) == (1, 1, len(line))
    assert sums(conn)["calls"] == 13


def test_cron_run_log_keeps_pruned_runs_with_unknown_cost(conn, state):
    import_dir(conn, state)
    runs = {r["session_id"]: r for r in rows(conn, "SELECT * FROM cron_runs ORDER BY started_at")}
    assert len(runs) == 3
    pruned = runs["0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"]
    assert (pruned["status"], pruned["duration_ms"], pruned["total_tokens"], pruned["transcript_missing"]) == ("ok", 40870, 14140, 1)
    matched = runs[CRON]
    assert (matched["transcript_missing"], matched["input_tokens"], matched["job_name"]) == (0, 3140, "Nightly repo check")
    failed = runs[None]
    assert (failed["status"], failed["error"], failed["total_tokens"]) == ("error", "cron: isolated agent run timed out", None)


# ------------------------------------------------------------------ SQLite store ----


def test_sqlite_store_with_compressed_rows_gives_the_same_rows(conn, tmp_path):
    state = tmp_path / "oc"
    db_path = fixture_store(state)
    raw = sqlite3.connect(db_path)
    assert raw.execute("SELECT count(*) FROM transcript_events WHERE event_zstd IS NOT NULL AND event_json IS NULL").fetchone()[0] == 12
    raw.close()
    summary = import_dir(conn, state)
    assert summary.calls == 12
    assert sums(conn) == {"calls": 12, "input": 28685, "output": 1579, "read": 100094, "write": 17340,
                          "reported": REPORTED_TOTAL, "cost": PRICED_TOTAL, "unpriced": 0}
    (beat,) = rows(conn, "SELECT session_key, session_kind, is_heartbeat FROM requests WHERE session_id = ?", (BEAT,))
    assert beat == {"session_key": "agent:main:main:heartbeat", "session_kind": "heartbeat", "is_heartbeat": 1}
    sub = rows(conn, "SELECT DISTINCT parent_session_id, agent_type FROM requests WHERE session_id = ?", (SUB,))
    assert sub == [{"parent_session_id": MAIN, "agent_type": "weekly-report"}]
    cursor = writes.get_cursor(conn, their_db.sqlite_cursor_path(str(db_path), MAIN))
    assert cursor["offset"] == len(events_of(MAIN)) - 1


def test_files_and_store_deduplicate_against_each_other(conn, tmp_path, state):
    fixture_store(state)  # the same sessions, now also in SQLite
    import_dir(conn, state)
    assert sums(conn)["calls"] == 12


def test_sqlite_cursor_reads_only_new_events_and_rereads_a_rewrite(conn, tmp_path):
    state = tmp_path / "oc"
    db_path = build_agent_store(state / "agents" / "main" / "agent" / "openclaw-agent.sqlite",
                                {CRON: (CRON_KEY, events_of(CRON)[:6])})
    first = their_db.ingest_agent_db(conn, str(db_path), price=pricer())
    assert (first.events, first.calls) == (6, 1)
    db = sqlite3.connect(db_path)
    append_events(db, CRON, events_of(CRON)[6:])
    db.commit()
    second = their_db.ingest_agent_db(conn, str(db_path), price=pricer())
    assert (second.events, second.calls) == (2, 1)  # seq 6 and 7 only
    assert their_db.ingest_agent_db(conn, str(db_path), price=pricer()).events == 0
    # compaction-style rewrite: fewer events, seq restarting
    db.execute("DELETE FROM transcript_events WHERE session_id = ?", (CRON,))
    append_events(db, CRON, [events_of(CRON)[0], events_of(CRON)[7]], first_seq=0)
    db.commit()
    db.close()
    third = their_db.ingest_agent_db(conn, str(db_path), price=pricer())
    assert third.events == 2 and sums(conn)["calls"] == 2  # re-read, deduplicated


def test_a_locked_store_is_waited_on_briefly_then_left_for_later(conn, tmp_path):
    """The Gateway holds a write lock (rollback journal: readers wait): costhook gives up
    within its deadline, writes nothing, keeps its cursor, and catches up later."""
    state = tmp_path / "oc"
    db_path = build_agent_store(state / "agents" / "main" / "agent" / "openclaw-agent.sqlite",
                                {CRON: (CRON_KEY, events_of(CRON))}, journal="delete")
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    t0 = time.monotonic()
    with pytest.raises(their_db.TheirDatabaseBusy):
        their_db.ingest_agent_db(conn, str(db_path), price=pricer(), busy_ms=100, deadline=time.monotonic() + 0.4)
    assert time.monotonic() - t0 < 2
    assert sums(conn)["calls"] == 0 and writes.get_cursor(conn, their_db.sqlite_cursor_path(str(db_path), CRON)) is None
    writer.execute("ROLLBACK")
    writer.close()
    assert their_db.ingest_agent_db(conn, str(db_path), price=pricer()).calls == 2


def test_reading_never_blocks_the_gateways_writes(conn, tmp_path):
    """WAL (what OpenClaw uses): our read-only reader neither waits for nor blocks a writer."""
    state = tmp_path / "oc"
    db_path = build_agent_store(state / "agents" / "main" / "agent" / "openclaw-agent.sqlite",
                                {CRON: (CRON_KEY, events_of(CRON)[:6])})
    writer = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    append_events(writer, CRON, events_of(CRON)[6:])  # uncommitted while we read
    result = their_db.ingest_agent_db(conn, str(db_path), price=pricer(), busy_ms=50, deadline=time.monotonic() + 1)
    assert result.calls == 1  # the committed snapshot
    writer.execute("COMMIT")  # timeout=0: would raise if our reader were in the way
    writer.close()
    assert their_db.ingest_agent_db(conn, str(db_path), price=pricer()).calls == 1
    assert sums(conn)["calls"] == 2
    assert not any(p.name.endswith("-journal") for p in db_path.parent.iterdir())


def test_zstd_archive_of_a_deleted_session(conn, tmp_path):
    sessions = tmp_path / "oc" / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    archive = sessions / f"{MAIN}.jsonl.deleted.2026-11-22T18-27-08.892Z.2488ff5ec97542f1a79f4a93e513b4bd.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(FILES[MAIN].read_bytes()))
    summary = import_dir(conn, tmp_path / "oc")
    assert summary.calls == 6 and sums(conn, "session_id = ?", (MAIN,))["reported"] == 97_387_500
    assert import_dir(conn, tmp_path / "oc").calls == 0  # unchanged archive: not read again


def test_old_header_versions_and_bad_lines(conn, tmp_path):
    """v1 (linear, no ids), v2 (ids), v3 (role hookMessage): the same message shape;
    malformed, truncated and non-UTF-8 lines are counted and skipped."""
    folder = tmp_path / "old" / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    usage = {"input": 100, "output": 10, "cacheRead": 0, "cacheWrite": 0,
             "cost": {"input": 0.0003, "output": 0.00015, "cacheRead": 0, "cacheWrite": 0, "total": 0.00045}}
    v1 = [{"type": "session", "version": 1, "id": "v1-session", "timestamp": "2026-01-02T10:00:00.000Z", "cwd": "/w"},
          {"type": "message", "timestamp": "2026-01-02T10:00:01.000Z", "message": {"role": "user", "content": "hi"}},
          {"type": "message", "timestamp": "2026-01-02T10:00:02.000Z", "message": {
              "role": "assistant", "content": [{"type": "text", "text": "hello"}], "provider": "anthropic",
              "model": "claude-sonnet-4-6", "usage": usage, "stopReason": "stop", "timestamp": 1767348002000}}]
    v3 = [{"type": "session", "version": 3, "id": "v3-session", "timestamp": "2026-03-02T10:00:00.000Z", "cwd": "/w"},
          {"type": "message", "id": "a", "parentId": None, "timestamp": "2026-03-02T10:00:01.000Z",
           "message": {"role": "hookMessage", "content": "x"}},
          {"type": "message", "id": "b", "parentId": "a", "timestamp": "2026-03-02T10:00:02.000Z", "message": {
              "role": "assistant", "content": [], "provider": "anthropic", "model": "claude-sonnet-4-6", "usage": usage,
              "responseId": "msg_v3", "timestamp": 1772445602000}},
          {"type": "message", "id": "c", "parentId": "b", "timestamp": "2026-03-02T10:00:03.000Z", "message": {
              "role": "assistant", "content": [], "provider": "anthropic", "model": "claude-sonnet-4-6", "stopReason": "error",
              "usage": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "cost": {"total": 0}}, "timestamp": 1772445603000}}]
    (folder / "v1-session.jsonl").write_text("\n".join(json.dumps(e) for e in v1) + "\n")
    (folder / "v3-session.jsonl").write_bytes(
        ("\n".join(json.dumps(e) for e in v3) + "\n").encode() + b'{"type":"message","id":\n' + b"\xff\xfe garbage\n")
    summary = import_dir(conn, tmp_path / "old")
    assert summary.calls == 2 and summary.malformed == 2  # the zero-usage error reply billed nothing
    keys = {r["key"]: r for r in rows(conn)}
    assert set(keys) == {"openclaw:v1-session@1767348002000", "openclaw:msg_v3@1772445602000"}
    assert {r["reported_cost_nanousd"] for r in keys.values()} == {450_000}
    assert keys["openclaw:v1-session@1767348002000"]["timestamp"] == "2026-01-02T10:00:02.000Z"


def test_all_zero_cost_is_unknown_not_free(conn, tmp_path):
    folder = tmp_path / "z" / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    zero = {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0}
    lines = [{"type": "session", "version": 4, "id": "zero", "timestamp": "2026-09-01T00:00:00.000Z", "cwd": "/w"}]
    for n, model in enumerate(["llama3.3:70b", "claude-sonnet-4-6"]):
        lines.append({"type": "message", "id": f"m{n}", "timestamp": "2026-09-01T00:00:01.000Z", "message": {
            "role": "assistant", "content": [], "provider": "ollama", "model": model, "responseId": f"r{n}",
            "usage": {"input": 1000, "output": 100, "cacheRead": 0, "cacheWrite": 0, "totalTokens": 1100, "cost": zero},
            "timestamp": 1788220801000 + n}})
    (folder / "zero.jsonl").write_text("\n".join(json.dumps(e) for e in lines) + "\n")
    import_dir(conn, tmp_path / "z")
    got = {r["model"]: (r["cost_nanousd"], r["cost_source"], r["reported_cost_nanousd"]) for r in rows(conn)}
    assert got == {"llama3.3:70b": (None, "unpriced", None), "claude-sonnet-4-6": (4_500_000, "computed", None)}


def test_state_db_cron_history_and_heartbeat_job(conn, tmp_path):
    state = tmp_path / "oc"
    heartbeat = {"id": "hb-uuid", "name": "heartbeat-main", "agentId": "main", "sessionTarget": "main",
                 "schedule": {"kind": "every", "everyMs": 1800000}, "payload": {"kind": "heartbeat"}}
    nightly = {"id": JOB, "name": "Nightly repo check", "agentId": "main", "sessionTarget": "isolated",
               "schedule": {"kind": "cron", "expr": "0 7 * * *"}, "payload": {"kind": "agentTurn"}}
    run_line = json.loads((FIXTURE / "state" / "cron" / "runs" / f"{JOB}.jsonl").read_text().splitlines()[1])
    build_state_db(state / "state" / "openclaw.sqlite", [heartbeat, nightly], [
        {**run_line, "runId": "manual:x:1", "jobName": "Nightly repo check"},
        {"jobId": "hb-uuid", "action": "finished", "status": "ok", "runAtMs": 1789914600000, "durationMs": 2700,
         "runId": "manual:hb:2", "summary": "heartbeat completed"},
    ])
    summary = import_dir(conn, state)
    assert summary.cron_runs == 2
    runs = {r["job_id"]: r for r in rows(conn, "SELECT * FROM cron_runs")}
    assert (runs[JOB]["run_id"], runs[JOB]["cron_run_id"], runs[JOB]["session_id"], runs[JOB]["duration_ms"]) == (
        f"{JOB}@1778742000050", "manual:x:1", CRON, 6420)
    assert (runs["hb-uuid"]["is_heartbeat"], runs["hb-uuid"]["session_target"], runs["hb-uuid"]["started_at"]) == (
        1, "main", "2026-09-20T14:30:00.000Z")
    jobs = {r["job_id"]: r for r in rows(conn, "SELECT * FROM cron_jobs")}
    assert (jobs["hb-uuid"]["kind"], jobs["hb-uuid"]["schedule"], jobs[JOB]["schedule"]) == (
        "heartbeat", "every 1800000 ms", "cron 0 7 * * *")
    # the legacy run log of the same run (imported once, then renamed .migrated) is the same run
    legacy = state / "cron" / "runs"
    legacy.mkdir(parents=True)
    (legacy / f"{JOB}.jsonl.migrated").write_text(json.dumps(run_line) + "\n")
    import_dir(conn, state)
    assert len(rows(conn, "SELECT * FROM cron_runs WHERE job_id = ?", (JOB,))) == 1


# ------------------------------------------------------------------ values ----------


@pytest.mark.parametrize("value, nano", [
    (0.0014999999999999998, 1_500_000),
    (3.0000000000000004e-05, 30_000),
    (0.0024552000000000003, 2_455_200),
    (0.0056489999999999995, 5_649_000),
    (9e-05, 90_000),
    (5e-10, 1),
    (4.9e-10, 0),
    (12, 12_000_000_000),
    (1.5, 1_500_000_000),
])
def test_usd_to_nano_is_exact(value, nano):
    assert oc.usd_to_nano(value) == nano


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), True, "0.1", None])
def test_usd_to_nano_rejects_nonsense(value):
    assert oc.usd_to_nano(value) is None


@pytest.mark.parametrize("key, kind, host, job", [
    ("agent:main:main", "main", "main", None),
    ("agent:main:telegram:direct:123", "direct", "main", None),
    ("agent:ops:discord:group:42", "group", "ops", None),
    ("agent:main:cron:J1", "cron", "main", "J1"),
    ("agent:main:cron:J1:run:S1", "cron", "main", "J1"),
    ("agent:main:main:heartbeat", "heartbeat", "main", None),
    ("agent:main:subagent:uuid-1", "subagent", "main", None),
    ("agent:main:explicit:model-run-1", "explicit", "main", None),
    ("hook:abc", "hook", None, None),
    ("", None, None, None),
])
def test_session_key_kinds(key, kind, host, job):
    info = oc.classify_key(key)
    assert (info["kind"], info["host_agent"], info["cron_job"]) == (kind, host, job)


def test_cron_run_alias():
    assert oc.cron_run_key("agent:main:cron:J1", "S1") == "agent:main:cron:J1:run:S1"
    assert oc.cron_run_key("agent:main:cron:J1:run:S1", "S1") == "agent:main:cron:J1:run:S1"
    assert oc.cron_run_key("agent:main:main", "S1") == "agent:main:main"


@pytest.mark.parametrize("text, ack", [
    ("HEARTBEAT_OK", True), ("NO_REPLY", True), ("", True), ("  HEARTBEAT_OK  ", True),
    ("All quiet. HEARTBEAT_OK", True), ("HEARTBEAT_OK " + "x" * 301, False),
    ("Your 3pm meeting moved to 4pm.", False), ("before HEARTBEAT_OK after", False),
])
def test_acknowledgements(text, ack):
    assert oc.is_ack_text(text) is ack


def test_heartbeat_respond_without_notify_is_an_acknowledgement():
    quiet = {"content": [{"type": "toolCall", "name": "heartbeat_respond", "arguments": {"notify": False}}]}
    loud = {"content": [{"type": "toolCall", "name": "heartbeat_respond", "arguments": {"notify": True, "notificationText": "x"}}]}
    bridged = {"content": [{"type": "toolCall", "name": "tool_call", "arguments": {"id": "sessions_spawn", "args": {}}}]}
    assert oc.assistant_summary(quiet) == (["heartbeat_respond"], 1)
    assert oc.assistant_summary(loud) == (["heartbeat_respond"], 0)
    assert oc.assistant_summary(bridged) == (["sessions_spawn"], 0)
