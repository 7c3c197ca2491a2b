"""The team ledger's local side: the link's state, the outbox of rows the server does not
have yet, and the team's spend as last pulled (docs/team.md). Standard library only: a
budget check reads `team_spend` and the outbox without the network.

The outbox is filled by triggers (migrations.m008_team) once `enable` has run, so every
writer — hooks, import, reprice, a sync folder — is covered without knowing about teams.
"""

import sqlite3

from costhook.store.db import transaction
from costhook.store.rollup import SPEND_MEASURES
from costhook.timeframe import now_iso
from costhook.usage import TOKEN_FIELDS

# What is pushed, per local table: (outbox name, key column).
TABLES = (("requests", "key"), ("sessions", "session_id"), ("tool_calls", "tool_use_id"), ("cron_runs", "run_id"))
TEAM_WINDOW_DAYS = 40  # team_spend covers at least the longest budget period (a month) and its projection
BASE_MEASURES = ("cost_nanousd", *TOKEN_FIELDS)


def link(conn: sqlite3.Connection) -> dict:
    """The link's state (team_link's one row) and the rows waiting, per table."""
    row = conn.execute("SELECT * FROM team_link WHERE id = 1").fetchone()
    state = dict(row) if row else {"enabled": 0}
    state["waiting"] = {tbl: n for tbl, n in conn.execute("SELECT tbl, count(*) FROM team_outbox GROUP BY tbl")}
    return state


def enable(conn: sqlite3.Connection, server: str, user: str, machine: str) -> bool:
    """Start recording changes for `server` as `user` on `machine`. The first time — or when
    any of the three changed — every local row is queued (the server has none of them)
    and the pulled spend is dropped. Returns whether it (re)seeded."""
    with transaction(conn):
        state = dict(conn.execute("SELECT * FROM team_link WHERE id = 1").fetchone())
        if state["enabled"] and (state["server"], state["team_user"], state["machine"]) == (server, user, machine):
            return False
        conn.execute("DELETE FROM team_outbox")
        conn.execute("DELETE FROM team_spend")
        for table, key in TABLES:
            conn.execute(f"INSERT INTO team_outbox (tbl, key) SELECT '{table}', {key} FROM {table} WHERE {key} IS NOT NULL")
        conn.execute("""UPDATE team_link SET enabled = 1, server = ?, team_user = ?, machine = ?, pull_rev = 0,
                        pull_since = NULL, last_push = NULL, last_pull = NULL WHERE id = 1""", (server, user, machine))
        return True


def outbox_batch(conn: sqlite3.Connection, table: str, after_id: int, limit: int, columns: list,
                 text: tuple = ()) -> list:
    """Up to `limit` queued rows of `table` after outbox id `after_id`, in id order:
    (outbox id, gen, key, row as a tuple of `columns` — None when the row is gone here).
    The `text` columns come without NUL characters (PostgreSQL's text holds none)."""
    key = dict(TABLES)[table]
    picked = ", ".join(f"t.{c}" for c in columns)
    # SQLite finds a NUL (instr) but its replace() stops at one: flagged rows are cleaned here
    nul = " OR ".join(f"instr(t.{c}, char(0)) > 0" for c in text) or "0"
    sql = f"""SELECT o.id, o.gen, o.key, t.{key} IS NOT NULL, {nul}, {picked} FROM team_outbox o
              LEFT JOIN {table} t ON t.{key} = o.key
              WHERE o.tbl = ? AND o.id > ? ORDER BY o.id LIMIT ?"""
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: a batch is 50,000 rows
    return [(r[0], r[1], r[2], (_without_nul(r[5:]) if r[4] else r[5:]) if r[3] else None)
            for r in cursor.execute(sql, (table, after_id, limit))]


NULL_TEXT = "'\\N'"  # COPY's text format for NULL, as SQL


def outbox_lines(conn: sqlite3.Connection, after_id: int, limit: int, fields: list, nullable: list, base: list,
                 ok: str, params: dict) -> list:
    """Like outbox_batch for `requests`, but a row comes as one line of PostgreSQL's COPY
    text format built by SQLite, without Python per column: (outbox id, gen, key, present,
    line, NULL fields in it, *base). `fields`: SQL expressions over `t` (the requests row)
    giving text or NULL, one per COPY column; `nullable`: SQL conditions, one per field that
    can be NULL, true when it is (cheaper than the field itself); `base`: SQL expressions of the numbers the
    outbox keeps; `ok`: an SQL condition the row must meet to be sent as built (else its
    line is NULL); `params`: their named parameters. The text is not escaped: the caller
    checks the lines (copy_lines_clean) and formats those that need it itself."""
    # printf, not ||: one pass over the columns, not a longer string copied at each
    line = f"printf('{chr(9).join(['%s'] * len(fields))}' || char(10), {', '.join(f'coalesce({f}, {NULL_TEXT})' for f in fields)})"
    nulls = " + ".join(f"({n})" for n in nullable) or "0"
    sql = f"""SELECT o.id, o.gen, o.key, t.key IS NOT NULL, CASE WHEN t.key IS NOT NULL AND ({ok}) THEN {line} END, {nulls},
                     {', '.join(base)}
              FROM team_outbox o LEFT JOIN requests t ON t.key = o.key
              WHERE o.tbl = 'requests' AND o.id > :after ORDER BY o.id LIMIT :limit"""
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: a batch is 50,000 rows
    return cursor.execute(sql, {**params, "after": after_id, "limit": limit}).fetchall()


def requests_rows(conn: sqlite3.Connection, keys: list, columns: list, text: tuple = ()) -> dict:
    """{key: row as a tuple of `columns`} of these calls, the `text` columns without NUL."""
    picked = ", ".join(f"t.{c}" for c in columns)
    nul = " OR ".join(f"instr(t.{c}, char(0)) > 0" for c in text) or "0"
    found = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        sql = f"SELECT t.key, {nul}, {picked} FROM requests t WHERE t.key IN ({', '.join('?' * len(chunk))})"
        for r in conn.execute(sql, chunk):
            found[r[0]] = _without_nul(tuple(r[2:])) if r[1] else tuple(r[2:])
    return found


def _without_nul(row: tuple) -> tuple:
    return tuple(v.replace("\x00", "") if isinstance(v, str) else v for v in row)


def apply_pull(conn: sqlite3.Connection, rows: list, *, rev: int, since: str, sent: list, pushed: bool) -> None:
    """One transaction: the pulled team_spend rows (absolute values, replacing ours), the
    buckets before `since` dropped, and the outbox rows the server now has cleared.

    `sent`: (outbox id, gen, base values) of rows pushed since the last pull; a row changed
    again meanwhile (its gen moved on) stays queued, its base now what was sent. Clearing
    only together with the pull that counts them keeps `team_spend + outbox` whole."""
    measures = ", ".join(SPEND_MEASURES)
    updates = ", ".join(f"{m} = excluded.{m}" for m in SPEND_MEASURES)
    rows.sort()  # the primary key's order: each row lands next to the last one
    with transaction(conn):
        conn.executemany(
            f"""INSERT INTO team_spend (dim, key, bucket, {measures}) VALUES (?, ?, ?{', ?' * len(SPEND_MEASURES)})
                ON CONFLICT (dim, key, bucket) DO UPDATE SET {updates}""", rows)
        before = conn.execute("SELECT pull_since FROM team_link WHERE id = 1").fetchone()[0]
        if before is None or before[:10] != since[:10]:  # the window moved on a day: drop what left it
            conn.execute("DELETE FROM team_spend WHERE bucket < ?", (since,))
        conn.executemany("DELETE FROM team_outbox WHERE id = ? AND gen = ?", [(i, g) for i, g, _ in sent])
        if sent:  # the rows changed again meanwhile are what is left of those sent: few
            left = {i for i, in conn.execute("SELECT id FROM team_outbox WHERE id BETWEEN ? AND ?",
                                             (min(i for i, _, _ in sent), max(i for i, _, _ in sent)))}
            sets = ", ".join(f"base_{m} = ?" for m in ("requests", *BASE_MEASURES))
            conn.executemany(f"UPDATE team_outbox SET {sets} WHERE id = ?",
                             [(*base, i) for i, _, base in sent if base is not None and i in left])
        stamp = now_iso()
        conn.execute(f"""UPDATE team_link SET pull_rev = max(pull_rev, ?), pull_since = ?, last_pull = ?,
                         last_error = NULL{', last_push = ?' if pushed else ''} WHERE id = 1""",
                     (rev, since, stamp, stamp) if pushed else (rev, since, stamp))


def note_server(conn: sqlite3.Connection, version: int) -> None:
    with transaction(conn):
        conn.execute("UPDATE team_link SET schema_version = ? WHERE id = 1", (version,))


def note_error(conn: sqlite3.Connection, message: str) -> None:
    """The last failure, one line (never a password: messages come from libpq and us)."""
    with transaction(conn):
        conn.execute("UPDATE team_link SET last_error = ?, last_error_at = ? WHERE id = 1", (message[:500], now_iso()))


def unpushed_nanousd(conn: sqlite3.Connection, since: str, column: str | None = None, value=None) -> int:
    """What this machine's calls at or after `since` (UTC ISO) add beyond what the team
    totals of the last pull already count: new calls whole, grown calls their growth.
    `column`/`value` narrow to one dimension of `requests` (model, agent_type, skill, cron_job)."""
    where, args = "o.tbl = 'requests' AND r.timestamp >= ?", [since]
    if column is not None:
        if column not in ("model", "agent_type", "skill", "cron_job", "session_id"):
            raise ValueError(f"not a dimension of requests: {column!r}")
        where += f" AND r.{column} = ?"
        args.append(value)
    sql = f"""SELECT coalesce(sum(coalesce(r.cost_nanousd, 0) - o.base_cost_nanousd), 0)
              FROM team_outbox o JOIN requests r ON r.key = o.key WHERE {where}"""
    return conn.execute(sql, args).fetchone()[0]


def team_nanousd(conn: sqlite3.Connection, dim: str, key: str, since_bucket: str) -> int:
    """The team's spend in `dim`/`key` (`global`/'', `model`/an id, `user`/a name,
    `machine`/a name, …) from the 15-minute bucket `since_bucket` on, as last pulled."""
    sql = "SELECT coalesce(sum(cost_nanousd), 0) FROM team_spend WHERE dim = ? AND key = ? AND bucket >= ?"
    return conn.execute(sql, (dim, key, since_bucket)).fetchone()[0]



def scratch_spend(rows: list) -> sqlite3.Connection:
    """An empty database in memory whose `spend` rollup holds `rows` (the team's, from the
    server): the local views then answer for the whole team, by the same code."""
    from costhook.store import db

    conn = db.empty()
    measures = ", ".join(SPEND_MEASURES)
    with transaction(conn):
        conn.executemany(f"INSERT INTO spend (dim, key, bucket, {measures}) VALUES (?, ?, ?{', ?' * len(SPEND_MEASURES)})",
                         rows)
    return conn


def copy_dimension(conn: sqlite3.Connection, source: str, target: str) -> None:
    """In a scratch database (scratch_spend): the `source` dimension's rows also as `target`'s."""
    measures = ", ".join(SPEND_MEASURES)
    with transaction(conn):
        conn.execute(f"INSERT OR REPLACE INTO spend (dim, key, bucket, {measures}) "
                     f"SELECT ?, key, bucket, {measures} FROM spend WHERE dim = ?", (target, source))
