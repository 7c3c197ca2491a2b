"""What any first import of a tree costs before costhook's own per-call work: a floor.

    .venv/bin/python -m tests.benchmarks.import_floor TREE DB

TREE is a Claude config dir (holding projects/), DB a costhook database that imported it.
Each step runs in this one process (CPU seconds; the import spreads the first two over
worker processes, the last is the one writer's):

* read: read every transcript in 8 MB blocks, split the lines, and the byte test that picks
  the lines worth parsing (sources/claude.py's `"assistant"` test);
* parse: JSON-parse those lines with the import's parser (pydantic-core's jiter);
* insert: INSERT the DB's `requests` rows into an empty copy of the schema through Python's
  sqlite3, as the writer does (executemany, batches of ~4,000 rows, indexes kept), and the
  same rows copied by SQLite alone (INSERT ... SELECT) for comparison.

ccusage (`tests.benchmarks.ccusage` prints these beside it) only reads and parses and sums
in memory; costhook also stores one priced, indexed row per call, and its writer is one
process: the insert step is a floor for that writer alone.
"""

import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from costhook.agents.claude import importer
from costhook.agents import jsonl

BLOCK = 8 << 20
ROWS_PER_BATCH = 4000


def measure(tree: Path, db: Path) -> dict:
    files = importer.transcript_files([tree])
    started = time.process_time()
    candidates, total = [], 0
    for path, _ in files:
        with open(path, "rb") as f:
            for lines, nbytes in jsonl.line_batches(f, BLOCK):
                total += nbytes
                candidates += [line for line in lines if b'"assistant"' in line]
    read_s = time.process_time() - started

    jsonl.use_fast_parser()
    started = time.process_time()
    for line in candidates:
        jsonl.load_line(line)
    parse_s = time.process_time() - started
    parsed_mb = sum(map(len, candidates)) / 1e6
    del candidates

    insert_s, copy_s, rows = _inserts(db)
    return {"files": len(files), "mb": total / 1e6, "read_cpu_s": read_s, "parsed_mb": parsed_mb,
            "parse_cpu_s": parse_s, "rows": rows, "insert_cpu_s": insert_s, "insert_select_cpu_s": copy_s}


def _inserts(db: Path) -> tuple[float, float, int]:
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    schema = [sql for (sql,) in source.execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'requests' AND type IN ('table', 'index') AND sql IS NOT NULL"
        " ORDER BY type DESC")]  # the table, then its indexes (not the team outbox's triggers)
    columns = [d[0] for d in source.execute("SELECT * FROM requests LIMIT 0").description]
    rows = source.execute("SELECT * FROM requests ORDER BY rowid").fetchall()
    source.close()
    with tempfile.TemporaryDirectory(prefix="costhook-floor-") as scratch:
        target = _empty(Path(scratch) / "insert.db", schema)
        sql = f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        started = time.process_time()
        for start in range(0, len(rows), ROWS_PER_BATCH):
            target.execute("BEGIN")
            target.executemany(sql, rows[start : start + ROWS_PER_BATCH])
            target.execute("COMMIT")
        insert_s = time.process_time() - started
        target.close()
        target = _empty(Path(scratch) / "copy.db", schema)
        target.execute("ATTACH ? AS source", (str(db),))
        started = time.process_time()
        target.execute("BEGIN")
        target.execute("INSERT INTO main.requests SELECT * FROM source.requests ORDER BY rowid")
        target.execute("COMMIT")
        copy_s = time.process_time() - started
        target.close()
    return insert_s, copy_s, len(rows)


def _empty(path: Path, schema: list) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint = 65536")  # as store.bulk_writes
    for statement in schema:
        conn.execute(statement)
    return conn


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not os.path.isdir(args[0]) or not os.path.isfile(args[1]):
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    print(json.dumps(measure(Path(args[0]), Path(args[1])), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
