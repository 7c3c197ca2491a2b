"""End to end on the real Codex CLI 0.171.0, offline (tests/e2e/codex_harness.py): costhook's
hooks in CODEX_HOME record exactly one row per billed response — a turn with tool calls,
a compaction, a resumed session, a sub-agent — with the fake API's own token counts and
the exact cost; importing the same rollouts gives the same rows."""

from __future__ import annotations

import json
import sqlite3

import pytest

from . import codex_harness as harness

# OpenAI's published gpt-5.5 prices, USD per million tokens: written out here, not read
# from costhook's table, so a wrong table fails the test. Above a 272k-token prompt the
# whole request is billed at the long-context rates.
GPT55 = {"input": 5, "cached": 0.5, "output": 30}
GPT55_LONG = {"input": 10, "cached": 1, "output": 45}
GPT55_FLEX = {"input": 2.5, "cached": 0.25, "output": 15}  # the flex service tier (since 2026-10-12)


@pytest.fixture(scope="module")
def codex_bin():
    path, why = harness.codex_binary()
    if path is None:
        pytest.skip(f"e2e: Codex {harness.CODEX_VERSION} unavailable: {why} "
                    "(install it with `python tests/e2e/codex_harness.py --install`)")
    return path


@pytest.fixture
def box(tmp_path, codex_bin):
    sandbox = harness.Sandbox.make(tmp_path, codex_bin)
    sandbox.write_hooks()
    return sandbox


def expected_cost(usage: dict, service_tier: str | None = None) -> int:
    """Nano-USD of one response as OpenAI bills it: uncached input, cached input and output
    (reasoning included) at their rates, the tier chosen by the whole prompt."""
    prompt, cached = usage["input_tokens"], usage["input_tokens_details"]["cached_tokens"]
    rates = GPT55_FLEX if service_tier == "flex" else GPT55_LONG if prompt > 272_000 else GPT55
    pico = ((prompt - cached) * round(rates["input"] * 10**6) + cached * round(rates["cached"] * 10**6)
            + usage["output_tokens"] * round(rates["output"] * 10**6))
    return (pico + 500) // 1000


def rows(db) -> dict:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    return {row["message_id"]: dict(row) for row in conn.execute("SELECT * FROM requests ORDER BY timestamp")}


def thread_of(run) -> str:
    return next(e["thread_id"] for e in run.events if e.get("type") == "thread.started")


def assert_rows_match(box, billed: list) -> dict:
    """One row per billed response, keyed (thread, response), its tokens and cost exact."""
    box.wait_for_hooks()
    stored = rows(box.db)
    assert sorted(stored) == sorted(r["response_id"] for r in billed)
    for response in billed:
        row, usage = stored[response["response_id"]], response["usage"]
        cached = usage["input_tokens_details"]["cached_tokens"]
        assert row["agent"] == "codex"
        assert row["key"].endswith(":" + response["response_id"])
        assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_5m_tokens"]) == (
            usage["input_tokens"] - cached, cached, 0)
        assert row["output_tokens"] == usage["output_tokens"]
        assert row["reasoning_tokens"] == usage["output_tokens_details"]["reasoning_tokens"]
        assert row["model"] == harness.MODEL
        assert row["service_tier"] == response["service_tier"]  # what Codex asked the API for
        assert (row["cost_nanousd"], row["cost_source"]) == (expected_cost(usage, row["service_tier"]), "computed")
    return stored


def test_a_turn_with_tool_calls_gives_one_row_per_response(box):
    run = box.run("please TOOLS:2 now")
    assert run.rc == 0, run.stderr[-2000:]
    assert [r["kind"] for r in run.requests] == ["call", "call", "text"]
    stored = assert_rows_match(box, run.billed)
    thread = thread_of(run)
    assert {row["session_id"] for row in stored.values()} == {thread}
    assert {row["agent_id"] for row in stored.values()} == {None}
    first = stored[run.billed[0]["response_id"]]
    assert json.loads(first["tools"]) == ["exec_command"]  # the tool its response asked for
    conn = sqlite3.connect(box.db)
    assert conn.execute("SELECT agent, project FROM sessions WHERE session_id = ?", (thread,)).fetchone() == (
        "codex", str(box.work))
    tools = conn.execute("SELECT tool_use_id, agent, tool_name FROM tool_calls ORDER BY tool_use_id").fetchall()
    assert tools == [(r["call_id"], "codex", "Bash") for r in run.requests if r["kind"] == "call"]
    assert not [r for r in box.requests() if r["kind"] == "refused"]  # nothing else was asked of the API
    stored_bytes = b"".join(p.read_bytes() for p in box.costhook_home.glob("costhook.db*"))
    assert b"please TOOLS:2" not in stored_bytes and b"echo costhook" not in stored_bytes  # no prompt, no command


def test_a_compaction_is_counted_once(box):
    run = box.run("TOOLS:2 then compact", "-c", "model_auto_compact_token_limit=2000")
    assert run.rc == 0, run.stderr[-2000:]
    assert len(run.billed) == 3  # the tool call, the compaction (an ordinary billed call), the answer
    text = open(box.rollouts()[0]).read()
    assert '"compacted"' in text and '"latest_token_usage_record"' in text  # the compaction's copy is there ...
    assert_rows_match(box, run.billed)  # ... and folded into the same row


def test_a_resumed_session_adds_its_new_responses(box):
    first = box.run("TOOLS:1 first")
    second = box.run("TOOLS:1 again", resume=True)
    assert first.rc == second.rc == 0, second.stderr[-2000:]
    assert thread_of(first) == thread_of(second)
    assert len(box.rollouts()) == 1  # appended to the same file
    stored = assert_rows_match(box, first.billed + second.billed)
    assert {row["session_id"] for row in stored.values()} == {thread_of(first)}


def test_a_sub_agent_is_attributed_to_the_root_session(box):
    run = box.run("SPAWN a helper", "--enable", "multi_agent_v2")
    assert run.rc == 0, run.stderr[-2000:]
    stored = assert_rows_match(box, run.billed)
    root = thread_of(run)
    children = [row for row in stored.values() if row["agent_id"]]
    assert children, "the sub-agent made no billed call"
    assert {row["session_id"] for row in stored.values()} == {root}
    assert {row["agent_type"] for row in children} == {"default"}
    assert all(row["agent_id"] != root and row["is_sidechain"] == 1 for row in children)
    assert len(box.rollouts()) == 2  # its own rollout file


def test_the_guardians_review_calls_are_found_though_no_hook_names_them(box):
    """--approve-for-me: an escalation is reviewed by the guardian, a sub-agent with a
    rollout of its own, inside which no hook fires."""
    run = box.run("TOOLS:1 ESCALATE", "--approve-for-me", sandbox=None)
    assert run.rc == 0, run.stderr[-2000:]
    stored = assert_rows_match(box, run.billed)
    root = thread_of(run)
    guardian = [row for row in stored.values() if row["agent_id"]]
    assert guardian and {row["agent_type"] for row in guardian} == {"guardian"}
    assert {row["session_id"] for row in stored.values()} == {root}
    assert len(box.rollouts()) == 2


def test_a_long_prompt_is_billed_at_the_long_context_rates(box):
    run = box.run("BIGPROMPT please")
    assert run.rc == 0, run.stderr[-2000:]
    (response,) = run.billed
    assert response["usage"]["input_tokens"] > 272_000
    assert_rows_match(box, run.billed)


def test_the_flex_service_tier_is_billed_at_its_rates(box):
    """`service_tier = "flex"` in Codex's config: sent to the API, recorded in the rollout's
    thread settings, priced at flex rates (half the standard price)."""
    run = box.run("TOOLS:1 cheaper", "-c", 'service_tier="flex"')
    assert run.rc == 0, run.stderr[-2000:]
    assert {r["service_tier"] for r in run.billed} == {"flex"}
    stored = assert_rows_match(box, run.billed)
    assert {row["service_tier"] for row in stored.values()} == {"flex"}


def test_a_response_without_usage_leaves_no_row(box):
    """A known blind spot (README): Codex records nothing for a response without usage."""
    run = box.run("NOUSAGE please")
    assert run.rc == 0 and len(run.requests) == 1
    box.wait_for_hooks()
    assert rows(box.db) == {}


def test_import_of_the_rollouts_gives_the_rows_the_hooks_recorded(box, tmp_path):
    runs = [box.run("TOOLS:2 one"), box.run("TOOLS:1 two", resume=True),
            box.run("SPAWN", "--enable", "multi_agent_v2"),
            box.run("TOOLS:1 small", "-c", "model_auto_compact_token_limit=2000")]
    assert all(run.rc == 0 for run in runs)
    hooked = assert_rows_match(box, [r for run in runs for r in run.billed])
    imported_db = tmp_path / "imported.db"
    p = box.costhook("import", "--codex-dir", str(box.codex_home), "--db", str(imported_db))
    assert p.returncode == 0, p.stderr
    assert f"Imported {len(box.rollouts())} Codex rollouts" in p.stdout
    imported = rows(imported_db)
    assert imported == hooked
    again = box.costhook("import", "--codex-dir", str(box.codex_home), "--db", str(imported_db))
    assert "0 rows new or updated" in again.stdout and rows(imported_db) == hooked
