"""OpenClaw transcript events → call records (the words every OpenClaw reader shares).

OpenClaw (2026.9) writes one transcript event per assistant message, user message, model
change, ... — in its per-agent SQLite store (their_db.py) and, in older installs and
archives, as JSON Lines files with the very same event objects (files.py). Cron jobs and
their run history are read by cron.py; where all of it lives on disk is paths.py.

One row per assistant message that carries `usage` (one billed model call), keyed
`openclaw:<responseId>@<message timestamp>` — the same key whether the message comes from
the live hook (before_message_write / agent_end), the SQLite store or a file, so every
path deduplicates against the others. Prompt text, tool arguments and tool output are
read only to classify a turn (heartbeat, cron, acknowledgement) and are never stored.

Standard library only, so the hook can use it; `zstandard` (or Python 3.14's
`compression.zstd`) is imported only when a compressed row or archive is met.
"""

from __future__ import annotations

import json
import time

from costhook.timeframe import utc_timestamp
from costhook.usage import NANO, as_count, plausible

AGENT = "openclaw"
KEY_PREFIX = "openclaw:"
HEARTBEAT_POLL = "[OpenClaw heartbeat poll]"
ACK_TOKENS = ("HEARTBEAT_OK", "NO_REPLY")
ACK_MAX_EXTRA = 300  # OpenClaw drops a HEARTBEAT_OK reply with at most this much else in it
HEAD_BYTES = 256  # how much of a transcript's beginning identifies it (a rewrite replaces it)
MAX_EVENT_BYTES = 16 << 20


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
        return value * NANO
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


def clip(value, limit: int = 1000) -> str | None:
    """A non-empty string cut to `limit` characters; None for anything else."""
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
    response_id = clip(message.get("responseId"), 300)
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
    model = clip(message.get("model"), 300) or fallback_model
    run_id = None
    marks = message.get("__openclaw")
    if isinstance(marks, dict):
        run_id = clip(marks.get("runId"), 300)
    record.update(
        key=key,
        agent=AGENT,
        message_id=clip(entry_id, 300),
        request_id=clip(message.get("responseId"), 300),
        timestamp=iso_from_ms(message.get("timestamp")) or utc_timestamp(entry_timestamp),
        model=model,
        provider=clip(message.get("provider"), 200) or fallback_provider,
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
            state.session_id = state.session_id or clip(event.get("id"), 300)
            state.project = clip(event.get("cwd")) or state.project
            stamp = utc_timestamp(event.get("timestamp"))
            if stamp and (result.first_timestamp is None or stamp < result.first_timestamp):
                result.first_timestamp = stamp
        elif kind == "model_change":
            state.model = clip(event.get("modelId"), 300) or state.model
            state.provider = clip(event.get("provider"), 200) or state.provider
        elif kind == "custom" and event.get("customType") == "model-snapshot" and isinstance(event.get("data"), dict):
            state.model = clip(event["data"].get("modelId"), 300) or state.model
            state.provider = clip(event["data"].get("provider"), 200) or state.provider
    return result


def _user_turn(event: dict, message: dict, state: ReadState, result: ParseResult) -> None:
    """A user message starts a turn: a heartbeat poll, a cron run, or ordinary work."""
    provenance = message.get("provenance") if isinstance(message.get("provenance"), dict) else {}
    text = text_of(message.get("content"), 600).lstrip()
    state.turn = clip(event.get("id"), 300)
    state.heartbeat = provenance.get("sourceTool") == "heartbeat" or text.strip() == HEARTBEAT_POLL
    state.cron_job = None
    if state.heartbeat:
        return
    job, name = None, None
    if provenance.get("sourceTool") == "cron":
        job = clip(provenance.get("jobId"), 300)
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
        entry_id=clip(event.get("id"), 300),
        entry_timestamp=event.get("timestamp"),
        fallback_model=state.model,
        fallback_provider=state.provider,
    )
    if record is None:
        return
    if not plausible(record):
        result.malformed += 1
        return
    previous = result.calls.get(record["key"])
    if previous is None or _tokens(record) > _tokens(previous):
        result.calls[record["key"]] = record


def _tokens(record: dict) -> int:
    return sum(record.get(k) or 0 for k in ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_read_tokens"))


def session_facts(meta: SessionMeta, state: ReadState, result: ParseResult) -> dict:
    """{session id: what a parsed batch taught about the session}, for writes.write_calls."""
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
    """Counts from one ingest (SQLite sessions, files or cron history); every reader in
    this folder returns one, and import_dirs adds them up."""

    __slots__ = ("sessions", "files", "events", "calls", "changed", "malformed", "bytes_read", "busy",
                 "skipped_compressed", "cron_runs")

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, 0)

    def add(self, other: "Stats") -> "Stats":
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


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
