"""Usage records: one dict per billed API call, keyed by the agent's own id of the call.

The same call can be seen many times (one line per streamed content block, resumed
sessions that replay history, re-imports, two hooks at once). `merge_call` is the one
rule for folding two sightings together, used in memory and against the database alike.
Standard library only.
"""

from costhook import jsontext

NANO = 1_000_000_000  # money is integer nano-USD until it is shown
# The agent CLIs whose calls are recorded: `requests.agent`, the views' `--cli` and
# `--by cli`, `cli:<name>` budgets. Not the sub-agent type (`agent_type`, `--by agent`).
AGENT_CLIS = ("claude", "openclaw", "codex")
# A sub-agent whose type nothing names (Claude Code 2.0.x wrote no agent-*.meta.json): it
# is still a sub-agent, never the main thread.
UNKNOWN_SUBAGENT = "(sub-agent)"
NO_TOOL = "(reasoning/answer)"  # what a call that requested no tool is counted under, per tool
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
)
# Fields that describe the usage itself: taken together from the sighting with the most tokens.
USAGE_FIELDS = TOKEN_FIELDS + ("web_search_requests", "speed", "inference_geo", "service_tier", "reported_cost_nanousd",
                               "iterations", "reasoning_tokens")
# Fields that say whose call it was: the main-thread copy wins over a sidechain replay.
ATTRIBUTION_FIELDS = (
    "session_id",
    "parent_session_id",
    "agent_id",
    "agent_type",
    "is_sidechain",
    "project",
    "git_branch",
    "entrypoint",
    "source_path",
)

MAX_COUNT = 10**12
# What one API call can plausibly bill. No model reads or writes a billion tokens in one
# call, nor runs a million web searches: a record beyond these is garbage (or an attack),
# skipped and counted as malformed. The bound also keeps every price, and every sum of
# prices SQLite keeps, far inside its 64-bit integers (at most ~$10^6 a call).
MAX_CALL_TOKENS = 10**9
MAX_CALL_SEARCHES = 10**6
_MERGED_ATTRIBUTION = ATTRIBUTION_FIELDS + ("skill", "prompt_id", "cron_job", "is_heartbeat", "model")


def as_count(value) -> int:
    """A token or request count from untrusted JSON: a non-negative int, else 0."""
    if type(value) is int:  # the usual case, first (a bool's type is not int)
        return value if 0 <= value < MAX_COUNT else 0
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if 0 <= value < MAX_COUNT else 0
    if isinstance(value, float) and value.is_integer() and 0 <= value < MAX_COUNT:
        return int(value)
    return 0


def plausible(record: dict) -> bool:
    """Can one API call have billed this much? (See MAX_CALL_TOKENS.)"""
    get = record.get  # (written out: an import asks this of every line)
    return ((get("input_tokens") or 0) <= MAX_CALL_TOKENS and (get("output_tokens") or 0) <= MAX_CALL_TOKENS
            and (get("cache_write_5m_tokens") or 0) <= MAX_CALL_TOKENS
            and (get("cache_write_1h_tokens") or 0) <= MAX_CALL_TOKENS
            and (get("cache_read_tokens") or 0) <= MAX_CALL_TOKENS
            and (get("web_search_requests") or 0) <= MAX_CALL_SEARCHES)


def total_tokens(record: dict) -> int:
    get = record.get
    return ((get("input_tokens") or 0) + (get("output_tokens") or 0) + (get("cache_write_5m_tokens") or 0)
            + (get("cache_write_1h_tokens") or 0) + (get("cache_read_tokens") or 0))


def merge_call(old: dict, new: dict) -> dict:
    """Fold a new sighting of a call into the stored one.

    Largest token total wins (output tokens grow while a response streams); the earliest
    timestamp is the call's time; tool names accumulate (each content block is its own
    line); attribution comes from the main-thread copy, then the first sighting.
    """
    # (Written for speed: an import folds every streamed line of a call through here.)
    merged = dict(old)
    new_get, old_get, merged_get = new.get, old.get, merged.get
    new_total, old_total = total_tokens(new), total_tokens(old)
    if new_total > old_total:
        for name in USAGE_FIELDS:
            if name in new:
                merged[name] = new[name]
    elif new_total == old_total and new_get("iterations") and not old_get("iterations"):
        merged["iterations"] = new["iterations"]  # the response's last line carries them
    then, now = old_get("timestamp"), new_get("timestamp")
    merged["timestamp"] = min(then, now) if then and now else (then or now or None)
    tools = tool_names(old_get("tools"))
    added = new_get("tools")
    if added:  # (tool_names of nothing is [])
        tools += [t for t in tool_names(added) if t not in tools]
    merged["tools"] = tools
    prefer_new = bool(old_get("is_sidechain")) and not new_get("is_sidechain")
    for name in _MERGED_ATTRIBUTION:
        value = new_get(name)
        if value is not None and (prefer_new or merged_get(name) is None):
            merged[name] = value
    if merged.get("agent_type") == UNKNOWN_SUBAGENT and new.get("agent_type") not in (None, UNKNOWN_SUBAGENT) \
            and new.get("agent_id") == merged.get("agent_id"):
        merged["agent_type"] = new["agent_type"]  # a sighting that knows the sub-agent's type names it
    return merged


def tool_share(value: int, index: int, parts: int) -> int:
    """The index-th of `parts` integer shares of `value`; remainders go to the first shares,
    so the shares add up exactly. The rule for splitting a call's cost and tokens between
    the tools it requested (rollup and row-level reports alike)."""
    return value // parts + (1 if index < value % parts else 0)


def tool_names(tools) -> list:
    """The tool names of a call, from its list or its stored JSON text."""
    if isinstance(tools, str) and tools:
        from costhook import jsontext

        try:
            tools = jsontext.loads(tools)
        except ValueError:
            return []
    return [t for t in tools if isinstance(t, str)] if isinstance(tools, list) else []


# Tools whose calls change something outside the conversation (the idle and efficiency
# views' "useful actions"; store/links.py sums them per turn). MCP tools count when a
# part of their name between underscores says they write (mcp__<server>__create_issue,
# ...send_message, ...). No `json` nor `re`: the hook keeps the turns (jsontext.py).
SIDE_EFFECT_TOOLS = frozenset({
    "Edit", "MultiEdit", "Write", "NotebookEdit", "Bash", "BashOutput", "KillShell", "KillBash",
    # OpenClaw's tool names
    "write", "edit", "apply_patch", "exec", "process", "message", "sessions_send", "cron", "gateway",
})
MCP_WRITE_VERBS = frozenset({
    "create", "update", "delete", "remove", "write", "edit", "post", "send", "add", "set", "put", "patch", "insert",
    "upload", "publish", "merge", "push", "commit", "comment", "close", "reopen", "assign", "move", "rename", "archive",
    "reply", "submit", "run", "execute", "deploy", "trigger", "approve", "invite", "schedule", "start", "stop", "cancel",
    "fork", "label",
})
_actions_cache: dict = {}


def tool_actions(tools_json: str | None) -> int:
    """Side-effecting tools a call requested (Edit, Write, Bash, MCP writes, …), from its
    `tools` column (a JSON array of names)."""
    if not tools_json or tools_json == "[]" or not isinstance(tools_json, str):
        return 0
    cached = _actions_cache.get(tools_json)
    if cached is None:
        try:
            names = jsontext.loads(tools_json)
        except ValueError:
            names = []
        cached = sum(1 for n in names if isinstance(n, str) and is_side_effect(n)) if isinstance(names, list) else 0
        if len(_actions_cache) > 50_000:
            _actions_cache.clear()
        _actions_cache[tools_json] = cached
    return cached


def is_side_effect(name: str) -> bool:
    """Does a tool of this name change something outside the conversation?"""
    if name in SIDE_EFFECT_TOOLS:
        return True
    if name.startswith("mcp__"):
        return not MCP_WRITE_VERBS.isdisjoint(name.split("__", 2)[-1].lower().split("_"))
    return False
