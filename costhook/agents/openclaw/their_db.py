"""Reading OpenClaw's own SQLite stores, read-only, without ever blocking OpenClaw.

OpenClaw (2026.9) keeps one SQLite store per agent,
`<state>/agents/<id>/agent/openclaw-agent.sqlite`: table `transcript_events` holds one
transcript event per row (`event_json`, or zstd-compressed `event_zstd`), in `seq` order,
with `session_windows` / `session_nodes` mapping session ids to session keys and parents.
Cron jobs and their run history live in the shared `<state>/state/openclaw.sqlite`
(tables `cron_jobs`, `task_runs`).

Reading OpenClaw's own databases never blocks OpenClaw: read-only URI connections, short
statements in autocommit mode (WAL readers do not block writers), a busy timeout and a
bounded retry; an incremental cursor per session (`sqlite:<db>#<session>`, the last seq)
in costhook's `cursors` table. Columns are looked up, so older schema versions still read.
Nothing here writes their files; costhook's own tables are written through store/writes.py.

Standard library only (the hook catches up through ingest_agent_db).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time

from costhook import timeframe
from costhook.agents.openclaw import cron
from costhook.agents.openclaw.events import (
    AGENT,
    HEAD_BYTES,
    ReadState,
    SessionMeta,
    Stats,
    ZstdUnavailable,
    clip,
    decode_event,
    parse_events,
    session_facts,
)
from costhook.store import writes
from costhook.store.db import in_lists, transaction

SQLITE_CHUNK = 500  # events per read statement and per write transaction


class TheirDatabaseBusy(Exception):
    """OpenClaw's database stayed locked for longer than we are willing to wait."""


# ------------------------------------------------------------------ access ----------


def open_readonly(path: str, *, busy_ms: int = 1000, deadline: float | None = None) -> sqlite3.Connection:
    """OpenClaw's database, read-only (URI mode=ro), autocommit, with a busy timeout.

    A database locked past `deadline` raises TheirDatabaseBusy. If the file cannot be
    opened read-only in place (a WAL database whose -shm cannot be created, e.g. a
    read-only directory) and no writer is active (no -wal file), fall back to immutable=1."""
    from urllib.parse import quote

    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        db.execute("PRAGMA query_only = 1")
        their_query(db, "SELECT 1 FROM sqlite_master LIMIT 1", deadline=deadline)
        return db
    except sqlite3.OperationalError:
        db.close()
        if os.path.exists(path + "-wal") or not os.path.exists(path):
            raise
    except BaseException:
        db.close()
        raise
    db = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA query_only = 1")
    return db


def _is_busy(exc: Exception) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def their_query(db: sqlite3.Connection, sql: str, args=(), *, deadline: float | None = None) -> list:
    """Run one read statement, retrying while the database is busy (until `deadline`)."""
    delay = 0.02
    while True:
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if deadline is not None and time.monotonic() + delay > deadline:
                raise TheirDatabaseBusy(f"OpenClaw database busy: {exc}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _tables(db, deadline=None) -> set:
    return {row[0] for row in their_query(db, "SELECT name FROM sqlite_master WHERE type = 'table'", deadline=deadline)}


def _columns(db, table: str, deadline=None) -> set:
    return {row[1] for row in their_query(db, f"PRAGMA table_info({table})", deadline=deadline)}


def _their_query_in(db, sql: str, values: list, *, deadline=None) -> list:
    """their_query with the `{}` in `sql` filled with one placeholder per value, 500 values
    a statement (SQLite's limit on variables, and short statements)."""
    rows = []
    for marks, chunk in in_lists(values):
        rows += their_query(db, sql.format(marks), chunk, deadline=deadline)
    return rows


# ------------------------------------------------------------------ transcripts -----


def agent_id_of(db_path: str) -> str | None:
    """`<state>/agents/<id>/agent/openclaw-agent.sqlite` → id."""
    parts = os.path.abspath(db_path).split(os.sep)
    if len(parts) >= 4 and parts[-2] == "agent" and parts[-4] == "agents":
        return parts[-3]
    return None


def session_metas(db, db_path: str, session_ids, deadline=None) -> dict:
    """session id → SessionMeta, from session_windows + session_nodes (columns looked up,
    so older schema versions that lack some still work)."""
    host = agent_id_of(db_path)
    metas = {sid: SessionMeta(session_id=sid, host_agent=host, source_path=db_path) for sid in session_ids}
    if not session_ids:
        return metas
    tables = _tables(db, deadline)
    if "session_windows" not in tables:
        return metas
    window_cols = _columns(db, "session_windows", deadline)
    node_cols = _columns(db, "session_nodes", deadline) if "session_nodes" in tables else set()
    select = ["w.session_id", "w.session_key"]
    for col in ("parent_session_key", "spawned_by", "display_name"):
        select.append(f"w.{col}" if col in window_cols else "NULL")
    for col in ("parent_session_key", "spawned_by", "label"):
        select.append(f"n.{col}" if col in node_cols else "NULL")
    join = "LEFT JOIN session_nodes n ON n.session_key = w.session_key" if node_cols else ""
    ids = list(session_ids)
    parents = {}
    rows = _their_query_in(db, f"SELECT {', '.join(select)} FROM session_windows w {join} WHERE w.session_id IN ({{}})",
                           ids, deadline=deadline)
    for sid, key, w_parent, w_spawned, display, n_parent, n_spawned, label in rows:
        parent = n_spawned or w_spawned or n_parent or w_parent
        metas[sid] = SessionMeta(session_id=sid, session_key=key, host_agent=host, parent_session_key=parent,
                                 label=label or display, source_path=db_path)
        if parent:
            parents.setdefault(parent, []).append(sid)
    if parents and "current_session_id" in node_cols:
        keys = list(parents)
        rows = their_query(db, f"SELECT session_key, current_session_id FROM session_nodes WHERE session_key IN ({','.join('?' * len(keys))})",
                           keys, deadline=deadline)
        for key, current in rows:
            for sid in parents.get(key, []):
                metas[sid].parent_session_id = current
    return metas


def sqlite_cursor_path(db_path: str, session_id: str) -> str:
    """The `cursors` row of one session of one agent store."""
    return f"sqlite:{os.path.abspath(db_path)}#{session_id}"


def ingest_agent_db(conn, db_path: str, *, price, session_ids=None, busy_ms: int = 1000,
                    deadline: float | None = None, max_events: int | None = None) -> Stats:
    """Ingest the new transcript events of one agent store (all sessions, or `session_ids`).

    Raises TheirDatabaseBusy when OpenClaw's database stays locked past `deadline`; what
    was committed before stays (per-session cursors), the rest is read next time."""
    stats = Stats()
    if not os.path.isfile(db_path):
        return stats
    db = open_readonly(db_path, busy_ms=busy_ms, deadline=deadline)
    try:
        tables = _tables(db, deadline)
        if "transcript_events" not in tables:
            return stats
        if session_ids:
            ids = [s for s in dict.fromkeys(session_ids) if isinstance(s, str) and s]
            heads = _their_query_in(db, "SELECT session_id, max(seq) FROM transcript_events WHERE session_id IN ({}) GROUP BY session_id",
                                    ids, deadline=deadline)
        else:
            heads = their_query(db, "SELECT session_id, max(seq) FROM transcript_events GROUP BY session_id", deadline=deadline)
        todo = []
        for sid, max_seq in heads:
            cursor = writes.get_cursor(conn, sqlite_cursor_path(db_path, sid))
            last = cursor["offset"] if cursor and cursor.get("offset") is not None else -1
            if max_seq is not None and max_seq != last:
                todo.append((sid, max_seq, cursor))
        if not todo:
            return stats
        metas = session_metas(db, db_path, [t[0] for t in todo], deadline=deadline)
        for sid, max_seq, cursor in todo:
            budget = None if max_events is None else max_events - stats.events
            if budget is not None and budget <= 0:
                break
            stats.add(_ingest_session(conn, db, db_path, sid, max_seq, cursor, metas[sid], price, deadline, budget))
    finally:
        db.close()
    return stats


def _ingest_session(conn, db, db_path, sid, max_seq, cursor, meta, price, deadline, budget) -> Stats:
    stats = Stats()
    stats.sessions = 1
    path = sqlite_cursor_path(db_path, sid)
    last = cursor["offset"] if cursor and cursor.get("offset") is not None else -1
    state = ReadState.from_json(cursor.get("state")) if cursor else ReadState()
    head = _session_head(db, sid, deadline)
    if cursor and (max_seq < last or (cursor.get("head") and head and cursor["head"] != head)):
        last, state = -1, ReadState()  # rewritten or replaced: read again; keys dedupe
    while True:
        limit = SQLITE_CHUNK if budget is None else max(0, min(SQLITE_CHUNK, budget - stats.events))
        if limit == 0:
            break
        rows = their_query(
            db, "SELECT seq, event_json, event_zstd FROM transcript_events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (sid, last, limit), deadline=deadline,
        )
        if not rows:
            break
        events = []
        for seq, event_json, event_zstd in rows:
            try:
                events.append(decode_event(event_json, event_zstd))
            except ZstdUnavailable:
                stats.skipped_compressed += 1
                events.append({})
        result = parse_events(events, meta, state)
        new_last = rows[-1][0]
        with transaction(conn):
            stats.changed += writes.write_calls(conn, result.calls, price, session_facts(meta, state, result), agent=AGENT)
            cron.remember_cron_names(conn, result.cron_names, meta.host_agent)
            current = writes.get_cursor(conn, path)
            stored = max(new_last, current["offset"]) if current and current.get("offset") is not None and current.get("head") == head else new_last
            writes.set_cursor(conn, {"path": path, "offset": stored, "size": max_seq, "inode": None, "head": head,
                                    "state": state.to_json(), "updated_at": timeframe.now_iso()})
        stats.events += result.events
        stats.calls += len(result.calls)
        stats.malformed += result.malformed
        last = new_last
        if len(rows) < limit:
            break
    return stats


def _session_head(db, sid, deadline) -> str | None:
    """Identity of a session's transcript: its first event (a rewrite replaces it)."""
    rows = their_query(db, "SELECT seq, coalesce(event_json, hex(substr(event_zstd, 1, 64))) FROM transcript_events "
                           "WHERE session_id = ? ORDER BY seq LIMIT 1", (sid,), deadline=deadline)
    if not rows:
        return None
    return hashlib.sha1(f"{rows[0][0]}:{(rows[0][1] or '')[:HEAD_BYTES]}".encode()).hexdigest()[:16]


# ------------------------------------------------------------------ cron ------------


def ingest_state_db(conn, state_db: str, *, busy_ms: int = 2000, deadline: float | None = None) -> Stats:
    """Cron jobs and run history from OpenClaw's shared state database
    (`cron_jobs`, and `task_runs` rows with runtime 'cron' whose detail is the run log entry)."""
    stats = Stats()
    if not os.path.isfile(state_db):
        return stats
    db = open_readonly(state_db, busy_ms=busy_ms, deadline=deadline)
    try:
        jobs, runs = _cron_state(db, deadline)
    finally:
        db.close()
    with transaction(conn):
        for job in jobs.values():
            cron.save_job(conn, job)
        for job_id, detail_json, label, agent_id, child_key in runs:
            try:
                detail = json.loads(detail_json) if detail_json else None
            except ValueError:
                detail = None
            if not isinstance(detail, dict):
                continue
            detail.setdefault("jobId", job_id)
            if child_key and not detail.get("sessionKey"):
                detail["sessionKey"] = child_key
            job = jobs.get(detail.get("jobId"))
            row = cron.cron_run_row(detail, host_agent=agent_id, job_name=(job or {}).get("name") or label,
                                    is_heartbeat=cron.job_is_heartbeat(job))
            if row:
                if job and not row.get("session_target"):
                    row["session_target"] = clip(job.get("sessionTarget"), 40)
                writes.record_cron_run(conn, row)
                stats.cron_runs += 1
    stats.files = 1
    return stats


def _cron_state(db, deadline) -> tuple[dict, list]:
    """(job id → job definition, the cron task_runs rows) from the state database."""
    tables = _tables(db, deadline)
    jobs = {}
    if "cron_jobs" in tables:
        cols = _columns(db, "cron_jobs", deadline)
        agent_col = "agent_id" if "agent_id" in cols else "NULL"
        for job_id, name, agent_id, payload_kind, job_json in their_query(
            db, f"SELECT job_id, name, {agent_col}, payload_kind, job_json FROM cron_jobs", deadline=deadline
        ):
            try:
                job = json.loads(job_json) if job_json else {}
            except ValueError:
                job = {}
            job = job if isinstance(job, dict) else {}
            job.setdefault("id", job_id)
            job.setdefault("name", name)
            job.setdefault("agentId", agent_id)
            if payload_kind and not isinstance(job.get("payload"), dict):
                job["payload"] = {"kind": payload_kind}
            jobs[job_id] = job
    runs = []
    if "task_runs" in tables:
        cols = _columns(db, "task_runs", deadline)
        if {"runtime", "detail_json", "source_id"} <= cols:
            label = "label" if "label" in cols else "NULL"
            agent = "agent_id" if "agent_id" in cols else "NULL"
            child = "child_session_key" if "child_session_key" in cols else "NULL"
            runs = their_query(
                db, f"SELECT source_id, detail_json, {label}, {agent}, {child} FROM task_runs WHERE runtime = 'cron'",
                deadline=deadline,
            )
    return jobs, runs
