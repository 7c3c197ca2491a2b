"""Budgets → decisions: allow, warn (once per threshold and period) or block (every time).

One function, `check`, serves every hook and the CLI. Spend for calendar periods comes
from the `spend` rollup (a few hundred rows per budget), spend for a session from the
session's own rows, so a check stays cheap with millions of calls recorded.
Standard library only: this runs inside the hook.
"""

import os

from costhook import text
from costhook.timeframe import CALENDAR, bucket, datetime, period_bounds, timezone, utc_iso

TOKEN_SUM = "input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens"


class Context:
    """Who is asking: the session, its project and, where known, model, sub-agent, skill, cron job."""

    __slots__ = ("session_id", "project", "model", "agent_type", "skill", "cron_job")

    def __init__(self, session_id=None, project=None, model=None, agent_type=None, skill=None, cron_job=None):
        self.session_id = session_id
        self.project = project
        self.model = model
        self.agent_type = agent_type
        self.skill = skill
        self.cron_job = cron_job


class Status:
    """One budget's standing in its current period."""

    __slots__ = ("budget", "period_key", "spent", "limit", "unpriced", "start", "end")

    def __init__(self, budget, period_key, spent, limit, unpriced, start, end):
        self.budget = budget
        self.period_key = period_key
        self.spent = spent  # nano-USD or tokens
        self.limit = limit
        self.unpriced = unpriced  # calls in the period that have no price (not in `spent`)
        self.start = start  # datetime (UTC) or None for session periods
        self.end = end

    @property
    def in_tokens(self) -> bool:
        return "limit_nanousd" not in self.budget

    @property
    def fraction(self) -> float:
        return self.spent / self.limit if self.limit else 0.0

    @property
    def blocking(self) -> bool:
        return self.budget.get("action") == "block" and self.spent >= self.limit

    def label(self) -> str:
        return f"{self.budget['period']}/{self.budget['scope']}"

    def message(self) -> str:
        """`Budget daily/global: $8.12 of $10.00 (81%) — $1.88 left`"""
        left = self.limit - self.spent
        tail = f"{self.amount(left)} left" if left >= 0 else f"{self.amount(-left)} over"
        text = f"Budget {self.label()}: {self.amount(self.spent)} of {self.amount(self.limit)} ({int(self.fraction * 100)}%) — {tail}"
        if self.unpriced:
            text += f" (+{self.unpriced} unpriced calls not counted)"
        return text

    def amount(self, value: int) -> str:
        if self.in_tokens:
            return f"{text.tokens(value)} tokens" if value is self.limit else text.tokens(value)
        return text.usd(value)


class Verdict:
    """What the hook should do: block (the strictest spent blocking budget), or show
    `warnings` (thresholds fired just now), or nothing."""

    __slots__ = ("block", "warnings", "statuses", "error", "unrecorded")

    def __init__(self, block=None, warnings=(), statuses=(), error=None, unrecorded=None):
        self.block = block
        self.warnings = list(warnings)
        self.statuses = list(statuses)
        self.error = error  # costhook could not read its data and a budget says block then
        self.unrecorded = unrecorded  # why the thresholds could not be recorded (the verdict stands)

    @property
    def stops(self) -> bool:
        """A budget says stop: one is spent, or costhook cannot read its data and a budget
        asks to block then."""
        return self.block is not None or bool(self.error)

    def message(self) -> str | None:
        if self.error:
            return f"costhook: {self.error}"
        if self.block is not None:
            return f"costhook: {self.block.message()}. Raise or remove the budget (`costhook budget`) to continue."
        if self.warnings:
            return "costhook: " + "; ".join(s.message() for s in self.warnings)
        return None


# ------------------------------------------------------------------- scopes -------


def applies(budget: dict, ctx: Context) -> bool:
    """Does this budget govern the agent work described by `ctx`?"""
    kind, _, target = budget["scope"].partition(":")
    if kind in ("global", "session"):
        return kind == "global" or bool(ctx.session_id)
    if kind == "project":
        return project_matches(target, ctx.project)
    if kind == "model":
        return model_matches(target, ctx.model)
    value = {"agent": ctx.agent_type, "skill": ctx.skill, "cron": ctx.cron_job}[kind]
    return value is not None and value == target


def project_matches(target: str, project: str | None) -> bool:
    """`project:/abs/path` matches that directory and below; `project:name` its last part."""
    if not project:
        return False
    if "/" in target:
        target = target.rstrip("/") or "/"
        return project == target or project.startswith(target + "/")
    return os.path.basename(project.rstrip("/")) == target


def model_matches(target: str, model: str | None) -> bool:
    """`model:claude-opus-4-5` matches that id and its dated spellings."""
    return bool(model) and (model == target or model.startswith(target + "-") or model.startswith(target + "@"))


def _scope_filter(budget: dict) -> tuple[str, list]:
    """SQL over `requests` selecting the budget's scope (session periods and checks)."""
    kind, _, target = budget["scope"].partition(":")
    if kind in ("global", "session"):
        return "1", []
    if kind == "project":
        return project_filter(target)
    if kind == "model":
        return "(model = ? OR model LIKE ? ESCAPE '\\' OR model LIKE ? ESCAPE '\\')", [
            target,
            like_prefix(target + "-"),
            like_prefix(target + "@"),
        ]
    column = {"agent": "agent_type", "skill": "skill", "cron": "cron_job"}[kind]
    return f"{column} = ?", [target]


def project_filter(target: str) -> tuple[str, list]:
    """SQL over `requests` for a project as a user names it: a path means that directory
    and below, a name the last part of the path (`project:` budgets and `--project` alike)."""
    if "/" in target:
        target = target.rstrip("/") or "/"
        return "(project = ? OR project LIKE ? ESCAPE '\\')", [target, like_prefix(target + "/")]
    return "(project = ? OR project LIKE ? ESCAPE '\\')", [target, "%/" + _like_escape(target)]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_prefix(text: str) -> str:
    """A LIKE pattern for values starting with `text` (its % and _ taken literally)."""
    return _like_escape(text) + "%"


# ------------------------------------------------------------------- spend --------


def spend(conn, budget: dict, ctx: Context, now: datetime, tz) -> Status:
    """The budget's spend in its current period (nano-USD, or tokens for token budgets)."""
    tokens = "limit_nanousd" not in budget
    limit = budget["tokens"] if tokens else budget["limit_nanousd"]
    period = budget["period"]
    kind = budget["scope"].partition(":")[0]
    if period in CALENDAR:
        key, start, end = period_bounds(period, now, tz)
        if kind == "session":
            where, args = "session_id = ? AND timestamp >= ? AND timestamp < ?", [ctx.session_id, utc_iso(start), utc_iso(end)]
            spent, unpriced = _sum_requests(conn, where, args, tokens)
        else:
            spent, unpriced = _sum_rollup(conn, budget, bucket(start), bucket(end), tokens)
        return Status(budget, key, spent, limit, unpriced, start, end)
    # session / run: this session's own calls within the scope
    where, args = _scope_filter(budget)
    spent, unpriced = _sum_requests(conn, f"session_id = ? AND {where}", [ctx.session_id, *args], tokens)
    return Status(budget, f"session:{ctx.session_id}", spent, limit, unpriced, None, None)


def _sum_requests(conn, where: str, args: list, tokens: bool) -> tuple[int, int]:
    measure = f"coalesce(sum({TOKEN_SUM}), 0)" if tokens else "coalesce(sum(cost_nanousd), 0)"
    row = conn.execute(f"SELECT {measure}, coalesce(sum(cost_nanousd IS NULL), 0) FROM requests WHERE {where}", args).fetchone()
    return int(row[0]), 0 if tokens else int(row[1])


def _sum_rollup(conn, budget: dict, first: str, last: str, tokens: bool) -> tuple[int, int]:
    kind, _, target = budget["scope"].partition(":")
    measure = "coalesce(sum(tokens), 0)" if tokens else "coalesce(sum(cost_nanousd), 0)"
    if kind == "global":
        keys, args = "key = ''", []
    elif kind == "project" and "/" not in target:
        kind, keys, args = "project_name", "key = ?", [target]
    elif kind == "project":
        target = target.rstrip("/") or "/"
        keys, args = "(key = ? OR (key >= ? AND key < ?))", [target, target + "/", target + "0"]
    elif kind == "model":
        keys, args = "(key = ? OR (key >= ? AND key < ?) OR (key >= ? AND key < ?))", [
            target, target + "-", target + ".", target + "@", target + "A",
        ]
    else:
        keys, args = "key = ?", [target]
    row = conn.execute(
        f"SELECT {measure}, coalesce(sum(unpriced), 0) FROM spend WHERE dim = ? AND {keys} AND bucket >= ? AND bucket < ?",
        [kind, *args, first, last],
    ).fetchone()
    return int(row[0]), 0 if tokens else int(row[1])


# ------------------------------------------------------------------- decisions ----


def check(conn, budgets: list, ctx: Context, *, now: datetime | None = None, tz=None, record: bool = True) -> Verdict:
    """Decide for the agent work in `ctx`. With `record`, thresholds crossed for the first
    time in their period are stored in `alerts` and returned as warnings (each fires once,
    however many hooks race); a spent blocking budget blocks every time it is asked.

    The spend is read without the write lock (WAL readers never wait); only recording the
    thresholds needs it. If that fails (another process holds the lock past the busy
    timeout), the decision stands, without warnings this time: a threshold not recorded
    fires on a later check."""
    now = now or datetime.now(timezone.utc)
    statuses = [spend(conn, b, ctx, now, tz) for b in budgets if applies(b, ctx)]
    blocking = [s for s in statuses if s.blocking]
    block = max(blocking, key=lambda s: s.fraction) if blocking else None
    warnings, unrecorded = [], None
    if record:
        try:
            warnings = fire_alerts(conn, statuses, now, ctx)
        except Exception as exc:
            unrecorded = exc
    return Verdict(block=block, warnings=warnings, statuses=statuses, unrecorded=unrecorded)


def on_error(budgets: list, exc: BaseException) -> Verdict | None:
    """The verdict when costhook cannot read its own data: budgets with
    `on_error = "block"` block (the message says why); all others let the agent go on."""
    strict = [b["id"] for b in budgets if b.get("on_error") == "block"]
    if not strict:
        return None
    return Verdict(error=f"cannot read its data ({type(exc).__name__}); {', '.join(strict)} blocks by policy (on_error = block)")


def thresholds(budget: dict) -> list:
    return sorted(set(budget.get("warn_at") or [0.8]) | {1.0})


def fire_alerts(conn, statuses: list, now: datetime, ctx: Context) -> list:
    """Record every threshold reached for the first time this period; return those statuses."""
    fired = []
    crossed = [(s, t) for s in statuses for t in thresholds(s.budget) if s.fraction >= t]
    if not crossed:
        return fired
    from costhook.store import db, writes

    stamp = utc_iso(now)
    with db.transaction(conn):
        for status, threshold in crossed:
            row = {"budget_id": status.budget["id"], "period": status.period_key, "threshold": threshold,
                   "action": status.budget.get("action", "warn"), "spent_nanousd": status.spent,
                   "limit_value": status.limit, "session_id": ctx.session_id, "message": status.message(),
                   "created_at": stamp}
            if writes.record_alert(conn, row) and status not in fired:
                fired.append(status)
    return fired


def session_context(conn, session_id: str | None, **known) -> Context:
    """Fill in the session's current model and skill from its latest call (or SessionStart)."""
    ctx = Context(session_id=session_id, **known)
    if session_id and (ctx.model is None or ctx.skill is None):
        row = conn.execute(
            "SELECT model, skill FROM requests WHERE session_id = ? ORDER BY timestamp DESC LIMIT 1", (session_id,)
        ).fetchone()
        if row is not None:
            ctx.model = ctx.model or row[0]
            ctx.skill = ctx.skill or row[1]
        elif ctx.model is None:
            row = conn.execute("SELECT model FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            ctx.model = row[0] if row else None
    return ctx


def may_be_crossed(conn, verdict: Verdict, recent: int = 200) -> bool:
    """Whether one more call could cross a threshold (a `warn_at` fraction or the limit) of
    a budget in `verdict`: the distance to it is at most twice the costliest of the last
    `recent` calls (in money or tokens, as the budget counts), or no call is recorded yet.
    A PreToolUse waits for the line of the call that asked for its tool only then
    (agents/claude/hook.py): elsewhere that call changes nothing before the next gate
    counts it."""
    gaps = [(s.in_tokens, t * s.limit - s.spent) for s in verdict.statuses
            for t in thresholds(s.budget) if s.fraction < t]
    if not gaps:
        return False
    row = conn.execute(
        f"SELECT max(cost_nanousd), max(tokens) FROM"
        f" (SELECT cost_nanousd, {TOKEN_SUM} AS tokens FROM requests ORDER BY timestamp DESC LIMIT ?)",
        (recent,),
    ).fetchone()
    if row is None or row[0] is None:
        return True
    cost, tokens = row[0] or 0, row[1] or 0
    return any(gap <= 2 * (tokens if in_tokens else cost) for in_tokens, gap in gaps)


def projection(status: Status, now: datetime) -> int | None:
    """Linear end-of-period projection from the spend so far (calendar periods only)."""
    if status.start is None or now <= status.start:
        return None
    elapsed = (min(now, status.end) - status.start).total_seconds()
    whole = (status.end - status.start).total_seconds()
    return round(status.spent * whole / elapsed) if elapsed > 0 else None
