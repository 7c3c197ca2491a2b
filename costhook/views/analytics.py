"""Analytics shared by the CLI views (`costhook top`, `trends`, `anomalies`, …) and the
vault dashboard: one function per question, each returning plain JSON-ready data.

Money is integer nano-USD until it is returned (`*_usd` fields, exact to the nano-dollar).
Calendar periods follow the user's time zone and always start on a 15-minute UTC
boundary, so totals can come from the `spend` rollup (a few thousand rows) where a view
needs only cost by day, session, project, model, sub-agent type, skill or cron job; views
that need token counts or the order of calls read `requests` for their window only.

Counterfactual prices (cache savings, never-read cache writes, what-if) use
`prices.price_call`: per-token rates are read off `price_call` at a prompt size inside
the long-context tier of each group of calls, for the group's model, speed, region and
date, so tiers, fast mode, regional uplifts and dated price changes all apply.
"""

import bisect
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction

from costhook import timeframe
from costhook import budgets
from costhook.pricing import prices
from costhook.views import report
from costhook.views.report import MAIN_AGENT, NO_TOOL, NONE_KEY, Window, usd

NANO = 1_000_000_000
TTL = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1)}
ANOMALY_FACTOR = 2  # a day, session or cron run costing >= 2x the rolling 7-day average of its kind
ANOMALY_MIN_NANO = 100_000_000  # ... and at least $0.10 (below that nobody cares)
ANOMALY_MIN_BASELINE = 3  # days with spend / sessions / runs needed for a baseline
ACK_OUTPUT_TOKENS = 300  # an answer this short (or none) is an acknowledgement
BLOCK_HOURS = 5

# Tools whose calls change something outside the conversation. MCP tools count when their
# name says they write (mcp__<server>__create_issue, ...send_message, ...).
SIDE_EFFECT_TOOLS = frozenset({
    "Edit", "MultiEdit", "Write", "NotebookEdit", "Bash", "BashOutput", "KillShell", "KillBash",
    # OpenClaw's tool names
    "write", "edit", "apply_patch", "exec", "process", "message", "sessions_send", "cron", "gateway",
})
MCP_WRITE_VERBS = re.compile(
    r"(^|_)(create|update|delete|remove|write|edit|post|send|add|set|put|patch|insert|upload|publish|"
    r"merge|push|commit|comment|close|reopen|assign|move|rename|archive|reply|submit|run|execute|deploy|"
    r"trigger|approve|invite|schedule|start|stop|cancel|fork|label)(_|$)"
)


# ----------------------------------------------------------------------- periods -----


@dataclass
class Period:
    name: str
    label: str
    start: datetime | None  # UTC, on a 15-minute boundary
    end: datetime | None  # UTC, exclusive; None = up to now (and anything later)

    def window(self) -> Window:
        return Window(start=_iso(self.start) if self.start else None, end=_iso(self.end) if self.end else None)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "start": _iso(self.start) if self.start else None,
            "end": _iso(self.end) if self.end else None,
        }


PERIOD_NAMES = ("today", "yesterday", "week", "last-week", "month", "last-month", "7d", "30d", "90d", "all")


def period(name: str, now: datetime, tz) -> Period:
    """A named period in zone `tz`: calendar ones (today, week, month, last-…) or rolling
    ones (`7d`, `30d`, any `<N>d`: the last N×24 h, from the quarter hour)."""
    if name == "all":
        return Period(name, "all time", None, None)
    rolling = re.fullmatch(r"(\d{1,4})d", name)
    if rolling:
        days = int(rolling.group(1))
        if days < 1:
            raise ValueError("a rolling period needs at least 1 day")
        return Period(name, f"last {days} days", floor_bucket(now) - timedelta(days=days), None)
    calendar = {"today": "daily", "yesterday": "daily", "week": "weekly", "last-week": "weekly",
                "month": "monthly", "last-month": "monthly"}
    if name not in calendar:
        raise ValueError(f"unknown period {name!r}; use one of {', '.join(PERIOD_NAMES)} or <N>d")
    kind = calendar[name]
    key, start, end = timeframe.period_bounds(kind, now, tz)
    if name.startswith("last-") or name == "yesterday":
        key, start, end = timeframe.period_bounds(kind, start - timedelta(seconds=1), tz)
    labels = {"today": f"today ({key})", "yesterday": f"yesterday ({key})", "week": f"this week ({key})",
              "last-week": f"last week ({key})", "month": f"this month ({key})", "last-month": f"last month ({key})"}
    return Period(name, labels[name], start, end)


def floor_bucket(moment: datetime) -> datetime:
    moment = moment.astimezone(timezone.utc)
    return moment.replace(minute=moment.minute // 15 * 15, second=0, microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _bucket(moment: datetime | None, default: str) -> str:
    if moment is None:
        return default
    moment = moment.astimezone(timezone.utc)
    if moment.minute % 15 or moment.second or moment.microsecond:
        raise ValueError(f"{moment} is not on a 15-minute boundary")
    return moment.strftime("%Y-%m-%dT%H:%M")


def _bucket_range(p: Period) -> tuple[str, str]:
    # Rows without a timestamp sit in bucket "0000-00-00T00:00"; windows never include them.
    return _bucket(p.start, "0000-00-00T00:01"), _bucket(p.end, "9999")


def parse_now(text: str | None) -> datetime:
    """`--now` for reproducible output: an ISO 8601 moment (UTC if no offset)."""
    if not text:
        return datetime.now(timezone.utc)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


# ----------------------------------------------------------------------- rollup ------


def _rollup_total(conn, p: Period, dim: str = "global", key: str = "") -> dict:
    first, last = _bucket_range(p)
    row = conn.execute(
        """SELECT coalesce(sum(cost_nanousd), 0), coalesce(sum(tokens), 0), coalesce(sum(requests), 0),
                  coalesce(sum(unpriced), 0)
           FROM spend WHERE dim = ? AND key = ? AND bucket >= ? AND bucket < ?""",
        (dim, key, first, last),
    ).fetchone()
    return {"cost": int(row[0]), "tokens": int(row[1]), "requests": int(row[2]), "unpriced": int(row[3])}


def _rollup_by_key(conn, p: Period, dim: str) -> dict:
    first, last = _bucket_range(p)
    out = {}
    for key, cost, tokens, requests, unpriced in conn.execute(
        """SELECT key, sum(cost_nanousd), sum(tokens), sum(requests), sum(unpriced)
           FROM spend WHERE dim = ? AND bucket >= ? AND bucket < ? GROUP BY key""",
        (dim, first, last),
    ):
        if requests:
            out[key] = {"cost": int(cost), "tokens": int(tokens), "requests": int(requests), "unpriced": int(unpriced)}
    return out


def _bucket_time(bucket: str) -> datetime:
    return datetime(int(bucket[:4]), int(bucket[5:7]), int(bucket[8:10]), int(bucket[11:13]), int(bucket[14:16]), tzinfo=timezone.utc)


def daily_costs(conn, start: datetime, end: datetime | None, tz) -> dict:
    """Local day -> {cost, tokens, requests, unpriced} from the rollup (15-minute buckets)."""
    out, hours = {}, {}
    first, last = _bucket(start, ""), _bucket(end, "9999")
    for bucket, cost, tokens, requests, unpriced in conn.execute(
        "SELECT bucket, cost_nanousd, tokens, requests, unpriced FROM spend WHERE dim = 'global' AND bucket >= ? AND bucket < ?",
        (first, last),
    ):
        hour = hours.get(bucket[:13])
        if hour is None:
            hour = hours[bucket[:13]] = _bucket_time(bucket[:13] + ":00").astimezone(tz)
        local = hour + timedelta(minutes=int(bucket[14:16]))
        day = out.setdefault(local.date().isoformat(), {"cost": 0, "tokens": 0, "requests": 0, "unpriced": 0})
        day["cost"] += cost
        day["tokens"] += tokens
        day["requests"] += requests
        day["unpriced"] += unpriced
    return out


# ----------------------------------------------------------------------- 1 summary ---


def summary(conn, now: datetime, tz) -> dict:
    """Spend today, yesterday, this week, this month and last month; the month's projection
    from the last 7 days; today's burn rate per hour."""
    periods = {}
    for name in ("today", "yesterday", "week", "month", "last-month"):
        p = period(name, now, tz)
        total = _rollup_total(conn, p)
        periods[name.replace("-", "_")] = {
            **p.to_json(), "cost_usd": usd(total["cost"]), "requests": total["requests"],
            "tokens": total["tokens"], "unpriced_requests": total["unpriced"],
        }
    last7 = period("7d", now, tz)
    recent = _rollup_total(conn, last7)["cost"]
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
        "now": _iso(now),
        "timezone": str(tz),
        "periods": periods,
        "projection": {
            "basis": "average daily spend over the last 7 days, for the rest of the month",
            "last_7_days_usd": usd(recent),
            "daily_average_usd": usd(daily_nano),
            "month_to_date_usd": usd(month_nano),
            "days_left": round(remaining_days, 2),
            "projected_month_usd": usd(projected),
            "message": f"on track for {money(usd(projected))} this month",
        },
        "burn_rate": {
            "today_usd_per_hour": usd(burn) if burn is not None else None,
            "hours_elapsed": round(hours, 2),
        },
    }


# ----------------------------------------------------------------------- 2 leaderboards


TOP_BY = ("session", "project", "model", "tool", "skill", "agent", "branch", "cron")
_ROLLUP_DIM = {"session": "session", "project": "project", "model": "model", "agent": "agent", "skill": "skill", "cron": "cron"}


def top(conn, by: str, p: Period, limit: int = 5) -> dict:
    """The most expensive sessions (projects, models, tools, …) in the period, with their
    share of the period's total. Tools follow the rule of `costhook report --by tool`."""
    if by not in TOP_BY:
        raise ValueError(f"unknown leaderboard {by!r}; choose one of {', '.join(TOP_BY)}")
    total = _rollup_total(conn, p)
    if by in _ROLLUP_DIM:
        groups = _rollup_by_key(conn, p, _ROLLUP_DIM[by])
        if by in ("agent", "skill", "cron"):  # the rollup skips NULL keys: the rest is "(main)"/"(none)"
            rest = {k: total[k] - sum(g[k] for g in groups.values()) for k in total}
            if rest["requests"] > 0:
                groups[MAIN_AGENT if by == "agent" else NONE_KEY] = rest
    elif by == "tool":
        where, args = p.window().where()
        groups = {
            name: {"cost": s["cost_nanousd"], "requests": s["requests"], "unpriced": s["unpriced_requests"],
                   "tokens": sum(s[m] for m in report.TOKEN_MEASURES)}
            for name, s in report._by_tool(conn, where, args).items()
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
            key = f"{_project_name(project)}:{branch or NONE_KEY}"
            g = groups.setdefault(key, {"cost": 0, "tokens": 0, "requests": 0, "unpriced": 0, "project": project, "branch": branch})
            g["cost"] += cost
            g["tokens"] += tokens
            g["requests"] += requests
            g["unpriced"] += unpriced
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1]["cost"], str(kv[0])))
    rows = []
    for key, g in ranked[: max(0, limit)]:
        row = {"key": key, "cost_usd": usd(g["cost"]), "share": _share(g["cost"], total["cost"]),
               "requests": g["requests"], "tokens": g["tokens"], "unpriced_requests": g["unpriced"]}
        if by == "project":
            row["name"] = _project_name(key)
        if by == "branch":
            row["project"], row["branch"] = g["project"], g["branch"]
        rows.append(row)
    if by == "session":
        _describe_sessions(conn, rows)
    others = ranked[max(0, limit):]
    other_cost = sum(g["cost"] for _, g in others)
    return {
        "by": by, "period": p.to_json(), "rows": rows,
        "others": {"count": len(others), "cost_usd": usd(other_cost), "share": _share(other_cost, total["cost"])},
        "total": {"cost_usd": usd(total["cost"]), "requests": total["requests"], "unpriced_requests": total["unpriced"]},
    }


def _project_name(project: str | None) -> str:
    return os.path.basename(project.rstrip("/")) or project if project else NONE_KEY


def _describe_sessions(conn, rows: list) -> None:
    """Add project, branch, start time and models to session rows (one indexed query each)."""
    for row in rows:
        first = conn.execute(
            "SELECT project, git_branch, timestamp FROM requests WHERE session_id = ? ORDER BY timestamp LIMIT 1", (row["key"],)
        ).fetchone()
        models = [m for (m,) in conn.execute(
            "SELECT model FROM requests WHERE session_id = ? GROUP BY model ORDER BY sum(cost_nanousd) DESC", (row["key"],)
        )]
        row["project"] = first[0] if first else None
        row["branch"] = first[1] if first else None
        row["started_at"] = first[2] if first else None
        row["models"] = models


# ----------------------------------------------------------------------- 3 sub-agent tree


def tree(conn, session_id: str, max_depth: int = 6) -> dict:
    """A session, its main thread, its sub-agents and its child sessions (recursively),
    each with its cost and share of the whole tree's cost."""
    node = _session_node(conn, session_id, set(), max_depth)
    _set_shares(node, node["cost_nanousd"])
    return _strip_nano(node)


def _session_node(conn, session_id: str, seen: set, depth: int) -> dict:
    seen.add(session_id)
    children = []
    main = None
    projects = set()
    for agent_id, agent_type, sidechain, cost, requests, tokens, unpriced, first, last, project in conn.execute(
        """SELECT agent_id, max(agent_type), max(is_sidechain), coalesce(sum(cost_nanousd), 0), count(*),
                  coalesce(sum(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens), 0),
                  sum(cost_nanousd IS NULL), min(timestamp), max(timestamp), max(project)
           FROM requests WHERE session_id = ? GROUP BY agent_id, agent_id IS NULL AND is_sidechain = 1""",
        (session_id,),
    ):
        projects.add(project)
        sums = {"cost_nanousd": cost, "requests": requests, "tokens": tokens, "unpriced_requests": unpriced,
                "first": first, "last": last, "children": []}
        if agent_id is None and not sidechain:
            main = {"kind": "main", "id": session_id, "label": "main thread", **sums}
        else:
            label = agent_type or ("sub-agent" if agent_id else "sub-agents (unnamed)")
            children.append({"kind": "subagent", "id": agent_id, "agent_type": agent_type, "label": label, **sums})
    if depth > 0:
        for (child,) in conn.execute(
            "SELECT session_id FROM sessions WHERE parent_session_id = ? AND session_id != ? ORDER BY started_at", (session_id, session_id)
        ):
            if child not in seen:
                children.append(_session_node(conn, child, seen, depth - 1))
    children.sort(key=lambda c: -c["cost_nanousd"])
    if main is not None:
        children.insert(0, main)
    info = conn.execute("SELECT project FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
    project = info[0] if info and info[0] else next((p for p in sorted(projects, key=str) if p), None)
    return {
        "kind": "session", "id": session_id, "label": _project_name(project) if project else session_id,
        "project": project,
        "cost_nanousd": sum(c["cost_nanousd"] for c in children),
        "requests": sum(c["requests"] for c in children),
        "tokens": sum(c["tokens"] for c in children),
        "unpriced_requests": sum(c["unpriced_requests"] for c in children),
        "first": min((c["first"] for c in children if c["first"]), default=None),
        "last": max((c["last"] for c in children if c["last"]), default=None),
        "children": children,
    }


def _set_shares(node: dict, whole: int) -> None:
    node["share"] = _share(node["cost_nanousd"], whole)
    for child in node["children"]:
        _set_shares(child, whole)


def _strip_nano(node: dict) -> dict:
    out = {k: v for k, v in node.items() if k not in ("cost_nanousd", "children")}
    out["cost_usd"] = usd(node["cost_nanousd"])
    out["children"] = [_strip_nano(c) for c in node["children"]]
    return out


def sessions_with_subagents(conn, p: Period, candidates: int = 20) -> list:
    """The period's most expensive sessions that have sub-agents or child sessions."""
    ranked = sorted(_rollup_by_key(conn, p, "session").items(), key=lambda kv: -kv[1]["cost"])[:candidates]
    found = []
    for session_id, _ in ranked:
        has = conn.execute(
            "SELECT 1 FROM requests WHERE session_id = ? AND (agent_id IS NOT NULL OR is_sidechain = 1) LIMIT 1", (session_id,)
        ).fetchone() or conn.execute(
            "SELECT 1 FROM sessions WHERE parent_session_id = ? AND session_id != ? LIMIT 1", (session_id, session_id)
        ).fetchone()
        if has:
            found.append(session_id)
    return found


# ----------------------------------------------------------------------- 4 cost by tool


TOOL_RULE = ("A call's cost belongs to the tools it requested, split evenly between them; "
             f"calls that requested no tool are {NO_TOOL}.")


def by_tool(conn, p: Period, session_id: str | None = None) -> dict:
    """Share of the period's (or one session's) spend that went to calls requesting each tool."""
    if session_id:
        where, args = "session_id = ?", [session_id]
        totals = conn.execute("SELECT coalesce(sum(cost_nanousd), 0), count(*) FROM requests WHERE session_id = ?", args).fetchone()
        total, calls = int(totals[0]), int(totals[1])
    else:
        where, args = p.window().where()
        rollup = _rollup_total(conn, p)
        total, calls = rollup["cost"], rollup["requests"]
    raw = report._by_tool(conn, where, args)  # the rule of `report --by tool`
    rows, servers = [], {}
    for name, sums in sorted(raw.items(), key=lambda kv: (-kv[1]["cost_nanousd"], kv[0])):
        nano = sums["cost_nanousd"]
        rows.append({"tool": name, "cost_usd": usd(nano), "share": _share(nano, total), "requests": sums["requests"],
                     "tokens": sum(sums[m] for m in report.TOKEN_MEASURES)})
        if name.startswith("mcp__"):
            server = name.split("__")[1] or "?"
            s = servers.setdefault(server, {"server": server, "cost": 0, "tools": 0})
            s["cost"] += nano
            s["tools"] += 1
    mcp = [{"server": s["server"], "cost_usd": usd(s["cost"]), "share": _share(s["cost"], total), "tools": s["tools"]}
           for s in sorted(servers.values(), key=lambda s: -s["cost"])]
    return {
        "period": None if session_id else p.to_json(), "session_id": session_id, "rule": TOOL_RULE,
        "rows": rows, "mcp_servers": mcp,
        "total": {"cost_usd": usd(total), "requests": calls},
    }


# ----------------------------------------------------------------------- prices ------


class Rates:
    """Per-token rates (pico-USD, exact fractions) read off prices.price_call for one
    model, speed, region, moment and prompt size."""

    __slots__ = ("priced", "input", "output", "cache_write_5m", "cache_write_1h", "cache_read", "web_search")

    def cost_pico(self, sums: dict) -> Fraction:
        return (sums["input_tokens"] * self.input + sums["output_tokens"] * self.output
                + sums["cache_write_5m_tokens"] * self.cache_write_5m + sums["cache_write_1h_tokens"] * self.cache_write_1h
                + sums["cache_read_tokens"] * self.cache_read + sums.get("web_search_requests", 0) * self.web_search)


_rates_cache: dict = {}


def rates(model: str, *, prompt: int, speed, geo, timestamp: str, table) -> Rates:
    key = (id(table), model, prompt, speed, geo, timestamp)
    cached = _rates_cache.get(key)
    if cached is not None:
        return cached
    r = Rates()

    def cost(**tokens):
        return prices.price_call(model, speed=speed, inference_geo=geo, timestamp=timestamp, table=table, **tokens)

    base_tokens = {"input_tokens": prompt, "output_tokens": 0}
    base = cost(**base_tokens)
    r.priced = base is not None
    if not r.priced:
        r.input = r.output = r.cache_write_5m = r.cache_write_1h = r.cache_read = r.web_search = Fraction(0)
    else:
        # Every probe keeps the prompt at `prompt` tokens, so it stays in the group's tier.
        r.input = Fraction(base * 1000, prompt)
        r.output = Fraction(cost(input_tokens=prompt, output_tokens=1_000_000) - base, 1000)
        r.cache_write_5m = Fraction(cost(input_tokens=0, output_tokens=0, cache_write_5m_tokens=prompt) * 1000, prompt)
        r.cache_write_1h = Fraction(cost(input_tokens=0, output_tokens=0, cache_write_1h_tokens=prompt) * 1000, prompt)
        r.cache_read = Fraction(cost(input_tokens=0, output_tokens=0, cache_read_tokens=prompt) * 1000, prompt)
        r.web_search = Fraction(cost(input_tokens=prompt, output_tokens=0, web_search_requests=1000) - base)
    if len(_rates_cache) > 10_000:
        _rates_cache.clear()
    _rates_cache[key] = r
    return r


def _entry(table, model: str) -> dict | None:
    """The price-table model that prices `model` (user models first)."""
    model_id = prices.model_key(model, table)
    if model_id is None:
        return None
    if model_id in table.replaced:
        return table.replaced[model_id]
    for entry in table.extra:
        if entry["id"] == model_id:
            return entry
    for _, models in table.providers:
        for entry in models:
            if entry["id"] == model_id:
                return entry
    return None


def _price_sets(entry: dict | None) -> list:
    return list(entry.get("prices") or []) + list(entry.get("fast") or []) if entry else []


@dataclass
class PriceShape:
    """How finely calls must be grouped so that one rate set prices a whole group."""

    thresholds: list  # long-context tier boundaries (prompt tokens) of the models involved
    by_day: bool  # some price changes inside the window
    by_clock: bool  # some price depends on the time of day

    def tier_sql(self) -> str:
        prompt = "(input_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens)"
        if not self.thresholds:
            return "0"
        return " + ".join(f"({prompt} > {int(t)})" for t in self.thresholds)

    def keys_sql(self) -> list:
        keys = ["model", "speed", "inference_geo", f"{self.tier_sql()}"]
        if self.by_day:
            keys.append("substr(timestamp, 1, 10)")
        if self.by_clock:
            keys.append("substr(timestamp, 12, 5)")
        return keys

    def probe_prompt(self, tier: int) -> int:
        """A prompt size in tier `tier` (0 = below every threshold), a multiple of 10,000
        where one fits, so rates come out of price_call exactly."""
        bounds = sorted(self.thresholds)
        low = bounds[tier - 1] if tier > 0 else 0
        high = bounds[tier] if tier < len(bounds) else None
        candidate = (low // 10_000 + 1) * 10_000
        if high is None or candidate <= high:
            return candidate
        candidate = (low // 1000 + 1) * 1000
        return candidate if candidate <= high else high

    def timestamp(self, p_end: str, day: str | None, clock: str | None) -> str:
        return f"{day or p_end[:10]}T{clock or p_end[11:16]}:00.000Z"


def price_shape(models, table, p: Period, now: datetime) -> PriceShape:
    thresholds, by_day, by_clock = set(), False, False
    first_day = p.start.date().isoformat() if p.start else "0000-00-00"
    last_day = (p.end or now).date().isoformat()
    for model in models:
        for price_set in _price_sets(_entry(table, model)):
            for tier in price_set.get("tiers", ()):
                thresholds.add(int(tier["above"]))
            since = price_set.get("since")
            if since and first_day < since <= last_day:
                by_day = True
            if price_set.get("hours"):
                by_clock = True
    return PriceShape(sorted(thresholds), by_day, by_clock)


def _window_models(conn, p: Period) -> list:
    return sorted(_rollup_by_key(conn, p, "model"))


def _group_rates(shape: PriceShape, model: str, g: dict, p: Period, now: datetime, table) -> Rates:
    end = _iso(min(p.end, now) - timedelta(seconds=1)) if p.end else _iso(now)
    stamp = shape.timestamp(end, g.get("day"), g.get("clock"))
    return rates(model, prompt=shape.probe_prompt(g["tier"]), speed=g["speed"], geo=g["geo"], timestamp=stamp, table=table)


def _nano(pico: Fraction) -> int:
    return math.floor(pico / 1000 + Fraction(1, 2))


# ----------------------------------------------------------------------- 5 cache -----


CACHE_RULE = ("Hit ratio = cache read / (input + cache read + cache write). Savings = what the cache reads "
              "would have cost at the input price, minus what they cost. A cache write counts as never read when "
              "the next call of the same thread (main thread or sub-agent) read no more from the cache than the "
              "writing call did, or when no call followed within the write's lifetime (5 min or 1 h); writes still "
              "inside their lifetime with no call after them are not judged yet.")


def cache_efficiency(conn, p: Period, now: datetime, table=None, session_id: str | None = None, seq=None) -> dict:
    """Cache hit ratio, dollars saved by cache reads, and cache writes never read (see CACHE_RULE)."""
    table = table or prices.load_table()
    if seq is None:
        seq = sequence(conn, p, now, table, session_id=session_id)
    shape = seq["shape"]
    by_model = {}
    totals = _zero_cache()
    for key, g in seq["groups"].items():
        model, speed, geo, tier, day, clock = key[:6]
        r = _group_rates(shape, model or "", {"speed": speed, "geo": geo, "tier": tier, "day": day, "clock": clock}, p, now, table)
        entry = by_model.setdefault(model, _zero_cache())
        for target in (entry, totals):
            for name in ("requests", "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens"):
                target[name] += g[name]
            target["pending_write_tokens"] += g["pending"]
            target["never_read_5m_tokens"] += g["wasted_5m"]
            target["never_read_1h_tokens"] += g["wasted_1h"]
            if r.priced:
                target["savings_pico"] += g["cache_read_tokens"] * (r.input - r.cache_read)
                target["read_cost_pico"] += g["cache_read_tokens"] * r.cache_read
                target["write_cost_pico"] += g["cache_write_5m_tokens"] * r.cache_write_5m + g["cache_write_1h_tokens"] * r.cache_write_1h
                target["never_read_pico"] += g["wasted_5m"] * r.cache_write_5m + g["wasted_1h"] * r.cache_write_1h
            else:
                target["unpriced_requests"] += g["requests"]
    rows = [{"model": m, **_cache_out(v)} for m, v in sorted(by_model.items(), key=lambda kv: -kv[1]["savings_pico"])]
    return {"period": None if session_id else p.to_json(), "session_id": session_id, "rule": CACHE_RULE,
            "totals": _cache_out(totals), "by_model": rows}


_SEQ_COLUMNS = ("session_id, agent_id, is_sidechain, timestamp, model, speed, inference_geo, input_tokens, output_tokens, "
                "cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, web_search_requests, cost_nanousd, tools, "
                "is_heartbeat, coalesce(run_id, prompt_id)")


def sequence(conn, p: Period, now: datetime, table=None, session_id: str | None = None, scopes: bool = False) -> dict:
    """One pass over the period's calls in time order (the timestamp index, no sort),
    following each thread (main thread or sub-agent) from call to call:

    - `groups`: token sums per price group (model, speed, region, tier, day, clock) with the
      cache-write tokens that the thread's next call did not read (see CACHE_RULE); with
      `scopes`, also per project, sub-agent type and skill (what `whatif_from_sequence` needs);
    - `turns`: per thread, the calls up to and including one that requested no tool (the
      answer), or an OpenClaw run / prompt id: rows (session_id, thread, turn, first, calls,
      cost, unpriced, actions, answer_output_tokens, heartbeat, project=None).

    Python rather than SQL window functions: the same work is 3-4x faster this way."""
    table = table or prices.load_table()
    models = _window_models(conn, p) if not session_id else _session_models(conn, session_id)
    shape = price_shape(models + [t for _, t in CHEAPER], table, p, now)
    thresholds, by_day, by_clock = shape.thresholds, shape.by_day, shape.by_clock
    columns = _SEQ_COLUMNS + (", project, agent_type, skill" if scopes else ", NULL, NULL, NULL")
    if session_id:
        where, args = "session_id = ?", [session_id]
        end_key = None
    else:
        # The next call may fall after the window's end: read an hour past it, count only inside.
        look = Window(start=p.window().start, end=_iso(p.end + TTL["1h"]) if p.end else None)
        where, args = look.where()
        end_key = _iso(p.end) if p.end else None
    cut5, cut1 = _iso(now - TTL["5m"]), _iso(now - TTL["1h"])
    # Hot loop (one iteration per call): lists and locals rather than dicts and attributes.
    # group: [requests, input, output, write 5m, write 1h, read, web, cost, unpriced, wasted 5m, wasted 1h, pending]
    # thread state: [group, read, write 5m, write 1h, timestamp, open turn]
    # turn: [session, thread, index, first, calls, cost, unpriced, actions, answer output, heartbeat, turn key, closed]
    groups, threads, turn_rows, actions_of = {}, {}, [], {}
    single = thresholds[0] if len(thresholds) == 1 else None
    for (sid, aid, side, ts, model, speed, geo, inp, out, w5, w1, read, web, cost, tools, heartbeat, turn_key,
         project, agent_type, skill) in conn.execute(
        f"SELECT {columns} FROM requests WHERE {where} AND timestamp IS NOT NULL ORDER BY timestamp", args
    ):
        read = read or 0
        w5 = w5 or 0
        w1 = w1 or 0
        thread = (sid, aid, side)
        state = threads.get(thread)
        if state is None:
            state = threads[thread] = [None, 0, 0, 0, ts, None]
        else:
            group = state[0]
            if group is not None and read <= state[1] and (state[2] or state[3]):
                group[9] += state[2]
                group[10] += state[3]
        if end_key is not None and ts >= end_key:  # past the window: only tells whether earlier writes were read
            state[0] = None
            state[1], state[2], state[3], state[4] = read, w5, w1, ts
            continue
        inp = inp or 0
        out = out or 0
        prompt = inp + w5 + w1 + read
        if single is not None:
            tier = 1 if prompt > single else 0
        else:
            tier = 0
            for t in thresholds:
                if prompt > t:
                    tier += 1
        key = (model, speed, geo, tier, ts[:10] if by_day else None, ts[11:16] if by_clock else None, project, agent_type, skill)
        g = groups.get(key)
        if g is None:
            g = groups[key] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        g[0] += 1
        g[1] += inp
        g[2] += out
        g[3] += w5
        g[4] += w1
        g[5] += read
        if web:
            g[6] += web
        if cost is None:
            g[8] += 1
        else:
            g[7] += cost
        state[0] = g
        state[1], state[2], state[3], state[4] = read, w5, w1, ts
        # Turns.
        acts = actions_of.get(tools)
        if acts is None:
            acts = actions_of[tools] = tool_actions(tools)
        turn = state[5]
        if turn is None or turn[11] or (turn_key is not None and turn[10] != turn_key):
            turn = state[5] = [sid, thread, len(turn_rows), ts, 0, 0, 0, 0, 0, 0, turn_key, False]
            turn_rows.append(turn)
        turn[4] += 1
        if cost is None:
            turn[6] += 1
        else:
            turn[5] += cost
        turn[7] += acts
        if heartbeat:
            turn[9] = 1
        if tools == "[]" or not tools:
            turn[8] += out
            turn[11] = turn_key is None  # an answer ends the turn (runs end when their id changes)
    # Writes of each thread's last call: wasted once their lifetime is over, else not judged yet.
    for group, _, w5, w1, ts, _ in threads.values():
        if group is None:
            continue
        if w5:
            group[9 if ts < cut5 else 11] += w5
        if w1:
            group[10 if ts < cut1 else 11] += w1
    names = ("requests", "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
             "cache_read_tokens", "web_search_requests", "cost", "unpriced", "wasted_5m", "wasted_1h", "pending")
    groups = {key: dict(zip(names, g)) for key, g in groups.items()}
    turn_rows = [(t[0], t[1][1] or ("(sidechain)" if t[1][2] else ""), t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], None)
                 for t in turn_rows]
    return {"shape": shape, "groups": groups, "turns": turn_rows}


def _session_models(conn, session_id: str) -> list:
    return [m for (m,) in conn.execute("SELECT DISTINCT model FROM requests WHERE session_id = ?", (session_id,)) if m]


def _group_key(row, shape: PriceShape) -> dict:
    g = {"model": row[0], "speed": row[1], "geo": row[2], "tier": int(row[3] or 0)}
    i = 4
    if shape.by_day:
        g["day"] = row[i]
        i += 1
    if shape.by_clock:
        g["clock"] = row[i]
    return g


def _zero_cache() -> dict:
    return {"requests": 0, "input_tokens": 0, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0,
            "pending_write_tokens": 0, "never_read_5m_tokens": 0, "never_read_1h_tokens": 0, "unpriced_requests": 0,
            "savings_pico": Fraction(0), "read_cost_pico": Fraction(0), "write_cost_pico": Fraction(0),
            "never_read_pico": Fraction(0)}


def _cache_out(s: dict) -> dict:
    prompt = s["input_tokens"] + s["cache_read_tokens"] + s["cache_write_5m_tokens"] + s["cache_write_1h_tokens"]
    written = s["cache_write_5m_tokens"] + s["cache_write_1h_tokens"]
    never = s["never_read_5m_tokens"] + s["never_read_1h_tokens"]
    return {
        "requests": s["requests"], "input_tokens": s["input_tokens"], "cache_read_tokens": s["cache_read_tokens"],
        "cache_write_5m_tokens": s["cache_write_5m_tokens"], "cache_write_1h_tokens": s["cache_write_1h_tokens"],
        "hit_ratio": round(s["cache_read_tokens"] / prompt, 6) if prompt else None,
        "saved_usd": usd(_nano(s["savings_pico"])),
        "cache_read_cost_usd": usd(_nano(s["read_cost_pico"])),
        "cache_write_cost_usd": usd(_nano(s["write_cost_pico"])),
        "never_read_write_tokens": never,
        "never_read_write_share": round(never / written, 6) if written else None,
        "never_read_write_cost_usd": usd(_nano(s["never_read_pico"])),
        "pending_write_tokens": s["pending_write_tokens"],
        "unpriced_requests": s["unpriced_requests"],
    }


# ----------------------------------------------------------------------- 6 anomalies -


ANOMALY_RULE = (f"A day, session or cron run that costs at least {ANOMALY_FACTOR}x the average of its kind over the "
                f"7 days before it (days: the 7 previous days; sessions: sessions started in the 7 days before it; "
                f"cron runs: the same job's runs in the 7 days before it), and at least "
                f"${ANOMALY_MIN_NANO / NANO:.2f}; a baseline needs {ANOMALY_MIN_BASELINE} days, sessions or runs.")


def anomalies(conn, now: datetime, tz, days: int = 30) -> dict:
    """Days, sessions and cron runs of the last `days` days that cost >= 2x the rolling
    7-day average of their kind. No configuration."""
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=days - 1)
    found = []
    # Days, in the user's zone, from the rollup.
    history_start = datetime.combine(first_day - timedelta(days=7), datetime.min.time(), tz)
    costs = daily_costs(conn, history_start, None, tz)
    day = first_day
    while day <= today:
        previous = [costs.get((day - timedelta(days=i)).isoformat(), {}).get("cost", 0) for i in range(1, 8)]
        cost = costs.get(day.isoformat(), {}).get("cost", 0)
        found += _judge("day", day.isoformat(), day.isoformat(), cost, sum(previous), 7, partial=day == today,
                        enough=sum(1 for c in previous if c > 0) >= ANOMALY_MIN_BASELINE)
        day += timedelta(days=1)
    # Sessions: whole-session cost against sessions that started in the 7 days before.
    window_start = datetime.combine(first_day, datetime.min.time(), tz).astimezone(timezone.utc)
    sessions = []
    for key, first, last, cost in conn.execute(
        """SELECT key, min(bucket), max(bucket), sum(cost_nanousd) FROM spend WHERE dim = 'session'
           GROUP BY key HAVING max(bucket) >= ?""",
        (_bucket(floor_bucket(window_start - timedelta(days=7)), ""),),
    ):
        sessions.append((first, key, cost, last))
    sessions.sort()
    found += _rolling("session", sessions, window_start)
    # Cron runs (OpenClaw): costhook.cron_views owns what a run is and costs, when present.
    cron = _cron_anomalies(conn, window_start)
    if cron is not None:
        found += cron
        found.sort(key=lambda a: (a["at"], a["kind"]), reverse=True)
        return {"rule": ANOMALY_RULE, "days": days, "now": _iso(now), "anomalies": found}
    runs_by_job = {}
    for job, run, first, cost in conn.execute(
        """SELECT cron_job, coalesce(run_id, session_id), min(timestamp), coalesce(sum(cost_nanousd), 0) FROM requests
           WHERE cron_job IS NOT NULL AND timestamp >= ? GROUP BY cron_job, coalesce(run_id, session_id)""",
        (_iso(window_start - timedelta(days=7)),),
    ):
        runs_by_job.setdefault(job, []).append((first, run, cost, first))
    for job, runs in sorted(runs_by_job.items()):
        runs.sort()
        found += _rolling("cron_run", runs, window_start, label=job)
    found.sort(key=lambda a: (a["at"], a["kind"]), reverse=True)
    return {"rule": ANOMALY_RULE, "days": days, "now": _iso(now), "anomalies": found}


def _cron_anomalies(conn, window_start: datetime) -> list | None:
    from costhook.views import cron

    out = []
    for run in cron.anomalies(conn, since=_iso(window_start)):
        out.append({"kind": "cron_run", "key": run.get("run_id"), "job": run.get("job_name") or run.get("job_id"),
                    "at": (run.get("started_at") or "")[:16].replace("T", " "), "cost_usd": run.get("cost_usd"),
                    "baseline_usd": run.get("rolling_avg_usd"), "ratio": run.get("ratio"), "baseline_count": None})
    return out


def _rolling(kind: str, items: list, window_start: datetime, label: str | None = None) -> list:
    """items: (start, key, cost, last) sorted by start; judge each one that starts inside
    the window against the items that started in the 7 days before it (running sums)."""
    found = []
    lo, running = 0, 0
    window_key = _iso(window_start)[:16]
    for i, (first, key, cost, _) in enumerate(items):
        begin = _shift(first, -7)
        while lo < i and items[lo][0][:16] < begin:
            running -= items[lo][2]
            lo += 1
        if first[:16] >= window_key:
            count = i - lo
            found += _judge(kind, key, first, cost, running, count, enough=count >= ANOMALY_MIN_BASELINE, label=label)
        running += cost
    return found


def _shift(stamp: str, days: int) -> str:
    moment = datetime.fromisoformat(stamp[:16]).replace(tzinfo=timezone.utc) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M")


def _judge(kind, key, at, cost, total, count, *, enough, partial=False, label=None) -> list:
    """Flag `cost` when it is at least ANOMALY_FACTOR x the average (total / count) of its kind."""
    if not enough or not count:
        return []
    baseline = total / count
    if baseline <= 0 or cost < ANOMALY_MIN_NANO or cost < ANOMALY_FACTOR * baseline:
        return []
    item = {"kind": kind, "key": key, "at": at if len(at) == 10 else at[:16].replace("T", " "),
            "cost_usd": usd(cost), "baseline_usd": usd(round(baseline)), "ratio": round(cost / baseline, 2),
            "baseline_count": count}
    if label:
        item["job"] = label
    if partial:
        item["partial"] = True
    return [item]


# ----------------------------------------------------------------------- 7 what-if ---


WHATIF_BY = ("project", "skill", "agent", "model")
_SCOPE_SQL = {"project": "project", "skill": "skill", "agent": "agent_type", "model": "model"}
# Default alternatives: one family down, to a model the bundled table prices.
CHEAPER = (("opus", "claude-sonnet-4-5"), ("mythos", "claude-opus-4-5"), ("sonnet", "claude-haiku-4-5"))


def default_target(model: str | None) -> str | None:
    name = (model or "").lower()
    for family, target in CHEAPER:
        if family in name:
            return target
    return None


def whatif(conn, p: Period, now: datetime, *, by=("project",), to_model: str | None = None,
           from_model: str | None = None, only: str | None = None, table=None) -> dict:
    """What the period's calls would have cost on another model, from their real token
    counts: per scope value (project, skill, sub-agent type) and model actually used."""
    table = table or prices.load_table()
    by = (by,) if isinstance(by, str) else tuple(by)
    for scope in by:
        if scope not in WHATIF_BY:
            raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(WHATIF_BY)}")
    if to_model and prices.model_key(to_model, table) is None:
        raise ValueError(f"model {to_model!r} has no price; add it to the config's [prices]")
    models = _window_models(conn, p)
    targets = {to_model} if to_model else {t for _, t in CHEAPER}
    shape = price_shape(models + sorted(targets), table, p, now)
    where, args = p.window().where()
    if only is not None and len(by) == 1:
        where += f" AND {_SCOPE_SQL[by[0]]} IS ?"
        args.append(None if only in (NONE_KEY, MAIN_AGENT) else only)
    # One query per model actually used (the model index, small sorts), and only models
    # with something to compare with.
    wanted = [m for m in models if (not from_model or budgets.model_matches(from_model, m))
              and (to_model or default_target(m)) and not _same_model(m, to_model or default_target(m), table)]
    scope_cols = [f"+{_SCOPE_SQL[s]}" for s in dict.fromkeys(by) if s != "model"]
    keys = shape.keys_sql()[1:]  # the model is fixed per query
    sql = f"""
        SELECT {', '.join(f'{k} AS k{i}' for i, k in enumerate(keys))}{''.join(f', {c}' for c in scope_cols)},
               count(*), sum(input_tokens), sum(output_tokens), sum(cache_write_5m_tokens), sum(cache_write_1h_tokens),
               sum(cache_read_tokens), sum(web_search_requests), coalesce(sum(cost_nanousd), 0), sum(cost_nanousd IS NULL)
        FROM requests WHERE model = ? AND {where}
        GROUP BY {', '.join([f'k{i}' for i in range(len(keys))] + scope_cols)}"""
    results = {}
    for model in wanted:
        for row in conn.execute(sql, [model, *args]):
            g = _group_key((model, *row), shape)
            n = len(keys)
            scope_values = dict(zip([s for s in dict.fromkeys(by) if s != "model"], row[n: n + len(scope_cols)]))
            sums = dict(zip(("requests", "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
                             "cache_read_tokens", "web_search_requests", "cost", "unpriced"), row[n + len(scope_cols):]))
            _whatif_add(results, by, g, scope_values, sums, to_model, shape, p, now, table)
    return _whatif_result(results, p, by, to_model, from_model)


def whatif_from_sequence(seq: dict, p: Period, now: datetime, *, by=("project", "agent", "skill"), table=None) -> dict:
    """`whatif` with default targets, from a `sequence(..., scopes=True)` pass (the dashboard)."""
    table = table or prices.load_table()
    results = {}
    for key, sums in seq["groups"].items():
        model, speed, geo, tier, day, clock, project, agent_type, skill = key
        g = {"model": model, "speed": speed, "geo": geo, "tier": tier, "day": day, "clock": clock}
        _whatif_add(results, by, g, {"project": project, "agent": agent_type, "skill": skill}, sums, None, seq["shape"], p, now, table)
    return _whatif_result(results, p, by, None, None)


def _whatif_add(results, by, g, scope_values, sums, to_model, shape, p, now, table) -> None:
    target = to_model or default_target(g["model"])
    if not target or _same_model(g["model"], target, table):
        return
    r = _group_rates(shape, target, g, p, now, table)
    if not r.priced:
        return
    cost = r.cost_pico(sums)
    for scope in by:
        value = g["model"] if scope == "model" else scope_values[scope]
        if value is None:
            value = MAIN_AGENT if scope == "agent" else NONE_KEY
        acc = results.setdefault((scope, value, g["model"], target),
                                 {"requests": 0, "tokens": 0, "actual": 0, "whatif": Fraction(0), "unpriced": 0})
        acc["requests"] += sums["requests"]
        acc["tokens"] += sum(sums[t] for t in report.TOKEN_MEASURES)
        acc["actual"] += sums["cost"]
        acc["unpriced"] += sums["unpriced"] or 0
        acc["whatif"] += cost


def _whatif_result(results: dict, p: Period, by, to_model, from_model) -> dict:
    rows = []
    for (scope, value, model, target), acc in results.items():
        counter = _nano(acc["whatif"])
        priced = acc["unpriced"] == 0
        rows.append({
            "scope": scope, "key": value, "name": _project_name(value) if scope == "project" else value,
            "from_model": model, "to_model": target, "requests": acc["requests"], "tokens": acc["tokens"],
            "actual_usd": usd(acc["actual"]) if priced else None, "whatif_usd": usd(counter),
            "savings_usd": usd(acc["actual"] - counter) if priced else None,
            "savings_share": _share(acc["actual"] - counter, acc["actual"]) if priced else None,
            "unpriced_requests": acc["unpriced"],
        })
    rows.sort(key=lambda r: (-(r["savings_usd"] if r["savings_usd"] is not None else -1e18), r["scope"], str(r["key"]), r["from_model"]))
    return {"period": p.to_json(), "by": list(by), "to_model": to_model, "from_model": from_model,
            "rule": "Real token counts of each call priced at the other model's prices (same tier, speed, region and "
                    "date), against what the calls cost. Quality differences are not modelled.",
            "rows": rows}


def _same_model(a: str | None, b: str, table) -> bool:
    return bool(a) and prices.model_key(a, table) == prices.model_key(b, table)


# ----------------------------------------------------------------------- 8/9 activity


_actions_cache: dict = {}


def tool_actions(tools_json: str | None) -> int:
    """Side-effecting tools a call requested (Edit, Write, Bash, MCP writes, …)."""
    if not tools_json or tools_json == "[]":
        return 0
    cached = _actions_cache.get(tools_json)
    if cached is None:
        try:
            names = json.loads(tools_json)
        except ValueError:
            names = []
        cached = sum(1 for n in names if isinstance(n, str) and is_side_effect(n))
        if len(_actions_cache) > 50_000:
            _actions_cache.clear()
        _actions_cache[tools_json] = cached
    return cached


def is_side_effect(name: str) -> bool:
    if name in SIDE_EFFECT_TOOLS:
        return True
    if name.startswith("mcp__"):
        return bool(MCP_WRITE_VERBS.search(name.split("__", 2)[-1].lower()))
    return False


def turns(conn, p: Period, now: datetime | None = None) -> list:
    """The period's turns (see `sequence`)."""
    return sequence(conn, p, now or datetime.now(timezone.utc))["turns"]


IDLE_RULE = ("A turn is idle when none of its calls requested a tool with side effects (Edit, Write, Bash, MCP "
             f"writes, …) and its answer was at most {ACK_OUTPUT_TOKENS} output tokens (an acknowledgement). "
             "A session is idle when all its turns are.")


def idle(conn, p: Period, turn_rows: list | None = None, limit: int = 10) -> dict:
    """Turns and sessions that spent tokens but produced nothing outward."""
    turn_rows = turns(conn, p) if turn_rows is None else turn_rows
    total = sum(t[5] for t in turn_rows)
    sessions = {}
    idle_turns = []
    heart = {"turns": 0, "idle_turns": 0, "cost": 0, "idle_cost": 0}
    for session_id, thread, turn, first, calls, cost, unpriced, actions, answer, heartbeat, project in turn_rows:
        is_idle = not actions and answer <= ACK_OUTPUT_TOKENS
        s = sessions.setdefault(session_id, {"cost": 0, "idle_cost": 0, "turns": 0, "idle_turns": 0, "first": first,
                                             "project": project})
        s["cost"] += cost
        s["turns"] += 1
        s["first"] = min(s["first"], first)
        if heartbeat:
            heart["turns"] += 1
            heart["cost"] += cost
        if is_idle:
            s["idle_cost"] += cost
            s["idle_turns"] += 1
            idle_turns.append((cost, session_id, thread, first, calls))
            if heartbeat:
                heart["idle_turns"] += 1
                heart["idle_cost"] += cost
    idle_cost = sum(s["idle_cost"] for s in sessions.values())
    idle_sessions = [(k, s) for k, s in sessions.items() if s["idle_turns"] == s["turns"] and s["cost"] > 0]
    idle_sessions.sort(key=lambda kv: -kv[1]["cost"])
    idle_turns.sort(key=lambda t: -t[0])
    _fill_projects(conn, [s for _, s in idle_sessions[:limit]], [k for k, _ in idle_sessions[:limit]])
    return {
        "period": p.to_json(), "rule": IDLE_RULE,
        "total_cost_usd": usd(total),
        "idle_cost_usd": usd(idle_cost), "idle_share": _share(idle_cost, total),
        "turns": len(turn_rows), "idle_turns": len(idle_turns),
        "sessions": len(sessions), "idle_sessions": len(idle_sessions),
        "idle_session_cost_usd": usd(sum(s["cost"] for _, s in idle_sessions)),
        "heartbeats": {"turns": heart["turns"], "idle_turns": heart["idle_turns"], "cost_usd": usd(heart["cost"]),
                       "idle_cost_usd": usd(heart["idle_cost"])},
        "top_idle_sessions": [{"session_id": k, "project": s["project"], "started_at": s["first"], "cost_usd": usd(s["cost"]),
                               "turns": s["turns"]} for k, s in idle_sessions[:limit]],
        "top_idle_turns": [{"session_id": sid, "thread": thread or "main", "at": first, "calls": calls, "cost_usd": usd(cost)}
                           for cost, sid, thread, first, calls in idle_turns[:limit]],
    }


EFFICIENCY_RULE = ("Useful actions = tools with side effects (Edit, Write, Bash, MCP writes, …) that the session's calls "
                   "requested; score = actions per dollar. Each session is graded against the period's other sessions "
                   "(those costing at least $0.01): A when at least two thirds of them scored lower, C when fewer than "
                   "a third did, B otherwise.")
MIN_GRADED_NANO = 10_000_000


def efficiency(conn, p: Period, turn_rows: list | None = None, limit: int = 10, projects: bool = True) -> dict:
    """Useful actions per dollar per session, graded A/B/C against the user's own sessions."""
    turn_rows = turns(conn, p) if turn_rows is None else turn_rows
    sessions = {}
    for session_id, thread, turn, first, calls, cost, unpriced, actions, answer, heartbeat, project in turn_rows:
        s = sessions.setdefault(session_id, {"cost": 0, "actions": 0, "calls": 0, "first": first, "project": project})
        s["cost"] += cost
        s["actions"] += actions or 0
        s["calls"] += calls
        s["first"] = min(s["first"], first)
    graded = [(k, s, s["actions"] * NANO / s["cost"]) for k, s in sessions.items() if s["cost"] >= MIN_GRADED_NANO]
    scores = sorted(score for _, _, score in graded)
    rows = []
    for key, s, score in graded:
        lower = bisect.bisect_left(scores, score) / len(scores)
        grade = "A" if lower >= 2 / 3 else ("C" if lower < 1 / 3 else "B")
        rows.append({"session_id": key, "project": s["project"], "started_at": s["first"], "cost_usd": usd(s["cost"]),
                     "actions": s["actions"], "calls": s["calls"], "actions_per_usd": round(score, 3),
                     "scored_lower": round(lower, 4), "grade": grade})
    rows.sort(key=lambda r: (-r["cost_usd"], r["session_id"]))
    rows = rows[:limit] if limit else rows
    if projects:
        _fill_projects(conn, rows, [r["session_id"] for r in rows])
    total_cost = sum(s["cost"] for s in sessions.values())
    total_actions = sum(s["actions"] for s in sessions.values())
    return {
        "period": p.to_json(), "rule": EFFICIENCY_RULE,
        "actions": total_actions, "cost_usd": usd(total_cost),
        "actions_per_usd": round(total_actions * NANO / total_cost, 3) if total_cost else None,
        "grades": {g: sum(1 for r in rows if r["grade"] == g) for g in "ABC"}, "graded_sessions": len(rows),
        "sessions": rows,
    }


def _fill_projects(conn, items: list, session_ids: list) -> None:
    for item, session_id in zip(items, session_ids):
        if item.get("project") is None:
            row = conn.execute("SELECT project FROM requests WHERE session_id = ? ORDER BY timestamp LIMIT 1", (session_id,)).fetchone()
            item["project"] = row[0] if row else None


# ----------------------------------------------------------------------- 10 messages -


def message_rows(conn, where: str, args: list, table=None) -> list:
    """One row per API call (the `report --by message` grouping): the report measures plus
    time, model, tools, cost by token type and cache hit ratio."""
    table = table or prices.load_table()
    rows = []
    for r in conn.execute(
        f"""SELECT key, timestamp, model, agent_id, agent_type, tools, input_tokens, output_tokens, cache_write_5m_tokens,
                   cache_write_1h_tokens, cache_read_tokens, web_search_requests, cost_nanousd, cost_source, speed, inference_geo
            FROM requests WHERE {where} ORDER BY timestamp, key""",
        args,
    ):
        r = dict(r)
        tokens = {m: int(r[m] or 0) for m in report.TOKEN_MEASURES}
        prompt = tokens["input_tokens"] + tokens["cache_read_tokens"] + tokens["cache_write_5m_tokens"] + tokens["cache_write_1h_tokens"]
        by_type = _cost_by_type(r, tokens, table)
        try:
            tools = json.loads(r["tools"] or "[]")
        except ValueError:
            tools = []
        rows.append({
            "key": r["key"], "requests": 1, **tokens, "total_tokens": sum(tokens.values()),
            "cost_usd": usd(r["cost_nanousd"] or 0), "unpriced_requests": int(r["cost_nanousd"] is None),
            "timestamp": r["timestamp"], "model": r["model"], "agent_id": r["agent_id"], "agent_type": r["agent_type"],
            "tools": tools, "cost_source": r["cost_source"],
            "cache_hit_ratio": round(tokens["cache_read_tokens"] / prompt, 6) if prompt else None,
            "cost_by_type_usd": by_type,
        })
    return rows


def _cost_by_type(r: dict, tokens: dict, table) -> dict | None:
    """The call's cost split by token type, at the rates of its own tier, speed, region and time."""
    if r["cost_source"] != "computed":
        return None
    thresholds = sorted({int(t["above"]) for s in _price_sets(_entry(table, r["model"] or "")) for t in s.get("tiers", ())})
    prompt = tokens["input_tokens"] + tokens["cache_read_tokens"] + tokens["cache_write_5m_tokens"] + tokens["cache_write_1h_tokens"]
    tier = sum(1 for t in thresholds if prompt > t)
    stamp = (r["timestamp"] or "")[:16] + ":00.000Z" if r["timestamp"] else None
    rt = rates(r["model"] or "", prompt=PriceShape(thresholds, False, False).probe_prompt(tier), speed=r["speed"],
               geo=r["inference_geo"], timestamp=stamp, table=table)
    if not rt.priced:
        return None
    parts = {
        "input": tokens["input_tokens"] * rt.input,
        "output": tokens["output_tokens"] * rt.output,
        "cache_write": tokens["cache_write_5m_tokens"] * rt.cache_write_5m + tokens["cache_write_1h_tokens"] * rt.cache_write_1h,
        "cache_read": tokens["cache_read_tokens"] * rt.cache_read,
        "web_search": int(r["web_search_requests"] or 0) * rt.web_search,
    }
    return {name: usd(_nano(value)) for name, value in parts.items()}


# ----------------------------------------------------------------------- 11 blocks ---


BLOCK_RULE = ("Claude's usage limits reset in 5-hour windows. A window starts at its first call, floored to the hour "
              "(UTC), and lasts 5 hours; a call more than 5 hours after the window's start or after the previous "
              "call starts a new one. Estimates for subscription plans: costs are what the calls would cost on the API.")


def blocks(conn, now: datetime, p: Period) -> dict:
    """5-hour usage windows (like ccusage `blocks`), built from the rollup's quarter hours
    plus the exact first and last call times; the active one with burn rate and projection."""
    first, last = _bucket_range(p)
    buckets = conn.execute(
        """SELECT bucket, cost_nanousd, tokens, requests, unpriced FROM spend
           WHERE dim = 'global' AND bucket >= ? AND bucket < ? AND requests > 0 ORDER BY bucket""",
        (first, last),
    ).fetchall()
    out, current = [], None
    prev_bucket = None
    for bucket, cost, tokens, requests, unpriced in buckets:
        start = datetime.strptime(bucket, "%Y-%m-%dT%H:%M").replace(tzinfo=timezone.utc)
        new = current is None or start >= current["start"] + timedelta(hours=BLOCK_HOURS)
        if not new and prev_bucket is not None and start - prev_bucket > timedelta(hours=BLOCK_HOURS) - timedelta(minutes=15):
            # The gap between two calls may exceed 5 h: compare the exact times.
            last_call = _edge(conn, prev_bucket, "DESC")
            first_call = _edge(conn, start, "ASC")
            new = first_call - last_call > timedelta(hours=BLOCK_HOURS)
        if new:
            current = {"start": start.replace(minute=0), "cost": 0, "tokens": 0, "requests": 0, "unpriced": 0}
            out.append(current)
        current["cost"] += cost
        current["tokens"] += tokens
        current["requests"] += requests
        current["unpriced"] += unpriced
        current["last_bucket"] = start
        prev_bucket = start
    rows = []
    for b in out:
        end = b["start"] + timedelta(hours=BLOCK_HOURS)
        first_call = _edge(conn, b["start"], "ASC", end=end)
        last_call = _edge(conn, b["last_bucket"], "DESC")
        active = b is out[-1] and now < end and now - last_call < timedelta(hours=BLOCK_HOURS)
        row = {"start": _iso(b["start"]), "end": _iso(end), "first_call": _iso(first_call), "last_call": _iso(last_call),
               "active": active, "cost_usd": usd(b["cost"]), "tokens": b["tokens"], "requests": b["requests"],
               "unpriced_requests": b["unpriced"]}
        if active:
            elapsed_h = max((now - first_call).total_seconds() / 3600, 1 / 60)
            burn = b["cost"] / elapsed_h
            remaining_h = (end - now).total_seconds() / 3600
            row.update(burn_rate_usd_per_hour=usd(round(burn)), tokens_per_minute=round(b["tokens"] / (elapsed_h * 60)),
                       minutes_left=round(remaining_h * 60), projected_cost_usd=usd(b["cost"] + round(burn * remaining_h)),
                       estimate=True)
        rows.append(row)
    return {"period": p.to_json(), "rule": BLOCK_RULE, "blocks": rows}


def _edge(conn, bucket_start: datetime, order: str, end: datetime | None = None) -> datetime:
    lo = _iso(bucket_start)
    hi = _iso(end if end is not None else bucket_start + timedelta(minutes=15))
    row = conn.execute(
        f"SELECT timestamp FROM requests WHERE timestamp >= ? AND timestamp < ? ORDER BY timestamp {order} LIMIT 1", (lo, hi)
    ).fetchone()
    if not row:
        return bucket_start
    return datetime.fromisoformat(row[0].replace("Z", "+00:00")).astimezone(timezone.utc)


# ----------------------------------------------------------------------- 12 trends ---


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list) -> str:
    top_value = max(values, default=0)
    if top_value <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top_value * (len(SPARK) - 1) + 0.5))] if v > 0 else " " for v in values)


def trends(conn, now: datetime, tz, days: int = 30) -> dict:
    """Spend per local day for the last `days` days, with a sparkline and the change
    between the last 7 days and the 7 before."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, datetime.min.time(), tz)
    costs = daily_costs(conn, start, None, tz)
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
        "days": days, "timezone": str(tz), "rows": rows, "sparkline": sparkline(nanos),
        "total_usd": usd(total), "daily_average_usd": usd(round(total / days)) if days else 0,
        "peak": {"day": rows[peak]["day"], "cost_usd": rows[peak]["cost_usd"]} if peak is not None and total else None,
        "last_7_days_usd": usd(last7), "previous_7_days_usd": usd(prev7),
        "change_7_days": round((last7 - prev7) / prev7, 4) if prev7 and len(rows) >= 14 else None,
    }


# ----------------------------------------------------------------------- budgets -----


def budget_status(conn, cfg: dict, now: datetime, tz) -> list:
    """Each configured calendar budget's standing (session budgets need a session: the
    latest one), its projection and the alerts fired in its current period."""
    latest = conn.execute("SELECT session_id FROM requests ORDER BY timestamp DESC LIMIT 1").fetchone()
    ctx = budgets.Context(session_id=latest[0] if latest else None)
    out = []
    for b in cfg.get("budgets", []):
        status = budgets.spend(conn, b, ctx, now, tz)
        projected = budgets.projection(status, now)
        tokens = status.in_tokens
        scale = (lambda v: v) if tokens else usd
        alerts = [dict(a) for a in conn.execute(
            "SELECT threshold, action, message, created_at FROM alerts WHERE budget_id = ? AND period = ? ORDER BY created_at",
            (b["id"], status.period_key),
        )]
        out.append({
            "id": b["id"], "scope": b["scope"], "period": b["period"], "period_key": status.period_key,
            "action": b.get("action", "warn"), "unit": "tokens" if tokens else "usd",
            "spent": scale(status.spent), "limit": scale(status.limit), "fraction": round(status.fraction, 6),
            "projected": scale(projected) if projected is not None else None,
            "state": "blocking" if status.blocking else ("over" if status.fraction >= 1 else
                     ("warning" if status.fraction >= min(b.get("warn_at") or [0.8]) else "ok")),
            "message": status.message(), "alerts": alerts,
        })
    return out


def unpriced_models(conn, p: Period) -> list:
    """Models with unpriced calls in the period (from the rollup): [{model, requests}]."""
    first, last = _bucket_range(p)
    return [{"model": key, "requests": int(n)} for key, n in conn.execute(
        """SELECT key, sum(unpriced) FROM spend WHERE dim = 'model' AND bucket >= ? AND bucket < ?
           GROUP BY key HAVING sum(unpriced) > 0 ORDER BY 2 DESC, key""", (first, last))]


# ----------------------------------------------------------------------- display -----


def money(value: float | None) -> str:
    if value is None:
        return "–"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 100:
        return f"{sign}${value:,.0f}"
    if value >= 1:
        return f"{sign}${value:,.2f}"
    if value >= 0.01 or value == 0:
        return f"{sign}${value:.2f}"
    return f"{sign}${value:.4f}"


def percent(share: float | None) -> str:
    if share is None:
        return "–"
    return f"{share * 100:.0f}%" if abs(share) >= 0.1 else f"{share * 100:.1f}%"
