"""`costhook import --openclaw-dir`: everything OpenClaw kept, into costhook's database.

For each folder: the agent SQLite stores (their_db.py), transcript files and archives
(files.py), cron jobs and run history from the state database or the legacy cron files;
then cron runs are linked to their calls (store.writes.refresh_cron_runs). Incremental
and idempotent: cursors and stable keys make a second import change nothing.
"""

from __future__ import annotations

import os

from costhook.agents.openclaw import cron, files, their_db
from costhook.agents.openclaw.events import Stats
from costhook.agents.openclaw.paths import discover
from costhook.store import writes
from costhook.store.db import transaction


def import_dirs(conn, folders, *, price, progress=None) -> Stats:
    """`costhook import --openclaw-dir`: agent stores, transcript files and archives, cron
    jobs and run history under each folder; then cron runs are linked to their calls.
    `progress(nbytes)` is called after each store or file. Incremental and idempotent."""
    stats = Stats()
    for folder in folders:
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            continue
        found = discover(folder)
        for db_path in found["agent_dbs"]:
            stats.add(their_db.ingest_agent_db(conn, db_path, price=price, busy_ms=5000))
            if progress:
                progress(_size(db_path))
        stats.add(files.ingest_session_files(conn, found["files"], price=price, progress=progress))
        for state_db in found["state_dbs"]:
            stats.add(their_db.ingest_state_db(conn, state_db, busy_ms=5000))
        for cron_dir in found["cron_dirs"]:
            stats.add(cron.ingest_cron_files(conn, cron_dir))
    with transaction(conn):
        writes.refresh_cron_runs(conn)
    return stats


def total_bytes(folders) -> int:
    """Bytes an import will look at (for a progress bar)."""
    total = 0
    for folder in folders:
        if os.path.isdir(folder):
            found = discover(os.fspath(folder))
            total += sum(_size(p) for p in found["agent_dbs"] + found["files"])
    return total


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
