"""The `spend` rollup: cost, tokens and calls per 15-minute UTC bucket, dimension and
agent CLI, kept in step with `requests` by every write, so budgets and reports sum a few
hundred rows instead of a month of calls. Standard library only.

Every rollup row also names the agent CLI of its calls (`cli`: claude, openclaw, codex):
a view or budget of one CLI adds `cli = ?` to the same query, and one of every CLI sums
across them (a key has rows for each CLI that spent on it; mostly one).
"""

import os
import sqlite3
from bisect import bisect_left

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
    ("machine", "origin_machine"),  # a call a sync brought in (this machine's own have none)
    ("user", "origin_user"),
)
SPEND_MEASURES = ("cost_nanousd", *TOKEN_FIELDS, "tokens", "requests", "unpriced")

# The `price_groups` rollup: what pricing a call at another model's rates needs (`whatif`),
# per 15-minute UTC bucket. A call's prompt band counts the PRICE_BANDS its prompt exceeds
# (the long-context tier boundaries of the bundled price table): any grouping by tiers whose
# boundaries are among them is a grouping by bands. A NULL key column is stored as '' with
# its bit (in PRICE_KEYS order) set in `nulls`: NULLs never conflict in a primary key.
PRICE_BANDS = (100_000, 128_000, 199_999, 200_000, 272_000)
PRICE_KEYS = ("agent", "model", "speed", "inference_geo", "project", "agent_type", "skill")
PRICE_MEASURES = ("requests", *TOKEN_FIELDS, "web_search_requests", "cost_nanousd", "unpriced")
PRICE_DIM = "price"  # SpendDelta.write(only=...) names the price rollup so


def band_sql(prompt: str) -> str:
    """SQL: the count of PRICE_BANDS the prompt size `prompt` (an SQL expression) exceeds
    (NULL when it is NULL)."""
    return " + ".join(f"({prompt} > {int(bound)})" for bound in PRICE_BANDS)


def added(measures) -> str:
    """SQL: the SET list of an upsert that adds the new row's `measures` to the stored row's."""
    return ", ".join(f"{m} = {m} + excluded.{m}" for m in measures)


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
    return (bucket_of(row.get("timestamp")), tuple(columns), tuple(names), row.get("agent") or "")


def _price_attributes(row: dict) -> tuple:
    """(bucket, key columns + band + nulls): the price_groups row a request lands in. Two
    items, where a spend group's attributes have four (SpendDelta keeps both in one dict,
    which ingest workers hand back whole). Written out for speed: an import runs it per call."""
    get = row.get
    keys = (get("agent"), get("model"), get("speed"), get("inference_geo"), get("project"), get("agent_type"), get("skill"))
    nulls = 0
    if None in keys:
        for i, value in enumerate(keys):
            if value is None:
                nulls |= 1 << i
        keys = tuple("" if value is None else value for value in keys)
    inp, w5, w1, read = get("input_tokens"), get("cache_write_5m_tokens"), get("cache_write_1h_tokens"), get("cache_read_tokens")
    band = 0
    if inp is not None and w5 is not None and w1 is not None and read is not None:  # else NULL in SQL: band 0
        prompt = inp + w5 + w1 + read
        if prompt > PRICE_BANDS[0]:
            band = bisect_left(PRICE_BANDS, prompt)
    return (bucket_of(get("timestamp")), (*keys, band, nulls))


def _price_values(row: dict) -> list:
    get = row.get
    cost = get("cost_nanousd")
    return [1, get("input_tokens") or 0, get("output_tokens") or 0, get("cache_write_5m_tokens") or 0,
            get("cache_write_1h_tokens") or 0, get("cache_read_tokens") or 0, get("web_search_requests") or 0,
            cost or 0, int(cost is None)]


MEASURES_N = len(SPEND_MEASURES)


def _expand(attributes: tuple, values: list, only=None):
    """The rollup rows a group of requests lands in. `values`: the group's sums, then (for
    calls that requested several tools) each tool's sum of per-call shares."""
    bucket, columns, tools, cli = attributes
    sums = values[:MEASURES_N]
    for (dim, _), key in zip(SPEND_DIMENSIONS, ("", *columns)):
        if key is not None and (only is None or dim in only):
            yield dim, key, bucket, cli, sums
    if only is None or "tool" in only:
        if len(tools) > 1:
            for index, name in enumerate(tools):
                yield "tool", name, bucket, cli, values[MEASURES_N * (index + 1):MEASURES_N * (index + 2)]
        else:
            yield "tool", tools[0] if tools else NO_TOOL, bucket, cli, sums


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
        self._add(_price_attributes(row), _price_values(row), sign)
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
        rows, price_rows = {}, []
        for attributes, values in self.groups.items():
            if len(attributes) == 2:
                if (only is None or PRICE_DIM in only) and any(values):
                    price_rows.append((attributes[0], *attributes[1], *values))
                continue
            for dim, key, bucket, cli, share in _expand(attributes, values, only):
                current = rows.get((dim, key, bucket, cli))
                if current is None:
                    rows[(dim, key, bucket, cli)] = list(share)
                else:
                    for i, v in enumerate(share):
                        current[i] += v
        measures = ", ".join(SPEND_MEASURES)
        updates = added(SPEND_MEASURES)
        conn.executemany(
            f"""INSERT INTO spend (dim, key, bucket, cli, {measures}) VALUES (?, ?, ?, ?{', ?' * len(SPEND_MEASURES)})
                ON CONFLICT(dim, key, bucket, cli) DO UPDATE SET {updates}""",
            [(*k, *v) for k, v in rows.items() if any(v)],
        )
        if price_rows:
            conn.executemany(_PRICE_UPSERT, price_rows)
        self.groups.clear()


_PRICE_COLUMNS = ("bucket", *PRICE_KEYS, "band", "nulls")
_PRICE_UPSERT = f"""INSERT INTO price_groups ({', '.join(_PRICE_COLUMNS + PRICE_MEASURES)})
    VALUES ({', '.join('?' * (len(_PRICE_COLUMNS) + len(PRICE_MEASURES)))})
    ON CONFLICT({', '.join(_PRICE_COLUMNS)}) DO UPDATE SET {added(PRICE_MEASURES)}"""


# SQL for the same derived values, used by rebuild_spend.
_DIMENSION_SQL = {
    "project_name": "replace(rtrim(project, '/'), rtrim(rtrim(project, '/'), replace(rtrim(project, '/'), '/', '')), '')",
}
_BUCKET_SQL = "coalesce(substr(timestamp, 1, 14) || printf('%02d', CAST(substr(timestamp, 15, 2) AS INTEGER) / 15 * 15), '0000-00-00T00:00')"


def rebuild_spend(conn: sqlite3.Connection) -> None:
    """Recompute the whole rollup from `requests` (migration, repair).

    The steps before m011_agent_cli (m002, m007) call this on the table without its `cli`
    column: nothing to do then, m011 makes the table again and rebuilds it."""
    if "cli" not in {row[1] for row in conn.execute("PRAGMA table_info(spend)")}:
        return
    conn.execute("DELETE FROM spend")
    add_rows(conn)


def add_rows(conn: sqlite3.Connection) -> None:
    """Add the stored calls to the rollup, in SQL: what SpendDelta.add of each would add
    (rebuild_spend; a first import's, summed beside it: add_all)."""
    _from_groups(conn, _add_spend_groups)
    _add_tool_rows(conn)


# The calls summed once by every column a rollup row of either table is keyed by (a few
# calls per group), in temp.call_groups: each dimension's rows of `spend`, and the rows
# of `price_groups`, are summed from those groups (_add_spend_groups, _add_price_groups).
_PROMPT_PARTS = ("input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")
_GROUP_KEYS = tuple(dict.fromkeys(
    ("bucket", "agent", *(c for _, c in SPEND_DIMENSIONS if c is not None and c not in _DIMENSION_SQL), *PRICE_KEYS[1:],
     "band")))
_GROUP_SUMS = ("cost_nanousd", *TOKEN_FIELDS, "web_search_requests")


def _from_groups(conn: sqlite3.Connection, *steps) -> None:
    """Each of `steps(conn)`, summing rollup rows from temp.call_groups: the calls grouped
    once for all of them."""
    _sum_groups(conn)
    try:
        for step in steps:
            step(conn)
    finally:
        conn.execute("DELETE FROM temp.call_groups")


def _sum_groups(conn: sqlite3.Connection) -> None:
    values = {"bucket": _BUCKET_SQL, "band": f"coalesce({band_sql('(' + ' + '.join(_PROMPT_PARTS) + ')')}, 0)"}
    # (a temporary table emptied, never dropped: DROP fails while a statement is open)
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS call_groups ({', '.join(_GROUP_KEYS + _GROUP_SUMS)}, requests, "
                 "unpriced)")
    conn.execute(
        f"""INSERT INTO temp.call_groups
            SELECT {', '.join(values.get(k, k) for k in _GROUP_KEYS)},
                   {', '.join(f'coalesce(sum({c}), 0)' for c in _GROUP_SUMS)}, count(*), sum(cost_nanousd IS NULL)
            FROM requests GROUP BY {', '.join(str(i) for i in range(1, len(_GROUP_KEYS) + 1))}""")


def _add_spend_groups(conn: sqlite3.Connection) -> None:
    measures = ", ".join(SPEND_MEASURES)
    sums = {"tokens": f"sum({' + '.join(TOKEN_FIELDS)})", **{m: f"sum({m})" for m in SPEND_MEASURES if m != "tokens"}}
    updates = added(SPEND_MEASURES)
    for dim, column in SPEND_DIMENSIONS:
        key = "''" if column is None else _DIMENSION_SQL.get(column, column)
        conn.execute(
            f"""INSERT INTO spend (dim, key, bucket, cli, {measures})
                SELECT '{dim}', {key}, bucket, coalesce(agent, ''), {', '.join(sums[m] for m in SPEND_MEASURES)}
                FROM temp.call_groups WHERE {key} IS NOT NULL GROUP BY {key}, bucket, coalesce(agent, '')
                ON CONFLICT(dim, key, bucket, cli) DO UPDATE SET {updates}"""
        )


# Calls whose time and tool list have the forms the writes give them (utc_timestamp, a
# JSON list of names as stored_row writes it, ASCII), summed per tool in SQL: one tool or
# none (_ONE_TOOL), or several (_TOOLS). A list's form is judged once per distinct list
# (_TOOL_FORM, in temp.tool_forms: a few dozen), not once per call.
_USUAL_TIME = "substr(timestamp, 15, 2) GLOB '[0-9][0-9]' AND length(timestamp) >= 16"
_ONE_TOOL = "tools NOT LIKE '%,%' AND (tools = '[]' OR (tools GLOB '[[]\"*\"]' AND json_valid(tools)))"
_VALID_TOOLS = "CASE WHEN json_valid(tools) THEN tools ELSE '[]' END"  # (json_each raises on malformed JSON)
_TOOLS = (f"tools LIKE '%,%' AND json_valid(tools) AND json_type({_VALID_TOOLS}) = 'array' "
          f"AND NOT EXISTS (SELECT 1 FROM json_each({_VALID_TOOLS}) WHERE type != 'text')")
_TOOL_FORM = f"CASE WHEN tools LIKE '%\\u%' THEN NULL WHEN {_ONE_TOOL} THEN 1 WHEN {_TOOLS} THEN 2 END"


def _add_tool_rows(conn: sqlite3.Connection) -> None:
    """The tool rows of the rollup, by the split rule the hook uses (split_share). In SQL
    for calls of the usual forms: a call with one tool or none counts whole under it, so
    those are summed by bucket, agent CLI and tool list first; a call with several gets
    each tool's share of each measure (usage.tool_share: value // parts, one more for the
    first value % parts). Any other call goes through SpendDelta, the hook's own code."""
    value = {"cost_nanousd": "coalesce(cost_nanousd, 0)", **{c: f"coalesce({c}, 0)" for c in TOKEN_FIELDS},
             "tokens": " + ".join(f"coalesce({c}, 0)" for c in TOKEN_FIELDS)}
    shared = SPEND_MEASURES[:-2]  # (split; the last two, requests and unpriced, are counts)
    share = ", ".join(f"({value[m]}) / json_array_length(tools) + (j.key < ({value[m]}) % json_array_length(tools))"
                      for m in shared)
    measures = ", ".join(SPEND_MEASURES)
    updates = added(SPEND_MEASURES)
    # (a temporary table emptied, never dropped: DROP fails while a statement is open)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS tool_forms (list TEXT PRIMARY KEY, form INTEGER)")
    conn.execute(f"INSERT INTO temp.tool_forms SELECT tools, {_TOOL_FORM} FROM (SELECT DISTINCT tools FROM requests "
                 "WHERE tools IS NOT NULL)")
    of_form = "JOIN temp.tool_forms ON list = tools WHERE form = ? AND " + _USUAL_TIME
    try:
        conn.execute(
            f"""INSERT INTO spend (dim, key, bucket, cli, {measures})
                SELECT 'tool', name, bucket, cli, {', '.join(f'sum({m})' for m in SPEND_MEASURES)} FROM (
                    SELECT CASE WHEN tools = '[]' THEN ? ELSE json_extract(tools, '$[0]') END AS name, bucket, cli, {measures}
                    FROM (SELECT {_BUCKET_SQL} AS bucket, coalesce(agent, '') AS cli, tools,
                                 {', '.join(f'sum({value[m]}) AS {m}' for m in shared)}, count(*) AS requests,
                                 sum(cost_nanousd IS NULL) AS unpriced
                          FROM requests {of_form} GROUP BY 1, 2, 3)
                    UNION ALL
                    SELECT j.value, {_BUCKET_SQL}, coalesce(agent, ''), {share}, 1, cost_nanousd IS NULL
                    FROM requests, json_each({_VALID_TOOLS}) j {of_form})
                GROUP BY name, bucket, cli
                ON CONFLICT(dim, key, bucket, cli) DO UPDATE SET {updates}""", (NO_TOOL, 1, 2))
        delta = SpendDelta()
        names = ("cost_nanousd", "timestamp", "tools", "agent", *TOKEN_FIELDS)
        for row in conn.execute(f"SELECT {', '.join(names)} FROM requests LEFT JOIN temp.tool_forms ON list = tools "
                                f"WHERE NOT coalesce(form IS NOT NULL AND {_USUAL_TIME}, 0)"):
            delta.add(dict(zip(names, row)), +1)
        delta.write(conn, only=("tool",))
    finally:
        conn.execute("DELETE FROM temp.tool_forms")


ROLLUPS = ("spend", "price_groups")


def add_all(conn: sqlite3.Connection) -> None:
    """The stored calls into both rollups, spend and price_groups: add_rows and
    add_prices, from one grouping of the calls."""
    _from_groups(conn, _add_spend_groups, _add_price_groups)
    _add_tool_rows(conn)


def copy_attached(conn: sqlite3.Connection, schema: str) -> None:
    """Copy the rollups of the attached database `schema` (summed there by add_all) into
    this one's, which are empty (a row of both is an IntegrityError): SQLite copies the
    b-trees as they are, in about half the time of an upsert row by row."""
    for table in ROLLUPS:
        conn.execute(f"INSERT INTO main.{table} SELECT * FROM {schema}.{table}")


def rebuild_prices(conn: sqlite3.Connection) -> None:
    """Recompute the whole price_groups rollup from `requests` (migration, repair)."""
    conn.execute("DELETE FROM price_groups")
    add_prices(conn)


def add_prices(conn: sqlite3.Connection) -> None:
    """Add the stored calls to price_groups, in SQL: what SpendDelta.add of each would add
    there (rebuild_prices, add_all)."""
    _from_groups(conn, _add_price_groups)


def _add_price_groups(conn: sqlite3.Connection) -> None:
    nulls = " | ".join(f"(({column} IS NULL) << {i})" for i, column in enumerate(PRICE_KEYS))
    keys = ", ".join(f"coalesce({column}, '')" for column in PRICE_KEYS)
    sums = {"requests": "sum(requests)", "unpriced": "sum(unpriced)", **{c: f"sum({c})" for c in _GROUP_SUMS}}
    conn.execute(
        f"""INSERT INTO price_groups ({', '.join(_PRICE_COLUMNS + PRICE_MEASURES)})
            SELECT bucket, {keys}, band, {nulls}, {', '.join(sums[m] for m in PRICE_MEASURES)}
            FROM temp.call_groups GROUP BY {', '.join(str(i) for i in range(1, len(_PRICE_COLUMNS) + 1))} HAVING 1
            ON CONFLICT({', '.join(_PRICE_COLUMNS)}) DO UPDATE SET {added(PRICE_MEASURES)}"""
    )
