"""The first import (importer.first_import): bulk-loaded into a file of its own and renamed
into place. Same rows, rollup, sessions and cursors as the incremental path; hooks that fire
meanwhile (real `costhook hook` processes) lose nothing; the msgspec reader of assistant
lines reads them as json does."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import COSTHOOK, db_rows, run_hook, wait_for_background
from test_links import keyed_links, rebuilt
from transcript_lines import assistant

from costhook import paths
from costhook.agents.claude import fastparse, importer, ingest, transcript
from costhook.errors import ImportStopped
from costhook.pricing import prices
from costhook.store import db, links, rollup
from costhook.usage import UNKNOWN_SUBAGENT
from tests.benchmarks import generate


def free_price(record):
    return 0, "computed"


def tables(path) -> dict:
    """Everything an import writes, in a comparable form."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = lambda sql: [dict(r) for r in conn.execute(sql)]  # noqa: E731
        cursors = [{k: v for k, v in r.items() if k != "updated_at"} for r in rows("SELECT * FROM cursors ORDER BY path")]
        return {
            "requests": rows("SELECT * FROM requests ORDER BY key"),
            # (not compared across databases: calls at the same millisecond follow each other in
            # rowid order, which the order of the writes decides, as it did for the views' pass)
            "links as a rebuild gives them": keyed_links(conn) == rebuilt(conn),
            "spend": rows("SELECT * FROM spend WHERE requests != 0 ORDER BY dim, key, bucket"),
            "sessions": rows("SELECT * FROM sessions ORDER BY session_id"),
            "subagents": rows("SELECT * FROM subagents ORDER BY session_id, agent_id"),
            "cursors": cursors,
            "schema": rows("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"),
        }
    finally:
        conn.close()


def a_tree(tmp_path):
    """A generated tree (sub-agents, resumed sessions copying calls) plus the odd cases: a
    response replayed under another requestId, text SQLite refuses."""
    tree = tmp_path / "claude"
    generate.generate_tree(tree, 600, seed=3, session_calls=15, replays=0.05)
    extra = tree / "projects" / "-work-odd"
    extra.mkdir()
    usage = dict(input_tokens=100, output_tokens=7, session_id="s-9")
    files = [
        ("s-9.jsonl", assistant("msg_x", request_id="req_b", isSidechain=True, **usage)),
        ("s-9-fork.jsonl", assistant("msg_x", request_id="req_a", isSidechain=True, **usage)),
        ("s-odd.jsonl", assistant("odd_1", cwd="/work/\udc80proj", session_id="s-odd") + assistant("odd_2", session_id="s-odd")),
    ]
    for mtime, (name, text) in enumerate(files, start=1):
        (extra / name).write_text(text, errors="surrogatepass")
        os.utime(extra / name, (2_000_000_000 + mtime, 2_000_000_000 + mtime))
    return tree


def test_first_import_gives_what_the_hooks_and_the_incremental_import_give(home, tmp_path, monkeypatch):
    tree = a_tree(tmp_path)
    listed = importer.transcript_files([tree])
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "hooks.db"))
    conn = db.connect()
    for path, _ in listed:
        ingest.ingest_file(conn, path, price=free_price)
    conn.close()
    one_by_one = tables(tmp_path / "hooks.db")
    assert len(one_by_one["requests"]) > 600 and any(r["agent_id"] for r in one_by_one["requests"])

    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "incremental.db"))
    conn = db.connect()
    importer.import_claude(conn, [tree], price=free_price, workers=1)
    conn.close()
    assert tables(tmp_path / "incremental.db") == one_by_one

    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "bulk.db"))
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "BULK_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "BATCH_BYTES", 1 << 20)  # several batches: calls seen twice across them
    monkeypatch.setattr(importer, "BULK_BATCH_BYTES", 1 << 20)
    db.connect().close()
    before = os.stat(tmp_path / "bulk.db").st_ino
    summary = importer.first_import(None, [tree], price=free_price, workers=2)
    inode = os.stat(tmp_path / "bulk.db").st_ino
    assert inode != before  # built in a file of its own, renamed into place
    assert summary.files == len(listed)
    assert tables(tmp_path / "bulk.db") == one_by_one
    leftovers = [n for n in os.listdir(tmp_path) if ".import-" in n or n.endswith(("-wal", "-shm", "-journal"))]
    assert leftovers == []
    conn = db.connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    monkeypatch.setattr(importer, "BULK_MIN_BYTES", 32 << 20)
    second = importer.first_import(None, [tree], price=free_price)  # nothing new: the incremental path
    assert second.bytes_read == 0 and second.changed == 0
    assert os.stat(tmp_path / "bulk.db").st_ino == inode

    fresh = tmp_path / "new" / "fresh.db"  # no database yet, nor its folder: made once the workers run
    monkeypatch.setenv("COSTHOOK_DB", str(fresh))
    monkeypatch.setattr(importer, "BULK_MIN_BYTES", 0)
    importer.first_import(None, [tree], price=free_price, workers=2)
    assert tables(fresh) == one_by_one
    assert (os.stat(fresh.parent).st_mode & 0o777, os.stat(fresh).st_mode & 0o777) == (0o700, 0o600)
    assert [n for n in os.listdir(fresh.parent) if ".import-" in n] == []


@pytest.mark.parametrize("first", [True, False])
def test_an_import_whose_worker_dies_stops_with_a_clear_error(home, tmp_path, monkeypatch, first):
    """A worker killed (out of memory, by hand) ends the import with ImportStopped, which
    the CLI prints as it is, and leaves nothing beside the database. (A multiprocessing.Pool
    waited for its result for ever.)"""
    tree = a_tree(tmp_path)
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "BULK_MIN_BYTES", 0 if first else 1 << 40)
    monkeypatch.setattr(importer, "_parse_file", lambda start: os._exit(9))  # (in the forked workers)
    db.connect().close()
    with pytest.raises(ImportStopped, match="worker processes ended abruptly"):
        importer.first_import(None, [tree], price=free_price, workers=2)
    folder = os.path.dirname(paths.db_file())
    assert [n for n in os.listdir(folder) if ".import-" in n] == []
    conn = db.connect()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_first_import_that_takes_every_call_for_seen_gives_the_same_tables(home, tmp_path, monkeypatch):
    """The first import keeps the keys and message ids written so far as bits of their
    hashes (ingest.Seen, a fixed 2 MB however many calls), which may take a new call for
    one seen before: that call goes through the merge instead, and the tables are the
    same. Here every call after the first is taken for seen; and the links rebuild writes
    its links a few at a time (links.GATHER_LINKS), as on a large tree."""
    tree = a_tree(tmp_path)
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "incremental.db"))
    conn = db.connect()
    importer.import_claude(conn, [tree], price=free_price, workers=1)
    conn.close()
    expected = tables(tmp_path / "incremental.db")

    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "bulk.db"))
    monkeypatch.setattr(importer, "BULK_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "BULK_BATCH_BYTES", 1 << 20)
    monkeypatch.setattr(ingest.Seen, "MASK", 0)  # one bit: every key and message id looks seen once one is
    monkeypatch.setattr(links, "GATHER_LINKS", 7)
    db.connect().close()
    importer.first_import(None, [tree], price=free_price, workers=1)
    monkeypatch.setattr(links, "GATHER_LINKS", 4_000)  # (tables() compares the links with a rebuild in one go)
    assert tables(tmp_path / "bulk.db") == expected


def iteration_lines(folder):
    """Calls that bill `usage.iterations` (a compaction pass, an advisor's sampling at
    another model), one streamed as two lines whose last brings the iterations, one seen
    again in a resumed session: each must be priced per sampling on every path."""
    folder.mkdir(parents=True)

    def line(message_id, iterations, session_id, **counts):
        data = json.loads(assistant(message_id, session_id=session_id, timestamp="2026-09-03T10:00:00.000Z", **counts))
        if iterations is not None:
            data["message"]["usage"]["iterations"] = iterations
        return json.dumps(data) + "\n"

    compacted = [{"type": "compaction", "input_tokens": 180000, "output_tokens": 3500},
                 {"type": "message", "input_tokens": 23000, "output_tokens": 1000}]
    advised = [{"type": "message", "input_tokens": 2, "output_tokens": 40, "cache_creation_input_tokens": 3496},
               {"type": "advisor_message", "model": "claude-opus-4-6", "input_tokens": 125169, "output_tokens": 1600},
               {"type": "message", "input_tokens": 2, "output_tokens": 60, "cache_read_input_tokens": 123520}]
    first = (line("it_1", compacted, "s-it", input_tokens=23000, output_tokens=1000)
             + line("it_2", None, "s-it", input_tokens=4, output_tokens=1, cache_write=3496, cache_read=123520)
             + line("it_2", advised, "s-it", input_tokens=4, output_tokens=100, cache_write=3496, cache_read=123520))
    (folder / "s-it.jsonl").write_text(first)
    (folder / "s-it-resumed.jsonl").write_text(line("it_1", compacted, "s-it-resumed", input_tokens=23000, output_tokens=1000)
                                               + line("it_3", compacted[:1], "s-it-resumed", input_tokens=5, output_tokens=5))
    for mtime, name in enumerate(("s-it.jsonl", "s-it-resumed.jsonl"), start=1):
        os.utime(folder / name, (2_000_000_100 + mtime, 2_000_000_100 + mtime))


def slow_parse_files(starts: list) -> list:
    """importer._parse_files, slower: the writer finds the workers' results not back yet
    (module-level: the pool sends it to the workers by name)."""
    time.sleep(0.02)
    return PARSE_FILES(starts)


PARSE_FILES = importer._parse_files


@pytest.mark.parametrize("layout", ["2.0.x", "iterations"])
def test_first_import_names_2_0_sub_agents_and_prices_iterations_as_the_other_paths(home, tmp_path, monkeypatch, layout):
    """A Claude Code 2.0.x tree (no agent-*.meta.json: a sub-agent takes the type its
    parent's Task call asked for, whichever file is read first) with resumed sessions; and
    calls that bill usage.iterations, priced with costhook's price table: the bulk path
    gives what the hooks and the incremental import give, `subagents` table included."""
    tree = tmp_path / "claude"
    generate.generate_tree(tree, 600, seed=11, session_calls=15, replays=0.05, meta=layout != "2.0.x")
    if layout == "iterations":
        iteration_lines(tree / "projects" / "-work-iter")
    price = prices.pricer()
    listed = importer.transcript_files([tree])
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "hooks.db"))
    conn = db.connect()
    for path, _ in listed:
        ingest.ingest_file(conn, path, price=price)
    conn.close()
    one_by_one = tables(tmp_path / "hooks.db")
    rows = one_by_one["requests"]
    if layout == "2.0.x":
        named = [r for r in rows if r["agent_id"] and r["agent_type"] != UNKNOWN_SUBAGENT]
        assert len(named) > 20 and len(one_by_one["subagents"]) > 5
    else:
        billed = {r["key"]: r for r in rows if r["iterations"]}
        assert set(billed) == {"it_1:req_it_1", "it_2:req_it_2", "it_3:req_it_3"}
        assert billed["it_1:req_it_1"]["cost_nanousd"] == 676_500_000  # both samplings (test_iterations)

    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "incremental.db"))
    conn = db.connect()
    importer.import_claude(conn, [tree], price=price, workers=1)
    conn.close()
    assert tables(tmp_path / "incremental.db") == one_by_one

    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "bulk.db"))
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "BULK_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "BATCH_BYTES", 256 << 10)  # many batches: a sub-agent's name often comes later
    monkeypatch.setattr(importer, "BULK_BATCH_BYTES", 256 << 10)
    db.connect().close()
    before = os.stat(tmp_path / "bulk.db").st_ino
    importer.first_import(None, [tree], price=price, workers=2)
    assert os.stat(tmp_path / "bulk.db").st_ino != before  # the bulk path
    assert tables(tmp_path / "bulk.db") == one_by_one

    # One batch, but what the writer has whenever it would wait for the workers (slow here)
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "idle.db"))
    monkeypatch.setattr(importer, "BULK_BATCH_BYTES", 1 << 40)
    monkeypatch.setattr(importer, "IDLE_BATCH_BYTES", 1)
    monkeypatch.setattr(importer, "_parse_files", slow_parse_files)
    monkeypatch.setattr(importer, "TASK_FILES", 4)
    commits = []
    monkeypatch.setattr(ingest, "commit", lambda *args, commit=ingest.commit: commits.append(commit(*args)))
    importer.first_import(None, [tree], price=price, workers=2)
    assert len(commits) > 3
    assert tables(tmp_path / "idle.db") == one_by_one


@pytest.mark.parametrize("helper", ["late", "failing"])
def test_a_first_import_sums_its_rollups_beside_it_exactly(home, tmp_path, monkeypatch, helper):
    """importer.RollupsBeside: the rollups are summed by another process from a copy of
    the rows as they were before Bulk.finish renamed sub-agents (those renames move the
    rollups on top). Here that process reads its copy late, after the importer had time
    to rename the rows, or fails: the rollups are those of the incremental import either
    way, and nothing is left beside the database."""
    tree = tmp_path / "claude"
    generate.generate_tree(tree, 300, seed=12, session_calls=15, replays=0.05, meta=False)  # (names come at the end)
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "incremental.db"))
    conn = db.connect()
    importer.import_claude(conn, [tree], price=free_price, workers=1)
    conn.close()
    expected = tables(tmp_path / "incremental.db")
    assert sum(1 for r in expected["spend"] if r["dim"] == "agent" and r["key"] != UNKNOWN_SUBAGENT) > 5

    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "bulk.db"))
    monkeypatch.setattr(importer, "BULK_MIN_BYTES", 0)
    connect = sqlite3.connect
    if helper == "late":
        def connect_late(path, *args, **kwargs):
            if str(path).endswith("-rollups"):
                time.sleep(1.5)
            return connect(path, *args, **kwargs)

        monkeypatch.setattr(sqlite3, "connect", connect_late)
    else:
        monkeypatch.setattr(importer, "_sum_rollups", lambda path: os._exit(1))
    added = []
    monkeypatch.setattr(rollup, "copy_attached", lambda *args, copy=rollup.copy_attached: added.append(copy(*args)))
    db.connect().close()
    importer.first_import(None, [tree], price=free_price, workers=1)
    assert tables(tmp_path / "bulk.db") == expected
    assert len(added) == (1 if helper == "late" else 0)  # (the other process's sums, or the importer's own)
    assert [n for n in os.listdir(tmp_path) if "-rollups" in n] == []


def test_a_first_import_over_what_hooks_saw_gives_what_the_incremental_import_gives(home, tmp_path, monkeypatch):
    """The database already holds what hooks recorded (some files of the tree; and a 2.0.x
    sub-agent's calls from a transcript the import does not read, unnamed there, whose
    parent's Task call is in the tree): the first import merges them into its new file as
    an incremental import into that database would, the sub-agent named."""
    tree = tmp_path / "claude"
    generate.generate_tree(tree, 600, seed=12, session_calls=15, replays=0.05, meta=False)
    agent_files = sorted((tree / "projects").glob("*/*/subagents/agent-*.jsonl"))
    moved = tmp_path / "elsewhere" / agent_files[0].relative_to(tree)
    moved.parent.mkdir(parents=True)
    agent_files[0].rename(moved)
    listed = importer.transcript_files([tree])
    price = prices.pricer()
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "bulk.db"))
    conn = db.connect()
    for path in [str(moved)] + [path for path, _ in listed[::7]]:
        ingest.ingest_file(conn, path, price=price)
    conn.close()
    hooks_saw = db_rows("SELECT agent_type FROM requests WHERE source_path = ?", (str(moved),))
    assert hooks_saw and {r["agent_type"] for r in hooks_saw} == {UNKNOWN_SUBAGENT}
    shutil.copy(tmp_path / "bulk.db", tmp_path / "incremental.db")

    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "incremental.db"))
    conn = db.connect()
    importer.import_claude(conn, [tree], price=price, workers=1)
    conn.close()
    incremental = tables(tmp_path / "incremental.db")
    names = {r["agent_type"] for r in incremental["requests"] if r["source_path"] == str(moved)}
    assert len(names) == 1 and names != {UNKNOWN_SUBAGENT}

    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "bulk.db"))
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "BULK_MIN_BYTES", 0)
    before = os.stat(tmp_path / "bulk.db").st_ino
    importer.first_import(None, [tree], price=price, workers=2)
    assert os.stat(tmp_path / "bulk.db").st_ino != before  # the bulk path
    assert tables(tmp_path / "bulk.db") == incremental


READER_CASES = [
    assistant("m1", content=[{"type": "tool_use", "name": "Skill", "input": {"skill": "deploy"}, "id": "t1"}]),
    assistant("m2", content="just text"),
    assistant("m3", content=["not a block", {"type": "tool_use", "name": "Bash", "input": {}}]),
    assistant("m4", content=[{"type": "tool_use", "name": "Bash", "input": "not an object"}]),
    assistant("m5", input_tokens=123456789012345678901234567890),
    assistant("m6", cwd="/w/\udc80"),
    assistant("m7", request_id=None, session_id=None),
    assistant("m8", isSidechain="yes", gitBranch=["x"], entrypoint=7),
    assistant("m9", timestamp="not a time"),
    assistant("m10", model="<synthetic>"),
    json.dumps({"type": "assistant", "message": None, "requestId": "r"}) + "\n",
    json.dumps({"type": "assistant", "message": {"id": "m11", "model": "claude-x", "usage": {"input_tokens": 5},
                                                "content": [{"type": "tool_use", "name": "Skill", "input": {"command": "/x"}}]},
                "type2": "user"}) + "\n",
    '{"type": "assistant", "type": "user", "message": {"role": "user", "content": "<command-name>/go</command-name>"}}\n',
    '{"type":"assistant","message":{"id":"m12","model":"claude-x","usage":{"input_tokens":NaN,"output_tokens":1}}}\n',
    '{"type":"assistant","message":{"id":"m13","model":"claude-x","usage":{"input_tokens":1,"output_tokens":2}}}\x00\x00\n',
    '{"type":"assistant","message":{"id":"m14","id":"m15","model":"claude-x","usage":{"output_tokens":3}}}\n',
    '{"type":"assistant","message":{"id":"m16","model":"claude-x","usage":{"output_tokens":1e400}}}\n',
    '{"type":"user","message":{"role":"user","content":"mentions \\"assistant\\" here"}}\n',
    assistant("m17", speed="fast", service_tier=5),
    # Counts the typed reader leaves to json: each read as usage.as_count reads it, or malformed.
    *('{"type":"assistant","message":{"id":"c%d","model":"claude-x","usage":{%s}}}\n' % (i, usage) for i, usage in enumerate((
        '"input_tokens":5.0', '"input_tokens":true', '"input_tokens":null', '"input_tokens":-3', '"input_tokens":2000000000',
        '"input_tokens":500000000000', '"output_tokens":"7"', '"cache_creation_input_tokens":9,"cache_creation":[]',
        '"cache_creation_input_tokens":9,"cache_creation":{"ephemeral_1h_input_tokens":20}',
        '"cache_creation_input_tokens":9,"cache_creation":{"ephemeral_1h_input_tokens":null}',
        '"cache_creation_input_tokens":9,"cache_creation":null', '"server_tool_use":{"web_search_requests":3}',
        '"server_tool_use":{"web_search_requests":2000000}', '"server_tool_use":{"web_search_requests":"x"}',
        '"server_tool_use":[]', '"speed":"","inference_geo":"us","service_tier":null',
        '"input_tokens":4,"iterations":[{"type":"message","input_tokens":4,"model":"claude-y"}]', '"iterations":"no"',
    ))),
]


def test_the_msgspec_reader_reads_assistant_lines_as_json_does(tmp_path):
    """Each case through parse_lines with and without fastparse: the same records, counts
    and reader state (a case it cannot read goes to json, as in the hook)."""
    tree = tmp_path / "claude"
    generate.generate_tree(tree, 200, seed=4, session_calls=15, replays=0.05)
    generated = [line for path, _ in importer.transcript_files([tree]) for line in open(path, "rb").read().split(b"\n") if line]
    lines = [case.encode("utf-8", "surrogatepass").rstrip(b"\n") for case in READER_CASES] + generated

    def parse(reader):
        transcript.use_assistant_reader(reader)
        try:
            state = transcript.ReadState()
            out = []
            for line in lines:  # one at a time, so one case's error cannot hide another's
                result = transcript.parse_lines([line], transcript.FileContext("/x/s.jsonl", session_id="s"), state)
                out.append((result.calls, result.malformed, result.synthetic, result.cost_state, state.to_json()))
            return out
        finally:
            transcript.use_assistant_reader(None)

    plain, fast = parse(None), parse(fastparse.assistant_line)
    assert len(plain) == len(lines) and sum(1 for calls, *_ in plain if calls) > 200
    for case, a, b in zip(lines, plain, fast):
        assert a == b, case[:200]
    taken = sum(1 for line in lines if fastparse.assistant_line(line) is not None)
    assert taken > 200  # the fast path did read most assistant lines


def block_lines(tmp_path) -> list:
    """Lines that exercise every branch of the line tests: a 2.0.x tree (sub-agents named
    by their spawn's result, slash commands, cost-state lines), the reader cases, and a
    slash command and a spawn whose following lines are user lines of every kind."""
    tree = tmp_path / "claude20"
    generate.generate_tree(tree, 300, seed=5, meta=False, session_calls=15, replays=0.05)
    lines = [line for path, _ in importer.transcript_files([tree]) for line in open(path, "rb").read().split(b"\n") if line]
    task = [{"type": "tool_use", "name": "Task", "id": "toolu_t1", "input": {"subagent_type": "reviewer"}}]
    live = [
        '{"type":"user","message":{"role":"user","content":"<command-name>/ship</command-name>"}}',
        assistant("b1"),
        '{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"x","content":"ok"}]}}',
        '{"type":"attachment","note":"\\"user\\" in passing"}',
        '{"type":"user","isMeta":true,"message":{"role":"user","content":"meta"}}',
        '{"type":"user","message":{"role":"user","content":"a new prompt"}}',
        assistant("b2", content=task),
        '{"type":"user","sessionId":"s-1","message":{"role":"user","content":[{"type":"tool_result",'
        '"tool_use_id":"toolu_t1","content":"done agentId: a77"}]}}',
        assistant("b3", agent_id="a77"),
        '{"type":"cost-state","sessionId":"s-1","totalCostUSD":1.5}',
        "", "   ", "not json \"assistant\"", '{"type":"user","message":{"content":"<command-name>/x</command-name>"}}\r',
    ]
    cases = [case.rstrip("\n").encode("utf-8", "surrogatepass") for case in READER_CASES]
    live = [line.rstrip("\n").encode() for line in live]
    return live + lines[:400] + cases + lines[400:] + live


@pytest.mark.parametrize("fast,finder", [(False, False), (True, False), (True, True)])
def test_a_block_is_read_as_its_lines_are(tmp_path, fast, finder):
    """transcript.parse_block (a find per marker over the whole block, or one pass for all
    of them found by fastparse.marker_finder; only the lines holding one split out) gives
    parse_lines' records, counts and reader state, however the lines fall into blocks; a
    last line without its newline is a line too."""
    import random

    lines = block_lines(tmp_path)
    # Markers that overlap each other and the `"user"` that follows a slash command
    lines += [b'{"type":"cost-state"assistant","x":"<command-name>"cost-state"}', b'{"a":"<command-name>/y</command-name>"}',
              b'{"type":"user","t":"\"user\"assistant\"cost-state\""}', assistant("b9").rstrip("\n").encode()]
    ctx = transcript.FileContext("/x/s.jsonl", session_id="s")

    def outcome(result, state):
        return (result.calls, result.subagents, result.unnamed, result.cost_state, result.malformed, result.synthetic,
                state.to_json())

    transcript.use_assistant_reader(fastparse.assistant_line if fast else None)
    transcript.use_marker_finder(fastparse.marker_finder() if finder else None)
    assert not finder or fastparse.marker_finder() is not None  # (installed with the package)
    try:
        state = transcript.ReadState()
        expected = outcome(transcript.parse_lines(lines, ctx, state), state)
        assert expected[0] and expected[1] and expected[3] and expected[4] and expected[5]  # every kind of line is there
        rng = random.Random(7)
        for cuts in ([], [1], [2, 3, 5, 7], sorted(rng.sample(range(1, len(lines)), 40)), list(range(1, len(lines)))):
            state, result = transcript.ReadState(), transcript.ParseResult()
            for begin, end in zip([0, *cuts], [*cuts, len(lines)]):
                block = b"".join(line + b"\n" for line in lines[begin:end])
                transcript.parse_block(block[:-1] if end == len(lines) else block, ctx, state, result)
            assert outcome(result, state) == expected, cuts[:5]
    finally:
        transcript.use_assistant_reader(None)
        transcript.use_marker_finder(None)


SLOW_WRITER = """
import os, time
from costhook.store import db, writes
path = os.environ["COSTHOOK_DB"]
conn = db.connect()
inode, deadline = os.fstat(os.open(path, os.O_RDONLY)).st_ino, time.monotonic() + 10
while os.stat(path).st_ino == inode and time.monotonic() < deadline:
    time.sleep(0.01)
with db.transaction(conn):
    writes.record_tool_call(conn, {"tool_use_id": "toolu_slow", "agent": "claude", "session_id": "live-1", "tool_name": "Slow"})
"""


def test_hooks_that_fire_during_a_first_import_lose_nothing(home, tmp_path):
    """A real `costhook import` into a new database while real `costhook hook` processes keep
    firing (a session whose transcript, inside the imported tree, keeps growing; each call
    followed by PostToolUse): every tool call they recorded, the session facts and every
    call of the growing transcript end up in the database the import put in place, once."""
    tree = tmp_path / "claude"
    generate.generate_tree(tree, 3_000, seed=5, session_calls=15)
    live = tree / "projects" / "-work-live" / "live-1.jsonl"
    live.parent.mkdir(parents=True)
    live.write_text(assistant("live_0", session_id="live-1", output_tokens=1))
    # Another session's call priced in the same group as the live calls (same 15 minutes,
    # project, model): only the import sees it, the hooks' database does not.
    (tree / "projects" / "-work-other").mkdir()
    (tree / "projects" / "-work-other" / "other-1.jsonl").write_text(assistant("other_0", session_id="other-1", output_tokens=5))
    env = {**os.environ}

    def hook(payload: dict) -> int:
        """A hook, and the work it leaves in the background (SessionStart, PostToolUse after
        Bash and Stop answer at once and go on detached: still during the import)."""
        base = {"session_id": "live-1", "transcript_path": str(live), "cwd": "/work/live"}
        return run_hook({**base, **payload}, timeout=60).returncode

    assert hook({"hook_event_name": "SessionStart", "source": "startup", "model": "claude-sonnet-4-5-20250929"}) == 0
    db_file = home / "costhook.db"
    inode = os.stat(db_file).st_ino
    assert db_rows("SELECT count(*) AS n FROM requests") == [{"n": 1}]  # the hook read the live transcript

    fired, stop = [], threading.Event()

    def keep_firing():
        n = 0
        while not stop.is_set() or n < len(fired) + 3 and len(fired) < 3:
            n += 1
            with open(live, "a") as f:
                f.write(assistant(f"live_{n}", session_id="live-1", output_tokens=n + 1))
            code = hook({"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"},
                         "tool_response": {"stdout": "x"}, "tool_use_id": f"toolu_{n}", "duration_ms": n})
            fired.append((n, code, time.monotonic()))

    thread = threading.Thread(target=keep_firing)
    thread.start()
    started = time.monotonic()
    try:
        proc = subprocess.Popen([COSTHOOK, "import", "--claude-dir", str(tree), "-q"], stderr=subprocess.PIPE, env=env)
        while not any(".import-" in name for name in os.listdir(home)) and proc.poll() is None:
            time.sleep(0.01)
        # A slow writer: connected while the import fills its own file, it writes only once
        # that file has replaced the database (or after 10 s): it must be made to wait, or
        # its write would go to the file being replaced.
        slow = subprocess.run([sys.executable, "-c", SLOW_WRITER], env=env, timeout=120, capture_output=True, text=True)
        _, stderr = proc.communicate(timeout=600)
    finally:
        ended = time.monotonic()
        stop.set()
        thread.join(timeout=120)
    assert proc.returncode == 0, stderr
    assert slow.returncode == 0, slow.stderr
    assert db_rows("SELECT tool_name FROM tool_calls WHERE tool_use_id = 'toolu_slow'") == [{"tool_name": "Slow"}]
    assert all(code == 0 for _, code, _ in fired)
    during = [n for n, _, at in fired if started < at < ended]
    assert len(during) >= 3, "the hooks must overlap the import"
    assert os.stat(db_file).st_ino != inode  # the bulk path: a new file, renamed into place

    assert hook({"hook_event_name": "Stop", "stop_hook_active": False}) == 0  # reads what is left of the transcript
    n_live = len(fired) + 1
    tools = db_rows("SELECT tool_use_id, duration_ms FROM tool_calls WHERE tool_use_id != 'toolu_slow' ORDER BY duration_ms")
    assert tools == [{"tool_use_id": f"toolu_{n}", "duration_ms": n} for n, _, _ in fired]
    assert db_rows("SELECT source, model FROM sessions WHERE session_id = 'live-1'") == [
        {"source": "startup", "model": "claude-sonnet-4-5-20250929"}]
    live_rows = db_rows("SELECT key, output_tokens FROM requests WHERE session_id = 'live-1' ORDER BY output_tokens")
    assert live_rows == [{"key": f"live_{n}:req_live_{n}", "output_tokens": n + 1} for n in range(n_live)]
    expected = json.loads((tree / "expected.json").read_text())
    assert db_rows("SELECT count(*) AS n FROM requests WHERE session_id != 'live-1'") == [{"n": expected["calls"] + 1}]
    spend = db_rows("SELECT sum(requests) AS n FROM spend WHERE dim = 'global'")
    assert spend == [{"n": expected["calls"] + 1 + n_live}]
    assert [n for n in os.listdir(home) if ".import-" in n] == []
    # The price_groups rollup (whatif) too: what the hooks wrote meanwhile was merged, not copied over it.
    from costhook.store import rollup

    conn = sqlite3.connect(db_file)
    try:
        kept = sorted(conn.execute("SELECT * FROM price_groups").fetchall(), key=repr)
        conn.execute("BEGIN")
        rollup.rebuild_prices(conn)
        assert kept == sorted(conn.execute("SELECT * FROM price_groups").fetchall(), key=repr)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_a_first_import_killed_leaves_the_database_as_it_was(home, tmp_path):
    """kill -9 during the bulk load: the database is untouched (and usable), the new file is
    left behind; the next import removes it, and ends with every call once."""
    tree = tmp_path / "claude"
    expected = generate.generate_tree(tree, 3_000, seed=7, session_calls=15, replays=0.02)
    live = tree / "projects" / "-work-live" / "live-1.jsonl"
    live.parent.mkdir(parents=True)
    live.write_text(assistant("live_0", session_id="live-1"))
    payload = {"hook_event_name": "Stop", "session_id": "live-1", "transcript_path": str(live), "cwd": "/w", "stop_hook_active": False}
    assert run_hook(payload, timeout=60).returncode == 0
    probe, conn, _ = db.new_bulk_file(str(tmp_path / "probe.db"))
    schema_only = os.path.getsize(probe)
    conn.close()
    db.remove_bulk_files(probe)
    proc = subprocess.Popen([COSTHOOK, "import", "--claude-dir", str(tree), "-q"], stderr=subprocess.DEVNULL)
    while not any(".import-" in name for name in os.listdir(home)):
        assert proc.poll() is None, "the import ended before its new file appeared"
        time.sleep(0.005)
    # Killed once its rows are being written (the file outgrows a new one holding only the
    # schema): a sleep of 0.3 s here outlasted the whole import once it got quicker.
    new_file = os.path.join(home, next(n for n in os.listdir(home) if ".import-" in n and n.endswith(".tmp")))
    deadline = time.monotonic() + 0.5
    while os.path.getsize(new_file) <= schema_only and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()
    proc.wait(timeout=60)
    assert [n for n in os.listdir(home) if ".import-" in n and n.endswith(".tmp")]  # killed before the rename
    conn = db.connect()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert [tuple(r) for r in conn.execute("SELECT key FROM requests")] == [("live_0:req_live_0",)]
    conn.close()
    assert subprocess.run([COSTHOOK, "import", "--claude-dir", str(tree), "-q"], timeout=600).returncode == 0
    assert [n for n in os.listdir(home) if ".import-" in n] == []
    assert db_rows("SELECT count(*) AS n FROM requests") == [{"n": expected["calls"] + 1}]
    assert db_rows("SELECT sum(requests) AS n FROM spend WHERE dim = 'global'") == [{"n": expected["calls"] + 1}]


def test_a_hook_fails_open_when_a_first_import_holds_the_database_too_long(home, tmp_path):
    """An import stopped while it puts its file in place (holding the open lock): a gate
    (PostToolUse after Agent, with a budget to judge: the agent waits for it) waits only
    its busy timeout, then exits 0 in silence with one line in errors.log."""
    import fcntl

    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 1000\n')
    db.connect().close()
    fd = os.open(db.open_lock_file(str(home / "costhook.db")), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        payload = {"hook_event_name": "PostToolUse", "session_id": "s", "transcript_path": "", "cwd": "/w",
                   "tool_name": "Agent", "tool_use_id": "toolu_1", "tool_input": {}, "tool_response": {}}
        started = time.monotonic()
        proc = run_hook(payload, timeout=60, wait=False)
        took = time.monotonic() - started
    finally:
        os.close(fd)
    wait_for_background()
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert took < 6
    assert "first import" in (home / "errors.log").read_text()


class OddText(str):
    """A value of a type marshal does not take (module-level: pickle finds it by name)."""


def test_prepared_rows_reach_the_writer_as_they_left_the_worker():
    """ingest.Prepared travels to the writer as marshal's bytes (plain values), or, when a
    value is of a type marshal does not take, pickled as it is: the same rows either way,
    a repeated value still one object."""
    import pickle

    shared = "session-1"
    plain = ingest.Prepared({("key", "session_id", "cost_nanousd"): [("a", shared, 5), ("b", shared, None)]},
                            {}, {shared: {"project": "/p"}})
    odd = ingest.Prepared({("key", "tools"): [("c", OddText("[]"))]}, {(1, 2): [3]}, {})
    for prepared, travels_as in ((plain, bytes), (odd, tuple)):
        assert isinstance(prepared.__getstate__(), travels_as)
        back = pickle.loads(pickle.dumps(prepared))
        assert (back.shapes, back.spend, back.sessions) == (prepared.shapes, prepared.spend, prepared.sessions)
    rows = pickle.loads(pickle.dumps(plain)).shapes[("key", "session_id", "cost_nanousd")]
    assert rows[0][1] is rows[1][1]
