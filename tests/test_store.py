"""The database layer: schema steps, the spend rollup kept in step with requests."""

import random
from datetime import datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import db_rows
from transcript_lines import assistant

from costhook.agents.claude import ingest
from costhook.store import migrations
from costhook.store import db, rollup
from costhook.timeframe import utc_millis
from costhook.timeframe import utc_timestamp as _timestamp


def test_schema_version_matches_the_migration_steps():
    assert db.SCHEMA_VERSION == len(migrations.MIGRATIONS)


def test_fresh_database_is_migrated_once_and_is_wal(home):
    conn = db.connect()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    db.connect().close()  # reopening applies nothing and fails on nothing


def price_some(record):
    """Deterministic prices with an unpriced model, so the rollup's NULL handling is exercised."""
    if record["model"] == "unknown-model":
        return None, "unpriced"
    return record["output_tokens"] * 7 + record["input_tokens"], "computed"


def direct_sums(column):
    key = "''" if column is None else rollup._DIMENSION_SQL.get(column, column)
    rows = db_rows(
        f"""SELECT {key} AS k, coalesce(sum(cost_nanousd), 0) AS cost, count(*) AS n,
                   sum(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens) AS tokens,
                   sum(cost_nanousd IS NULL) AS unpriced
            FROM requests WHERE {key} IS NOT NULL GROUP BY {key}"""
    )
    return {r["k"]: (r["cost"], r["n"], r["tokens"], r["unpriced"]) for r in rows}


def rollup_sums(dim):
    rows = db_rows(
        "SELECT key AS k, sum(cost_nanousd) AS cost, sum(requests) AS n, sum(tokens) AS tokens, sum(unpriced) AS unpriced "
        "FROM spend WHERE dim = ? GROUP BY key HAVING sum(requests) != 0",
        (dim,),
    )
    return {r["k"]: (r["cost"], r["n"], r["tokens"], r["unpriced"]) for r in rows}


def test_spend_rollup_follows_merges_in_any_order(home, tmp_path):
    rng = random.Random(7)
    lines = []
    for i in range(60):
        model = rng.choice(["claude-sonnet-4-5-20250929", "unknown-model", "claude-opus-4-5-20251101"])
        session = rng.choice(["s-1", "s-2"])
        for part in range(rng.randint(1, 3)):  # streamed copies, growing output, later timestamps
            lines.append(
                assistant(
                    f"msg_{i}", session_id=session, model=model, input_tokens=i, output_tokens=10 * part + i,
                    timestamp=f"2026-11-{20 + i % 3}T{i % 24:02d}:{(14 + part) % 60:02d}:00.000Z",
                    cwd=f"/p/{i % 4}",
                )
            )
    rng.shuffle(lines)  # sightings arrive in any order: the merge must undo and redo spend
    path = tmp_path / "s.jsonl"
    conn = db.connect()
    for start in range(0, len(lines), 7):
        with open(path, "a") as f:
            f.writelines(lines[start : start + 7])
        ingest.ingest_file(conn, str(path), price=price_some)
    for dim, column in rollup.SPEND_DIMENSIONS:
        assert rollup_sums(dim) == direct_sums(column), dim
    # Tools: cost split evenly between the tools a call requested, counts not split.
    tool_rows = rollup_sums("tool")
    assert sum(v[0] for v in tool_rows.values()) == direct_sums(None)[""][0]
    assert tool_rows["(reasoning/answer)"][1] == db_rows("SELECT count(*) AS n FROM requests WHERE tools = '[]'")[0]["n"]
    # A rebuild from scratch agrees with the incrementally kept rollup.
    before = db_rows("SELECT * FROM spend WHERE requests != 0 ORDER BY dim, key, bucket")
    rollup.rebuild_spend(conn)
    assert db_rows("SELECT * FROM spend ORDER BY dim, key, bucket") == before


def test_timestamps_are_normalised_to_utc():
    assert _timestamp("2026-11-18T09:00:04.120Z") == "2026-11-18T09:00:04.120Z"
    assert _timestamp("2026-11-18T10:00:04.120+01:00") == "2026-11-18T09:00:04.120Z"
    assert _timestamp("2026-11-18T09:00:04") == "2026-11-18T09:00:04.000Z"
    assert _timestamp("yesterday") is None and _timestamp(12) is None


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet="0123456789-T:.Zz +\u0663\uff12\udc80", min_size=20, max_size=28)
       | st.lists(st.sampled_from("0123456789\u0663\uff12x-"), min_size=17, max_size=17).map(
           lambda d: f"{''.join(d[:4])}-{''.join(d[4:6])}-{''.join(d[6:8])}T{''.join(d[8:10])}:{''.join(d[10:12])}:"
                     f"{''.join(d[12:14])}.{''.join(d[14:17])}Z"))
def test_the_stored_time_form_is_exactly_ascii_digits_in_place(value):
    """utc_millis (a C pass over the bytes, for speed) says yes to exactly what the rule
    says: 24 characters, the separators in place, every other one an ASCII digit (not an
    Arabic-Indic or full-width digit, not a lone surrogate)."""
    want = (len(value) == 24 and all(value[i] == c for i, c in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"),
                                                                (19, "."), (23, "Z")))
            and all(value[i] in "0123456789" for i in range(24) if i not in (4, 7, 10, 13, 16, 19, 23)))
    assert utc_millis(value) is want
    if want:  # kept as it is when it is a real time; an impossible one (month 13, hour 99) is no time
        try:
            real = datetime.fromisoformat(value.replace("Z", "+00:00")).year >= 1000
        except ValueError:
            real = False
        assert _timestamp(value) == (value if real else None)


def test_an_impossible_time_in_a_transcript_is_no_time_and_every_view_still_runs(home, tmp_path):
    """A transcript line (hostile input) timed `2026-13-45T99:99:99.000Z` has the stored
    form's digits in place: it was stored as it was, and `trends` and `anomalies`, which make
    a datetime of its bucket, failed on every later run. The same check serves the agents'
    readers and the sync folder (timeframe.utc_timestamp)."""
    import json
    import subprocess

    from conftest import COSTHOOK

    folder = tmp_path / "claude" / "projects" / "-p"
    folder.mkdir(parents=True)
    lines = []
    for n, stamp in enumerate(["2026-13-45T99:99:99.000Z", "2026-02-30T10:00:00.000Z", "2026-02-28T23:59:59.000Z"]):
        line = json.loads(assistant(f"msg_{n}", session_id="s1"))
        line["timestamp"] = stamp
        lines.append(json.dumps(line) + "\n")
    (folder / "s1.jsonl").write_text("".join(lines))
    for args in (["import", "--claude-dir", str(tmp_path / "claude"), "-q"], ["trends"], ["anomalies"]):
        proc = subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(r["timestamp"] or "" for r in db_rows("SELECT timestamp FROM requests")) == \
        ["", "", "2026-02-28T23:59:59.000Z"]


def test_the_indexes_of_openclaw_only_columns_hold_only_the_calls_that_have_one(home):
    """m014: cron_job's, run_id's and session_key's indexes are partial (WHERE ... IS NOT
    NULL): a Claude Code call adds no entry to them; a lookup by a value still uses them.
    The step turns a database's full indexes into these, and running it again changes nothing."""
    conn = db.connect()
    conn.execute("PRAGMA user_version = 13")
    for name, columns, _ in migrations.SPARSE_INDEXES:  # as m004 / m005 made them
        conn.execute(f'DROP INDEX "{name}"')
        conn.execute(f'CREATE INDEX "{name}" ON requests ({columns})')
    conn.execute("INSERT INTO requests (key, agent, timestamp) VALUES ('c1', 'claude', '2026-12-01T00:00:00.000Z')")
    conn.execute("INSERT INTO requests (key, agent, timestamp, cron_job, run_id, session_key) "
                 "VALUES ('o1', 'openclaw', '2026-12-01T00:00:00.000Z', 'job', 'run', 'agent:main:cron:job')")
    conn.close()
    for _ in range(2):
        conn = db.connect()
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        for name, _, column in migrations.SPARSE_INDEXES:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
            assert sql.endswith(f"WHERE {column} IS NOT NULL"), sql
            plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN SELECT key FROM requests WHERE {column} = ?",
                                                          ("x",)))
            assert name in plan, plan
            value = {"cron_job": "job", "run_id": "run", "session_key": "agent:main:cron:job"}[column]
            assert [r[0] for r in conn.execute(f"SELECT key FROM requests WHERE {column} = ?", (value,))] == ["o1"]
        conn.execute("PRAGMA user_version = 13")  # the step again, as after a crash before its version was written
        conn.close()


def test_cursor_heads_become_hashes_and_their_old_bytes_are_gone_from_the_file(home):
    """m015: a Claude Code or Codex cursor's hex head (a transcript's first 128 bytes) becomes
    writes.head_id of those bytes, its mark after `|` kept; OpenClaw's digests and empty
    heads stay; the bytes are in no page of the file (old cells, free pages) once it is
    done; and running it again changes nothing."""
    from costhook import paths
    from costhook.store import writes

    first = b'{"type":"summary","summary":"MARKER-SUMMARY-5e1f the user asked about salaries"}\n'
    conn = db.connect()
    for i in range(300):  # cursors rewritten many times (INSERT OR REPLACE), as hooks do: stale cells, free pages
        for n in range(3):
            writes.set_cursor(conn, {"path": f"/t/{i}.jsonl", "offset": n, "head": f"{first.hex()}|{n}:{i:x}"})
    writes.set_cursor(conn, {"path": "/o/oc.jsonl", "offset": 9, "head": "256:abcdef|4:1"})
    writes.set_cursor(conn, {"path": "/t/empty.jsonl", "offset": 1, "head": ""})
    conn.execute("DELETE FROM cursors WHERE path LIKE '/t/1%'")  # pages freed without secure_delete
    conn.execute("PRAGMA user_version = 14")
    conn.close()
    stored = Path(paths.db_file())
    data = lambda: b"".join(p.read_bytes() for p in stored.parent.glob(stored.name + "*")
                            if p.is_file() and not p.name.endswith(".lock"))
    assert first.hex().encode() in data()
    for _ in range(2):
        conn = db.connect()
        heads = {r["path"]: r["head"] for r in conn.execute("SELECT path, head FROM cursors")}
        conn.execute("PRAGMA user_version = 14")  # again, as after a crash before the version was written
        conn.close()
        assert heads["/t/0.jsonl"] == f"{writes.head_id(first)}|2:0"
        assert heads["/o/oc.jsonl"] == "256:abcdef|4:1" and heads["/t/empty.jsonl"] == ""
        assert len(heads) == 300 - 111 + 2
        assert first.hex().encode() not in data() and b"MARKER-SUMMARY" not in data()
