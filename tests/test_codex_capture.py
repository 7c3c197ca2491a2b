"""Codex capture without the CLI: rollout lines (in the shapes Codex 0.171.0 writes, see
docs/codex.md) → one row per billed response, read incrementally by the real
`costhook hook --agent codex` process and by `costhook import --codex-dir`; hostile input
never breaks either."""

import json
import os
import subprocess

import pytest
from conftest import COSTHOOK, db_rows, run_hook

ROOT = "019a0000-0000-7000-8000-000000000001"
CHILD = "019a0000-0000-7000-8000-000000000002"
GUARD = "019a0000-0000-7000-8000-000000000003"
TURN = "019a0000-0000-7000-8000-0000000000t1"


def line(kind: str, payload: dict, stamp: str = "2026-12-06T08:39:19.504Z") -> str:
    return json.dumps({"timestamp": stamp, "ordinal": 0, "type": kind, "payload": payload}) + "\n"


def meta(thread=ROOT, session=ROOT, **extra) -> str:
    return line("session_meta", {"id": thread, "session_id": session, "cwd": "/work/acme", "originator": "codex_exec",
                                 "cli_version": "0.171.0", "source": "exec", "thread_source": "user",
                                 "base_instructions": {"text": "You are Codex. " * 200}, **extra},
                "2026-12-06T08:39:19.382Z")


def turn(turn_id=TURN, model="gpt-5.5") -> str:
    return line("turn_context", {"turn_id": turn_id, "model": model, "cwd": "/work/acme"})


def record(n: int, thread=ROOT, session=ROOT, turn_id=TURN, **usage) -> str:
    counts = {"input_tokens": 3000 + n, "cached_input_tokens": 1000 + n, "cache_write_input_tokens": 0,
              "output_tokens": 50 + n, "reasoning_output_tokens": 7 + n, "total_tokens": 3050 + 2 * n, **usage}
    return line("token_usage_record", {"thread_id": thread, "turn_id": turn_id, "session_id": session,
                                       "root_turn_id": turn_id, "response_id": f"resp_{n}", "usage": counts,
                                       "turn_token_usage": counts, "thread_token_usage": counts},
                f"2026-12-06T08:39:{20 + n:02d}.000Z")


def tool(name="exec_command", namespace=None) -> str:
    item = {"type": "function_call", "name": name, "arguments": "{}", "call_id": "call_x"}
    if namespace:
        item["namespace"] = namespace
    return line("response_item", item)


def rollout_path(codex_home, thread=ROOT):
    folder = codex_home / "sessions" / "2026" / "12" / "06"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"rollout-2026-12-06T08-39-19-{thread}.jsonl"


@pytest.fixture
def codex_home(tmp_path):
    return tmp_path / "codex-home"


def hook(event: str, path, **fields):
    payload = {"hook_event_name": event, "session_id": ROOT, "transcript_path": str(path), "cwd": "/work/acme",
               **fields}
    proc = run_hook(payload, args=("--agent", "codex"))
    assert proc.returncode == 0 and proc.stdout == b"", proc.stderr
    return proc


def stored():
    if not os.path.exists(os.environ["COSTHOOK_DB"]):
        return {}  # nothing was ever written
    return {r["message_id"]: r for r in db_rows("SELECT * FROM requests ORDER BY timestamp")}


def test_one_row_per_response_in_costhooks_token_meaning(home, codex_home):
    path = rollout_path(codex_home)
    path.write_text(meta() + turn() + tool() + record(1) + tool("spawn_agent", "collaboration") + record(2))
    hook("Stop", path)
    rows = stored()
    assert list(rows) == ["resp_1", "resp_2"]
    row = rows["resp_1"]
    assert row["key"] == f"{ROOT}:resp_1" and row["agent"] == "codex" and row["session_id"] == ROOT
    # OpenAI's input includes the cached tokens; costhook's input is the uncached part
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (
        2000, 1001, 51, 8)
    assert row["model"] == "gpt-5.5" and row["prompt_id"] == TURN and row["project"] == "/work/acme"
    assert json.loads(row["tools"]) == ["exec_command"]
    assert json.loads(rows["resp_2"]["tools"]) == ["collaboration.spawn_agent"]
    # $5 / $0.50 / $30 per million tokens
    assert row["cost_nanousd"] == (2000 * 5_000_000 + 1001 * 500_000 + 51 * 30_000_000 + 500) // 1000
    assert db_rows("SELECT agent, project, transcript_path FROM sessions WHERE session_id = ?", (ROOT,)) == [
        {"agent": "codex", "project": "/work/acme", "transcript_path": str(path)}]


def test_a_compactions_copy_of_a_record_is_the_same_call(home, codex_home):
    path = rollout_path(codex_home)
    copy = json.loads(record(2))["payload"]
    path.write_text(meta() + turn() + record(1) + record(2)
                    + line("compacted", {"message": "summary", "compaction_response_id": "resp_2",
                                         "latest_token_usage_record": copy}) + turn() + record(3))
    hook("PostCompact", path)
    assert list(stored()) == ["resp_1", "resp_2", "resp_3"]


def test_token_count_events_are_never_a_source(home, codex_home):
    path = rollout_path(codex_home)
    usage = {"input_tokens": 999, "cached_input_tokens": 0, "output_tokens": 9, "total_tokens": 1008}
    count = line("event_msg", {"type": "token_count", "info": {"total_token_usage": usage, "last_token_usage": usage}})
    path.write_text(meta() + turn() + count + record(1) + count + count)  # late, repeated: as around a compaction
    hook("Stop", path)
    assert [(r["message_id"], r["output_tokens"]) for r in stored().values()] == [("resp_1", 51)]


def test_sub_agents_and_the_guardian_belong_to_the_root_session(home, codex_home):
    root = rollout_path(codex_home)
    child = rollout_path(codex_home, CHILD)
    guardian = rollout_path(codex_home, GUARD)
    root.write_text(meta() + turn() + record(1))
    child.write_text(meta(CHILD, ROOT, parent_thread_id=ROOT, thread_source="subagent", source={"subagent": {
        "thread_spawn": {"parent_thread_id": ROOT, "depth": 1, "agent_role": "explorer"}}})
        + turn("t2") + record(2, CHILD, ROOT, "t2"))
    guardian.write_text(meta(GUARD, ROOT, parent_thread_id=ROOT, thread_source="guardian_review",
                             source={"subagent": {"other": "guardian"}}) + turn("t3", "gpt-5.4") + record(3, GUARD, ROOT, "t3"))
    hook("Stop", root)  # no hook names the guardian's rollout: the day folder is read
    rows = stored()
    assert {r["session_id"] for r in rows.values()} == {ROOT}
    assert [(r["agent_id"], r["agent_type"], r["is_sidechain"]) for r in rows.values()] == [
        (None, None, 0), (CHILD, "explorer", 1), (GUARD, "guardian", 1)]
    assert rows["resp_3"]["model"] == "gpt-5.4"
    assert db_rows("SELECT session_id FROM sessions") == [{"session_id": ROOT}]  # no session of their own


def test_incremental_reads_give_the_rows_a_whole_read_gives(home, codex_home, tmp_path):
    whole = meta() + turn() + tool() + record(1) + turn("t9", "gpt-5.4") + record(2, turn_id="t9") + record(3, turn_id="t9")
    path = rollout_path(codex_home)
    cut = [whole.index("token_usage_record") + 10, whole.rindex("turn_context") + 3, len(whole) - 7, len(whole)]
    start = 0
    for end in cut:  # each read ends inside a line: the partial line waits for the next
        with open(path, "a") as f:
            f.write(whole[start:end])
        start = end
        hook("PostToolUse", path, tool_use_id=f"call_{end}", tool_name="Bash", tool_input={"command": "ls"})
    piecewise = stored()
    os.environ["COSTHOOK_DB"] = str(tmp_path / "whole.db")
    proc = subprocess.run([COSTHOOK, "import", "--codex-dir", str(codex_home)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert stored() == piecewise and len(piecewise) == 3
    assert piecewise["resp_3"]["model"] == "gpt-5.4"
    again = subprocess.run([COSTHOOK, "import", "--codex-dir", str(codex_home)], capture_output=True, text=True)
    assert "0 rows new or updated" in again.stdout


def test_a_tool_call_is_recorded_without_its_content(home, codex_home):
    path = rollout_path(codex_home)
    path.write_text(meta() + turn() + record(1))
    hook("PostToolUse", path, tool_use_id="call_1", tool_name="Bash", turn_id=TURN,
         tool_input={"command": "cat /etc/secret"}, tool_response="TOP SECRET\n")
    (row,) = db_rows("SELECT * FROM tool_calls")
    assert (row["agent"], row["tool_name"], row["session_id"]) == ("codex", "Bash", ROOT)
    assert row["input_bytes"] == len(json.dumps({"command": "cat /etc/secret"}))
    assert "SECRET" not in json.dumps(db_rows("SELECT * FROM tool_calls") + db_rows("SELECT * FROM sessions"))


def test_a_rollouts_first_bytes_are_never_stored(home, codex_home):
    """A cursor knows a replaced rollout by its first bytes: it keeps their hash, not the
    bytes (they were stored as hex, with whatever the first line said)."""
    from leaks import markers_in

    path = rollout_path(codex_home)
    first = json.dumps({"type": "response_item", "payload": {"type": "message", "role": "user",
                                                              "content": "MARKER-PROMPT-c0de"}}) + "\n"
    assert first.index("MARKER") < 128
    path.write_text(first + meta() + turn() + record(1))
    hook("Stop", path)
    assert list(stored()) == ["resp_1"]
    assert markers_in(home, {"prompt": "MARKER-PROMPT-c0de"}) == []
    with open(path, "a") as f:
        f.write(record(2))
    hook("Stop", path)
    assert list(stored()) == ["resp_1", "resp_2"]  # the cursor still knows its file


@pytest.mark.parametrize("bad", [
    {"input_tokens": "3000"}, {"input_tokens": -5}, {"output_tokens": 1.5}, {"input_tokens": True},
    {"cached_input_tokens": 10**7, "input_tokens": 10},  # more cached than input: clipped
    {"output_tokens": 10**10},  # beyond what a call can bill: skipped as malformed
])
def test_hostile_counts_never_make_a_wrong_or_negative_row(home, codex_home, bad):
    path = rollout_path(codex_home)
    path.write_text(meta() + turn() + record(1, **bad) + record(2))
    hook("Stop", path)
    rows = stored()
    assert "resp_2" in rows
    for row in rows.values():
        assert min(row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) >= 0
        assert row["output_tokens"] < 10**9


def test_hostile_lines_are_skipped_and_the_rest_is_read(home, codex_home):
    path = rollout_path(codex_home)
    junk = [b"\x00\x00\x00\n", b'{"type": "token_usage_record", "payload": []}\n',
            b'{"type": "token_usage_record", "payload": {"response_id": 7, "usage": {}}}\n',
            b'{"type": "token_usage_record", "payload": {"response_id": "r", "usage": "lots"}}\n',
            b'{"type": "turn_context", "payload": {"turn_id": ["x"], "model": {"a": 1}}}\n',
            b'{"type": "session_meta", "payload": {"id": 5, "source": {"subagent": 9}}}\n',
            b"[" * 100_000 + b"\n", b'{"type": "token_usage_record", "payload": {"thread_id": "\\ud800"}}\n',
            "é".encode("latin-1") + b"\n"]
    with open(path, "wb") as f:
        f.write(meta().encode() + turn().encode() + b"".join(junk) + record(1).encode())
    hook("Stop", path)
    assert list(stored()) == ["resp_1"]


@pytest.mark.parametrize("name", ["notes.jsonl", "rollout-x.txt", "relative"])
def test_a_transcript_path_that_is_no_rollout_is_not_read(home, codex_home, tmp_path, name):
    target = tmp_path / name
    target.write_text(meta() + turn() + record(1))
    hook("Stop", target if name != "relative" else name)
    assert stored() == {}
    real = rollout_path(codex_home)
    real.write_text(meta() + turn() + record(2))
    hook("Stop", real)
    assert list(stored()) == ["resp_2"]  # a rollout is read


def test_a_fifo_or_a_device_as_the_rollout_never_hangs_the_hook(home, codex_home):
    fifo = rollout_path(codex_home, "fifo")
    os.mkfifo(fifo)
    device = fifo.with_name("rollout-2026-12-06T08-39-19-zero.jsonl")
    device.symlink_to("/dev/zero")
    real = rollout_path(codex_home)
    real.write_text(meta() + turn() + record(1))
    for path in (fifo, device):
        hook("Stop", path)  # run_hook's timeout fails the test if the hook waits on it
    assert list(stored()) == ["resp_1"]  # the real rollout beside them, read from the day folder


@pytest.mark.parametrize("stdin", [b"", b"not json", b"[1, 2]", b'{"hook_event_name": 5}',
                                   b'{"hook_event_name": "Stop", "transcript_path": ["x"], "session_id": {}}',
                                   b'{"hook_event_name": "SessionStart", "session_id": "' + b"s" * 10_000 + b'"}'])
def test_bad_stdin_exits_0_silently(home, codex_home, stdin):
    proc = run_hook(stdin, args=("--agent", "codex"))
    assert (proc.returncode, proc.stdout) == (0, b"")
    path = rollout_path(codex_home)
    path.write_text(meta() + turn() + record(1))
    hook("Stop", path)
    assert list(stored()) == ["resp_1"]  # and the next good event is recorded


def test_import_accepts_a_sessions_folder_and_refuses_a_file(home, codex_home):
    path = rollout_path(codex_home)
    path.write_text(meta() + turn() + record(1))
    proc = subprocess.run([COSTHOOK, "import", "--codex-dir", str(codex_home / "sessions")], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "Imported 1 Codex rollouts" in proc.stdout, proc.stderr
    assert list(stored()) == ["resp_1"]
    bad = subprocess.run([COSTHOOK, "import", "--codex-dir", str(path)], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "a file, not a directory" in bad.stderr


def test_a_plain_import_reads_codex_home(home, codex_home, tmp_path):
    path = rollout_path(codex_home)
    path.write_text(meta() + turn() + record(1))
    env = {**os.environ, "HOME": str(tmp_path / "empty-home"), "CODEX_HOME": str(codex_home)}
    env.pop("CLAUDE_CONFIG_DIR", None)
    env.pop("OPENCLAW_STATE_DIR", None)
    proc = subprocess.run([COSTHOOK, "import"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"Imported 1 Codex rollouts from {codex_home}" in proc.stdout
    assert list(stored()) == ["resp_1"]


def test_a_corrupt_database_fails_open_with_one_logged_line(home, codex_home):
    path = rollout_path(codex_home)
    path.write_text(meta() + turn() + record(1))
    home.mkdir(parents=True, exist_ok=True)
    (home / "costhook.db").write_bytes(b"this is not a database" * 100)
    hook("Stop", path)  # exit 0, no output
    log = (home / "errors.log").read_text()
    assert len(log.splitlines()) == 1 and "hook Stop" in log
    assert "You are Codex" not in log and "resp_1" not in log  # never the content
    (home / "costhook.db").unlink()
    hook("Stop", path)
    assert list(stored()) == ["resp_1"]  # the cursor never moved: nothing was lost
