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
    """Who is asking: the session, its project and, where known, model, sub-agent, skill,
    cron job and the agent CLI (claude, openclaw, codex)."""

    __slots__ = ("session_id", "project", "model", "agent_type", "skill", "cron_job", "cli")

    def __init__(self, session_id=None, project=None, model=None, agent_type=None, skill=None, cron_job=None,
                 cli=None):
        self.session_id = session_id
        self.project = project
        self.model = model
        self.agent_type = agent_type
        self.skill = skill
        self.cron_job = cron_job
        self.cli = cli


class Status:
    """One budget's standing in its current period."""

    __slots__ = ("budget", "period_key", "spent", "limit", "unpriced", "start", "end", "top_user")

    def __init__(self, budget, period_key, spent, limit, unpriced, start, end, top_user=None):
        self.budget = budget
        self.period_key = period_key
        self.spent = spent  # nano-USD or tokens
        self.limit = limit
        self.unpriced = unpriced  # calls in the period that have no price (not in `spent`)
        self.start = start  # datetime (UTC) or None for session periods
        self.end = end
        self.top_user = top_user  # team budgets: (name, spent) of the user who spent most in the period

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
        """`Budget daily/global: $8.12 of $10.00 (81%) — $1.88 left`; a team budget says so
        and who spent most of it: `Team budget daily/team: … — most by ann ($6.10)`."""
        left = self.limit - self.spent
        tail = f"{self.amount(left)} left" if left >= 0 else f"{self.amount(-left)} over"
        kind = "Team budget" if self.budget.get("team") else "Budget"
        text = f"{kind} {self.label()}: {self.amount(self.spent)} of {self.amount(self.limit)} ({int(self.fraction * 100)}%) — {tail}"
        if self.top_user is not None:
            text += f" — most by {shown_name(self.top_user[0])} ({self.amount(self.top_user[1])})"
        if self.unpriced:
            text += f" (+{self.unpriced} unpriced calls not counted)"
        return text

    def amount(self, value: int) -> str:
        if self.in_tokens:
            return f"{text.tokens(value)} tokens" if value is self.limit else text.tokens(value)
        return text.usd(value)


NAME_CHARS = "._-@\\+"  # besides letters and digits, what login names hold (john.doe, DOMAIN\\jo, jo@corp)
NAME_MAX = 64


def shown_name(name: str) -> str:
    """A team member's name as a block message shows it to the agent and the user. Any
    member can write any key on the team server, so it is made one short word: other
    characters (spaces, line breaks, escapes) become `?`, and it is cut at NAME_MAX."""
    tamed = "".join(c if c.isalnum() or c in NAME_CHARS else "?" for c in name[: NAME_MAX + 1])
    return tamed if len(tamed) <= NAME_MAX else tamed[:NAME_MAX] + "…"


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


def applies(budget: dict, ctx: Context, me: dict | None = None) -> bool:
    """Does this budget govern the agent work described by `ctx`? A team budget only where
    this machine is linked to the team (`me`: team_identity), a `user:`/`machine:` one only
    on that user's or machine's work."""
    kind, _, target = budget["scope"].partition(":")
    if budget.get("team"):
        if me is None:
            return False
        if kind in ("team", "user", "machine"):
            return kind == "team" or me[kind] == target
        if kind == "project":
            return project_matches(target.rpartition("/")[2], ctx.project)
    if kind in ("global", "session"):
        return kind == "global" or bool(ctx.session_id)
    if kind == "project":
        return project_matches(target, ctx.project)
    if kind == "model":
        return model_matches(target, ctx.model)
    value = {"agent": ctx.agent_type, "skill": ctx.skill, "cron": ctx.cron_job, "cli": ctx.cli}[kind]
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
    column = {"agent": "agent_type", "skill": "skill", "cron": "cron_job", "cli": "agent"}[kind]
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


def spend(conn, budget: dict, ctx: Context, now: datetime, tz, me: dict | None = None) -> Status:
    """The budget's spend in its current period (nano-USD, or tokens for token budgets);
    a team budget's from the last pull plus this machine's unpushed calls (`_sum_team`)."""
    tokens = "limit_nanousd" not in budget
    limit = budget["tokens"] if tokens else budget["limit_nanousd"]
    period = budget["period"]
    kind = budget["scope"].partition(":")[0]
    if period in CALENDAR:
        key, start, end = period_bounds(period, now, tz)
        if budget.get("team"):
            spent, unpriced = _sum_team(conn, budget, start, end, tokens, me or team_identity(conn))
            return Status(budget, key, spent, limit, unpriced, start, end)
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


def _sum_rollup(conn, budget: dict, first: str, last: str, tokens: bool, table: str = "spend") -> tuple[int, int]:
    kind, _, target = budget["scope"].partition(":")
    measure = "coalesce(sum(tokens), 0)" if tokens else "coalesce(sum(cost_nanousd), 0)"
    if table == "team_spend" and kind in ("team", "project"):
        # the team's rollup: `global` for the team, projects by the name they leave with
        kind, keys, args = ("global", "key = ''", []) if kind == "team" else ("project", "key = ?", [target])
    elif kind == "global":
        keys, args = "key = ''", []
    elif kind == "cli":  # the rollup's rows carry their agent CLI
        kind, keys, args = "global", "key = '' AND cli = ?", [target]
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
        f"SELECT {measure}, coalesce(sum(unpriced), 0) FROM {table} WHERE dim = ? AND {keys} AND bucket >= ? AND bucket < ?",
        [kind, *args, first, last],
    ).fetchone()
    return int(row[0]), 0 if tokens else int(row[1])


def team_identity(conn) -> dict | None:
    """This machine's team user and machine name, or None while it is not linked to a team
    (no `[team]`, or no sync yet): then team budgets never apply (docs/team.md)."""
    row = conn.execute("SELECT enabled, team_user, machine FROM team_link WHERE id = 1").fetchone()
    if row is None or not row[0]:
        return None
    return {"user": row[1], "machine": row[2]}


def _sum_team(conn, budget: dict, start: datetime, end: datetime, tokens: bool, me: dict | None):
    """(spent, unpriced) of a team budget in [start, end):
    the team's spend as last pulled (`team_spend`) plus what this machine's calls not yet
    pushed add — new calls whole, grown calls their growth (docs/team.md, the budget
    contract). No network: other machines count up to their last push."""
    first, last = bucket(start), bucket(end)
    pulled, unpriced = _sum_rollup(conn, budget, first, last, tokens, table="team_spend")
    kind, _, target = budget["scope"].partition(":")
    mine = me is not None and (kind not in ("user", "machine") or me[kind] == target)
    unpushed = _unpushed(conn, budget, start, end, tokens) if mine else 0
    return pulled + unpushed, unpriced


def name_top_spender(conn, status: Status, me: dict | None) -> None:
    """Set `status.top_user`: the user who spent most of the team in the budget's period
    (team_spend's user dimension, plus this machine's unpushed calls for its own user).
    Only for a message someone will read (a block, a warning): the user dimension of a
    month is thousands of rows."""
    if not status.budget.get("team") or status.start is None:
        return
    tokens = status.in_tokens
    first, last = bucket(status.start), bucket(status.end)
    measure = "tokens" if tokens else "cost_nanousd"
    users = {u: int(v) for u, v in conn.execute(
        f"SELECT key, sum({measure}) FROM team_spend WHERE dim = 'user' AND bucket >= ? AND bucket < ? GROUP BY key",
        (first, last))}
    if me is not None and me["user"]:
        users[me["user"]] = users.get(me["user"], 0) + _unpushed(conn, {"scope": "global"}, status.start, status.end, tokens)
    top = max(users.items(), key=lambda kv: (kv[1], kv[0])) if users else None
    status.top_user = top if top and top[1] > 0 else None


def _unpushed(conn, budget: dict, start: datetime, end: datetime, tokens: bool) -> int:
    """What this machine's calls in the budget's scope and period add beyond the last pull."""
    kind, _, target = budget["scope"].partition(":")
    if kind in ("team", "user", "machine"):
        where, args = "1", []
    elif kind == "project":
        where, args = project_filter(target.rpartition("/")[2])
    else:
        where, args = _scope_filter(budget)
    if tokens:
        base = " + ".join(f"o.base_{f}" for f in TOKEN_SUM.split(" + "))
        measure = f"coalesce(sum(({TOKEN_SUM}) - ({base})), 0)"
    else:
        measure = "coalesce(sum(coalesce(cost_nanousd, 0) - o.base_cost_nanousd), 0)"
    row = conn.execute(
        f"""SELECT {measure} FROM team_outbox o JOIN requests r ON r.key = o.key
            WHERE o.tbl = 'requests' AND r.timestamp >= ? AND r.timestamp < ? AND {where}""",
        [utc_iso(start), utc_iso(end), *args]).fetchone()
    return int(row[0])


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
    me = team_identity(conn) if any(b.get("team") for b in budgets) else None
    statuses = [spend(conn, b, ctx, now, tz, me) for b in budgets if applies(b, ctx, me)]
    blocking = [s for s in statuses if s.blocking]
    block = max(blocking, key=lambda s: s.fraction) if blocking else None
    if me is not None:  # who spent most of a team budget, for the messages shown now
        for status in statuses:
            if status is block or (status.budget.get("team") and status.fraction >= min(thresholds(status.budget))):
                name_top_spender(conn, status, me)
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
    with db.transaction(conn, spend=False):
        for status, threshold in crossed:
            row = {"budget_id": status.budget["id"], "period": status.period_key, "threshold": threshold,
                   "action": status.budget.get("action", "warn"), "spent_nanousd": status.spent,
                   "limit_value": status.limit, "session_id": ctx.session_id, "message": status.message(),
                   "created_at": stamp}
            if writes.record_alert(conn, row) and status not in fired:
                fired.append(status)
    return fired


def session_context(conn, session_id: str | None, **known) -> Context:
    """Fill in the session's current model, skill and agent CLI from its latest call (or
    SessionStart). A hook names its own CLI (`cli=`); the session's rows say it otherwise."""
    ctx = Context(session_id=session_id, **known)
    if session_id and (ctx.model is None or ctx.skill is None or ctx.cli is None):
        row = conn.execute(
            "SELECT model, skill, agent FROM requests WHERE session_id = ? ORDER BY timestamp DESC LIMIT 1", (session_id,)
        ).fetchone()
        if row is not None:
            ctx.model = ctx.model or row[0]
            ctx.skill = ctx.skill or row[1]
            ctx.cli = ctx.cli or row[2]
        elif ctx.model is None or ctx.cli is None:
            row = conn.execute("SELECT model, agent FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            ctx.model = ctx.model or (row[0] if row else None)
            ctx.cli = ctx.cli or (row[1] if row else None)
    return ctx


def costliest_recent(conn, recent: int = 200) -> tuple[int, int] | None:
    """(cost in nano-USD, tokens) of the costliest of the last `recent` calls, each measure
    on its own; None while no call is recorded."""
    row = conn.execute(
        f"SELECT max(cost_nanousd), max(tokens) FROM"
        f" (SELECT cost_nanousd, {TOKEN_SUM} AS tokens FROM requests ORDER BY timestamp DESC LIMIT ?)",
        (recent,),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return row[0] or 0, row[1] or 0


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
    costliest = costliest_recent(conn, recent)
    if costliest is None:
        return True
    cost, tokens = costliest
    return any(gap <= 2 * (tokens if in_tokens else cost) for in_tokens, gap in gaps)


CLEARANCE_MAX = 100  # gates one clearance may let through (a new one comes with each recording)


def clearance(conn, budgets: list, *, now: datetime | None = None, tz=None, recent: int = 200) -> int:
    """How many gates may let the agent go on, without asking, before costhook looks
    again (agents/clearance.py, agents/gate.sh); 0 when every gate must decide in full.

    Every budget counts, whatever work it governs (a gate that does not read its input
    cannot tell), and each gate stands for one more call: with every threshold of every
    budget further than `tickets × 2 ×` the costliest of the last `recent` calls, no
    threshold is crossed before the tickets run out — the margin `may_be_crossed` gives
    one call, per gate. None when a threshold is already reached (the gate says so, or
    blocks), no call is recorded yet, or a budget's spend is not a calendar total: a
    session's (its own calls, any session), or one that blocks when costhook cannot read
    its data (`on_error = "block"`: the gate must try to read it)."""
    if not budgets:
        return CLEARANCE_MAX
    if any(b["period"] not in CALENDAR or b["scope"] == "session" or b.get("on_error") == "block" for b in budgets):
        return 0
    now = now or datetime.now(timezone.utc)
    me = team_identity(conn) if any(b.get("team") for b in budgets) else None
    everywhere = Context()
    statuses = [spend(conn, b, everywhere, now, tz, me) for b in budgets if not b.get("team") or _team_applies(b, me)]
    gaps = [(s.in_tokens, t * s.limit - s.spent) for s in statuses for t in thresholds(s.budget)]
    if not gaps:
        return CLEARANCE_MAX
    costliest = costliest_recent(conn, recent)
    if costliest is None or any(gap <= 0 for _, gap in gaps):
        return 0
    tickets = CLEARANCE_MAX
    for in_tokens, gap in gaps:
        step = 2 * (costliest[1] if in_tokens else costliest[0])
        if step > 0:
            tickets = min(tickets, int(gap // step))
    return max(tickets, 0)


def _team_applies(budget: dict, me: dict | None) -> bool:
    """Whether a team budget can govern any work of this machine (applies, for every work)."""
    if me is None:
        return False
    kind, _, target = budget["scope"].partition(":")
    return kind not in ("user", "machine") or me[kind] == target


def projection(status: Status, now: datetime) -> int | None:
    """Linear end-of-period projection from the spend so far (calendar periods only)."""
    if status.start is None or now <= status.start:
        return None
    elapsed = (min(now, status.end) - status.start).total_seconds()
    whole = (status.end - status.start).total_seconds()
    return round(status.spent * whole / elapsed) if elapsed > 0 else None
