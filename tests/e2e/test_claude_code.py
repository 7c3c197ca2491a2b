"""End to end: the real Claude Code CLI (each tested version), offline, with costhook's hooks.

Each scenario runs `claude -p` once (module-scoped fixture) against the fake
Anthropic API in tests/e2e/fake_anthropic.py, which answers every call with
fixed usage numbers, with the hooks that `costhook install --scope user` wrote
into a throwaway CLAUDE_CONFIG_DIR. The tests then compare costhook's SQLite
rows with what the fake returned and with the CLI's own `total_cost_usd`.

Fixed usage (input / output / 5m write / 1h write / cache read):
  main agent, tool turn k   1234+k / 78+k / 2045 / 300 / 3456+1000k
  main agent, final turn    111 / 33 / 122 / 100 / 4567
  sub-agent, tool turn k    2020+k / 55+k / 3000 / 30 / 4040+1000k
  sub-agent, final turn     202 / 44 / 280 / 23 / 5050
(FAKE_CACHE_SPLIT=5m moves the 1h part into the 5m column.)
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from . import harness as h
from .fake_anthropic import DEFAULT_FINAL_TEXT, usage_for

pytestmark = pytest.mark.e2e

WAIT_S = float(os.environ.get("COSTHOOK_E2E_WAIT", "5"))
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_write_5m_tokens",
                 "cache_write_1h_tokens", "cache_read_tokens")
# List prices in nano-USD per token ($/MTok x 1000), as Claude Code 2.1.330
# itself prices these models; its total_cost_usd is the oracle. Every call
# costs a whole number of nano-USD, so the comparison is exact.
LIST_PRICE = {
    h.MODEL: dict(input_tokens=3000, output_tokens=15000, cache_write_5m_tokens=3750,
                  cache_write_1h_tokens=6000, cache_read_tokens=300),
    h.HAIKU_MODEL: dict(input_tokens=1000, output_tokens=5000, cache_write_5m_tokens=1250,
                        cache_write_1h_tokens=2000, cache_read_tokens=100),
}


# ------------------------------------------------------------- helpers ------
def query(db, sql: str, args=()) -> list[dict]:
    if not os.path.exists(db):
        return []
    conn = sqlite3.connect(db, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    except sqlite3.OperationalError:  # not created yet, or busy
        return []
    finally:
        conn.close()


def columns_of(usage: dict) -> dict:
    """The fake's usage object as costhook's token columns."""
    split = usage.get("cache_creation")
    w1h = split["ephemeral_1h_input_tokens"] if split else 0
    return {
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "cache_write_5m_tokens": usage["cache_creation_input_tokens"] - w1h,
        "cache_write_1h_tokens": w1h,
        "cache_read_tokens": usage["cache_read_input_tokens"],
    }


def expected_rows(run: h.Run) -> dict[str, dict]:
    """key -> what costhook should store, from what the fake API returned."""
    rows = {}
    for req in run.messages:
        reply = req["reply"]
        rows[f"{reply['id']}:{reply['request_id']}"] = {
            "agent": req["agent"], "kind": reply["kind"], "model": reply["model"],
            "tools": [t["name"] for t in reply["tool_uses"]],
            "tool_use_ids": [t["id"] for t in reply["tool_uses"]],
            **columns_of(reply["usage"]),
        }
    return rows


def nano(model: str, row: dict) -> int:
    return sum(row[c] * LIST_PRICE[model][c] for c in TOKEN_COLUMNS)


def usd_to_nano(usd: float) -> int:
    return round(usd * 1e9)


def wait_for_rows(run: h.Run, n_rows: int) -> list[dict]:
    """Poll the DB (SessionEnd may finish its work in the background) until the
    expected rows and the session's end are recorded, for up to WAIT_S."""
    sid = run.out["session_id"] if run.out else None

    def ready():
        rows = query(run.layout.db, "SELECT * FROM requests ORDER BY timestamp, key")
        ended = query(run.layout.db, "SELECT 1 FROM sessions WHERE session_id = ? AND end_reason IS NOT NULL",
                      (sid,))
        return rows if len(rows) >= n_rows and ended else None

    h.wait_for(ready, timeout=WAIT_S)
    return query(run.layout.db, "SELECT * FROM requests ORDER BY timestamp, key")


def errors_log(layout: h.Layout) -> str:
    return layout.errors_log.read_text(errors="replace") if layout.errors_log.exists() else ""


def context(run: h.Run) -> str:
    return f"{run.describe()}\nerrors.log:\n{errors_log(run.layout)[-3000:]}"


def subagent_ids(layout: h.Layout) -> list[str]:
    return [p.name[len("agent-"):-len(".jsonl")] for p in layout.subagent_transcripts()]


def run_with_costhook(tmp_path_factory, claude_bin, name: str, prompt: str, scenario: dict,
                      n_rows: int) -> tuple[h.Run, list[dict]]:
    layout = h.make_layout(tmp_path_factory.mktemp(name))
    inst = h.run_costhook(layout, "install", "--scope", "user")
    assert inst.returncode == 0, f"costhook install failed: {inst.stdout}\n{inst.stderr}"
    settings = json.loads(layout.settings.read_text())
    assert any("costhook" in hk.get("command", "")
               for groups in settings.get("hooks", {}).values()
               for group in groups for hk in group.get("hooks", [])), settings
    run = h.run_claude(layout, prompt, scenario, claude=claude_bin)
    run.extra.update(name=name, api_calls=n_rows)
    assert run.rc == 0 and not run.timed_out and run.out, context(run)
    return run, wait_for_rows(run, n_rows)


# ------------------------------------------------------------ scenarios -----
@pytest.fixture(scope="module")
def bash_run(tmp_path_factory, claude_bin, costhook_exe):
    """Main agent: one Bash tool turn, then a final answer (2 API calls)."""
    return run_with_costhook(tmp_path_factory, claude_bin, "bash", "run echo hi",
                             {"FAKE_TOOL": "Bash"}, n_rows=2)


@pytest.fixture(scope="module")
def agent_run(tmp_path_factory, claude_bin, costhook_exe):
    """Main agent calls the Agent tool; the sub-agent (Haiku 4.5) runs Bash.
    4 API calls: main tool, sub tool, sub final, main final."""
    return run_with_costhook(tmp_path_factory, claude_bin, "agent", "delegate echo hi",
                             {"FAKE_TOOL": "Agent"}, n_rows=4)


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory, claude_bin, costhook_exe):
    """Three Bash turns, cache writes reported as 5m only (4 API calls)."""
    return run_with_costhook(tmp_path_factory, claude_bin, "multi", "run echo hi three times",
                             {"FAKE_TOOL": "Bash", "FAKE_TOOL_TURNS": "3",
                              "FAKE_CACHE_SPLIT": "5m"}, n_rows=4)


@pytest.fixture(scope="module")
def iterations_run(tmp_path_factory, claude_bin, costhook_exe):
    """One Bash turn whose response reports usage.iterations: a compaction pass, the
    message sampling and an advisor sub-inference at Opus 4.6 (2 API calls)."""
    return run_with_costhook(tmp_path_factory, claude_bin, "iterations", "run echo hi",
                             {"FAKE_TOOL": "Bash", "FAKE_ITERATIONS": "compaction,advisor"}, n_rows=2)


SCENARIOS = ("bash", "agent", "multi")


@pytest.fixture
def scenario(request, claude_bin):
    """The scenario's run with this test's Claude Code version (claude_bin named here, so
    the test is parametrized by version; getfixturevalue alone would not tell pytest)."""
    return request.getfixturevalue(f"{request.param}_run")


# ------------------------------------------------- the harness by itself ----
def test_harness_with_a_logging_hook(tmp_path, claude_bin):
    """The fake API, the sandbox and the CLI work, before costhook is involved."""
    layout = h.make_layout(tmp_path)
    settings, log = h.logging_hook_settings(layout)
    run = h.run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash"}, settings=settings,
                       claude=claude_bin)
    assert run.rc == 0 and not run.timed_out, run.describe()
    assert not run.proxy_attempts, run.describe()
    if h.netns_prefix():
        assert run.netns.startswith("unshare")
    assert run.out["result"] == DEFAULT_FINAL_TEXT
    assert run.out["terminal_reason"] == "completed"
    assert [(r["agent"], r["reply"]["kind"]) for r in run.messages] == [("main", "tool"), ("main", "final")]
    assert all(r["model"] == h.MODEL and "Bash" in r["tools"] for r in run.messages)
    assert run.messages[1]["last_user_has_tool_result"] and run.messages[1]["tool_results"] == 1

    events = [e["event"] for e in h.read_jsonl(log)]
    assert events == ["SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop",
                      "SessionEnd"]
    # The CLI's own accounting agrees with the fixed numbers and list prices.
    expected = [columns_of(usage_for("main", "tool", 0)), columns_of(usage_for("main", "final"))]
    assert run.out["usage"]["input_tokens"] == sum(r["input_tokens"] for r in expected)
    assert run.out["usage"]["output_tokens"] == sum(r["output_tokens"] for r in expected)
    assert usd_to_nano(run.out["total_cost_usd"]) == sum(nano(h.MODEL, r) for r in expected)
    assert len(layout.transcripts()) == 1


# ------------------------------------------------- (4) hooks stay silent ----
@pytest.mark.parametrize("scenario", list(SCENARIOS), indirect=True)
def test_hooks_do_not_change_the_run(scenario):
    run, _ = scenario
    assert run.rc == 0, context(run)
    assert not run.proxy_attempts, context(run)
    assert run.out["result"] == DEFAULT_FINAL_TEXT, context(run)
    assert run.out["terminal_reason"] == "completed", context(run)
    assert run.out["is_error"] is False and run.out["permission_denials"] == []
    # A blocking Stop hook would add API calls; a failing hook shows in the transcript.
    assert len(run.messages) == run.extra["api_calls"], context(run)
    for path in run.layout.transcripts():
        for line in h.read_jsonl(path):
            if line.get("subtype") == "stop_hook_summary":
                assert not line.get("hookErrors"), line
                assert not line.get("preventedContinuation"), line
    assert errors_log(run.layout) == "", context(run)


# ------------------------------------------------------ (1) basic Bash ------
def test_bash_rows_match_the_api(bash_run):
    run, rows = bash_run
    sid = run.out["session_id"]
    expected = expected_rows(run)
    # The fixed numbers this scenario is about.
    assert sorted(tuple(e[c] for c in TOKEN_COLUMNS) for e in expected.values()) == sorted([
        (1234, 78, 2045, 300, 3456), (111, 33, 122, 100, 4567)])
    assert len(rows) == 2, context(run)
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == set(expected), context(run)
    for key, exp in expected.items():
        row = by_key[key]
        assert {c: row[c] for c in TOKEN_COLUMNS} == {c: exp[c] for c in TOKEN_COLUMNS}, key
        assert row["model"] == h.MODEL
        assert row["session_id"] == sid
        assert row["agent_id"] is None
        assert row["project"] == str(run.layout.workdir)
        assert row["git_branch"] == h.GIT_BRANCH
        assert row["timestamp"]
        assert row["cost_source"] == "computed"
        assert json.loads(row["tools"] or "[]") == exp["tools"], row
        assert row["cost_nanousd"] == nano(h.MODEL, exp), row


def test_bash_cost_equals_cli_total(bash_run):
    run, rows = bash_run
    total = sum(r["cost_nanousd"] for r in rows)
    assert total == usd_to_nano(run.out["total_cost_usd"]), (total, run.out["total_cost_usd"])
    # $0.01863315: 1345 in x $3, 111 out x $15, 2167 5m x $3.75, 400 1h x $6, 8023 read x $0.30
    assert total == 18_633_150


def test_bash_tool_call_recorded(bash_run):
    run, _ = bash_run
    (tool_use_id,) = [i for e in expected_rows(run).values() for i in e["tool_use_ids"]]
    calls = query(run.layout.db, "SELECT * FROM tool_calls")
    assert [(c["tool_use_id"], c["tool_name"]) for c in calls] == [(tool_use_id, "Bash")], calls
    call = calls[0]
    assert call["session_id"] == run.out["session_id"]
    assert call["agent_id"] is None
    assert call["success"] == 1
    assert call["timestamp"]


def test_bash_session_recorded(bash_run):
    run, _ = bash_run
    sessions = query(run.layout.db, "SELECT * FROM sessions")
    assert [s["session_id"] for s in sessions] == [run.out["session_id"]], sessions
    s = sessions[0]
    assert s["project"] == str(run.layout.workdir)
    assert s["end_reason"]  # "other" for `claude -p`
    assert s["started_at"] and s["ended_at"]


# --------------------------------------------------------- (2) sub-agent ----
def test_subagent_rows(agent_run):
    run, rows = agent_run
    sid = run.out["session_id"]
    (agent_id,) = subagent_ids(run.layout)
    expected = expected_rows(run)
    assert [(e["agent"], e["kind"]) for e in expected.values()] == [
        ("main", "tool"), ("sub", "tool"), ("sub", "final"), ("main", "final")], context(run)
    assert len(rows) == 4, context(run)
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == set(expected), context(run)
    for key, exp in expected.items():
        row = by_key[key]
        assert {c: row[c] for c in TOKEN_COLUMNS} == {c: exp[c] for c in TOKEN_COLUMNS}, key
        assert row["session_id"] == sid, row
        assert json.loads(row["tools"] or "[]") == exp["tools"], row
        if exp["agent"] == "sub":
            assert row["model"] == h.HAIKU_MODEL, row
            assert row["agent_id"] == agent_id, row
            assert row["parent_session_id"] == sid, row
            assert row["agent_type"] == "general-purpose", row
        else:
            assert row["model"] == h.MODEL, row
            assert row["agent_id"] is None, row
        assert row["cost_nanousd"] == nano(row["model"], exp), row


def test_subagent_cost_equals_cli_total(agent_run):
    run, rows = agent_run
    assert sum(r["cost_nanousd"] for r in rows) == usd_to_nano(run.out["total_cost_usd"])
    for model, usage in run.out["modelUsage"].items():
        mine = sum(r["cost_nanousd"] for r in rows if r["model"] == model)
        assert mine == usd_to_nano(usage["costUSD"]), model


def test_subagent_tool_calls(agent_run):
    run, _ = agent_run
    (agent_id,) = subagent_ids(run.layout)
    ids = {e["agent"]: e["tool_use_ids"][0] for e in expected_rows(run).values() if e["tool_use_ids"]}
    calls = {c["tool_use_id"]: c for c in query(run.layout.db, "SELECT * FROM tool_calls")}
    assert set(calls) == set(ids.values()), calls
    assert calls[ids["main"]]["tool_name"] == "Agent" and calls[ids["main"]]["agent_id"] is None
    assert calls[ids["sub"]]["tool_name"] == "Bash" and calls[ids["sub"]]["agent_id"] == agent_id
    assert {c["session_id"] for c in calls.values()} == {run.out["session_id"]}


# ------------------------------------------------ several turns, 5m only ----
def test_several_turns(multi_run):
    run, rows = multi_run
    expected = expected_rows(run)
    assert [e["kind"] for e in expected.values()] == ["tool", "tool", "tool", "final"]
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == set(expected) and len(rows) == 4, context(run)
    for key, exp in expected.items():
        assert exp["cache_write_1h_tokens"] == 0
        assert {c: by_key[key][c] for c in TOKEN_COLUMNS} == {c: exp[c] for c in TOKEN_COLUMNS}
    assert sum(r["cost_nanousd"] for r in rows) == usd_to_nano(run.out["total_cost_usd"])
    calls = query(run.layout.db, "SELECT tool_use_id FROM tool_calls")
    assert {c["tool_use_id"] for c in calls} == {i for e in expected.values() for i in e["tool_use_ids"]}


# ------------------------------------------------------------ (3) replay ----
def snapshot(db) -> dict:
    rows = query(db, "SELECT * FROM requests")
    return {
        "keys": sorted(r["key"] for r in rows),
        "tokens": {c: sum(r[c] for r in rows) for c in TOKEN_COLUMNS},
        "cost": sum(r["cost_nanousd"] or 0 for r in rows),
        "per_row": sorted((r["key"], r["agent_id"], r["session_id"], r["model"], r["cost_nanousd"],
                           *(r[c] for c in TOKEN_COLUMNS)) for r in rows),
    }


def copy_db(src, dst) -> None:
    with sqlite3.connect(src) as s, sqlite3.connect(dst) as d:
        s.backup(d)


@pytest.mark.parametrize("scenario", list(SCENARIOS), indirect=True)
def test_import_after_hooks_counts_nothing_twice(scenario, tmp_path):
    run, rows = scenario
    before = snapshot(run.layout.db)
    assert before["cost"] == usd_to_nano(run.out["total_cost_usd"]), context(run)
    db = tmp_path / "replay.db"  # work on a copy: the other tests share this run
    copy_db(run.layout.db, db)
    for _ in range(2):
        p = h.run_costhook(run.layout, "import", "--claude-dir", str(run.layout.config_dir),
                           env={"COSTHOOK_DB": str(db)})
        assert p.returncode == 0, p.stdout + p.stderr
        assert snapshot(db) == before


@pytest.mark.parametrize("scenario", list(SCENARIOS), indirect=True)
def test_import_alone_matches_hooks(scenario, tmp_path):
    """Backfilling the same transcripts into an empty DB gives the same rows."""
    run, _ = scenario
    db = tmp_path / "fresh.db"
    p = h.run_costhook(run.layout, "import", "--claude-dir", str(run.layout.config_dir),
                       env={"COSTHOOK_DB": str(db), "COSTHOOK_HOME": str(tmp_path / "home")})
    assert p.returncode == 0, p.stdout + p.stderr
    assert snapshot(db) == snapshot(run.layout.db)


# ------------------------------------------------- usage.iterations -------
def test_iterations_are_billed_as_the_api_bills_them(iterations_run, tmp_path):
    """The API bills every sampling in usage.iterations: the message one (the top level), a
    compaction pass (only in iterations) and an advisor's (at its own model). Claude Code
    adds the advisor to its total_cost_usd but not the compaction pass; costhook bills
    both, so it is exactly the compaction pass above the CLI (README, "Iterations")."""
    from .fake_anthropic import ADVISOR_MODEL, ITERATION_ADVISOR, ITERATION_COMPACTION

    run, rows = iterations_run
    expected = expected_rows(run)
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == set(expected) and len(rows) == 2, context(run)
    tool_key = next(k for k, e in expected.items() if e["kind"] == "tool")
    for key, exp in expected.items():  # the rows' tokens stay the top level
        assert {c: by_key[key][c] for c in TOKEN_COLUMNS} == {c: exp[c] for c in TOKEN_COLUMNS}
    stored = json.loads(by_key[tool_key]["iterations"])
    assert [(i["type"], i.get("model")) for i in stored] == [
        ("compaction", None), ("message", None), ("advisor_message", ADVISOR_MODEL)]
    assert by_key[run_key := next(k for k in expected if k != tool_key)]["iterations"] is None, run_key

    inp, _, _, out = ITERATION_COMPACTION
    compaction = inp * LIST_PRICE[h.MODEL]["input_tokens"] + out * LIST_PRICE[h.MODEL]["output_tokens"]
    inp, _, _, out = ITERATION_ADVISOR
    advisor = inp * 5000 + out * 25000  # Opus 4.6: $5 / $25 per MTok
    top_level = sum(nano(h.MODEL, e) for e in expected.values())
    cli = usd_to_nano(run.out["total_cost_usd"])
    assert cli == top_level + advisor, (cli, top_level, advisor)  # Claude Code's own rule
    assert usd_to_nano(run.out["modelUsage"][ADVISOR_MODEL]["costUSD"]) == advisor
    mine = sum(r["cost_nanousd"] for r in rows)
    assert mine == top_level + compaction + advisor == cli + compaction, (mine, cli, compaction)
    assert by_key[tool_key]["cost_nanousd"] == nano(h.MODEL, expected[tool_key]) + compaction + advisor

    # Backfilling the transcript stores and bills the same.
    db = tmp_path / "fresh.db"
    p = h.run_costhook(run.layout, "import", "--claude-dir", str(run.layout.config_dir),
                       env={"COSTHOOK_DB": str(db), "COSTHOOK_HOME": str(tmp_path / "home")})
    assert p.returncode == 0, p.stdout + p.stderr
    assert snapshot(db) == snapshot(run.layout.db)
    assert query(db, "SELECT iterations FROM requests WHERE key = ?", (tool_key,)) == [
        {"iterations": by_key[tool_key]["iterations"]}]


# ------------------------------------------- hooks that finish after the CLI -----
def test_the_turn_does_not_wait_for_recording_and_nothing_is_lost_when_the_cli_exits_first(
        tmp_path_factory, claude_bin, costhook_exe):
    """Only the gates hold the turn (issue 14): with the database's write lock held by
    another process for the whole run, `claude -p` still finishes at its usual pace, and
    exits before a single row could be written; every hook that records does so later,
    in its own session, and once the lock is released every call, the tool call and the
    session's end arrive — none lost because the CLI exited first. Before, each hook held
    the turn and gave up after its busy timeout: the run took seconds longer and nothing
    was recorded."""
    layout = h.make_layout(tmp_path_factory.mktemp("after-exit"))
    assert h.run_costhook(layout, "install", "--scope", "user").returncode == 0
    assert h.run_costhook(layout, "report").returncode in (0, 1)  # reading creates nothing
    layout.costhook_home.mkdir(parents=True, exist_ok=True)
    h.run_costhook(layout, "hook", input=json.dumps({"hook_event_name": "Notification"}))  # nothing to record
    from costhook.store import db as store

    store.connect(layout.db).close()  # the database exists, migrated, empty
    holder = sqlite3.connect(layout.db, timeout=5, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as a long import would hold it
    try:
        run = h.run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash"}, claude=claude_bin)
        assert run.rc == 0 and not run.timed_out and run.out, context(run)
        assert query(layout.db, "SELECT count(*) AS n FROM requests") == [{"n": 0}]  # nothing could be written yet
        assert run.wall_s < 8, f"the turn waited for the hooks: {run.wall_s} s"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    sid = run.out["session_id"]

    def complete():
        calls = query(layout.db, "SELECT count(*) AS n FROM requests")[0]["n"]
        tools = query(layout.db, "SELECT count(*) AS n FROM tool_calls")[0]["n"]
        ended = query(layout.db, "SELECT 1 FROM sessions WHERE session_id = ? AND end_reason IS NOT NULL", (sid,))
        return calls == 2 and tools == 1 and bool(ended)

    assert h.wait_for(complete, timeout=30), context(run)
    total = query(layout.db, "SELECT sum(cost_nanousd) AS c FROM requests")[0]["c"]
    assert total == usd_to_nano(run.out["total_cost_usd"]), context(run)
