"""Schema steps, one small named function each, applied in order.

The database records which steps ran in `PRAGMA user_version`, so the hook can check the
schema with one pragma and only import this module (and sqlite-utils) when a step is due.
Append new steps to MIGRATIONS; never edit a step that has shipped.
"""

import sqlite3

import sqlite_utils

from costhook.store.rollup import SPEND_MEASURES
from costhook.usage import TOKEN_FIELDS

REQUEST_COLUMNS = {
    "key": str,  # the agent's own id of the call: "<message.id>:<requestId>" for Claude Code
    "agent": str,  # claude | openclaw
    "message_id": str,
    "request_id": str,
    "session_id": str,
    "parent_session_id": str,
    "agent_id": str,  # sub-agent id, NULL on the main thread
    "agent_type": str,
    "is_sidechain": int,
    "project": str,
    "git_branch": str,
    "timestamp": str,  # UTC ISO 8601, earliest line of the call
    "model": str,  # exactly as the agent recorded it
    "input_tokens": int,
    "output_tokens": int,
    "cache_write_5m_tokens": int,
    "cache_write_1h_tokens": int,
    "cache_read_tokens": int,
    "web_search_requests": int,
    "speed": str,
    "inference_geo": str,
    "service_tier": str,
    "cost_nanousd": int,  # NULL when unpriced
    "cost_source": str,  # computed | reported | unpriced
    "reported_cost_nanousd": int,  # what the agent itself said, if it says
    "tools": str,  # JSON array of the tool names this call requested
    "skill": str,
    "cron_job": str,
    "is_heartbeat": int,
    "prompt_id": str,
    "entrypoint": str,
    "source_path": str,
}


def m001_initial(db: sqlite_utils.Database) -> None:
    """The first schema, table after table. Long: a step that has shipped is never edited."""
    db["requests"].create(REQUEST_COLUMNS, pk="key", not_null={"agent"}, if_not_exists=True)
    db["requests"].create_index(["timestamp"], if_not_exists=True)
    db["requests"].create_index(["session_id", "timestamp"], if_not_exists=True)
    db["requests"].create_index(["project", "timestamp"], if_not_exists=True)
    db["requests"].create_index(["model", "timestamp"], if_not_exists=True)
    db["requests"].create_index(["message_id"], if_not_exists=True)  # replays fold by message id
    db["tool_calls"].create(
        {
            "tool_use_id": str,
            "agent": str,
            "session_id": str,
            "agent_id": str,
            "tool_name": str,
            "mcp_server": str,
            "timestamp": str,
            "success": int,
            "duration_ms": int,
            "input_bytes": int,
            "output_bytes": int,
        },
        pk="tool_use_id",
        if_not_exists=True,
    )
    db["tool_calls"].create_index(["session_id"], if_not_exists=True)
    db["sessions"].create(
        {
            "session_id": str,
            "agent": str,
            "project": str,
            "git_branch": str,
            "started_at": str,
            "ended_at": str,
            "end_reason": str,
            "parent_session_id": str,
            "source": str,  # startup | resume | clear | compact | fork
            "entrypoint": str,  # cli, sdk-cli, sdk-ts, ...
            "interactive": int,
            "model": str,
            "transcript_path": str,
            "reported_cost_nanousd": int,  # the agent's own running total (cost-state)
        },
        pk="session_id",
        if_not_exists=True,
    )
    db["cursors"].create(
        {
            "path": str,
            "offset": int,
            "size": int,
            "inode": int,
            "head": str,  # hash of the first line: tells a replaced file from a grown one
            "state": str,  # JSON: reader state carried between chunks (active skill, ...)
            "updated_at": str,
        },
        pk="path",
        if_not_exists=True,
    )
    db["alerts"].create(
        {
            "id": int,
            "budget_id": str,
            "period": str,
            "threshold": float,
            "action": str,
            "spent_nanousd": int,
            "limit_value": int,
            "session_id": str,
            "message": str,
            "created_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    # One alert per budget, period and threshold; the limit is part of the identity, so a
    # budget that is created or lowered after the money was spent warns again.
    db["alerts"].create_index(["budget_id", "period", "threshold", "limit_value"], unique=True, if_not_exists=True)


def m002_spend_rollup(db: sqlite_utils.Database) -> None:
    """Spend per 15-minute UTC bucket and dimension, kept in step with `requests` by
    store.merge_requests, so a budget check sums a few hundred rows instead of a month of
    calls. 15 minutes: every real time zone's midnight falls on such a boundary."""
    db["spend"].create(
        {
            "dim": str,  # global | project | project_name | session | model | agent | skill | cron | tool
            "key": str,
            "bucket": str,  # "YYYY-MM-DDTHH:MM" (UTC, minute 00/15/30/45)
            "cost_nanousd": int,
            "input_tokens": int,
            "output_tokens": int,
            "cache_write_5m_tokens": int,
            "cache_write_1h_tokens": int,
            "cache_read_tokens": int,
            "tokens": int,  # all five kinds
            "requests": int,
            "unpriced": int,
        },
        pk=("dim", "key", "bucket"),
        if_not_exists=True,
    )
    from costhook.store.rollup import rebuild_spend

    rebuild_spend(db.conn)


def m003_alert_delivery(db: sqlite_utils.Database) -> None:
    if "notified_at" not in db["alerts"].columns_dict:
        db["alerts"].add_column("notified_at", str)


def m004_openclaw(db: sqlite_utils.Database) -> None:
    """OpenClaw: session keys, the host agent ("main"), run ids, and cron run history."""
    columns = db["requests"].columns_dict
    for name in ("session_key", "host_agent", "run_id"):
        if name not in columns:
            db["requests"].add_column(name, str)
    db["requests"].create_index(["session_key"], if_not_exists=True)
    db["requests"].create_index(["cron_job", "timestamp"], if_not_exists=True)
    db["cron_runs"].create(
        {
            "run_id": str,
            "agent": str,  # openclaw
            "host_agent": str,  # OpenClaw agent id, e.g. "main"
            "job_id": str,
            "job_name": str,
            "session_id": str,
            "session_key": str,
            "status": str,  # ok | error | skipped ...
            "completion_status": str,
            "started_at": str,  # UTC ISO 8601
            "duration_ms": int,
            "model": str,
            "provider": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "total_tokens": int,
            "reported_cost_nanousd": int,
            "is_heartbeat": int,
            "transcript_missing": int,  # run record kept, its session transcript pruned: cost unknown
        },
        pk="run_id",
        if_not_exists=True,
    )
    db["cron_runs"].create_index(["job_id", "started_at"], if_not_exists=True)
    db["cron_runs"].create_index(["session_id"], if_not_exists=True)


def m005_openclaw_details(db: sqlite_utils.Database) -> None:
    """OpenClaw: provider and session kind per call, heartbeat acknowledgements, session
    keys and parents on sessions, cron job names, and the cron run's own id and error."""
    columns = db["requests"].columns_dict
    for name, kind in (("provider", str), ("session_kind", str), ("ack_only", int)):
        if name not in columns:
            db["requests"].add_column(name, kind)  # ack_only: 1 = no tool, reply only acknowledged
    db["requests"].create_index(["run_id"], if_not_exists=True)
    columns = db["sessions"].columns_dict
    for name in ("session_key", "host_agent", "session_kind", "parent_session_key", "label"):
        if name not in columns:
            db["sessions"].add_column(name, str)
    columns = db["cron_runs"].columns_dict
    for name in ("cron_run_id", "error", "session_target"):
        if name not in columns:
            db["cron_runs"].add_column(name, str)
    db["cron_jobs"].create(
        {
            "job_id": str,
            "agent": str,  # openclaw
            "host_agent": str,
            "name": str,
            "kind": str,  # payload kind: agentTurn | heartbeat | systemEvent ...
            "session_target": str,  # isolated | main
            "schedule": str,  # "cron 0 7 * * *" / "every 1800000 ms"
            "enabled": int,
            "updated_at": str,
        },
        pk="job_id",
        if_not_exists=True,
    )


def m006_call_iterations(db: sqlite_utils.Database) -> None:
    """`usage.iterations` of a call whose API ran more than its one sampling (server-side
    compaction, the advisor tool, a fallback model): JSON text, a list of {type, model?,
    input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
    cache_read_tokens}; NULL for an ordinary call. `pricing.prices.price_record` prices it."""
    if "iterations" not in db["requests"].columns_dict:
        db["requests"].add_column("iterations", str)



def m007_subagent_names(db: sqlite_utils.Database) -> None:
    """The type of each sub-agent as its parent's Task/Agent call named it, for transcripts
    without an agent-*.meta.json (Claude Code 2.0.x): whichever file is read first, the
    sub-agent's calls get the name."""
    db["subagents"].create(
        {"session_id": str, "agent_id": str, "agent_type": str},
        pk=("session_id", "agent_id"),
        if_not_exists=True,
    )
    conn = db.conn
    # Sub-agent calls stored before as the main thread's are "(sub-agent)" now ...
    changed = conn.execute("UPDATE requests SET agent_type = '(sub-agent)'"
                           " WHERE agent = 'claude' AND agent_id IS NOT NULL AND agent_type IS NULL").rowcount
    if changed:
        from costhook.store.rollup import rebuild_spend

        rebuild_spend(conn)
    # ... and their parents' transcripts are read again (the keys make that safe), for the
    # Task/Agent results that name them.
    conn.execute("""DELETE FROM cursors WHERE path IN (
        SELECT DISTINCT source_path FROM requests WHERE agent_id IS NULL AND session_id IN (
            SELECT DISTINCT session_id FROM requests WHERE agent_type = '(sub-agent)'))""")


def m008_team(db: sqlite_utils.Database) -> None:
    """The team ledger's local side (docs/team.md): whose call it was first (NULL = this
    machine), the link's state, the outbox of rows not yet on the server, and the team's
    spend as last pulled. Long: the outbox triggers are written out whole."""
    columns = db["requests"].columns_dict
    for name in ("origin_user", "origin_machine"):
        if name not in columns:
            db["requests"].add_column(name, str)
    conn = db.conn
    conn.execute("""CREATE TABLE IF NOT EXISTS team_link (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        enabled INTEGER NOT NULL DEFAULT 0,   -- 1 once a sync has seeded the outbox: the triggers record
        server TEXT,                          -- where it syncs to, without any password
        team_user TEXT, machine TEXT,
        schema_version INTEGER,               -- the server's, at the last contact
        last_push TEXT, last_pull TEXT,       -- UTC ISO 8601
        pull_rev INTEGER NOT NULL DEFAULT 0,  -- the server rollup's revision pulled up to
        pull_since TEXT,                      -- the oldest bucket team_spend covers
        last_error TEXT, last_error_at TEXT)""")
    conn.execute("INSERT OR IGNORE INTO team_link (id) VALUES (1)")
    # One row per local row changed since it was last pushed and pulled back. base_*: what
    # the server had of it at the last pull (0 for a call it did not have), so a budget adds
    # only the growth: team_spend + sum(current - base).
    base = ", ".join(f"base_{m} INTEGER NOT NULL DEFAULT 0" for m in ("cost_nanousd", *TOKEN_FIELDS))
    conn.execute(f"""CREATE TABLE IF NOT EXISTS team_outbox (
        id INTEGER PRIMARY KEY,
        tbl TEXT NOT NULL, key TEXT NOT NULL,
        gen INTEGER NOT NULL DEFAULT 1,       -- bumped at every change: a push clears only what it sent
        base_requests INTEGER NOT NULL DEFAULT 0, {base},
        UNIQUE (tbl, key))""")
    spend_measures = ", ".join(f"{m} INTEGER NOT NULL DEFAULT 0" for m in SPEND_MEASURES)
    # The team's spend as `spend` keeps ours (dimension, key, 15-minute UTC bucket), over all
    # machines, with two more dimensions: `user` and `machine` (who made the call first).
    conn.execute(f"""CREATE TABLE IF NOT EXISTS team_spend (
        dim TEXT NOT NULL, key TEXT NOT NULL, bucket TEXT NOT NULL,
        {spend_measures},
        PRIMARY KEY (dim, key, bucket)) WITHOUT ROWID""")
    enabled = "(SELECT enabled FROM team_link WHERE id = 1)"
    base_values = ", ".join(f"coalesce(r.{m}, 0)" for m in ("cost_nanousd", *TOKEN_FIELDS))
    base_names = ", ".join(f"base_{m}" for m in ("cost_nanousd", *TOKEN_FIELDS))
    # BEFORE INSERT: an INSERT OR REPLACE (store.merge_requests) still sees the stored row.
    conn.execute(f"""CREATE TRIGGER IF NOT EXISTS team_outbox_requests_insert BEFORE INSERT ON requests
        WHEN {enabled} BEGIN
            INSERT INTO team_outbox (tbl, key, base_requests, {base_names})
            SELECT 'requests', NEW.key, r.key IS NOT NULL, {base_values}
            FROM (SELECT 1) LEFT JOIN requests r ON r.key = NEW.key WHERE 1
            ON CONFLICT (tbl, key) DO UPDATE SET gen = gen + 1;
        END""")
    conn.execute(f"""CREATE TRIGGER IF NOT EXISTS team_outbox_requests_update AFTER UPDATE ON requests
        WHEN {enabled} BEGIN
            INSERT INTO team_outbox (tbl, key, base_requests, {base_names})
            VALUES ('requests', NEW.key, 1, {", ".join(f"coalesce(OLD.{m}, 0)" for m in ("cost_nanousd", *TOKEN_FIELDS))})
            ON CONFLICT (tbl, key) DO UPDATE SET gen = gen + 1;
        END""")
    # A call folded into another one's row (store.writes._fold_replays) leaves: the server's copy must go too.
    conn.execute(f"""CREATE TRIGGER IF NOT EXISTS team_outbox_requests_delete AFTER DELETE ON requests
        WHEN {enabled} BEGIN
            INSERT INTO team_outbox (tbl, key, base_requests, {base_names})
            VALUES ('requests', OLD.key, 1, {", ".join(f"coalesce(OLD.{m}, 0)" for m in ("cost_nanousd", *TOKEN_FIELDS))})
            ON CONFLICT (tbl, key) DO UPDATE SET gen = gen + 1;
        END""")
    for table, key in (("sessions", "session_id"), ("tool_calls", "tool_use_id"), ("cron_runs", "run_id")):
        for when in ("INSERT", "UPDATE"):
            conn.execute(f"""CREATE TRIGGER IF NOT EXISTS team_outbox_{table}_{when.lower()} AFTER {when} ON {table}
                WHEN {enabled} BEGIN
                    INSERT INTO team_outbox (tbl, key) VALUES ('{table}', NEW.{key})
                    ON CONFLICT (tbl, key) DO UPDATE SET gen = gen + 1;
                END""")


def m009_sync_folder(db: sqlite_utils.Database) -> None:
    """The sync folder (costhook.sync.folder): which segments were imported (by content
    hash, so a copy under another name is read once), what happened to each file seen, and
    the version of each local row last exported (a call whose usage grew goes out again)."""
    db["sync_segments"].create(
        {"hash": str, "machine": str, "user": str, "path": str, "calls": int, "created_at": str, "imported_at": str},
        pk="hash",
        if_not_exists=True,
    )
    db["sync_files"].create(
        {
            "path": str,  # relative to the folder: "<machine>/<name>"
            "machine": str,
            "size": int,
            "mtime_ns": int,
            "hash": str,
            "status": str,  # exported | imported | duplicate | skipped
            "reason": str,  # why a file was skipped, or which segment a duplicate repeats
            "seen_at": str,
        },
        pk="path",
        if_not_exists=True,
    )
    db["sync_exports"].create({"kind": str, "id": str, "version": str}, pk=("kind", "id"), if_not_exists=True)


def m010_codex(db: sqlite_utils.Database) -> None:
    """Codex (OpenAI): the reasoning part of a call's output tokens (OpenAI bills it as
    output, and `output_tokens` includes it for every agent); NULL where the agent does
    not say. A call's key is `<thread id>:<response id>`."""
    if "reasoning_tokens" not in db["requests"].columns_dict:
        db["requests"].add_column("reasoning_tokens", int)


def m011_agent_cli(db: sqlite_utils.Database) -> None:
    """The agent CLI (`requests.agent`: claude, openclaw, codex) on every rollup row, so
    that `report --by cli`, every view's `--cli` and `cli:<name>` budgets sum the rollup
    like their every-CLI forms. The key gains the column: the table is made again and
    rebuilt from the calls, in one savepoint (a crash leaves the old table, and the step
    runs again)."""
    conn = db.conn
    if "cli" in db["spend"].columns_dict:
        return
    from costhook.store.rollup import SPEND_MEASURES, rebuild_spend

    conn.execute("SAVEPOINT m011_agent_cli")
    try:
        conn.execute("DROP TABLE spend")
        measures = ", ".join(f"{m} INTEGER" for m in SPEND_MEASURES)
        # cli last: the columns before it keep their places for `SELECT *` readers
        conn.execute(f"""CREATE TABLE spend (dim TEXT, key TEXT, bucket TEXT, {measures},
                         cli TEXT NOT NULL DEFAULT '', PRIMARY KEY (dim, key, bucket, cli))""")
        rebuild_spend(conn)
    except BaseException:
        conn.execute("ROLLBACK TO m011_agent_cli")
        conn.execute("RELEASE m011_agent_cli")
        raise
    conn.execute("RELEASE m011_agent_cli")


def m012_price_groups(db: sqlite_utils.Database) -> None:
    """Calls per 15-minute UTC bucket and everything that prices them at another model's
    rates (model, speed, region, prompt band, project, sub-agent type, skill): `whatif`
    sums a few thousand of these rows instead of a month of calls (store/rollup.py
    PRICE_BANDS). Without rowid: a bucket range is read from the key's own b-tree."""
    from costhook.store.rollup import PRICE_KEYS, PRICE_MEASURES, rebuild_prices

    keys = ", ".join(f"{column} TEXT NOT NULL" for column in PRICE_KEYS)
    measures = ", ".join(f"{column} INTEGER NOT NULL" for column in PRICE_MEASURES)
    db.conn.execute(f"""CREATE TABLE IF NOT EXISTS price_groups (
        bucket TEXT NOT NULL, {keys}, band INTEGER NOT NULL, nulls INTEGER NOT NULL, {measures},
        PRIMARY KEY (bucket, {', '.join(PRICE_KEYS)}, band, nulls)) WITHOUT ROWID""")
    rebuild_prices(db.conn)


def m013_links(db: sqlite_utils.Database) -> None:
    """Each call's next call in its thread and the first call of its turn, with the cache
    writes nobody read and the turns summed (store/links.py), kept by every write: the
    cache, idle and efficiency views read a week of these sums instead of following each
    thread call by call. Beside `requests` rather than in it: no rewrite of a large table,
    and no team outbox trigger fires for a link. Filled from the calls (the detached
    upgrade job, for a large database)."""
    from costhook.store import links

    conn = db.conn
    conn.execute("""CREATE TABLE IF NOT EXISTS links (
        rowid INTEGER PRIMARY KEY, at TEXT NOT NULL, next_read INTEGER, next_at TEXT,
        turn_row INTEGER NOT NULL, turn_at TEXT NOT NULL,
        bucket TEXT, wkey TEXT, waste_5m INTEGER NOT NULL, waste_1h INTEGER NOT NULL)""")
    conn.execute("CREATE INDEX IF NOT EXISTS links_turn ON links (turn_row)")
    conn.execute("CREATE INDEX IF NOT EXISTS links_last ON links (at) WHERE next_at IS NULL")  # each thread's last call
    conn.execute("""CREATE TABLE IF NOT EXISTS cache_waste (
        bucket TEXT NOT NULL, wkey TEXT NOT NULL, wasted_5m INTEGER NOT NULL, wasted_1h INTEGER NOT NULL,
        PRIMARY KEY (bucket, wkey)) WITHOUT ROWID""")
    conn.execute("""CREATE TABLE IF NOT EXISTS turns (
        turn_row INTEGER PRIMARY KEY, agent TEXT, session_id TEXT, agent_id TEXT, is_sidechain INTEGER,
        turn_at TEXT NOT NULL, last_at TEXT NOT NULL, calls INTEGER NOT NULL, cost INTEGER NOT NULL,
        unpriced INTEGER NOT NULL, actions INTEGER NOT NULL, answer INTEGER NOT NULL, heartbeats INTEGER NOT NULL)""")
    conn.execute("CREATE INDEX IF NOT EXISTS turns_at ON turns (turn_at)")
    conn.execute("CREATE INDEX IF NOT EXISTS turns_last ON turns (last_at)")
    # The calls price_groups puts in band 0 for a missing token count (views/calls.py MISSING_COUNT).
    conn.execute("""CREATE INDEX IF NOT EXISTS requests_missing_count ON requests (timestamp) WHERE input_tokens IS NULL
        OR cache_write_5m_tokens IS NULL OR cache_write_1h_tokens IS NULL OR cache_read_tokens IS NULL""")
    conn.execute("""CREATE TABLE IF NOT EXISTS links_dirty (
        session_id TEXT, agent_id TEXT, is_sidechain INTEGER, since TEXT, gone INTEGER, touched INTEGER)""")
    for sql in links.TRIGGERS.values():
        conn.execute(sql)
    links.rebuild(conn)


# The indexes on columns only OpenClaw's calls fill: (name, columns, the column).
SPARSE_INDEXES = (("idx_requests_cron_job_timestamp", "cron_job, timestamp", "cron_job"),
                  ("idx_requests_run_id", "run_id", "run_id"),
                  ("idx_requests_session_key", "session_key", "session_key"))


def m014_sparse_indexes(db: sqlite_utils.Database) -> None:
    """The indexes on cron_job, run_id and session_key hold only the calls that have one:
    every query by them names a value (which SQLite takes to imply IS NOT NULL), and for
    a Claude Code or Codex user they held an entry per call for nothing, kept up to date by
    every insert (a first import built them in ~0.12 s of its ~0.31 s of indexes)."""
    conn = db.conn
    for name, columns, column in SPARSE_INDEXES:
        found = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone()
        if found is not None and "WHERE" in found[0]:
            continue  # (done: the step was interrupted after it)
        conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        conn.execute(f'CREATE INDEX "{name}" ON requests ({columns}) WHERE {column} IS NOT NULL')


def m015_cursor_heads(db: sqlite_utils.Database) -> None:
    """A Claude Code or Codex cursor kept the first 128 bytes of its file as hex to tell a
    replaced file: they can be the user's first prompt or the conversation's summary, and
    costhook keeps no content. Each becomes its writes.head_id (what cursors keep now), so
    a file is still told apart as before and no re-read is due. OpenClaw's heads are
    digests already (`<len>:<sha1>`), as are heads this step has done.

    Rewriting the rows is not enough: SQLite leaves what it frees where it was (the old
    cells in their pages, pages on the free list, the WAL's frames). So the table is
    emptied and filled again with secure_delete on (freed space is zeroed), the free list
    is taken up by zeros and given back zeroed, and the WAL is truncated."""
    from costhook.store import writes

    conn = db.conn
    conn.execute("PRAGMA secure_delete = ON")
    heads = []
    for path, head in conn.execute("SELECT path, head FROM cursors WHERE head IS NOT NULL AND head != ''").fetchall():
        first, bar, rest = head.partition("|")
        if ":" in first:
            continue
        try:
            first = writes.head_id(bytes.fromhex(first))
        except ValueError:  # not hex: not ours to read; no head is trusted as it always was
            first = ""
        heads.append((first + bar + rest, path))
    if heads:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TEMP TABLE m015_cursors AS SELECT * FROM cursors")
            conn.executemany("UPDATE temp.m015_cursors SET head = ? WHERE path = ?", heads)
            conn.execute("DELETE FROM cursors")
            conn.execute("INSERT INTO cursors SELECT * FROM temp.m015_cursors")
            conn.execute("DROP TABLE temp.m015_cursors")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    _zero_free_pages(conn)  # (also when a run of this step stopped after its commit)
    conn.execute("PRAGMA secure_delete = OFF")
    if heads and conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # busy (a reader): its frames are overwritten in time


def _zero_free_pages(conn: sqlite3.Connection) -> None:
    """Zeros over every page on the free list (pages freed before secure_delete was on keep
    what they held): a table of zero blobs takes them up, and dropping it with
    secure_delete on frees them zeroed."""
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    if not free:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE m015_zeros (z BLOB)")
        while free > 0:  # a blob of n pages takes ~n pages (its overflow chain), the free list's first
            conn.execute("INSERT INTO m015_zeros VALUES (zeroblob(?))", (min(free, 4096) * (page - 8),))
            free, before = conn.execute("PRAGMA freelist_count").fetchone()[0], free
            if free >= before:
                break
        conn.execute("DROP TABLE m015_zeros")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


MIGRATIONS = [m001_initial, m002_spend_rollup, m003_alert_delivery, m004_openclaw, m005_openclaw_details,
              m006_call_iterations, m007_subagent_names, m008_team, m009_sync_folder, m010_codex, m011_agent_cli,
              m012_price_groups, m013_links, m014_sparse_indexes, m015_cursor_heads]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the missing steps.

    The caller serialises migrations with a lock file; every step is idempotent
    (`if_not_exists`) so a step interrupted by a crash is simply run again.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema v{version} is newer than this costhook (v{SCHEMA_VERSION}); upgrade costhook"
        )
    db = sqlite_utils.Database(conn)
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        step(db)
        conn.execute(f"PRAGMA user_version = {number}")
