"""A period's calls as each thread followed them: the price groups that cache efficiency
prices, and the turns that idle and efficiency judge; with the rule of which tools change
something outside the conversation.

Its own module because both cache.py and activity.py read these: kept in either, the
other would import it back.
"""

import json
from datetime import datetime, timedelta, timezone

from costhook.pricing import prices, rates
from costhook.pricing.rates import CHEAPER
from costhook.store.rollup import PRICE_BANDS, PRICE_KEYS
from costhook.timeframe import Period, utc_iso
from costhook.usage import SIDE_EFFECT_TOOLS, is_side_effect, tool_actions  # noqa: F401 (the rule's home for views)
from costhook.views.rollup import window_models

TTL = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1)}  # how long a cache write lives

# Calls price_groups puts in band 0 whatever their prompt (store/rollup.py): the index
# `requests_missing_count` (migration m013) holds them.
MISSING_COUNT = ("(input_tokens IS NULL OR cache_write_5m_tokens IS NULL OR cache_write_1h_tokens IS NULL"
                 " OR cache_read_tokens IS NULL)")
GROUP_SUMS = ("requests", "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
              "cache_read_tokens", "web_search_requests", "cost", "unpriced", "wasted_5m", "wasted_1h", "pending")
_ANSWER = "(r.tools IS NULL OR r.tools IN ('', '[]'))"  # a call that requested no tool


def sequence(conn, p: Period, now: datetime, table=None, session_id: str | None = None,
             results: tuple = ("groups", "turns")) -> dict:
    """The period's calls (or one session's) as each thread followed them, from what every
    write keeps (store/links.py: each call's next call in its thread and the first call of
    its turn; the cache writes nobody read and the turns, summed):

    - `groups`: token sums per price group (model, speed, region, tier, day, clock) with the
      cache-write tokens that the thread's next call did not read (see CACHE_RULE); a
      model's groups come in the order the model first appears;
    - `turns`: per thread, the calls up to and including one that requested no tool (the
      answer), or an OpenClaw run / prompt id: rows (session_id, thread, turn, first, calls,
      cost, unpriced, actions, answer_output_tokens, heartbeat, project=None), in the order
      they start. A turn begun before the window counts from its first call inside it.

    A period that nothing was recorded after (rolling ones: `7d`, the dashboard's week)
    reads the sums: the price_groups rollup, cache_waste, turns, and one by one only each
    thread's last call and the calls of turns begun before the window. Any other (one
    session; a period that ends before some calls; prices by the minute of the day or at a
    tier boundary that is no prompt band) sums the window's calls with their links in SQL.
    `results` names the ones the caller reads."""
    table = table or prices.load_table()
    models = window_models(conn, p) if not session_id else _session_models(conn, session_id)
    shape = rates.price_shape(models + [t for _, t in CHEAPER], table, p, now)
    out = {"shape": shape, "groups": {}, "turns": []}
    summed = not session_id and (p.end is None or conn.execute(
        "SELECT 1 FROM requests WHERE timestamp >= ? LIMIT 1", (utc_iso(p.end),)).fetchone() is None)
    if summed:
        if "groups" in results:
            if not shape.by_clock and set(shape.thresholds) <= set(PRICE_BANDS):
                out["groups"] = _groups_summed(conn, p, shape, now)
            else:
                out["groups"] = _groups(conn, shape, *_where(p), None, now)
        if "turns" in results:
            out["turns"] = _turns_summed(conn, p)
        return out
    if session_id:
        where, args = "r.session_id = ?", [session_id]
        look_end = None
    else:
        where, args = _where(p)
        # The next call may fall after the window's end: one up to an hour past it still counts.
        look_end = utc_iso(p.end + TTL["1h"]) if p.end else None
    if "groups" in results:
        out["groups"] = _groups(conn, shape, where, args, look_end, now)
    if "turns" in results:
        out["turns"] = _turns(conn, where, args, None if session_id else p.window().start)
    return out


def _where(p: Period) -> tuple[str, list]:
    """The period's window over `requests r`."""
    where, args = p.window().where()
    return where.replace("timestamp", "r.timestamp").replace("agent =", "r.agent ="), args


def _groups_summed(conn, p: Period, shape: rates.PriceShape, now: datetime) -> dict:
    """`groups` of a period that nothing was recorded after, from the sums: every call's
    tokens from price_groups, the writes their next call did not read from cache_waste;
    each thread's last call read one by one (wasted once its writes' lifetime is over,
    else pending). Long: four sources summed into one set of groups, in order."""
    first, last = p.buckets()
    tier_of_band = [sum(1 for bound in PRICE_BANDS[:band] if bound in shape.thresholds) for band in range(len(PRICE_BANDS) + 1)]
    bit = {column: 1 << PRICE_KEYS.index(column) for column in ("agent", "model", "speed", "inference_geo")}
    where, args = "bucket >= ? AND bucket < ?", [first, last]
    if p.cli:
        where += f" AND agent = ? AND nulls & {bit['agent']} = 0"
        args.append(p.cli)
    day = ", substr(bucket, 1, 10)" if shape.by_day else ", NULL"
    sums = ", ".join(f"sum({m})" for m in ("requests", "input_tokens", "output_tokens", "cache_write_5m_tokens",
                                          "cache_write_1h_tokens", "cache_read_tokens", "web_search_requests",
                                          "cost_nanousd", "unpriced"))
    groups = {}
    for row in conn.execute(f"""SELECT model, speed, inference_geo, band, nulls{day}, {sums} FROM price_groups
                                WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(requests) > 0""", args):
        model, speed, geo, band, nulls = row[:5]
        key = (None if nulls & bit["model"] else model, None if nulls & bit["speed"] else speed,
               None if nulls & bit["inference_geo"] else geo, tier_of_band[band], row[5], None)
        g = groups.get(key)
        if g is None:
            g = groups[key] = [0] * 12
        for i, value in enumerate(row[6:]):
            g[i] += value
    # A call missing a token count is in band 0 of price_groups; here, as in a pass over the
    # calls, its prompt counts what it has (the partial index of such calls finds them).
    where, args = _where(p)
    for row in conn.execute(f"""SELECT r.model, r.speed, r.inference_geo, r.timestamp, r.input_tokens, r.output_tokens,
                                       r.cache_write_5m_tokens, r.cache_write_1h_tokens, r.cache_read_tokens,
                                       r.web_search_requests, r.cost_nanousd
                                FROM requests r WHERE {where} AND r.timestamp IS NOT NULL AND {MISSING_COUNT}""", args):
        model, speed, geo, ts = row[:4]
        inp, out, w5, w1, read, web, cost = (row[4] or 0, row[5] or 0, row[6] or 0, row[7] or 0, row[8] or 0, row[9] or 0,
                                             row[10])
        tier = sum(1 for t in shape.thresholds if inp + w5 + w1 + read > t)
        if tier == tier_of_band[0]:
            continue
        day = ts[:10] if shape.by_day else None
        values = (1, inp, out, w5, w1, read, web, cost or 0, int(cost is None))
        for key, sign in (((model, speed, geo, tier_of_band[0], day, None), -1), ((model, speed, geo, tier, day, None), 1)):
            g = groups.setdefault(key, [0] * 12)
            for i, value in enumerate(values):
                g[i] += sign * value
    groups = {key: g for key, g in groups.items() if g[0]}
    for bucket, wkey, w5, w1 in conn.execute(
            "SELECT bucket, wkey, wasted_5m, wasted_1h FROM cache_waste WHERE bucket >= ? AND bucket < ?", (first, last)):
        agent, model, speed, geo, band = json.loads(wkey)
        if p.cli and agent != p.cli:
            continue
        g = groups.setdefault((model, speed, geo, tier_of_band[band], bucket[:10] if shape.by_day else None, None), [0] * 12)
        g[9] += w5
        g[10] += w1
    where, args = _where(p)
    cut5, cut1 = utc_iso(now - TTL["5m"]), utc_iso(now - TTL["1h"])
    for model, speed, geo, prompt, w5, w1, at in conn.execute(
            f"""SELECT r.model, r.speed, r.inference_geo, coalesce(r.input_tokens, 0) + coalesce(r.cache_write_5m_tokens, 0)
                       + coalesce(r.cache_write_1h_tokens, 0) + coalesce(r.cache_read_tokens, 0),
                       coalesce(r.cache_write_5m_tokens, 0), coalesce(r.cache_write_1h_tokens, 0), l.at
                FROM links l JOIN requests r ON r.rowid = l.rowid
                WHERE l.next_at IS NULL AND {where.replace('r.timestamp', 'l.at')} AND (r.cache_write_5m_tokens
                      OR r.cache_write_1h_tokens)""", args):
        tier = sum(1 for t in shape.thresholds if prompt > t)
        g = groups.setdefault((model, speed, geo, tier, at[:10] if shape.by_day else None, None), [0] * 12)
        g[9 if at < cut5 else 11] += w5
        g[10 if at < cut1 else 11] += w1
    # As a pass in time order meets them: by the first call of each model.
    firsts = {model: _first_call(conn, p, model) for model in {key[0] for key in groups}}
    order = sorted(groups, key=lambda key: (firsts[key[0]], repr(key)))
    return {key: dict(zip(GROUP_SUMS, groups[key])) for key in order}


def _first_call(conn, p: Period, model) -> tuple:
    """(time, rowid) of the period's first call of `model` (the model's index)."""
    where, args = _where(p)
    row = conn.execute(f"SELECT r.timestamp, r.rowid FROM requests r WHERE r.model IS ? AND {where} AND r.timestamp IS NOT NULL "
                       "ORDER BY r.timestamp, r.rowid LIMIT 1", [model, *args]).fetchone()
    return tuple(row) if row else ("", 0)


def _turns_summed(conn, p: Period) -> list:
    """`turns` of a period that nothing was recorded after, from the `turns` sums: those
    begun inside it whole; of those begun before it, the calls inside it one by one."""
    start = p.window().start
    where, args = ("turn_at >= ?", [start]) if start else ("1", [])
    if p.cli:
        where += " AND agent = ?"
        args.append(p.cli)
    items = [((turn_at, turn_row), (sid, aid, side, turn_at, calls, cost, unpriced, actions, answer, heartbeats))
             for turn_row, sid, aid, side, turn_at, calls, cost, unpriced, actions, answer, heartbeats in conn.execute(
                 f"""SELECT turn_row, session_id, agent_id, is_sidechain, turn_at, calls, cost, unpriced, actions, answer,
                            heartbeats FROM turns WHERE {where}""", args)]
    cut = []
    if start:
        where, args = "last_at >= ? AND turn_at < ?", [start, start]
        if p.cli:
            where += " AND agent = ?"
            args.append(p.cli)
        for (turn_row,) in conn.execute(f"SELECT turn_row FROM turns WHERE {where}", args).fetchall():
            cut += conn.execute(
                f"""SELECT r.rowid, r.timestamp, r.session_id, r.agent_id, r.is_sidechain, r.cost_nanousd,
                           CASE WHEN {_ANSWER} THEN coalesce(r.output_tokens, 0) ELSE 0 END, r.tools, r.is_heartbeat,
                           coalesce(r.run_id, r.prompt_id)
                    FROM links l JOIN requests r ON r.rowid = l.rowid WHERE l.turn_row = ? AND l.at >= ?""",
                (turn_row, start)).fetchall()
    items += [((ts, rowid), (sid, aid, side, ts, 1, cost or 0, int(cost is None), tool_actions(tools), answer,
                             1 if heartbeat else 0, True, not tools or tools == "[]", key))
              for rowid, ts, sid, aid, side, cost, answer, tools, heartbeat, key in cut]
    items.sort(key=lambda item: item[0])
    return _turn_rows(item[1] for item in items)


def _turn_rows(rows) -> list:
    """Turn rows from rows in order of their first call: (session, agent id, sidechain,
    first, calls, cost, unpriced, actions, answer output, heartbeat) of whole turns, and
    the same plus (True, is an answer, run / prompt id) of one call of a turn begun before
    the window, whose turns are followed here as a pass from the window's start did."""
    turn_rows, open_turns = [], {}
    for row in rows:
        sid, aid, side, first, calls, cost, unpriced, actions, answer, heartbeat = row[:10]
        thread = aid or ("(sidechain)" if side else "")
        if len(row) == 10:
            turn_rows.append([sid, thread, len(turn_rows), first, calls, cost, unpriced, actions, answer, 1 if heartbeat else 0])
            continue
        is_answer, key = row[11], row[12]
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
    return _turn_rows((sid, aid, side, first, calls, cost, unpriced, actions, answer, heartbeat) if not cut
                      else (sid, aid, side, first, calls, cost, unpriced, actions, answer, heartbeat, True, is_answer, key)
                      for sid, aid, side, first, _, calls, cost, unpriced, actions, answer, heartbeat, cut, is_answer, key
                      in rows)


def _session_models(conn, session_id: str) -> list:
    """The models one session used."""
    return [m for (m,) in conn.execute("SELECT DISTINCT model FROM requests WHERE session_id = ?", (session_id,)) if m]



def turns(conn, p: Period, now: datetime | None = None) -> list:
    """The period's turns (see `sequence`)."""
    return sequence(conn, p, now or datetime.now(timezone.utc), results=("turns",))["turns"]
