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
"""

from costhook.agents import runtime
from costhook.agents.runtime import user_config

GATES = ("UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse")
# Codex's namespaced tools reach hooks concatenated (`collaborationspawn_agent`): these
# run sub-agents, which spend while the tool runs.
SPENDING_TOOL_PREFIX = "collaboration"
REFUSE_ALL = (" Every tool call is refused until then: do not call any more tools;"
              " tell the user the budget is spent and end your turn now.")


def handle(payload: dict) -> dict | None:
    """The answer to one Codex hook event (None: nothing to say). An event that can decide
    nothing goes on in the background at once: Codex waits for no recording."""
    event = Event(payload)
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

    def text(self, name: str) -> str | None:
        value = self.payload.get(name)
        return value if isinstance(value, str) and value else None

    @property
    def name(self) -> str | None:
        return self.text("hook_event_name")

    @property
    def session_id(self) -> str | None:
        return self.text("session_id")


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
    before a decision, within the deciding busy timeout (runtime.deciding)."""


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


def budget_verdict(event: Event):
    """The budgets' verdict for this event, or None when there is nothing to say."""
    from costhook import budgets

    def context(conn):
        ctx = budgets.session_context(conn, event.session_id, project=event.text("cwd"), model=event.text("model"))
        return ctx, user_config()["budgets"]

    return runtime.decide(event.name or "budget", context)
