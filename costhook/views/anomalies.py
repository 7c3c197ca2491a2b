"""Days, sessions and cron runs that cost far more than usual, judged by the one rule
of views/anomaly_rule.py: `costhook anomalies` and the dashboard's section."""

from datetime import datetime, timedelta, timezone

from costhook.timeframe import bucket_on_boundary, floor_bucket, utc_iso
from costhook.views.anomaly_rule import ANOMALY_MIN_BASELINE, ANOMALY_RULE, is_anomaly
from costhook.views.report import usd
from costhook.views.rollup import daily_costs, of_cli


def anomalies(conn, now: datetime, tz, days: int = 30, cli: str | None = None) -> dict:
    """Days, sessions and cron runs of the last `days` days that cost >= 2x the rolling
    7-day average of their kind. No configuration. With `cli`, of that agent CLI's calls
    only: its days, its sessions against its sessions, its cron runs (OpenClaw's)."""
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=days - 1)
    found = []
    # Days, in the user's zone, from the rollup.
    history_start = datetime.combine(first_day - timedelta(days=7), datetime.min.time(), tz)
    costs = daily_costs(conn, history_start, None, tz, cli)
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
    narrow, more = of_cli(cli)
    for key, first, last, cost in conn.execute(
        f"""SELECT key, min(bucket), max(bucket), sum(cost_nanousd) FROM spend WHERE dim = 'session'{narrow}
            GROUP BY key HAVING max(bucket) >= ?""",
        (*more, bucket_on_boundary(floor_bucket(window_start - timedelta(days=7)), "")),
    ):
        sessions.append((first, key, cost, last))
    sessions.sort()
    found += _rolling("session", sessions, window_start)
    # Cron runs (OpenClaw): views/cron.py owns what a run is and costs, and flags them with the same rule.
    # An isolated cron run is a session of its own, costing what the session costs: when both
    # are flagged it is one event, listed once, as the cron run (which names the job).
    runs = _cron_anomalies(conn, window_start) if cli in (None, "openclaw") else []
    run_sessions = {run["session_id"] for run in runs if run.get("session_id")}
    found = [x for x in found if not (x["kind"] == "session" and x["key"] in run_sessions)] + runs
    found.sort(key=lambda a: (a["at"], a["kind"]), reverse=True)
    return {"rule": ANOMALY_RULE, "days": days, "now": utc_iso(now), **({"cli": cli} if cli else {}),
            "anomalies": found}


def _cron_anomalies(conn, window_start: datetime) -> list:
    """The cron runs flagged since the window's start, as anomaly items."""
    from costhook.views import cron

    out = []
    for run in cron.anomalies(conn, since=utc_iso(window_start)):
        out.append({"kind": "cron_run", "key": run.get("run_id"), "job": run.get("job_name") or run.get("job_id"),
                    "at": (run.get("started_at") or "")[:16].replace("T", " "), "cost_usd": run.get("cost_usd"),
                    "baseline_usd": run.get("rolling_avg_usd"), "ratio": run.get("ratio"), "baseline_count": None,
                    "session_id": run.get("session_id")})
    return out


def _rolling(kind: str, items: list, window_start: datetime, label: str | None = None) -> list:
    """items: (start, key, cost, last) sorted by start; judge each one that starts inside
    the window against the items that started in the 7 days before it (running sums)."""
    found = []
    lo, running = 0, 0
    window_key = utc_iso(window_start)[:16]
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
    """A bucket-like UTC stamp moved by whole days, as `YYYY-MM-DDTHH:MM`."""
    moment = datetime.fromisoformat(stamp[:16]).replace(tzinfo=timezone.utc) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M")


def _judge(kind, key, at, cost, total, count, *, enough, partial=False, label=None) -> list:
    """Flag `cost` when it is at least ANOMALY_FACTOR x the average (total / count) of its kind."""
    if not enough or not count:
        return []
    baseline = total / count
    if not is_anomaly(cost, baseline):
        return []
    item = {"kind": kind, "key": key, "at": at if len(at) == 10 else at[:16].replace("T", " "),
            "cost_usd": usd(cost), "baseline_usd": usd(round(baseline)), "ratio": round(cost / baseline, 2),
            "baseline_count": count}
    if label:
        item["job"] = label
    if partial:
        item["partial"] = True
    return [item]

