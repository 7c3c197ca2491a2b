"""Incremental ingest of one transcript file into the database.

Shared by the hook (a few new lines per call) and `costhook import` (whole trees): both
read from the stored byte offset up to the last complete line, fold the lines into call
records, and commit the records together with the new offset, so a crash leaves either
both or neither. Standard library only.
"""

import marshal
import os
import sqlite3

from costhook import paths
from costhook.agents import jsonl
from costhook.agents.claude import transcript
from costhook.pricing import prices
from costhook.store import db, rollup, writes
from costhook.timeframe import now_iso
from costhook.usage import NANO, merge_call

HEAD_BYTES = 128  # identifies a file: a replaced transcript has a different beginning
COMMIT_EVERY = 8 << 20  # bytes parsed per transaction during a long catch-up
READ_SLACK = 64 << 10  # read beyond the planned size: what was appended since


class IngestResult:
    """What one ingest of one file did (a plain class: dataclasses cost the hook ~10 ms)."""

    __slots__ = ("path", "bytes_read", "calls", "changed", "malformed", "synthetic",
                 "pending", "deferred", "missing")

    def __init__(self, path: str):
        self.path = path
        self.bytes_read = 0
        self.calls = 0  # distinct calls seen in the new bytes
        self.changed = 0  # rows inserted or updated
        self.malformed = 0
        self.synthetic = 0
        self.pending = 0  # bytes left unread (a partial last line, or a deferred catch-up)
        self.deferred = False
        self.missing = False


def ingest_file(
    conn: sqlite3.Connection,
    path: str,
    *,
    price=None,
    max_bytes: int | None = None,
    ctx: transcript.FileContext | None = None,
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
    price = price or prices.pricer()
    for chunk in read_chunks(start, ctx):
        commit(conn, [chunk], price, result)
    result.pending = max(0, start.size - start.offset - result.bytes_read)
    return result


class Start:
    """Where reading a file resumes: decided from the cursor, used by read_chunks (which may
    run in another process) and by commit."""

    __slots__ = ("path", "offset", "state", "size", "inode", "head", "before")

    def __init__(self, path, offset, state, size, inode, head, before=b""):
        self.path, self.offset, self.state = path, offset, state  # state: ReadState JSON
        self.size, self.inode, self.head = size, inode, head  # head: writes.head_id of the first HEAD_BYTES
        self.before = before  # the bytes just before `offset` (jsonl.bytes_before)


class Chunk:
    """Parsed complete lines of one file, ready to commit with the offset they end at."""

    __slots__ = ("start", "offset", "nbytes", "parsed", "state", "mark", "prepared")

    def __init__(self, start, offset, nbytes, parsed, state, mark=""):
        self.start, self.offset, self.nbytes, self.parsed, self.state = start, offset, nbytes, parsed, state
        self.mark = mark  # writes.mark of the bytes before offset + nbytes
        self.prepared = None  # a Prepared, once prepare() has turned the calls into rows


class Prepared:
    """A chunk's calls as ready `requests` rows, priced, with their rollup delta and the
    session facts they carry: made by prepare() in an import's parse workers, so the one
    writer only inserts. (parsed.calls is emptied: the rows are what travels.)"""

    __slots__ = ("shapes", "spend", "sessions")

    def __init__(self, shapes: dict, spend: dict, sessions: dict):
        self.shapes = shapes  # column tuple -> [value tuple, ...], as writes.stored_row makes them
        self.spend = spend  # SpendDelta groups of all those rows
        self.sessions = sessions  # session id -> facts (_chunk_session_facts)

    def __getstate__(self):
        """What a worker sends the writer: marshal's bytes, which pickle carries as they
        are (the rows are plain str / int / None; marshal writes them ~2x quicker than
        pickle: ~0.1 s of the workers' CPU at 84,000 calls)."""
        try:
            return marshal.dumps((self.shapes, self.spend, self.sessions))
        except ValueError:  # (a value of another type: pickle takes it)
            return self.shapes, self.spend, self.sessions

    def __setstate__(self, state) -> None:
        self.shapes, self.spend, self.sessions = marshal.loads(state) if isinstance(state, bytes) else state

    def count(self) -> int:
        return sum(len(rows) for rows in self.shapes.values())

    def rows(self):
        """(key, message_id, row values, columns) of every row."""
        for columns, rows in self.shapes.items():
            key_at, message_at = columns.index("key"), columns.index("message_id")
            for values in rows:
                yield values[key_at], values[message_at], values, columns


def prepare(chunk: Chunk, price, with_rollup: bool = True) -> Chunk:
    """Price the chunk's calls into rows now (see Prepared); commit() inserts them as they
    are when nothing else in the database or the batch is a sighting of the same call, and
    merges them like any other record otherwise. Without `with_rollup` (a first import,
    which sums its rollups from its rows at the end: importer.first_import), no rollup delta."""
    shapes, spend = {}, rollup.SpendDelta()
    if len(_SHARED) > SHARED_MAX:
        _SHARED.clear()
    share = _SHARED.setdefault
    sessions = _chunk_session_facts(chunk.parsed)  # (before the records become rows)
    for record in chunk.parsed.calls.values():
        row, tools = writes.stored_row(record, price, reuse=True)
        for name in SHARED_COLUMNS:
            value = row.get(name)
            if value is not None:
                row[name] = share(value, value)
        shapes.setdefault(tuple(row), []).append(tuple(row.values()))
        if with_rollup:
            spend.add(row, +1, tools)
    chunk.prepared = Prepared(shapes, spend.groups, sessions)
    chunk.parsed.calls = {}
    return chunk


# Values many rows repeat, one string object each in prepare()'s rows (each line's decode
# makes its own): the workers pickle a repeated object once, so what travels to the
# writer is ~28 % smaller and pickled ~2x quicker.
SHARED_COLUMNS = ("session_id", "project", "git_branch", "model", "entrypoint", "speed", "service_tier", "source_path")
SHARED_MAX = 50_000
_SHARED: dict = {}


def plan(conn: sqlite3.Connection | None, path: str) -> Start | None:
    """The resume point for `path` (None if it is not a regular file); with no `conn`, its
    beginning (a first import's new file holds no cursor)."""
    try:
        f = paths.open_regular(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, paths.NotRegularFile):
        return None
    with f:
        st = os.fstat(f.fileno())
        head = f.read(HEAD_BYTES)
        cursor = writes.get_cursor(conn, path) if conn is not None else None  # None: a new file, no cursors
        offset, state, before = _resume_point(cursor, st, head, f)
    return Start(path, offset, state, st.st_size, st.st_ino, writes.head_id(head), before)


def read_chunks(start: Start, ctx: transcript.FileContext | None = None):
    """Parse the complete lines after `start.offset`, COMMIT_EVERY bytes at a time.

    Pure: no database. A partial last line is left for the next read.
    """
    ctx = ctx or transcript.context_for(start.path)
    state = transcript.ReadState.from_json(start.state)
    offset = start.offset
    try:
        f = paths.open_regular(start.path)
    except OSError:
        return
    with f:
        if os.fstat(f.fileno()).st_ino != start.inode:
            return  # replaced since planned; the next ingest starts over
        f.seek(offset)
        # Reads of what was planned (and a little growth), not COMMIT_EVERY: a read of 8 MB
        # into a small file's buffer costs the kernel far more (an import: 0.7 s of 0.9 s sys).
        reader = jsonl.LineReader(f, min(COMMIT_EVERY, max(0, start.size - offset) + READ_SLACK), before=start.before)
        for block, nbytes, skipped in reader.blocks():
            parsed = transcript.parse_block(block, ctx, state)
            parsed.malformed += skipped  # over-long lines, never buffered whole
            yield Chunk(start, offset, nbytes, parsed, state.to_json(), writes.mark(reader.tail))
            offset += nbytes


def _resume_point(cursor: dict | None, st: os.stat_result, head: bytes, f) -> tuple[int, str, bytes]:
    """Where to continue reading: the stored offset if this is still the same, not shrunk,
    file with the same bytes before that offset; (offset, state, those bytes).

    The cursor's `head` is `<writes.head_id of the first HEAD_BYTES>|<writes.mark of the
    bytes before the offset>` (a cursor from before the mark has only the first part:
    trusted as it was)."""
    stored_head, _, stored_mark = ((cursor or {}).get("head") or "").partition("|")
    if not jsonl.resumable(cursor, st) or not writes.same_head(stored_head, head):
        return 0, "", b""  # shrunk or replaced: re-read; the dedup keys make it safe
    before = jsonl.bytes_before(f, cursor["offset"])
    if stored_mark and writes.mark(before) != stored_mark:
        return 0, "", b""  # rewritten in place (a restored backup, a reused inode): re-read
    return cursor["offset"], cursor.get("state") or "", before


class Seen:
    """The strings added so far, as bits of their hashes in a fixed 2 MB (a Bloom filter
    with one hash function): a set of the hashes grew by ~90 bytes per call, this stays
    flat however large the import. `x in seen` may be wrongly true (~0.5 % at 84,000
    calls): a first import then sends a new call through the merge, which is always right."""

    __slots__ = ("bits",)
    MASK = (1 << 24) - 1

    def __init__(self):
        self.bits = bytearray((self.MASK >> 3) + 1)

    def first_sightings(self, counts: dict) -> set:
        """The values counted once in `counts` ({value: sightings}) and not seen before;
        all of them are seen after. (One pass: the writer runs it on every call.)"""
        bits, mask, once = self.bits, self.MASK, set()
        for value, count in counts.items():
            at = hash(value) & mask
            byte, bit = at >> 3, 1 << (at & 7)
            if count == 1 and not bits[byte] & bit:
                once.add(value)
            bits[byte] |= bit
        return once


class Bulk:
    """What a first import into a new file of its own (importer.first_import) keeps in
    memory instead of asking the database: the call keys and message ids written so far
    (the file holds nothing else; as Seen bits); and what it writes once at the end
    (finish), rather than batch after batch: the session facts (the first learnt stays,
    the earliest start: as fill_session keeps them, batch after batch), the sub-agents'
    names (the first stored stays, as name_subagents keeps them; every call of a named
    sub-agent ends with the name, whichever was read first). Its rollups are summed from
    its rows at the end (importer.first_import), not through deltas summed in Python."""

    __slots__ = ("keys", "messages", "sessions", "cost_states", "names", "unnamed", "moved")

    def __init__(self):
        self.keys, self.messages, self.sessions = Seen(), Seen(), {}
        self.cost_states = {}  # session id -> the last cost-state line's ParseResult.cost_state
        self.names, self.unnamed = {}, set()  # as ParseResult.subagents / .unnamed, over the whole import
        self.moved = rollup.SpendDelta()  # how the names move the rollups (finish): written by the importer

    def finish(self, conn: sqlite3.Connection) -> int:
        """Write what was kept for the end, but the rollups' move by the names (`moved`:
        the importer adds it to the rollups it sums from the rows as they were before);
        returns the rows renamed. After the indexes are built: name_subagents looks a
        sub-agent's rows up by session."""
        with db.transaction(conn):
            renamed = writes.name_subagents(conn, self.names, self.unnamed, self.moved) \
                if self.names or self.unnamed else 0
            writes.fill_sessions(conn, {sid: {"agent": "claude", **facts} for sid, facts in self.sessions.items()})
            writes.upsert_sessions(conn, _reported_costs(self.cost_states.values()))
        self.sessions, self.cost_states, self.names, self.unnamed = {}, {}, {}, set()
        return renamed


def commit(conn: sqlite3.Connection, chunks: list, price, result: IngestResult, bulk: Bulk | None = None) -> None:
    """Write the chunks' calls, and the offset after each chunk, in one transaction.

    The hook commits one chunk at a time; an import batches many files' chunks, so it
    pays for a transaction, the lookups and the rollup update once per batch. The result
    is the same: the calls are folded in the order they were read (usage.merge_call).
    Prepared rows that meet no other sighting of their call (in the batch or stored) are
    inserted as they are; everything else goes through writes.merge_requests.
    """
    if hasattr(price, "prepare") and any(chunk.prepared or chunk.parsed.calls for chunk in chunks):
        price.prepare()
    sessions = {} if bulk is None else bulk.sessions
    for chunk in chunks:
        _session_facts(chunk.prepared.sessions if chunk.prepared else _chunk_session_facts(chunk.parsed), sessions)
    with db.transaction(conn):
        # Under the write lock: what is stored cannot change between the lookups and the writes.
        new_rows, spend, calls = _lanes(conn, chunks, bulk)
        if new_rows:
            try:
                result.changed += writes.insert_new_requests(conn, new_rows, spend)
            except UnicodeEncodeError:  # text SQLite refuses: merge_requests cleans it
                for columns, rows in new_rows.items():
                    key_at = columns.index("key")
                    calls.update((values[key_at], writes.record_of(dict(zip(columns, values)))) for values in rows)
        result.changed += writes.merge_requests(conn, calls, price)
        names, unnamed = {}, set()
        for chunk in chunks:
            names.update(chunk.parsed.subagents)
            unnamed |= chunk.parsed.unnamed
        if bulk is not None:  # named once at the end (Bulk.finish), as these steps would leave them
            for pair, agent_type in names.items():
                bulk.names.setdefault(pair, agent_type)  # (the first name stored stays)
            bulk.unnamed |= unnamed
        elif names or unnamed:
            result.changed += writes.name_subagents(conn, names, unnamed)
        for sid, facts in sessions.items() if bulk is None else ():
            writes.fill_session(conn, sid, agent="claude", **facts)
        for chunk in chunks:
            if bulk is None:
                _note_cost_state(conn, chunk.parsed.cost_state)
            elif chunk.parsed.cost_state and chunk.parsed.cost_state.get("session_id"):
                bulk.cost_states.pop(chunk.parsed.cost_state["session_id"], None)  # the last one read wins
                bulk.cost_states[chunk.parsed.cost_state["session_id"]] = chunk.parsed.cost_state
            start = chunk.start
            cursor = dict(path=start.path, offset=chunk.offset + chunk.nbytes, size=start.size, inode=start.inode,
                          head=f"{start.head}|{chunk.mark}", state=chunk.state)
            if bulk is None:
                writes.advance_cursor(conn, **cursor)
            else:  # no other process writes to a first import's file: nothing to compare with
                writes.set_cursor(conn, {**cursor, "updated_at": now_iso()})
    for chunk in chunks:
        parsed = chunk.parsed
        result.bytes_read += chunk.nbytes
        result.calls += chunk.prepared.count() if chunk.prepared else len(parsed.calls)
        result.malformed += parsed.malformed
        result.synthetic += parsed.synthetic


def _lanes(conn: sqlite3.Connection, chunks: list, bulk: Bulk | None = None) -> tuple[dict, "rollup.SpendDelta", dict]:
    """(prepared rows to insert as they are, their rollup delta, records to merge).

    A prepared row goes to the merge lane when its key or message.id appears twice in the
    batch or is already stored (a streamed call across chunks, a resumed session's copy, a
    replay). Records to merge keep the order they were read in."""
    new_rows, spend, calls = {}, rollup.SpendDelta(), {}  # (a first import's rows carry no rollup delta)
    prepared = any(chunk.prepared for chunk in chunks)
    new_keys, new_messages = _unique_and_unstored(conn, chunks, bulk) if prepared else (set(), set())
    for chunk in chunks:
        if chunk.prepared is None:
            records = chunk.parsed.calls.items()
        else:
            spend.add_groups(chunk.prepared.spend)
            records = []
            for key, message_id, values, columns in chunk.prepared.rows():
                if key in new_keys and (message_id is None or message_id in new_messages):
                    new_rows.setdefault(columns, []).append(values)
                else:
                    row = dict(zip(columns, values))
                    if bulk is None:
                        spend.add(row, -1)
                    records.append((key, writes.record_of(row)))
        for key, record in records:
            previous = calls.get(key)
            calls[key] = merge_call(previous, record) if previous else record
    return new_rows, spend, calls


def _unique_and_unstored(conn: sqlite3.Connection, chunks: list, bulk: Bulk | None = None) -> tuple[set, set]:
    """The call keys, and the message ids, seen once in `chunks` and not in the database
    (with `bulk`: not among those written so far, which then include these)."""
    keys, message_ids = {}, {}
    for chunk in chunks:
        if chunk.prepared:
            sightings = ((key, message_id) for key, message_id, _, _ in chunk.prepared.rows())
        else:
            sightings = ((key, record.get("message_id")) for key, record in chunk.parsed.calls.items())
        for key, message_id in sightings:
            keys[key] = keys.get(key, 0) + 1
            if message_id is not None:
                message_ids[message_id] = message_ids.get(message_id, 0) + 1
    if bulk is not None:  # (Seen: a false "seen" only sends a new call through the merge, which is always right)
        return bulk.keys.first_sightings(keys), bulk.messages.first_sightings(message_ids)
    keys = [key for key, count in keys.items() if count == 1]
    message_ids = [message_id for message_id, count in message_ids.items() if count == 1]
    stored_keys, stored_messages = writes.stored_ids(conn, keys, message_ids)
    return set(keys) - stored_keys, set(message_ids) - stored_messages


def _session_facts(chunk_facts: dict, sessions: dict) -> None:
    """Add one chunk's session facts (_chunk_session_facts) to `sessions`: the earliest
    start; otherwise what was learnt first stays (as fill_session would keep it, chunk
    after chunk)."""
    for sid, facts in chunk_facts.items():
        known = sessions.setdefault(sid, {})
        for name, value in facts.items():
            if value is None:
                continue
            if known.get(name) is None or (name == "started_at" and value < known[name]):
                known[name] = value


def _chunk_session_facts(parsed: transcript.ParseResult) -> dict:
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


def _note_cost_state(conn, cost_state: dict | None) -> None:
    """The CLI's own running total for the session (kept beside ours, never as usage)."""
    writes.upsert_sessions(conn, _reported_costs([cost_state]))


def _reported_costs(cost_states) -> dict:
    """{session id: its session facts} of cost-state lines (ParseResult.cost_state) that name one."""
    return {state["session_id"]: {"reported_cost_nanousd": round(state["total_cost_usd"] * NANO)}
            for state in cost_states if state and state.get("session_id")}
