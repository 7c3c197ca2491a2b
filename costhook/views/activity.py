"""What the agents did for the money: a session's cost tree, cost by tool, idle turns,
useful actions per dollar, and Claude's 5-hour usage windows."""

import bisect
from datetime import datetime, timedelta, timezone

from costhook.timeframe import Period, Window, utc_iso
from costhook.usage import NANO
from costhook.views import report
from costhook.views.calls import sequence
from costhook.views.report import NO_TOOL, usd
from costhook.views.rollup import fill_projects, of_cli, project_name, rollup_by_key, rollup_total, share

ACK_OUTPUT_TOKENS = 300  # an answer this short (or none) is an acknowledgement
BLOCK_HOURS = 5


def tree(conn, session_id: str, max_depth: int = 6) -> dict:
    """A session, its main thread, its sub-agents and its child sessions (recursively),
    each with its cost and share of the whole tree's cost."""
    node = _session_node(conn, session_id, set(), max_depth)
    _set_shares(node, node["cost_nanousd"])
    return _strip_nano(node)


def _session_node(conn, session_id: str, seen: set, depth: int) -> dict:
    """A session: its main thread, sub-agents and (down to `depth`) child sessions."""
    seen.add(session_id)
    children = []
    main = None
    projects, clis = set(), set()
    for agent_id, agent_type, sidechain, cost, requests, tokens, unpriced, first, last, project, cli in conn.execute(
        """SELECT agent_id, max(agent_type), max(is_sidechain), coalesce(sum(cost_nanousd), 0), count(*),
                  coalesce(sum(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens), 0),
                  sum(cost_nanousd IS NULL), min(timestamp), max(timestamp), max(project), max(agent)
           FROM requests WHERE session_id = ? GROUP BY agent_id, agent_id IS NULL AND is_sidechain = 1""",
        (session_id,),
    ):
        projects.add(project)
        clis.add(cli)
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
        "kind": "session", "id": session_id, "label": project_name(project) if project else session_id,
        "project": project, "cli": min((c for c in clis if c), default=None),  # the agent CLI that ran it
        "cost_nanousd": sum(c["cost_nanousd"] for c in children),
        "requests": sum(c["requests"] for c in children),
        "tokens": sum(c["tokens"] for c in children),
        "unpriced_requests": sum(c["unpriced_requests"] for c in children),
        "first": min((c["first"] for c in children if c["first"]), default=None),
        "last": max((c["last"] for c in children if c["last"]), default=None),
        "children": children,
    }


def _set_shares(node: dict, whole: int) -> None:
    """Each node's share of the whole tree's cost."""
    node["share"] = share(node["cost_nanousd"], whole)
    for child in node["children"]:
        _set_shares(child, whole)


def _strip_nano(node: dict) -> dict:
    out = {k: v for k, v in node.items() if k not in ("cost_nanousd", "children")}
    out["cost_usd"] = usd(node["cost_nanousd"])
    out["children"] = [_strip_nano(c) for c in node["children"]]
    return out


def sessions_with_subagents(conn, p: Period, candidates: int = 20) -> list:
    """The period's most expensive sessions that have sub-agents or child sessions."""
    ranked = sorted(rollup_by_key(conn, p, "session").items(), key=lambda kv: -kv[1]["cost"])[:candidates]
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
        rollup = rollup_total(conn, p)
        total, calls = rollup["cost"], rollup["requests"]
    raw = report.tool_sums(conn, where, args)  # the rule of `report --by tool`
    rows, servers = [], {}
    for name, sums in sorted(raw.items(), key=lambda kv: (-kv[1]["cost_nanousd"], kv[0])):
        nano = sums["cost_nanousd"]
        rows.append({"tool": name, "cost_usd": usd(nano), "share": share(nano, total), "requests": sums["requests"],
                     "tokens": sum(sums[m] for m in report.TOKEN_MEASURES)})
        if name.startswith("mcp__"):
            server = name.split("__")[1] or "?"
            s = servers.setdefault(server, {"server": server, "cost": 0, "tools": 0})
            s["cost"] += nano
            s["tools"] += 1
    mcp = [{"server": s["server"], "cost_usd": usd(s["cost"]), "share": share(s["cost"], total), "tools": s["tools"]}
           for s in sorted(servers.values(), key=lambda s: -s["cost"])]
    return {
        "period": None if session_id else p.to_json(), "session_id": session_id, "rule": TOOL_RULE,
        "rows": rows, "mcp_servers": mcp,
        "total": {"cost_usd": usd(total), "requests": calls},
    }


def turns(conn, p: Period, now: datetime | None = None) -> list:
    """The period's turns (see `sequence`)."""
    return sequence(conn, p, now or datetime.now(timezone.utc), results=("turns",))["turns"]


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
    fill_projects(conn, [s for _, s in idle_sessions[:limit]], [k for k, _ in idle_sessions[:limit]])
    return {
        "period": p.to_json(), "rule": IDLE_RULE,
        "total_cost_usd": usd(total),
        "idle_cost_usd": usd(idle_cost), "idle_share": share(idle_cost, total),
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
    grades = {g: sum(1 for r in rows if r["grade"] == g) for g in "ABC"}  # the whole period, not the rows listed
    graded = len(rows)
    rows = rows[:limit] if limit else rows
    if projects:
        fill_projects(conn, rows, [r["session_id"] for r in rows])
    total_cost = sum(s["cost"] for s in sessions.values())
    total_actions = sum(s["actions"] for s in sessions.values())
    return {
        "period": p.to_json(), "rule": EFFICIENCY_RULE,
        "actions": total_actions, "cost_usd": usd(total_cost),
        "actions_per_usd": round(total_actions * NANO / total_cost, 3) if total_cost else None,
        "grades": grades, "graded_sessions": graded,
        "sessions": rows,
    }


BLOCK_RULE = ("Claude's usage limits reset in 5-hour windows. A window starts at its first call, floored to the hour "
              "(UTC), and lasts 5 hours; a call more than 5 hours after the window's start or after the previous "
              "call starts a new one. Estimates for subscription plans: costs are what the calls would cost on the API.")


def blocks(conn, now: datetime, p: Period) -> dict:
    """5-hour usage windows (like ccusage `blocks`), built from the rollup's quarter hours
    plus the exact first and last call times; the active one with burn rate and projection.
    A period narrowed to one agent CLI (`Period.only`) has the windows of its calls."""
    first, last = p.buckets()
    narrow, more = of_cli(p.cli)
    buckets = conn.execute(
        f"""SELECT bucket, sum(cost_nanousd), sum(tokens), sum(requests), sum(unpriced) FROM spend
            WHERE dim = 'global' AND bucket >= ? AND bucket < ?{narrow} GROUP BY bucket HAVING sum(requests) > 0
            ORDER BY bucket""",
        (first, last, *more),
    ).fetchall()
    out, current = [], None
    prev_bucket = None
    for bucket, cost, tokens, requests, unpriced in buckets:
        start = datetime.strptime(bucket, "%Y-%m-%dT%H:%M").replace(tzinfo=timezone.utc)
        new = current is None or start >= current["start"] + timedelta(hours=BLOCK_HOURS)
        if not new and prev_bucket is not None and start - prev_bucket > timedelta(hours=BLOCK_HOURS) - timedelta(minutes=15):
            # The gap between two calls may exceed 5 h: compare the exact times.
            last_call = _edge(conn, prev_bucket, "DESC", cli=p.cli)
            first_call = _edge(conn, start, "ASC", cli=p.cli)
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
        first_call = _edge(conn, b["start"], "ASC", end=end, cli=p.cli)
        last_call = _edge(conn, b["last_bucket"], "DESC", cli=p.cli)
        active = b is out[-1] and now < end and now - last_call < timedelta(hours=BLOCK_HOURS)
        row = {"start": utc_iso(b["start"]), "end": utc_iso(end), "first_call": utc_iso(first_call), "last_call": utc_iso(last_call),
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


def _edge(conn, bucket_start: datetime, order: str, end: datetime | None = None, cli: str | None = None) -> datetime:
    """The first (ASC) or last (DESC) call time in a quarter hour (or up to `end`), of one agent CLI's calls or all."""
    where, args = Window(utc_iso(bucket_start), utc_iso(end if end is not None else bucket_start + timedelta(minutes=15)),
                         cli).where()
    row = conn.execute(f"SELECT timestamp FROM requests WHERE {where} ORDER BY timestamp {order} LIMIT 1", args).fetchone()
    if not row:
        return bucket_start
    return datetime.fromisoformat(row[0].replace("Z", "+00:00")).astimezone(timezone.utc)
