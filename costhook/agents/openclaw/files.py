"""OpenClaw's transcript files and archives: JSON Lines, `.zst`, and the sessions.json index.

Older installs and archives keep the very same event objects as the SQLite store in files:
`<state>/agents/<id>/sessions/<sessionId>.jsonl`, `*.jsonl.reset.*` and
`*.jsonl.deleted.*[.zst]`, with `sessions.json` mapping session keys to sessions. A plain
file is read incrementally from a byte offset in costhook's `cursors` table (complete
lines only; a file whose beginning changed is read again, keys dedupe); a compressed
archive is read whole when its size or mtime changed.

Standard library only (the hook reads a deleted session's archive at session_end);
`zstandard` (or Python 3.14's `compression.zstd`) only when an archive is met.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

from costhook import timeframe
from costhook.agents.jsonl import LineReader, bytes_before, load_line, resumable
from costhook.agents.openclaw import cron
from costhook.agents.openclaw.events import (
    AGENT,
    HEAD_BYTES,
    MAX_EVENT_BYTES,
    ParseResult,
    ReadState,
    SessionMeta,
    Stats,
    ZstdUnavailable,
    clip,
    parse_events,
    session_facts,
)
from costhook.paths import open_regular, read_regular
from costhook.store import writes
from costhook.store.db import transaction

FILE_COMMIT_BYTES = 8 << 20  # bytes parsed per transaction during a long catch-up


def is_transcript_file(name: str) -> bool:
    """`<id>.jsonl`, `<id>.jsonl.reset.*`, `<id>.jsonl.deleted.*`, optionally `.zst`."""
    if name.endswith(".jsonl") or name.endswith(".jsonl.zst"):
        return True
    return ".jsonl.reset." in name or ".jsonl.deleted." in name


def session_id_of_file(path: str) -> str:
    """`<sessionId>.jsonl[.reset.*|.deleted.*][.zst]` → sessionId."""
    name = os.path.basename(path)
    return name.split(".jsonl", 1)[0]


def load_sessions_index(sessions_dir: str) -> dict:
    """Legacy `sessions.json` ({sessionKey: SessionEntry}) → {sessionId: SessionMeta kwargs}."""
    try:
        data = json.loads(read_regular(os.path.join(sessions_dir, "sessions.json"), 64 << 20))
    except (OSError, ValueError):
        return {}
    index = {}
    if not isinstance(data, dict):
        return index
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sessionId"), str):
            continue
        index[entry["sessionId"]] = {
            "session_key": key,
            "parent_session_key": clip(entry.get("spawnedBy")) or clip(entry.get("parentSessionKey")),
            "label": clip(entry.get("label"), 200),
        }
    by_key = {v["session_key"]: sid for sid, v in index.items()}
    for sid, facts in index.items():
        parent = facts.get("parent_session_key")
        facts["parent_session_id"] = by_key.get(parent) if parent else None
    return index


def host_agent_of_file(path: str) -> str | None:
    """`<state>/agents/<id>/sessions/<file>` → id."""
    parts = os.path.abspath(path).split(os.sep)
    if len(parts) >= 4 and parts[-3] and parts[-4] == "agents":
        return parts[-3]
    return None


def file_meta(path: str, index: dict | None = None, session_id: str | None = None) -> SessionMeta:
    """A transcript file's session, with what its directory's sessions.json says about it."""
    sid = session_id or session_id_of_file(path)
    facts = (index or {}).get(sid, {})
    return SessionMeta(session_id=sid, host_agent=host_agent_of_file(path), source_path=path, **facts)


def ingest_file(conn, path: str, *, price, meta: SessionMeta | None = None, index: dict | None = None) -> Stats:
    """Ingest a legacy transcript or an archive: plain JSONL incrementally from the stored
    byte offset (complete lines only), a zstd archive whole when it changed."""
    if path.endswith(".zst"):
        return _ingest_compressed(conn, path, price=price, meta=meta, index=index)
    stats = Stats()
    try:
        f = open_regular(path)
    except OSError:  # missing, or a FIFO, a device: nothing to read
        return stats
    with f:
        st = os.fstat(f.fileno())
        head = f.read(HEAD_BYTES)
        cursor = writes.get_cursor(conn, path)
        offset, state, before = _resume_point(cursor, st, head, f)
        digest = f"{len(head)}:{hashlib.sha1(head).hexdigest()}"
        if st.st_size <= offset:
            return stats
        stats.files = 1
        meta = meta or file_meta(path, index)
        f.seek(offset)
        reader = LineReader(f, FILE_COMMIT_BYTES, before=before, max_line=MAX_EVENT_BYTES)
        for batch, size, skipped in reader:
            head_and_mark = f"{digest}|{writes.mark(reader.tail)}"
            offset = _commit_lines(conn, path, st, head_and_mark, offset, batch, size, meta, state, price, stats)
            stats.malformed += skipped  # longer than MAX_EVENT_BYTES: never buffered whole
    return stats


def _resume_point(cursor, st, head: bytes, f) -> tuple[int, ReadState, bytes]:
    """(offset, state, the bytes before the offset) to resume from, or a fresh start when
    the file shrank, its beginning changed, or the bytes before the offset did (rewritten
    in place). The cursor's head is `<len>:<sha1 of the beginning>|<writes.mark>` (a cursor
    from before the mark has only the first part: trusted as it was)."""
    fresh = 0, ReadState(), b""
    if not resumable(cursor, st):
        return fresh
    stored, _, stored_mark = (cursor.get("head") or "").partition("|")
    length = stored.partition(":")[0]
    if not length.isdigit() or f"{length}:{hashlib.sha1(head[: int(length)]).hexdigest()}" != stored:
        return fresh
    before = bytes_before(f, cursor["offset"])
    if stored_mark and writes.mark(before) != stored_mark:
        return fresh
    return cursor["offset"], ReadState.from_json(cursor.get("state")), before


def _commit_lines(conn, path, st, head, offset, lines, size, meta, state, price, stats) -> int:
    events = [load_line(line) if len(line) <= MAX_EVENT_BYTES else None for line in lines]
    result = parse_events(events, meta, state)
    new_offset = offset + size
    with transaction(conn):
        stats.changed += writes.write_calls(conn, result.calls, price, session_facts(meta, state, result), agent=AGENT)
        cron.remember_cron_names(conn, result.cron_names, meta.host_agent)
        writes.advance_cursor(conn, path, new_offset, size=st.st_size, inode=st.st_ino, head=head, state=state.to_json())
    stats.bytes_read += size
    stats.events += result.events
    stats.calls += len(result.calls)
    stats.malformed += result.malformed
    return new_offset


def _ingest_compressed(conn, path, *, price, meta, index) -> Stats:
    stats = Stats()
    try:
        st = os.stat(path)
    except OSError:
        return stats
    if not stat.S_ISREG(st.st_mode):
        return stats  # a FIFO, a device: zstd_lines would refuse it too
    identity = f"zst:{st.st_size}:{st.st_mtime_ns}"
    cursor = writes.get_cursor(conn, path)
    if cursor and cursor.get("inode") == st.st_ino and cursor.get("head") == identity:
        return stats
    meta = meta or file_meta(path, index)
    state = ReadState()
    result = ParseResult()
    try:
        batch = []
        for line in zstd_lines(path):
            batch.append(load_line(line) if line is not None else None)
            if len(batch) >= 2000:
                parse_events(batch, meta, state, result)
                batch = []
        parse_events(batch, meta, state, result)
    except ZstdUnavailable:
        stats.skipped_compressed += 1
        return stats
    except Exception:
        stats.malformed += 1  # a truncated or corrupt archive: keep what was read
    with transaction(conn):
        stats.changed += writes.write_calls(conn, result.calls, price, session_facts(meta, state, result), agent=AGENT)
        cron.remember_cron_names(conn, result.cron_names, meta.host_agent)
        writes.set_cursor(conn, {"path": path, "offset": st.st_size, "size": st.st_size, "inode": st.st_ino,
                                "head": identity, "state": state.to_json(), "updated_at": timeframe.now_iso()})
    stats.files = 1
    stats.bytes_read = st.st_size
    stats.events = result.events
    stats.calls = len(result.calls)
    stats.malformed += result.malformed
    return stats


def zstd_lines(path: str):
    """The lines of a zstd-compressed JSONL archive (a regular file), streamed in blocks;
    a line longer than MAX_EVENT_BYTES comes as None, never buffered whole (an archive
    that inflates to one endless line costs no more memory than that)."""
    try:
        import zstandard
    except ImportError:
        zstandard = None
    if zstandard is None:
        try:
            from compression import zstd  # Python 3.14
        except ImportError:
            raise ZstdUnavailable(f"{os.path.basename(path)} is zstd-compressed; install the `zstandard` package") from None
    with open_regular(path) as f:
        if zstandard is not None:
            reader = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True)
        else:
            reader = zstd.open(f, "rb")
        with reader:
            for lines, _, skipped in LineReader(reader, 1 << 20, max_line=MAX_EVENT_BYTES, complete=True):
                yield from lines
                yield from [None] * skipped


def ingest_session_files(conn, files: list, *, price, progress=None) -> Stats:
    """Ingest transcript files, oldest first, each with its directory's sessions.json."""
    stats = Stats()
    indexes = {}
    dated = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            continue
        dated.append((st.st_mtime_ns, path, st.st_size))
    for _, path, size in sorted(dated):
        folder = os.path.dirname(path)
        if folder not in indexes:
            indexes[folder] = load_sessions_index(folder)
        stats.add(ingest_file(conn, path, price=price, index=indexes[folder]))
        if progress:
            progress(size)
    return stats
