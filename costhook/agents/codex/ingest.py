"""Incremental ingest of one Codex rollout file into the database.

Shared by the hook and `costhook import --codex-dir`, so both give the same rows: read
from the stored byte offset up to the last complete line (agents/jsonl.py), fold the
lines into call records (rollout.py), and commit the records with the new offset and the
reader's state in one transaction: a crash leaves both or neither, and reading again is
harmless (the keys are the calls' own ids). Standard library only.
"""

import os
import sqlite3

from costhook import paths
from costhook.agents import jsonl
from costhook.agents.codex import rollout
from costhook.store import db, writes

HEAD_BYTES = 128  # identifies a file: a replaced rollout has a different beginning
COMMIT_EVERY = 8 << 20  # bytes parsed per transaction during a long catch-up


class IngestResult:
    """What one ingest of one file did (a plain class: dataclasses cost the hook ~10 ms)."""

    __slots__ = ("path", "bytes_read", "lines", "calls", "changed", "malformed", "pending", "deferred", "missing")

    def __init__(self, path: str):
        self.path = path
        self.bytes_read = self.lines = self.calls = self.changed = self.malformed = self.pending = 0
        self.deferred = self.missing = False


def ingest_file(conn: sqlite3.Connection, path: str, *, price, max_bytes: int | None = None,
                quick: bool = False) -> IngestResult:
    """Ingest the new complete lines of the rollout `path`. With `max_bytes`, a larger
    backlog is left alone (`deferred`): a hook deciding a budget must not stall on it.
    `quick`: a file whose cursor is at its end (same inode) is taken as read without
    opening it (one stat: for the many rollouts beside a session's own)."""
    result = IngestResult(path)
    if quick:
        try:
            st = os.stat(path)
        except OSError:
            result.missing = True
            return result
        cursor = writes.get_cursor(conn, path)
        if cursor and cursor.get("inode") == st.st_ino and cursor.get("offset") == st.st_size:
            return result
    try:
        f = paths.open_regular(path)
    except (OSError, paths.NotRegularFile):
        result.missing = True
        return result
    with f:
        st = os.fstat(f.fileno())
        head = f.read(HEAD_BYTES)
        offset, state, before = resume_point(writes.get_cursor(conn, path), st, head, f)
        result.pending = st.st_size - offset
        if result.pending <= 0:
            return result
        if max_bytes is not None and result.pending > max_bytes:
            result.deferred = True
            return result
        f.seek(offset)
        state = rollout.ReadState.from_json(state)
        reader = jsonl.LineReader(f, COMMIT_EVERY, before=before)
        for lines, nbytes, skipped in reader:
            parsed = rollout.parse_lines(lines, path, state)
            parsed.malformed += skipped
            offset += nbytes
            result.changed += commit(conn, parsed, price, path, offset, st, f"{writes.head_id(head)}|{writes.mark(reader.tail)}",
                                     state.to_json())
            result.bytes_read += nbytes
            result.lines += parsed.lines
            result.calls += len(parsed.calls)
            result.malformed += parsed.malformed
        result.pending = max(0, st.st_size - offset)
    return result


def commit(conn, parsed: rollout.ParseResult, price, path: str, offset: int, st, head: str, state: str) -> int:
    """The calls, the sessions they start and the cursor, in one transaction."""
    if parsed.calls and hasattr(price, "prepare"):
        price.prepare()  # before the write lock: nobody waits while the prices load
    with db.transaction(conn):
        changed = writes.merge_requests(conn, parsed.calls, price) if parsed.calls else 0
        for session_id, facts in parsed.sessions.items():
            writes.fill_session(conn, session_id, agent="codex", transcript_path=path,
                                **{k: v for k, v in facts.items() if v is not None})
        writes.advance_cursor(conn, path, offset, size=st.st_size, inode=st.st_ino, head=head, state=state)
    return changed


def resume_point(cursor: dict | None, st: os.stat_result, head: bytes, f) -> tuple[int, str, bytes]:
    """Where to continue: the stored offset if this is the same, not shrunk, file with the
    same bytes before that offset; else the start (the keys make a re-read safe).
    Returns (offset, reader state, the bytes before the offset)."""
    stored_head, _, stored_mark = ((cursor or {}).get("head") or "").partition("|")
    if not jsonl.resumable(cursor, st) or not writes.same_head(stored_head, head):
        return 0, "", b""
    before = jsonl.bytes_before(f, cursor["offset"])
    if stored_mark and writes.mark(before) != stored_mark:
        return 0, "", b""
    return cursor["offset"], cursor.get("state") or "", before
