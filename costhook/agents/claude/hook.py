"""`costhook hook`: one Claude Code hook event → ingest its transcripts, record, decide.

The handlers run inside agents.runtime.run_hook (fail-open, one log line per error) on
the agent's critical path for every tool call: standard library and costhook's
stdlib-only modules only, each imported by the handler that needs it (a hook pays for
every module it loads, and most events need few).
"""

import os
import time

from costhook import jsontext
from costhook.agents import runtime
from costhook.agents.runtime import log_error, open_db, spawn_detached, user_config

HOOK_MAX_BYTES = 16 << 20  # a larger backlog is ingested by a detached process
STOP_WAIT_S = 0.5  # the transcript lags the Stop hook (2.1.330); wait at most this long
POLL_S = 0.005  # the line usually lands within a few ms: a long poll was most of a tool call's wait


# Fields only Cursor puts in a hook's input: Cursor runs Claude Code's hooks too (its
# "third-party hooks"), with its own transcript format, which has no usage to read.
CURSOR_FIELDS = ("cursor_version", "conversation_id", "generation_id", "workspace_roots")


def handle(payload: dict) -> dict | None:
    """The answer to one Claude Code hook event (None: nothing to say). An event that can
    decide nothing goes on in the background at once: the agent waits for no recording."""
    handler = HANDLERS.get(payload.get("hook_event_name"))
    if handler is None:
        return None  # events we don't use: nothing to do, nothing to say
    if from_another_agent(payload):
        return None  # not an error: nothing of ours to read, record or decide
    event = Event(payload)
    if not runtime.BACKGROUND and not decides(event):
        runtime.go_background()
    return handler(event)


GATES = ("UserPromptSubmit", "PreToolUse", "PreSkillShellCommand")
SPENDING_TOOLS = ("Agent", "Task")  # a sub-agent spends while its tool runs


def decides(event: "Event") -> bool:
    """Whether this event's answer can change what the agent does: a gate with budgets
    configured, or — after a tool during which a sub-agent spent — PostToolUse, which stops
    the main agent before its next call. After any other tool nothing was spent since the
    tool's PreToolUse (install gives those a background hook; this covers older installs)."""
    name = event.text("hook_event_name")
    if name not in GATES and not (name in ("PostToolUse", "PostToolUseFailure")
                                  and event.text("tool_name") in SPENDING_TOOLS):
        return False
    return bool(user_config().get("budgets"))


def from_another_agent(payload: dict) -> bool:
    """A Claude Code hook run by another agent (Cursor): its input carries Cursor's own
    fields, or a transcript that is not a Claude Code one (Cursor's agent-transcripts/,
    plain-text .txt transcripts)."""
    if any(name in payload for name in CURSOR_FIELDS):
        return True
    path = payload.get("transcript_path")
    if not isinstance(path, str) or not path:
        return False
    return not path.endswith(".jsonl") or "agent-transcripts" in path.replace("\\", "/").split("/")


class Event:
    """Typed access to the fields of a hook payload, tolerant of missing or wrong types."""

    def __init__(self, payload: dict):
        self.payload = payload

    def text(self, name: str, limit: int = 4096) -> str | None:
        """A text field, cut at `limit` (as Codex's Event: a path is at most PATH_MAX, an id
        is a uuid; 20 MB of one would be stored whole, in every row it names)."""
        value = self.payload.get(name)
        return value[:limit] if isinstance(value, str) and value else None

    @property
    def session_id(self) -> str | None:
        return self.text("session_id", 200)

    @property
    def transcript(self) -> str | None:
        return self.text("transcript_path")

    def subagent_dir(self) -> str | None:
        """`<session>/subagents/` next to the main transcript."""
        if not self.transcript or not self.session_id:
            return None
        return os.path.join(os.path.dirname(self.transcript), self.session_id, "subagents")

    def subagent_transcript(self) -> str | None:
        agent_id = self.text("agent_id")
        folder = self.subagent_dir()
        if not agent_id or not folder or "/" in agent_id:
            return None
        return os.path.join(folder, f"agent-{agent_id}.jsonl")


# ------------------------------------------------------------------- handlers -----


def on_session_start(event: Event):
    from costhook.timeframe import now_iso

    entrypoint = os.environ.get("CLAUDE_CODE_ENTRYPOINT") or None
    record_session(
        event,
        project=project_of(event),
        git_branch=git_branch(event.text("cwd")),
        started_at=now_iso(),
        source=event.text("source"),
        model=event.text("model"),
        transcript_path=event.transcript,
        entrypoint=entrypoint,
        interactive=None if entrypoint is None else int(entrypoint == "cli"),
    )
    ingest_paths([event.transcript])  # a resumed session may already have history
    if runtime.BACKGROUND or not user_config().get("budgets"):
        return None  # installed in the background; the session's first prompt tells instead
    return standing_output(event, budget_verdict(event, record=False))


def standing_output(event: Event, verdict):
    """Budgets already past their first threshold, as context for the model (and, when one
    blocks, a message for the user): said once, as the session starts."""
    if verdict is None:
        return None
    lines = [s.message() for s in verdict.statuses if s.fraction >= min(s.budget.get("warn_at") or [0.8])]
    if not lines:
        return None
    name = event.text("hook_event_name")
    output = {"hookSpecificOutput": {"hookEventName": name, "additionalContext": "costhook: " + "; ".join(lines)}}
    if verdict.block is not None:
        output["systemMessage"] = verdict.message()
    return output


def on_user_prompt_submit(event: Event):
    """A spent blocking budget blocks the prompt before any API call is made."""
    if not user_config().get("budgets"):
        return None
    first = first_prompt(event)  # before catching up: a new session has nothing recorded yet
    ingest_before_deciding(event, [event.transcript])
    verdict = budget_verdict(event)
    if verdict is None:
        return None
    if verdict.stops:
        return {"decision": "block", "reason": verdict.message()}
    if first:  # SessionStart runs in the background: the standing is told here, once
        standing = standing_output(event, verdict)
        if standing:
            if verdict.warnings:
                standing["systemMessage"] = verdict.message()
            return standing
    return warning_output(verdict)


def first_prompt(event: Event) -> bool:
    """Whether this session has no call recorded yet (its first prompt; every `claude -p`)."""
    try:
        return open_db().execute("SELECT 1 FROM requests WHERE session_id = ? LIMIT 1",
                                 (event.session_id,)).fetchone() is None
    except Exception:
        return False


def on_pre_tool_use(event: Event):
    """Deny the tool and stop the agent when a blocking budget is spent.

    The call that asked for this tool is often not on disk yet (Claude Code writes its line
    a few to ~50 ms after this hook starts). It is waited for (bounded) only when it could
    cross a budget's threshold (budgets.may_be_crossed): otherwise the tool runs at once,
    and the next gate counts that call before any further one is made."""
    if not user_config().get("budgets"):
        return None
    own_transcript = event.subagent_transcript() or event.transcript
    tool_use_id = event.text("tool_use_id")
    pending = f'"id":"{tool_use_id}"'.encode() if tool_use_id else None
    if pending is None or tail_contains(own_transcript, pending):
        return refuse_when_spent(event)
    verdict = caught_up_verdict(event)
    if verdict is None or verdict.stops or not pending_call_matters(event, verdict):
        return verdict_output(event, verdict)
    wait_for_bytes(own_transcript, pending)
    second = caught_up_verdict(event)
    if second is not None:
        second.warnings = verdict.warnings + [s for s in second.warnings if s not in verdict.warnings]
    return verdict_output(event, second)


def pending_call_matters(event: Event, verdict) -> bool:
    """budgets.may_be_crossed on this hook's database; if it cannot tell, it matters."""
    from costhook import budgets

    try:
        return budgets.may_be_crossed(open_db(), verdict)
    except Exception as exc:
        log_error(event.text("hook_event_name") or "budget", exc)
        return True


def refuse_when_spent(event: Event):
    """Catch up, then refuse what is about to run and stop the agent if a blocking budget is
    spent; else show the thresholds newly crossed."""
    return verdict_output(event, caught_up_verdict(event))


def caught_up_verdict(event: Event):
    """The budgets' verdict once this hook's transcripts (its own, the session's) are read."""
    ingest_before_deciding(event, [event.transcript, event.subagent_transcript()])
    return budget_verdict(event)


def verdict_output(event: Event, verdict):
    """A gate's answer: deny and stop when a budget says stop, else the new warnings."""
    if verdict is None:
        return None
    if verdict.stops:
        return deny_and_stop(event, verdict)
    return warning_output(verdict)


def deny_and_stop(event: Event, verdict) -> dict:
    """Refuse the tool (or the skill's command) **and** stop the agent: a deny alone lets the
    model try something else, `continue: false` is what stops the next API call (2.1.330,
    2.1.332)."""
    reason = verdict.message()
    return {
        "continue": False,
        "stopReason": reason,
        "hookSpecificOutput": {
            "hookEventName": event.text("hook_event_name"),
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        },
    }


def on_pre_skill_shell_command(event: Event):
    """A skill's embedded `!` shell command (Claude Code ≥ 2.1.332) runs without a
    PreToolUse, before any API call of the skill: a spent blocking budget — `skill:<name>`
    included, which no earlier hook can know applies — refuses it and stops the turn
    (deny alone lets the turn go on without the command's output)."""
    if not user_config().get("budgets"):
        return None
    return refuse_when_spent(event)


def on_post_tool_use(event: Event):
    ingest_before_deciding(event, [event.transcript, event.subagent_transcript()])
    if event.text("tool_use_id") and event.session_id:
        record_tool_call(event)
    runtime.sync_soon()  # Stop and PostToolUse: a long turn has no Stop
    if runtime.BACKGROUND or not user_config().get("budgets"):
        return None  # the next gate (a prompt, a tool) decides on what this recorded
    verdict = budget_verdict(event)
    if verdict is None:
        return None
    if verdict.stops:
        return {"continue": False, "stopReason": verdict.message(), "systemMessage": verdict.message()}
    return warning_output(verdict)


def on_stop(event: Event):
    wait_for_text(event.transcript, event.text("last_assistant_message"))
    ingest_paths([event.transcript, *subagent_files(event.subagent_dir())])
    runtime.sync_soon()  # Stop and PostToolUse: a long turn has no Stop
    return warn_only(event)


def warn_only(event: Event):
    """After the final call of a turn: show thresholds it crossed. Never a block here: a
    Stop hook's block makes Claude Code keep going, the opposite of what a budget wants.
    In the background nobody would see it: the next gate shows it (its alert is not
    recorded here, so it still counts as new there)."""
    if runtime.BACKGROUND or not user_config().get("budgets"):
        return None
    verdict = budget_verdict(event)
    return warning_output(verdict) if verdict is not None else None


def on_subagent_stop(event: Event):
    child = event.text("agent_transcript_path") or event.subagent_transcript()
    wait_for_text(child, event.text("last_assistant_message"))
    ingest_paths([child, event.transcript])
    return warn_only(event)


def on_session_end(event: Event):
    """Close the session and catch up. Claude Code gives all SessionEnd hooks 1.5 s in
    total (a hook installed in the turn), so a large backlog goes to a detached process."""
    from costhook.timeframe import now_iso

    record_session(event, ended_at=now_iso(), end_reason=event.text("reason"))
    ingest_paths([event.transcript, *subagent_files(event.subagent_dir())], max_bytes=HOOK_MAX_BYTES // 4)
    if runtime.BACKGROUND and user_config().get("budgets"):
        budget_verdict(event)  # the session's last word: thresholds its last calls crossed fire (and notify) now
    refresh_dashboard_if_due()
    runtime.sync_soon()  # the sync folder, the team ledger: a detached process, never the network here


def refresh_dashboard_if_due() -> None:
    """Hand the vault dashboard to a detached process when configured and due."""
    if runtime.dashboard_due(user_config().get("dashboard") or {}):
        spawn_detached(["--dashboard"])


HANDLERS = {
    "SessionStart": on_session_start,
    "UserPromptSubmit": on_user_prompt_submit,
    "PreToolUse": on_pre_tool_use,
    "PreSkillShellCommand": on_pre_skill_shell_command,
    "PostToolUse": on_post_tool_use,
    "PostToolUseFailure": on_post_tool_use,
    "Stop": on_stop,
    "SubagentStop": on_subagent_stop,
    "SessionEnd": on_session_end,
}


# ------------------------------------------------------------------- helpers ------


def ingest_paths(candidates, *, max_bytes: int | None = HOOK_MAX_BYTES) -> list:
    """Ingest each existing transcript; hand any backlog over `max_bytes` to a detached process."""
    existing = [p for p in dict.fromkeys(candidates) if p and os.path.isfile(p)]
    if not existing:
        return []
    from costhook.agents.claude import ingest

    conn = open_db()
    price = runtime.pricer()
    results, deferred = [], []
    for path in existing:
        result = ingest.ingest_file(conn, path, price=price, max_bytes=max_bytes)
        results.append(result)
        if result.deferred:
            deferred.append(path)
    if deferred:
        runtime.after_answer(lambda: spawn_catch_up([path for path in deferred if not catch_up_running(path)]))
    return results


def record_session(event: Event, **facts) -> None:
    from costhook.store import db, writes

    conn = open_db()
    with db.transaction(conn, spend=False):
        writes.upsert_session(conn, event.session_id or "unknown", agent="claude", **facts)


def record_tool_call(event: Event) -> None:
    """Its name, id, duration and sizes; with budgets configured it waits briefly for a busy
    database (runtime.deciding): the decision after it must not be late."""
    from costhook.store import db, writes

    try:
        with runtime.deciding():
            conn = open_db()
            with db.transaction(conn, spend=False):
                writes.record_tool_call(conn, tool_call_row(event))
    except Exception as exc:
        log_error(event.text("hook_event_name") or "tool", exc)


def ingest_before_deciding(event: Event, transcripts: list) -> None:
    """Catch up before a budget decision; if that fails (a busy database: see
    runtime.deciding), the decision still runs on what is stored (and its own `on_error`
    policy applies when the data cannot be read at all)."""
    try:
        with runtime.deciding():
            ingest_paths(transcripts)
    except Exception as exc:
        log_error(event.text("hook_event_name") or "ingest", exc)


def budget_verdict(event: Event, record: bool = True):
    """The budgets' verdict for this event, or None when there is nothing to say."""
    from costhook import budgets

    def context(conn):
        ctx = budgets.session_context(conn, event.session_id, project=project_of(event),
                                      agent_type=agent_type_of(event), skill=skill_of(event), cli="claude")
        return ctx, user_config()["budgets"]

    return runtime.decide(event.text("hook_event_name") or "budget", context, record=record)


def project_of(event: Event) -> str | None:
    """The session's project: Claude Code's project dir (CLAUDE_PROJECT_DIR, given to every
    hook), not the directory the agent has `cd`-ed into since — the same project the
    transcript's calls are stored under (transcript.ReadState.project)."""
    return os.environ.get("CLAUDE_PROJECT_DIR") or event.text("cwd")


def agent_type_of(event: Event) -> str | None:
    """The sub-agent type the work is done by: the hook's own sub-agent, or — for the main
    agent asking to spawn one (Agent/Task tool) — the type it is about to start, so a spent
    `agent:<type>` budget stops the spawn instead of its first tool."""
    if event.text("agent_id") is not None:
        return event.text("agent_type")
    if event.text("hook_event_name") == "PreToolUse" and event.text("tool_name") in ("Agent", "Task"):
        tool_input = event.payload.get("tool_input")
        if isinstance(tool_input, dict) and isinstance(tool_input.get("subagent_type"), str):
            return tool_input["subagent_type"]
    return None


def skill_of(event: Event) -> str | None:
    """The skill about to run a shell command (PreSkillShellCommand's `command_name`, as
    `skill:` budgets name it), else None: the session's latest call says."""
    if event.text("hook_event_name") != "PreSkillShellCommand":
        return None
    from costhook.agents.claude.transcript import is_command_name

    name = event.text("command_name")
    return name if name and is_command_name(name) else None


def warning_output(verdict):
    message = verdict.message() if verdict.warnings else None
    return {"systemMessage": message} if message else None


def wait_for_bytes(path: str | None, needle: bytes, timeout: float = STOP_WAIT_S) -> bool:
    """Wait (bounded) until the transcript's tail holds `needle`; usually true at once."""
    if not path:
        return False
    deadline = time.monotonic() + timeout
    while True:
        if tail_contains(path, needle):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def subagent_files(folder: str | None) -> list:
    """Every sub-agent transcript under `<session>/subagents/` (nested folders included)."""
    found = []
    if not folder:
        return found
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif entry.name.endswith(".jsonl"):
                found.append(entry.path)
    return sorted(found)


def wait_for_text(path: str | None, text: str | None, timeout: float = STOP_WAIT_S) -> bool:
    """Wait (bounded) until the transcript holds the agent's last message.

    Claude Code 2.1.330 writes the transcript through an async buffer, so Stop often fires
    before the final assistant line is on disk. Looks only at the file's tail.
    """
    if not path or not text:
        return False
    return wait_for_bytes(path, jsontext.dumps(text[:200], ensure_ascii=False)[1:-1].encode(), timeout)


def tail_contains(path: str, needle: bytes, size: int = 256 << 10) -> bool:
    """Whether the last `size` bytes of the regular file `path` hold `needle`."""
    from costhook.paths import open_regular

    try:
        with open_regular(path) as f:
            end = os.fstat(f.fileno()).st_size
            return needle in os.pread(f.fileno(), min(size, end), max(0, end - size))
    except OSError:
        return False


def tool_call_row(event: Event) -> dict:
    from costhook.timeframe import now_iso

    payload = event.payload
    name = event.text("tool_name") or "?"
    mcp_server = event.text("mcp_server")
    if mcp_server is None and name.startswith("mcp__"):
        mcp_server = name.split("__")[1] or None
    duration = payload.get("duration_ms")
    failed = payload.get("hook_event_name") == "PostToolUseFailure"
    return {
        "tool_use_id": event.text("tool_use_id", 200),
        "agent": "claude",
        "session_id": event.session_id,
        "agent_id": event.text("agent_id", 200),
        "tool_name": name[:200],
        "mcp_server": mcp_server,
        "timestamp": now_iso(),
        "success": 0 if failed else 1,
        "duration_ms": duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
        "input_bytes": jsontext.size(payload.get("tool_input")),
        "output_bytes": jsontext.size(payload.get("tool_response", payload.get("error"))),
    }


def git_branch(cwd: str | None) -> str | None:
    """The checked-out branch, read from .git/HEAD (running git would cost more than the hook)."""
    if not cwd:
        return None
    from costhook.paths import read_regular

    folder = os.path.abspath(cwd)
    for _ in range(64):
        dot_git = os.path.join(folder, ".git")
        head = None
        if os.path.isdir(dot_git):
            head = os.path.join(dot_git, "HEAD")
        elif os.path.isfile(dot_git):  # worktree or submodule: "gitdir: <path>"
            try:
                line = read_regular(dot_git, 4096).decode("utf-8", "replace").strip()
            except OSError:  # a FIFO or a device is no .git file: no branch
                return None
            if line.startswith("gitdir:"):
                head = os.path.join(folder, line[7:].strip(), "HEAD")
        if head:
            try:
                ref = read_regular(head, 4096).decode("utf-8", "replace").strip()
            except OSError:
                return None
            return ref[len("ref: refs/heads/") :] if ref.startswith("ref: refs/heads/") else "HEAD"
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return None


def spawn_catch_up(transcripts: list) -> None:
    """Ingest big backlogs in a detached process so the hook returns at once."""
    if transcripts:
        spawn_detached(["--catch-up", *transcripts])


def catch_up(transcripts: list) -> None:
    """The detached job `costhook hook --catch-up PATH…`: ingest backlogs whole, one
    catch-up per file at a time (a file another catch-up holds is left to it)."""
    held = {}
    try:
        for path in dict.fromkeys(transcripts):
            fd = catch_up_lock(path)
            if fd is not None:
                held[path] = fd
        if held:
            ingest_paths(list(held), max_bytes=None)
    finally:
        for fd in held.values():
            os.close(fd)


def catch_up_lock(path: str) -> int | None:
    """A descriptor holding `path`'s catch-up lock (a non-blocking flock on
    `<home>/catch-up/<hash of the path>.lock`, 0600 in a 0700 folder), None when another
    process holds it. The lock goes with the process: a crashed catch-up holds nothing."""
    import fcntl
    import hashlib

    from costhook import paths

    folder = paths.ensure_private_dir(os.path.join(paths.home_dir(), "catch-up"))
    name = hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    fd = os.open(os.path.join(folder, name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def catch_up_running(path: str) -> bool:
    """Whether a catch-up holds `path` now (then a hook spawns no other)."""
    try:
        fd = catch_up_lock(path)
    except OSError:
        return False
    if fd is None:
        return True
    os.close(fd)
    return False
