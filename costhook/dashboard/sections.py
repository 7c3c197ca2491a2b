"""The dashboard's sections: one function a section, each turning `note.collect`'s data
into markdown (without the block markers). `SECTIONS` is the note's order."""

import re
from datetime import datetime, timedelta, timezone

from costhook.text import bar, md_code, md_table, md_text, money, no_spend, percent
from costhook.views import report, rollup


# As `costhook budget list` says it.
NO_BUDGETS = "No budgets. Add one: `costhook budget set --scope global --period daily --limit 10 --action block`."


def _short(data: dict, session_id: str | None) -> str:
    """A session id as shown: its shortest unique prefix (8 characters at least, as
    `note.collect` worked out; `costhook … --session PREFIX` takes it), as inline code."""
    if not session_id:
        return md_code("?")
    return md_code(data.get("short_ids", {}).get(session_id) or session_id[:8])


def _quiet_week(data: dict) -> bool:
    """No call in the week the 7-day sections show: each says so the way the CLI's views do."""
    return not data["top"]["session"]["total"]["requests"]


def _when(stamp: str | None, tz) -> str:
    """A UTC time (call time or `YYYY-MM-DD HH:MM`) in the user's zone: `Fri 20 Nov 09:15`."""
    if not stamp:
        return ""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00").replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(tz).strftime("%a %d %b %H:%M")


def summary(data: dict) -> str:
    """Spend per period, the month's projection and today's burn rate."""
    tz = data["tz"]
    s = data["summary"]
    p = s["periods"]
    proj = s["projection"]
    burn = s["burn_rate"]["today_usd_per_hour"]
    return "\n".join([
        f"## Summary, {md_text(data['cli'])} only" if data.get("cli") else "## Summary",
        "",
        md_table(["Period", "Spend", "Calls"], [
            [f"Today ({_day(p['today'], tz)})", f"**{money(p['today']['cost_usd'])}**", f"{p['today']['requests']:,}"],
            ["Yesterday", money(p["yesterday"]["cost_usd"]), f"{p['yesterday']['requests']:,}"],
            ["This week", money(p["week"]["cost_usd"]), f"{p['week']['requests']:,}"],
            ["This month", money(p["month"]["cost_usd"]), f"{p['month']['requests']:,}"],
            ["Last month", money(p["last_month"]["cost_usd"]), f"{p['last_month']['requests']:,}"],
            [p["year"]["label"].capitalize(), money(p["year"]["cost_usd"]), f"{p['year']['requests']:,}"],
            ["All time", f"**{money(p['all']['cost_usd'])}**", f"{p['all']['requests']:,}"],
        ]),
        "",
        f"> [!info] On track for **{money(proj['projected_month_usd'])}** this month",
        f"> {money(proj['month_to_date_usd'])} so far + {money(proj['daily_average_usd'])}/day (the last 7 days' average) "
        f"× {proj['days_left']:.1f} days left. Burn rate today: **{money(burn)}/hour**." if burn is not None else
        f"> {money(proj['month_to_date_usd'])} so far + {money(proj['daily_average_usd'])}/day × {proj['days_left']:.1f} days left.",
    ])


def budgets(data: dict) -> str:
    """Each budget's bar, spend, projection and state; the alerts fired this period."""
    tz = data["tz"]
    lines = ["## Budgets", ""]
    if not data["budgets"]:
        lines.append(NO_BUDGETS)
    else:
        rows = []
        for b in data["budgets"]:
            amount = money if b["unit"] == "usd" else (lambda v: f"{v:,} tok")
            state = {"ok": "ok", "warning": "⚠ warning", "over": "over", "blocking": "⛔ blocking",
                     "no session": "no session running"}[b["state"]]
            # No period column: the id names it (daily-…, monthly-…), and six columns wrap a 700 px note.
            rows.append([md_code(b["id"]), f"`{bar(b['fraction'], 10)}` {percent(b['fraction'])}",
                         f"{amount(b['spent'])} / {amount(b['limit'])}",
                         amount(b["projected"]) if b["projected"] is not None else "–", state])
        lines.append(md_table(["Budget", "Used", "Spent / limit", "Projected", "State"], rows, "lllrl"))
        fired = [(b, al) for b in data["budgets"] for al in b["alerts"]]
        if fired:
            lines += ["", "Alerts this period:"]
            lines += [f"- {_when(al['created_at'], tz)} — {md_text(al['message'])}" for _, al in fired]
    return "\n".join(lines)


# The chart carries its own colours: Obsidian draws Mermaid in its light or dark theme, and
# neither theme's palette was chosen for a spend chart. Two bar series: the spend, then a
# bar of 0 in the background colour. Mermaid draws every bar up from the bottom of the plot,
# which sits half a label below the y axis' 0, so a $0 day would show a stub; the second
# series covers that strip, and a $0 day has no bar (crisp edges: no antialiased rim of the
# spend bar around its cover).
CHART_BAR = "#4f46e5"
CHART_BACKGROUND = "#ffffff"
CHART_INIT = ('%%{init: {"theme": "base", "themeVariables": {"xyChart": {'
              f'"backgroundColor": "{CHART_BACKGROUND}", "titleColor": "#222326", '
              '"xAxisLabelColor": "#444851", "xAxisLineColor": "#888c94", "xAxisTickColor": "#888c94", '
              '"xAxisTitleColor": "#444851", "yAxisLabelColor": "#444851", "yAxisLineColor": "#888c94", '
              '"yAxisTickColor": "#888c94", "yAxisTitleColor": "#444851", '
              f'"plotColorPalette": "{CHART_BAR}, {CHART_BACKGROUND}"'
              '}}, "themeCSS": ".bar-plot-0 rect, .bar-plot-1 rect { shape-rendering: crispEdges; }", '
              '"xyChart": {"width": 900, "height": 320, "xAxis": {"labelFontSize": 13}}}}%%')


def daily(data: dict) -> str:
    """The last 30 days: a mermaid bar chart and a calendar of weeks."""
    t = data["trends"]
    rows = t["rows"]
    labels = ", ".join(f'"{label}"' for label in _day_labels([r["day"] for r in rows]))
    values = ", ".join(f"{r['cost_usd']:.4f}".rstrip("0").rstrip(".") for r in rows)
    top_value = max((r["cost_usd"] for r in rows), default=0)
    change = t["change_7_days"]
    if not any(r["requests"] for r in rows):
        return f"## Daily spend, last {len(rows)} days\n\n{no_spend(f'last {len(rows)} days', data.get('cli'))}"
    lines = [
        "## Daily spend, last 30 days",
        "",
        f"Total **{money(t['total_usd'])}**, {money(t['daily_average_usd'])}/day on average"
        + (f", peak {money(t['peak']['cost_usd'])} on {t['peak']['day']}" if t["peak"] else "")
        + (f"; last 7 days {change * 100:+.0f}% vs the 7 before" if change is not None else "") + ".",
        "",
        "```mermaid",
        CHART_INIT,
        "xychart-beta",
        f'    title "Spend per day (USD), {rows[0]["day"]} to {rows[-1]["day"]}"',
        f"    x-axis [{labels}]",
        f'    y-axis "USD" 0 --> {_nice_ceiling(top_value):g}',
        f"    bar [{values}]",
        f"    bar [{', '.join('0' for _ in rows)}]",
        "```",
        "",
        _calendar(rows),
    ]
    return "\n".join(lines)


def _day_labels(days: list) -> list:
    """The chart's x-axis labels: the month's short name on the first day shown and on
    each 1st, the day of the month otherwise (30 labels must fit). Mermaid merges equal
    labels into one bar, so a day number seen before (a window across February) gets a
    zero-width space."""
    from datetime import date

    labels, seen = [], set()
    for i, day in enumerate(days):
        moment = date.fromisoformat(day)
        label = f"{moment:%b}" if i == 0 or moment.day == 1 else str(moment.day)
        while label in seen:
            label += "\u200b"
        seen.add(label)
        labels.append(label)
    return labels


def models(data: dict) -> str:
    """Spend per model in each of the last months: where the money went over time."""
    m = data["models_by_month"]
    lines = [f"## Spend per model, last {m['months']} months", ""]
    if not m["rows"]:
        return "\n".join(lines + [no_spend(f"last {m['months']} months", data.get("cli"))])
    other = any(r["other_usd"] for r in m["rows"])
    header = ["Month", *[md_text(_model(name)) for name in m["models"]], *(["Other"] if other else []), "Total"]
    rows = []
    for r in m["rows"]:
        month = datetime.strptime(r["month"], "%Y-%m").strftime("%b %Y")
        rows.append([month, *[money(r["models"][name]) if r["models"][name] else "·" for name in m["models"]],
                     *([money(r["other_usd"])] if other else []), f"**{money(r['total_usd'])}**"])
    lines.append(md_table(header, rows))
    if m["models"]:
        lines += ["", "_Models: " + ", ".join(f"{md_text(_model(name))} = {md_code(name)}" for name in m["models"])
                  + ("; Other: the rest._" if other else "._")]
    return "\n".join(lines)


def leaderboards(data: dict) -> str:
    """The week's costliest sessions, projects, models, sub-agent types, skills and agent CLIs."""
    tz = data["tz"]
    week = data["week"]
    lines = [f"## Leaderboards, {week.label}", ""]
    sessions_top = data["top"]["session"]
    if not sessions_top["rows"]:
        lines.append(no_spend(week.label, week.cli))
    else:
        lines += [f"**Most expensive sessions** (of {money(sessions_top['total']['cost_usd'])})", "",
                  md_table(["Session", "Project", "Started", "Spend", "Share"], [
                      [_short(data, r["key"]), md_text(rollup.project_name(r.get("project"))), _when(r.get("started_at"), tz),
                       money(r["cost_usd"]), percent(r["share"])] for r in sessions_top["rows"]], "lllrr")]
        for by, title in (("cli", "Agent CLIs"), ("project", "Projects"), ("model", "Models"), ("agent", "Sub-agent types"),
                          ("skill", "Skills")):
            board = data["top"].get(by) or {"rows": []}
            if not board["rows"] or (by in ("agent", "skill", "cli") and len(board["rows"]) == 1):
                continue
            lines += ["", f"**{title}**", "", md_table([title[:-1], "Spend", "Share", "Calls", ""], [
                [md_text(r.get("name") or r["key"]), money(r["cost_usd"]), percent(r["share"]), f"{r['requests']:,}",
                 f"`{bar(r['share'], 12)}`"] for r in board["rows"]], "lrrrl")]
    return "\n".join(lines)


def subagents(data: dict) -> str:
    """The cost trees of the week's costliest sessions with sub-agents."""
    lines = ["## Sub-agent cost tree", ""]
    if _quiet_week(data):
        lines.append(no_spend(data["week"].label, data["week"].cli))
    elif not data["trees"]:
        lines.append("No session with sub-agents in the last 7 days.")
    for tree in data["trees"]:
        lines += [f"**Session {_short(data, tree['id'])}** ({md_text(tree['label'])}) — {money(tree['cost_usd'])}, {tree['requests']:,} calls", ""]
        lines += _tree_lines(data, tree, 0)
        lines.append("")
    return "\n".join(lines).rstrip()


def tools(data: dict) -> str:
    """The week's cost by tool and by MCP server."""
    week = data["week"]
    tools = data["tools"]
    lines = [f"## Cost by tool, {week.label}", ""]
    if not tools["rows"]:
        lines.append(no_spend(week.label, week.cli))
    else:
        lines.append(md_table(["Tool", "Spend", "Share", "Calls", ""], [
            [md_code(r["tool"]) if r["tool"] != report.NO_TOOL else r["tool"], money(r["cost_usd"]), percent(r["share"]),
             f"{r['requests']:,}", f"`{bar(r['share'], 12)}`"] for r in tools["rows"][:12]], "lrrrl"))
        if tools["mcp_servers"]:
            lines += ["", "MCP servers: " + ", ".join(f"**{md_text(m['server'])}** {money(m['cost_usd'])} ({percent(m['share'])})"
                                                    for m in tools["mcp_servers"])]
        lines += ["", f"_{tools['rule']}_"]
    return "\n".join(lines)


def cache(data: dict) -> str:
    """The week's cache hit ratio, savings and never-read writes."""
    week = data["week"]
    c = data["cache"]
    tot = c["totals"]
    lines = [f"## Cache efficiency, {week.label}", ""]
    if not tot["requests"]:
        lines.append(no_spend(week.label, week.cli))
    else:
        lines += [
            f"Hit ratio **{percent(tot['hit_ratio'])}** · saved **{money(tot['saved_usd'])}** by cache reads · "
            f"{money(tot['cache_write_cost_usd'])} spent on cache writes, of which **{money(tot['never_read_write_cost_usd'])}** "
            f"({percent(tot['never_read_write_share'])} of written tokens) never read.",
            "",
            md_table(["Model", "Hit ratio", "Saved", "Writes", "Never read"], [
                [md_text(r["model"]), f"`{bar(r['hit_ratio'], 10)}` {percent(r['hit_ratio'])}", money(r["saved_usd"]),
                 money(r["cache_write_cost_usd"]), money(r["never_read_write_cost_usd"])] for r in c["by_model"]], "lrrrr"),
            "",
            f"_{c['rule']}_",
        ]
    return "\n".join(lines)


def anomalies(data: dict) -> str:
    """The last 30 days' anomalies, eight at most."""
    tz = data["tz"]
    an = data["anomalies"]["anomalies"]
    lines = ["## Anomalies, last 30 days", ""]
    if not an:
        lines.append(f"No anomalies in the last {data['anomalies']['days']} days.")
    for x in an[:8]:
        if x["kind"] == "day":
            what = f"**{x['at']}**" + (" (so far)" if x.get("partial") else "")
        elif x["kind"] == "session":
            what = f"Session {_short(data, x['key'])} started {_when(x['at'], tz)}"
        else:
            what = f"Cron run of **{md_text(x.get('job'))}** at {_when(x['at'], tz)}"
        lines += [f"> [!warning] {what} cost {money(x['cost_usd'])}",
                  f"> {x['ratio']:.1f}× the 7-day average of its kind ({money(x['baseline_usd'])}, {x['baseline_count']} {'days' if x['kind'] == 'day' else 'before it'}).",
                  ""]
    if len(an) > 8:
        lines.append(f"…and {len(an) - 8} more: `costhook anomalies`.")
    return "\n".join(lines).rstrip()


def idle(data: dict) -> str:
    """The week's idle cost."""
    tz = data["tz"]
    week = data["week"]
    i = data["idle"]
    lines = [f"## Idle cost, {week.label}", ""]
    if _quiet_week(data):
        return "\n".join(lines + [no_spend(week.label, week.cli)])
    lines.append(f"**{money(i['idle_cost_usd'])}** ({percent(i['idle_share'])} of {money(i['total_cost_usd'])}) went to "
                 f"{i['idle_turns']:,} of {i['turns']:,} turns that changed nothing; {i['idle_sessions']:,} of "
                 f"{i['sessions']:,} sessions were idle throughout.")
    hb = i["heartbeats"]
    if hb["turns"]:
        lines += ["", f"Heartbeats: {hb['idle_turns']:,} of {hb['turns']:,} idle, {money(hb['idle_cost_usd'])} of {money(hb['cost_usd'])}."]
    if i["top_idle_sessions"]:
        lines += ["", md_table(["Idle session", "Project", "Started", "Spend", "Turns"], [
            [_short(data, x["session_id"]), md_text(rollup.project_name(x["project"])), _when(x["started_at"], tz), money(x["cost_usd"]), x["turns"]]
            for x in i["top_idle_sessions"]], "lllrr")]
    lines += ["", f"_{i['rule']}_"]
    return "\n".join(lines)


def efficiency(data: dict) -> str:
    """The week's useful actions per dollar and the costliest C sessions."""
    week = data["week"]
    e = data["efficiency"]
    lines = [f"## Efficiency, {week.label}", ""]
    if _quiet_week(data):
        return "\n".join(lines + [no_spend(week.label, week.cli)])
    if not e["graded_sessions"]:
        lines.append("Not enough sessions to grade.")
    else:
        g = e["grades"]
        lines.append(f"**{e['actions_per_usd'] if e['actions_per_usd'] is not None else '–'} useful actions per dollar** "
                     f"({e['actions']:,} actions for {money(e['cost_usd'])}). Sessions graded: "
                     f"**A** {g['A']} · **B** {g['B']} · **C** {g['C']}.")
        worst = sorted((r for r in e["sessions"] if r["grade"] == "C"), key=lambda r: -r["cost_usd"])[:5]
        if worst:
            lines += ["", "Costliest C sessions:", "", md_table(["Session", "Project", "Spend", "Actions", "Per $"], [
                [_short(data, r["session_id"]), md_text(rollup.project_name(r["project"])), money(r["cost_usd"]), r["actions"],
                 f"{r['actions_per_usd']:.1f}"] for r in worst], "llrrr")]
    lines += ["", f"_{e['rule']}_"]
    return "\n".join(lines)


def whatif(data: dict) -> str:
    """The week's biggest savings from a cheaper model."""
    week = data["week"]
    w = data["whatif"]
    lines = [f"## What-if savings, {week.label}", ""]
    # Sub-agent types and skills only where one is set: the rest is already in the project rows.
    rows = [r for r in w["rows"] if (r["savings_usd"] or 0) > 0 and r["key"] not in (report.MAIN_AGENT, report.NONE_KEY)][:6]
    if _quiet_week(data):
        lines.append(no_spend(week.label, week.cli))
    elif not rows:
        lines.append("No cheaper model to compare with (calls on Opus or Sonnet are compared one family down).")
    else:
        # No "would cost" column (actual − savings): the table fits a 700 px note.
        lines.append(md_table(["Switch", "From → to", "Actual", "Savings"], [
            [f"{ {'project': 'project', 'agent': 'sub-agent', 'skill': 'skill'}[r['scope']]} **{md_text(r['name'])}**",
             f"{md_text(_model(r['from_model']))} → {md_text(_model(r['to_model']))}", money(r["actual_usd"]),
             f"**{money(r['savings_usd'])}** ({percent(r['savings_share'])})"] for r in rows], "llrr"))
        lines += ["", f"_{w['rule']}_ Try others: `costhook whatif --to MODEL --by project|agent|skill`."]
    return "\n".join(lines)


def cron(data: dict) -> str:
    """OpenClaw cron jobs of the last 30 days and heartbeat idle cost; empty without cron rows."""
    c, tz = data["cron"], data["tz"]
    if not c:
        return ""
    if "error" in c:
        body = f"_Cron section unavailable ({c['error']}); see `costhook cron`._"
    else:
        lines = []
        jobs, beats = c["jobs"], c["beats"]
        if jobs:
            lines.append(md_table(["Cron job", "Runs", "Spend", "Avg / run", "Last run", "Trend"], [
                [md_text(j.get("job_name") or j["job_id"]), j["runs"], money(j["cost_usd"]), money(j.get("avg_cost_usd")),
                 _when(j.get("last_run_at"), tz), f"`{j.get('sparkline', '')}`"] for j in jobs], "lrrrll"))
        if beats.get("heartbeats"):
            lines += ["", f"Heartbeats: {beats['idle']:,} of {beats['heartbeats']:,} only acknowledged, "
                          f"{money(beats['idle_cost_usd'])} of {money(beats['cost_usd'])}."]
        body = "\n".join(lines).strip()
    return ("## OpenClaw cron jobs, last 30 days\n\n" + body) if body else ""


def unpriced(data: dict) -> str:
    """Models whose calls this month have no price; empty when there are none."""
    if not data["unpriced"]:
        return ""
    return "\n".join(["## Unpriced models", "",
                      "> [!warning] These calls have no price, so they are not in the totals above.",
                      *[f"> - {md_code(u['model'])}: {u['requests']:,} calls this month" for u in data["unpriced"]],
                      "> Add prices under `[prices]` in the config (see `costhook doctor`)."])


def team(data: dict) -> str:
    """The team's spend per user and machine, today and this month, as of the last pull
    (plus this machine's unpushed calls); empty when this machine is not linked to a team."""
    t = data.get("team")
    if not t:
        return ""
    lines = ["## Team", "",
             f"Team today {money(t['today_usd'])}, this month {money(t['month_usd'])} "
             f"(as of the last pull, {_when(t['last_pull'], data['tz']) if t['last_pull'] else 'none yet'}; "
             "this machine's unpushed calls included).", ""]
    for label, rows in (("User", t["users"]), ("Machine", t["machines"])):
        if rows:
            lines += [md_table([label, "Today", "This month"],
                               [[md_text(r["key"]), money(r["today_usd"]), money(r["month_usd"])] for r in rows[:10]], "lrr"), ""]
    return "\n".join(lines).strip()


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
    return md_table(["Week of", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Total"], table, "lrrrrrrrr")


def _day(period_json: dict, tz) -> str:
    """A period's first day in the user's zone: `Fri 20 Nov`."""
    start = datetime.fromisoformat(period_json["start"].replace("Z", "+00:00")).astimezone(tz)
    return start.strftime("%a %d %b")


def _model(name: str | None) -> str:
    """A Claude model id without `claude-` and its release date, where a table row must fit
    on one line: `claude-sonnet-4-5-20250929` → `sonnet-4-5`."""
    return re.sub(r"^claude-(.+?)(-20\d{6})?$", r"\1", name or "?")


def _nice_ceiling(value: float) -> float:
    """The chart's top: the next 1, 2, 2.5 or 5 × a power of ten at or above `value`."""
    if value <= 0:
        return 1
    exponent = 10 ** int(f"{value:e}".split("e")[1])
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def _tree_lines(data: dict, node: dict, depth: int) -> list:
    """A cost tree as a nested markdown list."""
    lines = []
    for child in node["children"]:
        if child["kind"] == "main":
            name = "main thread"
        elif child["kind"] == "subagent":
            name = f"**{md_text(child['label'])}**" + (f" {md_code(child['id'][:8])}" if child.get("id") else "")
        else:
            name = f"child session {_short(data, child['id'])} ({md_text(child['label'])})"
        lines.append(f"{'    ' * depth}- {name} — {money(child['cost_usd'])} ({percent(child['share'])}) · {child['requests']:,} calls")
        lines += _tree_lines(data, child, depth + 1)
    return lines


SECTIONS = {
    "summary": summary, "budgets": budgets, "daily": daily, "models": models, "leaderboards": leaderboards, "subagents": subagents,
    "tools": tools, "cache": cache, "anomalies": anomalies, "idle": idle, "efficiency": efficiency,
    "whatif": whatif, "cron": cron, "unpriced": unpriced, "team": team,
}


def sections(data: dict) -> dict:
    """Section name -> markdown (without the markers), in the note's order."""
    return {name: render(data) for name, render in SECTIONS.items()}
