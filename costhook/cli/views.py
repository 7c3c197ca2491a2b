"""The analytics views and the dashboard command: thin click commands around views/ and
dashboard/. Every view prints a table, or its data with `--format json`."""

import click

from costhook.cli.common import (
    cli_option,
    days_option,
    db_option,
    emit,
    open_store,
    period,
    period_option,
    price_table,
    session,
    session_option,
    setup,
    view_options,
)
from costhook.text import grid, money, no_spend, percent, term_text
from costhook.views import activity, report, rollup, spend
from costhook.views import anomalies as anomaly_views
from costhook.views import cache as cache_views


TEAM_OPTION = click.option("--team", is_flag=True, help="The whole team's spend, from the team server ([team] in the config).")


@click.command()
@TEAM_OPTION
@cli_option
@view_options
def summary(team, cli, fmt, tz_name, now_text, db_path):
    """Spend today, yesterday, this week and month, last month, all time; projection and burn rate."""
    cfg, tz, now = setup(tz_name, now_text)
    if team:
        from costhook.cli.team import team_store

        if cli:
            raise click.BadParameter("the team's spend is not kept per agent CLI; leave out --cli", param_hint="--cli")
        conn = team_store(cfg, ["global"])
    else:
        conn = open_store(db_path)
    data = spend.summary(conn, now, tz, cli)

    def render(d):
        p = d["periods"]
        rows = [["period", "cost", "calls", "unpriced"]]
        for name, label in (("today", "today"), ("yesterday", "yesterday"), ("week", "this week"),
                            ("month", "this month"), ("last_month", "last month")):
            rows.append([f"{label} ({p[name]['label'].split('(')[-1].rstrip(')')})", money(p[name]["cost_usd"]),
                         f"{p[name]['requests']:,}", p[name]["unpriced_requests"] or ""])
        rows.append(["all time", money(p["all"]["cost_usd"]), f"{p['all']['requests']:,}", p["all"]["unpriced_requests"] or ""])
        pr, burn = d["projection"], d["burn_rate"]["today_usd_per_hour"]
        tail = [f"\nProjection: {pr['message']} ({money(pr['daily_average_usd'])}/day over the last 7 days, "
                f"{pr['days_left']:.1f} days left).",
                f"Burn rate today: {money(burn)}/hour." if burn is not None else "Burn rate today: –"]
        only = f"{d['cli']} only\n" if d.get("cli") else ""  # whose spend, when not everyone's
        return only + grid(rows, {1, 2, 3}) + "\n".join(tail)

    emit(fmt, data, render)


@click.command()
@click.option("--by", type=click.Choice(list(spend.TOP_BY)), default="session", show_default=True,
              help="What to rank.")
@period_option("week")
@click.option("--limit", default=5, show_default=True, type=click.IntRange(1, 1000), help="Rows shown.")
@TEAM_OPTION
@cli_option
@view_options
def top(by, period_name, limit, team, cli, fmt, tz_name, now_text, db_path):
    """Leaderboards: the most expensive sessions, projects, models, tools, agent CLIs… with their share."""
    cfg, tz, now = setup(tz_name, now_text)
    chosen = period(period_name, now, tz).only(cli)
    if team:
        from costhook.cli.team import team_store

        if by not in ("project", "model", "agent", "skill", "cron") or cli:
            raise click.BadParameter(f"{by}{' with --cli' if cli else ''} is not a team leaderboard; use project, model, "
                                     "agent, skill or cron (or `report --team --by tool|user|machine`)", param_hint="--by")
        conn = team_store(cfg, ["global", by], *chosen.buckets())
    else:
        conn = open_store(db_path)
    data = spend.top(conn, by, chosen, limit)

    def render(d):
        if not d["rows"]:
            return no_spend(d["period"]["label"], d["period"].get("cli"))
        clis = by == "session" and len({r.get("cli") for r in d["rows"]}) > 1  # a column only when it tells sessions apart
        head = [by, "cost", "share", "calls"] + (["project", "started"] if by == "session" else []) + (["cli"] if clis else [])
        rows = [head]
        for r in d["rows"]:
            extra = [rollup.project_name(r.get("project")), (r.get("started_at") or "")[:16].replace("T", " ")] if by == "session" else []
            extra += [r.get("cli") or ""] if clis else []
            rows.append([r.get("name") or r["key"], money(r["cost_usd"]), percent(r["share"]), f"{r['requests']:,}", *extra])
        o = d["others"]
        blank = [""] * (len(head) - 4)
        if o["count"]:
            rows.append([f"({o['count']} other{'s' if o['count'] > 1 else ''})", money(o["cost_usd"]), percent(o["share"]), ""] + blank)
        rows.append(["TOTAL", money(d["total"]["cost_usd"]), "100%", f"{d['total']['requests']:,}"] + blank)
        only = f", {d['period']['cli']} only" if d["period"].get("cli") else ""
        title = {"cli": "agent CLIs", "agent": "sub-agent types"}.get(by) or plural(by)
        return f"Top {title}, {d['period']['label']}{only}\n" + grid(rows, {1, 2, 3})

    emit(fmt, data, render)


@click.command()
@click.argument("session_id", required=False)
@period_option("week", help="Without SESSION_ID: the period's most expensive session with sub-agents.")
@cli_option
@view_options
def tree(session_id, period_name, cli, fmt, tz_name, now_text, db_path):
    """A session's cost tree: main thread, sub-agents, child sessions, with shares."""
    cfg, tz, now = setup(tz_name, now_text)
    conn = open_store(db_path)
    if session_id is None:
        found = activity.sessions_with_subagents(conn, period(period_name, now, tz).only(cli), candidates=50)
        if not found:
            raise click.ClickException("no session with sub-agents in that period; give a SESSION_ID")
        session_id = found[0]
    session_id = session(conn, session_id, "SESSION_ID")
    data = activity.tree(conn, session_id)
    if not data["requests"]:
        raise click.ClickException(f"no calls recorded for session {term_text(session_id)}")
    short = report.short_sessions(conn, _tree_sessions(data))
    emit(fmt, data, lambda d: render_tree(d, short))


@click.command()
@session_option
@period_option()
@cli_option
@view_options
def tools(session_id, period_name, cli, fmt, tz_name, now_text, db_path):
    """Cost by tool: the share of spend that went to calls requesting each tool."""
    cfg, tz, now = setup(tz_name, now_text)
    conn = open_store(db_path)
    data = activity.by_tool(conn, period(period_name, now, tz).only(cli), session_id=session(conn, session_id))

    def render(d):
        if not d["rows"]:
            return nothing_spent(d)
        rows = [["tool", "cost", "share", "calls"]]
        rows += [[r["tool"], money(r["cost_usd"]), percent(r["share"]), f"{r['requests']:,}"] for r in d["rows"]]
        text = grid(rows, {1, 2, 3})
        if d["mcp_servers"]:
            text += "\n\nMCP servers: " + ", ".join(f"{term_text(s['server'])} {money(s['cost_usd'])} ({percent(s['share'])})" for s in d["mcp_servers"])
        return text + "\n\n" + d["rule"]

    emit(fmt, data, render)


@click.command()
@session_option
@period_option()
@cli_option
@view_options
def cache(session_id, period_name, cli, fmt, tz_name, now_text, db_path):
    """Cache efficiency: hit ratio, dollars saved by cache reads, cache writes never read."""
    cfg, tz, now = setup(tz_name, now_text)
    conn = open_store(db_path)
    data = cache_views.cache_efficiency(conn, period(period_name, now, tz).only(cli), now, price_table(cfg), session_id=session(conn, session_id))
    emit(fmt, data, render_cache)


@click.command()
@days_option
@cli_option
@view_options
def anomalies(days, cli, fmt, tz_name, now_text, db_path):
    """Days, sessions and cron runs costing at least 2x the average of their kind just before them."""
    cfg, tz, now = setup(tz_name, now_text)
    data = anomaly_views.anomalies(open_store(db_path), now, tz, days, cli)

    def render(d):
        if not d["anomalies"]:
            return f"No anomalies in the last {d['days']} days.\n\n{d['rule']}"
        rows = [["kind", "what", "when", "cost", "7-day avg", "ratio"]]
        for x in d["anomalies"]:
            what = x.get("job", "") + (" " if x.get("job") else "") + (x["key"] if x["kind"] != "day" else "")
            rows.append([x["kind"], what.strip() or "-", x["at"] + (" (so far)" if x.get("partial") else ""),
                         money(x["cost_usd"]), money(x["baseline_usd"]), f"{x['ratio']:.1f}x"])
        return grid(rows, {3, 4, 5}) + "\n\n" + d["rule"]

    emit(fmt, data, render)


@click.command()
@click.option("--to", "to_model", help="The model to price the calls at (default: one family down, e.g. opus → sonnet).")
@click.option("--from", "from_model", help="Only calls made with this model.")
@click.option("--by", type=click.Choice(list(cache_views.WHATIF_BY)), default="project", show_default=True,
              help="What each row is.")
@click.option("--only", help="Only this project / skill / sub-agent type / model / agent CLI (as shown in the table).")
@days_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000), help="Rows shown.")
@cli_option
@view_options
def whatif(to_model, from_model, by, only, days, limit, cli, fmt, tz_name, now_text, db_path):
    """What another model would have cost for the same calls (real token counts)."""
    cfg, tz, now = setup(tz_name, now_text)
    conn, window = open_store(db_path), period(f"{days}d", now, tz).only(cli)
    try:
        data = cache_views.whatif(conn, window, now, by=(by,), to_model=to_model,
                                  from_model=from_model, only=only, table=price_table(cfg))
    except ValueError as exc:
        raise click.UsageError(str(exc))
    data["omitted"] = max(0, len(data["rows"]) - limit)
    data["totals"] = {name: round(sum(r[name] or 0 for r in data["rows"]), 9)
                      for name in ("requests", "actual_usd", "whatif_usd", "savings_usd")}
    data["rows"] = data["rows"][:limit]
    if not data["rows"] and fmt == "table" and not spend.top(conn, "model", window, 1)["rows"]:
        emit(fmt, data, lambda d: no_spend(d["period"]["label"], d["period"].get("cli")))  # nothing spent at all, not just nothing to compare
        return
    emit(fmt, data, render_whatif)


@click.command()
@period_option()
@cli_option
@view_options
def idle(period_name, cli, fmt, tz_name, now_text, db_path):
    """Idle cost: turns and sessions that spent tokens but changed nothing."""
    cfg, tz, now = setup(tz_name, now_text)
    conn = open_store(db_path)
    data = activity.idle(conn, period(period_name, now, tz).only(cli))
    short = report.short_sessions(conn, [s["session_id"] for s in data["top_idle_sessions"]])
    emit(fmt, data, lambda d: render_idle(d, short))


@click.command()
@period_option()
@click.option("--limit", default=10, show_default=True, type=click.IntRange(0, 100000), help="Sessions listed (0 = all).")
@cli_option
@view_options
def efficiency(period_name, limit, cli, fmt, tz_name, now_text, db_path):
    """Efficiency score: useful actions per dollar per session, graded A/B/C."""
    cfg, tz, now = setup(tz_name, now_text)
    conn = open_store(db_path)
    data = activity.efficiency(conn, period(period_name, now, tz).only(cli), limit=limit)
    short = report.short_sessions(conn, [r["session_id"] for r in data["sessions"]])

    def render(d):
        if not d["sessions"] and not d["cost_usd"]:
            return no_spend(d["period"]["label"], d["period"].get("cli"))
        head = (f"{d['actions']:,} useful actions for {money(d['cost_usd'])}: "
                f"{d['actions_per_usd'] if d['actions_per_usd'] is not None else '–'} per dollar; grades "
                + ", ".join(f"{g} {n}" for g, n in d["grades"].items()))
        rows = [["session", "project", "cost", "actions", "per $", "grade"]]
        rows += [[shown_session(short, r["session_id"]), rollup.project_name(r["project"]), money(r["cost_usd"]), r["actions"],
                  f"{r['actions_per_usd']:.1f}", r["grade"] or "–"] for r in d["sessions"]]
        return head + "\n\n" + (grid(rows, {2, 3, 4}) if d["sessions"] else "No sessions.") + "\n\n" + d["rule"]

    emit(fmt, data, render)


@click.command()
@period_option()
@click.option("--active", is_flag=True, help="Only the current window.")
@cli_option
@view_options
def blocks(period_name, active, cli, fmt, tz_name, now_text, db_path):
    """Claude's 5-hour usage windows: cost per window, burn rate and projection (estimates)."""
    cfg, tz, now = setup(tz_name, now_text)
    data = activity.blocks(open_store(db_path), now, period(period_name, now, tz).only(cli))
    if active:
        data["blocks"] = [b for b in data["blocks"] if b["active"]]

    def render(d):
        if not d["blocks"]:
            return no_spend(d["period"]["label"], d["period"].get("cli"))
        rows = [["window start", "last call", "cost", "tokens", "calls", "status"]]
        for b in d["blocks"]:
            start = _local(b["start"], tz)
            status = (f"ACTIVE {b['minutes_left']} min left, {money(b['burn_rate_usd_per_hour'])}/h → "
                      f"~{money(b['projected_cost_usd'])}" if b["active"] else "")
            rows.append([start, _local(b["last_call"], tz)[11:], money(b["cost_usd"]), f"{b['tokens']:,}", f"{b['requests']:,}", status])
        return grid(rows, {2, 3, 4}) + "\n\n" + d["rule"]

    emit(fmt, data, render)


@click.command()
@days_option
@cli_option
@view_options
def trends(days, cli, fmt, tz_name, now_text, db_path):
    """Spend per day with a sparkline, and the week-over-week change."""
    cfg, tz, now = setup(tz_name, now_text)
    data = spend.trends(open_store(db_path), now, tz, days, cli)

    def render(d):
        if not any(r["requests"] for r in d["rows"]):
            return no_spend(f"last {d['days']} days", d.get("cli"))
        change = d["change_7_days"]
        lines = [f"{d['rows'][0]['day']} {d['sparkline']} {d['rows'][-1]['day']}",
                 f"total {money(d['total_usd'])}, {money(d['daily_average_usd'])}/day on average"
                 + (f", peak {money(d['peak']['cost_usd'])} on {d['peak']['day']}" if d["peak"] else ""),
                 f"last 7 days {money(d['last_7_days_usd'])} vs {money(d['previous_7_days_usd'])} the 7 before"
                 + (f" ({change * 100:+.0f}%)" if change is not None else "")]
        top_cost = max((r["cost_usd"] for r in d["rows"]), default=0) or 1
        rows = [["day", "cost", "calls", ""]]
        rows += [[r["day"], money(r["cost_usd"]), f"{r['requests']:,}", "█" * round(r["cost_usd"] / top_cost * 30)] for r in d["rows"]]
        only = [f"{d['cli']} only"] if d.get("cli") else []
        return "\n".join(only + lines) + "\n\n" + grid(rows, {1, 2})

    emit(fmt, data, render)


@click.command()
@click.option("--vault", type=click.Path(file_okay=False), help="Obsidian vault (default: config dashboard.vault).")
@click.option("--note", help="Note path inside the vault (default: config dashboard.note, 'costhook/Cost dashboard.md').")
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the note instead of writing it.")
@click.option("--tz", "tz_name", help="IANA time zone (default: config `timezone`, else local).")
@click.option("--now", "now_text", metavar="ISO8601", help="Pretend it is this moment (reproducible output).")
@cli_option
@db_option
def dashboard(vault, note, to_stdout, tz_name, now_text, cli, db_path):
    """Write the cost dashboard note into your Obsidian vault (atomically)."""
    from costhook.dashboard import note as dash

    cfg, tz, now = setup(tz_name, now_text)
    settings = cfg.get("dashboard") or {}
    if cli:  # the note of one agent CLI (config: [dashboard] cli)
        settings = {**settings, "cli": cli}
        cfg = {**cfg, "dashboard": settings}
    vault = vault or settings.get("vault")
    note = note or settings.get("note") or dash.DEFAULT_NOTE
    conn = open_store(db_path)
    table = price_table(cfg)
    if to_stdout:
        click.echo(dash.render(conn, cfg, now=now, tz=tz, table=table, db_path=db_path), nl=False)
        return
    if not vault:
        raise click.UsageError("no vault: pass --vault DIR or set [dashboard] vault in the config")
    try:
        path = dash.write(conn, cfg, vault, note, now=now, tz=tz, table=table, db_path=db_path)
    except dash.DashboardError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"wrote {path}")


def _local(stamp: str, tz) -> str:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _tree_sessions(node: dict) -> list:
    ids = [node["id"]] if node["kind"] == "session" else []
    return ids + [sid for child in node["children"] for sid in _tree_sessions(child)]


def shown_session(short: dict | None, session_id: str | None) -> str:
    """What a table shows of a session id: its shortest unique prefix (8 characters at least)."""
    session_id = session_id or "?"
    return term_text((short or {}).get(session_id) or session_id[:report.SESSION_PREFIX])


def render_tree(d: dict, short: dict | None = None) -> str:
    lines = []

    def walk(node, prefix, last, root=False):
        label = term_text(node["label"])
        name = label if node["kind"] != "session" or root else f"session {shown_session(short, node['id'])} ({label})"
        if node["kind"] == "subagent" and node.get("id"):
            name += f" [{term_text(node['id'][:8])}]"
        text = f"{name}  {money(node['cost_usd'])}  {percent(node['share'])}  {node['requests']:,} calls"
        lines.append(text if root else f"{prefix}{'└─ ' if last else '├─ '}{text}")
        kids = node["children"]
        for i, child in enumerate(kids):
            walk(child, prefix if root else prefix + ("   " if last else "│  "), i == len(kids) - 1)

    walk(d, "", True, root=True)
    lines[0] = f"session {term_text(d['id'])}  " + lines[0].split("  ", 1)[1]
    return "\n".join(lines)


def render_cache(d: dict) -> str:
    if not d["by_model"]:
        return nothing_spent(d)
    rows = [["model", "hit ratio", "saved", "writes", "never read", "wasted"]]
    for r in [*d["by_model"], {"model": "TOTAL", **d["totals"]}]:
        rows.append([r["model"], percent(r["hit_ratio"]), money(r["saved_usd"]), money(r["cache_write_cost_usd"]),
                     percent(r["never_read_write_share"]), money(r["never_read_write_cost_usd"])])
    return grid(rows, {1, 2, 3, 4, 5}) + "\n\n" + d["rule"]


def nothing_spent(d: dict) -> str:
    """The no-spend line of a view that takes a period or `--session` (then `period` is None)."""
    if d["period"] is None:
        return no_spend(f"for session {term_text(d['session_id'])}")
    return no_spend(d["period"]["label"], d["period"].get("cli"))


def plural(word: str) -> str:
    return word + ("es" if word.endswith(("ch", "sh", "s", "x")) else "s")


def render_whatif(d: dict) -> str:
    if not d["rows"]:
        return "Nothing to compare in that period (no calls on a model with a cheaper default, or pass --to MODEL)."
    rows = [[d["by"][0], "from", "to", "calls", "actual", "would cost", "savings"]]
    for r in d["rows"]:
        rows.append([r["name"], r["from_model"], r["to_model"], f"{r['requests']:,}", money(r["actual_usd"]),
                     money(r["whatif_usd"]), f"{money(r['savings_usd'])} ({percent(r['savings_share'])})"])
    if "totals" in d:
        t = d["totals"]
        rows.append([f"TOTAL ({d['omitted']:,} more {'row' if d['omitted'] == 1 else 'rows'} not shown)" if d["omitted"] else "TOTAL", "", "",
                     f"{t['requests']:,}", money(t["actual_usd"]), money(t["whatif_usd"]), money(t["savings_usd"])])
    return f"What-if, {d['period']['label']}\n" + grid(rows, {3, 4, 5, 6}) + "\n\n" + d["rule"]


def render_idle(d: dict, short: dict | None = None) -> str:
    if not d["turns"] and not d["total_cost_usd"] and not d["heartbeats"]["turns"]:
        return no_spend(d["period"]["label"], d["period"].get("cli"))
    lines = [f"Idle cost {d['period']['label']}: {money(d['idle_cost_usd'])} ({percent(d['idle_share'])} of {money(d['total_cost_usd'])}); "
             f"{d['idle_turns']:,} of {d['turns']:,} turns, {d['idle_sessions']:,} of {d['sessions']:,} sessions idle."]
    hb = d["heartbeats"]
    if hb["turns"]:
        lines.append(f"Heartbeats: {hb['idle_turns']} of {hb['turns']} idle, {money(hb['idle_cost_usd'])} of {money(hb['cost_usd'])}.")
    if d["top_idle_sessions"]:
        rows = [["idle session", "project", "started", "cost", "turns"]]
        rows += [[shown_session(short, s["session_id"]), s["project"] or "", (s["started_at"] or "")[:16].replace("T", " "), money(s["cost_usd"]), s["turns"]]
                 for s in d["top_idle_sessions"]]
        lines += ["", grid(rows, {3, 4})]
    return "\n".join(lines + ["", d["rule"]])
