"""The team ledger on PostgreSQL: its schema, created and migrated by costhook, with its
own version table (`costhook.schema_version`). A client never writes to a schema newer
than it knows: it says so and stops.

Tables (schema `costhook`): `calls` (one row per API call, keyed as locally, with the
user and machine that pushed it first), `spend` (the rollup reports and budget pulls
read, kept in step with `calls` in the same transaction), `sessions`, `tool_calls`,
`cron_runs`, `machines` (who pushed and pulled when).

A push updates the rollup rows it changes in place and logs the buckets it touched in
`spend_revs` (v2; v1 indexed `spend.rev` instead, which made every update write three
index entries); a pull reads the rows of the buckets logged since its last revision. The
log keeps REVS_KEPT_DAYS (v3); `spend_revs_pruned` says up to which revision it was cut,
and a pull from before that reads the whole window.

The rollup is team-wide per dimension (a row per dimension, key and 15-minute bucket,
whoever spent it), plus the dimensions `user` and `machine` (the call's origin): a
report sums one row per bucket, however many machines push, and a pull brings what the
budget scopes `team`, `user:<name>`, `machine:<name>` and `--team` on any scope need.
"""

TOKENS = ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")
MEASURES = ("cost_nanousd", *TOKENS, "tokens", "requests", "unpriced")  # as the local `spend` rollup
LOCK_ID = 0x636F7374  # pg_advisory_xact_lock: pushes that touch the rollup take turns (see push.py)

STEPS = [
    # v1
    f"""
    CREATE SCHEMA IF NOT EXISTS costhook;
    CREATE TABLE costhook.calls (
        key text PRIMARY KEY,
        agent text NOT NULL,
        origin_user text NOT NULL,
        origin_machine text NOT NULL,
        session_id text, parent_session_id text, agent_id text, agent_type text,
        project text, git_branch text,
        ts timestamptz,
        bucket timestamptz NOT NULL,          -- 15-minute UTC bucket of ts; -infinity without a time
        model text,
        {", ".join(f"{t} bigint NOT NULL DEFAULT 0" for t in TOKENS)},
        web_search_requests bigint NOT NULL DEFAULT 0,
        cost_nanousd bigint,                  -- NULL: unpriced
        cost_source text,
        tools jsonb NOT NULL DEFAULT '[]',
        skill text, cron_job text, is_heartbeat smallint,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE SEQUENCE costhook.spend_rev;
    CREATE TABLE costhook.spend (
        dim text NOT NULL,                    -- global project model agent skill cron tool, user machine
        key text NOT NULL, bucket timestamptz NOT NULL,
        {", ".join(f"{m} bigint NOT NULL DEFAULT 0" for m in MEASURES)},
        rev bigint NOT NULL,                  -- the push that changed it last: pulls fetch rev > theirs
        PRIMARY KEY (dim, key, bucket)
    );
    CREATE INDEX spend_by_rev ON costhook.spend (rev);    -- a pull reads only what changed since the last one
    CREATE TABLE costhook.sessions (
        session_id text PRIMARY KEY, agent text, origin_user text NOT NULL, origin_machine text NOT NULL,
        project text, git_branch text, started_at timestamptz, ended_at timestamptz, end_reason text,
        parent_session_id text, source text, entrypoint text, model text, reported_cost_nanousd bigint
    );
    CREATE TABLE costhook.tool_calls (
        tool_use_id text PRIMARY KEY, agent text, origin_user text NOT NULL, origin_machine text NOT NULL,
        session_id text, agent_id text, tool_name text, mcp_server text, ts timestamptz, success smallint,
        duration_ms bigint, input_bytes bigint, output_bytes bigint
    );
    CREATE TABLE costhook.cron_runs (
        run_id text PRIMARY KEY, agent text, origin_user text NOT NULL, origin_machine text NOT NULL,
        job_id text, job_name text, session_id text, status text, started_at timestamptz, duration_ms bigint,
        model text, reported_cost_nanousd bigint, is_heartbeat smallint
    );
    CREATE TABLE costhook.machines (
        "user" text NOT NULL, machine text NOT NULL, last_push timestamptz, last_pull timestamptz,
        client_schema integer, PRIMARY KEY ("user", machine)
    );
    """,
    # v2: a push updates rollup rows in place (HOT: no index on a column it changes, room
    # left in each page), and logs which buckets it touched; a pull reads that log.
    """
    DROP INDEX costhook.spend_by_rev;
    CREATE INDEX spend_by_bucket ON costhook.spend (bucket);
    ALTER TABLE costhook.spend SET (fillfactor = 70);
    CREATE TABLE costhook.spend_revs (
        rev bigint NOT NULL,                  -- a push (costhook.spend_rev)
        buckets timestamptz[] NOT NULL        -- the 15-minute buckets whose rollup rows it changed
    );
    CREATE INDEX spend_revs_by_rev ON costhook.spend_revs (rev);
    INSERT INTO costhook.spend_revs (rev, buckets)
        SELECT rev, array_agg(DISTINCT bucket) FROM costhook.spend GROUP BY rev;
    """,
    # v3: the log is pruned (REVS_KEPT_DAYS): a pull from before what was pruned reads the
    # whole window again. A v2 client would not know and miss changes: it must refuse.
    """
    ALTER TABLE costhook.spend_revs ADD COLUMN at timestamptz NOT NULL DEFAULT now();
    CREATE TABLE costhook.spend_revs_pruned (
        upto bigint NOT NULL                  -- one row: the log holds every push after this revision
    );
    INSERT INTO costhook.spend_revs_pruned (upto) VALUES (0);
    """,
]
REVS_KEPT_DAYS = 7  # a machine that last pulled longer ago reads the team's window again, as when it joined
PRUNE_REVS = f"""
WITH gone AS (DELETE FROM costhook.spend_revs WHERE at < now() - interval '{REVS_KEPT_DAYS} days' RETURNING rev)
UPDATE costhook.spend_revs_pruned SET upto = greatest(upto, (SELECT max(rev) FROM gone))
WHERE EXISTS (SELECT FROM gone)
"""
SCHEMA_VERSION = len(STEPS)


class NewerSchema(Exception):
    """The server's schema is newer than this costhook knows: nothing is written."""


def version(conn) -> int:
    """The server schema's version; 0 when costhook never set it up there."""
    found = conn.execute("SELECT to_regclass('costhook.schema_version') IS NOT NULL").fetchone()[0]
    if not found:
        return 0
    row = conn.execute("SELECT max(version) FROM costhook.schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn) -> int:
    """Bring the server schema to SCHEMA_VERSION (one transaction per step, serialised by
    an advisory lock so two first syncs do not race). Returns the version; raises
    NewerSchema when the server's is newer."""
    current = version(conn)
    if current > SCHEMA_VERSION:
        raise NewerSchema(newer_message(current))
    if current == SCHEMA_VERSION:
        return current
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID + 1,))
        conn.execute("""CREATE SCHEMA IF NOT EXISTS costhook;
                        CREATE TABLE IF NOT EXISTS costhook.schema_version (
                            version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())""")
        current = version(conn)
        if current > SCHEMA_VERSION:
            raise NewerSchema(newer_message(current))
        for number, step in enumerate(STEPS[current:], start=current + 1):
            conn.execute(step)
            conn.execute("INSERT INTO costhook.schema_version (version) VALUES (%s)", (number,))
    return SCHEMA_VERSION


def newer_message(found: int) -> str:
    return (f"the team server's schema is v{found}, newer than this costhook knows (v{SCHEMA_VERSION}); "
            "nothing was written: upgrade costhook on this machine")
