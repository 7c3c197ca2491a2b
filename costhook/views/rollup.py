"""The rollup words every view shares: totals and per-key sums of the `spend` table over a
period, cost per local day, a share, a project's short name."""

import os
from datetime import datetime, timedelta

from costhook.timeframe import Period, bucket_on_boundary, bucket_time
from costhook.views.report import NONE_KEY


def share(part: int, whole: int) -> float | None:
    """part / whole to 6 decimals; None when there is no whole."""
    return round(part / whole, 6) if whole else None


def of_cli(cli: str | None) -> tuple[str, list]:
    """SQL narrowing `spend` rows to one agent CLI's ("" and no argument: every CLI's)."""
    return (" AND cli = ?", [cli]) if cli else ("", [])


def rollup_total(conn, p: Period, dim: str = "global", key: str = "") -> dict:
    """Cost, tokens, calls and unpriced calls of one rollup key over the period (of the
    period's agent CLI when it names one)."""
    first, last = p.buckets()
    narrow, more = of_cli(p.cli)
    row = conn.execute(
        f"""SELECT coalesce(sum(cost_nanousd), 0), coalesce(sum(tokens), 0), coalesce(sum(requests), 0),
                   coalesce(sum(unpriced), 0)
            FROM spend WHERE dim = ? AND key = ? AND bucket >= ? AND bucket < ?{narrow}""",
        (dim, key, first, last, *more),
    ).fetchone()
    return {"cost": int(row[0]), "tokens": int(row[1]), "requests": int(row[2]), "unpriced": int(row[3])}


def rollup_by_key(conn, p: Period, dim: str) -> dict:
    """Key -> cost, tokens, calls and unpriced calls of a rollup dimension over the period
    (of the period's agent CLI when it names one). `cli`: the agent CLIs themselves."""
    first, last = p.buckets()
    narrow, more = of_cli(p.cli)
    key = "cli" if dim == "cli" else "key"
    out = {}
    for key, cost, tokens, requests, unpriced in conn.execute(
        f"""SELECT {key}, sum(cost_nanousd), sum(tokens), sum(requests), sum(unpriced)
            FROM spend WHERE dim = ? AND bucket >= ? AND bucket < ?{narrow} GROUP BY {key}""",
        ("global" if dim == "cli" else dim, first, last, *more),
    ):
        if requests:
            out[key] = {"cost": int(cost), "tokens": int(tokens), "requests": int(requests), "unpriced": int(unpriced)}
    return out


def daily_costs(conn, start: datetime, end: datetime | None, tz, cli: str | None = None) -> dict:
    """Local day -> {cost, tokens, requests, unpriced} from the rollup (15-minute buckets),
    of every call or of one agent CLI's."""
    out, hours = {}, {}
    first, last = bucket_on_boundary(start, ""), bucket_on_boundary(end, "9999")
    narrow, more = of_cli(cli)
    for bucket, cost, tokens, requests, unpriced in conn.execute(
        f"""SELECT bucket, cost_nanousd, tokens, requests, unpriced FROM spend
            WHERE dim = 'global' AND key = '' AND bucket >= ? AND bucket < ?{narrow}""",
        (first, last, *more),
    ):
        hour = hours.get(bucket[:13])
        if hour is None:
            hour = hours[bucket[:13]] = bucket_time(bucket[:13] + ":00").astimezone(tz)
        local = hour + timedelta(minutes=int(bucket[14:16]))
        day = out.setdefault(local.date().isoformat(), {"cost": 0, "tokens": 0, "requests": 0, "unpriced": 0})
        day["cost"] += cost
        day["tokens"] += tokens
        day["requests"] += requests
        day["unpriced"] += unpriced
    return out


def project_name(project: str | None) -> str:
    """A project directory's last component (`/home/dev/acme-api` → `acme-api`)."""
    return os.path.basename(project.rstrip("/")) or project if project else NONE_KEY


def fill_projects(conn, items: list, session_ids: list) -> None:
    """Set each item's missing `project` to its session's (one indexed query each)."""
    for item, session_id in zip(items, session_ids):
        if item.get("project") is None:
            row = conn.execute("SELECT project FROM requests WHERE session_id = ? ORDER BY timestamp LIMIT 1", (session_id,)).fetchone()
            item["project"] = row[0] if row else None


def unpriced_models(conn, p: Period) -> list:
    """Models with unpriced calls in the period (from the rollup): [{model, requests}]."""
    first, last = p.buckets()
    narrow, more = of_cli(p.cli)
    return [{"model": key, "requests": int(n)} for key, n in conn.execute(
        f"""SELECT key, sum(unpriced) FROM spend WHERE dim = 'model' AND bucket >= ? AND bucket < ?{narrow}
            GROUP BY key HAVING sum(unpriced) > 0 ORDER BY 2 DESC, key""", (first, last, *more))]


def window_models(conn, p: Period) -> list:
    """The models used in the period (from the rollup)."""
    return sorted(rollup_by_key(conn, p, "model"))

