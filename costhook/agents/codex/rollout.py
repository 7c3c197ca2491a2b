"""Codex rollout lines → usage records, one per billed response.

A Codex session (a "thread") appends JSON lines to
`$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<local time>-<thread id>.jsonl`. Codex writes a
`token_usage_record` line for every response that carried usage, at `response.completed`,
with the response's id: that is the per-call source (`token_count` events are not: they
come late, repeat around a compaction and are sometimes zero estimates). A compaction
repeats the record it was billed for as `compacted.latest_token_usage_record`: the same
key, so it folds into the same row. The model is the requested slug of the record's turn
(`turn_context.model`, by `turn_id`); the time is the line's timestamp.

OpenAI counts `input_tokens` with the cached tokens in it, and `output_tokens` with the
reasoning in it. costhook's columns mean the same for every agent: `input_tokens` is the
uncached input, `cache_read_tokens` the cached, `cache_write_5m_tokens` the cache writes,
`output_tokens` everything billed as output (reasoning included) and `reasoning_tokens`
the reasoning part of it, so `input + cache read + cache write + output` is OpenAI's
`total_tokens`, and the long-context tier sees the whole prompt.

Sub-agents and the auto-review guardian write rollouts of their own in the same tree:
their `session_meta.session_id` is the root session and `parent_thread_id` their parent.
Their rows belong to the root session, with the thread as `agent_id` and the kind of
agent as `agent_type`.

Standard library only: this runs inside the hook.
"""

from costhook import jsontext
from costhook.agents.jsonl import load_line
from costhook.timeframe import utc_timestamp
from costhook.usage import as_count, plausible

MAX_ID = 200  # ids, slugs and names longer than this are not Codex's: cut
MAX_TURNS = 16  # turn id -> model pairs carried between reads (a record's turn is recent)
MAX_TOOLS = 64
# Cheap byte tests: a line without one of these is skipped before json.loads (most of a
# rollout is messages, tool output and world state).
_WANTED = (b'"token_usage_record"', b'"turn_context"', b'"session_meta"', b'"function_call"',
           b'"custom_tool_call"', b'"web_search_call"', b'"local_shell_call"', b'"compacted"',
           b'"thread_settings_applied"')
TOOL_ITEMS = {"function_call", "custom_tool_call", "local_shell_call", "web_search_call"}


def text(value, limit: int = MAX_ID) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


class ReadState:
    """What a file's earlier lines said, carried between incremental reads (as JSON in the
    cursor): whose thread it is, the model of recent turns, the service tier, and the
    tools requested since the last record (they belong to the next one)."""

    __slots__ = ("thread", "session", "parent", "agent_type", "project", "branch", "originator", "turns", "tier",
                 "tools", "searches")

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))
        self.turns = self.turns if isinstance(self.turns, dict) else {}
        self.tools = self.tools if isinstance(self.tools, list) else []
        self.searches = as_count(self.searches)

    def to_json(self) -> str:
        return jsontext.dumps({name: getattr(self, name) for name in self.__slots__ if getattr(self, name)})

    @classmethod
    def from_json(cls, value: str | None) -> "ReadState":
        try:
            data = jsontext.loads(value) if value else {}
        except ValueError:
            data = {}
        return cls(**data) if isinstance(data, dict) else cls()


class ParseResult:
    __slots__ = ("calls", "lines", "malformed", "sessions")

    def __init__(self):
        self.calls = {}  # key -> record
        self.lines = 0
        self.malformed = 0
        self.sessions = {}  # session id -> facts (project, started_at, ...)


def parse_lines(lines, path: str, state: ReadState) -> ParseResult:
    """Fold complete rollout lines into call records (see the module's docstring)."""
    result = ParseResult()
    for raw in lines:
        result.lines += 1
        if not any(marker in raw for marker in _WANTED):
            continue
        line = load_line(raw)
        if not isinstance(line, dict) or not isinstance(line.get("payload"), dict):
            result.malformed += line is None
            continue
        kind, payload = line.get("type"), line["payload"]
        if kind == "token_usage_record":
            add_record(result, state, payload, line.get("timestamp"), path)
        elif kind == "compacted" and isinstance(payload.get("latest_token_usage_record"), dict):
            add_record(result, state, payload["latest_token_usage_record"], line.get("timestamp"), path, repeat=True)
        elif kind == "turn_context":
            turn, model = text(payload.get("turn_id")), text(payload.get("model"))
            if turn and model:
                state.turns.pop(turn, None)
                state.turns[turn] = model
                while len(state.turns) > MAX_TURNS:
                    del state.turns[next(iter(state.turns))]
        elif kind == "response_item":
            note_tool(state, payload)
        elif kind == "session_meta":
            read_meta(state, payload, line.get("timestamp"), result)
        elif kind == "event_msg" and payload.get("type") == "thread_settings_applied":
            settings = payload.get("thread_settings")
            if isinstance(settings, dict) and "service_tier" in settings:
                state.tier = text(settings.get("service_tier"), 40)
    return result


def read_meta(state: ReadState, meta: dict, stamp, result: ParseResult) -> None:
    """The thread's first line: who it is, under which root session, which kind of agent."""
    state.thread = text(meta.get("id")) or state.thread
    state.session = text(meta.get("session_id")) or state.session or state.thread
    state.parent = text(meta.get("parent_thread_id"))
    state.agent_type = agent_type_of(meta.get("source"), meta.get("thread_source"))
    state.project = text(meta.get("cwd"), 4096) or state.project
    git = meta.get("git")
    state.branch = text(git.get("branch"), 400) if isinstance(git, dict) else None
    state.originator = text(meta.get("originator"), 100)
    if state.session and state.agent_type is None:
        result.sessions[state.session] = {"project": state.project, "git_branch": state.branch,
                                          "started_at": utc_timestamp(meta.get("timestamp") or stamp),
                                          "entrypoint": state.originator}


def agent_type_of(source, thread_source) -> str | None:
    """None on a root thread; else the kind of sub-agent: its role when spawned by the
    model ("default" when the spawn named none), "guardian" for the auto-reviewer, or
    whatever other kind Codex names (review, compact, ...)."""
    if not isinstance(source, dict) or "subagent" not in source:
        return "guardian" if thread_source == "guardian_review" else None
    sub = source["subagent"]
    if isinstance(sub, str):
        return text(sub, 100) or "(sub-agent)"
    if isinstance(sub, dict):
        spawn = sub.get("thread_spawn")
        if isinstance(spawn, dict):
            return text(spawn.get("agent_role"), 100) or text(spawn.get("agent_type"), 100) or "default"
        if "other" in sub:
            return text(sub.get("other"), 100) or "(sub-agent)"
        for name in sub:
            return text(name, 100) or "(sub-agent)"
    return "(sub-agent)"


def note_tool(state: ReadState, item: dict) -> None:
    """A tool the model asked for: counted against the next record of the thread."""
    kind = item.get("type")
    if kind not in TOOL_ITEMS or len(state.tools) >= MAX_TOOLS:
        return
    if kind == "web_search_call":
        state.searches += 1  # OpenAI bills the hosted web search per call
        name = "web_search"
    elif kind == "local_shell_call":
        name = "local_shell"
    else:
        name = text(item.get("name"))
        namespace = text(item.get("namespace"))
        if name and namespace:
            name = f"{namespace}.{name}"[:MAX_ID]
    if name and name not in state.tools:
        state.tools.append(name)


def add_record(result: ParseResult, state: ReadState, record: dict, stamp, path: str, repeat: bool = False) -> None:
    usage = record.get("usage")
    response = text(record.get("response_id"))
    thread = text(record.get("thread_id")) or state.thread
    if not isinstance(usage, dict) or not response or not thread:
        result.malformed += 1
        return
    prompt = as_count(usage.get("input_tokens"))
    cached = min(as_count(usage.get("cached_input_tokens")), prompt)
    written = min(as_count(usage.get("cache_write_input_tokens")), prompt - cached)
    output = as_count(usage.get("output_tokens"))
    session = text(record.get("session_id")) or state.session or thread
    turn = text(record.get("turn_id"))
    sub = thread != session
    call = {
        "key": f"{thread}:{response}",
        "agent": "codex",
        "message_id": response,
        "session_id": session,
        "parent_session_id": session if sub else None,
        "agent_id": thread if sub else None,
        "agent_type": (state.agent_type or "(sub-agent)") if sub else None,
        "is_sidechain": int(sub),
        "project": state.project,
        "git_branch": state.branch,
        "timestamp": utc_timestamp(stamp),
        "model": state.turns.get(turn) if turn else None,
        "input_tokens": prompt - cached - written,
        "output_tokens": output,
        "cache_write_5m_tokens": written,
        "cache_write_1h_tokens": 0,
        "cache_read_tokens": cached,
        "reasoning_tokens": min(as_count(usage.get("reasoning_output_tokens")), output),
        "web_search_requests": 0 if repeat else state.searches,
        "service_tier": state.tier,
        "tools": [] if repeat else list(state.tools),
        "prompt_id": turn,
        "entrypoint": state.originator,
        "source_path": path,
    }
    if call["model"] is None and not repeat:
        call["model"] = next(reversed(state.turns.values()), None) if state.turns else None
    if not plausible(call):
        result.malformed += 1
        return
    if not repeat:
        state.tools, state.searches = [], 0
    known = result.calls.get(call["key"])
    if known is None:
        result.calls[call["key"]] = call
    else:  # a compaction's copy of a record read in the same batch: the first stays
        for name, value in call.items():
            if known.get(name) is None and value is not None:
                known[name] = value
