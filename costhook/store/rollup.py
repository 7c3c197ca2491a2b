"""The `spend` rollup: cost, tokens and calls per 15-minute UTC bucket and dimension,
kept in step with `requests` by every write, so budgets and reports sum a few hundred
rows instead of a month of calls. Standard library only.
"""

import os
import sqlite3

from costhook.timeframe import bucket_of
from costhook.usage import NO_TOOL, TOKEN_FIELDS, tool_names, tool_share

SPEND_DIMENSIONS = (
    ("global", None),
    ("project", "project"),
    ("project_name", "project_name"),  # last part of the project path, for `project:<name>`
    ("session", "session_id"),
    ("model", "model"),
    ("agent", "agent_type"),
    ("skill", "skill"),
    ("cron", "cron_job"),
)
SPEND_MEASURES = ("cost_nanousd", *TOKEN_FIELDS, "tokens", "requests", "unpriced")


def split_share(values: list, index: int, parts: int) -> list:
    """`share` of cost and tokens; counts are not split: a call counts once for each tool
    it requested. `values` are in SPEND_MEASURES order."""
    if parts == 1:
        return values
    shared = len(SPEND_MEASURES) - 2
    return [tool_share(v, index, parts) for v in values[:shared]] + values[shared:]


def _spend_values(row: dict) -> list:
    cost = row.get("cost_nanousd")
    tokens = [row.get(c) or 0 for c in TOKEN_FIELDS]
    return [cost or 0, *tokens, sum(tokens), 1, int(cost is None)]


_DIMENSION_COLUMNS = tuple(column for _, column in SPEND_DIMENSIONS[1:])
_PROJECT_NAME = _DIMENSION_COLUMNS.index("project_name")  # derived, not a column of requests


def _spend_attributes(row: dict, tools=None) -> tuple:
    """What decides which rollup rows a request lands in: its bucket and dimension values.
    `tools`: the row's tool list, when the caller has it decoded already."""
    columns = [row.get(column) for column in _DIMENSION_COLUMNS]
    project = row.get("project")
    columns[_PROJECT_NAME] = os.path.basename(project.rstrip("/")) if project else None
    names = tool_names(row.get("tools")) if tools is None else tools
    return (bucket_of(row.get("timestamp")), tuple(columns), tuple(names))


MEASURES_N = len(SPEND_MEASURES)


def _expand(attributes: tuple, values: list, only=None):
    """The rollup rows a group of requests lands in. `values`: the group's sums, then (for
    calls that requested several tools) each tool's sum of per-call shares."""
    bucket, columns, tools = attributes
    sums = values[:MEASURES_N]
    for (dim, _), key in zip(SPEND_DIMENSIONS, ("", *columns)):
        if key is not None and (only is None or dim in only):
            yield dim, key, bucket, sums
    if only is None or "tool" in only:
        if len(tools) > 1:
            for index, name in enumerate(tools):
                yield "tool", name, bucket, values[MEASURES_N * (index + 1):MEASURES_N * (index + 2)]
        else:
            yield "tool", tools[0] if tools else NO_TOOL, bucket, sums


class SpendDelta:
    """Changes to the rollup. Requests are first summed by their attributes (a session's
    calls in one 15-minute bucket mostly share them), then expanded into dimensions and
    written with one statement per rollup row touched.

    A call that requested several tools is split between them call by call (`split_share`),
    and the shares are what the group sums for each tool: a share of a sum is not the sum of
    the shares, and the rollup must not depend on how calls were batched."""

    def __init__(self):
        self.groups = {}

    def add(self, row: dict, sign: int, tools=None) -> None:
        attributes = _spend_attributes(row, tools)
        values = _spend_values(row)
        parts = len(attributes[2])
        if parts > 1:
            values = values + [v for index in range(parts) for v in split_share(values, index, parts)]
        self._add(attributes, values, sign)

    def add_groups(self, groups: dict) -> None:
        """Add another delta's groups (one computed where the rows were prepared)."""
        for attributes, values in groups.items():
            self._add(attributes, values, +1)

    def _add(self, attributes: tuple, values: list, sign: int) -> None:
        current = self.groups.get(attributes)
        if current is None:
            self.groups[attributes] = list(values) if sign == 1 else [sign * v for v in values]
        else:
            for i, v in enumerate(values):
                current[i] += sign * v

    def write(self, conn: sqlite3.Connection, only=None) -> None:
        rows = {}
        for attributes, values in self.groups.items():
            for dim, key, bucket, share in _expand(attributes, values, only):
                current = rows.get((dim, key, bucket))
                if current is None:
                    rows[(dim, key, bucket)] = list(share)
                else:
                    for i, v in enumerate(share):
                        current[i] += v
        measures = ", ".join(SPEND_MEASURES)
        updates = ", ".join(f"{m} = {m} + excluded.{m}" for m in SPEND_MEASURES)
        conn.executemany(
            f"""INSERT INTO spend (dim, key, bucket, {measures}) VALUES (?, ?, ?{', ?' * len(SPEND_MEASURES)})
                ON CONFLICT(dim, key, bucket) DO UPDATE SET {updates}""",
            [(*k, *v) for k, v in rows.items() if any(v)],
        )
        self.groups.clear()


# SQL for the same derived values, used by rebuild_spend.
_DIMENSION_SQL = {
    "project_name": "replace(rtrim(project, '/'), rtrim(rtrim(project, '/'), replace(rtrim(project, '/'), '/', '')), '')",
}
_BUCKET_SQL = "coalesce(substr(timestamp, 1, 14) || printf('%02d', CAST(substr(timestamp, 15, 2) AS INTEGER) / 15 * 15), '0000-00-00T00:00')"


def rebuild_spend(conn: sqlite3.Connection) -> None:
    """Recompute the whole rollup from `requests` (migration, repair)."""
    conn.execute("DELETE FROM spend")
    add_rows(conn)


def add_rows(conn: sqlite3.Connection, after_rowid: int | None = None) -> None:
    """Add the stored calls (those past `after_rowid`: rows just inserted) to the rollup,
    in SQL: what SpendDelta.add of each would add (a first import's batches, rebuild_spend).

    The calls are summed once by bucket and every dimension's column together (a few
    calls per group), and each dimension's rows are summed from those groups."""
    measures = ", ".join(SPEND_MEASURES)
    columns = [column for _, column in SPEND_DIMENSIONS if column is not None and column not in _DIMENSION_SQL]
    token_sums = ", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in TOKEN_FIELDS)
    all_tokens = " + ".join(f"coalesce({c}, 0)" for c in TOKEN_FIELDS)
    where, args = ("WHERE rowid > ?", (after_rowid,)) if after_rowid is not None else ("", ())
    # (a temporary table emptied, never dropped: DROP fails while a statement is open)
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS spend_groups (bucket, {', '.join(columns)}, {measures})")
    conn.execute(
        f"""INSERT INTO temp.spend_groups
            SELECT {_BUCKET_SQL}, {', '.join(columns)}, coalesce(sum(cost_nanousd), 0), {token_sums},
                   coalesce(sum({all_tokens}), 0), count(*), sum(cost_nanousd IS NULL)
            FROM requests {where} GROUP BY 1, {', '.join(columns)}""", args
    )
    sums = ", ".join(f"sum({m})" for m in SPEND_MEASURES)
    updates = ", ".join(f"{m} = {m} + excluded.{m}" for m in SPEND_MEASURES)
    try:
        for dim, column in SPEND_DIMENSIONS:
            key = "''" if column is None else _DIMENSION_SQL.get(column, column)
            conn.execute(
                f"""INSERT INTO spend (dim, key, bucket, {measures})
                    SELECT '{dim}', {key}, bucket, {sums} FROM temp.spend_groups
                    WHERE {key} IS NOT NULL GROUP BY {key}, bucket
                    ON CONFLICT(dim, key, bucket) DO UPDATE SET {updates}"""
            )
    finally:
        conn.execute("DELETE FROM temp.spend_groups")
    _add_tool_rows(conn, where, args)


def _add_tool_rows(conn: sqlite3.Connection, where: str, args: tuple) -> None:
    """The tool rows of the rollup, from the same split rule the hook uses (one code path).
    A call with one tool or none counts whole under it, so those calls are summed in SQL
    by bucket and tool list first; a call with several (its JSON list has a comma) is split
    call by call."""
    delta = SpendDelta()
    names = ("cost_nanousd", "timestamp", "tools", *TOKEN_FIELDS)
    where = f"{where} AND" if where else "WHERE"
    for row in conn.execute(f"SELECT {', '.join(names)} FROM requests {where} tools LIKE '%,%'", args):
        delta.add(dict(zip(names, row)), +1)
    token_sums = ", ".join(f"coalesce(sum({c}), 0)" for c in TOKEN_FIELDS)
    all_tokens = " + ".join(f"coalesce({c}, 0)" for c in TOKEN_FIELDS)
    # Grouped by the bucket where the minute is two digits (bucket_of gives a bucket back
    # unchanged), else by the first 16 characters (all bucket_of reads of a time).
    when = "CASE WHEN substr(timestamp, 15, 2) GLOB '[0-9][0-9]' AND length(timestamp) >= 16"
    for time, tools, *values in conn.execute(
        f"""SELECT {when} THEN {_BUCKET_SQL} ELSE substr(timestamp, 1, 16) END, tools,
                   coalesce(sum(cost_nanousd), 0), {token_sums}, coalesce(sum({all_tokens}), 0), count(*),
                   sum(cost_nanousd IS NULL)
            FROM requests {where} coalesce(tools, '') NOT LIKE '%,%' GROUP BY 1, 2""", args
    ):
        delta.add_groups({(bucket_of(time), (), tuple(tool_names(tools))): values})
    delta.write(conn, only=("tool",))
