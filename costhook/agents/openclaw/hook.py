"""`costhook hook --agent openclaw`: one event from costhook's OpenClaw plugin.

The plugin (hooks/openclaw/index.js) spawns this with one JSON object on stdin:

    {"hook": "<name>", "hook_event_name": "<name>", "ctx": {agentId, sessionKey, sessionId,
     runId, jobId, trigger, workspaceDir, parentSessionKey, parentSessionId, label, ...},
     "event": {... only the metadata costhook needs ...}}

and for the two gates reads the decision from stdout:

    before_tool_call   {"block": true, "blockReason": "..."}
    before_agent_run   {"outcome": "block", "reason": "costhook-budget", "message": "...", "category": "cost_limit"}

Anything else prints nothing. Like the Claude hook this fails open: an internal error
exits 0 with no output and one line in errors.log (agents.runtime.run_hook does that), and the
plugin itself lets the tool or run go on if costhook is slow, missing or broken.

Hooks and what they do:
    message           one assistant message with usage (from before_message_write): record the call
    agent_end         catch up the session from OpenClaw's SQLite store, record the run's calls
    after_tool_call   record the tool call (name, id, duration, sizes, success); catch up
    records           only held records (below) that waited too long: catch up
    before_tool_call  budgets → block the tool
    before_agent_run  budgets → block the run before any model call
    session_start / session_end   the session's row; a final catch-up, archives of deleted sessions
    cron_changed      cron jobs and finished runs (status, duration, session)

The plugin holds `message`, `after_tool_call` and `session_start` and hands them over in
the `records` list of the session's next event it sends (a gate, agent_end, session_end):
they are recorded first — at a gate, before the budgets decide, so the call that asked
for the tool is counted; without budgets a gate goes to the background at once and
records them there. Nobody waits for agent_end and session_end: the plugin posts them to
its resident (`--serve`, which handles them when no gate waits) or starts them detached,
so they work in the background (agents.runtime.go_background).
Standard library only.
"""

from __future__ import annotations

import os
import time

from costhook.agents import runtime
from costhook.agents.openclaw import cron, events, files, paths, their_db
from costhook.usage import plausible

GATE_INGEST_S = 0.8  # catching up before a budget decision must stay well inside the plugin's 3 s
INGEST_S = 3.0
SESSION_END_INGEST_S = 1.2  # OpenClaw drains all session_end handlers in 2 s at shutdown
BUSY_MS = 200


def handle(payload: dict) -> dict | None:
    """The answer to one event from costhook's OpenClaw plugin (None: nothing to say)."""
    hook = payload.get("hook") or payload.get("hook_event_name")
    dropped = payload.get("dropped")
    if type(dropped) is int and dropped > 0:  # a burst overflowed the plugin's queue
        runtime.log_error(f"openclaw {hook}", RuntimeError(
            f"the plugin dropped {dropped} event(s) while costhook was busy; agent_end and `costhook import` "
            "recover the calls from OpenClaw's own store"))
    if hook in DETACHED:
        runtime.go_background()  # the plugin waits for nobody here: the long busy timeout, the pending lock
    records = held_records(payload)
    if records:
        if hook in GATES and not runtime.user_config().get("budgets"):
            # nothing to decide: the tool or run goes on while we record
            if runtime.SERVING:
                runtime.after_answer(lambda: record_held(records))
                records = []
            else:
                runtime.go_background()
        record_held(records)
    handler = HANDLERS.get(hook)
    if handler is None:
        return None
    return handler(Payload(payload))


GATES = ("before_tool_call", "before_agent_run")
DETACHED = ("agent_end", "session_end")  # started detached by the plugin, which does not wait for them
HELD = ("message", "after_tool_call", "session_start")  # what the plugin holds for a gate or agent_end
MAX_RECORDS = 1024


def held_records(payload: dict) -> list:
    """The records the plugin held for this event (`records`: payloads of HELD hooks), in order."""
    records = payload.get("records")
    if not isinstance(records, list):
        return []
    return [Payload(r, batched=True) for r in records[:MAX_RECORDS]
            if isinstance(r, dict) and (r.get("hook") or r.get("hook_event_name")) in HELD]


def record_held(records: list) -> None:
    """Record each held record; one failing does not stop the others. Before a budget
    decision the writes wait only briefly for the lock (runtime.deciding): what could not
    be written comes again with agent_end or from OpenClaw's store."""
    with runtime.deciding():
        for p in records:
            try:
                HANDLERS[p.hook](p)
            except Exception as exc:
                runtime.log_error(f"openclaw {p.hook}", exc)


class Payload:
    """Typed, tolerant access to the plugin's payload."""

    def __init__(self, payload: dict, batched: bool = False):
        self.payload = payload
        self.batched = batched  # one of several records handed over together: the event after them catches up
        ctx = payload.get("ctx")
        event = payload.get("event")
        self.ctx = ctx if isinstance(ctx, dict) else {}
        self.event = event if isinstance(event, dict) else {}
        self.hook = str(payload.get("hook") or payload.get("hook_event_name") or "?")

    def c(self, name: str, limit: int = 1000) -> str | None:
        value = self.ctx.get(name)
        return value[:limit] if isinstance(value, str) and value else None

    def e(self, name: str, limit: int = 1000) -> str | None:
        value = self.event.get(name)
        return value[:limit] if isinstance(value, str) and value else None

    @property
    def session_id(self) -> str | None:
        return self.c("sessionId", 300) or self.e("sessionId", 300)

    @property
    def session_key(self) -> str | None:
        return self.c("sessionKey") or self.e("sessionKey")

    @property
    def agent_id(self) -> str | None:
        return self.c("agentId", 200) or events.classify_key(self.session_key)["host_agent"]

    def db_path(self) -> str | None:
        agent = self.agent_id
        if not agent or "/" in agent or agent in (".", ".."):
            return None
        return paths.agent_db_path(self.c("stateDir") or paths.state_dir(), agent)

    def meta(self) -> events.SessionMeta:
        return events.SessionMeta(
            session_id=self.session_id,
            session_key=self.session_key,
            host_agent=self.agent_id,
            parent_session_key=self.c("parentSessionKey"),
            parent_session_id=self.c("parentSessionId", 300),
            label=self.c("label", 200),
            project=self.c("workspaceDir"),
        )

    def attribution(self) -> dict:
        meta = self.meta()
        if meta.kind == "subagent" and (meta.label is None or meta.parent_session_key is None):
            _fill_from_their_node(self, meta)
        att = meta.attribution()
        trigger = self.c("trigger", 40)
        if meta.kind == "heartbeat" or trigger == "heartbeat":
            att["is_heartbeat"] = 1
        elif trigger in ("user", "cron") or meta.kind in ("cron", "subagent"):
            att["is_heartbeat"] = 0
        att["cron_job"] = att.get("cron_job") or self.c("jobId", 300)
        att["run_id"] = self.c("runId", 300)
        return att


def _fill_from_their_node(p: Payload, meta: events.SessionMeta) -> None:
    """A sub-agent's label and parent, from OpenClaw's session row (one indexed read)."""
    path = p.db_path()
    if not path or not os.path.isfile(path) or not meta.session_id:
        return
    try:
        db = their_db.open_readonly(path, busy_ms=BUSY_MS, deadline=time.monotonic() + 0.3)
        try:
            found = their_db.session_metas(db, path, [meta.session_id], deadline=time.monotonic() + 0.3).get(meta.session_id)
        finally:
            db.close()
    except Exception as exc:
        runtime.log_error(p.hook, exc)
        return
    if found is not None:
        meta.label = meta.label or found.label
        meta.parent_session_key = meta.parent_session_key or found.parent_session_key
        meta.parent_session_id = meta.parent_session_id or found.parent_session_id


# ------------------------------------------------------------------ recording -------


def slim_messages(messages) -> list:
    return [m for m in messages if isinstance(m, dict) and m.get("role", "assistant") == "assistant"] if isinstance(messages, list) else []


def record_messages(p: Payload, messages: list) -> int:
    """Record assistant messages sent by the plugin (usage and metadata only)."""
    if not messages:
        return 0
    from costhook.store import db, writes

    attribution = p.attribution()
    calls = {}
    for message in messages:
        tools = message.get("tools")
        tools = [t[:200] for t in tools if isinstance(t, str) and t] if isinstance(tools, list) else []
        ack = message.get("ack")
        run = message.get("runId")
        att = dict(attribution)
        if isinstance(run, str) and run:
            att["run_id"] = run[:300]
        record = events.call_record(message, att, tools=tools, ack=int(ack) if isinstance(ack, bool) else None)
        if record is not None and plausible(record):
            calls[record["key"]] = record
    if not calls:
        return 0
    conn = runtime.open_db()
    price = runtime.pricer()
    with db.transaction(conn):
        facts = {p.session_id: {"project": p.c("workspaceDir"), "session_key": attribution.get("session_key"),
                                "host_agent": attribution.get("host_agent"), "session_kind": attribution.get("session_kind"),
                                "parent_session_key": p.c("parentSessionKey"), "label": p.c("label", 200),
                                "started_at": min(r["timestamp"] for r in calls.values() if r.get("timestamp"))
                                if any(r.get("timestamp") for r in calls.values()) else None}}
        return writes.write_calls(conn, calls, price, facts, agent=events.AGENT)


def catch_up(p: Payload, seconds: float, session_ids=None) -> None:
    """Ingest the session's new events from OpenClaw's SQLite store, within `seconds`.
    A busy or missing store is not an error worth more than a log line: the next hook,
    or `costhook import`, reads what is left (the cursor did not move)."""
    path = p.db_path()
    ids = [s for s in (session_ids or [p.session_id]) if s]
    if not path or not ids or not os.path.isfile(path):
        return

    try:
        their_db.ingest_agent_db(runtime.open_db(), path, price=runtime.pricer(), session_ids=ids,
                           busy_ms=BUSY_MS, deadline=time.monotonic() + seconds, max_events=20000)
    except Exception as exc:
        runtime.log_error(p.hook, exc)


# ------------------------------------------------------------------ handlers --------


def on_message(p: Payload):
    message = p.event.get("message")
    if isinstance(message, dict):
        record_messages(p, [message])
    return None


def on_agent_end(p: Payload):
    catch_up(p, INGEST_S)
    record_messages(p, slim_messages(p.event.get("messages")))
    runtime.sync_soon()
    return None


def on_after_tool_call(p: Payload):
    from costhook.timeframe import now_iso

    from costhook.store import db, writes

    name = p.e("toolName", 200) or p.c("toolName", 200)
    call_id = p.e("toolCallId", 300) or p.c("toolCallId", 300)
    if call_id and name and name != "tool_call":  # the Tool Search bridge's outer call: the inner one counts
        duration = p.event.get("durationMs")
        failed = bool(p.event.get("error")) or bool(p.event.get("blocked"))
        row = {
            "tool_use_id": f"{events.KEY_PREFIX}{call_id}",
            "agent": events.AGENT,
            "session_id": p.session_id,
            "agent_id": events.classify_key(p.session_key)["subagent_id"],
            "tool_name": name,
            "mcp_server": None,
            "timestamp": now_iso(),
            "success": 0 if failed else 1,
            "duration_ms": int(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration >= 0 else None,
            "input_bytes": _count(p.event.get("paramsBytes")),
            "output_bytes": _count(p.event.get("resultBytes")),
        }
        conn = runtime.open_db()
        with db.transaction(conn):
            writes.record_tool_call(conn, row)
    if not p.batched:
        catch_up(p, INGEST_S)
    runtime.sync_soon()
    return None


def _count(value):
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def on_records(p: Payload):
    """Records the plugin held and no gate or agent_end came for (handle recorded them):
    catch the session up once."""
    catch_up(p, INGEST_S)
    return None


def on_before_tool_call(p: Payload):
    verdict = gate_verdict(p)
    if verdict is None:
        return None
    if verdict.stops:
        return {"block": True, "blockReason": verdict.message()}
    return None


def on_before_agent_run(p: Payload):
    verdict = gate_verdict(p)
    if verdict is None:
        return None
    if verdict.stops:
        return {"outcome": "block", "reason": "costhook-budget", "message": verdict.message(), "category": "cost_limit"}
    return None


def record_session(p: Payload, meta: events.SessionMeta, **facts):
    """The session's row: `facts`, with the key, host agent and kind from `meta`; the connection."""
    from costhook.store import db, writes

    conn = runtime.open_db()
    with db.transaction(conn):
        writes.upsert_session(conn, p.session_id, agent=events.AGENT, session_key=meta.session_key,
                             host_agent=meta.host_agent, session_kind=meta.kind, **facts)
    return conn


def on_session_start(p: Payload):
    from costhook.timeframe import now_iso

    if not p.session_id:
        return None
    record_session(p, p.meta(), started_at=now_iso(), source=p.e("resumedFrom", 300) and "resume")
    return None


def on_session_end(p: Payload):
    from costhook.timeframe import now_iso


    sid = p.session_id
    if not sid:
        return None
    meta = p.meta()
    conn = record_session(p, meta, ended_at=now_iso(), end_reason=p.e("reason", 40))
    archive = p.e("sessionFile")
    if archive and os.path.basename(archive).startswith(sid) and files.is_transcript_file(os.path.basename(archive)) and os.path.isfile(archive):
        try:
            meta.source_path = archive
            files.ingest_file(conn, archive, price=runtime.pricer(), meta=meta)
        except Exception as exc:
            runtime.log_error(p.hook, exc)
    else:
        catch_up(p, SESSION_END_INGEST_S)
    runtime.sync_soon()  # the sync folder, the team ledger: a detached process, never the network here
    return None


def on_cron_changed(p: Payload):
    from costhook.store import db, writes

    action = p.e("action", 40)
    job = p.event.get("job") if isinstance(p.event.get("job"), dict) else None
    conn = runtime.open_db()
    if action == "finished":
        entry = dict(p.event)
        entry.pop("job", None)
        entry.setdefault("jobName", (job or {}).get("name"))
        row = cron.cron_run_row(entry, host_agent=p.agent_id, is_heartbeat=cron.job_is_heartbeat(job))
        if row is None:
            return None
        run_session = row.get("session_id")
        if run_session:
            catch_up(p, INGEST_S, session_ids=[run_session])
        with db.transaction(conn):
            if job:
                cron.save_job(conn, job, host_agent=p.agent_id)
            writes.record_cron_run(conn, row)
            writes.refresh_cron_runs(conn, [row["run_id"]])
    elif job and action in ("added", "updated", "started", "scheduled"):
        with db.transaction(conn):
            cron.save_job(conn, job, host_agent=p.agent_id)
    elif action == "removed" and p.e("jobId", 300):
        with db.transaction(conn):
            writes.disable_cron_job(conn, p.e("jobId", 300))
    return None


# ------------------------------------------------------------------ budgets ---------


def gate_verdict(p: Payload):
    """The budgets' verdict before a tool or a run, or None. Catches up the session first
    so the call that asked for this tool is counted."""
    if not runtime.user_config().get("budgets"):
        return None
    from costhook import budgets

    try:
        with runtime.deciding():
            catch_up(p, GATE_INGEST_S)
    except Exception as exc:  # the database cannot even be opened: decide() applies on_error
        runtime.log_error(p.hook, exc)

    def context(conn):
        att = p.attribution()
        ctx = budgets.session_context(conn, p.session_id, project=p.c("workspaceDir"),
                                      agent_type=att.get("agent_type"), cron_job=att.get("cron_job"), cli=events.AGENT)
        return ctx, resolve_cron_names(conn, runtime.user_config()["budgets"], ctx.cron_job)

    return runtime.decide(p.hook, context, notify_on_block=True)


def resolve_cron_names(conn, budgets_cfg: list, cron_job: str | None) -> list:
    """`cron:<job name>` budgets apply to that job's id (rows carry the id)."""
    if not cron_job:
        return budgets_cfg
    names = None
    out = []
    for budget in budgets_cfg:
        kind, _, target = budget["scope"].partition(":")
        if kind == "cron" and target != cron_job:
            if names is None:
                row = conn.execute("SELECT name FROM cron_jobs WHERE job_id = ?", (cron_job,)).fetchone()
                names = {row[0]} if row and row[0] else set()
            if target in names:
                budget = {**budget, "scope": f"cron:{cron_job}"}
        out.append(budget)
    return out


HANDLERS = {
    "message": on_message,
    "agent_end": on_agent_end,
    "after_tool_call": on_after_tool_call,
    "before_tool_call": on_before_tool_call,
    "before_agent_run": on_before_agent_run,
    "session_start": on_session_start,
    "session_end": on_session_end,
    "cron_changed": on_cron_changed,
    "records": on_records,
}
