"""Each call's place in its thread, kept at write time: the `links` table (migration m014).

A thread is one session's main thread or one of its sub-agents (session_id, agent_id,
is_sidechain); its calls in time order (timestamp, then rowid: the order of the timestamp
index the views read). For every call with a timestamp, `links` holds

- `next_read`, `next_at`: the cache-read tokens and time of the thread's next call (NULL
  for the last one): whether the call's cache writes were read (views/cache.py CACHE_RULE);
- `turn_row`, `turn_at`: the rowid and time of the first call of its turn. A turn is the
  thread's calls up to and including one that requested no tool (an answer), or, for calls
  with a run / prompt id, those of one id (the rule of views/calls.py, which reads these).

So the cache, idle and efficiency views sum a window's calls in SQL instead of following
every thread in Python. Triggers on `requests` note in `links_dirty` the threads a write
touched and from when; `refresh` (db.transaction, before COMMIT) recomputes those threads
from the call before that point on: for a hook, the thread's last two calls.
Standard library only (the hook writes through this module).
"""

import sqlite3

# The triggers, created by migration m014 (and dropped while a first import bulk-loads).
# BEFORE INSERT also sees the row an INSERT OR REPLACE is about to delete.
TRIGGERS = {
    "links_requests_insert": """CREATE TRIGGER IF NOT EXISTS links_requests_insert BEFORE INSERT ON requests BEGIN
        INSERT INTO links_dirty (session_id, agent_id, is_sidechain, since, gone)
            SELECT session_id, agent_id, is_sidechain, timestamp, rowid FROM requests WHERE key = NEW.key;
        INSERT INTO links_dirty (session_id, agent_id, is_sidechain, since)
            VALUES (NEW.session_id, NEW.agent_id, NEW.is_sidechain, NEW.timestamp);
    END""",
    "links_requests_delete": """CREATE TRIGGER IF NOT EXISTS links_requests_delete AFTER DELETE ON requests BEGIN
        INSERT INTO links_dirty (session_id, agent_id, is_sidechain, since, gone)
            VALUES (OLD.session_id, OLD.agent_id, OLD.is_sidechain, OLD.timestamp, OLD.rowid);
    END""",
    "links_requests_update": """CREATE TRIGGER IF NOT EXISTS links_requests_update
        AFTER UPDATE OF session_id, agent_id, is_sidechain, timestamp, cache_read_tokens, tools, run_id, prompt_id
        ON requests BEGIN
        INSERT INTO links_dirty (session_id, agent_id, is_sidechain, since)
            VALUES (OLD.session_id, OLD.agent_id, OLD.is_sidechain, OLD.timestamp),
                   (NEW.session_id, NEW.agent_id, NEW.is_sidechain, NEW.timestamp);
    END""",
}
MARK_ALL = "INSERT INTO links_dirty (session_id, agent_id, is_sidechain, since) VALUES (NULL, NULL, NULL, '*')"

_CALL = "rowid, timestamp, coalesce(cache_read_tokens, 0), tools, coalesce(run_id, prompt_id)"
_THREAD = "session_id IS ? AND agent_id IS ? AND is_sidechain IS ?"
_UPSERT = "INSERT OR REPLACE INTO links (rowid, next_read, next_at, turn_row, turn_at) VALUES (?, ?, ?, ?, ?)"


def refresh(conn: sqlite3.Connection) -> None:
    """Recompute the links of the threads written since the last refresh. Inside the
    writing transaction; one query when nothing is due."""
    dirty = conn.execute("SELECT session_id, agent_id, is_sidechain, min(since), max(since = '*') FROM links_dirty "
                         "GROUP BY session_id, agent_id, is_sidechain").fetchall()
    if not dirty:
        return
    if any(row[4] for row in dirty):  # everything (a first import's file, once bulk-loaded)
        rebuild(conn)
        return
    gone = [(row[0],) for row in conn.execute("SELECT gone FROM links_dirty WHERE gone IS NOT NULL")]
    if gone:
        conn.executemany("DELETE FROM links WHERE rowid = ?", gone)
    out = []
    for sid, aid, side, since, _ in dirty:
        if since is None:  # only calls without a time: in no thread
            continue
        thread = (sid, aid, side)
        prev = conn.execute(f"SELECT {_CALL} FROM requests WHERE {_THREAD} AND timestamp < ? "
                            "ORDER BY timestamp DESC, rowid DESC LIMIT 1", (*thread, since)).fetchone()
        turn = None
        if prev is not None:
            turn = conn.execute("SELECT l.turn_row, l.turn_at, coalesce(r.run_id, r.prompt_id) FROM links l "
                                "JOIN requests r ON r.rowid = l.turn_row WHERE l.rowid = ?", (prev[0],)).fetchone()
        calls = conn.execute(f"SELECT {_CALL} FROM requests WHERE {_THREAD} AND timestamp >= ? ORDER BY timestamp, rowid",
                             (*thread, since)).fetchall()
        if prev is not None and turn is None:  # (cannot happen while the triggers run: rebuild the thread whole)
            prev, calls = None, conn.execute(f"SELECT {_CALL} FROM requests WHERE {_THREAD} AND timestamp IS NOT NULL "
                                             "ORDER BY timestamp, rowid", thread).fetchall()
        out += walk(calls, prev, tuple(turn) if turn else None)
    conn.executemany(_UPSERT, out)
    conn.execute("DELETE FROM links_dirty")


def rebuild(conn: sqlite3.Connection) -> None:
    """Every call's links from the calls alone (the migration, a first import's file; and
    what the tests compare `refresh` with): one pass in (session, time) order, gathered in
    a temporary table and written in rowid order (written in session order, every page of
    `links` would be rewritten again and again)."""
    conn.execute("SAVEPOINT links_rebuild")
    conn.execute("DELETE FROM links")
    conn.execute("DELETE FROM links_dirty")
    conn.execute("CREATE TEMP TABLE links_new (rowid_ INTEGER, next_read INTEGER, next_at TEXT, turn_row INTEGER, turn_at TEXT)")
    add = "INSERT INTO temp.links_new VALUES (?, ?, ?, ?, ?)"
    threads, session, out = {}, object(), []
    for row in conn.execute(f"SELECT session_id, agent_id, is_sidechain, {_CALL} FROM requests "
                            "WHERE timestamp IS NOT NULL ORDER BY session_id, timestamp, rowid"):
        if row[0] != session:
            for calls in threads.values():
                out += walk(calls, None, None)
            if len(out) > 50_000:
                conn.executemany(add, out)
                out = []
            threads, session = {}, row[0]
        threads.setdefault(row[1:3], []).append(row[3:])
    for calls in threads.values():
        out += walk(calls, None, None)
    conn.executemany(add, out)
    conn.execute("INSERT INTO links SELECT * FROM temp.links_new ORDER BY rowid_")
    conn.execute("DROP TABLE temp.links_new")
    conn.execute("RELEASE links_rebuild")


def walk(calls: list, prev, turn) -> list:
    """Links rows (rowid, next_read, next_at, turn_row, turn_at) of `prev` (the call just
    before, or None: its own turn unchanged) and of `calls`, a thread's calls in order
    (rowid, timestamp, cache read, tools, run/prompt id). `turn`: (rowid, time, id) of the
    first call of prev's turn."""
    out = []
    last = None
    if prev is not None:
        last = [prev[0], None, None, turn[0], turn[1]]
        out.append(last)
        closed = _answer(prev[3]) and prev[4] is None
        key = turn[2]
    for rowid, ts, read, tools, k in calls:
        if last is not None:
            last[1], last[2] = read, ts
        # A new turn after an answer, or when the run / prompt id changes (views/calls.py).
        if last is None or closed or (k is not None and key != k):
            turn_row, turn_at, key = rowid, ts, k
        else:
            turn_row, turn_at = last[3], last[4]
        last = [rowid, None, None, turn_row, turn_at]
        out.append(last)
        closed = _answer(tools) and k is None
    return out


def _answer(tools) -> bool:
    """A call that requested no tool."""
    return not tools or tools == "[]"
