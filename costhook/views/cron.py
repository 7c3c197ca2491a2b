"""OpenClaw cron and heartbeat views: per-run cost, per-cron history, top crons, heartbeat
idle cost, anomalies, per-cron budgets (`costhook cron` prints them: cli/cron.py).

API (plain functions over a costhook database connection; money is nano-USD integers
with a `*_usd` float beside it for display; `since`/`until` are UTC ISO strings or None):

    runs(conn, job=None, since=None, until=None)                 -> list[Run dict], oldest first
    summary(conn, since=None, until=None, spark=20)              -> list[Cron dict], costliest first
    top_crons(conn, n=5, since=None, until=None)                 -> summary()[:n]
    history(conn, job, limit=30)                                 -> (Cron dict | None, list[Run dict] newest first)
    heartbeat_idle(conn, since=None, until=None)                 -> Heartbeat dict
    anomalies(conn, since=None, until=None, factor=2.0)          -> list[Run dict] flagged, newest first
    budget_status(conn, budgets, now=None, tz=None)              -> list[CronBudget dict]
    report.find_job(conn, text)                                  -> job id for an id, a name, or a unique prefix

Run dict: run_id, job_id, job_name, host_agent, session_id, started_at, status, duration_ms,
    requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, total_tokens,
    tokens_source ("transcript" | "run log" | None), cost_nanousd (None = unknown), cost_usd,
    cost_known, unpriced_requests, transcript_missing, recorded (a run-history record exists),
    is_heartbeat, idle (heartbeat runs: only acknowledged), rolling_avg_usd, anomaly, ratio, line.
Cron dict: job_id, job_name, host_agent, kind, schedule, runs, ok, errors, unknown_cost_runs,
    cost_nanousd, cost_usd, total_tokens, avg_cost_usd, last_run_at, last_status, last_cost_usd,
    anomalies, spark_values (cost per run, oldest first; None = unknown), sparkline.
Heartbeat dict: heartbeats, idle, idle_cost_nanousd, idle_cost_usd, cost_nanousd, cost_usd,
    idle_tokens, idle_share (of heartbeat cost), by_agent [{host_agent, heartbeats, idle, idle_cost_usd, cost_usd}].

A run's cost is the sum of its calls: for an isolated run, every call of its session; for a
run in the main session (heartbeats, main-session jobs), the calls tagged with that job (or
heartbeat) between its start and its end. A run whose calls left no rows (transcript pruned
by cron.sessionRetention, or failed before any model call) has cost None: unknown, never 0;
its tokens then come from the run log when OpenClaw logged them. An "anomaly" is a run that
cost at least `factor` × the average of the up to 10 previous runs of the same cron (3 at least):
views/anomaly_rule.py's rule, with the cron's window. A run's `line` is text.run_line.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from costhook import text
from costhook.timeframe import local_zone
from costhook.usage import NANO
from costhook.views import report
from costhook.views.anomaly_rule import ANOMALY_MIN_BASELINE, CRON_RUNS_WINDOW, is_anomaly
from costhook.views.budgets import budget_rows, judged

WINDOW_SLACK_MS = 2000  # main-session runs: calls up to this long after the logged end still count

_SUMS = """count(*) AS requests,
    coalesce(sum(input_tokens), 0) AS input_tokens,
    coalesce(sum(output_tokens), 0) AS output_tokens,
    coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
    coalesce(sum(cache_write_5m_tokens), 0) + coalesce(sum(cache_write_1h_tokens), 0) AS cache_write_tokens,
    coalesce(sum(cost_nanousd), 0) AS cost_nanousd,
    coalesce(sum(cost_nanousd IS NULL), 0) AS unpriced_requests,
    coalesce(min(ack_only), 0) AS all_ack,
    min(timestamp) AS first_at, max(timestamp) AS last_at"""


def usd(nano) -> float | None:
    """report.usd, where None (an unknown cost) stays None."""
    return None if nano is None else report.usd(nano)


def _iso_plus_ms(stamp: str, ms: int) -> str:
    moment = datetime.strptime(stamp[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    moment = moment + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _where_time(column: str, since, until) -> tuple[str, list]:
    clauses, args = [], []
    if since:
        clauses.append(f"{column} >= ?")
        args.append(since)
    if until:
        clauses.append(f"{column} < ?")
        args.append(until)
    return (" AND ".join(clauses) or "1"), args


def runs(conn, job: str | None = None, since: str | None = None, until: str | None = None) -> list[dict]:
    """Every cron run (recorded in the run history, or seen only in calls), oldest first,
    with its cost, tokens, anomaly flag and one-line summary."""
    names = report.job_names(conn)
    where, args = _where_time("started_at", since, until)
    if job:
        where += " AND job_id = ?"
        args.append(job)
    recorded = [dict(r) for r in conn.execute(f"SELECT * FROM cron_runs WHERE {where} ORDER BY started_at, run_id", args)]
    by_session = _session_sums(conn, [r["session_id"] for r in recorded if r.get("session_id")])
    out, seen_sessions = [], set()
    for run in recorded:
        sums = None
        if run.get("session_id") and run["session_id"] in by_session:
            sums = by_session[run["session_id"]]
            seen_sessions.add(run["session_id"])
        elif not run.get("session_id") and run.get("started_at"):
            sums = _window_sums(conn, run)
        out.append(_run_dict(run, sums, names, recorded=True))
    out += _unrecorded_runs(conn, job, since, until, seen_sessions | {r["session_id"] for r in recorded if r.get("session_id")}, names)
    out.sort(key=lambda r: (r["started_at"] or "", r["run_id"]))
    _flag_anomalies(out)
    return out


def _session_sums(conn, session_ids: list) -> dict:
    out = {}
    ids = list(dict.fromkeys(session_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = f"SELECT session_id, {_SUMS} FROM requests WHERE session_id IN ({','.join('?' * len(chunk))}) GROUP BY session_id"
        for row in conn.execute(sql, chunk):
            out[row["session_id"]] = dict(row)
    return out


def _window_sums(conn, run: dict) -> dict | None:
    """Calls of a main-session run: tagged with its job (or heartbeat), within its time."""
    start = run["started_at"]
    end = _iso_plus_ms(start, (run.get("duration_ms") or 0) + WINDOW_SLACK_MS)
    if run.get("is_heartbeat"):
        tag, tag_args = "(is_heartbeat = 1 OR cron_job = ?)", [run["job_id"]]
    else:
        tag, tag_args = "cron_job = ?", [run["job_id"]]
    host = " AND host_agent = ?" if run.get("host_agent") else ""
    args = [*tag_args, start, end] + ([run["host_agent"]] if host else [])
    row = conn.execute(
        f"SELECT {_SUMS} FROM requests WHERE agent = 'openclaw' AND {tag} AND timestamp >= ? AND timestamp <= ?{host}", args
    ).fetchone()
    return dict(row) if row and row["requests"] else None


def _unrecorded_runs(conn, job, since, until, known_sessions: set, names: dict) -> list:
    """Runs seen only through their calls (no run-history record yet): isolated runs by
    session, main-session cron turns by run id."""
    where, args = _where_time("timestamp", since, until)
    if job:
        where += " AND cron_job = ?"
        args.append(job)
    sql = f"""SELECT cron_job, CASE WHEN session_kind = 'cron' THEN session_id ELSE coalesce(run_id, session_id) END AS grp,
                     max(session_id) AS session_id, max(host_agent) AS host_agent, max(is_heartbeat) AS is_heartbeat,
                     max(session_kind) AS session_kind, {_SUMS}
              FROM requests WHERE agent = 'openclaw' AND cron_job IS NOT NULL AND {where}
              GROUP BY cron_job, grp"""
    out = []
    for row in conn.execute(sql, args):
        row = dict(row)
        if row["session_id"] in known_sessions:
            continue  # the calls of a recorded run (its session may lack a cron key, e.g. no sessions.json entry)
        if row["session_kind"] != "cron" and _covered_by_recorded(conn, row):
            continue
        run = {"run_id": f"calls:{row['cron_job']}:{row['grp']}", "job_id": row["cron_job"], "host_agent": row["host_agent"],
               "session_id": row["session_id"] if row["session_kind"] == "cron" else None, "started_at": row["first_at"],
               "status": None, "duration_ms": None, "is_heartbeat": row["is_heartbeat"], "job_name": None}
        out.append(_run_dict(run, row, names, recorded=False))
    return out


def _covered_by_recorded(conn, sums: dict) -> bool:
    row = conn.execute(
        "SELECT 1 FROM cron_runs WHERE job_id = ? AND session_id IS NULL AND started_at <= ? LIMIT 1",
        (sums["cron_job"], sums["first_at"]),
    ).fetchone()
    if row is None:
        return False
    for run in conn.execute(
        "SELECT started_at, duration_ms FROM cron_runs WHERE job_id = ? AND session_id IS NULL AND started_at <= ?",
        (sums["cron_job"], sums["first_at"]),
    ):
        if run[0] and _iso_plus_ms(run[0], (run[1] or 0) + WINDOW_SLACK_MS) >= sums["first_at"]:
            return True
    return False


def _run_dict(run: dict, sums: dict | None, names: dict, recorded: bool) -> dict:
    job = names.get(run["job_id"], {})
    has_calls = bool(sums and sums.get("requests"))
    if has_calls:
        tokens = {k: int(sums[k]) for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")}
        source = "transcript"
    elif any(run.get(k) is not None for k in ("input_tokens", "output_tokens", "total_tokens")):
        tokens = {k: int(run.get(k) or 0) for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")}
        source = "run log"
    else:
        tokens = {k: 0 for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")}
        source = None
    total = sum(tokens.values())
    if source == "run log" and run.get("total_tokens"):
        total = max(total, int(run["total_tokens"]))
    cost = int(sums["cost_nanousd"]) if has_calls else None
    unpriced = int(sums["unpriced_requests"]) if has_calls else 0
    if has_calls and unpriced == sums["requests"]:
        cost = None  # every call unpriced: unknown, not free
    is_heartbeat = bool(run.get("is_heartbeat")) or job.get("kind") == "heartbeat"
    out = {
        "run_id": run["run_id"],
        "job_id": run["job_id"],
        "job_name": run.get("job_name") or job.get("name"),
        "host_agent": run.get("host_agent") or job.get("host_agent"),
        "session_id": run.get("session_id"),
        "started_at": run.get("started_at"),
        "status": run.get("status"),
        "duration_ms": run.get("duration_ms"),
        "requests": int(sums["requests"]) if has_calls else 0,
        **tokens,
        "total_tokens": total,
        "tokens_source": source,
        "cost_nanousd": cost,
        "cost_usd": usd(cost),
        "cost_known": cost is not None,
        "unpriced_requests": unpriced,
        "transcript_missing": bool(recorded and run.get("session_id") and not has_calls),
        "recorded": recorded,
        "is_heartbeat": is_heartbeat,
        "idle": bool(is_heartbeat and has_calls and sums.get("all_ack")),
        "rolling_avg_usd": None,
        "anomaly": False,
        "ratio": None,
    }
    out["line"] = text.run_line(out)
    return out


def _flag_anomalies(all_runs: list, factor: float = 2.0) -> None:
    """Set each run's rolling average, ratio and anomaly flag (runs oldest first)."""
    history: dict = {}
    for run in all_runs:
        past = history.setdefault(run["job_id"], [])
        if run["cost_nanousd"] is not None:
            recent = past[-CRON_RUNS_WINDOW:]
            if len(recent) >= ANOMALY_MIN_BASELINE:
                avg = sum(recent) / len(recent)
                run["rolling_avg_usd"] = avg / NANO
                if avg > 0:
                    run["ratio"] = round(run["cost_nanousd"] / avg, 2)
                    run["anomaly"] = is_anomaly(run["cost_nanousd"], avg, factor, min_cost=0)
            past.append(run["cost_nanousd"])
        run["line"] = text.run_line(run)


def summary(conn, since: str | None = None, until: str | None = None, spark: int = 20) -> list[dict]:
    """One row per cron job, costliest first."""
    all_runs = runs(conn, since=since, until=until)
    names = report.job_names(conn)
    jobs: dict = {}
    for run in all_runs:
        jobs.setdefault(run["job_id"], []).append(run)
    out = []
    for job_id, job_runs in jobs.items():
        info = names.get(job_id, {})
        known = [r["cost_nanousd"] for r in job_runs if r["cost_nanousd"] is not None]
        cost = sum(known)
        last = job_runs[-1]
        values = [r["cost_nanousd"] for r in job_runs[-spark:]]
        out.append({
            "job_id": job_id,
            "job_name": info.get("name") or next((r["job_name"] for r in job_runs if r["job_name"]), None),
            "host_agent": info.get("host_agent") or last["host_agent"],
            "kind": info.get("kind") or ("heartbeat" if last["is_heartbeat"] else None),
            "schedule": info.get("schedule"),
            "runs": len(job_runs),
            "ok": sum(1 for r in job_runs if r["status"] == "ok"),
            "errors": sum(1 for r in job_runs if r["status"] == "error"),
            "unknown_cost_runs": sum(1 for r in job_runs if r["cost_nanousd"] is None),
            "cost_nanousd": cost,
            "cost_usd": usd(cost),
            "total_tokens": sum(r["total_tokens"] for r in job_runs),
            "avg_cost_usd": usd(cost / len(known)) if known else None,
            "last_run_at": last["started_at"],
            "last_status": last["status"],
            "last_cost_usd": last["cost_usd"],
            "anomalies": sum(1 for r in job_runs if r["anomaly"]),
            "spark_values": [usd(v) for v in values],
            "sparkline": text.sparkline(values, zero=text.SPARK[0]),
        })
    out.sort(key=lambda j: (-j["cost_nanousd"], j["job_name"] or j["job_id"]))
    return out


def top_crons(conn, n: int = 5, since: str | None = None, until: str | None = None) -> list[dict]:
    """The `n` costliest cron jobs (summary rows)."""
    return summary(conn, since=since, until=until)[:n]


def history(conn, job: str, limit: int = 30) -> tuple[dict | None, list]:
    """(the job's summary row, its last `limit` runs newest first)."""
    job_id = report.find_job(conn, job) or job
    job_runs = runs(conn, job=job_id)
    rows = [j for j in summary(conn) if j["job_id"] == job_id]
    return (rows[0] if rows else None), list(reversed(job_runs))[:limit]


def anomalies(conn, since: str | None = None, until: str | None = None, factor: float = 2.0) -> list[dict]:
    """Runs that cost at least `factor` × their cron's rolling average, newest first."""
    all_runs = runs(conn)  # history before `since` still sets the average
    if factor != 2.0:
        _flag_anomalies(all_runs, factor)
    flagged = [r for r in all_runs if r["anomaly"] and (not since or (r["started_at"] or "") >= since)
               and (not until or (r["started_at"] or "") < until)]
    return list(reversed(flagged))


def heartbeat_idle(conn, since: str | None = None, until: str | None = None) -> dict:
    """What heartbeats cost, and the part spent on heartbeats that only acknowledged
    (HEARTBEAT_OK / NO_REPLY / heartbeat_respond without notify, no other tool)."""
    where, args = _where_time("timestamp", since, until)
    sql = f"""SELECT host_agent, coalesce(run_id, key) AS grp, {_SUMS} FROM requests
              WHERE agent = 'openclaw' AND is_heartbeat = 1 AND {where} GROUP BY host_agent, grp"""
    agents: dict = {}
    for row in conn.execute(sql, args):
        entry = agents.setdefault(row["host_agent"], {"host_agent": row["host_agent"], "heartbeats": 0, "idle": 0,
                                                     "idle_cost_nanousd": 0, "cost_nanousd": 0, "idle_tokens": 0})
        entry["heartbeats"] += 1
        entry["cost_nanousd"] += row["cost_nanousd"]
        if row["all_ack"]:
            entry["idle"] += 1
            entry["idle_cost_nanousd"] += row["cost_nanousd"]
            entry["idle_tokens"] += row["input_tokens"] + row["output_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"]
    total = {k: sum(a[k] for a in agents.values()) for k in ("heartbeats", "idle", "idle_cost_nanousd", "cost_nanousd", "idle_tokens")}
    return {
        **total,
        "idle_cost_usd": usd(total["idle_cost_nanousd"]),
        "cost_usd": usd(total["cost_nanousd"]),
        "idle_share": round(total["idle_cost_nanousd"] / total["cost_nanousd"], 4) if total["cost_nanousd"] else None,
        "by_agent": [{**a, "idle_cost_usd": usd(a["idle_cost_nanousd"]), "cost_usd": usd(a["cost_nanousd"])}
                     for a in sorted(agents.values(), key=lambda a: -a["cost_nanousd"])],
    }


def budget_status(conn, budgets: list, now=None, tz=None) -> list[dict]:
    """Each `cron:<job>` budget (job id or name) against its current period; `run` and
    `session` periods against the job's latest run."""
    now = now or datetime.now(timezone.utc)
    tz = tz or local_zone(None)
    chosen = [b for b in budgets if b["scope"].partition(":")[0] == "cron"]
    resolved, contexts = judged(conn, chosen, session_id=None)
    job_ids = [ctx.cron_job for ctx in contexts]
    names = report.job_names(conn) if chosen else {}
    out = []
    for budget, job_id, row in zip(chosen, job_ids, budget_rows(conn, resolved, now, tz, contexts=contexts)):
        out.append({
            "budget_id": budget.get("id"),
            "scope": budget["scope"],
            "job_id": job_id,
            "job_name": names.get(job_id, {}).get("name"),
            "period": budget["period"],
            "period_key": row["period_key"],
            "unit": row["unit"],
            "spent": row["spent"],
            "limit": row["limit"],
            "percent": row["percent"],
            "action": row["action"],
            "blocking": row["blocking"],
            "message": row["message"].replace(f"cron:{job_id}", budget["scope"]),
        })
    return out
