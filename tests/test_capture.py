"""Transcript → rows: dedup, final usage, incremental reads, sub-agents, attribution."""

import json
import os
import random

import pytest
from conftest import ACME_SESSION, ACME_SUBAGENT, EXAMPLES, db_rows
from transcript_lines import assistant, tool_use, user

from costhook.pricing.prices import pricer
from costhook.agents.claude import importer
from costhook.agents.claude import ingest
from costhook.store import db, writes

# Expected totals of examples/claude, computed by hand: each message counted once with its
# final usage (cross-file de-dup: msg J is in both legacy files).
GLOBAL = {"calls": 16, "input": 211_359, "output": 6_730, "cw5m": 28_090, "cw1h": 17_480, "read": 402_370, "searches": 2}
ACME_MAIN = {"calls": 6, "input": 29, "output": 982, "cw5m": 5_550, "cw1h": 17_480, "read": 102_270, "searches": 2}
ACME_SUB = {"calls": 2, "input": 18, "output": 398, "cw5m": 5_840, "cw1h": 0, "read": 5_200, "searches": 0}


def free_price(record):
    return 0, "computed"


def connect():
    return db.connect()


def token_totals(where="1", args=()):
    row = db_rows(
        f"""SELECT count(*) AS calls, sum(input_tokens) AS input, sum(output_tokens) AS output,
                   sum(cache_write_5m_tokens) AS cw5m, sum(cache_write_1h_tokens) AS cw1h,
                   sum(cache_read_tokens) AS read, sum(web_search_requests) AS searches
            FROM requests WHERE {where}""",
        args,
    )[0]
    return {k: v or 0 for k, v in row.items()}


def test_import_fixture_tree_gives_exact_deduplicated_totals(home, claude_dir):
    conn = connect()
    summary = importer.import_claude(conn, [claude_dir], price=free_price)
    assert summary.files == 5
    assert token_totals() == GLOBAL
    assert token_totals("session_id = ? AND agent_id IS NULL", (ACME_SESSION,)) == ACME_MAIN
    assert token_totals("agent_id = ?", (ACME_SUBAGENT,)) == ACME_SUB
    # The final streamed line wins: message A's output grew 12 → 12 → 187.
    row = db_rows("SELECT * FROM requests WHERE message_id LIKE 'msg_01AcmeA%'")[0]
    assert row["output_tokens"] == 187
    assert row["cache_write_5m_tokens"] == 2450 and row["cache_write_1h_tokens"] == 16000
    # …and its time is the earliest of its lines.
    assert row["timestamp"] == "2026-11-18T09:00:04.120Z"
    assert summary.synthetic == 2  # <synthetic> lines are not API calls


def test_import_twice_changes_nothing(home, claude_dir):
    conn = connect()
    importer.import_claude(conn, [claude_dir], price=free_price)
    before = db_rows("SELECT * FROM requests ORDER BY key")
    second = importer.import_claude(conn, [claude_dir], price=free_price)
    assert second.changed == 0 and second.bytes_read == 0
    assert db_rows("SELECT * FROM requests ORDER BY key") == before


def test_reimport_after_cursor_loss_does_not_double_count(home, claude_dir):
    conn = connect()
    importer.import_claude(conn, [claude_dir], price=free_price)
    conn.execute("DELETE FROM cursors")
    importer.import_claude(conn, [claude_dir], price=free_price)
    assert token_totals() == GLOBAL


def test_tools_and_subagent_attribution(home, claude_dir):
    conn = connect()
    importer.import_claude(conn, [claude_dir], price=free_price)
    tools = {r["message_id"][:13]: json.loads(r["tools"]) for r in db_rows("SELECT message_id, tools FROM requests")}
    assert tools["msg_01AcmeA11"] == ["Read"]
    assert tools["msg_01AcmeD44"] == ["Agent"]
    assert tools["msg_01AcmeF66"] == []
    sub = db_rows("SELECT * FROM requests WHERE agent_id = ?", (ACME_SUBAGENT,))
    assert {r["agent_type"] for r in sub} == {"Explore"}
    assert {r["session_id"] for r in sub} == {ACME_SESSION}
    assert {r["parent_session_id"] for r in sub} == {ACME_SESSION}
    session = db_rows("SELECT * FROM sessions WHERE session_id = ?", (ACME_SESSION,))[0]
    assert session["project"] == "/home/dev/acme-api" and session["git_branch"] == "main"
    # The CLI's own running total is kept for reconciliation, never added to usage.
    assert session["reported_cost_nanousd"] == 315_602_500


def test_truncated_last_line_waits_for_its_end(home, tmp_path):
    path = tmp_path / "s-1.jsonl"
    full = assistant("msg_1", output_tokens=50)
    path.write_text(full[:-40])
    conn = connect()
    first = ingest.ingest_file(conn, str(path), price=free_price)
    assert first.calls == 0 and first.pending == len(full) - 40
    with open(path, "a") as f:
        f.write(full[-40:])
    second = ingest.ingest_file(conn, str(path), price=free_price)
    assert second.calls == 1
    assert token_totals()["output"] == 50


def stream_lines(n_calls: int, seed: int) -> str:
    """A transcript where every call is streamed over 1-3 lines with growing output."""
    rng = random.Random(seed)
    text = user("start")
    for i in range(n_calls):
        final = rng.randint(1, 5000)
        blocks = rng.randint(1, 3)
        for b in range(blocks):
            out = final if b == blocks - 1 else rng.randint(0, final)
            text += assistant(
                f"msg_{i}",
                input_tokens=i + 1,
                output_tokens=out,
                cache_write=100 * i,
                cache_write_1h=50 * i,
                cache_read=7 * i,
                content=[tool_use("Bash", f"toolu_{i}_{b}")] if b == 1 else [{"type": "text", "text": "x"}],
                timestamp=f"2026-11-20T10:{i // 60 % 60:02d}:{i % 60:02d}.{b:03d}Z",
            )
    return text


def expected_of(text: str) -> dict:
    """Independent oracle: last line of each message id wins (its output is the largest)."""
    calls = {}
    for line in text.splitlines():
        data = json.loads(line)
        if data["type"] == "assistant":
            calls[data["message"]["id"]] = data["message"]["usage"]
    return {
        "calls": len(calls),
        "input": sum(u["input_tokens"] for u in calls.values()),
        "output": sum(u["output_tokens"] for u in calls.values()),
        "read": sum(u["cache_read_input_tokens"] for u in calls.values()),
    }


@pytest.mark.parametrize("seed", range(6))
def test_any_chunking_gives_identical_totals(home, tmp_path, seed):
    text = stream_lines(40, seed).encode()
    path = tmp_path / f"chunked-{seed}.jsonl"
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(text)), 25))
    conn = connect()
    written = 0
    for cut in cuts + [len(text)]:
        with open(path, "ab") as f:
            f.write(text[written:cut])
        written = cut
        ingest.ingest_file(conn, str(path), price=free_price)
    got = token_totals()
    want = expected_of(text.decode())
    assert {k: got[k] for k in want} == want
    # Tool names spread over a call's lines accumulate on its single row.
    rows = db_rows("SELECT tools FROM requests")
    assert sum(json.loads(r["tools"]) == ["Bash"] for r in rows) == text.count(b'"name": "Bash"') and rows


def test_shrunk_or_replaced_file_is_reread_without_double_counting(home, tmp_path):
    path = tmp_path / "s-1.jsonl"
    path.write_text(assistant("msg_1") + assistant("msg_2"))
    conn = connect()
    ingest.ingest_file(conn, str(path), price=free_price)
    # Replaced by a shorter file (new inode) holding one old and one new call.
    replacement = tmp_path / "new.jsonl"
    replacement.write_text(assistant("msg_2") + assistant("msg_3"))
    os.replace(replacement, path)
    ingest.ingest_file(conn, str(path), price=free_price)
    assert token_totals()["calls"] == 3
    # Truncated in place and rewritten (same inode, different head).
    with open(path, "w") as f:
        f.write(assistant("msg_4", input_tokens=1))
    ingest.ingest_file(conn, str(path), price=free_price)
    assert token_totals()["calls"] == 4


def test_call_belongs_to_the_session_on_its_own_line(home, tmp_path):
    path = tmp_path / "resumed-session.jsonl"
    path.write_text(assistant("msg_old", session_id="original") + assistant("msg_new", session_id="resumed-session"))
    conn = connect()
    ingest.ingest_file(conn, str(path), price=free_price)
    sessions = {r["message_id"]: r["session_id"] for r in db_rows("SELECT message_id, session_id FROM requests")}
    assert sessions == {"msg_old": "original", "msg_new": "resumed-session"}


def test_malformed_lines_are_skipped_and_counted(home, tmp_path):
    path = tmp_path / "s-1.jsonl"
    good = assistant("msg_ok", output_tokens=5)
    bad_utf8 = b'{"type":"assistant","message":\xff\xfe}\n'
    nul_padded = b"\x00\x00\x00" + assistant("msg_nul", output_tokens=7).encode()
    path.write_bytes(
        b'{"type":"assistant", trunc\n' + bad_utf8 + nul_padded + b"[1,2,3]\n" + good.encode()
        + assistant("msg_neg", output_tokens=-5, input_tokens=10**15).encode()
    )
    conn = connect()
    result = ingest.ingest_file(conn, str(path), price=free_price)
    assert result.malformed == 2
    rows = {r["message_id"]: r for r in db_rows("SELECT * FROM requests")}
    assert set(rows) == {"msg_ok", "msg_nul", "msg_neg"}
    assert rows["msg_neg"]["output_tokens"] == 0 and rows["msg_neg"]["input_tokens"] == 0


def test_skill_and_slash_command_attribution(home, tmp_path):
    path = tmp_path / "s-1.jsonl"
    path.write_text(
        user("<command-name>/review</command-name><command-args>pr 12</command-args>")
        + assistant("msg_1", content=[tool_use("Skill", "toolu_s", skill="pdf-tools")])
        + assistant("msg_2", content=[tool_use("mcp__github__create_issue", "toolu_m")])
        + user("plain question")
        + assistant("msg_3")
    )
    conn = connect()
    ingest.ingest_file(conn, str(path), price=free_price)
    rows = {r["message_id"]: r for r in db_rows("SELECT * FROM requests")}
    assert rows["msg_1"]["skill"] == "/review"
    assert rows["msg_2"]["skill"] == "pdf-tools"
    assert json.loads(rows["msg_2"]["tools"]) == ["mcp__github__create_issue"]
    assert rows["msg_3"]["skill"] is None


def test_skill_state_survives_incremental_reads(home, tmp_path):
    path = tmp_path / "s-1.jsonl"
    path.write_text(user("<command-name>/deploy</command-name>"))
    conn = connect()
    ingest.ingest_file(conn, str(path), price=free_price)
    with open(path, "a") as f:
        f.write(assistant("msg_1"))
    ingest.ingest_file(conn, str(path), price=free_price)
    assert db_rows("SELECT skill FROM requests")[0]["skill"] == "/deploy"


def test_cache_write_without_breakdown_is_five_minutes(home, tmp_path):
    path = tmp_path / "s-1.jsonl"
    path.write_text(assistant("msg_1", cache_write=900))
    conn = connect()
    ingest.ingest_file(conn, str(path), price=free_price)
    row = db_rows("SELECT * FROM requests")[0]
    assert (row["cache_write_5m_tokens"], row["cache_write_1h_tokens"]) == (900, 0)


def test_concurrent_imports_store_each_call_once(home, claude_dir):
    """Two processes importing the same tree at once: the unique key and IMMEDIATE
    transactions keep every call single."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from costhook.store import db; from costhook.agents.claude import importer;"
        "importer.import_claude(db.connect(), [Path(sys.argv[1])], price=lambda r: (0, 'computed'))"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(claude_dir)]) for _ in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    assert token_totals() == GLOBAL



def test_an_import_that_meets_a_hook_between_its_check_and_its_write(home, tmp_path, monkeypatch):
    """The import decides which prepared rows are new by looking them up; a hook (a real
    process) that stores the same calls just before the import's transaction begins must
    find them merged, not make the import fail on the unique key or count them twice."""
    import subprocess
    import sys

    path = tmp_path / "s-1.jsonl"
    path.write_text(stream_lines(20, seed=5))
    begin = db.transaction.__enter__
    hooks = []

    def a_hook_gets_there_first(self):
        if not hooks:
            code = "import sys; from costhook.store import db; from costhook.agents.claude import ingest; ingest.ingest_file(db.connect(), sys.argv[1])"
            hooks.append(subprocess.run([sys.executable, "-c", code, str(path)], timeout=60).returncode)
        return begin(self)

    monkeypatch.setattr(db.transaction, "__enter__", a_hook_gets_there_first)
    conn = connect()
    importer.import_claude(conn, [tmp_path], price=pricer(), workers=1, files=[(str(path), path.stat().st_size)])
    assert hooks == [0]
    want = expected_of(path.read_text())
    got = token_totals()
    assert (got["calls"], got["input"], got["output"], got["read"]) == (20, want["input"], want["output"], want["read"])
    spend = db_rows("SELECT sum(requests) AS n, sum(output_tokens) AS o FROM spend WHERE dim = 'global'")
    assert spend == [{"n": 20, "o": want["output"]}]


def test_fixture_costs_are_exact_to_the_nano_dollar(home, claude_dir):
    """Real prices: hand-computed in the fixtures' README (Anthropic's long-context rule for
    bigctx, web searches at $0.01, 5 min and 1 h cache writes at their own rates)."""
    conn = connect()
    importer.import_claude(conn, [claude_dir])
    costs = {
        r["session_id"]: r["cost"]
        for r in db_rows("SELECT session_id, sum(cost_nanousd) AS cost FROM requests GROUP BY session_id")
    }
    assert costs == {
        ACME_SESSION: 315_145_500,  # Opus 4.5 main $0.3053175 + Haiku 4.5 sub-agent $0.009828
        "2b8d4f6a-1c3e-4a5b-9d7f-0e2c4a6b8d1f": 1_565_700_000,  # Sonnet 4.5, two calls over 200K
        "0d4c2b1a-9e8f-4a7b-8c6d-5e4f3a2b1c0d": 180_150_000,
        "9e8f7a6b-5c4d-4e3f-8a2b-1c0d9e8f7a6b": 34_665_000,  # only msg K: J is the original session's
    }
    assert db_rows("SELECT count(*) AS n FROM requests WHERE cost_source != 'computed'") == [{"n": 0}]


@pytest.mark.parametrize("window_bytes", [0, 5000, 1 << 30])
def test_parallel_import_gives_the_same_rows_as_serial(home, claude_dir, tmp_path, monkeypatch, window_bytes):
    """Big imports parse in worker processes; the rows must not depend on that."""
    extra = claude_dir / "projects" / "-work-proj"
    extra.mkdir()
    for n in range(6):
        (extra / f"s-{n}.jsonl").write_text(stream_lines(30, seed=n))
    conn = connect()
    importer.import_claude(conn, [claude_dir], price=free_price, workers=1)
    serial = db_rows("SELECT * FROM requests ORDER BY key")
    spend = db_rows("SELECT * FROM spend WHERE requests != 0 ORDER BY dim, key, bucket")
    conn.close()
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "parallel.db"))
    monkeypatch.setattr(importer, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(importer, "WINDOW_BYTES", window_bytes)  # a window of a file or two
    monkeypatch.setattr(importer, "WINDOW_FILES", 3)
    conn = connect()
    summary = importer.import_claude(conn, [claude_dir], price=free_price, workers=2)
    assert summary.files == 11
    assert db_rows("SELECT * FROM requests ORDER BY key") == serial
    assert db_rows("SELECT * FROM spend WHERE requests != 0 ORDER BY dim, key, bucket") == spend


@pytest.mark.parametrize("sidechain_first", [False, True])
def test_a_replayed_response_is_one_row_whatever_the_order(home, tmp_path, sidechain_first):
    """A /btw replay repeats the parent's message.id under another requestId: one bill."""
    main = assistant("msg_r", request_id="req_main", input_tokens=100, output_tokens=7, timestamp="2026-11-20T10:00:00.000Z")
    replay = assistant("msg_r", request_id="req_side", input_tokens=100, output_tokens=7, isSidechain=True,
                       timestamp="2026-11-20T10:05:00.000Z")
    path = tmp_path / "s-1.jsonl"
    conn = connect()
    for line in ([replay, main] if sidechain_first else [main, replay]):
        with open(path, "a") as f:
            f.write(line)
        ingest.ingest_file(conn, str(path), price=free_price)
    rows = db_rows("SELECT key, is_sidechain, timestamp FROM requests")
    assert rows == [{"key": "msg_r:req_main", "is_sidechain": 0, "timestamp": "2026-11-20T10:00:00.000Z"}]
    spend = db_rows("SELECT sum(requests) AS n, sum(input_tokens) AS i FROM spend WHERE dim = 'global'")
    assert spend == [{"n": 1, "i": 100}]


def test_an_import_batching_many_files_gives_the_rows_of_one_file_at_a_time(home, claude_dir, tmp_path, monkeypatch):
    """The import commits many files per transaction; the hook one chunk at a time. Same rows,
    same rollup: also for a response replayed in two sidechain files (the first seen wins,
    not the smallest key) and a call copied into a resumed session's file."""
    extra = claude_dir / "projects" / "-work-proj"
    extra.mkdir()
    for n in range(4):
        (extra / f"s-{n}.jsonl").write_text(stream_lines(25, seed=10 + n))
    usage = dict(input_tokens=100, output_tokens=7, session_id="s-9")
    files = [
        ("s-9.jsonl", assistant("msg_x", request_id="req_b", isSidechain=True, **usage)),
        ("s-9-fork.jsonl", assistant("msg_x", request_id="req_a", isSidechain=True, **usage)),
        ("s-9-resumed.jsonl", assistant("msg_x", request_id="req_b", isSidechain=True, **usage)
                              + assistant("msg_y", request_id="req_y", **usage)),
    ]
    for mtime, (name, text) in enumerate(files, start=1):
        (extra / name).write_text(text)
        os.utime(extra / name, (2_000_000_000 + mtime, 2_000_000_000 + mtime))
    listed = importer.transcript_files([claude_dir])
    conn = connect()
    for path, _ in listed:
        ingest.ingest_file(conn, path, price=free_price)
    one_by_one = db_rows("SELECT * FROM requests ORDER BY key")
    spend = db_rows("SELECT * FROM spend WHERE requests != 0 ORDER BY dim, key, bucket")
    conn.close()
    assert [r["key"] for r in one_by_one if r["message_id"] == "msg_x"] == ["msg_x:req_b"]
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "batched.db"))
    conn = connect()
    summary = importer.import_claude(conn, [claude_dir], price=free_price, workers=1)
    assert summary.files == len(listed)
    assert db_rows("SELECT count(*) AS n FROM cursors") == [{"n": len(listed)}]
    assert db_rows("SELECT * FROM requests ORDER BY key") == one_by_one
    assert db_rows("SELECT * FROM spend WHERE requests != 0 ORDER BY dim, key, bucket") == spend


def test_prepared_rows_meet_stored_and_repeated_calls_like_the_hook(home, claude_dir, tmp_path, monkeypatch):
    """An import inserts a worker's prepared row as it is only when no other sighting of
    the call is in the batch or the database. Here: calls with their own ids (inserted as
    they are), a file a hook had read half of (calls streamed across the cut meet their
    stored rows), a copy of a call in a second file, a replay under another requestId,
    and a project path SQLite refuses (a lone surrogate: the batch falls back to merging).
    Rows and rollup equal the hook's, file by file."""
    extra = claude_dir / "projects" / "-work-proj"
    extra.mkdir()

    def own_ids(text: str, prefix: str) -> str:
        return text.replace('"msg_', f'"{prefix}msg_').replace('"req_msg_', f'"req_{prefix}msg_')

    for n in range(3):
        (extra / f"s-{n}.jsonl").write_text(own_ids(stream_lines(25, seed=20 + n), f"f{n}-"))
    half = own_ids(stream_lines(30, seed=40), "half-")
    cut = half.index("\n", len(half) // 2) + 1
    copied = assistant("f0-msg_3", request_id="req_f0-msg_3", session_id="s-copy", output_tokens=9999)
    replay = assistant("f1-msg_4", request_id="req_other", isSidechain=True, session_id="s-copy")
    odd = assistant("odd_1", cwd="/work/\udc80proj", session_id="s-odd") + assistant("odd_2", session_id="s-odd")
    files = [("s-half.jsonl", half[:cut]), ("s-copy.jsonl", copied + replay), ("s-odd.jsonl", odd)]
    for mtime, (name, text) in enumerate(files, start=1):
        (extra / name).write_text(text)
        os.utime(extra / name, (2_000_000_000 + mtime, 2_000_000_000 + mtime))

    def hook_read_half_then_finish(conn):
        ingest.ingest_file(conn, str(extra / "s-half.jsonl"), price=free_price)
        with open(extra / "s-half.jsonl", "a") as f:
            f.write(half[cut:])
        os.utime(extra / "s-half.jsonl", (2_000_000_001, 2_000_000_001))

    conn = connect()
    hook_read_half_then_finish(conn)
    listed = importer.transcript_files([claude_dir])
    for path, _ in listed:
        ingest.ingest_file(conn, path, price=free_price)
    one_by_one = db_rows("SELECT * FROM requests ORDER BY key")
    spend = db_rows("SELECT * FROM spend WHERE requests != 0 ORDER BY dim, key, bucket")
    conn.close()
    assert [r["project"] for r in one_by_one if r["key"] == "odd_1:req_odd_1"] == ["/work/?proj"]  # db.storable
    assert [r["session_id"] for r in one_by_one if r["message_id"] == "f1-msg_4"] == ["s-1"]

    (extra / "s-half.jsonl").write_text(half[:cut])
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path / "import.db"))
    inserted = []
    insert = writes.insert_new_requests
    monkeypatch.setattr(writes, "insert_new_requests", lambda conn, shapes, spend: inserted.append(
        sum(map(len, shapes.values()))) or insert(conn, shapes, spend))
    conn = connect()
    hook_read_half_then_finish(conn)
    assert inserted == []  # the hook merges everything, as before
    importer.import_claude(conn, [claude_dir], price=free_price, workers=1)
    assert db_rows("SELECT * FROM requests ORDER BY key") == one_by_one
    assert db_rows("SELECT * FROM spend WHERE requests != 0 ORDER BY dim, key, bucket") == spend
    assert sum(inserted) >= 3 * 25 - 2 and len(one_by_one) > sum(inserted)  # both lanes were taken


TRICKY_LINES = [
    b'{"a": "\\udc80x"}',  # a lone surrogate escape: the fast parser refuses, json.loads reads it
    '{"a": "\udc80"}'.encode("utf-8", "surrogatepass"),  # raw surrogate bytes: the same
    b'{"a": "\\ud83d\\ude00 \xc3\xa9"}',
    b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e400, "e": -0.0}',
    b'{"a": 123456789012345678901234567890, "b": -1, "c": 1.5e3}',
    b'{"a": 1, "a": 2}',
    b'[' * 300 + b']' * 300,  # deeper than the fast parser's limit, not json's
    b'[' * 5000 + b']' * 5000,  # deeper than both
    b'{"a": 1}\x00\x00\x00\n',
    b'\x00\x00{"a": 1}',
    b'{"a": "\xff"}',
    b'{"a": 1',
    b'{"a": "\\u0000", "b": "\\n\\t\\"\\\\"}',
    b'',
]


def test_the_fast_parser_reads_every_line_as_json_loads_does(monkeypatch):
    from costhook.agents import jsonl

    lines = TRICKY_LINES + [
        line for path in sorted((EXAMPLES / "claude").rglob("*.jsonl")) for line in path.read_bytes().splitlines()
    ]
    monkeypatch.setattr(jsonl, "_parsers", (json.loads,))
    slow = [jsonl.load_line(line) for line in lines]
    jsonl.use_fast_parser()
    assert len(jsonl._parsers) == 2
    fast = [jsonl.load_line(line) for line in lines]
    # repr: NaN equals NaN, 1 differs from 1.0, key order counts
    assert [repr(v) for v in fast] == [repr(v) for v in slow]
    assert sum(v is None for v in slow[: len(TRICKY_LINES)]) == 4  # 5000 deep, not UTF-8, cut, empty


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_line_batches_gives_each_complete_line_once_whatever_the_block_size(tmp_path, block):
    from costhook.agents import jsonl

    rng = random.Random(block)
    lines = [b"x" * rng.choice([0, 1, 5, 100, 300]) for _ in range(200)] + [b"long" * 500, b"", b""]
    rng.shuffle(lines)
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n" + b"partial, still being written")
    with open(path, "rb") as f:
        f.seek(0)
        batches = list(jsonl.line_batches(f, block))
    assert [line for batch, _ in batches for line in batch] == lines
    assert sum(nbytes for _, nbytes in batches) == sum(len(line) + 1 for line in lines)
    assert all(batch for batch, _ in batches)


@pytest.mark.parametrize("stamp, stored_as", [
    ("2026-11-20T10:00:00.123Z", "2026-11-20T10:00:00.123Z"),
    ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00.000Z"),
    ("2026-11-20T11:00:00.5+01:00", "2026-11-20T10:00:00.500Z"),
    ("2026-11-20T10:00:00", "2026-11-20T10:00:00.000Z"),
    ("2026-11-20T10:00:00\ud800.000Z", None),  # found by the fuzzer: it stalled the transcript
    ("2026-11-20T10:00:00.²³⁴Z", None),
    ("abcd-11-20T10:00:00.000Z", None),
    ("0005-01-01T00:30:00+01:00", None),  # before year 1000 in UTC: not a 4-digit year
    ("2026-11-20 10:00:00.000Z", None),
])
def test_a_call_time_is_utc_with_milliseconds_or_none(home, tmp_path, stamp, stored_as):
    """Both agents' timestamps become one sortable form; anything else is no time at all, and
    the call is still stored (priced at today's prices) instead of stalling the transcript."""
    path = tmp_path / "s-1.jsonl"
    path.write_text(assistant("msg_t", timestamp=stamp) + assistant("msg_u"))
    ingest.ingest_file(connect(), str(path), price=pricer())
    assert db_rows("SELECT key, timestamp FROM requests ORDER BY key") == [
        {"key": "msg_t:req_msg_t", "timestamp": stored_as}, {"key": "msg_u:req_msg_u", "timestamp": "2026-11-20T10:00:00.000Z"}]
