"""A period's calls as each thread followed them: the price groups that cache efficiency
prices, and the turns that idle and efficiency judge; with the rule of which tools change
something outside the conversation.

Its own module because both cache.py and activity.py read these: kept in either, the
other would import it back.
"""

import json
import re
from datetime import datetime, timedelta, timezone

from costhook.pricing import prices, rates
from costhook.pricing.rates import CHEAPER
from costhook.timeframe import Period, utc_iso
from costhook.views.rollup import window_models

TTL = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1)}  # how long a cache write lives

# Tools whose calls change something outside the conversation. MCP tools count when their
# name says they write (mcp__<server>__create_issue, ...send_message, ...).
SIDE_EFFECT_TOOLS = frozenset({
    "Edit", "MultiEdit", "Write", "NotebookEdit", "Bash", "BashOutput", "KillShell", "KillBash",
    # OpenClaw's tool names
    "write", "edit", "apply_patch", "exec", "process", "message", "sessions_send", "cron", "gateway",
})
MCP_WRITE_VERBS = re.compile(
    r"(^|_)(create|update|delete|remove|write|edit|post|send|add|set|put|patch|insert|upload|publish|"
    r"merge|push|commit|comment|close|reopen|assign|move|rename|archive|reply|submit|run|execute|deploy|"
    r"trigger|approve|invite|schedule|start|stop|cancel|fork|label)(_|$)"
)


GROUP_SUMS = ("requests", "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
              "cache_read_tokens", "web_search_requests", "cost", "unpriced", "wasted_5m", "wasted_1h", "pending")
_ANSWER = "(r.tools IS NULL OR r.tools IN ('', '[]'))"  # a call that requested no tool


def sequence(conn, p: Period, now: datetime, table=None, session_id: str | None = None,
             results: tuple = ("groups", "turns")) -> dict:
    """The period's calls (or one session's) as each thread followed them, from the links
    that every write keeps (store/links.py: each call's next call in its thread, the first
    call of its turn), summed in SQL:

    - `groups`: token sums per price group (model, speed, region, tier, day, clock) with the
      cache-write tokens that the thread's next call did not read (see CACHE_RULE), in the
      order the groups first appear;
    - `turns`: per thread, the calls up to and including one that requested no tool (the
      answer), or an OpenClaw run / prompt id: rows (session_id, thread, turn, first, calls,
      cost, unpriced, actions, answer_output_tokens, heartbeat, project=None), in the order
      they start. A turn begun before the window counts from its first call inside it.

    `results` names the ones the caller reads (each is one query)."""
    table = table or prices.load_table()
    models = window_models(conn, p) if not session_id else _session_models(conn, session_id)
    shape = rates.price_shape(models + [t for _, t in CHEAPER], table, p, now)
    if session_id:
        where, args = "r.session_id = ?", [session_id]
        start = look_end = None
    else:
        where, args = p.window().where()
        where = where.replace("timestamp", "r.timestamp").replace("agent =", "r.agent =")
        start = p.window().start
        # The next call may fall after the window's end: one up to an hour past it still counts.
        look_end = utc_iso(p.end + TTL["1h"]) if p.end else None
    out = {"shape": shape, "groups": {}, "turns": []}
    if "groups" in results:
        out["groups"] = _groups(conn, shape, where, args, look_end, now)
    if "turns" in results:
        out["turns"] = _turns(conn, where, args, start)
    return out


def _groups(conn, shape: rates.PriceShape, where: str, args: list, look_end: str | None, now: datetime) -> dict:
    """{(model, speed, geo, tier, day, clock): sums} of the calls in `where`. A call's
    cache writes were never read when its thread's next call (within an hour of the
    window's end) read no more from the cache; with no such call, when their lifetime is
    over; else they are pending."""
    prompt = ("(coalesce(r.input_tokens, 0) + coalesce(r.cache_write_5m_tokens, 0) + coalesce(r.cache_write_1h_tokens, 0)"
              " + coalesce(r.cache_read_tokens, 0))")
    tier = " + ".join(f"({prompt} > {int(t)})" for t in shape.thresholds) or "0"
    day = "substr(r.timestamp, 1, 10)" if shape.by_day else "NULL"
    clock = "substr(r.timestamp, 12, 5)" if shape.by_clock else "NULL"
    judged = "l.next_at IS NOT NULL" + (" AND l.next_at < :look_end" if look_end else "")
    w5, w1 = "coalesce(r.cache_write_5m_tokens, 0)", "coalesce(r.cache_write_1h_tokens, 0)"
    unread = "l.next_read <= coalesce(r.cache_read_tokens, 0)"
    named = {}
    for i, value in enumerate(args):  # the window's `?` as named parameters, beside the cut-offs'
        named[f"a{i}"] = value
        where = where.replace("?", f":a{i}", 1)
    named.update(look_end=look_end, cut5=utc_iso(now - TTL["5m"]), cut1=utc_iso(now - TTL["1h"]))
    sql = f"""
        SELECT r.model, r.speed, r.inference_geo, {tier}, {day}, {clock},
               count(*), sum(coalesce(r.input_tokens, 0)), sum(coalesce(r.output_tokens, 0)), sum({w5}), sum({w1}),
               sum(coalesce(r.cache_read_tokens, 0)), sum(coalesce(r.web_search_requests, 0)),
               coalesce(sum(r.cost_nanousd), 0), sum(r.cost_nanousd IS NULL),
               sum(CASE WHEN {judged} THEN (CASE WHEN {unread} THEN {w5} ELSE 0 END)
                        WHEN r.timestamp < :cut5 THEN {w5} ELSE 0 END),
               sum(CASE WHEN {judged} THEN (CASE WHEN {unread} THEN {w1} ELSE 0 END)
                        WHEN r.timestamp < :cut1 THEN {w1} ELSE 0 END),
               sum(CASE WHEN {judged} THEN 0 ELSE (CASE WHEN r.timestamp >= :cut5 THEN {w5} ELSE 0 END)
                                                  + (CASE WHEN r.timestamp >= :cut1 THEN {w1} ELSE 0 END) END),
               min(r.timestamp), r.rowid
        FROM requests r JOIN links l ON l.rowid = r.rowid
        WHERE {where} AND r.timestamp IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6"""
    rows = conn.execute(sql, named).fetchall()
    rows.sort(key=lambda row: (row[18], row[19]))  # first seen first, as a pass in time order meets them
    return {tuple(row[:6]): dict(zip(GROUP_SUMS, row[6:18])) for row in rows}


def _turns(conn, where: str, args: list, start: str | None) -> list:
    """The turns of the calls in `where` (see `sequence`). Whole turns are grouped in SQL;
    the calls of a turn begun before `start` come one by one and are followed here, as the
    pass that starts at the window did."""
    conn.create_function("costhook_actions", 1, tool_actions, deterministic=True)
    before = "l.turn_at < ?" if start else "0"
    sql = f"""
        SELECT r.session_id, r.agent_id, r.is_sidechain,
               CASE WHEN {before} THEN r.timestamp ELSE l.turn_at END,
               CASE WHEN {before} THEN r.rowid ELSE l.turn_row END,
               count(*), coalesce(sum(r.cost_nanousd), 0), sum(r.cost_nanousd IS NULL),
               sum(CASE WHEN {_ANSWER} THEN 0 ELSE costhook_actions(r.tools) END),
               sum(CASE WHEN {_ANSWER} THEN coalesce(r.output_tokens, 0) ELSE 0 END),
               max(CASE WHEN r.is_heartbeat THEN 1 ELSE 0 END),
               {before}, max({_ANSWER}), max(coalesce(r.run_id, r.prompt_id))
        FROM requests r JOIN links l ON l.rowid = r.rowid
        WHERE {where} AND r.timestamp IS NOT NULL
        GROUP BY CASE WHEN {before} THEN -r.rowid ELSE l.turn_row END"""
    marks = [start] * 3 if start else []
    rows = conn.execute(sql, [*marks, *args, *marks[:1]]).fetchall()
    rows.sort(key=lambda row: (row[3], row[4]))
    turn_rows, open_turns = [], {}
    for sid, aid, side, first, _, calls, cost, unpriced, actions, answer, heartbeat, cut, is_answer, key in rows:
        thread = aid or ("(sidechain)" if side else "")
        if not cut:
            turn_rows.append([sid, thread, len(turn_rows), first, calls, cost, unpriced, actions, answer, heartbeat])
            continue
        # One call of a turn begun before the window: the rule of store/links.py, from the window's start.
        state = open_turns.get((sid, aid, side))
        if state is None or state[1] or (key is not None and state[2] != key):
            turn = [sid, thread, len(turn_rows), first, 0, 0, 0, 0, 0, 0]
            turn_rows.append(turn)
            state = open_turns[(sid, aid, side)] = [turn, False, key]
        turn = state[0]
        turn[4] += calls
        turn[5] += cost
        turn[6] += unpriced
        turn[7] += actions
        turn[8] += answer
        turn[9] = turn[9] or heartbeat
        if is_answer:
            state[1] = key is None
    return [(*t, None) for t in turn_rows]


def _session_models(conn, session_id: str) -> list:
    """The models one session used."""
    return [m for (m,) in conn.execute("SELECT DISTINCT model FROM requests WHERE session_id = ?", (session_id,)) if m]



_actions_cache: dict = {}


def tool_actions(tools_json: str | None) -> int:
    """Side-effecting tools a call requested (Edit, Write, Bash, MCP writes, …)."""
    if not tools_json or tools_json == "[]":
        return 0
    cached = _actions_cache.get(tools_json)
    if cached is None:
        try:
            names = json.loads(tools_json)
        except ValueError:
            names = []
        cached = sum(1 for n in names if isinstance(n, str) and is_side_effect(n))
        if len(_actions_cache) > 50_000:
            _actions_cache.clear()
        _actions_cache[tools_json] = cached
    return cached


def is_side_effect(name: str) -> bool:
    """Does a tool of this name change something outside the conversation?"""
    if name in SIDE_EFFECT_TOOLS:
        return True
    if name.startswith("mcp__"):
        return bool(MCP_WRITE_VERBS.search(name.split("__", 2)[-1].lower()))
    return False


def turns(conn, p: Period, now: datetime | None = None) -> list:
    """The period's turns (see `sequence`)."""
    return sequence(conn, p, now or datetime.now(timezone.utc), results=("turns",))["turns"]
