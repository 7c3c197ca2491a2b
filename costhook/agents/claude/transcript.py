"""Claude Code transcript lines → usage records.

One API response is written as several lines (one per content block) that share
`message.id` and `requestId`; output tokens grow from line to line. So this module
only turns lines into per-line records; `usage.merge_call` folds the copies of one call
into one row, here and again in the database (a call can span two reads).

Standard library only: this runs inside the hook.
"""

import os
from bisect import bisect_left

from costhook import jsontext
from costhook.agents.jsonl import load_line
from costhook.paths import read_regular
from costhook.timeframe import utc_timestamp
from costhook.usage import (
    TOKEN_FIELDS,
    UNKNOWN_SUBAGENT,
    as_count,
    merge_call,
    plausible,
)

# Cheap byte tests that decide whether a line is worth parsing at all. A line we care
# about always carries one of these; everything else (attachments, request blobs,
# snapshots, progress) is skipped without json.loads.
_ASSISTANT = b'"assistant"'
_USER = b'"user"'
_COMMAND = b"<command-name>"
_COST_STATE = b'"cost-state"'
MARKERS = (_ASSISTANT, _COMMAND, _COST_STATE)  # parse_block looks at the lines holding one
_TOOL_RESULT = b'"tool_result"'
_AGENT_ID = b"agentId"
# The tools that start a sub-agent: `Task` in Claude Code 2.0.x, `Agent` later.
SPAWN_TOOLS = ("Task", "Agent")
MAX_PENDING_SPAWNS = 64  # spawns awaiting their result, carried between reads (bounded)
# Where a spawn's result names the sub-agent in its text (the structured field is preferred).
AGENT_ID_LABEL = "agentId: "
AGENT_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class FileContext:
    """What the reader knows about a transcript file besides its lines.

    (Plain classes here: importing dataclasses costs the hook ~10 ms.)"""

    __slots__ = ("path", "session_id", "agent_id", "agent_type")

    def __init__(self, path: str, session_id=None, agent_id=None, agent_type=None):
        self.path = path
        self.session_id = session_id  # from the file name; a line's own sessionId wins
        self.agent_id = agent_id  # set for subagents/agent-<id>.jsonl files
        self.agent_type = agent_type  # from the sidecar agent-<id>.meta.json


class ReadState:
    """Attribution carried from line to line (and between incremental reads)."""

    __slots__ = ("skill", "project", "spawns")

    def __init__(self, skill: str | None = None, project: str | None = None, spawns: dict | None = None):
        self.skill = skill  # active slash command or skill
        # The session's project: the directory it started in (Claude Code's project dir,
        # CLAUDE_PROJECT_DIR), whatever `cd` the agent runs later.
        self.project = project
        # tool_use id of a Task/Agent call -> the subagent_type it asked for, until its
        # result names the sub-agent's id (the result can come in a later read).
        self.spawns = spawns if spawns is not None else {}

    def to_json(self) -> str:
        data = {name: getattr(self, name) for name in self.__slots__ if getattr(self, name)}
        return jsontext.dumps(data) if data else ""

    @classmethod
    def from_json(cls, text: str | None) -> "ReadState":
        if not text:
            return cls()
        try:
            data = jsontext.loads(text)
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()
        state = cls(**{name: data[name] for name in ("skill", "project") if isinstance(data.get(name), str)})
        spawns = data.get("spawns")
        if isinstance(spawns, dict):
            state.spawns = {k: v for k, v in spawns.items() if isinstance(k, str) and isinstance(v, str)}
        return state


class ParseResult:
    __slots__ = ("calls", "cost_state", "malformed", "synthetic", "subagents", "unnamed")

    def __init__(self):
        self.calls = {}  # key -> merged record
        self.subagents = {}  # (session id, agent id) -> agent type, as the parent named them
        self.unnamed = set()  # (session id, agent id) of calls stored as UNKNOWN_SUBAGENT
        self.cost_state = None  # last cost-state line: {session_id, total_cost_usd}
        self.malformed = 0
        self.synthetic = 0


def context_for(path: str) -> FileContext:
    """Derive the session / sub-agent identity of a transcript from its path.

    Layout: projects/<cwd>/<session>.jsonl and projects/<cwd>/<session>/subagents/agent-<id>.jsonl
    """
    stem = os.path.basename(path)
    stem = stem[:-6] if stem.endswith(".jsonl") else stem
    parent = os.path.dirname(path)
    if stem.startswith("agent-") and os.path.basename(parent) == "subagents":
        session_dir = os.path.dirname(parent)
        return FileContext(
            path=path,
            session_id=os.path.basename(session_dir),
            agent_id=stem[len("agent-") :],
            agent_type=_read_agent_type(path[:-6] + ".meta.json"),
        )
    return FileContext(path=path, session_id=stem)


def _read_agent_type(meta_path: str) -> str | None:
    try:
        meta = jsontext.loads(read_regular(meta_path, 65536))
    except (OSError, ValueError):
        return None
    value = meta.get("agentType") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def parse_lines(lines, ctx: FileContext, state: ReadState, result: ParseResult | None = None) -> ParseResult:
    """Fold complete transcript lines (bytes, with or without the newline) into `result`."""
    result = result or ParseResult()
    for raw in lines:
        _line(raw, ctx, state, result)
    return result


def _line(raw: bytes, ctx: FileContext, state: ReadState, result: ParseResult) -> None:
    if _ASSISTANT in raw:
        _assistant_line(raw, ctx, state, result)
    elif _USER in raw:
        if _COMMAND in raw:
            _command_line(raw, state, result)
        elif state.skill is not None:
            _maybe_new_prompt(raw, state)
        if state.spawns and _TOOL_RESULT in raw and _AGENT_ID in raw:
            _spawn_result(raw, ctx, state, result)
    elif _COST_STATE in raw:
        _cost_state_line(raw, result)


def parse_block(data: bytes, ctx: FileContext, state: ReadState, result: ParseResult | None = None) -> ParseResult:
    """parse_lines of the lines in `data` (each ending with a newline but perhaps the
    last), without splitting it into lines: one `find` over the whole block per marker.

    A line that holds none of `"assistant"`, `<command-name>` and `"cost-state"` changes
    nothing while no slash command is active and no sub-agent spawn awaits its result;
    then `"user"` is a marker too (a prompt ends the command, a tool result names the
    sub-agent). Each line holding a marker goes through the same tests as in parse_lines."""
    result = result or ParseResult()
    size = len(data)
    find, rfind = data.find, data.rfind
    if _find_markers is None:
        markers = MARKERS
        found = [find(marker) for marker in markers]
    else:  # (every marker's start, in order: see use_marker_finder)
        hits, next_hit = _find_markers(data), 0
    user = -2  # where the next `"user"` is (-2: not looked for since pos moved past it)
    pos = 0
    while pos < size:
        hit = -1
        if _find_markers is None:
            for i, at in enumerate(found):
                if 0 <= at < pos:
                    at = found[i] = find(markers[i], pos)
                if at >= 0 and (hit < 0 or at < hit):
                    hit = at
        else:
            next_hit = bisect_left(hits, pos, next_hit)  # (past the line just read: a line often holds two)
            if next_hit < len(hits):
                hit = hits[next_hit]
        if state.skill is not None or state.spawns:
            if user < pos and user != -1:
                user = find(_USER, pos)
            if user >= 0 and (hit < 0 or user < hit):
                hit = user
        if hit < 0:
            break
        begin = rfind(b"\n", pos, hit) + 1 or pos
        end = find(b"\n", hit)
        if end < 0:
            end = size
        if data.startswith(_ASSISTANT, hit):  # (what _line would find first: no second scan of the line)
            _assistant_line(data[begin:end], ctx, state, result)
        else:
            _line(data[begin:end], ctx, state, result)
        pos = end + 1
    return result


_fast_assistant = None  # a faster reader of assistant lines (use_assistant_reader), for imports
_find_markers = None  # a finder of every marker's start in a block (use_marker_finder), for imports


def use_marker_finder(finder) -> None:
    """Find the MARKERS in parse_block's blocks with `finder(data) -> [start, ...]`
    (fastparse.marker_finder: `costhook import` only): where each of them begins, in
    order, quicker than a `find` per marker. It may leave out a marker that overlaps
    another: the line holding them is read either way."""
    global _find_markers
    _find_markers = finder


def use_assistant_reader(reader) -> None:
    """Read assistant lines with `reader(raw) -> tuple | None` first (fastparse.assistant_line:
    `costhook import` only): the fields _assistant_fields gives, or None: read the line the
    standard way."""
    global _fast_assistant
    _fast_assistant = reader


def _assistant_line(raw: bytes, ctx: FileContext, state: ReadState, result: ParseResult) -> None:
    fields = _fast_assistant(raw) if _fast_assistant is not None else None
    if fields is None:
        fields = _assistant_fields(raw, state, result)
        if fields is None:
            return
    content, model, message_id, usage, request_id, agent_id, session_id, sidechain, cwd, branch, stamp, entrypoint = fields
    tools, skill_called = _tools_requested(content, state)
    if model == "<synthetic>":
        result.synthetic += 1
        return
    if usage is None or not isinstance(model, str) or not model:
        return
    if not isinstance(message_id, str) or not message_id:
        return
    request_id = request_id if isinstance(request_id, str) else ""
    agent_id = agent_id if isinstance(agent_id, str) and agent_id else ctx.agent_id
    record = usage_record(*usage)
    if not plausible(record):
        result.malformed += 1
        return
    session_id = session_id if isinstance(session_id, str) and session_id else ctx.session_id
    agent_type = _agent_type(ctx, session_id, agent_id, result)
    # (Assigned one by one, in this order: an update(**fields) builds a second dict per line.)
    record["key"] = key = f"{message_id}:{request_id}"
    record["agent"] = "claude"
    record["message_id"] = message_id
    record["request_id"] = request_id or None
    record["session_id"] = session_id
    record["agent_id"] = agent_id
    record["agent_type"] = agent_type
    record["is_sidechain"] = sidechain = int(bool(sidechain) or ctx.agent_id is not None)
    record["project"] = state.project or _first_project(state, cwd)
    record["git_branch"] = _str(branch)
    record["timestamp"] = utc_timestamp(stamp)
    record["model"] = model
    record["tools"] = tools
    record["skill"] = state.skill
    record["entrypoint"] = _str(entrypoint)
    record["source_path"] = ctx.path
    if sidechain or agent_id:
        record["parent_session_id"] = session_id
    previous = result.calls.get(key)
    result.calls[key] = merge_call(previous, record) if previous else record
    if skill_called:
        state.skill = skill_called


def _assistant_fields(raw: bytes, state: ReadState, result: ParseResult) -> tuple | None:
    """What _assistant_line reads of a line, as read by the standard parser: (content,
    model, message id, usage values (usage_record's arguments) or None when `usage` is not
    an object, requestId, agentId, sessionId, isSidechain, cwd, gitBranch, timestamp,
    entrypoint), unchecked; None when the line is not an assistant message (a user line
    naming "assistant" is read as a user line; a line that is not JSON is malformed)."""
    line = load_line(raw)
    if not isinstance(line, dict):
        result.malformed += 1
        return None
    get = line.get
    if get("type") != "assistant":
        if get("type") == "user":
            _user_record(line, state)
        return None
    message = line.get("message")
    if not isinstance(message, dict):
        return None
    usage = message.get("usage")
    return (message.get("content"), message.get("model"), message.get("id"),
            _usage_values(usage) if isinstance(usage, dict) else None, get("requestId"), get("agentId"),
            get("sessionId"), get("isSidechain"), get("cwd"), get("gitBranch"), get("timestamp"), get("entrypoint"))


def _agent_type(ctx: FileContext, session_id, agent_id, result: ParseResult) -> str | None:
    """The sub-agent's type from its .meta.json; without one, UNKNOWN_SUBAGENT, noted so that
    a name its parent gave (stored, or read in the same batch) replaces it (ingest.commit)."""
    agent_type = ctx.agent_type or (UNKNOWN_SUBAGENT if agent_id else None)
    if agent_type == UNKNOWN_SUBAGENT:
        result.unnamed.add((session_id, agent_id))
    return agent_type


def _usage_values(usage: dict) -> tuple:
    """usage_record's arguments, from a `usage` object as JSON gives it."""
    get = usage.get
    split = get("cache_creation")
    server = get("server_tool_use")
    return (as_count(get("input_tokens")), as_count(get("output_tokens")), as_count(get("cache_creation_input_tokens")),
            as_count(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0,
            as_count(get("cache_read_input_tokens")),
            as_count(server.get("web_search_requests")) if isinstance(server, dict) else 0,
            get("speed"), get("inference_geo"), get("service_tier"), get("iterations"))


def usage_record(input_tokens: int, output_tokens: int, cache_write: int, write_1h: int, cache_read: int,
                 web_searches: int, speed, inference_geo, service_tier, iterations) -> dict:
    """A call record's usage fields from a line's `usage` (counts as usage.as_count reads
    them; the other values as the line has them)."""
    # A write without the 5 min / 1 h breakdown is a 5-minute write.
    write_1h = min(write_1h, cache_write)
    record = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_write_5m_tokens": cache_write - write_1h,
        "cache_write_1h_tokens": write_1h,
        "cache_read_tokens": cache_read,
        "web_search_requests": web_searches,
        "speed": _str(speed),
        "inference_geo": _str(inference_geo),
        "service_tier": _str(service_tier),
        "iterations": None,
    }
    if iterations:  # most lines: absent, null or []
        record["iterations"] = _iterations(iterations, record, write_1h)
    return record


_MAX_ITERATIONS = 100
_MESSAGE_TYPES = ("message", "fallback_message")


def _iterations(value, top: dict, top_1h: int) -> str | None:
    """`usage.iterations` as stored (JSON text, see store.migrations.m006), or None when
    it says nothing the top-level counts do not: absent, one plain `message` sampling
    equal to the top level, or malformed (then the top level is all we can trust).

    A sampling without the 5 min / 1 h split of its cache writes gets the 1 h writes of
    the top level that no other sampling claims, message samplings first, in order (as
    Claude Code distributes them)."""
    if not isinstance(value, list) or not value or len(value) > _MAX_ITERATIONS:
        return None
    out, unsplit = [], []
    for item in value:
        if not isinstance(item, dict):
            return None
        kind, model = item.get("type"), item.get("model")
        if not isinstance(kind, str) or not kind or len(kind) > 64:
            return None
        write = as_count(item.get("cache_creation_input_tokens"))
        split = item.get("cache_creation")
        entry = {"type": kind}
        if isinstance(model, str) and model:
            entry["model"] = model[:200]
        entry["input_tokens"] = as_count(item.get("input_tokens"))
        entry["output_tokens"] = as_count(item.get("output_tokens"))
        if isinstance(split, dict):
            write_1h = min(as_count(split.get("ephemeral_1h_input_tokens")), write)
        else:
            write_1h = 0
            if kind in _MESSAGE_TYPES:
                unsplit.append(entry)
        entry["cache_write_5m_tokens"] = write - write_1h
        entry["cache_write_1h_tokens"] = write_1h
        entry["cache_read_tokens"] = as_count(item.get("cache_read_input_tokens"))
        out.append(entry)
    # Bounded like one call's top level (usage.MAX_CALL_TOKENS), all samplings together.
    if not plausible({name: sum(e[name] for e in out) for name in TOKEN_FIELDS}):
        return None
    unclaimed = top_1h - sum(e["cache_write_1h_tokens"] for e in out if e["type"] in _MESSAGE_TYPES)
    for entry in unsplit:
        moved = max(0, min(unclaimed, entry["cache_write_5m_tokens"]))
        entry["cache_write_5m_tokens"] -= moved
        entry["cache_write_1h_tokens"] += moved
        unclaimed -= moved
    if len(out) == 1 and out[0]["type"] == "message" and "model" not in out[0] \
            and all(out[0][name] == top[name] for name in TOKEN_FIELDS):
        return None
    return jsontext.dumps(out, separators=(",", ":"))


def _tools_requested(content, state: ReadState) -> tuple[list, str | None]:
    """Names of the tools a response asked for (MCP names kept whole), and a Skill it invoked.
    A Task/Agent call's subagent_type (a name, nothing else of its input) is noted in
    `state.spawns` until its result names the sub-agent."""
    if not isinstance(content, list):
        return [], None
    names, skill = [], None
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        name = block.get("name")
        if isinstance(name, str) and name and name not in names:
            names.append(name)
        if name in SPAWN_TOOLS:
            _note_spawn(block, state)
        if name == "Skill":
            args = block.get("input")
            if isinstance(args, dict):
                value = args.get("skill") or args.get("command")
                skill = value if isinstance(value, str) and is_command_name(value) else skill
    return names, skill


def _note_spawn(block: dict, state: ReadState) -> None:
    args, tool_use_id = block.get("input"), block.get("id")
    kind = args.get("subagent_type") if isinstance(args, dict) else None
    if isinstance(tool_use_id, str) and isinstance(kind, str) and is_command_name(kind) and len(tool_use_id) <= 200:
        if len(state.spawns) >= MAX_PENDING_SPAWNS:
            del state.spawns[next(iter(state.spawns))]  # the oldest: a spawn whose result never came
        state.spawns[tool_use_id] = kind


def _spawn_result(raw: bytes, ctx: FileContext, state: ReadState, result: ParseResult) -> None:
    """The result of a Task/Agent call names the sub-agent it ran (`toolUseResult.agentId`,
    or `agentId: <id>` in its text): that sub-agent's calls are of the type the call asked
    for. Only ids and names are read."""
    line = load_line(raw)
    if not isinstance(line, dict) or line.get("type") != "user":
        return
    message = line.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return
    session_id = _str(line.get("sessionId")) or ctx.session_id
    results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    # toolUseResult describes the line's one tool result; with several, each one's text must say.
    extra = line.get("toolUseResult") if len(results) == 1 else None
    for block in results:
        kind = state.spawns.pop(block.get("tool_use_id"), None) if isinstance(block.get("tool_use_id"), str) else None
        if kind is None:
            continue
        agent_id = extra.get("agentId") if isinstance(extra, dict) else None
        if not isinstance(agent_id, str):
            agent_id = _agent_id_in_text(block.get("content"))
        if isinstance(agent_id, str) and 0 < len(agent_id) <= 100 and "/" not in agent_id and session_id:
            result.subagents[(session_id, agent_id)] = kind


def _agent_id_in_text(content) -> str | None:
    texts = [content] if isinstance(content, str) else [
        b.get("text") for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)
    ] if isinstance(content, list) else []
    for text in texts:
        found = agent_id_in(text)
        if found:
            return found
    return None


def agent_id_in(text: str) -> str | None:
    """The first `agentId: <id>` in `text` (1–100 of [A-Za-z0-9_-]); no `re` on the hook path."""
    start = text.find(AGENT_ID_LABEL)
    while start >= 0:
        begin = end = start + len(AGENT_ID_LABEL)
        while end < len(text) and end - begin < 100 and text[end] in AGENT_ID_CHARS:
            end += 1
        if end > begin:
            return text[begin:end]
        start = text.find(AGENT_ID_LABEL, begin)
    return None


def _command_line(raw: bytes, state: ReadState, result: ParseResult) -> None:
    line = load_line(raw)
    if not isinstance(line, dict):
        result.malformed += 1
        return
    if line.get("type") == "user":
        _user_record(line, state)


def _maybe_new_prompt(raw: bytes, state: ReadState) -> None:
    """A human prompt ends the active slash command's turn (called only while one is active).
    Only parse when the line might be a prompt."""
    if b'"tool_result"' in raw or b'"isMeta":true' in raw:
        return
    line = load_line(raw)
    if isinstance(line, dict) and line.get("type") == "user":
        _user_record(line, state)


def _user_record(line: dict, state: ReadState) -> None:
    if line.get("isMeta") or line.get("isSidechain"):
        return
    message = line.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    text = content if isinstance(content, str) else None
    if isinstance(content, list):
        if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return  # a tool result continues the turn
        text = " ".join(b.get("text", "") for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    if text is None:
        return
    state.skill = _command_name(text)


def _command_name(text: str) -> str | None:
    """The slash command or skill a prompt runs, from Claude Code's own wrapper at the very
    start of the prompt: an optional `<command-message>…</command-message>`, then
    `<command-name>NAME</command-name>` (closed), NAME of command syntax. Anything else is
    the user's text, which is never stored, however much it looks like the wrapper."""
    text = text.lstrip()
    if text.startswith("<command-message>"):
        end = text.find("</command-message>", 0, 1000)
        if end < 0:
            return None
        text = text[end + len("</command-message>"):].lstrip()
    if not text.startswith("<command-name>"):
        return None
    end = text.find("</command-name>", 0, 200)
    if end < 0:
        return None
    name = text[len("<command-name>"):end].strip()
    return name if is_command_name(name) else None


def is_command_name(name: str) -> bool:
    """`/deploy`, `review`, `frontend-design:ship`: an optional slash, then 1–100 word
    characters, colons, dots or dashes."""
    body = name[1:] if name.startswith("/") else name
    return 0 < len(body) <= 100 and all(c.isalnum() or c in "_:.-" for c in body)


def _cost_state_line(raw: bytes, result: ParseResult) -> None:
    line = load_line(raw)
    if not isinstance(line, dict) or line.get("type") != "cost-state":
        return
    total = line.get("totalCostUSD")
    if isinstance(total, (int, float)) and not isinstance(total, bool) and 0 <= total < 1e9:
        result.cost_state = {"session_id": _str(line.get("sessionId")), "total_cost_usd": total}


def _first_project(state: ReadState, cwd) -> str | None:
    """The first working directory a transcript names is its session's project."""
    state.project = _str(cwd)
    return state.project


def _str(value) -> str | None:
    return value[:1000] if value and isinstance(value, str) else None
