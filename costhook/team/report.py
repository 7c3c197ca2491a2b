"""Team views: the server's rollup (`costhook.spend`), read as the local views read theirs.

`report` returns exactly the `costhook report --format json` object (design.md §7) —
`{"group_by", "rows": [{"key", measures…}], "totals"}` — with two more groupings, `user`
and `machine`. Time groupings are computed by PostgreSQL in the asked zone, from
15-minute UTC buckets, so a report over millions of calls sums a few thousand rows.
"""

from datetime import UTC, timedelta

from costhook.usage import NANO, TOKEN_FIELDS

TIME_GROUPS = ("day", "week", "month", "hour")
DIM_GROUPS = ("project", "model", "agent", "skill", "cron", "tool", "user", "machine")
GROUPS = (*TIME_GROUPS, *DIM_GROUPS)
_FORMAT = {"day": "YYYY-MM-DD", "week": 'IYYY-"W"IW', "month": "YYYY-MM", "hour": 'YYYY-MM-DD"T"HH24'}
_SUMS = ", ".join(f"sum({m})" for m in ("requests", *TOKEN_FIELDS, "cost_nanousd", "unpriced"))


def local_time_sql(tz) -> tuple[str, list]:
    """SQL for a bucket's local wall time in `tz`, and its parameters."""
    key = getattr(tz, "key", None)
    if key:
        return "(bucket AT TIME ZONE %s)", [key]
    offset = tz.utcoffset(None) if tz is not UTC else timedelta(0)
    return "((bucket + %s::interval) AT TIME ZONE 'UTC')", [f"{int(offset.total_seconds())} seconds"]


def report(pg, by: str, *, start: str | None = None, end: str | None = None, tz=UTC) -> dict:
    """The team report grouped `by`, for buckets in [start, end) (UTC ISO; None: open)."""
    if by not in GROUPS:
        raise ValueError(f"unknown team grouping {by!r}; choose one of {', '.join(GROUPS)}")
    where, args = "dim = %s AND bucket > '-infinity'", []
    if start:
        where += " AND bucket >= %s::timestamptz"
        args.append(start)
    if end:
        where += " AND bucket < %s::timestamptz"
        args.append(end)
    all_time = not start and not end
    total_where = where.replace(" AND bucket > '-infinity'", "") if all_time else where  # timeless calls count in all time
    totals = pg.execute(f"SELECT {_SUMS} FROM costhook.spend WHERE {total_where}", ["global", *args]).fetchone()
    if by in TIME_GROUPS:
        local, local_args = local_time_sql(tz)
        sql = (f"SELECT to_char({local}, '{_FORMAT[by]}') AS k, {_SUMS} FROM costhook.spend "
               f"WHERE {where} GROUP BY k ORDER BY k")
        raw = pg.execute(sql, [*local_args, "global", *args]).fetchall()
    else:
        raw = pg.execute(f"SELECT key, {_SUMS} FROM costhook.spend WHERE {total_where} GROUP BY key",
                         [by, *args]).fetchall()
    rows = [dict(key=r[0], **measures(r[1:])) for r in raw]
    if by not in (*TIME_GROUPS, "tool", "user", "machine"):  # calls without a value: what the rows leave of the totals
        rest = [int(t or 0) - sum(int(r[i + 1] or 0) for r in raw) for i, t in enumerate(totals)]
        if rest[0]:
            rows.append(dict(key="(main)" if by == "agent" else "(none)", **measures(rest)))
    if by not in TIME_GROUPS:
        rows.sort(key=lambda r: (-r["cost_usd"], str(r["key"])))
    return {"group_by": by, "rows": [r for r in rows if r["requests"]], "totals": measures(totals)}


def measures(sums) -> dict:
    """(requests, five token kinds, cost, unpriced) sums → the report's measures."""
    requests, *tokens = (int(v or 0) for v in sums[:6])
    cost, unpriced = int(sums[6] or 0), int(sums[7] or 0)
    named = dict(zip(TOKEN_FIELDS, tokens))
    return {"requests": requests, **named, "total_tokens": sum(tokens), "cost_usd": cost / NANO,
            "unpriced_requests": unpriced}


def rollup_rows(pg, dims: list, first: str | None = None, last: str | None = None) -> list:
    """The server rollup's rows of `dims` with buckets in [first, last) ("YYYY-MM-DDTHH:MM"
    UTC, None: open), shaped as the local `spend` rollup's: (dim, key, bucket, measures…)."""
    where, args = "dim = ANY(%s)", [list(dims)]
    first = first if first and first[:4] != "0000" else None  # timeframe's open ends: no bound
    last = last if last and len(last) == 16 else None
    if first:
        where += " AND bucket >= %s::timestamptz"
        args.append(first + "Z")
    if last:
        where += " AND bucket < %s::timestamptz"
        args.append(last + "Z")
    bucket = """CASE WHEN bucket = '-infinity' THEN '0000-00-00T00:00'
                ELSE to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') END"""
    measures = ", ".join(MEASURES)
    return pg.execute(f"SELECT dim, key, {bucket}, {measures} FROM costhook.spend WHERE {where}", args).fetchall()


MEASURES = ("cost_nanousd", *TOKEN_FIELDS, "tokens", "requests", "unpriced")
