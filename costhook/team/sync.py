"""`costhook sync`: push every local row the server does not have (or has smaller), then
pull the team's spend that budgets need. docs/team.md tells the whole contract.

Push, per batch of outbox rows, in one server transaction: COPY into a temporary staging
table; one INSERT … ON CONFLICT DO UPDATE that merges as `usage.merge_call` does (the
sighting with the most tokens wins the usage, the earliest time is the call's, tool
names accumulate) and keeps the first machine as the call's origin; and the rollup
`costhook.spend` moved by exactly new − old of the rows touched. A batch is all or
nothing: a sync killed mid-push leaves the server as it was before that batch, and the
outbox still holding it (pushing it again changes nothing it already has).

Pull: the rollup rows changed since the last pull (`rev`), for the last TEAM_WINDOW_DAYS,
into the local `team_spend`, in the same local transaction that clears the outbox rows
the server now counts.
"""

import datetime
import fcntl
import os
import threading
import time

from costhook import paths
from costhook.errors import TeamError
from costhook.store import team as local
from costhook.team import link, server
from costhook.timeframe import bucket as bucket_text
from costhook.usage import NO_TOOL, TOKEN_FIELDS

BATCH = 50_000

# Local columns read per table, and the server columns they become (same order).
CALL_COLUMNS = ["key", "agent", "origin_user", "origin_machine", "session_id", "parent_session_id", "agent_id",
                "agent_type", "project", "git_branch", "timestamp", "model", *TOKEN_FIELDS, "web_search_requests",
                "cost_nanousd", "cost_source", "tools", "skill", "cron_job", "is_heartbeat"]
SERVER_CALL_COLUMNS = [("ts" if c == "timestamp" else c) for c in CALL_COLUMNS]
CALL_TYPES = {"ts": "timestamptz", "tools": "jsonb", "is_heartbeat": "smallint",
              **{c: "bigint" for c in (*TOKEN_FIELDS, "web_search_requests", "cost_nanousd")}}
NUMERIC = {*TOKEN_FIELDS, "web_search_requests", "cost_nanousd", "reported_cost_nanousd", "is_heartbeat", "success",
           "duration_ms", "input_bytes", "output_bytes"}  # the rest is text, read without NUL characters
OTHER_TABLES = {  # table: (local columns, key first; the server's type of each that is not text)
    "sessions": (["session_id", "agent", "project", "git_branch", "started_at", "ended_at", "end_reason",
                  "parent_session_id", "source", "entrypoint", "model", "reported_cost_nanousd"],
                 {"started_at": "timestamptz", "ended_at": "timestamptz", "reported_cost_nanousd": "bigint"}),
    "tool_calls": (["tool_use_id", "agent", "session_id", "agent_id", "tool_name", "mcp_server", "timestamp", "success",
                    "duration_ms", "input_bytes", "output_bytes"],
                   {"timestamp": "timestamptz", "success": "smallint", "duration_ms": "bigint", "input_bytes": "bigint",
                    "output_bytes": "bigint"}),
    "cron_runs": (["run_id", "agent", "job_id", "job_name", "session_id", "status", "started_at", "duration_ms",
                   "model", "reported_cost_nanousd", "is_heartbeat"],
                  {"started_at": "timestamptz", "duration_ms": "bigint", "reported_cost_nanousd": "bigint",
                   "is_heartbeat": "smallint"}),
}


def _server_name(column: str) -> str:
    return "ts" if column == "timestamp" else column


class Sync:
    """One sync run against one server: `run()` pushes and pulls, and returns a summary."""

    def __init__(self, conn, settings: dict, *, progress=None):
        self.conn, self.settings = conn, settings
        self.progress = progress or (lambda text: None)
        self.name_project = link.project_namer(settings["project_name"])
        self.me = (settings["user"], settings["machine"])
        self.pg = None
        self.counts = {"new": 0, "updated": 0, "sessions": 0, "tool_calls": 0, "cron_runs": 0}
        self.sent = []
        self.pushed = False

    # -------------------------------------------------------------- run ----
    def open(self, migrate: bool = True) -> int:
        self.pg = link.connect(self.settings["url"])
        try:
            return server.migrate(self.pg) if migrate else server.version(self.pg)
        except server.NewerSchema as exc:
            raise TeamError(str(exc)) from None

    def run(self) -> dict:
        """Push all, pull; returns the counts pushed: {"new", "updated", "sessions", "tool_calls", "cron_runs"}."""
        version = self.open()
        try:
            local.note_server(self.conn, version)
            local.enable(self.conn, link.shown(self.settings["url"]), *self.me)
            self.push_table("requests")
            for table in OTHER_TABLES:
                self.push_table(table)
            self.pull()
            self.note_machine()
        finally:
            self.pg.close()
        return self.counts

    def push_table(self, table: str) -> None:
        """Push the outbox of `table` batch by batch. The next batch is read from SQLite
        (and its rows made ready) while the server works on this one: on two cores the
        client and the server then run side by side."""
        columns = CALL_COLUMNS if table == "requests" else OTHER_TABLES[table][0]
        total = local.link(self.conn)["waiting"].get(table, 0)
        done = 0
        batch = self.read_batch(table, 0, columns)
        while batch:
            after = batch[-1][0]
            ahead = {}

            def read_ahead(after=after, ahead=ahead):
                try:
                    ahead["batch"] = self.read_batch(table, after, columns)
                except Exception as exc:  # raised again below, in this thread
                    ahead["error"] = exc

            present = [(i, g, row) for i, g, _, row in batch if row is not None]
            gone = [(i, g, key) for i, g, key, row in batch if row is None]
            if table == "requests":
                self.push_calls(present, [key for _, _, key in gone], meanwhile=read_ahead)
                self.sent += [(i, g, row[1]) for i, g, row in present]
            else:
                self.push_rows(table, present)  # a session or tool call gone here stays on the server
                self.sent += [(i, g, None) for i, g, _ in present]
                read_ahead()
            self.sent += [(i, g, None) for i, g, _ in gone]
            self.pushed = True
            done += len(batch)
            self.progress(f"pushed {done:,} of {total:,} {table.replace('_', ' ')}")
            self.pull()  # after each batch: a kill loses at most one batch of bookkeeping
            if "error" in ahead:
                raise ahead["error"]
            batch = ahead["batch"]

    def read_batch(self, table: str, after: int, columns: list) -> list:
        """The next outbox batch. A call's row comes as (COPY line or staging row, base):
        SQLite builds the line (calls_batch), Python only the rows it cannot."""
        if table == "requests":
            return self.calls_batch(after)
        text = [c for c in columns if c not in NUMERIC]
        return local.outbox_batch(self.conn, table, after, BATCH, columns, text=text)

    def calls_batch(self, after: int) -> list:
        """Up to BATCH queued calls: (outbox id, gen, key, (line, base) or None when gone
        here); `line` is COPY text, or the staging row for write_row when SQLite's line
        would need escaping or a time needs checking (rare: done here, in Python)."""
        self.conn.create_function("costhook_team_project", 1, self.name_project, deterministic=True)
        user, machine = self.me
        found = local.outbox_lines(self.conn, after, BATCH, CALL_FIELDS, CALL_NULLABLE, CALL_BASE, CALL_OK,
                                   {"user": user, "machine": machine})
        if not _clean([r[4] for r in found if r[4] is not None], sum(r[5] for r in found if r[4] is not None)):
            found = [r if r[4] is None or _clean([r[4]], r[5]) else (*r[:4], None, *r[5:]) for r in found]
        batch = [(r[0], r[1], r[2], (r[4], (1, *r[6:])) if r[3] else None) for r in found]
        odd = [r[2] for r in found if r[3] and r[4] is None]
        if odd:
            text = [c for c in CALL_COLUMNS if c not in NUMERIC]
            rows = local.requests_rows(self.conn, odd, CALL_COLUMNS, text=text)
            batch = [(i, g, key, (self.copy_row(rows[key]), row[1]) if row is not None and row[0] is None else row)
                     for i, g, key, row in batch]
        return batch

    # ------------------------------------------------------------- calls ----
    def copy_row(self, row: tuple) -> list:
        """A local call row as the server's staging table takes it."""
        user, machine = self.me
        row = list(row)
        for i in _COUNTS:
            row[i] = row[i] or 0  # a kind the agent did not report: none
        row[2] = row[2] or user
        row[3] = row[3] or machine
        row[_PROJECT_AT] = self.name_project(row[_PROJECT_AT])
        row[_TS_AT] = _timestamp(row[_TS_AT])
        if not row[_TOOLS_AT]:
            row[_TOOLS_AT] = "[]"
        return row

    def push_calls(self, rows: list, gone: list, meanwhile=lambda: None) -> None:
        """One batch in one server transaction; `meanwhile()` runs in a thread while the
        server merges (it must not touch the server connection)."""
        if not rows and not gone:
            meanwhile()
            return
        pg = self.pg
        cols = ", ".join(SERVER_CALL_COLUMNS)
        with pg.transaction():
            pg.execute("SET LOCAL work_mem = '256MB'")  # the batch's rollup sums in memory, not in temp files
            # The batch's old rows are found by key, one index lookup per call: unanalysed,
            # the staging table would be hash-joined with the whole of `calls`, a scan that
            # grows with the team's history (0.35 s of a batch at 450,000 calls)
            pg.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            types = ", ".join(f"{c} {CALL_TYPES.get(c, 'text')}" for c in SERVER_CALL_COLUMNS)
            pg.execute(f"CREATE TEMP TABLE stage_calls ({types}) ON COMMIT DROP")
            with pg.cursor().copy(f"COPY stage_calls ({cols}) FROM STDIN") as copy:
                copy.write("".join([row[0] for _, _, row in rows if isinstance(row[0], str)]))
                for _, _, row in rows:
                    if not isinstance(row[0], str):
                        copy.write_row(row[0])
            # Staged before the lock: while one machine stages its batch, another's merges
            pg.execute("SELECT pg_advisory_xact_lock(%s)", (server.LOCK_ID,))
            rev = pg.execute("SELECT nextval('costhook.spend_rev')").fetchone()[0]
            pg.execute(f"CREATE TEMP TABLE old_calls ON COMMIT DROP AS "
                       f"SELECT {ROLLUP_INPUT} FROM costhook.calls c JOIN stage_calls s USING (key)")
            helper = threading.Thread(target=meanwhile)
            helper.start()
            try:
                pg.execute(UPSERT_CALLS, {"rev": rev})
            finally:
                helper.join()
            existing, changed = pg.execute(COUNT_CHANGED).fetchone()
            if gone:
                pg.execute(DELETE_CALLS, {"rev": rev, "keys": gone})
        self.counts["new"] += len(rows) - existing
        self.counts["updated"] += changed

    # ------------------------------------------------------ other tables ----
    def push_rows(self, table: str, rows: list) -> None:
        if not rows:
            return
        columns, types = OTHER_TABLES[table]
        names = [_server_name(c) for c in columns]
        key = names[0]
        stamp_at = [i for i, c in enumerate(columns) if types.get(c) == "timestamptz"]
        project_at = columns.index("project") if "project" in columns else None
        user, machine = self.me
        pg = self.pg
        with pg.transaction():
            decl = ", ".join(f"{n} {types.get(c, 'text')}" for n, c in zip(names, columns))
            pg.execute(f"CREATE TEMP TABLE stage_rows ({decl}) ON COMMIT DROP")
            with pg.cursor().copy(f"COPY stage_rows ({', '.join(names)}) FROM STDIN") as copy:
                for _, _, row in rows:
                    row = list(row)
                    for i in stamp_at:
                        row[i] = _timestamp(row[i])
                    if project_at is not None:
                        row[project_at] = self.name_project(row[project_at])
                    copy.write_row(row)
            updates = ", ".join(f"{n} = coalesce(excluded.{n}, t.{n})" for n in names[1:])
            pg.execute(f"""INSERT INTO costhook.{table} AS t ({', '.join(names)}, origin_user, origin_machine)
                           SELECT {', '.join(names)}, %s, %s FROM stage_rows
                           ON CONFLICT ({key}) DO UPDATE SET {updates}""", (user, machine))
        self.counts[table] += len(rows)

    # -------------------------------------------------------------- pull ----
    def pull(self) -> None:
        state = local.link(self.conn)
        now = datetime.datetime.now(datetime.UTC)
        since = bucket_text(now - datetime.timedelta(days=local.TEAM_WINDOW_DAYS))
        rev = state.get("pull_rev") or 0
        if state.get("pull_since") is None:
            rev = 0  # first pull: the whole window
        rows, top = pull_rows(self.pg, rev, since)
        local.apply_pull(self.conn, rows, rev=max(top, rev), since=since, sent=self.sent, pushed=self.pushed)
        self.sent, self.pushed = [], False

    def note_machine(self) -> None:
        """This machine's last push and pull; and the pull log's old revisions pruned."""
        from costhook.store.db import SCHEMA_VERSION

        self.pg.execute(server.PRUNE_REVS)
        self.pg.execute("""INSERT INTO costhook.machines ("user", machine, last_push, last_pull, client_schema)
                           VALUES (%s, %s, now(), now(), %s)
                           ON CONFLICT ("user", machine) DO UPDATE SET last_push = now(), last_pull = now(),
                               client_schema = excluded.client_schema""", (*self.me, SCHEMA_VERSION))


def pull_rows(pg, rev: int, since: str) -> tuple[list, int]:
    """The rollup rows of the buckets that pushes after revision `rev` changed (all of
    them when `rev` is 0, or older than what the log still holds), from the bucket `since`
    on, as local team_spend rows; and the highest revision seen. One snapshot: the rows
    and the revision agree."""
    measures = ", ".join(server.MEASURES)
    picked = f"""SELECT dim, key, to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'), {measures}
                 FROM costhook.spend WHERE bucket >= %(since)s::timestamptz"""
    args = {"rev": rev, "since": since + "Z"}
    with pg.transaction():
        pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        pruned = pg.execute("SELECT upto FROM costhook.spend_revs_pruned").fetchone()[0]
        if rev < pruned:  # the log no longer holds every push since: the whole window again
            args["rev"] = rev = 0
        top = pg.execute("SELECT max(rev) FROM costhook.spend_revs WHERE rev > %(rev)s", args).fetchone()[0]
        if top is None:
            if rev or not pruned:
                return [], rev
            top = pruned  # the whole log pruned, the rollup still there
        if rev:  # the buckets changed since (found by the log), and in them the rows changed since
            picked += """ AND bucket = ANY(ARRAY(SELECT DISTINCT b FROM costhook.spend_revs r, unnest(r.buckets) b
                                                WHERE r.rev > %(rev)s AND b >= %(since)s::timestamptz))
                          AND rev > %(rev)s"""
        return pg.execute(picked, args).fetchall(), top


_COUNTS = [CALL_COLUMNS.index(c) for c in (*TOKEN_FIELDS, "web_search_requests")]
_PROJECT_AT, _TS_AT, _TOOLS_AT = (CALL_COLUMNS.index(c) for c in ("project", "timestamp", "tools"))


def _field(column: str) -> str:
    """The SQL (over the local row `t`) of a call column as its COPY text, as copy_row makes it."""
    if column in (*TOKEN_FIELDS, "web_search_requests"):
        return f"CAST(coalesce(t.{column}, 0) AS INTEGER)"
    if column in ("cost_nanousd", "is_heartbeat"):
        return f"CAST(t.{column} AS INTEGER)"
    if column in ("origin_user", "origin_machine"):
        return f"coalesce(nullif(t.{column}, ''), :{column.removeprefix('origin_')})"
    if column == "project":
        return "costhook_team_project(t.project)"
    if column == "tools":
        return "coalesce(nullif(t.tools, ''), '[]')"
    return f"t.{column}"


CALL_FIELDS = [_field(c) for c in CALL_COLUMNS]
CALL_NULLABLE = [f"t.{c} IS NULL" for c, f in zip(CALL_COLUMNS, CALL_FIELDS) if not f.startswith(("coalesce(", "CAST(coalesce("))]
CALL_BASE = [_field(c).replace("CAST(t.cost_nanousd", "CAST(coalesce(t.cost_nanousd, 0)") for c in ("cost_nanousd", *TOKEN_FIELDS)]
_DIGITS = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
# The times SQLite can vouch for (a real date and time of day, in UTC, as agents write
# them); any other goes through _timestamp.
CALL_OK = (f"t.timestamp IS NULL OR (typeof(t.timestamp) = 'text' AND (t.timestamp GLOB '{_DIGITS}Z' "
           f"OR t.timestamp GLOB '{_DIGITS}.[0-9][0-9][0-9]Z' OR t.timestamp GLOB '{_DIGITS}.[0-9][0-9][0-9][0-9][0-9][0-9]Z') "
           "AND t.timestamp >= '0001' AND date(t.timestamp) = substr(t.timestamp, 1, 10) "
           "AND time(t.timestamp) = substr(t.timestamp, 12, 8))")
# SQLite's printf stops at a NUL character: a text holding one goes through Python too
CALL_OK = (f"({CALL_OK}) AND NOT coalesce("
           + " OR ".join(f"instr(t.{c}, char(0))" for c in CALL_COLUMNS if c not in NUMERIC) + ", 0)")


def _clean(lines: list, nulls: int) -> bool:
    """Whether these COPY lines need no escaping: their only tabs, newlines and backslashes
    are the separators, ends and NULL markers SQLite put there (nothing in the values)."""
    data = "".join(lines)
    return (data.count("\t") == (len(CALL_COLUMNS) - 1) * len(lines) and data.count("\n") == len(lines)
            and data.count("\\") == nulls and "\r" not in data and "\x00" not in data)


def _timestamp(value):
    """An ISO 8601 time the server accepts, else None (a garbled one must not fail the batch)."""
    if not value or not isinstance(value, str):
        return None
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return value


_TOTAL_NEW = "(" + " + ".join(f"excluded.{t}" for t in TOKEN_FIELDS) + ")"
_TOTAL_OLD = "(" + " + ".join(f"c.{t}" for t in TOKEN_FIELDS) + ")"
_OWN = "(excluded.origin_user = c.origin_user AND excluded.origin_machine = c.origin_machine)"
_ATTRIBUTION = ("agent", "session_id", "parent_session_id", "agent_id", "agent_type", "project", "git_branch",
                "model", "skill", "cron_job", "is_heartbeat")
_BUCKET = "coalesce(to_timestamp(floor(extract(epoch FROM {0}) / 900) * 900), '-infinity')"
_SHARE = "({v} / x.n + CASE WHEN x.idx - 1 < {v} %% x.n THEN 1 ELSE 0 END)"
# What the rollup needs of a call (the delta of a push: new rows minus old rows)
ROLLUP_INPUT = ", ".join(f"c.{c}" for c in ("key", "bucket", "origin_user", "origin_machine", "project", "model", "agent_type",
                                             "skill", "cron_job", "tools", "cost_nanousd", *TOKEN_FIELDS))
_VALUES = ["coalesce(x.cost_nanousd, 0)", *(f"x.{t}" for t in TOKEN_FIELDS), "(" + " + ".join(f"x.{t}" for t in TOKEN_FIELDS) + ")"]

UPSERT_HEAD = f"""
WITH up AS (
    INSERT INTO costhook.calls AS c ({", ".join(SERVER_CALL_COLUMNS)}, bucket)
    SELECT {", ".join(SERVER_CALL_COLUMNS)}, {_BUCKET.format("ts")} FROM stage_calls
    ON CONFLICT (key) DO UPDATE SET
        {", ".join(f"{t} = CASE WHEN {_TOTAL_NEW} > {_TOTAL_OLD} THEN excluded.{t} ELSE c.{t} END"
                   for t in (*TOKEN_FIELDS, "web_search_requests"))},
        {", ".join(f"{m} = CASE WHEN {_TOTAL_NEW} >= {_TOTAL_OLD} THEN excluded.{m} ELSE c.{m} END"
                   for m in ("cost_nanousd", "cost_source"))},
        ts = least(c.ts, excluded.ts),
        bucket = {_BUCKET.format("least(c.ts, excluded.ts)")},
        tools = CASE WHEN c.tools @> excluded.tools THEN c.tools ELSE c.tools || coalesce(
            (SELECT jsonb_agg(e.t ORDER BY e.i) FROM jsonb_array_elements(excluded.tools) WITH ORDINALITY e(t, i)
             WHERE NOT c.tools @> jsonb_build_array(e.t)), '[]') END,
        {", ".join(f"{a} = CASE WHEN {_OWN} THEN coalesce(excluded.{a}, c.{a}) ELSE coalesce(c.{a}, excluded.{a}) END"
                   for a in _ATTRIBUTION)},
        updated_at = now()
    RETURNING {ROLLUP_INPUT}
), delta AS (
    SELECT 1 AS sign, u.* FROM up u
    UNION ALL SELECT -1 AS sign, o.* FROM old_calls o
"""

ROLLUP_TAIL = f"""
), rows AS (
    SELECT d.dim, d.k AS key, x.bucket,
           {", ".join(f"x.sign * {v} AS {m}" for v, m in zip(_VALUES, server.MEASURES))},
           x.sign AS requests, x.sign * (x.cost_nanousd IS NULL)::int AS unpriced
    FROM delta x CROSS JOIN LATERAL (VALUES ('global', ''), ('project', x.project), ('model', x.model),
        ('agent', x.agent_type), ('skill', x.skill), ('cron', x.cron_job), ('user', x.origin_user),
        ('machine', x.origin_machine)) d(dim, k)
    WHERE d.k IS NOT NULL
    UNION ALL
    SELECT 'tool', x.name, x.bucket,
           {", ".join(f"x.sign * {_SHARE.format(v=v)} AS {m}" for v, m in zip(_VALUES, server.MEASURES))},
           x.sign, x.sign * (x.cost_nanousd IS NULL)::int
    FROM (SELECT y.*, e.name, e.idx, greatest(jsonb_array_length(y.tools), 1) AS n
          FROM delta y CROSS JOIN LATERAL jsonb_array_elements_text(
              CASE WHEN jsonb_array_length(y.tools) = 0 THEN '["{NO_TOOL}"]'::jsonb ELSE y.tools END)
              WITH ORDINALITY e(name, idx)) x
), logged AS (
    INSERT INTO costhook.spend_revs (rev, buckets) SELECT %(rev)s, array_agg(DISTINCT bucket) FROM delta HAVING count(*) > 0
)
INSERT INTO costhook.spend AS s (dim, key, bucket, {", ".join(server.MEASURES)}, rev)
SELECT dim, key, bucket, {", ".join(f"sum({m})" for m in server.MEASURES)}, %(rev)s
FROM rows GROUP BY dim, key, bucket
HAVING {" OR ".join(f"sum({m}) <> 0" for m in server.MEASURES)}
ON CONFLICT (dim, key, bucket) DO UPDATE SET
    {", ".join(f"{m} = s.{m} + excluded.{m}" for m in server.MEASURES)}, rev = excluded.rev
"""
UPSERT_CALLS = UPSERT_HEAD + ROLLUP_TAIL
# Calls removed here (store.writes folds a replayed call's rows into one): out of the
# server and its rollup too, or the team would count a response twice.
DELETE_CALLS = f"""
WITH gone AS (
    DELETE FROM costhook.calls c WHERE c.key = ANY(%(keys)s) RETURNING {ROLLUP_INPUT}
), delta AS (
    SELECT -1 AS sign, g.* FROM gone g
""" + ROLLUP_TAIL

COUNT_CHANGED = f"""
SELECT count(*), count(*) FILTER (WHERE
    ({", ".join(f"o.{c}" for c in (*TOKEN_FIELDS, "cost_nanousd", "bucket", "tools"))})
    IS DISTINCT FROM ({", ".join(f"c.{c}" for c in (*TOKEN_FIELDS, "cost_nanousd", "bucket", "tools"))}))
FROM old_calls o JOIN costhook.calls c USING (key)
"""


# ------------------------------------------------------------ entry points ----

def lock_file() -> str:
    return os.path.join(paths.home_dir(), "sync.lock")


class Busy(Exception):
    """Another sync of this database is running."""


def run(conn, settings: dict, *, progress=None, wait: bool = True) -> dict:
    """One sync, serialised with any other of this costhook home by a lock file (`wait`:
    for the running one to end; else Busy); the failure, one line, is kept in team_link
    for `doctor`."""
    lock = lock_file()
    paths.touch_private(lock)
    fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy("another `costhook sync` of this database is running") from None
        try:
            return Sync(conn, settings, progress=progress).run()
        except TeamError as exc:
            local.note_error(conn, str(exc))
            raise
        except Exception as exc:  # a server error mid-push: one line, the batch rolled back
            import psycopg

            if isinstance(exc, psycopg.Error):
                message = f"team server {link.shown(settings['url'])}: {link.first_line(exc)}"
                local.note_error(conn, message)
                raise TeamError(message) from None
            raise
    finally:
        os.close(fd)


def pending(conn) -> dict:
    """What a sync would push now ({table: rows}), without touching anything."""
    state = local.link(conn)
    if state.get("enabled"):
        return state["waiting"]
    return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table, _ in local.TABLES}


def watch(conn, settings: dict, *, interval: float, report, stop=lambda: False) -> None:
    """Sync every `interval` seconds until `stop()`; a failure is reported and retried."""
    while not stop():
        try:
            report(run(conn, settings), None)
        except Exception as exc:  # a busy or broken local database too: said, and tried again next round
            report(None, exc)
        time.sleep(interval)
