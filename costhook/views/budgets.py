"""Where each budget stands: one row per budget, shared by `costhook budget status`, the
dashboard's budget section and `costhook cron`'s cron budgets, which each show a few of
its fields (`pick`)."""

from costhook import budgets as engine
from costhook.timeframe import timedelta, utc_iso
from costhook.views.report import find_job, usd

# The fields each place shows, in its order (JSON output keeps these shapes).
STATUS_FIELDS = ("id", "scope", "period", "period_key", "action", "unit", "spent", "limit", "percent", "remaining",
                 "projected", "blocking", "unpriced_requests", "period_end", "message", "state")
RUNNING_FOR_S = 12 * 3600  # a session whose last call is older than this is not the current one
DASHBOARD_FIELDS = ("id", "scope", "period", "period_key", "action", "unit", "spent", "limit", "fraction", "projected",
                    "state", "message", "alerts")


def latest_session(conn, now=None, cli: str | None = None) -> str | None:
    """The session session budgets are judged on by default: that of the latest call (of
    agent CLI `cli`, if given), unless that call is more than RUNNING_FOR_S before `now`
    (then None: a session that ran months ago is not shown as blocking today). A `claude -p`
    run that just ended is still the one a user asks about."""
    if cli:  # the rollup's session rows know their CLI; the session's own rows its last call
        found = conn.execute("SELECT key FROM spend WHERE dim = 'session' AND cli = ? AND requests > 0 "
                             "ORDER BY bucket DESC LIMIT 1", (cli,)).fetchone()
        row = found and conn.execute("SELECT session_id, max(timestamp) FROM requests WHERE session_id = ?",
                                     (found[0],)).fetchone()
    else:
        row = conn.execute("SELECT session_id, timestamp FROM requests ORDER BY timestamp DESC LIMIT 1").fetchone()
    if row is None or row[0] is None:
        return None
    if now is not None and row[1] and row[1] < utc_iso(now - timedelta(seconds=RUNNING_FOR_S)):
        return None
    return row[0]


def judged(conn, budgets: list, session_id: str | None, now=None) -> tuple[list, list]:
    """(the budgets as the engine judges them, the context of each): a `cron:<job>` budget
    by its job's id (its name or a unique prefix resolved), a `run`/`session` one on that
    job's latest run; a `cli:<name>` `session` one on `session_id` if that CLI ran it, else
    on that CLI's latest session; every other budget on `session_id`."""
    resolved, contexts = [], []
    for b in budgets:
        kind, _, target = b["scope"].partition(":")
        if kind == "cli" and b["period"] in ("run", "session"):
            own = session_id and engine.session_context(conn, session_id).cli == target
            resolved.append(b)
            contexts.append(engine.Context(session_id=session_id if own else latest_session(conn, now, target), cli=target))
            continue
        if kind != "cron":
            resolved.append(b)
            contexts.append(engine.Context(session_id=session_id))
            continue
        job_id = find_job(conn, target) or target
        run = None
        if b["period"] in ("run", "session"):
            row = conn.execute("SELECT session_id FROM cron_runs WHERE job_id = ? AND session_id IS NOT NULL "
                               "ORDER BY started_at DESC LIMIT 1", (job_id,)).fetchone()
            row = row or conn.execute("SELECT session_id FROM requests WHERE cron_job = ? ORDER BY timestamp DESC LIMIT 1",
                                      (job_id,)).fetchone()
            run = row[0] if row else None
        resolved.append({**b, "scope": f"cron:{job_id}"})
        contexts.append(engine.Context(session_id=run, cron_job=job_id))
    return resolved, contexts


def budget_rows(conn, budgets: list, now, tz, *, session_id: str | None = None, contexts: list | None = None,
                alerts: bool = False) -> list:
    """Each budget's standing in its current period: spent, limit, fraction and percent,
    remaining, projection, state, message (USD budgets in dollars, token budgets in tokens).
    Budgets are judged as `judged` says (cron budgets: on their job's latest run, the others
    in the session `session_id`), or each in its own `contexts[i]`; `alerts` adds the alerts
    fired this period."""
    rows = []
    judged_as = (budgets, contexts) if contexts is not None else judged(conn, budgets, session_id, now)
    for b, (as_judged, ctx) in zip(budgets, zip(*judged_as)):
        status = engine.spend(conn, as_judged, ctx, now, tz)
        if as_judged.get("team"):
            engine.name_top_spender(conn, status, engine.team_identity(conn))
        per_session = b["period"] in ("session", "run") or b["scope"] == "session"
        projected = engine.projection(status, now)
        in_usd = not status.in_tokens
        scale = usd if in_usd else (lambda v: v)
        row = {
            "id": b["id"], "scope": b["scope"], "period": b["period"], "period_key": status.period_key,
            "action": b.get("action", "warn"), "unit": "usd" if in_usd else "tokens",
            "spent": scale(status.spent), "limit": scale(status.limit), "fraction": round(status.fraction, 6),
            "percent": round(status.fraction * 100, 1), "remaining": scale(status.limit - status.spent),
            "projected": scale(projected) if projected is not None else None,
            "blocking": status.blocking, "unpriced_requests": status.unpriced,
            "period_end": status.end.strftime("%Y-%m-%dT%H:%M:%SZ") if status.end else None,
            "state": "no session" if per_session and ctx.session_id is None else
                     "blocking" if status.blocking else ("over" if status.fraction >= 1 else
                     ("warning" if status.fraction >= min(b.get("warn_at") or [0.8]) else "ok")),
            "message": status.message(),
        }
        if alerts:
            row["alerts"] = [dict(a) for a in conn.execute(
                "SELECT threshold, action, message, created_at FROM alerts WHERE budget_id = ? AND period = ? ORDER BY created_at",
                (b["id"], status.period_key),
            )]
        rows.append(row)
    return rows


def pick(rows: list, fields: tuple) -> list:
    """The rows with only `fields`, in that order."""
    return [{f: r[f] for f in fields} for r in rows]


def budget_status(conn, cfg: dict, now, tz) -> list:
    """The dashboard's budget rows: every configured budget (session ones on the latest
    session), with the alerts fired in its current period."""
    budgets = cfg.get("budgets", [])
    return pick(budget_rows(conn, budgets, now, tz, session_id=latest_session(conn, now), alerts=True), DASHBOARD_FIELDS)
