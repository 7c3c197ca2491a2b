"""Incremental ingest of one transcript file into the database.

Shared by the hook (a few new lines per call) and `costhook import` (whole trees): both
read from the stored byte offset up to the last complete line, fold the lines into call
records, and commit the records together with the new offset, so a crash leaves either
both or neither. Standard library only.
"""

import os
import sqlite3

from costhook import store
from costhook.sources import claude, jsonl
from costhook.usage import merge_call

HEAD_BYTES = 128  # identifies a file: a replaced transcript has a different beginning
COMMIT_EVERY = 8 << 20  # bytes parsed per transaction during a long catch-up


class IngestResult:
    """What one ingest of one file did (a plain class: dataclasses cost the hook ~10 ms)."""

    __slots__ = ("path", "bytes_read", "lines", "calls", "changed", "malformed", "synthetic",
                 "pending", "deferred", "missing")

    def __init__(self, path: str):
        self.path = path
        self.bytes_read = 0
        self.lines = 0
        self.calls = 0  # distinct calls seen in the new bytes
        self.changed = 0  # rows inserted or updated
        self.malformed = 0
        self.synthetic = 0
        self.pending = 0  # bytes left unread (a partial last line, or a deferred catch-up)
        self.deferred = False
        self.missing = False


def pricer(table=None, *, load=None):
    """`price(record) -> (cost_nanousd, cost_source)` for store.merge_requests.

    `load()` (instead of `table`) builds the price table on the first call that needs it:
    most hook runs have nothing new to price and skip reading the table altogether.
    """
    from costhook import pricing

    tables = [table]

    def prepare() -> None:
        """Build the table now: callers do it before taking the write lock, so no other
        process waits while the prices (or a changed config) are read."""
        if tables[0] is None and load is not None:
            tables[0] = load()

    def price(record: dict):
        prepare()
        cost = pricing.price_call(
            record.get("model") or "",
            input_tokens=record.get("input_tokens") or 0,
            output_tokens=record.get("output_tokens") or 0,
            cache_write_5m_tokens=record.get("cache_write_5m_tokens") or 0,
            cache_write_1h_tokens=record.get("cache_write_1h_tokens") or 0,
            cache_read_tokens=record.get("cache_read_tokens") or 0,
            web_search_requests=record.get("web_search_requests") or 0,
            speed=record.get("speed"),
            inference_geo=record.get("inference_geo"),
            timestamp=record.get("timestamp"),
            table=tables[0],
        )
        if cost is not None:
            return cost, "computed"
        reported = record.get("reported_cost_nanousd")
        if reported is not None:
            return reported, "reported"
        return None, "unpriced"

    price.prepare = prepare
    return price


def ingest_file(
    conn: sqlite3.Connection,
    path: str,
    *,
    price=None,
    max_bytes: int | None = None,
    ctx: claude.FileContext | None = None,
) -> IngestResult:
    """Ingest the new complete lines of `path`.

    With `max_bytes`, a backlog larger than that is left alone (`deferred=True`) so the
    caller can hand it to a background process instead of stalling the agent.
    """
    result = IngestResult(path=path)
    start = plan(conn, path)
    if start is None:
        result.missing = True
        return result
    result.pending = start.size - start.offset
    if result.pending <= 0:
        return result
    if max_bytes is not None and result.pending > max_bytes:
        result.deferred = True
        return result
    price = price or pricer()
    for chunk in read_chunks(start, ctx):
        commit(conn, [chunk], price, result)
    result.pending = max(0, start.size - start.offset - result.bytes_read)
    return result


class Start:
    """Where reading a file resumes: decided from the cursor, used by read_chunks (which may
    run in another process) and by commit."""

    __slots__ = ("path", "offset", "state", "size", "inode", "head")

    def __init__(self, path, offset, state, size, inode, head):
        self.path, self.offset, self.state = path, offset, state  # state: ReadState JSON
        self.size, self.inode, self.head = size, inode, head


class Chunk:
    """Parsed complete lines of one file, ready to commit with the offset they end at."""

    __slots__ = ("start", "offset", "nbytes", "parsed", "state")

    def __init__(self, start, offset, nbytes, parsed, state):
        self.start, self.offset, self.nbytes, self.parsed, self.state = start, offset, nbytes, parsed, state


def plan(conn: sqlite3.Connection, path: str) -> Start | None:
    """The resume point for `path` (None if it is not a readable file)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(HEAD_BYTES)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    offset, state = _resume_point(store.get_cursor(conn, path), st, head)
    return Start(path, offset, state, st.st_size, st.st_ino, head.hex())


def read_chunks(start: Start, ctx: claude.FileContext | None = None):
    """Parse the complete lines after `start.offset`, COMMIT_EVERY bytes at a time.

    Pure: no database. A partial last line is left for the next read.
    """
    ctx = ctx or claude.context_for(start.path)
    state = claude.ReadState.from_json(start.state)
    offset = start.offset
    try:
        f = open(start.path, "rb")
    except OSError:
        return
    with f:
        if os.fstat(f.fileno()).st_ino != start.inode:
            return  # replaced since planned; the next ingest starts over
        f.seek(offset)
        for batch, nbytes in jsonl.line_batches(f, COMMIT_EVERY):
            yield Chunk(start, offset, nbytes, claude.parse_lines(batch, ctx, state), state.to_json())
            offset += nbytes


def _resume_point(cursor: dict | None, st: os.stat_result, head: bytes) -> tuple[int, str]:
    """Where to continue reading: the stored offset if this is still the same, not shrunk, file."""
    stored_head = (cursor or {}).get("head") or ""
    if not jsonl.resumable(cursor, st) or not head.hex().startswith(stored_head):
        return 0, ""  # shrunk or replaced: re-read; the dedup keys make it safe
    return cursor["offset"], cursor.get("state") or ""


def commit(conn: sqlite3.Connection, chunks: list, price, result: IngestResult) -> None:
    """Write the chunks' calls, and the offset after each chunk, in one transaction.

    The hook commits one chunk at a time; an import batches many files' chunks, so it
    pays for a transaction, the lookups and the rollup update once per batch. The result
    is the same: the calls are folded in the order they were read (usage.merge_call).
    """
    calls = {}
    for chunk in chunks:
        for key, record in chunk.parsed.calls.items():
            previous = calls.get(key)
            calls[key] = merge_call(previous, record) if previous else record
    if calls and hasattr(price, "prepare"):
        price.prepare()
    sessions = {}
    for chunk in chunks:
        _session_facts(chunk.parsed, sessions)
    with store.transaction(conn):
        result.changed += store.merge_requests(conn, calls, price)
        for sid, facts in sessions.items():
            store.fill_session(conn, sid, agent="claude", **facts)
        for chunk in chunks:
            _note_cost_state(conn, chunk.parsed)
            start = chunk.start
            store.advance_cursor(conn, start.path, chunk.offset + chunk.nbytes, size=start.size, inode=start.inode,
                                 head=start.head, state=chunk.state)
    for chunk in chunks:
        parsed = chunk.parsed
        result.bytes_read += chunk.nbytes
        result.lines += parsed.lines
        result.calls += len(parsed.calls)
        result.malformed += parsed.malformed
        result.synthetic += parsed.synthetic


def _session_facts(parsed: claude.ParseResult, sessions: dict) -> None:
    """Add what the calls tell about their sessions (project, branch, first activity) to
    `sessions`: the earliest start; otherwise what was learnt first stays (as fill_session
    would keep it, chunk after chunk)."""
    for sid, facts in _chunk_session_facts(parsed).items():
        known = sessions.setdefault(sid, {})
        for name, value in facts.items():
            if value is None:
                continue
            if known.get(name) is None or (name == "started_at" and value < known[name]):
                known[name] = value


def _chunk_session_facts(parsed: claude.ParseResult) -> dict:
    sessions = {}
    for record in parsed.calls.values():
        sid = record.get("session_id")
        if not sid:
            continue
        facts = sessions.setdefault(sid, {"started_at": record.get("timestamp")})
        stamp = record.get("timestamp")
        if stamp and (facts["started_at"] is None or stamp < facts["started_at"]):
            facts["started_at"] = stamp
        if not record.get("is_sidechain"):
            for name in ("project", "git_branch", "entrypoint"):
                facts.setdefault(name, record.get(name))
    return sessions


def _note_cost_state(conn, parsed: claude.ParseResult) -> None:
    """The CLI's own running total for the session (kept beside ours, never as usage)."""
    if parsed.cost_state and parsed.cost_state.get("session_id"):
        store.upsert_session(
            conn,
            parsed.cost_state["session_id"],
            reported_cost_nanousd=round(parsed.cost_state["total_cost_usd"] * 1_000_000_000),
        )
