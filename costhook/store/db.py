"""The SQLite database: opening it safely, migrated; transactions and savepoints.

Standard library only (the hook imports this on every call). The schema itself lives in
migrations.py, which uses sqlite-utils and is imported only when a step is due.
"""

import fcntl
import os
import sqlite3

from costhook import paths

SCHEMA_VERSION = 8  # == len(migrations.MIGRATIONS); a test keeps them equal
BUSY_TIMEOUT_MS = 5000
INLINE_UPGRADE_BYTES = 4 << 20  # a database this small is upgraded at once, even by a hook
BULK_WAL_PAGES = 65536  # 256 MB of 4 KB pages: how far the WAL may grow during bulk_writes


def connect(db_path=None, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, upgrade: bool = True,
            create: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the database, migrated to the current schema.

    With `create=False` (the read-only commands) a missing file raises NoDatabase, and
    neither the file nor its folder is made.

    With `upgrade=False` a new (or small) database is still migrated, but a larger one that
    needs schema steps raises UpgradePending: a step may rewrite a million rows, which a
    hook on the agent's critical path must not wait for.
    Autocommit mode: writers use `transaction()` explicitly, readers never block writers (WAL).
    """
    path = paths.db_file(db_path)
    problem = paths.insecurity(path, kind="database")
    if problem:
        from costhook.errors import StoreError

        raise StoreError(problem)
    if not create and not os.path.lexists(path):
        from costhook.errors import NoDatabase

        wrong = _unusable(path, FileNotFoundError())
        raise wrong if wrong.wrong_path else NoDatabase(f"no costhook database at {path}")
    try:
        if create and not os.path.exists(path):
            paths.touch_private(path)
        # mode=rw: a file removed since the check above is not made again
        location = path if create else "file:" + quote_uri(os.path.abspath(path)) + "?mode=rw"
        conn = sqlite3.connect(location, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False,
                               uri=not create)
    except (OSError, sqlite3.Error) as exc:
        raise _unusable(path, exc) from exc
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        pending = version != SCHEMA_VERSION and not upgrade and 0 < version < SCHEMA_VERSION \
            and os.path.getsize(path) > INLINE_UPGRADE_BYTES
        if version != SCHEMA_VERSION and not pending:
            _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        from costhook.errors import StoreError  # (errors are imported when raised: the hook pays for each module)

        raise StoreError(f"cannot use database {path}: {exc}") from exc
    if pending:
        conn.close()
        from costhook.errors import UpgradePending

        raise UpgradePending(f"database {path} needs a schema upgrade (v{version} → v{SCHEMA_VERSION})")
    return conn


def empty() -> sqlite3.Connection:
    """An empty database of the current schema, in memory: what a read-only command reads
    when nothing was ever recorded at the default location (nothing is created on disk)."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    from costhook.store import migrations

    migrations.migrate(conn)
    return conn


def quote_uri(path: str) -> str:
    """`path` as the path part of an SQLite `file:` URI."""
    return path.replace("%", "%25").replace("?", "%3F").replace("#", "%23")


def _unusable(path: str, exc: Exception):
    """StoreError naming why the database could not be opened at all (looked into only once
    opening failed: a hook that opens it fine pays nothing)."""
    from costhook.errors import StoreError

    parent = os.path.dirname(path) or "."
    while not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if os.path.isdir(path):
        reason = "it is a directory, not a database file"
    elif not os.path.isdir(parent):
        reason = f"{parent} is a file, not a folder"
    else:
        error = StoreError(f"cannot use database {path}: {getattr(exc, 'strerror', None) or exc}")
        error.wrong_path = False
        return error
    error = StoreError(f"cannot use database {path}: {reason}")
    error.wrong_path = True  # no database there to keep: the path (--db, COSTHOOK_DB, COSTHOOK_HOME) is wrong
    return error


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema up to date under a lock file, so concurrent first hooks migrate once."""
    lock_path = path + ".migrate.lock"
    paths.touch_private(lock_path)
    fd = os.open(lock_path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        from costhook.store import migrations

        try:
            migrations.migrate(conn)
        except RuntimeError as exc:
            from costhook.errors import StoreError

            raise StoreError(str(exc)) from exc
    finally:
        os.close(fd)


class transaction:
    """`with transaction(conn):` — BEGIN IMMEDIATE … COMMIT, rolled back on any error.

    IMMEDIATE takes the write lock up front, so a read-merge-write inside cannot race
    another process doing the same (the busy timeout makes the second one wait).
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
        return False


class savepoint:
    """`with savepoint(conn, name):` inside a transaction — the block's writes are undone,
    and the error passes on, if it raises; the enclosing transaction stays open."""

    def __init__(self, conn: sqlite3.Connection, name: str):
        self.conn, self.name = conn, name

    def __enter__(self):
        self.conn.execute(f"SAVEPOINT {self.name}")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.conn.execute(f"ROLLBACK TO {self.name}")
        self.conn.execute(f"RELEASE {self.name}")
        return False


class bulk_writes:
    """`with bulk_writes(conn):` around a long run of write transactions (an import, a
    catch-up). SQLite's default checkpoints the WAL into the database every ~4 MB of
    commits, each with an fsync: on a first import that was a third of the wall time.
    Here the WAL may grow to BULK_WAL_PAGES first, and is checkpointed once at the end.
    Readers and other writers are unaffected; a crash leaves a WAL the next connection
    checkpoints."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.previous = self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_WAL_PAGES}")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(self.previous)}")
        try:  # TRUNCATE: the WAL file shrinks back too (it waits for readers, up to the busy timeout)
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:
            pass  # busy: a later commit checkpoints
        return False


def in_lists(values: list):
    """(placeholders, values) for `IN (...)` lists of at most 500 values: SQLite's limit on
    variables, and short statements."""
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        yield ",".join("?" * len(chunk)), chunk


def storable(value):
    """Text SQLite accepts: a lone surrogate (valid in JSON, not in UTF-8) would make the
    whole write fail and the transcript stall; it becomes U+FFFD instead."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    return value
