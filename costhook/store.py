"""The SQLite database: opening it safely and the idempotent writes.

Standard library only (the hook imports this on every call). The schema itself lives in
migrations.py, which uses sqlite-utils and is imported only when a step is due.
"""

import fcntl
import json
import os
import sqlite3
import time

from costhook import paths
from costhook.usage import merge_call, tool_names

SCHEMA_VERSION = 5  # == len(migrations.MIGRATIONS); a test keeps them equal
BUSY_TIMEOUT_MS = 5000
INLINE_UPGRADE_BYTES = 4 << 20  # a database this small is upgraded at once, even by a hook
BULK_WAL_PAGES = 65536  # 256 MB of 4 KB pages: how far the WAL may grow during bulk_writes


class StoreError(Exception):
    """The database cannot be used (corrupt, wrong file, newer schema); message is for humans."""


class UpgradePending(StoreError):
    """An existing database needs schema steps; the caller chose not to wait for them."""


def connect(db_path=None, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, upgrade: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the database, migrated to the current schema.

    With `upgrade=False` a new (or small) database is still migrated, but a larger one that
    needs schema steps raises UpgradePending: a step may rewrite a million rows, which a
    hook on the agent's critical path must not wait for.
    Autocommit mode: writers use `transaction()` explicitly, readers never block writers (WAL).
    """
    path = paths.db_file(db_path)
    if not os.path.exists(path):
        paths.touch_private(path)
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            if not upgrade and 0 < version < SCHEMA_VERSION and os.path.getsize(path) > INLINE_UPGRADE_BYTES:
                raise UpgradePending(f"database {path} needs a schema upgrade (v{version} → v{SCHEMA_VERSION})")
            _migrate(conn, path)
    except UpgradePending:
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"cannot use database {path}: {exc}") from exc
    return conn


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema up to date under a lock file, so concurrent first hooks migrate once."""
    lock_path = path + ".migrate.lock"
    paths.touch_private(lock_path)
    fd = os.open(lock_path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        from costhook import migrations

        try:
            migrations.migrate(conn)
        except RuntimeError as exc:
            raise StoreError(str(exc)) from exc
    finally:
        os.close(fd)


class transaction:
    """`with transaction(conn):` — BEGIN IMMEDIATE … COMMIT, rolled back on any error.

    IMMEDIATE takes the write lock up front, so a read-merge-write inside cannot race
    another process doing the same (the busy timeout makes the second one wait).
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
        return False


class savepoint:
    """`with savepoint(conn, name):` inside a transaction — the block's writes are undone,
    and the error passes on, if it raises; the enclosing transaction stays open."""

    def __init__(self, conn: sqlite3.Connection, name: str):
        self.conn, self.name = conn, name

    def __enter__(self):
        self.conn.execute(f"SAVEPOINT {self.name}")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.conn.execute(f"ROLLBACK TO {self.name}")
        self.conn.execute(f"RELEASE {self.name}")
        return False


class bulk_writes:
    """`with bulk_writes(conn):` around a long run of write transactions (an import, a
    catch-up). SQLite's default checkpoints the WAL into the database every ~4 MB of
    commits, each with an fsync: on a first import that was a third of the wall time.
    Here the WAL may grow to BULK_WAL_PAGES first, and is checkpointed once at the end.
    Readers and other writers are unaffected; a crash leaves a WAL the next connection
    checkpoints."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.previous = self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_WAL_PAGES}")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(self.previous)}")
        try:  # TRUNCATE: the WAL file shrinks back too (it waits for readers, up to the busy timeout)
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:
            pass  # busy: a later commit checkpoints
        return False


def now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


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


def stored_row(record: dict, price) -> tuple[dict, list]:
    """The `requests` row for a (merged) call record: tools as JSON text, priced.
    Returns the row and the tool list."""
    row = dict(record)
    tools = row.get("tools") or []
    row["tools"] = json.dumps(tools) if tools else "[]"
    row["cost_nanousd"], row["cost_source"] = price(row)
    return row, tools


def record_of(row: dict) -> dict:
    """The call record a stored_row was made from (its tools as a list, not priced)."""
    record = dict(row)
    del record["cost_nanousd"], record["cost_source"]
    record["tools"] = tool_names(record["tools"])
    return record


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


def in_lists(values: list):
    """(placeholders, values) for `IN (...)` lists of at most 500 values: SQLite's limit on
    variables, and short statements."""
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        yield ",".join("?" * len(chunk)), chunk


def storable(value):
    """Text SQLite accepts: a lone surrogate (valid in JSON, not in UTF-8) would make the
    whole write fail and the transcript stall; it becomes U+FFFD instead."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    return value


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


# ----------------------------------------------------------------------- spend -------

SPEND_DIMENSIONS = (
    ("global", None),
    ("project", "project"),
    ("project_name", "project_name"),  # last part of the project path, for `project:<name>`
    ("session", "session_id"),
    ("model", "model"),
    ("agent", "agent_type"),
    ("skill", "skill"),
    ("cron", "cron_job"),
)
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")


SPEND_MEASURES = ("cost_nanousd", *TOKEN_COLUMNS, "tokens", "requests", "unpriced")
NO_TOOL = "(reasoning/answer)"  # the `tool` key of calls that requested no tool


def spend_bucket(timestamp: str | None) -> str:
    """The 15-minute UTC bucket of an ISO timestamp ("2026-11-18T09:47:12Z" → "2026-11-18T09:45")."""
    if not timestamp or len(timestamp) < 16:
        return "0000-00-00T00:00"
    return f"{timestamp[:14]}{int(timestamp[14:16]) // 15 * 15:02d}"


def share(value: int, index: int, parts: int) -> int:
    """The index-th of `parts` integer shares of `value`; remainders go to the first shares,
    so the shares add up exactly. The rule for splitting a call's cost and tokens between
    the tools it requested (rollup and row-level reports alike)."""
    return value // parts + (1 if index < value % parts else 0)


def split_share(values: list, index: int, parts: int) -> list:
    """`share` of cost and tokens; counts are not split: a call counts once for each tool
    it requested. `values` are in SPEND_MEASURES order."""
    if parts == 1:
        return values
    shared = len(SPEND_MEASURES) - 2
    return [share(v, index, parts) for v in values[:shared]] + values[shared:]


def _spend_values(row: dict) -> list:
    cost = row.get("cost_nanousd")
    tokens = [row.get(c) or 0 for c in TOKEN_COLUMNS]
    return [cost or 0, *tokens, sum(tokens), 1, int(cost is None)]


_DIMENSION_COLUMNS = tuple(column for _, column in SPEND_DIMENSIONS[1:])
_PROJECT_NAME = _DIMENSION_COLUMNS.index("project_name")  # derived, not a column of requests


def _spend_attributes(row: dict, tools=None) -> tuple:
    """What decides which rollup rows a request lands in: its bucket and dimension values.
    `tools`: the row's tool list, when the caller has it decoded already."""
    columns = [row.get(column) for column in _DIMENSION_COLUMNS]
    project = row.get("project")
    columns[_PROJECT_NAME] = os.path.basename(project.rstrip("/")) if project else None
    names = tool_names(row.get("tools")) if tools is None else tools
    return (spend_bucket(row.get("timestamp")), tuple(columns), tuple(names))


def _expand(attributes: tuple, values: list, only=None):
    bucket, columns, tools = attributes
    for (dim, _), key in zip(SPEND_DIMENSIONS, ("", *columns)):
        if key is not None and (only is None or dim in only):
            yield dim, key, bucket, values
    if only is None or "tool" in only:
        names = tools or (NO_TOOL,)
        for index, name in enumerate(names):
            yield "tool", name, bucket, split_share(values, index, len(names))


class SpendDelta:
    """Changes to the rollup. Requests are first summed by their attributes (a session's
    calls in one 15-minute bucket mostly share them), then expanded into dimensions and
    written with one statement per rollup row touched."""

    def __init__(self):
        self.groups = {}

    def add(self, row: dict, sign: int, tools=None) -> None:
        self._add(_spend_attributes(row, tools), _spend_values(row), sign)

    def add_groups(self, groups: dict) -> None:
        """Add another delta's groups (one computed where the rows were prepared)."""
        for attributes, values in groups.items():
            self._add(attributes, values, +1)

    def _add(self, attributes: tuple, values: list, sign: int) -> None:
        current = self.groups.get(attributes)
        if current is None:
            self.groups[attributes] = [sign * v for v in values]
        else:
            for i, v in enumerate(values):
                current[i] += sign * v

    def write(self, conn: sqlite3.Connection, only=None) -> None:
        rows = {}
        for attributes, values in self.groups.items():
            for dim, key, bucket, share in _expand(attributes, values, only):
                current = rows.get((dim, key, bucket))
                if current is None:
                    rows[(dim, key, bucket)] = list(share)
                else:
                    for i, v in enumerate(share):
                        current[i] += v
        measures = ", ".join(SPEND_MEASURES)
        updates = ", ".join(f"{m} = {m} + excluded.{m}" for m in SPEND_MEASURES)
        conn.executemany(
            f"""INSERT INTO spend (dim, key, bucket, {measures}) VALUES (?, ?, ?{', ?' * len(SPEND_MEASURES)})
                ON CONFLICT(dim, key, bucket) DO UPDATE SET {updates}""",
            [(*k, *v) for k, v in rows.items() if any(v)],
        )
        self.groups.clear()


# SQL for the same derived values, used by rebuild_spend.
_DIMENSION_SQL = {
    "project_name": "replace(rtrim(project, '/'), rtrim(rtrim(project, '/'), replace(rtrim(project, '/'), '/', '')), '')",
}
_BUCKET_SQL = "coalesce(substr(timestamp, 1, 14) || printf('%02d', CAST(substr(timestamp, 15, 2) AS INTEGER) / 15 * 15), '0000-00-00T00:00')"


def rebuild_spend(conn: sqlite3.Connection) -> None:
    """Recompute the whole rollup from `requests` (migration, repair)."""
    conn.execute("DELETE FROM spend")
    measures = ", ".join(SPEND_MEASURES)
    token_sums = ", ".join(f"coalesce(sum({c}), 0)" for c in TOKEN_COLUMNS)
    all_tokens = " + ".join(f"coalesce({c}, 0)" for c in TOKEN_COLUMNS)
    for dim, column in SPEND_DIMENSIONS:
        key = "''" if column is None else _DIMENSION_SQL.get(column, column)
        conn.execute(
            f"""INSERT INTO spend (dim, key, bucket, {measures})
                SELECT '{dim}', {key}, {_BUCKET_SQL}, coalesce(sum(cost_nanousd), 0), {token_sums},
                       coalesce(sum({all_tokens}), 0), count(*), sum(cost_nanousd IS NULL)
                FROM requests WHERE {key} IS NOT NULL
                GROUP BY {key}, {_BUCKET_SQL}"""
        )
    _rebuild_tool_spend(conn)


def _rebuild_tool_spend(conn: sqlite3.Connection) -> None:
    """The tool rows of the rollup, from the same split rule the hook uses (one code path)."""
    delta = SpendDelta()
    names = ("cost_nanousd", "timestamp", "tools", *TOKEN_COLUMNS)
    for row in conn.execute(f"SELECT {', '.join(names)} FROM requests"):
        delta.add(dict(zip(names, row)), +1)
    delta.write(conn, only=("tool",))


# ----------------------------------------------------------------------- sessions ----


def upsert_session(conn: sqlite3.Connection, session_id: str, **fields) -> None:
    """Record facts about a session from a hook: non-null values replace stored ones,
    except `started_at`, which keeps the earliest."""
    _update_session(conn, session_id, fields, "{name} = ?")


def fill_session(conn: sqlite3.Connection, session_id: str, **fields) -> None:
    """Like upsert_session, but only sets fields that are still empty (transcript-derived facts)."""
    _update_session(conn, session_id, fields, "{name} = coalesce({name}, ?)")


def _update_session(conn: sqlite3.Connection, session_id: str, fields: dict, assign: str) -> None:
    """Create the session row if needed, then set its non-null `fields` in one statement."""
    fields = {k: storable(v) for k, v in fields.items() if v is not None}
    session_id = storable(session_id)
    conn.execute("INSERT OR IGNORE INTO sessions (session_id, agent) VALUES (?, ?)", (session_id, fields.get("agent", "claude")))
    sets, values = [], []
    for name, value in fields.items():
        if name == "started_at":
            sets.append("started_at = CASE WHEN started_at IS NULL OR started_at > ? THEN ? ELSE started_at END")
            values += [value, value]
        else:
            sets.append(assign.format(name=name))
            values.append(value)
    if sets:
        conn.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE session_id = ?", values + [session_id])


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
    """Record that the file at `path` has been read up to byte `offset`, unless another
    process already got further in the same file (same inode): a cursor never goes back."""
    current = get_cursor(conn, path)
    if current and current.get("inode") == inode and (current.get("offset") or 0) > offset:
        offset = current["offset"]
    set_cursor(conn, {"path": path, "offset": offset, "size": size, "inode": inode, "head": head, "state": state,
                      "updated_at": now_iso()})
