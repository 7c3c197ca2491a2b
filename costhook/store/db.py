"""The SQLite database: opening it safely, migrated; transactions and savepoints.

Standard library only (the hook imports this on every call). The schema itself lives in
migrations.py, which uses sqlite-utils and is imported only when a step is due.
"""

import fcntl
import os
import sqlite3

from costhook import paths
from costhook.store import links

SCHEMA_VERSION = 15  # == len(migrations.MIGRATIONS); a test keeps them equal
BUSY_TIMEOUT_MS = 5000
INLINE_UPGRADE_BYTES = 4 << 20  # a database this small is upgraded at once, even by a hook
# A first import's page cache while it loads: 16 MB is filled only on a large tree (peak
# RSS 99-108 MB against 73 MB on an eighth of it; 8 MB: 89-98 MB), and the CPU was the
# same within the noise (4 alternated runs each)...
BULK_CACHE_KIB = 8192
# ...and while it builds the indexes and the links at the end: SQLite's sorter buffers up
# to the cache's size, so these sorts of every row held +15 MB at 84,000 calls (far less
# on a small tree); spilled to a temporary file, no slower.
BULK_SORT_CACHE_KIB = 2048
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
    if (not create and not os.path.lexists(path)) or os.path.isdir(path):  # a folder gets no `<path>.lock` either
        from costhook.errors import NoDatabase

        wrong = _unusable(path, FileNotFoundError())
        raise wrong if wrong.wrong_path else NoDatabase(f"no costhook database at {path}")
    try:
        if create and not os.path.exists(path):
            paths.touch_private(path)
        held = _hold_open_lock(path, busy_timeout_ms)
        try:
            # mode=rw: a file removed since the check above is not made again
            location = path if create else "file:" + quote_uri(os.path.abspath(path)) + "?mode=rw"
            conn = sqlite3.connect(location, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False,
                                   uri=not create, factory=Connection)
        except sqlite3.Error:
            if held >= 0:
                os.close(held)
            raise
    except (OSError, sqlite3.Error) as exc:
        raise _unusable(path, exc) from exc
    conn.open_lock = held
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


class Connection(sqlite3.Connection):
    """A connection that holds its database's open lock (see _hold_open_lock) until closed."""

    open_lock = -1

    def close(self):
        super().close()
        fd, self.open_lock = self.open_lock, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self):
        if self.open_lock >= 0:
            os.close(self.open_lock)
            self.open_lock = -1


def open_lock_file(path: str) -> str:
    return path + ".lock"


def _hold_open_lock(path: str, busy_timeout_ms: int) -> int:
    """A shared flock on `<db>.lock`, held while the connection is open, or -1 when the
    lock file cannot be made (a read-only folder: nothing can replace the file there).

    A first import builds the database in a file of its own and renames it into place
    (replace_database); it takes this lock exclusively for that, so no connection is open
    on the file it replaces: what a hook wrote before is merged into the new file, and a
    hook that connects meanwhile waits (well under a second) and opens the new one — or,
    after the busy timeout (an import stopped mid-rename), fails like a busy database."""
    try:
        fd = os.open(open_lock_file(path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return -1
    deadline = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            import time

            deadline = deadline or time.monotonic() + busy_timeout_ms / 1000
            if time.monotonic() > deadline:
                os.close(fd)
                raise sqlite3.OperationalError("database is locked: a first import is putting its new file in place") from None
            time.sleep(0.005)
        except OSError:
            os.close(fd)
            return -1


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
        paths.enable_site()  # sqlite-utils lives in site-packages
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
    A commit that changed rows removes the shell gate's clearance (paths.drop_clearance)
    unless the caller says its writes cannot move spend (`spend=False`: sessions, tool
    calls, alerts), so no clearance outlives the totals it was computed from.
    """

    def __init__(self, conn: sqlite3.Connection, spend: bool = True):
        self.conn = conn
        self.spend = spend

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        self.changes = self.conn.total_changes
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                links.refresh(self.conn)  # what this transaction's writes changed in the threads
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            if self.spend and self.conn.total_changes != self.changes:
                paths.drop_clearance()
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


# ------------------------------------------------------------- first import -------

SWAP_WAIT_S = 120  # how long a first import waits for other connections to close before giving up


def path_of(conn: sqlite3.Connection) -> str:
    """The file `conn` has open as its main database."""
    return next(row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main")


# A first import's file and those beside it (importer.RollupsBeside sums the rollups in `-rollups`).
BULK_FILES = ("", "-journal", "-wal", "-shm", "-rollups")


def new_bulk_file(path: str) -> tuple[str, sqlite3.Connection, list]:
    """(path, connection, index SQL) of a new, migrated database file beside `path` for a
    first import to fill: no syncs (a crash loses only this file, which
    nothing else uses), and `requests` without the secondary indexes an insert would keep
    up to date row by row (the SQL returned builds them, at the end) — except message_id's,
    which the merge of calls seen twice looks rows up by — nor any trigger (the SQL returned
    restores them and has the next transaction rebuild the links)."""
    folder, name = os.path.split(os.path.abspath(path))
    prefix = name + ".import-"
    for stale in os.listdir(folder):  # left by an import that was killed
        if stale.startswith(prefix) and stale.endswith(".tmp") and not _pid_alive(stale[len(prefix):-4]):
            for suffix in BULK_FILES:
                try:
                    _remove(os.path.join(folder, stale) + suffix)
                except OSError:
                    pass  # not ours to remove (a shared folder)
    tmp = os.path.join(folder, f"{prefix}{os.getpid()}.tmp")
    remove_bulk_files(tmp)
    paths.touch_private(tmp)
    problem = paths.insecurity(tmp, kind="database")  # (planted in a shared folder between the two calls above)
    if problem:
        from costhook.errors import StoreError

        raise StoreError(problem)
    conn = open_bulk_file(tmp, "TRUNCATE", BULK_CACHE_KIB)
    from costhook.store import migrations

    migrations.migrate(conn)
    deferred = [(index, sql) for index, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests' AND sql IS NOT NULL ORDER BY name")
        if [row[2] for row in conn.execute(f'PRAGMA index_info("{index}")')] != ["message_id"]]
    for name_, _ in deferred:
        conn.execute(f'DROP INDEX "{name_}"')
    # Nor any trigger: the links' (store/links.py) are built once at the end too (row by row,
    # each would look its thread up without the index on sessions), and the team outbox's
    # only check, row by row, for a team link, which a new file has not got (~0.17 s of the
    # writer's CPU at 84,000 calls).
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").fetchall()
    for name_, _ in triggers:
        conn.execute(f'DROP TRIGGER "{name_}"')
    return tmp, conn, [sql for _, sql in deferred] + [sql for _, sql in triggers] + [links.MARK_ALL]


def remove_bulk_files(tmp: str, suffixes: tuple = BULK_FILES) -> None:
    """Remove a first import's file (new_bulk_file) and those beside it."""
    for suffix in suffixes:
        _remove(tmp + suffix)


def copy_bulk_file(tmp: str, copy: str) -> None:
    """Copy a first import's file (closed, or between transactions) to the new file `copy`,
    0600, never through a symlink planted in its place."""
    paths.touch_private(copy)
    problem = paths.insecurity(copy, kind="database")  # (planted in a shared folder meanwhile)
    if problem:
        from costhook.errors import StoreError

        raise StoreError(problem)
    src = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(copy, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            size = os.fstat(src).st_size
            done = 0
            while done < size:  # (in the kernel, page cache to page cache)
                sent = os.sendfile(dst, src, done, size - done)
                if not sent:
                    break
                done += sent
        finally:
            os.close(dst)
    finally:
        os.close(src)


def open_bulk_file(tmp: str, journal: str, cache_kib: int) -> sqlite3.Connection:
    """A connection to a first import's file (new_bulk_file): no syncs."""
    conn = sqlite3.connect(tmp, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    for pragma in (f"journal_mode = {journal}", "synchronous = OFF", "foreign_keys = ON", f"cache_size = {-cache_kib}"):
        conn.execute(f"PRAGMA {pragma}").fetchall()
    return conn


def start_sync(path: str):
    """A thread that syncs `path` as it is written so far (a first import's file, once
    its rows and indexes are in): the disk writes them while the links are computed, and
    replace_database's sync has only the rest to wait for (~0.05 s less at 84,000 calls).
    Returns the thread: join it before the file is gone."""
    import threading

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def sync() -> None:
        try:
            os.fsync(fd)
        except OSError:
            pass  # (replace_database syncs it again, and reports)
        finally:
            os.close(fd)

    thread = threading.Thread(target=sync, name="costhook-sync", daemon=True)
    thread.start()
    return thread


def replace_database(path: str, tmp: str, conn: sqlite3.Connection, merge, *, wait_s: float = SWAP_WAIT_S) -> None:
    """Put the bulk-loaded file `tmp` (`conn`) in the place of the database at `path`.

    Long: the steps are one protocol. Under the exclusive open lock (so no connection is
    open on `path`: hooks that connect meanwhile wait for the rename), `merge(conn)` copies
    into `tmp` what was written to `path` since the import began (attached as `old`); the
    old file is checkpointed and closed (so no WAL of it is left beside the new one), `tmp`
    switches to WAL, is synced and renamed over `path`. Raises StoreError when other
    connections stay open longer than `wait_s`, leaving `path` as it was."""
    import time

    fd = os.open(open_lock_file(path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    from costhook.errors import StoreError

                    raise StoreError(f"other costhook processes kept {path} open for {wait_s:.0f} s; "
                                     "nothing was changed: run the import again") from None
                time.sleep(0.02)
        if os.path.exists(path):
            conn.execute("ATTACH DATABASE ? AS old", (path,))
            try:
                with transaction(conn):
                    merge(conn)
            finally:
                conn.execute("DETACH DATABASE old")
            old = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)  # a reader (statusline) may finish first
            try:
                if old.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                old.close()  # the last connection: SQLite removes the WAL and shared-memory files
            for suffix in ("-wal", "-shm"):
                if os.path.exists(path + suffix) and os.path.getsize(path + suffix):
                    from costhook.errors import StoreError

                    raise StoreError(f"{path}{suffix} is still in use; nothing was changed: run the import again")
                _remove(path + suffix)
        conn.execute("PRAGMA journal_mode = WAL").fetchall()  # (a statement left unfinished blocks the checkpoint)
        conn.execute("PRAGMA main.wal_checkpoint(TRUNCATE)").fetchall()
        conn.close()
        for suffix in ("-wal", "-shm", "-journal"):
            _remove(tmp + suffix)
        f = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(f)
        finally:
            os.close(f)
        os.replace(tmp, path)
        paths.drop_clearance()
        d = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(d)
        finally:
            os.close(d)
    finally:
        os.close(fd)


def _pid_alive(text: str) -> bool:
    if not text.isdigit():
        return True
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        if os.path.lexists(path) and not os.path.islink(path):
            raise
