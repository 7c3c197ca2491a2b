"""`costhook hook --agent codex`: one Codex hook event → catch up its rollouts, decide.

The handlers run inside agents.runtime.run_hook (fail-open: an internal error exits 0,
no output, one line in errors.log): standard library and costhook's stdlib-only modules,
each imported by the handler that needs it.

Budgets at Codex's gates (0.171.0, measured in /work/shared/e2e-codex and by
tests/e2e/test_codex_budgets_e2e.py):

- **UserPromptSubmit** `{"decision": "block", "reason": ...}` stops the prompt before any
  API call (the prompt is not even written to the rollout). The TUI shows the reason;
  `codex exec` prints only "hook: UserPromptSubmit Blocked" and exits 0.
- **PreToolUse** `permissionDecision: "deny"` refuses the command, but the turn goes on:
  Codex sends the refusal to the model as the tool's output, which is **one more billed
  call per refused tool call**, and `continue: false` is ignored there. No hook ends a
  running turn. So the reason tells the model that every tool is refused and to end its
  turn now: a model that follows it makes exactly one more call; one that insists pays
  one call per tool call it still asks for, and none of those tools runs.
- **PermissionRequest** (only when an approval is needed) `decision.behavior: "deny"`:
  the same as a PreToolUse deny.
- **PostToolUse** of a tool during which a sub-agent spent (`collaboration…`): a block
  replaces the tool's output with the reason (the tool has run), so the model learns
  one call earlier.
- **Stop** never blocks: a Stop block makes the turn go on, billed.

Capture (every event, issue 16 item 1): Codex writes a response's `token_usage_record` to
the rollout at `response.completed`, before the tool it asks for is announced. `catch_up`
reads the new bytes of the session's rollouts (agents/codex/ingest.py, incremental from
byte offsets): the hook's `transcript_path` and, at the events that close a turn, every
rollout of its day's folder changed since the session began — sub-agents and the
auto-review guardian write their own files there, and no hook names the guardian's. It
records the session (SessionStart, SessionEnd) and each tool call (PostToolUse: name, id,
sizes, never the input or output).
"""

import os
import time

from costhook import jsontext
from costhook.agents import runtime
from costhook.agents.runtime import log_error, open_db, user_config

GATES = ("UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse")
# Codex's namespaced tools reach hooks concatenated (`collaborationspawn_agent`): these
# run sub-agents, which spend while the tool runs.
SPENDING_TOOL_PREFIX = "collaboration"
SPAWN_TOOL = "collaborationspawn_agent"
HOOK_MAX_BYTES = 16 << 20  # a gate deciding a budget reads at most this much backlog first
# Events after which there is something new to read: a response's record, a compaction,
# a sub-agent's work; in the background (a gate without budgets has nothing to decide).
INGESTING = ("SessionStart", "PostToolUse", "PreCompact", "PostCompact", "SubagentStart", "SubagentStop", "Stop",
             "SessionEnd")
REFUSE_ALL = (" Every tool call is refused until then: do not call any more tools;"
              " tell the user the budget is spent and end your turn now.")


def handle(payload: dict) -> dict | None:
    """The answer to one Codex hook event (None: nothing to say). An event that can decide
    nothing goes on in the background at once: Codex waits for no recording."""
    event = Event(payload)
    if event.name not in GATES and event.name not in INGESTING:
        return None  # an event we don't use (Interrupt, ...): nothing to do or say
    if not runtime.BACKGROUND and not decides(event):
        runtime.go_background()
    catch_up(event)
    if runtime.BACKGROUND:
        return None
    return decide(event)


class Event:
    """Typed access to the fields of a hook payload, tolerant of missing or wrong types."""

    def __init__(self, payload: dict):
        self.payload = payload

    def text(self, name: str, limit: int = 4096) -> str | None:
        value = self.payload.get(name)
        return value[:limit] if isinstance(value, str) and value else None

    @property
    def name(self) -> str | None:
        return self.text("hook_event_name")

    @property
    def session_id(self) -> str | None:
        return self.text("session_id", 200)

    def rollout(self, name: str = "transcript_path") -> str | None:
        """A rollout path from the payload: only an absolute `rollout-*.jsonl`."""
        path = self.text(name)
        if not path or not os.path.isabs(path) or "\x00" in path:
            return None
        base = os.path.basename(path)
        return path if base.startswith("rollout-") and base.endswith(".jsonl") else None


def decides(event: Event) -> bool:
    """Whether this event's answer can change what Codex does: a prompt or a tool with
    budgets configured; after a tool, only one during which a sub-agent spent (after any
    other, the spend is what that tool's PreToolUse judged: Codex writes a response's
    usage record before the tool it asks for is announced)."""
    if event.name not in GATES:
        return False
    if event.name == "PostToolUse" and not (event.text("tool_name") or "").startswith(SPENDING_TOOL_PREFIX):
        return False
    return bool(user_config().get("budgets"))


def catch_up(event: Event) -> None:
    """Read what the rollouts hold that costhook has not stored yet (agents/codex ingest);
    before a decision, within the deciding busy timeout (runtime.deciding), at most
    HOOK_MAX_BYTES a file. Records the session and the tool call its event tells of."""
    name = event.name
    if name == "SessionStart":
        record_session(event, started=True)
    elif name == "SessionEnd":
        from costhook.timeframe import now_iso

        record_session(event, ended_at=now_iso(), end_reason=event.text("reason", 100))
    if not runtime.BACKGROUND:
        try:
            with runtime.deciding():
                ingest_paths(session_rollouts(event), max_bytes=HOOK_MAX_BYTES)
        except Exception as exc:  # a busy database: the decision runs on what is stored
            log_error(name or "ingest", exc)
    elif name in INGESTING:
        ingest_paths([event.rollout("agent_transcript_path"), *session_rollouts(event)])
    if name == "PostToolUse" and event.text("tool_use_id", 200) and event.session_id:
        record_tool_call(event)
    if name == "SessionEnd" and runtime.dashboard_due(user_config().get("dashboard") or {}):
        runtime.spawn_detached(["--dashboard"])


def decide(event: Event) -> dict | None:
    """The gate's answer in the form Codex 0.171.0 acts on (see the module docstring)."""
    verdict = budget_verdict(event)
    if verdict is None:
        return None
    if verdict.stops:
        reason = verdict.message()
        if event.name == "UserPromptSubmit":
            return {"decision": "block", "reason": reason}
        if event.name == "PreToolUse":
            return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                           "permissionDecisionReason": (reason + REFUSE_ALL).rstrip(".")}}
            # (Codex hands the model "Command blocked by PreToolUse hook: <reason>. Command: <cmd>")
        if event.name == "PermissionRequest":  # an approval asked for after PreToolUse let the tool through
            return {"hookSpecificOutput": {"hookEventName": "PermissionRequest",
                                           "decision": {"behavior": "deny", "message": reason + REFUSE_ALL}}}
        return {"decision": "block", "reason": reason + REFUSE_ALL}  # PostToolUse: replaces the output
    message = verdict.message() if verdict.warnings else None
    return {"systemMessage": message} if message else None


def agent_type_of(event: Event) -> str | None:
    """The sub-agent type the work is done by, as the rollouts name it (rollout.agent_type_of):
    a hook fired inside a sub-agent carries `agent_id` and `agent_type` (its tools do go
    through PreToolUse, with the root's session_id); the main agent asking to spawn one is
    about to start that type ("default" when the spawn names no role), so a spent
    `agent:<type>` budget refuses the spawn itself."""
    if event.text("agent_id") is not None:
        return event.text("agent_type", 100)
    if event.name == "PreToolUse" and event.text("tool_name") == SPAWN_TOOL:
        tool_input = event.payload.get("tool_input")
        for key in ("agent_role", "agent_type"):
            value = tool_input.get(key) if isinstance(tool_input, dict) else None
            if isinstance(value, str) and value:
                return value[:100]
        return "default"
    return None


def budget_verdict(event: Event):
    """The budgets' verdict for this event, or None when there is nothing to say."""
    from costhook import budgets

    def context(conn):
        ctx = budgets.session_context(conn, event.session_id, project=event.text("cwd"), model=event.text("model"),
                                      agent_type=agent_type_of(event))
        return ctx, user_config()["budgets"]

    return runtime.decide(event.name or "budget", context)


# ------------------------------------------------------------------- capture ------


def session_rollouts(event: Event) -> list:
    """The hook's rollout, and every rollout in its day's folder (and today's: a session
    can cross midnight) changed since it began: the session's sub-agents and guardian
    write theirs there, unnamed by any hook. Another session's file found there is read
    too (its calls are as real; the keys make reading twice harmless)."""
    own = event.rollout()
    if own is None:
        return []
    try:
        since = _birth(own)
    except OSError:
        return [own]
    folders = {os.path.dirname(own)}
    sessions = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(own))))
    if os.path.basename(sessions) == "sessions":
        folders.add(os.path.join(sessions, time.strftime("%Y/%m/%d")))
    found = [own]
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("rollout-") and entry.name.endswith(".jsonl") and entry.path != own:
                try:
                    if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime >= since:
                        found.append(entry.path)
                except OSError:
                    continue
    return found


def _birth(path: str) -> float:
    """When the rollout began, from its name's local time (rollout-YYYY-MM-DDTHH-MM-SS-…),
    a minute early; else its change time."""
    stamp = os.path.basename(path)[8:27]  # by hand: time.strptime costs the hook ~5 ms to import
    try:
        if stamp[4::3] != "--T--" or not stamp.replace("-", "").replace("T", "").isdigit():
            raise ValueError(stamp)
        fields = (stamp[0:4], stamp[5:7], stamp[8:10], stamp[11:13], stamp[14:16], stamp[17:19])
        return time.mktime((*map(int, fields), 0, 0, -1)) - 60
    except (ValueError, OverflowError):
        return os.stat(path).st_ctime - 60


def ingest_paths(candidates, *, max_bytes: int | None = None) -> list:
    """Ingest each rollout (duplicates and missing files skipped); the first (the hook's
    own, or the sub-agent's it names) fully checked, the others quickly (ingest.ingest_file)."""
    existing = [p for p in dict.fromkeys(candidates) if p]
    if not existing:
        return []
    from costhook.agents.codex import ingest

    conn = open_db()
    price = runtime.pricer()
    return [ingest.ingest_file(conn, path, price=price, max_bytes=max_bytes, quick=index > 0)
            for index, path in enumerate(existing)]


def record_session(event: Event, started: bool = False, **facts) -> None:
    from costhook.store import db, writes
    from costhook.timeframe import now_iso

    if not event.session_id:
        return
    if started:
        facts.update(started_at=now_iso(), source=event.text("source", 40), model=event.text("model", 200),
                     project=event.text("cwd"), transcript_path=event.rollout())
    conn = open_db()
    with db.transaction(conn, spend=False):
        writes.upsert_session(conn, event.session_id, agent="codex", **facts)


def record_tool_call(event: Event) -> None:
    """The tool call's name, id and sizes (never its input or output)."""
    from costhook.store import db, writes
    from costhook.timeframe import now_iso

    payload = event.payload
    row = {
        "tool_use_id": event.text("tool_use_id", 200),
        "agent": "codex",
        "session_id": event.session_id,
        "agent_id": None,
        "tool_name": event.text("tool_name", 200) or "?",
        "mcp_server": None,
        "timestamp": now_iso(),
        "success": 1,
        "duration_ms": None,
        "input_bytes": jsontext.size(payload.get("tool_input")),
        "output_bytes": jsontext.size(payload.get("tool_response")),
    }
    try:
        conn = open_db()
        with db.transaction(conn, spend=False):
            writes.record_tool_call(conn, row)
    except Exception as exc:
        log_error(event.name or "tool", exc)
