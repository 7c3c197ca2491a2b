"""The cost dashboard: one markdown note in the user's Obsidian vault.

Every number comes from analytics.py (the same functions as the CLI views). The note has
YAML frontmatter that Obsidian properties and Dataview read, and one marked block per
section (`<!-- costhook:begin NAME -->` … `<!-- costhook:end NAME -->`): on regeneration
only those blocks and costhook's own properties are replaced, so text the user writes
outside the blocks (and properties of their own) survive. The note is written to a
temporary file next to it and renamed over it, under a lock, so a syncing vault never
sees half a note; nothing else in the vault is touched.
"""

import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from costhook import timeframe
from costhook.views import activity, anomalies, cache, calls, report, rollup, spend, budgets as views_budgets
from costhook import paths
from costhook.pricing import prices
from costhook.store import db
from costhook.errors import DashboardError
from costhook.agents.runtime import dashboard_due
from costhook.text import money, percent

DEFAULT_NOTE = "costhook/Cost dashboard.md"
SECTIONS = ("summary", "budgets", "daily", "leaderboards", "subagents", "tools", "cache", "anomalies", "idle",
            "efficiency", "whatif", "cron", "unpriced")
OWNED_PROPERTIES = (
    "costhook_updated", "timezone", "cost_today_usd", "cost_yesterday_usd", "cost_week_usd", "cost_month_usd",
    "cost_last_month_usd", "projected_month_usd", "burn_rate_usd_per_hour", "budget_status", "budgets_over",
    "budgets_warning", "anomalies_30d", "cache_hit_ratio_7d", "idle_share_7d", "unpriced_requests_month",
)
BEGIN = "<!-- costhook:begin {} -->"
END = "<!-- costhook:end {} -->"
BAR_WIDTH = 20



# ----------------------------------------------------------------------- data --------


def collect(conn, cfg: dict, now: datetime, tz, table=None, db_path=None) -> dict:
    """Every section's data. The heavier window scans run on a second connection in
    parallel (SQLite releases the GIL), so the note stays well under a second."""
    table = table or prices.load_table(cfg.get("prices"))
    week = timeframe.period("7d", now, tz)
    data = {"now": now, "tz": tz, "week": week}

    def week_pass(c):  # one pass over the week's calls feeds four sections
        seq = calls.sequence(c, week, now, table, scopes=True)
        return {
            "cache": cache.cache_efficiency(c, week, now, table, seq=seq),
            "idle": activity.idle(c, week, seq["turns"], limit=5),
            "efficiency": activity.efficiency(c, week, seq["turns"], limit=0, projects=False),
            "whatif": cache.whatif_from_sequence(seq, week, now, table=table),
        }

    path = paths.db_path(db_path)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_on_own_connection, path, week_pass)
        data["tools"] = activity.by_tool(conn, week)
        data["summary"] = spend.summary(conn, now, tz)
        data["budgets"] = views_budgets.budget_status(conn, cfg, now, tz)
        data["trends"] = spend.trends(conn, now, tz, 30)
        data["anomalies"] = anomalies.anomalies(conn, now, tz, 30)
        data["top"] = {by: spend.top(conn, by, week, 5) for by in ("session", "project", "model", "agent", "skill")}
        data["trees"] = [activity.tree(conn, s) for s in activity.sessions_with_subagents(conn, week)[:2]]
        data["unpriced"] = rollup.unpriced_models(conn, timeframe.period("month", now, tz))
        data["cron"] = _cron_section(conn, now, tz)
        data.update(future.result())
    # Projects only for the sessions the note names.
    worst = [r for r in data["efficiency"]["sessions"] if r["grade"] == "C"]
    worst = sorted(worst, key=lambda r: -r["cost_usd"])[:5]
    rollup.fill_projects(conn, worst, [r["session_id"] for r in worst])
    return data


def _on_own_connection(path, fn):
    conn = db.connect(path)
    try:
        return fn(conn)
    finally:
        conn.close()


def _cron_section(conn, now, tz):
    """OpenClaw cron jobs, from costhook.cron_views (its per-job costs and heartbeat idle
    cost). None — an empty block — when that module is missing or there are no cron rows."""
    has_rows = conn.execute("SELECT 1 FROM requests WHERE cron_job IS NOT NULL LIMIT 1").fetchone() or \
        conn.execute("SELECT 1 FROM cron_runs LIMIT 1").fetchone()
    if not has_rows:
        return None
    try:
        from costhook.views import cron
    except ImportError:
        return None
    since = timeframe.utc_iso(timeframe.period("30d", now, tz).start)
    try:
        jobs = cron.summary(conn, since=since)[:8]
        beats = cron.heartbeat_idle(conn, since=since)
    except Exception as exc:  # the rest of the dashboard must not depend on it
        return f"_Cron section unavailable ({type(exc).__name__}); see `costhook cron`._"
    lines = []
    if jobs:
        lines.append(_table(["Cron job", "Runs", "Spend", "Avg / run", "Last run", "Trend"], [
            [j.get("job_name") or j["job_id"], j["runs"], money(j["cost_usd"]), money(j.get("avg_cost_usd")),
             _when(j.get("last_run_at"), tz), f"`{j.get('sparkline', '')}`"] for j in jobs], "lrrrll"))
    if beats.get("heartbeats"):
        lines += ["", f"Heartbeats: {beats['idle']:,} of {beats['heartbeats']:,} only acknowledged, "
                      f"{money(beats['idle_cost_usd'])} of {money(beats['cost_usd'])}."]
    return "\n".join(lines).strip() or None


# ----------------------------------------------------------------------- markdown ----


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    """A Unicode progress bar that renders in any font: █ filled, ░ empty (capped at full)."""
    if fraction is None:
        return ""
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def _table(header: list, rows: list, align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[c] for c in align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _short(session_id: str | None) -> str:
    return (session_id or "?")[:8]


def _when(stamp: str | None, tz) -> str:
    if not stamp:
        return ""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00").replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(tz).strftime("%a %d %b %H:%M")


def sections(data: dict) -> dict:
    """Section name -> markdown (without the markers)."""
    tz, week = data["tz"], data["week"]
    s = data["summary"]
    out = {}
    p = s["periods"]
    proj = s["projection"]
    burn = s["burn_rate"]["today_usd_per_hour"]
    out["summary"] = "\n".join([
        "## Summary",
        "",
        _table(["Period", "Spend", "Calls"], [
            [f"Today ({_day(p['today'], tz)})", f"**{money(p['today']['cost_usd'])}**", f"{p['today']['requests']:,}"],
            ["Yesterday", money(p["yesterday"]["cost_usd"]), f"{p['yesterday']['requests']:,}"],
            ["This week", money(p["week"]["cost_usd"]), f"{p['week']['requests']:,}"],
            ["This month", money(p["month"]["cost_usd"]), f"{p['month']['requests']:,}"],
            ["Last month", money(p["last_month"]["cost_usd"]), f"{p['last_month']['requests']:,}"],
        ]),
        "",
        f"> [!info] On track for **{money(proj['projected_month_usd'])}** this month",
        f"> {money(proj['month_to_date_usd'])} so far + {money(proj['daily_average_usd'])}/day (the last 7 days' average) "
        f"× {proj['days_left']:.1f} days left. Burn rate today: **{money(burn)}/hour**." if burn is not None else
        f"> {money(proj['month_to_date_usd'])} so far + {money(proj['daily_average_usd'])}/day × {proj['days_left']:.1f} days left.",
    ])

    lines = ["## Budgets", ""]
    if not data["budgets"]:
        lines.append("No budgets configured. Add one: `costhook budget set --scope global --period daily --limit 10`.")
    else:
        rows = []
        for b in data["budgets"]:
            amount = money if b["unit"] == "usd" else (lambda v: f"{v:,} tok")
            state = {"ok": "ok", "warning": "⚠ warning", "over": "over", "blocking": "⛔ blocking"}[b["state"]]
            rows.append([f"`{b['id']}`", b["period_key"], f"`{bar(b['fraction'])}` {percent(b['fraction'])}",
                         f"{amount(b['spent'])} / {amount(b['limit'])}",
                         amount(b["projected"]) if b["projected"] is not None else "–", state])
        lines.append(_table(["Budget", "Period", "Used", "Spent / limit", "Projected", "State"], rows, "llllrl"))
        fired = [(b, al) for b in data["budgets"] for al in b["alerts"]]
        if fired:
            lines += ["", "Alerts this period:"]
            lines += [f"- {_when(al['created_at'], tz)} — {al['message']}" for _, al in fired]
    out["budgets"] = "\n".join(lines)

    t = data["trends"]
    rows = t["rows"]
    labels = ", ".join(f'"{r["day"][8:].lstrip("0")}"' for r in rows)  # day of month: 30 labels must fit
    values = ", ".join(f"{r['cost_usd']:.2f}" for r in rows)
    top_value = max((r["cost_usd"] for r in rows), default=0)
    change = t["change_7_days"]
    lines = [
        "## Daily spend, last 30 days",
        "",
        f"Total **{money(t['total_usd'])}**, {money(t['daily_average_usd'])}/day on average"
        + (f", peak {money(t['peak']['cost_usd'])} on {t['peak']['day']}" if t["peak"] else "")
        + (f"; last 7 days {change * 100:+.0f}% vs the 7 before" if change is not None else "") + ".",
        "",
        "```mermaid",
        "xychart-beta",
        f'    title "Spend per day (USD), {rows[0]["day"]} to {rows[-1]["day"]}"',
        f"    x-axis [{labels}]",
        f'    y-axis "USD" 0 --> {_nice_ceiling(top_value):g}',
        f"    bar [{values}]",
        "```",
        "",
        _calendar(rows),
    ]
    out["daily"] = "\n".join(lines)

    lines = [f"## Leaderboards, {week.label}", ""]
    sessions_top = data["top"]["session"]
    if not sessions_top["rows"]:
        lines.append("No usage in the last 7 days.")
    else:
        lines += [f"**Most expensive sessions** (of {money(sessions_top['total']['cost_usd'])})", "",
                  _table(["Session", "Project", "Started", "Spend", "Share"], [
                      [f"`{_short(r['key'])}`", rollup.project_name(r.get("project")), _when(r.get("started_at"), tz),
                       money(r["cost_usd"]), percent(r["share"])] for r in sessions_top["rows"]], "lllrr")]
        for by, title in (("project", "Projects"), ("model", "Models"), ("agent", "Sub-agent types"), ("skill", "Skills")):
            board = data["top"][by]
            if not board["rows"] or (by in ("agent", "skill") and len(board["rows"]) == 1):
                continue
            lines += ["", f"**{title}**", "", _table([title[:-1], "Spend", "Share", "Calls", ""], [
                [r.get("name") or r["key"], money(r["cost_usd"]), percent(r["share"]), f"{r['requests']:,}",
                 f"`{bar(r['share'], 12)}`"] for r in board["rows"]], "lrrrl")]
    out["leaderboards"] = "\n".join(lines)

    lines = ["## Sub-agent cost tree", ""]
    if not data["trees"]:
        lines.append("No session with sub-agents in the last 7 days.")
    for tree in data["trees"]:
        lines += [f"**Session `{_short(tree['id'])}`** ({tree['label']}) — {money(tree['cost_usd'])}, {tree['requests']:,} calls", ""]
        lines += _tree_lines(tree, 0)
        lines.append("")
    out["subagents"] = "\n".join(lines).rstrip()

    tools = data["tools"]
    lines = [f"## Cost by tool, {week.label}", ""]
    if not tools["rows"]:
        lines.append("No usage in the last 7 days.")
    else:
        lines.append(_table(["Tool", "Spend", "Share", "Calls", ""], [
            [f"`{r['tool']}`" if r["tool"] != report.NO_TOOL else r["tool"], money(r["cost_usd"]), percent(r["share"]),
             f"{r['requests']:,}", f"`{bar(r['share'], 12)}`"] for r in tools["rows"][:12]], "lrrrl"))
        if tools["mcp_servers"]:
            lines += ["", "MCP servers: " + ", ".join(f"**{m['server']}** {money(m['cost_usd'])} ({percent(m['share'])})"
                                                    for m in tools["mcp_servers"])]
        lines += ["", f"_{tools['rule']}_"]
    out["tools"] = "\n".join(lines)

    c = data["cache"]
    tot = c["totals"]
    lines = [f"## Cache efficiency, {week.label}", ""]
    if not tot["requests"]:
        lines.append("No usage in the last 7 days.")
    else:
        lines += [
            f"Hit ratio **{percent(tot['hit_ratio'])}** · saved **{money(tot['saved_usd'])}** by cache reads · "
            f"{money(tot['cache_write_cost_usd'])} spent on cache writes, of which **{money(tot['never_read_write_cost_usd'])}** "
            f"({percent(tot['never_read_write_share'])} of written tokens) never read.",
            "",
            _table(["Model", "Hit ratio", "Saved", "Writes", "Never read"], [
                [r["model"], f"`{bar(r['hit_ratio'], 10)}` {percent(r['hit_ratio'])}", money(r["saved_usd"]),
                 money(r["cache_write_cost_usd"]), money(r["never_read_write_cost_usd"])] for r in c["by_model"]], "lrrrr"),
            "",
            f"_{c['rule']}_",
        ]
    out["cache"] = "\n".join(lines)

    an = data["anomalies"]["anomalies"]
    lines = ["## Anomalies, last 30 days", ""]
    if not an:
        lines.append("Nothing unusual: no day, session or cron run cost 2× its 7-day average.")
    for x in an[:8]:
        if x["kind"] == "day":
            what = f"**{x['at']}**" + (" (so far)" if x.get("partial") else "")
        elif x["kind"] == "session":
            what = f"Session `{_short(x['key'])}` started {_when(x['at'], tz)}"
        else:
            what = f"Cron run of **{x.get('job')}** at {_when(x['at'], tz)}"
        lines += [f"> [!warning] {what} cost {money(x['cost_usd'])}",
                  f"> {x['ratio']:.1f}× the 7-day average of its kind ({money(x['baseline_usd'])}, {x['baseline_count']} {'days' if x['kind'] == 'day' else 'before it'}).",
                  ""]
    if len(an) > 8:
        lines.append(f"…and {len(an) - 8} more: `costhook anomalies`.")
    out["anomalies"] = "\n".join(lines).rstrip()

    i = data["idle"]
    lines = [f"## Idle cost, {week.label}", ""]
    lines.append(f"**{money(i['idle_cost_usd'])}** ({percent(i['idle_share'])} of {money(i['total_cost_usd'])}) went to "
                 f"{i['idle_turns']:,} of {i['turns']:,} turns that changed nothing; {i['idle_sessions']:,} of "
                 f"{i['sessions']:,} sessions were idle throughout.")
    hb = i["heartbeats"]
    if hb["turns"]:
        lines += ["", f"Heartbeats: {hb['idle_turns']:,} of {hb['turns']:,} idle, {money(hb['idle_cost_usd'])} of {money(hb['cost_usd'])}."]
    if i["top_idle_sessions"]:
        lines += ["", _table(["Idle session", "Project", "Started", "Spend", "Turns"], [
            [f"`{_short(x['session_id'])}`", rollup.project_name(x["project"]), _when(x["started_at"], tz), money(x["cost_usd"]), x["turns"]]
            for x in i["top_idle_sessions"]], "lllrr")]
    lines += ["", f"_{i['rule']}_"]
    out["idle"] = "\n".join(lines)

    e = data["efficiency"]
    lines = [f"## Efficiency, {week.label}", ""]
    if not e["graded_sessions"]:
        lines.append("Not enough sessions to grade.")
    else:
        g = e["grades"]
        lines.append(f"**{e['actions_per_usd'] if e['actions_per_usd'] is not None else '–'} useful actions per dollar** "
                     f"({e['actions']:,} actions for {money(e['cost_usd'])}). Sessions graded: "
                     f"**A** {g['A']} · **B** {g['B']} · **C** {g['C']}.")
        worst = sorted((r for r in e["sessions"] if r["grade"] == "C"), key=lambda r: -r["cost_usd"])[:5]
        if worst:
            lines += ["", "Costliest C sessions:", "", _table(["Session", "Project", "Spend", "Actions", "Per $"], [
                [f"`{_short(r['session_id'])}`", rollup.project_name(r["project"]), money(r["cost_usd"]), r["actions"],
                 f"{r['actions_per_usd']:.1f}"] for r in worst], "llrrr")]
    lines += ["", f"_{e['rule']}_"]
    out["efficiency"] = "\n".join(lines)

    w = data["whatif"]
    lines = [f"## What-if savings, {week.label}", ""]
    # Sub-agent types and skills only where one is set: the rest is already in the project rows.
    rows = [r for r in w["rows"] if (r["savings_usd"] or 0) > 0 and r["key"] not in (report.MAIN_AGENT, report.NONE_KEY)][:6]
    if not rows:
        lines.append("No cheaper model to compare with (calls on Opus or Sonnet are compared one family down).")
    else:
        lines.append(_table(["Switch", "From → to", "Actual", "Would cost", "Savings"], [
            [f"{ {'project': 'project', 'agent': 'sub-agent', 'skill': 'skill'}[r['scope']]} **{r['name']}**",
             f"{r['from_model']} → {r['to_model']}", money(r["actual_usd"]), money(r["whatif_usd"]),
             f"**{money(r['savings_usd'])}** ({percent(r['savings_share'])})"] for r in rows], "llrrr"))
        lines += ["", f"_{w['rule']}_ Try others: `costhook whatif --to MODEL --by project|agent|skill`."]
    out["whatif"] = "\n".join(lines)

    out["cron"] = ("## OpenClaw cron jobs, last 30 days\n\n" + data["cron"]) if data["cron"] else ""

    if data["unpriced"]:
        out["unpriced"] = "\n".join(["## Unpriced models", "",
                                     "> [!warning] These calls have no price, so they are not in the totals above.",
                                     *[f"> - `{u['model']}`: {u['requests']:,} calls this month" for u in data["unpriced"]],
                                     "> Add prices under `[prices]` in the config (see `costhook doctor`)."])
    else:
        out["unpriced"] = ""
    return out


def _calendar(rows: list) -> str:
    """The days as a plain table, one row per week (Monday first), with week totals."""
    from datetime import date

    by_day = {r["day"]: r["cost_usd"] for r in rows}
    first, last = date.fromisoformat(rows[0]["day"]), date.fromisoformat(rows[-1]["day"])
    monday = first - timedelta(days=first.weekday())
    table = []
    while monday <= last:
        cells, total = [], 0.0
        for i in range(7):
            day = (monday + timedelta(days=i)).isoformat()
            value = by_day.get(day)
            total += value or 0
            cells.append("" if value is None else (money(value) if value else "·"))
        table.append([f"{monday:%d %b}", *cells, f"**{money(total)}**"])
        monday += timedelta(days=7)
    return _table(["Week of", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Total"], table, "lrrrrrrrr")


def _day(period_json: dict, tz) -> str:
    start = datetime.fromisoformat(period_json["start"].replace("Z", "+00:00")).astimezone(tz)
    return start.strftime("%a %d %b")


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1
    exponent = 10 ** int(f"{value:e}".split("e")[1])
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def _tree_lines(node: dict, depth: int) -> list:
    lines = []
    for child in node["children"]:
        if child["kind"] == "main":
            name = "main thread"
        elif child["kind"] == "subagent":
            name = f"**{child['label']}**" + (f" `{child['id'][:8]}`" if child.get("id") else "")
        else:
            name = f"child session `{_short(child['id'])}` ({child['label']})"
        lines.append(f"{'    ' * depth}- {name} — {money(child['cost_usd'])} ({percent(child['share'])}) · {child['requests']:,} calls")
        lines += _tree_lines(child, depth + 1)
    return lines


def frontmatter(data: dict) -> dict:
    s = data["summary"]["periods"]
    states = [b["state"] for b in data["budgets"]]
    status = "none" if not states else ("over" if any(x in ("over", "blocking") for x in states)
                                         else ("warning" if "warning" in states else "ok"))
    return {
        "costhook_updated": data["now"].astimezone(data["tz"]).isoformat(timespec="seconds"),
        "timezone": str(data["tz"]),
        "cost_today_usd": s["today"]["cost_usd"],
        "cost_yesterday_usd": s["yesterday"]["cost_usd"],
        "cost_week_usd": s["week"]["cost_usd"],
        "cost_month_usd": s["month"]["cost_usd"],
        "cost_last_month_usd": s["last_month"]["cost_usd"],
        "projected_month_usd": data["summary"]["projection"]["projected_month_usd"],
        "burn_rate_usd_per_hour": data["summary"]["burn_rate"]["today_usd_per_hour"],
        "budget_status": status,
        "budgets_over": sum(1 for x in states if x in ("over", "blocking")),
        "budgets_warning": sum(1 for x in states if x == "warning"),
        "anomalies_30d": len(data["anomalies"]["anomalies"]),
        "cache_hit_ratio_7d": data["cache"]["totals"]["hit_ratio"],
        "idle_share_7d": data["idle"]["idle_share"],
        "unpriced_requests_month": s["month"]["unpriced_requests"],
    }


def _yaml_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./+:-]+", text) and not re.fullmatch(r"[0-9.:+-]+", text) and text not in ("null", "true", "false"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ----------------------------------------------------------------------- the note ----


def render(conn, cfg: dict, *, now: datetime, tz, table=None, db_path=None, existing: str | None = None) -> str:
    """The whole note: `existing` (the note as it is now) keeps the user's own text."""
    data = collect(conn, cfg, now, tz, table, db_path)
    return merge(existing, frontmatter(data), sections(data))


def merge(existing: str | None, props: dict, blocks: dict) -> str:
    """Put costhook's properties and section blocks into the note, leaving everything else."""
    front_lines, body = _split_frontmatter(existing or "")
    new_note = existing is None or not existing.strip()
    kept = _drop_owned(front_lines)
    owned = [f"{key}: {_yaml_value(value)}" for key, value in props.items()]
    extra = ["tags:", "  - costhook"] if new_note else []
    front = "---\n" + "\n".join(owned + kept + extra) + "\n---\n"
    if new_note:
        body = ("# Cost dashboard\n\n"
                "_Written by costhook (`costhook dashboard` refreshes it). "
                "Text outside the `costhook:begin`/`end` markers is yours and is kept._\n")
    for name in SECTIONS:
        block = f"{BEGIN.format(name)}\n{blocks.get(name, '').strip()}\n{END.format(name)}".replace("\n\n" + END.format(name), "\n" + END.format(name))
        pattern = re.compile(re.escape(BEGIN.format(name)) + r".*?" + re.escape(END.format(name)), re.S)
        if pattern.search(body):
            body = pattern.sub(lambda _: block, body, count=1)
        else:
            body = _insert_after_previous(body, name, block)
    return front + body.rstrip("\n") + "\n"


def _insert_after_previous(body: str, name: str, block: str) -> str:
    index = SECTIONS.index(name)
    for previous in reversed(SECTIONS[:index]):
        end = END.format(previous)
        at = body.find(end)
        if at >= 0:
            at += len(end)
            return body[:at] + "\n\n" + block + body[at:]
    return body.rstrip("\n") + "\n\n" + block + "\n"


def _split_frontmatter(text: str) -> tuple[list, str]:
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end >= 0:
            after = text.find("\n", end + 4)
            return text[4:end].split("\n"), text[after + 1:] if after >= 0 else ""
    return [], text


def _drop_owned(lines: list) -> list:
    """Frontmatter lines minus costhook's own keys (and their continuation lines)."""
    kept, skipping = [], False
    for line in lines:
        if line and not line[0].isspace() and not line.startswith("-"):
            key = line.split(":", 1)[0].strip()
            skipping = key in OWNED_PROPERTIES
        if not skipping and line.strip():
            kept.append(line)
    return kept


def note_path(vault, note: str | None) -> Path:
    vault = Path(vault).expanduser()
    if not vault.is_dir():
        raise DashboardError(f"vault {vault} is not a directory")
    note = note or DEFAULT_NOTE
    relative = Path(note)
    if relative.is_absolute() or ".." in relative.parts or not note.endswith(".md"):
        raise DashboardError(f"note {note!r} must be a relative path ending in .md inside the vault")
    return vault / relative


def write(conn, cfg: dict, vault, note: str | None = None, *, now: datetime | None = None, tz=None, table=None,
          db_path=None, lock_timeout: float = 30) -> Path:
    """Render and write the note atomically (temporary file + rename) under a file lock."""
    from filelock import FileLock, Timeout

    path = note_path(vault, note)
    now = now or datetime.now(timezone.utc)
    tz = tz or timeframe.local_zone(cfg.get("timezone"))
    paths.ensure_private_dir(paths.home())
    try:
        with FileLock(str(lock_path()), timeout=lock_timeout, mode=0o600):
            _write_locked(conn, cfg, path, now, tz, table, db_path)
    except Timeout:
        raise DashboardError(f"another costhook is writing the dashboard (lock {lock_path()})") from None
    return path


def _write_locked(conn, cfg, path: Path, now, tz, table, db_path) -> None:
    try:
        existing = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = None
    text = render(conn, cfg, now=now, tz=tz, table=table, db_path=db_path, existing=existing)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.costhook-tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as exc:
        raise DashboardError(f"cannot write {path}: {exc.strerror or exc}") from None
    touch_stamp()


def lock_path() -> Path:
    return paths.home() / "dashboard.lock"


def stamp_path() -> Path:
    return Path(paths.dashboard_stamp_file())


def touch_stamp() -> None:
    """Mark the time of the last refresh: a private file, never followed through a symlink."""
    fd = os.open(stamp_path(), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def refresh(cfg: dict) -> Path | None:
    """The SessionEnd refresh (detached process): write the note unless another process
    is writing it or one was written within the interval."""
    from filelock import FileLock, Timeout

    settings = cfg.get("dashboard") or {}
    if not dashboard_due(settings):
        return None
    paths.ensure_private_dir(paths.home())
    try:
        with FileLock(str(lock_path()), timeout=0, mode=0o600):
            if not dashboard_due(settings):
                return None
            touch_stamp()
            path = note_path(settings["vault"], settings.get("note"))
            conn = db.connect()
            try:
                _write_locked(conn, cfg, path, datetime.now(timezone.utc), timeframe.local_zone(cfg.get("timezone")),
                              prices.load_table(cfg.get("prices")), None)
            finally:
                conn.close()
            return path
    except Timeout:
        return None
