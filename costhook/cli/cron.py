"""`costhook cron [JOB]`: what each OpenClaw cron job costs, run by run."""

from datetime import datetime, timezone

import click

from costhook import timeframe
from costhook.cli.common import db_option, emit, format_option, now_option, open_store, setup, tz_option
from costhook.text import grid, money_nano, term_text
from costhook.usage import NANO
from costhook.views.cron import anomalies, budget_status, heartbeat_idle, history, summary
from costhook.views.report import find_job


@click.command(name="cron")
@click.argument("job", required=False)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First day (inclusive, local time).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day (inclusive, local time).")
@click.option("--limit", type=int, default=30, show_default=True, help="Runs shown for one cron.")
@tz_option
@now_option
@format_option
@db_option
def cron(job, since, until, limit, tz_name, now_text, fmt, db_path):
    """OpenClaw cron jobs: cost per run and per cron, history, heartbeat idle cost, anomalies.

    Without JOB: every cron (costliest first) with a trend sparkline, heartbeat idle
    cost, anomalies and cron budgets. With JOB (id, id prefix or name): its runs,
    e.g. "Took 74 s · 12,400 tokens · $0.04".
    """
    cfg, tz, now = setup(tz_name, now_text)
    win = timeframe.dates_window(since.date() if since else None, until.date() if until else None, tz)
    conn = open_store(db_path)
    if job:
        job_id = find_job(conn, job)
        if job_id is None:
            raise click.ClickException(f"no cron job matches {job!r} (see `costhook cron`)")
        info, job_runs = history(conn, job_id, limit=limit)
        if win.start or win.end:
            job_runs = [r for r in job_runs if (not win.start or (r["started_at"] or "") >= win.start)
                        and (not win.end or (r["started_at"] or "") < win.end)]
        emit(fmt, {"job": info, "runs": job_runs}, lambda d: render_history(info, job_runs, tz))
        return
    crons = summary(conn, since=win.start, until=win.end)
    idle = heartbeat_idle(conn, since=win.start, until=win.end)
    flagged = anomalies(conn, since=win.start, until=win.end)
    budget_rows = budget_status(conn, cfg.get("budgets") or [], now=now, tz=tz)
    emit(fmt, {"crons": crons, "heartbeat": idle, "anomalies": flagged, "budgets": budget_rows},
         lambda d: render_summary(crons, idle, flagged, budget_rows, tz))


def _local(stamp: str | None, tz) -> str:
    """A UTC call time as local `YYYY-MM-DD HH:MM` (`-` for none)."""
    if not stamp:
        return "-"
    moment = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def render_summary(crons: list, idle: dict, flagged: list, budget_rows: list, tz) -> str:
    """`costhook cron`: every cron, heartbeat idle cost, anomalies, cron budgets."""
    if not crons and not idle["heartbeats"]:
        return "No OpenClaw cron runs or heartbeats recorded yet (run `costhook import --openclaw-dir DIR` or install the plugin)."
    out = []
    if crons:
        rows = [["cron", "runs", "ok/err", "cost", "avg/run", "last run", "last", "trend", "anomalies"]]
        for j in crons:
            cost = money_nano(j["cost_nanousd"]) + (f" +{j['unknown_cost_runs']}?" if j["unknown_cost_runs"] else "")
            rows.append([
                (j["job_name"] or j["job_id"])[:40], j["runs"], f"{j['ok']}/{j['errors']}", cost,
                money_nano(round(j["avg_cost_usd"] * NANO)) if j["avg_cost_usd"] is not None else "-",
                _local(j["last_run_at"], tz), j["last_status"] or "-", j["sparkline"], j["anomalies"] or "",
            ])
        out.append(grid(rows))
        if any(j["unknown_cost_runs"] for j in crons):
            out.append("+N? = runs whose cost is unknown (transcript pruned, or no model call).")
    if idle["heartbeats"]:
        share = f" ({idle['idle_share'] * 100:.0f}% of heartbeat spend)" if idle["idle_share"] is not None else ""
        out.append(f"\nHeartbeats: {idle['heartbeats']} costing {money_nano(idle['cost_nanousd'])}; "
                   f"{idle['idle']} only acknowledged, idle cost {money_nano(idle['idle_cost_nanousd'])}{share}.")
    if flagged:
        out.append("\nAnomalies (≥ 2× the cron's rolling average):")
        for run in flagged[:10]:
            out.append(f"  {_local(run['started_at'], tz)}  {term_text((run['job_name'] or run['job_id'])[:40])}  {run['line']}")
    if budget_rows:
        out.append("\nCron budgets:")
        for b in budget_rows:
            out.append(f"  {term_text(b['budget_id'])}: {term_text(b['message'])}" + ("  BLOCKING" if b["blocking"] else ""))
    return "\n".join(out)


def render_history(job: dict | None, job_runs: list, tz) -> str:
    """`costhook cron JOB`: the job's totals and its runs, newest first."""
    if job is None and not job_runs:
        return "No runs recorded for this cron."
    head = []
    if job:
        head.append(term_text(f"{job['job_name'] or job['job_id']} ({job['job_id']})"
                              + (f" · {job['schedule']}" if job.get("schedule") else "")))
        head.append(f"{job['runs']} runs · {money_nano(job['cost_nanousd'])} total"
                    + (f" · {money_nano(round(job['avg_cost_usd'] * NANO))} per run" if job["avg_cost_usd"] is not None else "")
                    + f" · {job['sparkline']}")
    rows = [["started", "status", "run"]]
    for run in job_runs:
        rows.append([_local(run["started_at"], tz), (run["status"] or "?") + (" ⚠" if run["anomaly"] else ""), run["line"]])
    return "\n".join(head + ["", grid(rows)])
