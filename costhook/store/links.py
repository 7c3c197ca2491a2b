"""Each call's place in its thread, kept at write time (migration m013), and what the
cache, idle and efficiency views sum instead of following a week of calls in Python.

A thread is one session's main thread or one of its sub-agents (session_id, agent_id,
is_sidechain); its calls in time order (timestamp, then rowid: the order of the timestamp
index the views' pass read them in). Three tables, all derived from `requests`:

- `links`, one row per call with a time: the cache-read tokens and time of the thread's
  next call (NULL for the thread's last), the rowid and time of the first call of its
  turn, and the cache writes the next call did not read (`waste_*`, under its price key
  `wkey` and 15-minute bucket). A turn is the thread's calls up to and including one
  that requested no tool (an answer), or, for calls with a run / prompt id, those of one
  id (views/calls.py);
- `cache_waste`: those unread writes summed per bucket and price key;
- `turns`: per turn its thread, first and last call time, calls, cost, unpriced calls,
  side-effecting tools requested, answer output tokens and heartbeat calls.

Triggers on `requests` note in `links_dirty` the threads a write touched and from when;
`refresh` (db.transaction, before COMMIT) recomputes those threads from the call before
that point on (for a hook: the thread's last two calls), moving the sums by what changed.
`rebuild` makes all three from the calls alone. Standard library only (the hook writes
through this module).
"""

import sqlite3

from costhook import jsontext
from costhook.store.rollup import PRICE_BANDS, added, band_sql
from costhook.timeframe import bucket_of
from costhook.usage import tool_actions

# Columns whose change moves a call's links or sums (the UPDATE trigger's list).
WATCHED = ("session_id", "agent_id", "is_sidechain", "timestamp", "cache_read_tokens", "tools", "run_id", "prompt_id",
           "agent", "model", "speed", "inference_geo", "input_tokens", "output_tokens", "cache_write_5m_tokens",
           "cache_write_1h_tokens", "cost_nanousd", "is_heartbeat")
# The triggers, created by migration m013 (and dropped while a first import bulk-loads).
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
    "links_requests_update": f"""CREATE TRIGGER IF NOT EXISTS links_requests_update
        AFTER UPDATE OF {', '.join(WATCHED)} ON requests BEGIN
        INSERT INTO links_dirty (session_id, agent_id, is_sidechain, since, touched)
            VALUES (OLD.session_id, OLD.agent_id, OLD.is_sidechain, OLD.timestamp, NULL),
                   (NEW.session_id, NEW.agent_id, NEW.is_sidechain, NEW.timestamp, NEW.rowid);
    END""",
}
MARK_ALL = "INSERT INTO links_dirty (session_id, agent_id, is_sidechain, since) VALUES (NULL, NULL, NULL, '*')"
# A write that touched more calls than this, and a quarter of all (a reprice), rebuilds everything instead.
REBUILD_OVER = 20_000

# rebuild writes its links out this many at a time: memory flat however many calls (a
# first import's peak was here, +9 MB at 84,000 calls with 50,000), at no measurable cost.
GATHER_LINKS = 4_000


def _answer(tools: str) -> str:
    """SQL: the call whose `tools` column this is requested no tool (an answer): it ends its
    turn, when it has no run / prompt id."""
    return f"({tools} IS NULL OR {tools} = '' OR {tools} = '[]')"


# A call as the walks read it: what places it in its turn (_turns_walk), then what its
# unread writes need (_walk_thread's _link_next).
_TURN_CALL = f"rowid, timestamp, coalesce(cache_read_tokens, 0), {_answer('tools')}, coalesce(run_id, prompt_id)"
_CALL = f"""{_TURN_CALL}, agent, model, speed, inference_geo, coalesce(input_tokens, 0),
           coalesce(cache_write_5m_tokens, 0), coalesce(cache_write_1h_tokens, 0)"""
_THREAD = "session_id IS ? AND agent_id IS ? AND is_sidechain IS ?"
_LINK = "rowid, at, next_read, next_at, turn_row, turn_at, bucket, wkey, waste_5m, waste_1h"
_WASTE_ADD = f"""INSERT INTO cache_waste (bucket, wkey, wasted_5m, wasted_1h) VALUES (?, ?, ?, ?)
    ON CONFLICT (bucket, wkey) DO UPDATE SET {added(("wasted_5m", "wasted_1h"))}"""
_TURN = "turn_row, agent, session_id, agent_id, is_sidechain, turn_at, last_at, calls, cost, unpriced, actions, answer, heartbeats"


def _turn_sums(actions: str = "costhook_tool_actions(r.tools)", join: str = "") -> str:
    """SQL: a turn's row from its calls' links (l) and rows (r), and its first call's row
    (t); by turn_row. `actions`: a call's side-effecting tools (by default through
    costhook_tool_actions: _functions), `join` what that names besides."""
    return f"""SELECT l.turn_row, t.agent, t.session_id, t.agent_id, t.is_sidechain, l.turn_at, max(l.at), count(*),
           coalesce(sum(r.cost_nanousd), 0), sum(r.cost_nanousd IS NULL), sum({actions}),
           sum(CASE WHEN {_answer("r.tools")} THEN coalesce(r.output_tokens, 0) ELSE 0 END),
           sum(CASE WHEN r.is_heartbeat THEN 1 ELSE 0 END)
    FROM links l JOIN requests r ON r.rowid = l.rowid JOIN requests t ON t.rowid = l.turn_row{join}"""


_TURN_SUMS = _turn_sums()


def refresh(conn: sqlite3.Connection) -> None:
    """Recompute the links and sums of the threads written since the last refresh. Inside
    the writing transaction; one query when nothing is due. Each thread is walked from the
    call before its first change, and only until its links are again what was stored: the
    cost follows the change, not the thread's length.
    Long: read what is stored, walk each thread, then move the sums by the difference."""
    dirty = conn.execute("SELECT session_id, agent_id, is_sidechain, min(since), max(since = '*'), count(*), "
                         "count(gone), max(since), count(touched) FROM links_dirty "
                         "GROUP BY session_id, agent_id, is_sidechain").fetchall()
    if not dirty:
        return
    noted = sum(row[5] for row in dirty)
    if any(row[4] for row in dirty) or (noted > REBUILD_OVER and noted > conn.execute(
            "SELECT coalesce(max(rowid), 0) FROM requests").fetchone()[0] // 4):
        rebuild(conn)
        return
    old_links, new_links, turn_rows = [], [], set()
    if any(row[6] for row in dirty):  # calls deleted or replaced: their links go
        gone = [row[0] for row in conn.execute("SELECT gone FROM links_dirty WHERE gone IS NOT NULL")]
        for i in range(0, len(gone), 500):
            chunk = gone[i:i + 500]
            old_links += conn.execute(f"SELECT {_LINK} FROM links WHERE rowid IN ({', '.join('?' * len(chunk))})",
                                      chunk).fetchall()
    if any(row[8] for row in dirty):  # calls updated in place: their turns' sums may move
        turn_rows.update(row[0] for row in conn.execute(
            "SELECT l.turn_row FROM links_dirty d JOIN links l ON l.rowid = d.touched"))
    for sid, aid, side, since, _, _, _, last_since, _ in dirty:
        if since is None:  # only calls without a time: in no thread
            continue
        _walk_thread(conn, (sid, aid, side), since, last_since, old_links, new_links)
    waste = {}
    for sign, rows in ((-1, old_links), (1, new_links)):
        for link in rows:
            turn_rows.add(link[4])
            if link[7] is not None:
                sums = waste.setdefault((link[6], link[7]), [0, 0])
                sums[0] += sign * link[8]
                sums[1] += sign * link[9]
    # (each statement skipped when it has nothing to do: preparing one costs a hook ~0.1 M instructions)
    if old_links:
        conn.executemany("DELETE FROM links WHERE rowid = ?", [(link[0],) for link in old_links])
    if new_links:
        conn.executemany(f"INSERT INTO links ({_LINK}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", new_links)
    moved = [(*key, w5, w1) for key, (w5, w1) in waste.items() if w5 or w1]
    if moved:
        conn.executemany(_WASTE_ADD, moved)
    if turn_rows:
        _functions(conn)
    for turn_row in turn_rows:
        _refresh_turn(conn, turn_row)
    conn.execute("DELETE FROM links_dirty")


_OLD = "l.rowid, l.at, l.next_read, l.next_at, l.turn_row, l.turn_at, l.bucket, l.wkey, l.waste_5m, l.waste_1h"


def _walk_thread(conn: sqlite3.Connection, thread: tuple, since: str, last_since: str, old_links: list,
                 new_links: list) -> None:
    """Walk one thread from the call before `since`, adding to `old_links` / `new_links`
    the stored and the new links of each call whose links changed; stop at the first call
    past `last_since` (no change after it) whose links come out as stored, with its
    predecessor's: from there on the walk would only repeat what is stored."""
    calls = conn.execute(f"SELECT r.{_CALL}, {_OLD} FROM requests r LEFT JOIN links l ON l.rowid = r.rowid WHERE {_THREAD} "
                         "AND r.timestamp < ? ORDER BY r.timestamp DESC, r.rowid DESC LIMIT 1", (*thread, since)).fetchall()
    turn = None
    if calls:
        turn = conn.execute("SELECT l.turn_row, l.turn_at, coalesce(r.run_id, r.prompt_id) FROM links l "
                            "JOIN requests r ON r.rowid = l.turn_row WHERE l.rowid = ?", (calls[0][0],)).fetchone()
        if turn is None:  # (cannot happen while the triggers run: the whole thread then)
            calls, since = [], ""
    rows = conn.execute(f"SELECT r.{_CALL}, {_OLD} FROM requests r LEFT JOIN links l ON l.rowid = r.rowid WHERE {_THREAD} "
                        "AND r.timestamp >= ? ORDER BY r.timestamp, r.rowid", (*thread, since))
    n = len(_LINK.split(", "))
    last = prev = None
    closed, key = False, None
    for row in (*calls, *rows) if not calls else _chain(calls, rows):
        call, old = row[:-n], row[-n:]
        rowid, ts, read, answer, k = call[:5]
        if last is None and turn is not None:
            turn_row, turn_at, key = turn
        elif last is None or closed or (k is not None and key != k):
            turn_row, turn_at, key = rowid, ts, k
        else:
            turn_row, turn_at = last[0][4], last[0][5]
        if last is not None:
            _link_next(last[0], prev, read, ts)
            link, was = last
            same = tuple(link) == tuple(was)
            if ts > last_since and same and (turn_row, turn_at) == (old[4], old[5]):
                return  # (this call's links, and so all after it, stay as stored)
            if not same:
                if was[0] is not None:
                    old_links.append(tuple(was))
                new_links.append(tuple(link))
        last = ([rowid, ts, None, None, turn_row, turn_at, None, None, 0, 0], old)
        prev = call
        closed = answer and k is None
    if last is not None and tuple(last[0]) != tuple(last[1]):
        if last[1][0] is not None:
            old_links.append(tuple(last[1]))
        new_links.append(tuple(last[0]))


def _chain(first: list, rest):
    yield from first
    yield from rest


def _refresh_turn(conn: sqlite3.Connection, turn_row: int) -> None:
    """A turn's row in `turns` from its calls' links (gone when it has none left)."""
    row = conn.execute(f"{_TURN_SUMS} WHERE l.turn_row = ? GROUP BY l.turn_row", (turn_row,)).fetchone()
    if row is None:
        conn.execute("DELETE FROM turns WHERE turn_row = ?", (turn_row,))
    else:
        conn.execute(f"INSERT OR REPLACE INTO turns ({_TURN}) VALUES ({', '.join('?' * 13)})", tuple(row))


def _functions(conn: sqlite3.Connection) -> None:
    """The Python functions the SQL here calls, on `conn`."""
    conn.create_function("costhook_tool_actions", 1, tool_actions, deterministic=True)
    conn.create_function("costhook_bucket", 1, bucket_of, deterministic=True)
    conn.create_function("costhook_waste_key", 5, _waste_key, deterministic=True)


def rebuild(conn: sqlite3.Connection) -> None:
    """Links, cache_waste and turns from the calls alone (the migration, a first import's
    file, a write that touched most of the history; and what the tests compare `refresh`
    with). One pass in (session, time) order finds each call's next call and turn
    (_turns_walk), gathered in a temporary table (written in session order, every page of
    `links` would be rewritten again and again); SQL adds the rest from the rows, in key
    order: the unread writes (_WASTE, refresh's _link_next in SQL), their sums and the
    turns' (_turn_sums). ~20 % quicker than all of it in Python."""
    conn.execute("SAVEPOINT links_rebuild")
    _functions(conn)
    for table in ("links", "links_dirty", "cache_waste", "turns"):
        conn.execute(f"DELETE FROM {table}")
    conn.execute("CREATE TEMP TABLE links_new (rowid_ INTEGER PRIMARY KEY, next_read INTEGER, next_at TEXT, turn_row INTEGER, "
                 "turn_at TEXT)")
    out, threads, session = [], {}, object()
    for row in conn.execute(f"SELECT session_id, agent_id, is_sidechain, {_TURN_CALL} FROM requests "
                            "WHERE timestamp IS NOT NULL ORDER BY session_id, timestamp, rowid"):
        if row[0] != session:
            for calls in threads.values():
                _turns_walk(calls, out)
            threads, session = {}, row[0]
            if len(out) > GATHER_LINKS:
                conn.executemany("INSERT INTO temp.links_new VALUES (?, ?, ?, ?, ?)", out)
                out = []
        threads.setdefault(row[:3], []).append(row[3:])
    for calls in threads.values():
        _turns_walk(calls, out)
    conn.executemany("INSERT INTO temp.links_new VALUES (?, ?, ?, ?, ?)", out)
    conn.execute(f"""INSERT INTO links ({_LINK})
        SELECT rowid_, timestamp, next_read, next_at, turn_row, turn_at, CASE WHEN waste THEN costhook_bucket(timestamp) END,
               CASE WHEN waste THEN costhook_waste_key(agent, model, speed, inference_geo, {_BAND}) END,
               CASE WHEN waste THEN w5 ELSE 0 END, CASE WHEN waste THEN w1 ELSE 0 END
        FROM (SELECT n.*, r.timestamp, r.agent, r.model, r.speed, r.inference_geo, w5, w1, {_PROMPT} AS prompt,
                     {_WASTE} AS waste
              FROM temp.links_new n JOIN (SELECT rowid AS rowid_, timestamp, agent, model, speed, inference_geo,
                                                 input_tokens, cache_read_tokens, coalesce(cache_write_5m_tokens, 0) AS w5,
                                                 coalesce(cache_write_1h_tokens, 0) AS w1 FROM requests) r USING (rowid_)
              ORDER BY rowid_)""")
    conn.execute("""INSERT INTO cache_waste (bucket, wkey, wasted_5m, wasted_1h)
        SELECT bucket, wkey, sum(waste_5m), sum(waste_1h) FROM links WHERE wkey IS NOT NULL GROUP BY bucket, wkey
        HAVING sum(waste_5m) != 0 OR sum(waste_1h) != 0""")
    # (each distinct tool list's actions once: a Python function called per call was ~40 %
    # of this statement's time)
    conn.execute("CREATE TEMP TABLE tool_actions (tools PRIMARY KEY, actions INTEGER)")
    conn.execute("INSERT INTO temp.tool_actions SELECT tools, costhook_tool_actions(tools) "
                 "FROM (SELECT DISTINCT tools FROM requests WHERE tools IS NOT NULL)")
    conn.execute(f"INSERT INTO turns ({_TURN}) "
                 f"{_turn_sums('coalesce(a.actions, 0)', ' LEFT JOIN temp.tool_actions a ON a.tools = r.tools')} "
                 "GROUP BY l.turn_row")
    conn.execute("DROP TABLE temp.tool_actions")
    conn.execute("DROP TABLE temp.links_new")
    conn.execute("RELEASE links_rebuild")


# _link_next's rule in SQL, over a call's row (w5, w1: its cache writes, coalesced) and
# its next call's cache reads (next_read: NULL for the thread's last call).
_PROMPT = "coalesce(input_tokens, 0) + w5 + w1 + coalesce(cache_read_tokens, 0)"
_BAND = band_sql("prompt")
_WASTE = "next_read IS NOT NULL AND (w5 != 0 OR w1 != 0) AND next_read <= coalesce(cache_read_tokens, 0)"


def _turns_walk(calls: list, out: list) -> None:
    """Add to `out` [rowid, next_read, next_at, turn_row, turn_at] of each of a thread's
    calls in order (rowid, time, cache reads, answer, run / prompt id: see _CALL): as
    _walk_thread finds them, from the thread's first call."""
    last, closed, key = None, False, None
    for rowid, ts, read, answer, k in calls:
        if last is None or closed or (k is not None and key != k):
            # A new turn after an answer, or when the run / prompt id changes (views/calls.py).
            turn_row, turn_at, key = rowid, ts, k
        else:
            turn_row, turn_at = last[3], last[4]
        if last is not None:
            last[1], last[2] = read, ts
        last = [rowid, None, None, turn_row, turn_at]
        out.append(last)
        closed = answer and k is None


def _link_next(link: list, call: tuple, next_read: int, next_at: str) -> None:
    """Set a call's next call, and the cache writes it left unread: those of a call whose
    next call read no more from the cache than it did (views/cache.py CACHE_RULE)."""
    link[2], link[3] = next_read, next_at
    read, w5, w1 = call[2], call[10], call[11]
    if (w5 or w1) and next_read <= read:
        prompt = call[9] + w5 + w1 + read
        band = sum(1 for bound in PRICE_BANDS if prompt > bound)
        link[6] = bucket_of(call[1])
        link[7] = _waste_key(call[5], call[6], call[7], call[8], band)
        link[8], link[9] = w5, w1


def _waste_key(agent, model, speed, inference_geo, band: int) -> str:
    """cache_waste's price key: what pricing the unread writes again needs (views/cache.py)."""
    return jsontext.dumps([agent, model, speed, inference_geo, band], separators=(",", ":"))
