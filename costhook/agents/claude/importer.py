"""`costhook import`: backfill every Claude Code transcript under its config directories.

Uses the very same incremental ingest as the hook, so an import and the hooks give the
same rows, and importing twice changes nothing (the cursors say there is nothing new).
"""

import gc
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from costhook import paths
from costhook.agents import jsonl
from costhook.agents.claude import ingest, transcript
from costhook.pricing import prices
from costhook.store import db, rollup, writes


@dataclass
class ImportSummary:
    files: int = 0
    bytes_read: int = 0
    calls: int = 0
    changed: int = 0
    malformed: int = 0
    synthetic: int = 0


def default_claude_dirs() -> list[Path]:
    """Where Claude Code keeps transcripts: $CLAUDE_CONFIG_DIR (comma-separated list allowed),
    ~/.claude and ~/.config/claude — those that exist."""
    candidates = []
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    if configured:
        candidates += [Path(part).expanduser() for part in configured.split(",") if part.strip()]
    xdg = os.environ.get("XDG_CONFIG_HOME")
    candidates += [Path.home() / ".claude", (Path(xdg).expanduser() if xdg else Path.home() / ".config") / "claude"]
    found, seen = [], set()
    for folder in candidates:
        projects = folder / "projects"
        key = str(projects.resolve()) if projects.is_dir() else None
        if key and key not in seen:
            seen.add(key)
            found.append(folder)
    return found


def projects_dir(folder: Path) -> Path:
    """Accept a Claude config dir (holding projects/) or the projects dir itself."""
    return folder / "projects" if (folder / "projects").is_dir() else folder


def transcript_files(folders: list[Path]) -> list[tuple[str, int]]:
    """(path, size) of every .jsonl transcript, oldest first so a session's original copy of a
    replayed call is seen before a resumed session's copy."""
    found = {}
    for folder in folders:
        for root, dirs, files in os.walk(projects_dir(folder)):
            dirs.sort()
            for name in files:
                if name.endswith(".jsonl"):
                    path = os.path.join(root, name)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    found[path] = (st.st_mtime_ns, st.st_size)
    ordered = sorted(found.items(), key=lambda item: (item[1][0], item[0]))
    return [(path, size) for path, (_, size) in ordered]


BULK_MAX_STORED = 5_000  # calls stored: below this an import is a first one, and builds a new file (first_import)
BULK_MIN_BYTES = 32 << 20  # ...if it has this much to read: below, the incremental path is as quick
PARALLEL_MIN_BYTES = 64 << 20  # below this, forking workers costs more than it saves
FAST_READERS_MIN_BYTES = 1 << 20  # below this, importing msgspec and pydantic-core costs more than they save
BATCH_BYTES = 32 << 20  # new transcript bytes per transaction: fewer, larger commits touch each rollup row less often
WINDOW_BYTES = 2 * BATCH_BYTES  # transcript bytes handed to the workers ahead of the writer
# A first import's batches: its file is new, so a batch need not be a short transaction; each
# batch costs the writer a pass of the rollup's upserts (4x fewer: ~10 % of its CPU; +17 MB RSS).
BULK_BATCH_BYTES = 4 * BATCH_BYTES
WINDOW_FILES = 256
# A first import's writer commits what it has (this much at least) when it would wait for
# the workers: at the end, once they are done, less is left for it alone (one core idle).
IDLE_BATCH_BYTES = BATCH_BYTES
IDLE = object()  # _parse_in_workers(idle=True): the next result is not back yet
TASK_BYTES = 4 << 20  # transcript bytes per task sent to a worker: small files go in groups
TASK_FILES = 32
WORKER_NICENESS = 3


def first_import(db_path, folders: list[Path], *, price=None, progress=None, workers: int | None = None,
                 files: list | None = None) -> ImportSummary:
    """`costhook import`: import_claude; into a file of its own, renamed into place at the
    end, when this is a first import: the database holds no more than what hooks saw before
    it (under BULK_MAX_STORED calls) and over BULK_MIN_BYTES of transcripts are unread.

    That file is written without syncs, `requests` without its secondary indexes (built
    once at the end), the rows known to be new found in memory rather than looked up,
    sub-agents named once at the end (ingest.Bulk) and the rollups summed from the rows
    beside the indexes and links (RollupsBeside): the same rows as the incremental
    import, in larger batches (BULK_BATCH_BYTES).
    What hooks wrote to the database meanwhile is merged in under the open lock, which
    keeps every connection off the file while it is replaced (db.replace_database).
    A database that does not exist yet holds nothing: it is made (db.connect: its checks,
    the schema) once the workers have started, not before (~0.14 s, most of it importing
    sqlite-utils)."""
    price = price or prices.pricer()
    if files is None:
        files = transcript_files([f for f in folders if f.is_dir()])
    path, new_database = _bulk_target(db_path, files)
    if path is None:
        conn = db.connect(db_path)
        try:
            return import_claude(conn, folders, price=price, progress=progress, workers=workers, files=files)
        finally:
            conn.close()
    made, rollups, syncing = [], None, None

    def new_file():  # (called by import_claude once the workers have started: migrating a new file takes ~0.2 s)
        if new_database:  # (hooks that fire meanwhile write there; it is merged at the end)
            db.connect(path).close()
        made.append(db.new_bulk_file(path))
        return made[0][1]

    try:
        bulk = ingest.Bulk()
        summary = import_claude(None, folders, price=price, progress=progress, workers=workers, files=files, bulk=bulk,
                                new_file=new_file)
        tmp, conn, indexes = made[0]
        rollups = RollupsBeside(conn, tmp)  # (it closes `conn`: its own connection is rollups.conn)
        made[0] = tmp, rollups.conn, indexes
        conn = rollups.conn
        for sql in indexes:
            conn.execute(sql)
        syncing = db.start_sync(tmp)
        summary.changed += bulk.finish(conn)
        rollups.add_to(conn, bulk.moved)
        db.replace_database(path, tmp, conn, lambda c: writes.merge_attached(c, price))
    except BaseException:
        if rollups is not None:
            rollups.close()
        if made:
            tmp, conn, _ = made[0]
            conn.close()
            db.remove_bulk_files(tmp)
        raise
    finally:
        if syncing is not None:
            syncing.join()
    return summary


def _bulk_target(db_path, files: list) -> tuple[str | None, bool]:
    """(the database's path, whether it is still to be made) when this import is a first
    one (see first_import); (None, False) when it is not."""
    path = paths.db_file(db_path)
    if not os.path.lexists(path):  # (nothing stored; made by first_import, after the workers start)
        return (os.path.abspath(path), True) if sum(size for _, size in files) > BULK_MIN_BYTES else (None, False)
    conn = db.connect(db_path)
    try:
        stored = conn.execute("SELECT count(*) FROM (SELECT 1 FROM requests LIMIT ?)", (BULK_MAX_STORED,)).fetchone()[0]
        unread = sum(size for _, size in files) - conn.execute("SELECT coalesce(sum(offset), 0) FROM cursors").fetchone()[0]
        return (db.path_of(conn), False) if stored < BULK_MAX_STORED and unread > BULK_MIN_BYTES else (None, False)
    finally:
        conn.close()


class RollupsBeside:
    """A first import's rollups (spend, price_groups), summed from its rows in SQL
    (rollup.add_all) by a forked process, in a copy of the file (`-rollups`), while this
    one builds the indexes and the links. Batch by batch in the writer they cost ~1.4 s
    of CPU at 84,000 calls, while the workers kept every core busy; at the end one core
    was idle.

    A copy, made before this process writes again, rather than a snapshot of the file
    itself: that needed the file in WAL mode, every page the indexes and links wrote went
    through the WAL and was checkpointed again at the end (~0.07 s of this process's
    CPU at 84,000 calls, against ~0.02 s for the copy, a kernel copy of ~55 MB).
    What the merges of calls seen twice moved the rollups by is dropped: the rows hold it.
    What changes the rows after the copy (Bulk.finish names sub-agents: Bulk.moved) is
    added on top (add_to). If that process fails, add_to sums the rollups from the rows
    here instead."""

    def __init__(self, conn, tmp: str):
        """Closes `conn` and opens `self.conn` to the same file once the process has
        started: SQLite's state for a file open in this process must not cross the fork."""
        import multiprocessing

        with db.transaction(conn):
            for table in rollup.ROLLUPS:
                conn.execute(f"DELETE FROM {table}")
        conn.close()
        self.tmp, self.out = tmp, tmp + "-rollups"
        db.remove_bulk_files(tmp, ("-rollups",))
        db.copy_bulk_file(tmp, self.out)
        self.process = multiprocessing.get_context("fork").Process(target=_sum_rollups, args=(self.out,), daemon=True)
        self.process.start()
        self.conn = db.open_bulk_file(tmp, "TRUNCATE", db.BULK_SORT_CACHE_KIB)  # (peak RSS flat: see there)

    def add_to(self, conn, moved: "rollup.SpendDelta") -> None:
        """The rollups into `conn`'s, with `moved` on top (how the rows changed since the copy)."""
        self.process.join()
        if self.process.exitcode == 0:
            conn.execute("ATTACH DATABASE ? AS rollups", (self.out,))
            try:
                with db.transaction(conn):
                    rollup.copy_attached(conn, "rollups")
                    moved.write(conn, only=writes.NAMES_MOVE)
            finally:
                conn.execute("DETACH DATABASE rollups")
        else:  # (the same sums, here, from the rows as they are now)
            with db.transaction(conn):
                rollup.rebuild_spend(conn)
                rollup.rebuild_prices(conn)
        self.close()

    def close(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        db.remove_bulk_files(self.tmp, ("-rollups",))


def _sum_rollups(path: str) -> None:
    """RollupsBeside's process: the rollups of the rows of the copy `path`, into it."""
    try:
        conn = db.open_bulk_file(path, "OFF", db.BULK_SORT_CACHE_KIB)
        with db.transaction(conn):
            rollup.add_all(conn)
        conn.close()
    except BaseException:  # (the importer sums them itself: nothing to show here)
        os._exit(1)


def import_claude(conn, folders: list[Path], *, price=None, progress=None, workers: int | None = None,
                  files: list | None = None, bulk: "ingest.Bulk | None" = None, new_file=None) -> ImportSummary:
    """Ingest all transcripts under `folders`. `progress(nbytes)` is called after each file.

    Large imports parse, and price into rows (ingest.prepare), in worker processes while
    this process writes, in file order: the database has one writer, so it does as little
    as it can. Results are the same as the hooks': the same plan / read_chunks / commit
    steps, only spread out. With `bulk`, `new_file()` may make the connection instead of
    `conn`: it is called once the workers are at work on the first batch.
    Long: planning, the readers, the workers and the batch loop are one flow.
    """
    summary = ImportSummary()
    price = price or prices.pricer()
    if files is None:  # (path, size) as transcript_files gives them, if the caller has them
        files = transcript_files([f for f in folders if f.is_dir()])
    if bulk is None:  # planned first: what is left to read decides whether workers pay
        starts = [(ingest.plan(conn, path), size) for path, size in files]
        pending_bytes = sum(start.size - start.offset for start, _ in starts if start is not None)
    else:  # a new file has no cursors: the workers plan too
        starts = ((path, size) for path, size in files)
        pending_bytes = sum(size for _, size in files)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if pending_bytes >= FAST_READERS_MIN_BYTES:  # (the same rows either way; below, their imports cost more)
        from costhook.agents.claude import fastparse

        jsonl.use_fast_parser()
        transcript.use_assistant_reader(fastparse.assistant_line)
        transcript.use_marker_finder(fastparse.marker_finder())
    global _price, _with_rollup
    _price = price  # what _parse_file prices with, in this process or the forked workers
    _with_rollup = bulk is None  # a first import builds the rollup at the end (ingest.Bulk)
    if hasattr(price, "prepare"):
        price.prepare()  # load the table once, before the workers fork
    batch_limit = BATCH_BYTES if bulk is None else BULK_BATCH_BYTES
    if workers > 1 and pending_bytes >= PARALLEL_MIN_BYTES:
        # Two batches in flight, whatever the batch: with a first import's 4x larger batches
        # and the window of the incremental ones, the workers sat idle ~40 % of the time
        # while the writer committed (the window is transcript bytes; what a worker sends
        # back is ~3 % of that).
        scale = batch_limit // BATCH_BYTES
        made = []
        chunks = _parse_in_workers(starts, workers, WINDOW_BYTES * scale, WINDOW_FILES * scale,
                                   started=(lambda: made.append(new_file())) if new_file else None,
                                   idle=bulk is not None)
        first = next(chunks, None)
        chunks = itertools.chain([first] if first is not None else [], chunks)
        new_file = None if made else new_file
        conn = made[0] if made else conn
    else:
        chunks = ((start, size, _parse_file(start)) for start, size in starts)
    if new_file is not None:  # (no workers)
        conn = new_file()
    result = ingest.IngestResult(path="")
    batch, batch_bytes, batch_sizes = [], 0, 0
    with db.bulk_writes(conn):
        for start, size, parsed in chunks:
            if start is IDLE:  # (a first import's: the next file's rows are not back yet)
                if batch_bytes >= IDLE_BATCH_BYTES:
                    _commit(conn, batch, price, result, progress, batch_sizes, bulk)
                    batch, batch_bytes, batch_sizes = [], 0, 0
                continue
            summary.files += 1
            batch += parsed
            batch_bytes += sum(chunk.nbytes for chunk in parsed)
            batch_sizes += size
            if batch_bytes >= batch_limit:
                _commit(conn, batch, price, result, progress, batch_sizes, bulk)
                batch, batch_bytes, batch_sizes = [], 0, 0
        _commit(conn, batch, price, result, progress, batch_sizes, bulk)
    _add_result(summary, result)
    return summary


def _commit(conn, batch: list, price, result, progress, sizes: int, bulk=None) -> None:
    """One transaction for a batch of files (about BATCH_BYTES of new lines)."""
    if batch:
        ingest.commit(conn, batch, price, result, bulk)
    if progress and sizes:
        progress(sizes)


def _add_result(summary: ImportSummary, result) -> None:
    summary.bytes_read += result.bytes_read
    summary.calls += result.calls
    summary.changed += result.changed
    summary.malformed += result.malformed
    summary.synthetic += result.synthetic


_price = None  # set by import_claude
_with_rollup = True


def _parse_file(start):
    """The file's new lines, parsed and prepared as rows (ingest.prepare). `start`: an
    ingest.Start, or the path of a file to read whole."""
    if isinstance(start, str):
        start = ingest.plan(None, start)
    if start is None or start.offset >= start.size:
        return []  # nothing new (as planned): not opened again
    return [ingest.prepare(chunk, _price, _with_rollup) for chunk in ingest.read_chunks(start)]


def _parse_in_workers(starts, workers: int, window_limit: int, files_limit: int, started=None, idle: bool = False):
    """(start, size, chunks) in input order, parsed by a process pool; at most `window_limit`
    bytes (or `files_limit` files) in flight, so memory stays flat however big the tree is. Small files
    travel in groups of about TASK_BYTES (one message each way per group, not per file).
    `started()`, if given, is called once the window is full, before waiting for a result.
    With `idle`, (IDLE, 0, []) comes first whenever the next result is not back yet.

    A ProcessPoolExecutor, not a multiprocessing.Pool: the Pool's worker-handler thread
    wakes on every result waiting in its queue and spins until another thread reads it,
    ~0.35 s of this process's CPU at 84,000 calls, taken from the writer."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_start)
    try:
        window, window_bytes, window_files = deque(), 0, 0
        group, group_bytes = [], 0
        for start, size in starts:
            if start is not None and (size == 0 if isinstance(start, str) else start.offset >= start.size):
                if group:  # (the files stay in order)
                    window.append((group, pool.submit(_parse_files, [s for s, _ in group])))
                    group, group_bytes = [], 0
                window.append(([(start, size)], None))  # nothing new: no need to ship it to a worker
            else:
                group.append((start, size))
                group_bytes += size
                window_bytes += size
                if group_bytes >= TASK_BYTES or len(group) >= TASK_FILES:
                    window.append((group, pool.submit(_parse_files, [s for s, _ in group])))
                    group, group_bytes = [], 0
            window_files += 1
            # The writer commits about BATCH_BYTES at a time; meanwhile the workers
            # keep parsing what the window holds: two batches' worth.
            while window and (window_bytes > window_limit or window_files > files_limit):
                if started is not None:
                    started, call = None, started
                    call()
                items, future = window.popleft()
                window_files -= len(items)
                if future is not None:
                    window_bytes -= sum(size for _, size in items)
                yield from _resolved(items, future, idle)
        if group:
            window.append((group, pool.submit(_parse_files, [s for s, _ in group])))
        if started is not None:
            started()
        while window:
            yield from _resolved(*window.popleft(), idle)
    finally:  # (the writer stopped early: the tasks not started are dropped)
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_start() -> None:
    """The writer first: the workers run ahead of it (a window of two batches), and what it
    has not written when they are done is time on one core only. And fewer collections:
    a worker makes many short-lived objects and keeps none (~3 % of its CPU)."""
    try:
        os.nice(WORKER_NICENESS)
    except OSError:
        pass  # (not allowed here: the same rows, at the same priority)
    gc.set_threshold(50_000, 20, 20)


def _parse_files(starts: list) -> list:
    return [_parse_file(start) for start in starts]


def _resolved(items, future, idle: bool = False):
    """(start, size, chunks) of each of `items` once `future` has them (IDLE first, with
    `idle`, when it has not yet)."""
    from concurrent.futures.process import BrokenProcessPool

    if idle and future is not None and not future.done():
        yield IDLE, 0, []

    try:
        results = [[] for _ in items] if future is None else future.result()
    except BrokenProcessPool as exc:  # (killed, or out of memory: the pool takes no more tasks)
        from costhook.errors import ImportStopped

        raise ImportStopped("costhook import stopped: one of its worker processes ended abruptly (killed, or out of "
                            "memory). The database is consistent; run the import again to finish.") from exc
    for (start, size), parsed in zip(items, results):
        yield start, size, parsed
