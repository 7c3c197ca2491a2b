"""The rollup words every view shares: totals and per-key sums of the `spend` table over a
period, cost per local day, a share, a project's short name."""

import os
from datetime import datetime, timedelta

from costhook.store.rollup import SPEND_DIMENSIONS
from costhook.timeframe import Period, bucket_on_boundary, bucket_time
from costhook.usage import TOKEN_FIELDS
from costhook.views.report import NONE_KEY


def share(part: int, whole: int) -> float | None:
    """part / whole to 6 decimals; None when there is no whole."""
    return round(part / whole, 6) if whole else None


def rollup_total(conn, p: Period, dim: str | None = None, key: str = "") -> dict:
    """Cost, tokens, calls and unpriced calls of one rollup key over the period (default:
    all of the period's calls, those of its agent CLI when it names one)."""
    if dim is None:
        dim, key = p.rollup_key()
    first, last = p.buckets()
    row = conn.execute(
        """SELECT coalesce(sum(cost_nanousd), 0), coalesce(sum(tokens), 0), coalesce(sum(requests), 0),
                  coalesce(sum(unpriced), 0)
           FROM spend WHERE dim = ? AND key = ? AND bucket >= ? AND bucket < ?""",
        (dim, key, first, last),
    ).fetchone()
    return {"cost": int(row[0]), "tokens": int(row[1]), "requests": int(row[2]), "unpriced": int(row[3])}


def rollup_by_key(conn, p: Period, dim: str) -> dict:
    """Key -> cost, tokens, calls and unpriced calls of a rollup dimension over the period.
    A period narrowed to one agent CLI reads its calls instead: the rollup does not cross
    the CLI with the other dimensions (a session or model belongs to one CLI, mostly)."""
    if p.cli and dim != "cli":
        return _by_key_from_calls(conn, p, dim)
    first, last = p.buckets()
    if p.cli:  # by CLI, of one CLI
        found = rollup_total(conn, p)
        return {p.cli: found} if found["requests"] else {}
    out = {}
    for key, cost, tokens, requests, unpriced in conn.execute(
        """SELECT key, sum(cost_nanousd), sum(tokens), sum(requests), sum(unpriced)
           FROM spend WHERE dim = ? AND bucket >= ? AND bucket < ? GROUP BY key""",
        (dim, first, last),
    ):
        if requests:
            out[key] = {"cost": int(cost), "tokens": int(tokens), "requests": int(requests), "unpriced": int(unpriced)}
    return out


_TOKENS = " + ".join(f"coalesce({c}, 0)" for c in TOKEN_FIELDS)  # as the rollup's `tokens`


def _by_key_from_calls(conn, p: Period, dim: str) -> dict:
    column = dict(SPEND_DIMENSIONS)[dim]
    where, args = p.window().where()
    out = {}
    for key, cost, tokens, requests, unpriced in conn.execute(
        f"""SELECT {"project" if dim == "project_name" else column}, coalesce(sum(cost_nanousd), 0), coalesce(sum({_TOKENS}), 0),
                   count(*), sum(cost_nanousd IS NULL)
            FROM requests WHERE {where} GROUP BY 1""", args):
        if dim == "project_name" and key is not None:
            key = os.path.basename(key.rstrip("/")) or None
        if key is None or not requests:
            continue
        g = out.setdefault(key, {"cost": 0, "tokens": 0, "requests": 0, "unpriced": 0})
        g["cost"] += int(cost)
        g["tokens"] += int(tokens)
        g["requests"] += int(requests)
        g["unpriced"] += int(unpriced)
    return out


def daily_costs(conn, start: datetime, end: datetime | None, tz, cli: str | None = None) -> dict:
    """Local day -> {cost, tokens, requests, unpriced} from the rollup (15-minute buckets),
    of every call or of one agent CLI's."""
    out, hours = {}, {}
    first, last = bucket_on_boundary(start, ""), bucket_on_boundary(end, "9999")
    dim, key = ("cli", cli) if cli else ("global", "")
    for bucket, cost, tokens, requests, unpriced in conn.execute(
        "SELECT bucket, cost_nanousd, tokens, requests, unpriced FROM spend WHERE dim = ? AND key = ? AND bucket >= ? AND bucket < ?",
        (dim, key, first, last),
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
    if p.cli:
        found = _by_key_from_calls(conn, p, "model")
        return [{"model": m, "requests": g["unpriced"]}
                for m, g in sorted(found.items(), key=lambda kv: (-kv[1]["unpriced"], kv[0])) if g["unpriced"]]
    first, last = p.buckets()
    return [{"model": key, "requests": int(n)} for key, n in conn.execute(
        """SELECT key, sum(unpriced) FROM spend WHERE dim = 'model' AND bucket >= ? AND bucket < ?
           GROUP BY key HAVING sum(unpriced) > 0 ORDER BY 2 DESC, key""", (first, last))]


def window_models(conn, p: Period) -> list:
    """The models used in the period (from the rollup)."""
    return sorted(rollup_by_key(conn, p, "model"))

