"""Aggregations over `requests`, shared by the CLI, the statusline and the dashboard.

Money stays integer nano-USD until it is shown. Calendar grouping happens in the
user's time zone: calls fall into 15-minute UTC buckets (every real zone offset is a
multiple of 15 minutes), and SQL shifts each bucket by the zone's offset at that moment
before grouping by local hour, day or month (weeks are summed from days).
"""

import os
import sqlite3
from datetime import date, datetime, timedelta

from costhook.budgets import like_prefix, project_filter
from costhook.text import term_text
from costhook.timeframe import NO_TIME_BUCKET, Window, bucket_time, local_zone
from costhook.usage import NANO, NO_TOOL, TOKEN_FIELDS, tool_names, tool_share

GROUPS = ("day", "week", "month", "project", "session", "model", "tool", "agent", "skill", "cron", "cli", "hour",
          "message", "machine", "user")
ORIGIN_GROUPS = ("machine", "user")  # where a call was first seen (this machine's own calls: none)
TIME_GROUPS = ("day", "week", "month", "hour")
TOKEN_MEASURES = TOKEN_FIELDS
MEASURES = ("requests", *TOKEN_MEASURES, "total_tokens", "cost_usd", "unpriced_requests")

MAIN_AGENT = "(main)"
NONE_KEY = "(none)"
LOCAL_ORIGIN = "(this machine)"  # a call recorded here, not synced in from another machine

# Column expressions for the plain (non-time, non-tool) groupings.
_COLUMN = {
    "project": "project",
    "session": "session_id",
    "model": "model",
    "agent": "agent_type",
    "skill": "skill",
    "cron": "cron_job",
    "cli": "agent",  # the agent CLI (claude, openclaw, codex); "agent" is the sub-agent type
    "machine": "origin_machine",
    "user": "origin_user",
}

_SUMS = """count(*) AS requests,
    coalesce(sum(input_tokens), 0) AS input_tokens,
    coalesce(sum(output_tokens), 0) AS output_tokens,
    coalesce(sum(cache_write_5m_tokens), 0) AS cache_write_5m_tokens,
    coalesce(sum(cache_write_1h_tokens), 0) AS cache_write_1h_tokens,
    coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
    coalesce(sum(cost_nanousd), 0) AS cost_nanousd,
    sum(cost_nanousd IS NULL) AS unpriced_requests"""


def report(conn: sqlite3.Connection, by: str = "day", *, win: Window | None = None, tz=None,
           filters: dict | None = None, table=None, source: str = "auto") -> dict:
    """The `report --format json` object: {"group_by", "rows": [{"key", measures…}], "totals"}.

    Reads the `spend` rollup (a few thousand rows, whatever the number of calls) unless
    `filters` ask for something only the call rows know; `source` forces one or the other.
    `--by message` lists the calls themselves (priced by type with `table`).
    """
    if by not in GROUPS:
        raise ValueError(f"unknown grouping {by!r}; choose one of {', '.join(GROUPS)}")
    win = win or Window()
    tz = tz or local_zone(None)
    if by == "message":  # one row per API call, in time order
        where, args = _where(win, filters or {})
        totals_row = conn.execute(f"SELECT {_SUMS} FROM requests WHERE {where}", args).fetchone()
        return {"group_by": by, "rows": message_rows(conn, where, args, table), "totals": _measures(dict(totals_row))}
    cli = (filters or {}).get("agent")  # one agent CLI's calls: the rollup rows carry it
    if source == "rollup" or (source == "auto" and set(filters or {}) <= {"agent"}):
        raw, totals = _from_rollup(conn, by, win, tz, cli)
    else:
        raw, totals = _from_requests(conn, by, win, tz, filters or {})
    rows = [dict(key=key, **_measures(sums)) for key, sums in raw.items()]
    if by == "cron":
        names = job_names(conn)
        for row in rows:
            row["name"] = names.get(row["key"], {}).get("name")
    if by == "session":  # which agent CLI ran each session (the rollup's session rows say)
        clis = dict(conn.execute("SELECT key, min(cli) FROM spend WHERE dim = 'session' GROUP BY key").fetchall())
        for row in rows:
            row["cli"] = clis.get(row["key"])
    if by in TIME_GROUPS:
        rows.sort(key=lambda r: r["key"])
    else:
        rows.sort(key=lambda r: (-r["cost_usd"], str(r["key"])))
    return {"group_by": by, "rows": rows, "totals": _measures(totals)}


def _where(win: Window, filters: dict) -> tuple[str, list]:
    where, args = win.where()
    for column, value in filters.items():
        clause, more = project_filter(value) if column == "project" else (f"{column} = ?", [value])
        where += f" AND {clause}"
        args += more
    return where, args


def resolve_session(conn: sqlite3.Connection, text: str) -> str:
    """A session id, or a unique prefix of one (tables show 8 characters) → the id.
    Raises ValueError when the prefix names several sessions; an unknown text is kept."""
    if conn.execute("SELECT 1 FROM requests WHERE session_id = ? LIMIT 1", (text,)).fetchone():
        return text
    found = [row[0] for row in conn.execute(
        "SELECT DISTINCT session_id FROM requests WHERE session_id LIKE ? ESCAPE '\\' LIMIT 4", (like_prefix(text),))]
    if len(found) > 1:
        # The ids come from transcripts and this message goes to a terminal: escaped.
        shown = ", ".join(term_text(f) for f in found[:3]) + (", …" if len(found) > 3 else "")
        raise ValueError(f"{text!r} is the start of several sessions ({shown}); give more of the id")
    return found[0] if found else text


def job_names(conn) -> dict:
    """OpenClaw cron job id -> {name, kind, host_agent, schedule}, from recorded jobs and runs."""
    names = {}
    if _has_table(conn, "cron_jobs"):
        for row in conn.execute("SELECT job_id, name, kind, host_agent, schedule FROM cron_jobs"):
            names[row[0]] = {"name": row[1], "kind": row[2], "host_agent": row[3], "schedule": row[4]}
    if _has_table(conn, "cron_runs"):
        for job_id, name in conn.execute(
                "SELECT job_id, max(job_name) FROM cron_runs WHERE job_name IS NOT NULL GROUP BY job_id"):
            names.setdefault(job_id, {"name": None, "kind": None, "host_agent": None, "schedule": None})
            names[job_id]["name"] = names[job_id]["name"] or name
    return names


def find_job(conn, text: str) -> str | None:
    """A job id from its id, its name (any case), or a unique prefix of either."""
    if not text:
        return None
    ids = {r[0] for r in conn.execute("SELECT DISTINCT job_id FROM cron_runs")}
    ids |= {r[0] for r in conn.execute("SELECT DISTINCT cron_job FROM requests WHERE cron_job IS NOT NULL")}
    names = job_names(conn)
    ids |= set(names)
    if text in ids:
        return text
    folded = text.casefold()
    for match in (
        lambda j, name: name == text,
        lambda j, name: name.casefold() == folded,
        lambda j, name: j.startswith(text),
        lambda j, name: name.casefold().startswith(folded),
    ):
        found = [j for j in sorted(ids) if match(j, (names.get(j) or {}).get("name") or "")]
        if len(found) == 1:
            return found[0]
    return None


def _has_table(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


SESSION_PREFIX = 8  # what tables show of a session id, unless 8 characters name several


def short_sessions(conn: sqlite3.Connection, ids) -> dict:
    """session id -> the shortest prefix (at least 8 characters) that names only it among
    every recorded session, so that what a table shows works as `--session` everywhere.
    Two index probes per id: its neighbours in sorted order share the longest prefixes."""
    out = {}
    for sid in {i for i in ids if i}:
        longest = 0
        for op, order in (("<", "DESC"), (">", "ASC")):
            row = conn.execute(f"SELECT session_id FROM requests WHERE session_id {op} ? "
                               f"ORDER BY session_id {order} LIMIT 1", (sid,)).fetchone()
            if row and row[0]:
                longest = max(longest, len(os.path.commonprefix([sid, row[0]])))
        out[sid] = sid[:max(SESSION_PREFIX, longest + 1)]
    return out


def _from_requests(conn, by, win, tz, filters) -> tuple[dict, dict]:
    where, args = _where(win, filters)
    if by in TIME_GROUPS:
        raw = _by_time(conn, by, where, args, tz)
    elif by == "tool":
        raw = tool_sums(conn, where, args)
    else:
        raw = _by_column(conn, by, where, args)
    totals = dict(conn.execute(f"SELECT {_SUMS} FROM requests WHERE {where}", args).fetchone())
    return raw, totals


_ROLLUP_DIM = {"project": "project", "session": "session", "model": "model", "agent": "agent",
               "skill": "skill", "cron": "cron", "tool": "tool", "machine": "machine", "user": "user"}
_ROLLUP_SUMS = """sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(cache_write_5m_tokens) AS cache_write_5m_tokens, sum(cache_write_1h_tokens) AS cache_write_1h_tokens,
    sum(cache_read_tokens) AS cache_read_tokens, sum(cost_nanousd) AS cost_nanousd, sum(unpriced) AS unpriced_requests"""
_ROLLUP_NAMES = ("requests", *TOKEN_MEASURES, "cost_nanousd", "unpriced_requests")


def _from_rollup(conn, by, win, tz, cli: str | None = None) -> tuple[dict, dict]:
    """The grouped sums and the totals from the rollup: of every call, or (`cli`) of one
    agent CLI's calls."""
    where, args = "dim = ?", []
    if win.start:
        where += " AND bucket >= ?"
        args.append(win.start[:16])
    if win.end:
        where += " AND bucket < ?"
        args.append(win.end[:16])
    if cli:
        where += " AND cli = ?"
        args.append(cli)
    if by in TIME_GROUPS:
        # One scan for the periods and the totals: calls without a time have the bucket
        # '0000-00-00T00:00', which is no date, so their period is None.
        out = _by_period(conn, by, f"SELECT * FROM spend WHERE {where}", ["global", *args], _ROLLUP_SUMS, tz)
        totals = {name: sum(sums[name] for sums in out.values()) for name in _ROLLUP_NAMES}
        out.pop(None, None)
        return out, totals
    totals = dict(conn.execute(f"SELECT {_ROLLUP_SUMS} FROM spend WHERE {where}", ["global", *args]).fetchone())
    out = {}
    key = "cli" if by == "cli" else "key"  # the CLIs: the global rows by their cli
    sql = f"SELECT {key} AS key, {_ROLLUP_SUMS} FROM spend WHERE {where} GROUP BY {key}"
    for row in conn.execute(sql, ["global" if by == "cli" else _ROLLUP_DIM[by], *args]):
        row = dict(row)
        _add(out, row.pop("key"), row)
    if by != "tool":  # calls without a value for this grouping: what the grouped rows leave of the totals
        rest = {name: (totals[name] or 0) - sum(r[name] for r in out.values()) for name in totals}
        if rest["requests"]:
            out[MAIN_AGENT if by == "agent" else LOCAL_ORIGIN if by in ORIGIN_GROUPS else NONE_KEY] = rest
    return {k: v for k, v in out.items() if v["requests"]}, totals


def _by_column(conn, by, where, args) -> dict:
    column = _COLUMN[by]
    out = {}
    sql = f"SELECT {column} AS key, {_SUMS} FROM requests WHERE {where} GROUP BY {column}"
    for row in conn.execute(sql, args):
        row = dict(row)
        key = row.pop("key")
        if key is None:
            key = MAIN_AGENT if by == "agent" else LOCAL_ORIGIN if by in ORIGIN_GROUPS else NONE_KEY
        _add(out, key, row)
    return out


def _by_time(conn, by, where, args, tz) -> dict:
    bucket = "substr(timestamp, 1, 14) || printf('%02d', CAST(substr(timestamp, 15, 2) AS INTEGER) / 15 * 15)"
    rows = f"SELECT {bucket} AS bucket, * FROM requests WHERE {where} AND timestamp IS NOT NULL"
    return _by_period(conn, by, rows, args, _SUMS, tz)


# A local period as an SQLite strftime format, and its length: in UTC, the period is the
# bucket's first characters. Weeks are summed from days (SQLite 3.40 has no ISO weeks).
_PERIOD = {"hour": ("%Y-%m-%dT%H", 13), "day": ("%Y-%m-%d", 10), "week": ("%Y-%m-%d", 10), "month": ("%Y-%m", 7)}


def _by_period(conn, by, rows: str, args: list, sums: str, tz) -> dict:
    """Sums per local hour, day, week or month. `rows` is a SELECT of call or rollup rows
    with their 15-minute UTC `bucket` ("2026-11-18T09:45"); SQL takes each bucket to its
    local period and groups, so Python sees one row per period."""
    period, period_args = _period_sql(conn, by, rows, args, tz)
    out = {}
    for row in conn.execute(f"SELECT {period} AS period, {sums} FROM ({rows}) GROUP BY period", [*period_args, *args]):
        row = dict(row)
        period = row.pop("period")
        if by == "week" and period:
            year, week, _ = date.fromisoformat(period).isocalendar()
            period = f"{year}-W{week:02d}"
        _add(out, period, row)
    return out


def _period_sql(conn, by, rows: str, args: list, tz) -> tuple[str, list]:
    """SQL for the local period of a row's `bucket`: NULL for calls without a time, whose
    bucket is '0000-00-00T00:00'."""
    fmt, length = _PERIOD[by]
    fixed = tz.utcoffset(None)  # zones of one offset (UTC, the machine's by default) tell it without a moment
    if fixed == timedelta(0):
        return f"substr(nullif(bucket, '{NO_TIME_BUCKET}'), 1, {length})", []
    if fixed is not None:
        return f"strftime('{fmt}', bucket, ?)", [f"{int(fixed.total_seconds()):+d} seconds"]
    first, last = conn.execute(f"SELECT min(bucket), max(bucket) FROM ({rows}) WHERE bucket != '{NO_TIME_BUCKET}'",
                               args).fetchone()
    if first is None:
        return "NULL", []
    shift, shift_args = _shift_sql(tz, first, last)
    return f"strftime('{fmt}', bucket, {shift})", shift_args


def _shift_sql(tz, first: str, last: str) -> tuple[str, list]:
    """An SQLite date modifier taking a UTC `bucket` between `first` and `last` to `tz`'s
    local time: one offset, or a CASE over the zone's changes of offset in between."""
    changes = _offset_changes(tz, first, last)
    whens, args = "", []
    for (_, seconds), (since, _) in zip(changes, changes[1:]):
        whens += "WHEN bucket < ? THEN ? "
        args += [since, f"{seconds:+d} seconds"]
    args.append(f"{changes[-1][1]:+d} seconds")
    return (f"CASE {whens}ELSE ? END" if whens else "?"), args


def _offset_changes(tz, first: str, last: str) -> list[tuple[str, int]]:
    """[(bucket, seconds)]: `tz`'s UTC offset from each of these buckets on, from `first` to
    `last`. The zone is asked once a day, and a change is pinned to its 15-minute bucket by
    bisection (no zone changes its offset twice within a day)."""
    quarter = timedelta(minutes=15)

    def offset(moment: datetime) -> int:
        return int(moment.astimezone(tz).utcoffset().total_seconds())

    moment, end = bucket_time(first), bucket_time(last)
    changes = [(first, offset(moment))]
    while moment < end:
        step = min(moment + timedelta(days=1), end)
        if offset(step) != changes[-1][1]:
            before, after = moment, step  # offset(before) is the current one, offset(after) is not
            while after - before > quarter:
                middle = before + (after - before) // quarter // 2 * quarter
                before, after = (middle, after) if offset(middle) == changes[-1][1] else (before, middle)
            changes.append((after.isoformat()[:16], offset(after)))
        moment = step
    return changes


def tool_sums(conn, where, args) -> dict:
    """A call's cost belongs to the tools it requested, split evenly between them;
    calls that requested no tool are 'reasoning/answer'."""
    sql = f"""
        SELECT tools, {_SUMS}
        FROM requests WHERE {where} GROUP BY tools"""
    out = {}
    for row in conn.execute(sql, args):
        row = dict(row)
        names = tool_names(row.pop("tools")) or [NO_TOOL]
        for index, name in enumerate(names):
            _add(out, name, _share(row, index, len(names)))
    return out


def _share(row: dict, index: int, parts: int) -> dict:
    """The index-th of `parts` integer shares of the tokens and cost (remainders go to the
    first); call counts are not split: a call counts once for each tool it requested."""
    if parts == 1:
        return row
    return {k: v if k in ("requests", "unpriced_requests") else tool_share(v, index, parts) for k, v in row.items()}


def _add(out: dict, key, row: dict) -> None:
    if key in out:
        for name, value in row.items():
            out[key][name] += value or 0
    else:
        out[key] = {name: value or 0 for name, value in row.items()}


def _measures(sums: dict) -> dict:
    tokens = {name: int(sums.get(name) or 0) for name in TOKEN_MEASURES}
    return {
        "requests": int(sums.get("requests") or 0),
        **tokens,
        "total_tokens": sum(tokens.values()),
        "cost_usd": usd(sums.get("cost_nanousd") or 0),
        "unpriced_requests": int(sums.get("unpriced_requests") or 0),
    }


def usd(nanousd: int) -> float:
    """Nano-USD as a JSON number that prints exactly (at most 9 decimals)."""
    return int(nanousd) / NANO


def unpriced_models(conn: sqlite3.Connection, win: Window | None = None, filters: dict | None = None) -> list[dict]:
    """Models of the unpriced calls in the window (and matching `filters`, as in report)."""
    where, args = _where(win or Window(), filters or {})
    sql = f"""SELECT model, count(*) AS requests FROM requests
              WHERE cost_nanousd IS NULL AND {where} GROUP BY model ORDER BY requests DESC"""
    return [dict(row) for row in conn.execute(sql, args)]


def message_rows(conn, where: str, args: list, table=None) -> list:
    """One row per API call (the `report --by message` grouping): the report measures plus
    time, model, tools, cost by token type and cache hit ratio."""
    import json

    from costhook.pricing import prices  # only this grouping prices by type: the fast report stays light

    table = table or prices.load_table()
    rows = []
    for r in conn.execute(
        f"""SELECT key, timestamp, model, agent_id, agent_type, tools, input_tokens, output_tokens, cache_write_5m_tokens,
                   cache_write_1h_tokens, cache_read_tokens, web_search_requests, cost_nanousd, cost_source, speed, inference_geo,
                   iterations
            FROM requests WHERE {where} ORDER BY timestamp, key""",
        args,
    ):
        r = dict(r)
        tokens = {m: int(r[m] or 0) for m in TOKEN_MEASURES}
        prompt = tokens["input_tokens"] + tokens["cache_read_tokens"] + tokens["cache_write_5m_tokens"] + tokens["cache_write_1h_tokens"]
        samplings = prices.iteration_costs(r, table)
        by_type = _cost_by_type(r, tokens, table, samplings)
        try:
            tools = json.loads(r["tools"] or "[]")
        except ValueError:
            tools = []
        rows.append({
            "key": r["key"], "requests": 1, **tokens, "total_tokens": sum(tokens.values()),
            "cost_usd": usd(r["cost_nanousd"] or 0), "unpriced_requests": int(r["cost_nanousd"] is None),
            "timestamp": r["timestamp"], "model": r["model"], "agent_id": r["agent_id"], "agent_type": r["agent_type"],
            "tools": tools, "cost_source": r["cost_source"],
            "cache_hit_ratio": round(tokens["cache_read_tokens"] / prompt, 6) if prompt else None,
            "cost_by_type_usd": by_type,
            # The samplings the API billed for this call (server-side compaction, the
            # advisor at its own model, ...): None for an ordinary call. The row's tokens
            # are the response's top-level usage; its cost is all of these.
            "iterations": None if samplings is None else [
                {"type": it["type"], "model": it["model"], **{m: it[m] for m in TOKEN_MEASURES},
                 "cost_usd": None if it["cost_nanousd"] is None else usd(it["cost_nanousd"])}
                for it in samplings],
        })
    return rows


def _cost_by_type(r: dict, tokens: dict, table, samplings=None) -> dict | None:
    """The call's cost split by token type, at the rates of its own tier, speed, region and
    time; a call with iterations adds up each sampling at its own model and tier."""
    from costhook.pricing import rates

    if r["cost_source"] != "computed":
        return None
    if samplings is None:
        samplings = [{"model": r["model"], **tokens, "web_search_requests": r["web_search_requests"], "speed": r["speed"]}]
    else:  # web searches are the request's, at the call's model
        samplings = [{"model": r["model"], **dict.fromkeys(TOKEN_MEASURES, 0),
                      "web_search_requests": r["web_search_requests"], "speed": r["speed"]},
                     *({**s, "web_search_requests": 0} for s in samplings)]
    stamp = (r["timestamp"] or "")[:16] + ":00.000Z" if r["timestamp"] else None
    parts = dict.fromkeys(("input", "output", "cache_write", "cache_read", "web_search"), 0)
    for s in samplings:
        model = s["model"] or ""
        thresholds = rates.tier_thresholds(model, table)
        prompt = s["input_tokens"] + s["cache_read_tokens"] + s["cache_write_5m_tokens"] + s["cache_write_1h_tokens"]
        tier = sum(1 for t in thresholds if prompt > t)
        rt = rates.rates(model, prompt=rates.PriceShape(thresholds, False, False).probe_prompt(tier), speed=s["speed"],
                         geo=r["inference_geo"], timestamp=stamp, table=table)
        if not rt.priced:
            return None
        parts["input"] += s["input_tokens"] * rt.input
        parts["output"] += s["output_tokens"] * rt.output
        parts["cache_write"] += s["cache_write_5m_tokens"] * rt.cache_write_5m + s["cache_write_1h_tokens"] * rt.cache_write_1h
        parts["cache_read"] += s["cache_read_tokens"] * rt.cache_read
        parts["web_search"] += int(s["web_search_requests"] or 0) * rt.web_search
    return {name: usd(rates.nano(value)) for name, value in parts.items()}
