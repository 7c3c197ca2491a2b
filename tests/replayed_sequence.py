"""The views' pass over a period's calls as it was before the links (store/links.py):
following each thread from call to call in Python. The reference that
costhook.views.calls.sequence, which sums the stored links in SQL, must equal exactly
(tests/test_links.py)."""

from datetime import datetime

from costhook.pricing import prices, rates
from costhook.pricing.rates import CHEAPER
from costhook.timeframe import Period, Window, utc_iso
from costhook.views.calls import TTL, tool_actions
from costhook.views.rollup import window_models

# The pass's columns, and which of its results need each (the thread and time always).
# A column no result needs is read as a constant NULL: a value SQLite never looks up and
# Python never builds (building ~20 values per call is most of the pass's time).
_SEQ_COLUMNS = (
    ("session_id", ()), ("agent_id", ()), ("is_sidechain", ()), ("timestamp", ()),
    ("model", ("groups",)), ("speed", ("groups",)), ("inference_geo", ("groups",)), ("input_tokens", ("groups",)),
    ("output_tokens", ("groups", "turns")), ("cache_write_5m_tokens", ("groups",)), ("cache_write_1h_tokens", ("groups",)),
    ("cache_read_tokens", ("groups",)), ("web_search_requests", ("groups",)), ("cost_nanousd", ("groups", "turns")),
    ("tools", ("turns",)), ("is_heartbeat", ("turns",)), ("coalesce(run_id, prompt_id)", ("turns",)),
)


def _columns(needs: set) -> str:
    return ", ".join(column if not wanted or needs & set(wanted) else "NULL" for column, wanted in _SEQ_COLUMNS)


def replayed_sequence(conn, p: Period, now: datetime, table=None, session_id: str | None = None,
             results: tuple = ("groups", "turns")) -> dict:
    """One pass over the period's calls in time order (the timestamp index, no sort),
    following each thread (main thread or sub-agent) from call to call:

    - `groups`: token sums per price group (model, speed, region, tier, day, clock) with the
      cache-write tokens that the thread's next call did not read (see CACHE_RULE);
    - `turns`: per thread, the calls up to and including one that requested no tool (the
      answer), or an OpenClaw run / prompt id: rows (session_id, thread, turn, first, calls,
      cost, unpriced, actions, answer_output_tokens, heartbeat, project=None).

    `results` names the ones the caller reads: the columns only the other needs are not
    read (its part of the answer is then meaningless).

    Python rather than SQL window functions: the same work is 3-4x faster this way.
    Long: one loop of locals on purpose, since splitting it into calls costs time on every
    call (measured with tests/benchmarks/views_bench.py)."""
    table = table or prices.load_table()
    models = window_models(conn, p) if not session_id else [m for (m,) in conn.execute("SELECT DISTINCT model FROM requests WHERE session_id = ?", (session_id,)) if m]
    shape = rates.price_shape(models + [t for _, t in CHEAPER], table, p, now)
    thresholds, by_day, by_clock = shape.thresholds, shape.by_day, shape.by_clock
    columns = _columns(set(results))
    if session_id:
        where, args = "session_id = ?", [session_id]
        end_key = None
    else:
        # The next call may fall after the window's end: read an hour past it, count only inside.
        look = Window(start=p.window().start, end=utc_iso(p.end + TTL["1h"]) if p.end else None, cli=p.cli)
        where, args = look.where()
        end_key = utc_iso(p.end) if p.end else None
    cut5, cut1 = utc_iso(now - TTL["5m"]), utc_iso(now - TTL["1h"])
    # Hot loop (one iteration per call): lists and locals rather than dicts and attributes.
    # group: [requests, input, output, write 5m, write 1h, read, web, cost, unpriced, wasted 5m, wasted 1h, pending]
    # thread state: [group, read, write 5m, write 1h, timestamp, open turn]
    # turn: [session, thread, index, first, calls, cost, unpriced, actions, answer output, heartbeat, turn key, closed]
    groups, threads, turn_rows, actions_of = {}, {}, [], {}
    single = thresholds[0] if len(thresholds) == 1 else None
    want_groups, want_turns = "groups" in results, "turns" in results
    for (sid, aid, side, ts, model, speed, geo, inp, out, w5, w1, read, web, cost, tools, heartbeat, turn_key) in conn.execute(
        f"SELECT {columns} FROM requests WHERE {where} AND timestamp IS NOT NULL ORDER BY timestamp", args
    ):
        read = read or 0
        w5 = w5 or 0
        w1 = w1 or 0
        thread = (sid, aid, side)
        state = threads.get(thread)
        if state is None:
            state = threads[thread] = [None, 0, 0, 0, ts, None]
        else:
            group = state[0]
            if group is not None and read <= state[1] and (state[2] or state[3]):
                group[9] += state[2]
                group[10] += state[3]
        if end_key is not None and ts >= end_key:  # past the window: only tells whether earlier writes were read
            state[0] = None
            state[1], state[2], state[3], state[4] = read, w5, w1, ts
            continue
        out = out or 0
        if want_groups:
            inp = inp or 0
            prompt = inp + w5 + w1 + read
            if single is not None:
                tier = 1 if prompt > single else 0
            else:
                tier = 0
                for t in thresholds:
                    if prompt > t:
                        tier += 1
            key = (model, speed, geo, tier, ts[:10] if by_day else None, ts[11:16] if by_clock else None)
            g = groups.get(key)
            if g is None:
                g = groups[key] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            g[0] += 1
            g[1] += inp
            g[2] += out
            g[3] += w5
            g[4] += w1
            g[5] += read
            if web:
                g[6] += web
            if cost is None:
                g[8] += 1
            else:
                g[7] += cost
            state[0] = g
            state[1], state[2], state[3], state[4] = read, w5, w1, ts
        if want_turns:
            acts = actions_of.get(tools)
            if acts is None:
                acts = actions_of[tools] = tool_actions(tools)
            turn = state[5]
            if turn is None or turn[11] or (turn_key is not None and turn[10] != turn_key):
                turn = state[5] = [sid, thread, len(turn_rows), ts, 0, 0, 0, 0, 0, 0, turn_key, False]
                turn_rows.append(turn)
            turn[4] += 1
            if cost is None:
                turn[6] += 1
            else:
                turn[5] += cost
            turn[7] += acts
            if heartbeat:
                turn[9] = 1
            if tools == "[]" or not tools:
                turn[8] += out
                turn[11] = turn_key is None  # an answer ends the turn (runs end when their id changes)
    # Writes of each thread's last call: wasted once their lifetime is over, else not judged yet.
    for group, _, w5, w1, ts, _ in threads.values():
        if group is None:
            continue
        if w5:
            group[9 if ts < cut5 else 11] += w5
        if w1:
            group[10 if ts < cut1 else 11] += w1
    names = ("requests", "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
             "cache_read_tokens", "web_search_requests", "cost", "unpriced", "wasted_5m", "wasted_1h", "pending")
    groups = {key: dict(zip(names, g)) for key, g in groups.items()}
    turn_rows = [(t[0], t[1][1] or ("(sidechain)" if t[1][2] else ""), t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], None)
                 for t in turn_rows]
    return {"shape": shape, "groups": groups, "turns": turn_rows}


