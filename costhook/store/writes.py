"""Every write to costhook's tables: calls, sessions, tool calls, cursors, alerts, cron.

Each write is idempotent (stable unique keys) and runs inside the caller's
`db.transaction`. Standard library only (the hook writes through this module).
"""

import sqlite3

from costhook import jsontext
from costhook.store.db import in_lists, savepoint, storable, transaction
from costhook.store.rollup import PRICE_DIM, SpendDelta
from costhook.timeframe import now_iso
from costhook.usage import UNKNOWN_SUBAGENT, merge_call, tool_names

# ----------------------------------------------------------------------- requests ----


def merge_requests(conn: sqlite3.Connection, records: dict, price) -> int:
    """Upsert call records (key -> record), merging with stored sightings. Returns rows changed.

    `price(record) -> (cost_nanousd | None, cost_source)` prices the merged record.
    Must run inside `transaction(conn)`.
    """
    if not records:
        return 0
    try:
        with savepoint(conn, "merge_requests"):
            return _merge_requests(conn, records, price)
    except UnicodeEncodeError:
        # Text SQLite cannot store (see storable) is rare: clean it only when a write has
        # refused it, rather than inspecting every value of every call.
        records = {storable(key): _storable_record(record) for key, record in records.items()}
        with savepoint(conn, "merge_requests"):
            return _merge_requests(conn, records, price)


def _merge_requests(conn: sqlite3.Connection, records: dict, price) -> int:
    delta = SpendDelta()
    records = _fold_replays(conn, records, delta)
    existing = {row["key"]: row for row in _select_in(conn, "key", list(records))}
    writes = {}  # column tuple -> rows, so each shape is written with one executemany
    for key, record in records.items():
        old = existing.get(key)
        merged, tools = stored_row(merge_call(old, record) if old else record, price)
        if old is not None and all(old.get(k) == v for k, v in merged.items()):
            continue
        writes.setdefault(tuple(merged), []).append(tuple(merged.values()))
        if old is not None:
            delta.add(old, -1)
        delta.add(merged, +1, tools)
    changed = _insert_rows(conn, writes, "INSERT OR REPLACE")
    delta.write(conn)
    return changed


def stored_row(record: dict, price, *, reuse: bool = False) -> tuple[dict, list]:
    """The `requests` row for a (merged) call record: tools as JSON text, priced.
    Returns the row and the tool list. `reuse`: the caller has no further use for the
    record, which becomes the row (a copy less per call: an import makes 84,000)."""
    row = record if reuse else dict(record)
    tools = row.get("tools") or []
    row["tools"] = jsontext.dumps(tools) if tools else "[]"
    row["cost_nanousd"], row["cost_source"] = price(row)
    return row, tools


def record_of(row: dict) -> dict:
    """The call record a stored_row was made from (its tools as a list, not priced)."""
    record = dict(row)
    del record["cost_nanousd"], record["cost_source"]
    record["tools"] = tool_names(record["tools"])
    return record


def reprice_calls(conn: sqlite3.Connection, price, *, since: str | None = None, models: list | None = None,
                  dry_run: bool = False) -> dict:
    """Price stored calls again with `price`, handed each stored row whole (every column,
    tools as their JSON text: what stored_row hands it for a merged call), for calls at or after `since` (UTC ISO) of
    the `models` given (exact stored spellings; None: all). Returns {"examined": calls
    looked at, "models": {model: {"calls", "newly_priced", "now_unpriced", "before_nanousd",
    "after_nanousd"}}} over the calls whose cost or cost_source changed (before/after: the
    sums of their costs, an unpriced call counting 0). Opens its own transaction.

    First a read-only pass finds the calls whose price changes (no lock held: hooks keep
    writing); then one transaction reads those rows again, prices them again (a hook may
    have merged a new sighting meanwhile), updates them and moves their spend in the
    rollup by exactly the difference (old row out, new row in, as merge_requests does).
    A second run finds nothing to change. `dry_run`: the first pass only, nothing written.
    """
    where, args = ["1"], []
    if since is not None:
        where.append("timestamp >= ?")
        args.append(since)
    if models is not None:
        if not models:
            return {"examined": 0, "models": {}}
        where.append(f"model IN ({','.join('?' * len(models))})")
        args += list(models)
    summary, candidates, examined = {}, [], 0
    for row in _rows(conn, f"SELECT * FROM requests WHERE {' AND '.join(where)}", args):
        examined += 1
        new = _repriced(row, price)
        if new is not None:
            candidates.append(row["key"])
            if dry_run:
                _count_change(summary, row, new)
    if dry_run or not candidates:
        return {"examined": examined, "models": summary}
    candidates.sort()  # the primary key's order: each chunk reads and updates neighbouring pages
    with transaction(conn):
        for marks, chunk in in_lists(candidates):
            delta, updates = SpendDelta(), []
            for row in _rows(conn, f"SELECT * FROM requests WHERE key IN ({marks})", chunk):
                new = _repriced(row, price)
                if new is None:
                    continue
                updates.append((new["cost_nanousd"], new["cost_source"], row["key"]))
                tools = tool_names(row["tools"])
                delta.add(row, -1, tools)
                delta.add(new, +1, tools)
                _count_change(summary, row, new)
            conn.executemany("UPDATE requests SET cost_nanousd = ?, cost_source = ? WHERE key = ?", updates)
            delta.write(conn)
    return {"examined": examined, "models": summary}


def _rows(conn: sqlite3.Connection, sql: str, args):
    """The rows of a query as dicts (without sqlite3.Row: a reprice reads every call)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    cursor.execute(sql, args)
    names = [d[0] for d in cursor.description]
    for values in cursor:
        yield dict(zip(names, values))


def _repriced(row: dict, price) -> dict | None:
    """The row with its new cost and cost_source when pricing it again changes them, else
    None. The pricer gets the stored row whole, as stored_row hands it a merged call: every
    column (tools as their JSON text), so a column added later reaches it unchanged."""
    cost, source = price(dict(row))
    if cost == row["cost_nanousd"] and source == row["cost_source"]:
        return None
    return {**row, "cost_nanousd": cost, "cost_source": source}


def _count_change(summary: dict, old: dict, new: dict) -> None:
    entry = summary.setdefault(old.get("model") or "", {
        "calls": 0, "newly_priced": 0, "now_unpriced": 0, "before_nanousd": 0, "after_nanousd": 0})
    entry["calls"] += 1
    entry["newly_priced"] += old["cost_nanousd"] is None and new["cost_nanousd"] is not None
    entry["now_unpriced"] += old["cost_nanousd"] is not None and new["cost_nanousd"] is None
    entry["before_nanousd"] += old["cost_nanousd"] or 0
    entry["after_nanousd"] += new["cost_nanousd"] or 0


# Columns merge_requests keeps from the first sighting only; a later sighting fills them
# where they are still empty (an OpenClaw call seen by the hook first, then in the store).
FILL_COLUMNS = ("session_key", "host_agent", "run_id", "provider", "session_kind", "ack_only", "message_id", "request_id")


def write_calls(conn: sqlite3.Connection, calls: dict, price, sessions: dict | None = None, *, agent: str) -> int:
    """Merge call records (and {session id: facts} of `agent`'s sessions) into costhook's
    database; returns rows changed. Inside a transaction."""
    changed = merge_requests(conn, calls, price) if calls else 0
    if calls:
        fill_empty_columns(conn, calls)
    for session_id, facts in (sessions or {}).items():
        if session_id:
            fill_session(conn, session_id, agent=agent, **{k: v for k, v in facts.items() if v is not None})
    return changed


def fill_empty_columns(conn: sqlite3.Connection, calls: dict) -> None:
    """Set the FILL_COLUMNS a stored call still lacks from these records (key -> record)."""
    for key, record in calls.items():
        values = [(name, record[name]) for name in FILL_COLUMNS if record.get(name) is not None]
        if not values:
            continue
        sets = ", ".join(f"{name} = coalesce({name}, ?)" for name, _ in values)
        empty = " OR ".join(f"{name} IS NULL" for name, _ in values)
        conn.execute(f"UPDATE requests SET {sets} WHERE key = ? AND ({empty})", [v for _, v in values] + [key])


def insert_new_requests(conn: sqlite3.Connection, shapes: dict, spend: "SpendDelta") -> int:
    """INSERT rows known to be new ({column tuple: [value tuples]}) and their rollup delta;
    returns the count. Raises UnicodeEncodeError, having written nothing, when SQLite
    refuses some text (see storable)."""
    with savepoint(conn, "insert_new_requests"):
        count = _insert_rows(conn, shapes, "INSERT")
        spend.write(conn)
    return count


def _insert_rows(conn: sqlite3.Connection, shapes: dict, verb: str) -> int:
    """`verb` (INSERT, INSERT OR REPLACE) the rows of each column shape with one executemany."""
    for columns, rows in shapes.items():
        conn.executemany(f"{verb} INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
    return sum(len(rows) for rows in shapes.values())


def stored_ids(conn: sqlite3.Connection, keys: list, message_ids: list) -> tuple[set, set]:
    """Which of `keys` and `message_ids` the requests table already holds."""
    return _present(conn, "key", keys), _present(conn, "message_id", message_ids)


def _present(conn: sqlite3.Connection, column: str, values: list) -> set:
    found = set()
    for marks, chunk in in_lists(values):
        found.update(row[0] for row in conn.execute(f"SELECT DISTINCT {column} FROM requests WHERE {column} IN ({marks})", chunk))
    return found


def _storable_record(record: dict) -> dict:
    return {
        name: [storable(v) for v in value] if isinstance(value, list) else storable(value)
        for name, value in record.items()
    }


def _select_in(conn: sqlite3.Connection, column: str, values: list, extra: str = "") -> list[dict]:
    rows = []
    for marks, chunk in in_lists(values):
        rows += [dict(row) for row in conn.execute(f"SELECT * FROM requests WHERE {column} IN ({marks}) {extra}", chunk)]
    return rows


def _fold_replays(conn: sqlite3.Connection, records: dict, delta: "SpendDelta") -> dict:
    """One row per Claude Code response, however many requestIds it was seen under.

    A sidechain replays a call of its parent (`/btw` side questions, forks) with the same
    `message.id` and another `requestId`: one response, billed once. All sightings of a
    message.id fold into the row of the main-thread copy (else the one already stored,
    else the first seen: so the result does not depend on how the lines were batched);
    rows stored under the other keys are removed, their spend too.
    """
    batch = {}
    for record in records.values():
        if record.get("agent") == "claude" and record.get("message_id"):
            batch.setdefault(record["message_id"], []).append(record)
    stored = {}
    for row in _select_in(conn, "message_id", list(batch), "AND agent = 'claude'"):
        stored.setdefault(row["message_id"], []).append(row)
    out = dict(records)
    for message_id, sightings in batch.items():
        rows = stored.get(message_id, [])
        if len({s["key"] for s in sightings} | {r["key"] for r in rows}) == 1:
            continue
        stored_keys = {r["key"] for r in rows}
        seen = {s["key"]: i for i, s in enumerate(sightings)}
        main = min(sightings + rows, key=lambda s: (bool(s.get("is_sidechain")), s["key"] not in stored_keys,
                                                    seen.get(s["key"], 0), s["key"]))
        folded = None
        for sighting in sightings:
            out.pop(sighting["key"], None)
            folded = merge_call(folded, sighting) if folded else dict(sighting)
        for row in rows:
            if row["key"] != main["key"]:
                conn.execute("DELETE FROM requests WHERE key = ?", (row["key"],))
                delta.add(row, -1)
                folded = merge_call(folded, row)
        folded["key"], folded["request_id"] = main["key"], main.get("request_id")
        out[main["key"]] = folded
    return out


# The rollup rows a sub-agent's name moves (name_subagents).
NAMES_MOVE = ("agent", PRICE_DIM)


def name_subagents(conn: sqlite3.Connection, names: dict, unnamed, moved: "SpendDelta | None" = None) -> int:
    """Give sub-agents their type. `names`: (session id, agent id) -> type, as a parent's
    Task/Agent call named them (the first name stored stays); `unnamed`: (session id,
    agent id) of calls just written as UNKNOWN_SUBAGENT, which take a name stored before.
    Their rows, and the rollup, move from UNKNOWN_SUBAGENT to the name; with `moved`, the
    rollup's move is added to it instead, for the caller to write (only=NAMES_MOVE).
    Returns rows renamed."""
    for (session_id, agent_id), agent_type in names.items():
        conn.execute("INSERT OR IGNORE INTO subagents (session_id, agent_id, agent_type) VALUES (?, ?, ?)",
                     (storable(session_id), storable(agent_id), storable(agent_type)))
    pairs = set(names) | set(unnamed)
    if not pairs:
        return 0
    delta, renamed = SpendDelta() if moved is None else moved, 0
    for session_id, agent_id in pairs:
        found = conn.execute("SELECT agent_type FROM subagents WHERE session_id = ? AND agent_id = ?",
                             (storable(session_id), storable(agent_id))).fetchone()
        if found is None:
            continue
        rows = [dict(row) for row in conn.execute(
            "SELECT * FROM requests WHERE session_id = ? AND agent_id = ? AND agent_type = ?",
            (storable(session_id), storable(agent_id), UNKNOWN_SUBAGENT))]
        for row in rows:
            delta.add(row, -1)
            delta.add({**row, "agent_type": found[0]}, +1)
        if rows:
            conn.execute("UPDATE requests SET agent_type = ? WHERE session_id = ? AND agent_id = ? AND agent_type = ?",
                         (found[0], storable(session_id), storable(agent_id), UNKNOWN_SUBAGENT))
            renamed += len(rows)
    if moved is None:
        delta.write(conn, only=NAMES_MOVE)
    return renamed


# ----------------------------------------------------------------------- sessions ----


def upsert_session(conn: sqlite3.Connection, session_id: str, **fields) -> None:
    """Record facts about a session from a hook: non-null values replace stored ones,
    except `started_at`, which keeps the earliest."""
    _update_sessions(conn, {session_id: fields}, "{name} = ?")


def fill_session(conn: sqlite3.Connection, session_id: str, **fields) -> None:
    """Like upsert_session, but only sets fields that are still empty (transcript-derived facts)."""
    _update_sessions(conn, {session_id: fields}, "{name} = coalesce({name}, ?)")


def fill_sessions(conn: sqlite3.Connection, facts: dict) -> None:
    """fill_session of each session of `facts` ({session id: fields}), with one statement
    per kind of statement (a first import writes thousands at the end)."""
    _update_sessions(conn, facts, "{name} = coalesce({name}, ?)")


def upsert_sessions(conn: sqlite3.Connection, facts: dict) -> None:
    """upsert_session of each session of `facts` ({session id: fields})."""
    _update_sessions(conn, facts, "{name} = ?")


def _update_sessions(conn: sqlite3.Connection, facts: dict, assign: str) -> None:
    """Create each session's row if needed, then set its non-null fields in one statement."""
    if not facts:
        return  # (no statement to prepare: a hook often has none)
    made, updates = [], {}
    for session_id, fields in facts.items():
        fields = {k: storable(v) for k, v in fields.items() if v is not None}
        session_id = storable(session_id)
        made.append((session_id, fields.get("agent", "claude")))
        values = []
        for name, value in fields.items():
            values += [value, value] if name == "started_at" else [value]
        if fields:
            updates.setdefault(tuple(fields), []).append((*values, session_id))
    conn.executemany("INSERT OR IGNORE INTO sessions (session_id, agent) VALUES (?, ?)", made)
    for names, rows in updates.items():
        sets = ["started_at = CASE WHEN started_at IS NULL OR started_at > ? THEN ? ELSE started_at END"
                if name == "started_at" else assign.format(name=name) for name in names]
        conn.executemany(f"UPDATE sessions SET {', '.join(sets)} WHERE session_id = ?", rows)


# ----------------------------------------------------------------------- tool calls --


def record_tool_call(conn: sqlite3.Connection, call: dict) -> None:
    """One row per tool call; a second report of the same tool_use_id updates it."""
    call = {name: storable(value) for name, value in call.items()}
    columns = list(call)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "tool_use_id")
    conn.execute(
        f"INSERT INTO tool_calls ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT(tool_use_id) DO UPDATE SET {updates}",
        [call[c] for c in columns],
    )


# ----------------------------------------------------------------------- cursors -----


def get_cursor(conn: sqlite3.Connection, path: str) -> dict | None:
    row = conn.execute("SELECT * FROM cursors WHERE path = ?", (path,)).fetchone()
    return dict(row) if row else None


def set_cursor(conn: sqlite3.Connection, cursor: dict) -> None:
    columns = list(cursor)
    conn.execute(
        f"INSERT OR REPLACE INTO cursors ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [cursor[c] for c in columns],
    )


def advance_cursor(conn: sqlite3.Connection, path: str, offset: int, *, size, inode, head, state) -> None:
    """Record that the file at `path` has been read up to byte `offset`, with the reader's
    `state` there (the active skill, ...), unless another process already got further in
    the same file (same inode): then its cursor stands whole — a cursor never goes back, and
    neither do the state and the head (which describes its own offset) read with it."""
    current = get_cursor(conn, path)
    if current and current.get("inode") == inode and (current.get("offset") or 0) > offset:
        return
    set_cursor(conn, {"path": path, "offset": offset, "size": size, "inode": inode, "head": head, "state": state,
                      "updated_at": now_iso()})


# A cursor's `head` is `<head_id of the file's first bytes>|<mark of the bytes before its
# offset>`: what tells a file replaced or rewritten in place from one that has only grown,
# without keeping any of its bytes (they can be the user's prompt).


def mark(tail: bytes) -> str:
    """What a cursor keeps of the bytes before its offset: a file rewritten in place (same
    inode, same beginning, at least as long) no longer has them there, and is read again.

    The bytes as one big number modulo the prime 2**61-1 (a polynomial hash: any change
    but a multiple of the prime shows): no import (hashlib would cost the hook ~3 ms)."""
    return f"{len(tail)}:{int.from_bytes(tail, 'big') % _PRIME:x}"


_PRIME = (1 << 61) - 1


def head_id(head: bytes) -> str:
    """What a cursor keeps of a file's first bytes (a replaced file begins otherwise): their
    mark, never the bytes. A transcript's first line can be the user's prompt or the
    conversation's summary, and costhook stores no content (cursors once kept these bytes
    as hex: m015 turned them into this)."""
    return mark(head)


def same_head(stored: str, head: bytes) -> bool:
    """Whether a file that begins with `head` still begins as when `stored` (its head_id)
    was taken: a file that has grown since, does. No head (a cursor older than heads) is
    trusted, as it always was."""
    if not stored:
        return True
    length, colon, _ = stored.partition(":")
    return bool(colon) and length.isdigit() and int(length) <= len(head) and mark(head[: int(length)]) == stored


# ----------------------------------------------------------------------- alerts ------


def record_alert(conn: sqlite3.Connection, alert: dict) -> bool:
    """Store a budget threshold reached; False when the same budget, period, threshold and
    limit already fired (each fires once, however many hooks race)."""
    columns = list(alert)
    cursor = conn.execute(
        f"INSERT OR IGNORE INTO alerts ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [alert[c] for c in columns],
    )
    return bool(cursor.rowcount)


def claim_alerts(conn: sqlite3.Connection, claim: str, stale_before: str, limit: int) -> list:
    """Mark up to `limit` undelivered alerts as being sent under `claim` (so two notifiers
    never send one twice) and return their (id, message). Alerts created before
    `stale_before` are expired instead: fired before any target existed, or while sending
    was broken, they are not replayed."""
    conn.execute("UPDATE alerts SET notified_at = 'expired' WHERE notified_at IS NULL AND created_at < ?", (stale_before,))
    conn.execute(
        """UPDATE alerts SET notified_at = ? WHERE id IN
           (SELECT id FROM alerts WHERE notified_at IS NULL ORDER BY id LIMIT ?)""",
        (claim, limit),
    )
    return conn.execute("SELECT id, message FROM alerts WHERE notified_at = ? ORDER BY id", (claim,)).fetchall()


def alert_sent(conn: sqlite3.Connection, alert_id: int, when: str) -> None:
    conn.execute("UPDATE alerts SET notified_at = ? WHERE id = ?", (when, alert_id))


def alert_failed(conn: sqlite3.Connection, alert_id: int, when: str) -> None:
    """No target took the alert: marked `failed:<when>`, so it is neither left claimed nor
    sent again (a late copy of a budget alert is noise; errors.log says why it failed)."""
    conn.execute("UPDATE alerts SET notified_at = ? WHERE id = ?", (f"failed:{when}", alert_id))


def release_stale_claims(conn: sqlite3.Connection, claimed_before_ns: int) -> int:
    """Claims (`sending:<pid>:<time_ns>`) made before `claimed_before_ns` belong to a
    notifier that died mid-send: back to unsent (claim_alerts then sends them, or expires
    them when they are old). Returns how many were released."""
    stale = []
    for alert_id, claim in conn.execute("SELECT id, notified_at FROM alerts WHERE notified_at LIKE 'sending:%'"):
        stamp = claim.rsplit(":", 1)[-1]
        if not stamp.isdigit() or int(stamp) < claimed_before_ns:
            stale.append(alert_id)
    for placeholders, ids in in_lists(stale):
        conn.execute(f"UPDATE alerts SET notified_at = NULL WHERE id IN ({placeholders})", ids)
    return len(stale)


# ----------------------------------------------------------------------- cron --------


def disable_cron_job(conn: sqlite3.Connection, job_id: str) -> None:
    conn.execute("UPDATE cron_jobs SET enabled = 0 WHERE job_id = ?", (job_id,))


def record_cron_job(conn: sqlite3.Connection, row: dict, *, only_fill: bool = False) -> None:
    """Insert a cron job row, or update it: new non-null values win, or with `only_fill`
    only the columns still empty are set (and updated_at is left alone)."""
    if only_fill:
        row = {k: v for k, v in row.items() if v is not None and k != "updated_at"}
    columns = list(row)
    keep = "coalesce({c}, excluded.{c})" if only_fill else "coalesce(excluded.{c}, {c})"
    updates = ", ".join(f"{c} = " + keep.format(c=c) for c in columns if c != "job_id") or "job_id = job_id"
    conn.execute(
        f"INSERT INTO cron_jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT(job_id) DO UPDATE SET {updates}",
        [row[c] for c in columns],
    )


CRON_RUN_COLUMNS = ("run_id", "agent", "host_agent", "job_id", "job_name", "session_id", "session_key", "status",
                    "completion_status", "started_at", "duration_ms", "model", "provider", "input_tokens",
                    "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens", "is_heartbeat",
                    "cron_run_id", "error", "session_target")


def record_cron_run(conn: sqlite3.Connection, row: dict) -> None:
    """Insert a cron run, or fill in what an earlier source did not know. Inside a transaction."""
    columns = [c for c in CRON_RUN_COLUMNS if c in row]
    updates = ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in columns if c != "run_id")
    conn.execute(
        f"INSERT INTO cron_runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT(run_id) DO UPDATE SET {updates}",
        [row[c] for c in columns],
    )


def refresh_cron_runs(conn: sqlite3.Connection, run_ids=None) -> None:
    """Mark runs whose session left no rows (transcript pruned, or no model call): their
    cost is unknown; fill job names and heartbeat flags learnt since. Inside a transaction."""
    where, args = "", []
    if run_ids:
        where = f"AND run_id IN ({','.join('?' * len(run_ids))})"
        args = list(run_ids)
    conn.execute(
        f"""UPDATE cron_runs SET transcript_missing =
              CASE WHEN session_id IS NULL THEN NULL
                   WHEN EXISTS (SELECT 1 FROM requests r WHERE r.session_id = cron_runs.session_id) THEN 0
                   ELSE 1 END,
              job_name = coalesce(job_name, (SELECT name FROM cron_jobs j WHERE j.job_id = cron_runs.job_id)),
              is_heartbeat = coalesce(is_heartbeat, (SELECT kind = 'heartbeat' FROM cron_jobs j WHERE j.job_id = cron_runs.job_id))
            WHERE 1 {where}""",
        args,
    )


# ----------------------------------------------------------------------- sync folder -


def record_exports(conn: sqlite3.Connection, kind: str, versions: list) -> None:
    """Remember the version of each local row (kind: call | session | tool_call | cron_run)
    just written to a segment: `versions` is [(id, version)]. Inside a transaction."""
    conn.executemany("INSERT OR REPLACE INTO sync_exports (kind, id, version) VALUES (?, ?, ?)",
                     [(kind, storable(i), storable(v)) for i, v in versions])


def record_segment(conn: sqlite3.Connection, segment: dict) -> bool:
    """A segment read into this database (or written by it), by content hash; False when
    that content was recorded already (a copy under another name). Inside a transaction."""
    columns = ("hash", "machine", "user", "path", "calls", "created_at", "imported_at")
    cursor = conn.execute(f"INSERT OR IGNORE INTO sync_segments ({', '.join(columns)}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          [storable(segment.get(c)) for c in columns])
    return bool(cursor.rowcount)


def record_sync_file(conn: sqlite3.Connection, row: dict) -> None:
    """What happened to one file of the sync folder (sync_files)."""
    columns = ("path", "machine", "size", "mtime_ns", "hash", "status", "reason", "seen_at")
    conn.execute(f"INSERT OR REPLACE INTO sync_files ({', '.join(columns)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 [storable(row.get(c)) for c in columns])


def forget_sync_skips(conn: sqlite3.Connection) -> None:
    """Files skipped by the last sync are looked at again by this one."""
    conn.execute("DELETE FROM sync_files WHERE status = 'skipped'")


# ----------------------------------------------------------------------- first import --


def merge_attached(conn: sqlite3.Connection, price, schema: str = "old") -> int:
    """Merge what was written to the attached database `schema` (by hooks, while a first
    import filled this one) into this one, as those writes would have met the import's
    rows in one database: calls through merge_requests (a call only the hooks saw goes in
    as it is, with its rollup), session facts over the transcript's, the further cursor,
    tool calls, alerts, cron rows and sub-agent names as they are (then every call of a
    named sub-agent takes its name, as name_subagents does). Returns the calls merged.
    Inside a transaction."""
    rows = [dict(row) for row in conn.execute(f"SELECT * FROM {schema}.requests")]
    stored_keys, stored_messages = stored_ids(conn, [r["key"] for r in rows], [r["message_id"] for r in rows if r["message_id"]])
    new, spend, records = {}, SpendDelta(), {}
    for row in rows:
        if row["key"] not in stored_keys and row["message_id"] not in stored_messages:
            new.setdefault(tuple(row), []).append(tuple(row.values()))
            spend.add(row, +1)
        else:
            records[row["key"]] = record_of(row)
    _insert_rows(conn, new, "INSERT")
    spend.write(conn)
    merge_requests(conn, records, price)
    for row in conn.execute(f"SELECT * FROM {schema}.sessions").fetchall():
        facts = {name: value for name, value in dict(row).items() if value is not None and name != "session_id"}
        upsert_session(conn, row["session_id"], **facts)
    for row in conn.execute(f"SELECT * FROM {schema}.cursors").fetchall():
        advance_cursor(conn, row["path"], row["offset"], size=row["size"], inode=row["inode"], head=row["head"], state=row["state"])
    tables = [r[0] for r in conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")]
    for table in tables:
        if table in ("requests", "spend", "price_groups", "sessions", "cursors", "links", "links_dirty", "cache_waste", "turns") \
                or table.startswith("sqlite_"):
            continue
        ours = {r[1] for r in conn.execute(f'PRAGMA main.table_info("{table}")')}
        columns = ", ".join(f'"{r[1]}"' for r in conn.execute(f'PRAGMA {schema}.table_info("{table}")') if r[1] in ours)
        if columns:
            conn.execute(f'INSERT OR REPLACE INTO main."{table}" ({columns}) SELECT {columns} FROM {schema}."{table}"')
    # Sub-agents the hooks saw unnamed, or named, meet the import's names and calls.
    pairs = {(r["session_id"], r["agent_id"]) for r in rows if r["agent_type"] == UNKNOWN_SUBAGENT}
    pairs.update(tuple(r) for r in conn.execute(f"SELECT session_id, agent_id FROM {schema}.subagents"))
    if pairs:
        name_subagents(conn, {}, pairs)
    return len(rows)
