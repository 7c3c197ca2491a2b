"""Where the money went: the spend summary with its projection, leaderboards and the
daily trend. Money is integer nano-USD until it is returned (`*_usd` fields)."""

from bisect import bisect_right
from datetime import datetime, timedelta

from costhook import text
from costhook.timeframe import Period, calendar_months, period, this_year, utc_iso
from costhook.usage import NANO
from costhook.views import report
from costhook.views.report import MAIN_AGENT, NONE_KEY, usd
from costhook.views.rollup import daily_costs, of_cli, project_name, rollup_by_key, rollup_total, share


def summary(conn, now: datetime, tz, cli: str | None = None) -> dict:
    """Spend today, yesterday, this week, this month, last month, this year and all time; the month's projection
    from the last 7 days; today's burn rate per hour. Of every agent CLI, or of `cli` only."""
    periods = {}
    for name in ("today", "yesterday", "week", "month", "last-month", "year", "all"):
        p = (this_year(now, tz) if name == "year" else period(name, now, tz)).only(cli)
        total = rollup_total(conn, p)
        periods[name.replace("-", "_")] = {
            **p.to_json(), "cost_usd": usd(total["cost"]), "requests": total["requests"],
            "tokens": total["tokens"], "unpriced_requests": total["unpriced"],
        }
    last7 = period("7d", now, tz).only(cli)
    recent = rollup_total(conn, last7)["cost"]
    span_days = (now - last7.start).total_seconds() / 86400
    daily_nano = round(recent / span_days) if span_days > 0 else 0
    month = period("month", now, tz)
    month_nano = round(periods["month"]["cost_usd"] * NANO)
    remaining_days = max(0.0, (month.end - now).total_seconds() / 86400)
    projected = month_nano + round(daily_nano * remaining_days)
    today = period("today", now, tz)
    hours = (now - today.start).total_seconds() / 3600
    today_nano = round(periods["today"]["cost_usd"] * NANO)
    burn = round(today_nano / hours) if hours >= 1 / 60 else None
    return {
        "now": utc_iso(now),
        "timezone": str(tz),
        **({"cli": cli} if cli else {}),
        "periods": periods,
        "projection": {
            "basis": "average daily spend over the last 7 days, for the rest of the month",
            "last_7_days_usd": usd(recent),
            "daily_average_usd": usd(daily_nano),
            "month_to_date_usd": usd(month_nano),
            "days_left": round(remaining_days, 2),
            "projected_month_usd": usd(projected),
            "message": f"on track for {text.money(usd(projected))} this month",
        },
        "burn_rate": {
            "today_usd_per_hour": usd(burn) if burn is not None else None,
            "hours_elapsed": round(hours, 2),
        },
    }


# ----------------------------------------------------------------------- 2 leaderboards


TOP_BY = ("session", "project", "model", "tool", "skill", "agent", "branch", "cron", "cli")
_ROLLUP_DIM = {"session": "session", "project": "project", "model": "model", "agent": "agent", "skill": "skill", "cron": "cron",
               "cli": "cli"}


def top(conn, by: str, p: Period, limit: int = 5) -> dict:
    """The most expensive sessions (projects, models, tools, …) in the period, with their
    share of the period's total. Tools follow the rule of `costhook report --by tool`. A period
    narrowed to one agent CLI (`Period.only`) ranks that CLI's calls."""
    if by not in TOP_BY:
        raise ValueError(f"unknown leaderboard {by!r}; choose one of {', '.join(TOP_BY)}")
    total = rollup_total(conn, p)
    if by in _ROLLUP_DIM:
        groups = rollup_by_key(conn, p, _ROLLUP_DIM[by])
        if by in ("agent", "skill", "cron"):  # the rollup skips NULL keys: the rest is "(main)"/"(none)"
            rest = {k: total[k] - sum(g[k] for g in groups.values()) for k in total}
            if rest["requests"] > 0:
                groups[MAIN_AGENT if by == "agent" else NONE_KEY] = rest
    elif by == "tool":
        where, args = p.window().where()
        groups = {
            name: {"cost": s["cost_nanousd"], "requests": s["requests"], "unpriced": s["unpriced_requests"],
                   "tokens": sum(s[m] for m in report.TOKEN_MEASURES)}
            for name, s in report.tool_sums(conn, where, args).items()
        }
    else:  # branch: per project, since "main" means something else in every repository
        where, args = p.window().where()
        groups = {}
        for project, branch, cost, tokens, requests, unpriced in conn.execute(
            f"""SELECT project, git_branch, coalesce(sum(cost_nanousd), 0),
                       coalesce(sum(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens), 0),
                       count(*), sum(cost_nanousd IS NULL)
                FROM requests WHERE {where} GROUP BY +project, +git_branch""",
            args,
        ):
            key = f"{project_name(project)}:{branch or NONE_KEY}"
            g = groups.setdefault(key, {"cost": 0, "tokens": 0, "requests": 0, "unpriced": 0, "project": project, "branch": branch})
            g["cost"] += cost
            g["tokens"] += tokens
            g["requests"] += requests
            g["unpriced"] += unpriced
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1]["cost"], str(kv[0])))
    rows = []
    cron_names = report.job_names(conn) if by == "cron" else {}
    for key, g in ranked[: max(0, limit)]:
        row = {"key": key, "cost_usd": usd(g["cost"]), "share": share(g["cost"], total["cost"]),
               "requests": g["requests"], "tokens": g["tokens"], "unpriced_requests": g["unpriced"]}
        if by == "project":
            row["name"] = project_name(key)
        if by == "branch":
            row["project"], row["branch"] = g["project"], g["branch"]
        if by == "cron":
            row["name"] = cron_names.get(key, {}).get("name")
        rows.append(row)
    if by == "session":
        _describe_sessions(conn, rows)
    others = ranked[max(0, limit):]
    other_cost = sum(g["cost"] for _, g in others)
    return {
        "by": by, "period": p.to_json(), "rows": rows,
        "others": {"count": len(others), "cost_usd": usd(other_cost), "share": share(other_cost, total["cost"])},
        "total": {"cost_usd": usd(total["cost"]), "requests": total["requests"], "unpriced_requests": total["unpriced"]},
    }


def _describe_sessions(conn, rows: list) -> None:
    """Add project, branch, start time, agent CLI and models to session rows (one indexed query each)."""
    for row in rows:
        first = conn.execute(
            "SELECT project, git_branch, timestamp, agent FROM requests WHERE session_id = ? ORDER BY timestamp LIMIT 1",
            (row["key"],)
        ).fetchone()
        models = [m for (m,) in conn.execute(
            "SELECT model FROM requests WHERE session_id = ? GROUP BY model ORDER BY sum(cost_nanousd) DESC", (row["key"],)
        )]
        row["project"] = first[0] if first else None
        row["branch"] = first[1] if first else None
        row["started_at"] = first[2] if first else None
        row["cli"] = first[3] if first else None
        row["models"] = models


def trends(conn, now: datetime, tz, days: int = 30, cli: str | None = None) -> dict:
    """Spend per local day for the last `days` days, with a sparkline and the change
    between the last 7 days and the 7 before; of every agent CLI, or of `cli` only."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, datetime.min.time(), tz)
    costs = daily_costs(conn, start, None, tz, cli)
    rows = []
    for i in range(days):
        day = (first + timedelta(days=i)).isoformat()
        c = costs.get(day, {"cost": 0, "tokens": 0, "requests": 0, "unpriced": 0})
        rows.append({"day": day, "cost_usd": usd(c["cost"]), "requests": c["requests"], "tokens": c["tokens"],
                     "unpriced_requests": c["unpriced"]})
    nanos = [costs.get(r["day"], {}).get("cost", 0) for r in rows]
    total = sum(nanos)
    last7, prev7 = sum(nanos[-7:]), sum(nanos[-14:-7])
    peak = max(range(len(rows)), key=lambda i: nanos[i]) if rows else None
    return {
        "days": days, "timezone": str(tz), **({"cli": cli} if cli else {}), "rows": rows, "sparkline": text.sparkline(nanos),
        "total_usd": usd(total), "daily_average_usd": usd(round(total / days)) if days else 0,
        "peak": {"day": rows[peak]["day"], "cost_usd": rows[peak]["cost_usd"]} if peak is not None and total else None,
        "last_7_days_usd": usd(last7), "previous_7_days_usd": usd(prev7),
        "change_7_days": round((last7 - prev7) / prev7, 4) if prev7 and len(rows) >= 14 else None,
    }


def models_by_month(conn, now: datetime, tz, months: int = 6, top_models: int = 4, cli: str | None = None) -> dict:
    """Spend per model in each of the last `months` calendar months (from the first with
    spend): the `top_models` costliest models of those months by name, the rest as `other`.
    One pass over the rollup's model rows of those months (of agent CLI `cli`'s calls, if given)."""
    periods = calendar_months(now, tz, months)
    edges = [p.buckets()[0] for p in periods]  # each month's first bucket, ascending
    sums = [{} for _ in periods]
    narrow, more = of_cli(cli)
    for key, bucket, cost, requests in conn.execute(
        f"SELECT key, bucket, cost_nanousd, requests FROM spend WHERE dim = 'model' AND bucket >= ? AND bucket < ?{narrow}",
        (edges[0], periods[-1].buckets()[1], *more),
    ):
        month = sums[bisect_right(edges, bucket) - 1]
        g = month.setdefault(key, {"cost": 0, "requests": 0})
        g["cost"] += cost
        g["requests"] += requests
    first = next((i for i, groups in enumerate(sums) if any(g["cost"] for g in groups.values())), len(sums))
    totals: dict = {}
    for groups in sums[first:]:
        for model, g in groups.items():
            totals[model] = totals.get(model, 0) + g["cost"]
    models = [m for m, cost in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])) if cost][:top_models]
    rows = []
    for p, groups in zip(periods[first:], sums[first:]):
        total = sum(g["cost"] for g in groups.values())
        named = {m: groups[m]["cost"] if m in groups else 0 for m in models}
        rows.append({"month": p.name, "start": utc_iso(p.start), "models": {m: usd(c) for m, c in named.items()},
                     "other_usd": usd(total - sum(named.values())), "total_usd": usd(total),
                     "requests": sum(g["requests"] for g in groups.values())})
    return {"months": len(periods), "models": models, "rows": rows}
