"""Incremental ingest of one transcript file into the database.

Shared by the hook (a few new lines per call) and `costhook import` (whole trees): both
read from the stored byte offset up to the last complete line, fold the lines into call
records, and commit the records together with the new offset, so a crash leaves either
both or neither. Standard library only.
"""

import os
import sqlite3

from costhook import store
from costhook.sources import claude

HEAD_BYTES = 128  # identifies a file: a replaced transcript has a different beginning
COMMIT_EVERY = 8 << 20  # bytes parsed per transaction during a long catch-up


class IngestResult:
    """What one ingest of one file did (a plain class: dataclasses cost the hook ~10 ms)."""

    __slots__ = ("path", "bytes_read", "lines", "calls", "changed", "malformed", "synthetic",
                 "pending", "deferred", "missing", "texts")

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
        self.texts = ()  # assistant texts seen


def pricer(table=None):
    """`price(record) -> (cost_nanousd, cost_source)` for store.merge_requests."""
    from costhook import pricing

    def price(record: dict):
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
            table=table,
        )
        if cost is not None:
            return cost, "computed"
        reported = record.get("reported_cost_nanousd")
        if reported is not None:
            return reported, "reported"
        return None, "unpriced"

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
    try:
        f = open(path, "rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        result.missing = True
        return result
    with f:
        st = os.fstat(f.fileno())
        head = f.read(HEAD_BYTES)
        cursor = store.get_cursor(conn, path)
        offset, state = _resume_point(cursor, st, head)
        result.pending = st.st_size - offset
        if result.pending <= 0:
            return result
        if max_bytes is not None and result.pending > max_bytes:
            result.deferred = True
            return result
        ctx = ctx or claude.context_for(path)
        price = price or pricer()
        f.seek(offset)
        batch, batch_bytes = [], 0
        for line in f:
            if not line.endswith(b"\n"):
                break  # a partial last line waits for the next read
            batch.append(line)
            batch_bytes += len(line)
            if batch_bytes >= COMMIT_EVERY:
                offset = _commit(conn, path, st, head, offset, batch, batch_bytes, ctx, state, price, result)
                batch, batch_bytes = [], 0
        if batch:
            offset = _commit(conn, path, st, head, offset, batch, batch_bytes, ctx, state, price, result)
        result.pending = max(0, os.fstat(f.fileno()).st_size - offset)
    return result


def _resume_point(cursor: dict | None, st: os.stat_result, head: bytes) -> tuple[int, claude.ReadState]:
    """Where to continue reading: the stored offset if this is still the same, not shrunk, file."""
    if not cursor:
        return 0, claude.ReadState()
    same_file = cursor.get("inode") == st.st_ino and (cursor.get("offset") or 0) <= st.st_size
    stored_head = cursor.get("head") or ""
    if same_file and stored_head:
        same_file = head.hex().startswith(stored_head)
    if not same_file:
        return 0, claude.ReadState()  # shrunk or replaced: re-read; the dedup keys make it safe
    return cursor["offset"], claude.ReadState.from_json(cursor.get("state"))


def _commit(conn, path, st, head, offset, lines, nbytes, ctx, state, price, result: IngestResult) -> int:
    parsed = claude.parse_lines(lines, ctx, state)
    new_offset = offset + nbytes
    with store.transaction(conn):
        result.changed += store.merge_requests(conn, parsed.calls, price)
        _note_sessions(conn, parsed)
        current = store.get_cursor(conn, path)
        if current and current.get("inode") == st.st_ino and (current.get("offset") or 0) > new_offset:
            new_offset_stored = current["offset"]  # another process got further; never go back
        else:
            new_offset_stored = new_offset
        store.set_cursor(
            conn,
            {
                "path": path,
                "offset": new_offset_stored,
                "size": st.st_size,
                "inode": st.st_ino,
                "head": head.hex(),  # as much of the first 128 bytes as existed
                "state": state.to_json(),
                "updated_at": store.now_iso(),
            },
        )
    result.bytes_read += nbytes
    result.lines += parsed.lines
    result.calls += len(parsed.calls)
    result.malformed += parsed.malformed
    result.synthetic += parsed.synthetic
    result.texts = result.texts + tuple(parsed.texts[-5:])
    return new_offset


def _note_sessions(conn, parsed: claude.ParseResult) -> None:
    """Sessions learnt from the transcript itself: project, branch, first activity."""
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
    for sid, facts in sessions.items():
        store.fill_session(conn, sid, agent="claude", **facts)
    if parsed.cost_state and parsed.cost_state.get("session_id"):
        store.upsert_session(
            conn,
            parsed.cost_state["session_id"],
            reported_cost_nanousd=round(parsed.cost_state["total_cost_usd"] * 1_000_000_000),
        )
