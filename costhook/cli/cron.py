"""`costhook cron [JOB]`: what each OpenClaw cron job costs, run by run."""

import json

import click

from costhook import timeframe
from costhook.cli.common import db_option, format_option, load_config, open_store, tz_option, zone
from costhook.views.cron import anomalies, budget_status, find_job, heartbeat_idle, history, render_history, render_summary, summary


@click.command(name="cron")
@click.argument("job", required=False)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First day (inclusive, local time).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day (inclusive, local time).")
@click.option("--limit", type=int, default=30, show_default=True, help="Runs shown for one cron.")
@tz_option
@format_option
@db_option
def cron(job, since, until, limit, tz_name, fmt, db_path):
    """OpenClaw cron jobs: cost per run and per cron, history, heartbeat idle cost, anomalies.

    Without JOB: every cron (costliest first) with a trend sparkline, heartbeat idle
    cost, anomalies and cron budgets. With JOB (id, id prefix or name): its runs,
    e.g. "Took 74 s · 12,400 tokens · $0.04".
    """
    cfg = load_config()
    tz = zone(tz_name or cfg.get("timezone"))
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
        if fmt == "json":
            click.echo(json.dumps({"job": info, "runs": job_runs}, indent=2, ensure_ascii=False))
        else:
            click.echo(render_history(info, job_runs, tz))
        return
    crons = summary(conn, since=win.start, until=win.end)
    idle = heartbeat_idle(conn, since=win.start, until=win.end)
    flagged = anomalies(conn, since=win.start, until=win.end)
    budget_rows = budget_status(conn, cfg.get("budgets") or [], tz=tz)
    if fmt == "json":
        click.echo(json.dumps({"crons": crons, "heartbeat": idle, "anomalies": flagged, "budgets": budget_rows},
                              indent=2, ensure_ascii=False))
    else:
        click.echo(render_summary(crons, idle, flagged, budget_rows, tz))
