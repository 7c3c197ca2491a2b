"""OpenClaw transcripts and cron history → usage records and cron runs.

OpenClaw (2026.9) keeps one SQLite store per agent,
`<state>/agents/<id>/agent/openclaw-agent.sqlite`: table `transcript_events` holds one
transcript event per row (`event_json`, or zstd-compressed `event_zstd`), in `seq` order,
with `session_windows` / `session_nodes` mapping session ids to session keys and parents.
Older installs and archives use JSONL files with the very same event objects:
`<state>/agents/<id>/sessions/<sessionId>.jsonl`, `*.jsonl.reset.*` and
`*.jsonl.deleted.*[.zst]`, with `sessions.json` mapping keys to sessions. Cron jobs and
their run history live in `<state>/state/openclaw.sqlite` (tables `cron_jobs`,
`task_runs`), formerly `<state>/cron/jobs.json` and `<state>/cron/runs/<jobId>.jsonl`.

One row per assistant message that carries `usage` (one billed model call), keyed
`openclaw:<responseId>@<message timestamp>` — the same key whether the message comes from
the live hook (before_message_write / agent_end), the SQLite store or a file, so every
path deduplicates against the others. Prompt text, tool arguments and tool output are
read only to classify a turn (heartbeat, cron, acknowledgement) and are never stored.

Reading OpenClaw's own databases never blocks OpenClaw: read-only URI connections, short
statements in autocommit mode (WAL readers do not block writers), a busy timeout and a
bounded retry; an incremental cursor per session (`sqlite:<db>#<session>`, the last seq)
or per file (byte offset) in costhook's `cursors` table.

Standard library only, so the hook can use it; `zstandard` (or Python 3.14's
`compression.zstd`) is imported only when a compressed row or archive is met.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time

from costhook.store import writes
from costhook.store.db import in_lists, transaction
from costhook import timeframe
from costhook.agents.jsonl import line_batches, load_line, resumable, utc_timestamp
from costhook.usage import as_count

AGENT = "openclaw"
KEY_PREFIX = "openclaw:"
HEARTBEAT_POLL = "[OpenClaw heartbeat poll]"
ACK_TOKENS = ("HEARTBEAT_OK", "NO_REPLY")
ACK_MAX_EXTRA = 300  # OpenClaw drops a HEARTBEAT_OK reply with at most this much else in it
SQLITE_CHUNK = 500  # events per read statement and per write transaction
FILE_COMMIT_BYTES = 8 << 20
HEAD_BYTES = 256
MAX_EVENT_BYTES = 16 << 20
# Columns of `requests` that writes.merge_requests keeps from the first sighting only;
# a later sighting fills them where they are still empty (see _fill_extra).
EXTRA_COLUMNS = ("session_key", "host_agent", "run_id", "provider", "session_kind", "ack_only", "message_id", "request_id")


class TheirDatabaseBusy(Exception):
    """OpenClaw's database stayed locked for longer than we are willing to wait."""


class ZstdUnavailable(Exception):
    """A compressed row or archive was met and no zstd decoder is installed."""


# ------------------------------------------------------------------ session keys ----


def classify_key(key: str | None) -> dict:
    """What a session key says: kind, host agent, cron job, sub-agent id.

    agent:<id>:main                              main
    agent:<id>:<channel>:direct:<peer>[...]      direct
    agent:<id>:<channel>:group|channel|room:<x>  group
    agent:<id>:cron:<job>[:run:<session>]        cron
    <base key>:heartbeat                         heartbeat (isolated heartbeat session)
    agent:<id>:subagent:<uuid>                   subagent
    hook:<uuid>                                  hook
    anything else under agent:<id>:              explicit
    """
    info = {"kind": None, "host_agent": None, "cron_job": None, "subagent_id": None, "run_session_id": None}
    if not isinstance(key, str) or not key:
        return info
    if key.startswith("hook:"):
        info["kind"] = "hook"
        return info
    parts = key.split(":")
    if parts[0] != "agent" or len(parts) < 3:
        info["kind"] = "explicit"
        return info
    info["host_agent"] = parts[1] or None
    rest = parts[2:]
    if len(rest) >= 2 and rest[-1] == "heartbeat":
        info["kind"] = "heartbeat"
    elif rest[0] == "cron" and len(rest) >= 2:
        info["kind"] = "cron"
        info["cron_job"] = rest[1] or None
        if len(rest) >= 4 and rest[2] == "run":
            info["run_session_id"] = rest[3] or None
    elif "subagent" in rest:
        info["kind"] = "subagent"
        index = len(rest) - 1 - rest[::-1].index("subagent")
        info["subagent_id"] = rest[index + 1] if index + 1 < len(rest) else None
    elif rest == ["main"]:
        info["kind"] = "main"
    elif "direct" in rest:
        info["kind"] = "direct"
    elif any(p in ("group", "channel", "room") for p in rest[1:]):
        info["kind"] = "group"
    else:
        info["kind"] = "explicit"
    return info


def cron_run_key(key: str | None, session_id: str | None) -> str | None:
    """`agent:<id>:cron:<job>` → its per-run alias `agent:<id>:cron:<job>:run:<session>`
    (what hooks carry), so every row of a run has the same key whichever path wrote it."""
    info = classify_key(key)
    if info["kind"] == "cron" and info["run_session_id"] is None and session_id:
        return f"{key}:run:{session_id}"
    return key


# ------------------------------------------------------------------ values ----------


def usd_to_nano(value) -> int | None:
    """An agent's float USD amount → integer nano-USD, exactly as the float prints
    (repr: 0.0014999999999999998 → 1500000), rounded half-up. None if not a sane amount."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value < 0 or value > 1e9:
        return None
    if isinstance(value, int):
        return value * 1_000_000_000
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = int((whole + fraction) or "0")
    scale = len(fraction) - int(exponent or 0) - 9  # digits / 10**scale nano-USD
    if scale <= 0:
        return digits * 10 ** (-scale)
    quotient, remainder = divmod(digits, 10**scale)
    return quotient + (1 if 2 * remainder >= 10**scale else 0)


COST_PARTS = ("input", "output", "cacheRead", "cacheWrite")


def reported_cost(cost) -> int | None:
    """`usage.cost` → nano-USD, or None when absent or all zero (OpenClaw writes zeros when
    it has no price: that means unknown, not free)."""
    if not isinstance(cost, dict):
        return None
    total = usd_to_nano(cost.get("total"))
    if total:
        return total
    parts = [usd_to_nano(cost.get(name)) for name in COST_PARTS]
    summed = sum(p for p in parts if p)
    return summed or None


def iso_from_ms(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e14:
        return None
    seconds, millis = divmod(int(value), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _str(value, limit: int = 1000) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


# ------------------------------------------------------------------ messages --------


def text_of(content, limit: int = 4096) -> str:
    """The text of a message's content (a string or text blocks), at most `limit` chars."""
    if isinstance(content, str):
        return content[:limit]
    if not isinstance(content, list):
        return ""
    out, size = [], 0
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            out.append(block["text"][: limit - size])
            size += len(out[-1])
            if size >= limit:
                break
    return "\n".join(out)


def is_ack_text(text: str) -> bool:
    """A heartbeat reply that only acknowledges: empty, NO_REPLY, or HEARTBEAT_OK at the
    start or end with at most 300 other characters (what OpenClaw drops from delivery)."""
    s = (text or "").strip()
    if not s or s in ACK_TOKENS:
        return True
    for token in ACK_TOKENS:
        if s.startswith(token) and len(s[len(token) :].strip()) <= ACK_MAX_EXTRA:
            return True
        if s.endswith(token) and len(s[: -len(token)].strip()) <= ACK_MAX_EXTRA:
            return True
    return False


def assistant_summary(message: dict) -> tuple[list, int]:
    """(names of the tools this message asked for, ack_only). Tool Search bridge calls
    (`tool_call {id: X}`) count as X. `heartbeat_respond` with notify false is an
    acknowledgement, not work."""
    content = message.get("content")
    tools, ack_tools = [], True
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict) or block.get("type") not in ("toolCall", "tool_use", "toolUse"):
            continue
        name = block.get("name")
        args = block.get("arguments", block.get("input"))
        if name == "tool_call" and isinstance(args, dict) and isinstance(args.get("id"), str) and args["id"]:
            name = args["id"]
        if not isinstance(name, str) or not name:
            continue
        if name not in tools:
            tools.append(name[:200])
        if not (name == "heartbeat_respond" and isinstance(args, dict) and args.get("notify") is not True):
            ack_tools = False
    ack = ack_tools and is_ack_text(text_of(content))
    return tools, int(ack)


def call_key(message: dict, session_id: str | None, entry_id: str | None = None) -> str | None:
    """The stable id of one model call. responseId alone is not enough (local servers
    reuse ids such as `chatcmpl-7`); with the message's own millisecond timestamp it is
    unique, and identical in the hook payload, the SQLite row and a copied/forked line."""
    response_id = _str(message.get("responseId"), 300)
    stamp = message.get("timestamp")
    stamp = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else None
    if response_id and stamp is not None:
        return f"{KEY_PREFIX}{response_id}@{stamp}"
    if response_id:
        return f"{KEY_PREFIX}{response_id}"
    if stamp is not None and session_id:
        return f"{KEY_PREFIX}{session_id}@{stamp}"
    if entry_id:
        return f"{KEY_PREFIX}entry:{entry_id}"
    return None


def call_record(message: dict, attribution: dict, *, tools=None, ack=None, entry_id=None,
                entry_timestamp=None, fallback_model=None, fallback_provider=None) -> dict | None:
    """One assistant message with usage → a `requests` record (None when it billed nothing).

    `attribution`: session_id, session_key, host_agent, session_kind, cron_job, is_heartbeat,
    run_id, project, parent_session_id, agent_id, agent_type, is_sidechain, source_path.
    """
    usage = message.get("usage")
    if not isinstance(usage, dict):
        return None
    record = {
        "input_tokens": as_count(usage.get("input")),
        "output_tokens": as_count(usage.get("output")),
        "cache_write_5m_tokens": as_count(usage.get("cacheWrite")),
        "cache_write_1h_tokens": 0,
        "cache_read_tokens": as_count(usage.get("cacheRead")),
        "web_search_requests": 0,
        "reported_cost_nanousd": reported_cost(usage.get("cost")),
    }
    if not any(record[k] for k in ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_read_tokens")):
        if record["reported_cost_nanousd"] is None:
            return None  # an aborted or failed call with no usage: nothing was billed
    session_id = attribution.get("session_id")
    key = call_key(message, session_id, entry_id)
    if key is None:
        return None
    if tools is None or ack is None:
        tools, ack = assistant_summary(message)
    model = _str(message.get("model"), 300) or fallback_model
    run_id = None
    marks = message.get("__openclaw")
    if isinstance(marks, dict):
        run_id = _str(marks.get("runId"), 300)
    record.update(
        key=key,
        agent=AGENT,
        message_id=_str(entry_id, 300),
        request_id=_str(message.get("responseId"), 300),
        timestamp=iso_from_ms(message.get("timestamp")) or utc_timestamp(entry_timestamp),
        model=model,
        provider=_str(message.get("provider"), 200) or fallback_provider,
        tools=list(tools or []),
        ack_only=None if ack is None else int(bool(ack)),
    )
    for name in ("session_id", "session_key", "host_agent", "session_kind", "cron_job", "is_heartbeat", "run_id",
                 "project", "parent_session_id", "agent_id", "agent_type", "is_sidechain", "source_path"):
        value = attribution.get(name)
        if value is not None:
            record[name] = value
    if run_id:
        record["run_id"] = run_id
    return record


# ------------------------------------------------------------------ parsing ---------


class SessionMeta:
    """What is known about a session besides its events (from the store or sessions.json)."""

    __slots__ = ("session_id", "session_key", "host_agent", "kind", "cron_job", "parent_session_key",
                 "parent_session_id", "label", "source_path", "project")

    def __init__(self, session_id=None, session_key=None, host_agent=None, parent_session_key=None,
                 parent_session_id=None, label=None, source_path=None, project=None):
        self.session_id = session_id
        self.session_key = cron_run_key(session_key, session_id)
        info = classify_key(session_key)
        self.host_agent = info["host_agent"] or host_agent
        self.kind = info["kind"]
        self.cron_job = info["cron_job"]
        self.parent_session_key = parent_session_key
        self.parent_session_id = parent_session_id
        self.label = label
        self.source_path = source_path
        self.project = project
        if self.kind is None and parent_session_key:
            self.kind = "subagent"

    def attribution(self) -> dict:
        info = classify_key(self.session_key)
        subagent = self.kind == "subagent"
        return {
            "session_id": self.session_id,
            "session_key": self.session_key,
            "host_agent": self.host_agent,
            "session_kind": self.kind,
            "cron_job": self.cron_job,
            "project": self.project,
            "parent_session_id": self.parent_session_id if subagent else None,
            "agent_id": info["subagent_id"] if subagent else None,
            "agent_type": (self.label or "subagent") if subagent else None,
            "is_sidechain": 1 if subagent else 0,
            "source_path": self.source_path,
        }


class ReadState:
    """Carried from event to event and between incremental reads (JSON in the cursor)."""

    FIELDS = ("session_id", "project", "model", "provider", "heartbeat", "cron_job", "turn")

    def __init__(self, **values):
        for name in self.FIELDS:
            setattr(self, name, values.get(name))

    def to_json(self) -> str:
        return json.dumps({k: getattr(self, k) for k in self.FIELDS if getattr(self, k) is not None})

    @classmethod
    def from_json(cls, text: str | None) -> "ReadState":
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        return cls(**{k: v for k, v in data.items() if k in cls.FIELDS and isinstance(v, (str, int, bool))}) if isinstance(data, dict) else cls()


class ParseResult:
    __slots__ = ("calls", "events", "malformed", "cron_names", "first_timestamp")

    def __init__(self):
        self.calls = {}
        self.events = 0
        self.malformed = 0
        self.cron_names = {}  # job id -> name, from "[cron:<id> <name>]" prompts
        self.first_timestamp = None


def parse_events(events, meta: SessionMeta, state: ReadState, result: ParseResult | None = None) -> ParseResult:
    """Fold decoded transcript events (dicts; None for an undecodable one) into records."""
    result = result or ParseResult()
    for event in events:
        result.events += 1
        if not isinstance(event, dict):
            result.malformed += 1
            continue
        kind = event.get("type")
        if kind == "message":
            message = event.get("message")
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            if role == "assistant":
                _assistant(event, message, meta, state, result)
            elif role == "user":
                _user_turn(event, message, state, result)
        elif kind == "session":
            state.session_id = state.session_id or _str(event.get("id"), 300)
            state.project = _str(event.get("cwd")) or state.project
            stamp = utc_timestamp(event.get("timestamp"))
            if stamp and (result.first_timestamp is None or stamp < result.first_timestamp):
                result.first_timestamp = stamp
        elif kind == "model_change":
            state.model = _str(event.get("modelId"), 300) or state.model
            state.provider = _str(event.get("provider"), 200) or state.provider
        elif kind == "custom" and event.get("customType") == "model-snapshot" and isinstance(event.get("data"), dict):
            state.model = _str(event["data"].get("modelId"), 300) or state.model
            state.provider = _str(event["data"].get("provider"), 200) or state.provider
    return result


def _user_turn(event: dict, message: dict, state: ReadState, result: ParseResult) -> None:
    """A user message starts a turn: a heartbeat poll, a cron run, or ordinary work."""
    provenance = message.get("provenance") if isinstance(message.get("provenance"), dict) else {}
    text = text_of(message.get("content"), 600).lstrip()
    state.turn = _str(event.get("id"), 300)
    state.heartbeat = provenance.get("sourceTool") == "heartbeat" or text.strip() == HEARTBEAT_POLL
    state.cron_job = None
    if state.heartbeat:
        return
    job, name = None, None
    if provenance.get("sourceTool") == "cron":
        job = _str(provenance.get("jobId"), 300)
        prefix = provenance.get("sourcePromptPrefix")
        if isinstance(prefix, str):
            name = _cron_prefix(prefix)[1]
    if text.startswith("[cron:"):
        parsed_job, parsed_name = _cron_prefix(text)
        job, name = job or parsed_job, name or parsed_name
    state.cron_job = job
    if job and name:
        result.cron_names[job] = name


def _cron_prefix(text: str) -> tuple[str | None, str | None]:
    """`[cron:<jobId> <job name>] ...` → (jobId, name)."""
    if not text.startswith("[cron:"):
        return None, None
    end = text.find("]")
    if end < 0:
        return None, None
    inner = text[6:end]
    job, _, name = inner.partition(" ")
    return (job or None), (name.strip()[:200] or None)


def _assistant(event: dict, message: dict, meta: SessionMeta, state: ReadState, result: ParseResult) -> None:
    attribution = meta.attribution()
    if attribution.get("session_id") is None:
        attribution["session_id"] = state.session_id
    attribution["project"] = attribution.get("project") or state.project
    attribution["cron_job"] = attribution.get("cron_job") or state.cron_job
    attribution["is_heartbeat"] = 1 if (meta.kind == "heartbeat" or state.heartbeat) else 0
    if state.turn and attribution.get("session_id"):
        attribution["run_id"] = f"turn:{attribution['session_id']}:{state.turn}"
    record = call_record(
        message,
        attribution,
        entry_id=_str(event.get("id"), 300),
        entry_timestamp=event.get("timestamp"),
        fallback_model=state.model,
        fallback_provider=state.provider,
    )
    if record is None:
        return
    previous = result.calls.get(record["key"])
    if previous is None or _tokens(record) > _tokens(previous):
        result.calls[record["key"]] = record


def _tokens(record: dict) -> int:
    return sum(record.get(k) or 0 for k in ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_read_tokens"))


# ------------------------------------------------------------------ writing ---------


def write_calls(conn, calls: dict, price, sessions: dict | None = None) -> int:
    """Merge call records (and session facts) into costhook's database. Inside a transaction."""
    changed = writes.merge_requests(conn, calls, price) if calls else 0
    if calls:
        _fill_extra(conn, calls)
    for session_id, facts in (sessions or {}).items():
        if session_id:
            writes.fill_session(conn, session_id, agent=AGENT, **{k: v for k, v in facts.items() if v is not None})
    return changed


def _fill_extra(conn, calls: dict) -> None:
    for key, record in calls.items():
        values = [(name, record[name]) for name in EXTRA_COLUMNS if record.get(name) is not None]
        if not values:
            continue
        sets = ", ".join(f"{name} = coalesce({name}, ?)" for name, _ in values)
        empty = " OR ".join(f"{name} IS NULL" for name, _ in values)
        conn.execute(f"UPDATE requests SET {sets} WHERE key = ? AND ({empty})", [v for _, v in values] + [key])


def session_facts(meta: SessionMeta, state: ReadState, result: ParseResult) -> dict:
    facts = {
        "project": meta.project or state.project,
        "started_at": result.first_timestamp,
        "session_key": meta.session_key,
        "host_agent": meta.host_agent,
        "session_kind": meta.kind,
        "parent_session_key": meta.parent_session_key,
        "parent_session_id": meta.parent_session_id,
        "label": meta.label,
        "model": state.model,
        "transcript_path": meta.source_path,
    }
    return {meta.session_id or state.session_id: facts}


class Stats:
    """Counts from one ingest (SQLite sessions or files)."""

    __slots__ = ("sessions", "files", "events", "calls", "changed", "malformed", "bytes_read", "busy",
                 "skipped_compressed", "cron_runs")

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, 0)

    def add(self, other: "Stats") -> "Stats":
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


# ------------------------------------------------------------------ zstd ------------


def zstd_decompress(data: bytes, limit: int = MAX_EVENT_BYTES) -> bytes:
    """One zstd frame → bytes (at most `limit`)."""
    try:
        import zstandard
    except ImportError:
        try:
            from compression import zstd  # Python 3.14
        except ImportError:
            raise ZstdUnavailable("a compressed OpenClaw event needs the `zstandard` package") from None
        out = zstd.decompress(data)
        if len(out) > limit:
            raise ValueError("compressed event larger than the limit")
        return out
    reader = zstandard.ZstdDecompressor().decompressobj()
    out = reader.decompress(data)
    if len(out) > limit:
        raise ValueError("compressed event larger than the limit")
    return out


def zstd_lines(path: str):
    """The lines of a zstd-compressed JSONL archive, streamed."""
    try:
        import zstandard
    except ImportError:
        zstandard = None
    if zstandard is not None:
        with open(path, "rb") as f:
            import io

            reader = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True))
            yield from reader
        return
    try:
        from compression import zstd  # Python 3.14
    except ImportError:
        raise ZstdUnavailable(f"{os.path.basename(path)} is zstd-compressed; install the `zstandard` package") from None
    with zstd.open(path, "rb") as reader:
        yield from reader


def decode_event(event_json, event_zstd):
    """A transcript_events row's event: plain JSON text, or a zstd frame of it."""
    if event_json is not None:
        try:
            return json.loads(event_json)
        except (ValueError, TypeError):
            return None
    if event_zstd is None:
        return None
    try:
        return json.loads(zstd_decompress(bytes(event_zstd)))
    except ZstdUnavailable:
        raise
    except Exception:
        return None


# ------------------------------------------------------------------ their SQLite ----


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
            stats.changed += write_calls(conn, result.calls, price, session_facts(meta, state, result))
            _remember_cron_names(conn, result.cron_names, meta.host_agent)
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


def _remember_cron_names(conn, names: dict, host_agent) -> None:
    for job_id, name in names.items():
        record_cron_job(conn, {"id": job_id, "name": name, "agentId": host_agent}, only_fill=True)


# ------------------------------------------------------------------ files -----------


def is_transcript_file(name: str) -> bool:
    """`<id>.jsonl`, `<id>.jsonl.reset.*`, `<id>.jsonl.deleted.*`, optionally `.zst`."""
    if name.endswith(".jsonl") or name.endswith(".jsonl.zst"):
        return True
    return ".jsonl.reset." in name or ".jsonl.deleted." in name


def session_id_of_file(path: str) -> str:
    name = os.path.basename(path)
    return name.split(".jsonl", 1)[0]


def load_sessions_index(sessions_dir: str) -> dict:
    """Legacy `sessions.json` ({sessionKey: SessionEntry}) → {sessionId: SessionMeta kwargs}."""
    try:
        with open(os.path.join(sessions_dir, "sessions.json"), "rb") as f:
            data = json.loads(f.read(64 << 20))
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
            "parent_session_key": _str(entry.get("spawnedBy")) or _str(entry.get("parentSessionKey")),
            "label": _str(entry.get("label"), 200),
        }
    by_key = {v["session_key"]: sid for sid, v in index.items()}
    for sid, facts in index.items():
        parent = facts.get("parent_session_key")
        facts["parent_session_id"] = by_key.get(parent) if parent else None
    return index


def host_agent_of_file(path: str) -> str | None:
    parts = os.path.abspath(path).split(os.sep)
    if len(parts) >= 4 and parts[-3] and parts[-4] == "agents":
        return parts[-3]
    return None


def file_meta(path: str, index: dict | None = None, session_id: str | None = None) -> SessionMeta:
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
        f = open(path, "rb")
    except OSError:
        return stats
    with f:
        st = os.fstat(f.fileno())
        head = f.read(HEAD_BYTES)
        cursor = writes.get_cursor(conn, path)
        offset, state = 0, ReadState()
        digest = f"{len(head)}:{hashlib.sha1(head).hexdigest()}"
        if resumable(cursor, st):
            length = (cursor.get("head") or "").partition(":")[0]
            if length.isdigit() and f"{length}:{hashlib.sha1(head[: int(length)]).hexdigest()}" == cursor.get("head"):
                offset, state = cursor["offset"], ReadState.from_json(cursor.get("state"))
        if st.st_size <= offset:
            return stats
        stats.files = 1
        meta = meta or file_meta(path, index)
        f.seek(offset)
        for batch, size in line_batches(f, FILE_COMMIT_BYTES):
            offset = _commit_lines(conn, path, st, digest, offset, batch, size, meta, state, price, stats)
    return stats


def _commit_lines(conn, path, st, digest, offset, lines, size, meta, state, price, stats) -> int:
    events = [load_line(line) if len(line) <= MAX_EVENT_BYTES else None for line in lines]
    result = parse_events(events, meta, state)
    new_offset = offset + size
    with transaction(conn):
        stats.changed += write_calls(conn, result.calls, price, session_facts(meta, state, result))
        _remember_cron_names(conn, result.cron_names, meta.host_agent)
        writes.advance_cursor(conn, path, new_offset, size=st.st_size, inode=st.st_ino, head=digest, state=state.to_json())
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
            batch.append(load_line(line) if len(line) <= MAX_EVENT_BYTES else None)
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
        stats.changed += write_calls(conn, result.calls, price, session_facts(meta, state, result))
        _remember_cron_names(conn, result.cron_names, meta.host_agent)
        writes.set_cursor(conn, {"path": path, "offset": st.st_size, "size": st.st_size, "inode": st.st_ino,
                                "head": identity, "state": state.to_json(), "updated_at": timeframe.now_iso()})
    stats.files = 1
    stats.bytes_read = st.st_size
    stats.events = result.events
    stats.calls = len(result.calls)
    stats.malformed += result.malformed
    return stats


# ------------------------------------------------------------------ cron ------------


def cron_run_id(entry: dict) -> str | None:
    """Stable id of one cron run across sources (run log line, task_runs row, cron_changed
    hook): `<jobId>@<runAtMs>`; else OpenClaw's own runId."""
    job = _str(entry.get("jobId"), 300)
    run_at = entry.get("runAtMs")
    if job and isinstance(run_at, (int, float)) and not isinstance(run_at, bool):
        return f"{job}@{int(run_at)}"
    own = _str(entry.get("runId"), 300)
    if own:
        return own
    ts = entry.get("ts")
    if job and isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return f"{job}@ts{int(ts)}"
    return None


def cron_run_row(entry: dict, *, host_agent=None, job_name=None, is_heartbeat=None) -> dict | None:
    """A CronRunLogEntry (run log line, task_runs detail, cron_changed `finished`) → a
    `cron_runs` row. Usage is the run total OpenClaw logged (snake_case, no cost)."""
    if not isinstance(entry, dict) or entry.get("action", "finished") != "finished":
        return None
    run_id = cron_run_id(entry)
    job = _str(entry.get("jobId"), 300)
    if not run_id or not job:
        return None
    usage = entry.get("usage") if isinstance(entry.get("usage"), dict) else None
    key = _str(entry.get("sessionKey"))
    session_id = _str(entry.get("sessionId"), 300)
    started = iso_from_ms(entry.get("runAtMs")) or iso_from_ms(entry.get("ts"))
    duration = entry.get("durationMs")
    row = {
        "run_id": run_id,
        "agent": AGENT,
        "host_agent": _str(entry.get("agentId"), 200) or classify_key(key)["host_agent"] or host_agent,
        "job_id": job,
        "job_name": _str(entry.get("jobName"), 200) or job_name,
        "session_id": session_id,
        "session_key": cron_run_key(key, session_id),
        "status": _str(entry.get("status"), 40),
        "completion_status": _str(entry.get("completionStatus"), 40),
        "started_at": started,
        "duration_ms": int(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration >= 0 else None,
        "model": _str(entry.get("model"), 300),
        "provider": _str(entry.get("provider"), 200),
        "input_tokens": as_count(usage.get("input_tokens")) if usage else None,
        "output_tokens": as_count(usage.get("output_tokens")) if usage else None,
        "cache_read_tokens": as_count(usage.get("cache_read_tokens")) if usage else None,
        "cache_write_tokens": as_count(usage.get("cache_write_tokens")) if usage else None,
        "total_tokens": as_count(usage.get("total_tokens")) if usage else None,
        "is_heartbeat": is_heartbeat,
        "cron_run_id": _str(entry.get("runId"), 300),
        "error": _str(entry.get("error"), 300),
        "session_target": _str(entry.get("sessionTarget"), 40),
    }
    return row


CRON_RUN_COLUMNS = ("run_id", "agent", "host_agent", "job_id", "job_name", "session_id", "session_key", "status",
                    "completion_status", "started_at", "duration_ms", "model", "provider", "input_tokens",
                    "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens", "is_heartbeat",
                    "cron_run_id", "error", "session_target")


def record_cron_run(conn, row: dict) -> None:
    """Insert a cron run, or fill in what an earlier source did not know. Inside a transaction."""
    columns = [c for c in CRON_RUN_COLUMNS if c in row]
    updates = ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in columns if c != "run_id")
    conn.execute(
        f"INSERT INTO cron_runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT(run_id) DO UPDATE SET {updates}",
        [row[c] for c in columns],
    )


def cron_job_row(job: dict, host_agent=None) -> dict | None:
    """A cron job definition (state DB job_json, jobs.json entry, cron_changed `job`)."""
    if not isinstance(job, dict):
        return None
    job_id = _str(job.get("id") or job.get("jobId"), 300)
    if not job_id:
        return None
    payload = job.get("payload") if isinstance(job.get("payload"), dict) else {}
    schedule = job.get("schedule") if isinstance(job.get("schedule"), dict) else {}
    if schedule.get("kind") == "cron":
        when = f"cron {schedule.get('expr')}"
    elif schedule.get("kind") == "every":
        when = f"every {schedule.get('everyMs')} ms"
    elif schedule.get("kind"):
        when = str(schedule.get("kind"))
    else:
        when = None
    enabled = job.get("enabled")
    return {
        "job_id": job_id,
        "agent": AGENT,
        "host_agent": _str(job.get("agentId"), 200) or host_agent,
        "name": _str(job.get("name"), 200),
        "kind": _str(payload.get("kind"), 40) or _str(job.get("payloadKind"), 40),
        "session_target": _str(job.get("sessionTarget"), 40),
        "schedule": _str(when, 200),
        "enabled": None if enabled is None else int(bool(enabled)),
        "updated_at": timeframe.now_iso(),
    }


def record_cron_job(conn, job: dict, host_agent=None, only_fill: bool = False) -> None:
    row = cron_job_row(job, host_agent)
    if row is None:
        return
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


def job_is_heartbeat(job: dict | None) -> int | None:
    if not isinstance(job, dict):
        return None
    payload = job.get("payload") if isinstance(job.get("payload"), dict) else {}
    kind = payload.get("kind") or job.get("kind")
    name = job.get("name") or ""
    return int(kind == "heartbeat" or (isinstance(name, str) and name.startswith("heartbeat-")))


def ingest_state_db(conn, state_db: str, *, busy_ms: int = 2000, deadline: float | None = None) -> Stats:
    """Cron jobs and run history from OpenClaw's shared state database
    (`cron_jobs`, and `task_runs` rows with runtime 'cron' whose detail is the run log entry)."""
    stats = Stats()
    if not os.path.isfile(state_db):
        return stats
    db = open_readonly(state_db, busy_ms=busy_ms, deadline=deadline)
    try:
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
    finally:
        db.close()
    with transaction(conn):
        for job in jobs.values():
            record_cron_job(conn, job)
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
            row = cron_run_row(detail, host_agent=agent_id, job_name=(job or {}).get("name") or label,
                               is_heartbeat=job_is_heartbeat(job))
            if row:
                if job and not row.get("session_target"):
                    row["session_target"] = _str(job.get("sessionTarget"), 40)
                record_cron_run(conn, row)
                stats.cron_runs += 1
    stats.files = 1
    return stats


def ingest_cron_files(conn, cron_dir: str) -> Stats:
    """Legacy `cron/jobs.json` and `cron/runs/<jobId>.jsonl` (also as `*.migrated`)."""
    stats = Stats()
    jobs = {}
    for name in ("jobs.json", "jobs.json.migrated"):
        try:
            with open(os.path.join(cron_dir, name), "rb") as f:
                data = json.loads(f.read(64 << 20))
        except (OSError, ValueError):
            continue
        items = data.get("jobs") if isinstance(data, dict) else data
        for job in items if isinstance(items, list) else []:
            if isinstance(job, dict) and isinstance(job.get("id"), str):
                jobs[job["id"]] = job
    runs_dir = os.path.join(cron_dir, "runs")
    try:
        names = sorted(os.listdir(runs_dir))
    except OSError:
        names = []
    rows = []
    for name in names:
        if not (name.endswith(".jsonl") or name.endswith(".jsonl.migrated")):
            continue
        path = os.path.join(runs_dir, name)
        try:
            with open(path, "rb") as f:
                lines = f.read(256 << 20).splitlines()
        except OSError:
            continue
        stats.files += 1
        for line in lines:
            entry = load_line(line)
            if not isinstance(entry, dict):
                stats.malformed += bool(line.strip())
                continue
            entry.setdefault("jobId", name.split(".jsonl")[0])
            job = jobs.get(entry.get("jobId"))
            row = cron_run_row(entry, job_name=(job or {}).get("name"), is_heartbeat=job_is_heartbeat(job))
            if row:
                rows.append(row)
    with transaction(conn):
        for job in jobs.values():
            record_cron_job(conn, job)
        for row in rows:
            record_cron_run(conn, row)
    stats.cron_runs = len(rows)
    return stats


# ------------------------------------------------------------------ discovery -------


def default_state_dirs() -> list[str]:
    """$OPENCLAW_STATE_DIR, else $OPENCLAW_HOME/.openclaw, else ~/.openclaw; plus ~/.openclaw-*
    profiles. Only those that exist."""
    found = []
    explicit = os.environ.get("OPENCLAW_STATE_DIR", "").strip()
    if explicit:
        found.append(os.path.expanduser(explicit))
    else:
        home = os.environ.get("OPENCLAW_HOME", "").strip() or os.path.expanduser("~")
        found.append(os.path.join(os.path.expanduser(home), ".openclaw"))
        try:
            for name in sorted(os.listdir(os.path.expanduser(home))):
                if name.startswith(".openclaw-"):
                    found.append(os.path.join(os.path.expanduser(home), name))
        except OSError:
            pass
    out = []
    for folder in found:
        real = os.path.realpath(folder)
        if os.path.isdir(folder) and real not in [os.path.realpath(o) for o in out]:
            out.append(folder)
    return out


def state_dir() -> str:
    """The state dir a hook process runs under (same rules as OpenClaw, profiles aside)."""
    explicit = os.environ.get("OPENCLAW_STATE_DIR", "").strip()
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("OPENCLAW_HOME", "").strip() or os.path.expanduser("~")
    return os.path.join(os.path.expanduser(home), ".openclaw")


def agent_db_path(state: str, agent_id: str) -> str:
    return os.path.join(state, "agents", agent_id, "agent", "openclaw-agent.sqlite")


SKIP_DIRS = ("cold", "tmp", "media", "cache", "node_modules", "extensions", "plugin-skills", "runs", "workspace", ".git")


def discover(folder: str) -> dict:
    """What an `--openclaw-dir` holds: agent stores, transcript files (with their
    sessions.json index), the state database, legacy cron dirs.

    A state dir (it has `agents/`) is searched only where OpenClaw keeps sessions:
    `agents/<id>/agent/openclaw-agent.sqlite`, `agents/<id>/sessions/` (with archives and
    doctor's import archive) and the very old top-level `sessions/` — never the workspace.
    Any other directory (an `agents/<id>` dir, a folder of exported transcripts) is walked."""
    found = {"agent_dbs": [], "files": [], "state_dbs": [], "cron_dirs": []}
    folder = os.path.abspath(folder)
    if os.path.isfile(os.path.join(folder, "state", "openclaw.sqlite")):
        found["state_dbs"].append(os.path.join(folder, "state", "openclaw.sqlite"))
    if os.path.isdir(os.path.join(folder, "cron")):
        found["cron_dirs"].append(os.path.join(folder, "cron"))
    agents = os.path.join(folder, "agents")
    if os.path.isdir(agents):
        roots = [os.path.join(folder, "sessions")]
        for agent in sorted(os.listdir(agents)):
            roots += [os.path.join(agents, agent, "agent"), os.path.join(agents, agent, "sessions")]
            roots += sorted(os.path.join(agents, agent, d) for d in _listdir(os.path.join(agents, agent)) if d.startswith("sessions-"))
    else:
        roots = [folder]
    for top in roots:
        for root, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            if os.path.relpath(root, top).count(os.sep) >= 3:
                dirs[:] = []
            if "openclaw-agent.sqlite" in files:
                found["agent_dbs"].append(os.path.join(root, "openclaw-agent.sqlite"))
            for name in sorted(files):
                if is_transcript_file(name):
                    found["files"].append(os.path.join(root, name))
    return found


def _listdir(path: str) -> list:
    try:
        return os.listdir(path)
    except OSError:
        return []


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


def refresh_cron_runs(conn, run_ids=None) -> None:
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


def import_dirs(conn, folders, *, price, progress=None) -> Stats:
    """`costhook import --openclaw-dir`: agent stores, transcript files and archives, cron
    jobs and run history under each folder; then cron runs are linked to their calls.
    `progress(nbytes)` is called after each store or file. Incremental and idempotent."""
    stats = Stats()
    for folder in folders:
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            continue
        found = discover(folder)
        for db_path in found["agent_dbs"]:
            stats.add(ingest_agent_db(conn, db_path, price=price, busy_ms=5000))
            if progress:
                progress(_size(db_path))
        stats.add(ingest_session_files(conn, found["files"], price=price, progress=progress))
        for state_db in found["state_dbs"]:
            stats.add(ingest_state_db(conn, state_db, busy_ms=5000))
        for cron_dir in found["cron_dirs"]:
            stats.add(ingest_cron_files(conn, cron_dir))
    with transaction(conn):
        refresh_cron_runs(conn)
    return stats


def total_bytes(folders) -> int:
    """Bytes an import will look at (for a progress bar)."""
    total = 0
    for folder in folders:
        if os.path.isdir(folder):
            found = discover(os.fspath(folder))
            total += sum(_size(p) for p in found["agent_dbs"] + found["files"])
    return total


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
