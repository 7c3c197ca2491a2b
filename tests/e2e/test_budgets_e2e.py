"""End to end: budgets enforced inline by costhook's hooks in the real Claude Code 2.1.330.

Every scenario gets a throwaway layout (tests/e2e/harness.py): the hooks are registered by
the real `costhook install --scope user` into the throwaway CLAUDE_CONFIG_DIR, budgets are
written into the throwaway config by the real `costhook budget set …`, and COSTHOOK_HOME,
COSTHOOK_DB and COSTHOOK_CONFIG reach the hooks through the CLI's environment. The fake
Anthropic API answers with fixed usage, so every call's cost is known exactly (Sonnet 4.5
list prices $3 / $15 / $3.75 / $6 / $0.30 per MTok, Haiku 4.5 a third of that):

  main tool turn k   $0.01537755 + k x $0.000318   (k = 0, 1, 2 …)
  main final turn    $0.0032556
  sub-agent tool     $0.006509   (Haiku 4.5)
  sub-agent final    $0.001323   (Haiku 4.5)

How the real CLI reacts to costhook's outputs (what these tests pin down):
  UserPromptSubmit {"decision":"block"}      -> 0 API calls, `result` = "UserPromptSubmit
                                                operation blocked by hook:\\n<reason>…", rc 0
  PreToolUse deny + continue:false           -> the tool does not run, no further API call,
                                                terminal_reason "hook_stopped"
  PostToolUse continue:false                 -> no further API call, "hook_stopped"
                                                (a systemMessage sent with it is dropped)
  continue:false inside a sub-agent          -> stops the sub-agent only; the main agent
                                                gets the hand-back and goes on
  systemMessage (warn)                       -> not in `--output-format json` and not on
                                                stderr; a `system/informational` event
                                                "<Hook> says: <message>" in stream-json, and a
                                                `hook_system_message` attachment in the transcript
"""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from costhook.text import usd as shown_usd

from . import harness as h
from .fake_anthropic import DEFAULT_FINAL_TEXT, usage_for

pytestmark = pytest.mark.e2e

WAIT_S = float(os.environ.get("COSTHOOK_E2E_WAIT", "5"))
NANO = 1_000_000_000
# nano-USD per token ($/MTok x 1000)
PRICE = {
    h.MODEL: (3000, 15000, 3750, 6000, 300),
    h.HAIKU_MODEL: (1000, 5000, 1250, 2000, 100),
}


def cost(agent: str, kind: str, turn: int = 0, model: str = h.MODEL) -> int:
    """Exact nano-USD of one fake reply (the fake's default 5m/1h split)."""
    u = usage_for(agent, kind, turn)
    split = u["cache_creation"]
    tokens = (u["input_tokens"], u["output_tokens"], split["ephemeral_5m_input_tokens"],
              split["ephemeral_1h_input_tokens"], u["cache_read_input_tokens"])
    return sum(n * p for n, p in zip(tokens, PRICE[model]))


MAIN_TOOL = [cost("main", "tool", k) for k in range(3)]
MAIN_FINAL = cost("main", "final")
SUB_TOOL = cost("sub", "tool", model=h.HAIKU_MODEL)
SUB_FINAL = cost("sub", "final", model=h.HAIKU_MODEL)


def test_fixed_costs():
    """The arithmetic the limits below are chosen from (and the CLI's own total agrees:
    test_claude_code.py checks $0.01863315 for the tool + final run)."""
    assert MAIN_TOOL == [15_377_550, 15_695_550, 16_013_550]
    assert MAIN_FINAL == 3_255_600
    assert MAIN_TOOL[0] + MAIN_FINAL == 18_633_150
    assert (SUB_TOOL, SUB_FINAL) == (6_509_000, 1_323_000)


# ------------------------------------------------------------- helpers ------
def query(db, sql: str, args=()) -> list[dict]:
    if not os.path.exists(db):
        return []
    conn = sqlite3.connect(db, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def errors_log(layout: h.Layout) -> str:
    return layout.errors_log.read_text(errors="replace") if layout.errors_log.exists() else ""


def new_layout(tmp_path_factory, name: str) -> h.Layout:
    layout = h.make_layout(tmp_path_factory.mktemp(name))
    p = h.run_costhook(layout, "install", "--scope", "user")
    assert p.returncode == 0, f"costhook install failed: {p.stdout}\n{p.stderr}"
    assert "costhook" in layout.settings.read_text()
    return layout


def set_budget(layout: h.Layout, *args: str) -> str:
    """`costhook budget set ARGS` with the layout's COSTHOOK_CONFIG; returns the id."""
    p = h.run_costhook(layout, "budget", "set", *args)
    assert p.returncode == 0, f"budget set {args}: {p.stdout}\n{p.stderr}"
    budget_id = p.stdout.strip()
    assert budget_id and layout.costhook_config.exists()
    listed = h.run_costhook(layout, "budget", "list", "--format", "json")
    assert budget_id in [b["id"] for b in json.loads(listed.stdout)], listed.stdout
    return budget_id


def usd_to_nano(value: float) -> int:
    return round(value * NANO)


def usd(nano: int) -> str:
    """A limit for `--limit` (exact: at most 9 decimals)."""
    return f"{nano / NANO:.9f}".rstrip("0")


def stream_events(run: h.Run) -> list[dict]:
    events = []
    for line in run.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return events


def result_of(run: h.Run) -> dict:
    """The final result object, for `--output-format json` and `stream-json` alike."""
    if run.out is not None:
        return run.out
    results = [e for e in stream_events(run) if e.get("type") == "result"]
    assert results, run.describe()
    return results[-1]


def finish(run: h.Run) -> list[dict]:
    """Wait until SessionEnd has been recorded (its ingest completes the rows); the rows."""
    sid = result_of(run)["session_id"]

    def ended():
        return query(run.layout.db, "SELECT 1 FROM sessions WHERE session_id = ? AND end_reason IS NOT NULL",
                     (sid,))

    assert h.wait_for(ended, timeout=WAIT_S), context(run)
    return query(run.layout.db, "SELECT * FROM requests WHERE session_id = ? ORDER BY timestamp, key", (sid,))


def settled(layout: h.Layout, timeout: float = 30.0) -> None:
    """Wait until no background hook of the layout's costhook home is at work."""
    from costhook.agents import runtime

    saved = os.environ.get("COSTHOOK_HOME")
    os.environ["COSTHOOK_HOME"] = str(layout.costhook_home)
    try:
        assert runtime.wait_for_background(timeout), "a background hook is still at work"
    finally:
        if saved is None:
            del os.environ["COSTHOOK_HOME"]
        else:
            os.environ["COSTHOOK_HOME"] = saved


def context(run: h.Run) -> str:
    return f"{run.describe()}\nerrors.log:\n{errors_log(run.layout)[-3000:]}"


def transcript_lines(layout: h.Layout, session_id: str | None = None, sub: bool = False) -> list[dict]:
    if sub:
        paths = layout.subagent_transcripts()
    else:
        paths = [p for p in layout.transcripts() if session_id is None or p.stem == session_id]
    return [line for p in paths for line in h.read_jsonl(p)]


def attachments(lines: list[dict], kind: str) -> list[dict]:
    return [line["attachment"] for line in lines
            if line.get("type") == "attachment" and (line.get("attachment") or {}).get("type") == kind]


def tool_results(lines: list[dict]) -> list[dict]:
    out = []
    for line in lines:
        content = (line.get("message") or {}).get("content") if line.get("type") == "user" else None
        if isinstance(content, list):
            out += [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    return out


def alerts(layout: h.Layout) -> list[dict]:
    return query(layout.db, "SELECT * FROM alerts ORDER BY id")


def calls(run: h.Run) -> list[tuple[str, str, int]]:
    """(agent, kind, turn) of each /v1/messages request the fake API answered."""
    return [(r["agent"], r["reply"]["kind"], r["reply"]["turn"]) for r in run.messages]


def block_message(period: str, scope: str, spent: int, limit: int) -> str:
    """What costhook's block says (budgets.Status.message), amounts by the money rule."""
    over = spent - limit
    return (f"costhook: Budget {period}/{scope}: {shown_usd(spent)} of {shown_usd(limit)} "
            f"({int(spent / limit * 100)}%) — {shown_usd(over)} over. "
            "Raise or remove the budget (`costhook budget`) to continue.")


def assert_overshoot_bound(spent: int, limit: int, last_call: int) -> None:
    """The run stopped at the first check after the crossing: the money spent before the
    last call was under the limit, and the overshoot is at most that one call."""
    assert spent >= limit, (spent, limit)
    assert spent - last_call < limit, (spent, limit, last_call)
    assert spent - limit <= last_call, (spent, limit, last_call)


# ---------------------------------------- (a) spent budget blocks the prompt -
def test_spent_daily_budget_blocks_the_prompt(tmp_path_factory, claude_bin, costhook_exe):
    layout = new_layout(tmp_path_factory, "ups_block")
    seed = h.run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash"}, claude=claude_bin)
    assert seed.rc == 0 and seed.out and seed.out["terminal_reason"] == "completed", context(seed)
    spent = sum(r["cost_nanousd"] for r in finish(seed))
    assert spent == MAIN_TOOL[0] + MAIN_FINAL == usd_to_nano(seed.out["total_cost_usd"]), context(seed)

    limit = 10_000_000  # $0.01, below the $0.0186 already spent today
    set_budget(layout, "--scope", "global", "--period", "daily", "--limit", usd(limit), "--action", "block")
    status = json.loads(h.run_costhook(layout, "budget", "status", "--format", "json").stdout)
    assert [(s["id"], s["blocking"], s["spent"]) for s in status] == [("daily-global", True, spent / NANO)]

    run = h.run_claude(layout, "run echo hi again", {"FAKE_TOOL": "Bash"}, claude=claude_bin)
    assert run.rc == 0 and not run.timed_out and run.out, context(run)
    assert run.messages == [], context(run)  # not a single API call
    assert not run.proxy_attempts, context(run)
    out = run.out
    expected = block_message("daily", "global", spent, limit)
    assert "Budget daily/global: $0.0186 of $0.01 (186%)" in expected
    assert out["result"] == ("UserPromptSubmit operation blocked by hook:\n"
                             f"{expected}\n\nOriginal prompt: run echo hi again"), out["result"]
    assert (out["subtype"], out["is_error"], out["num_turns"], out["total_cost_usd"]) == ("success", False, 0, 0)
    assert out["permission_denials"] == []
    assert run.stderr.strip() == ""

    finish(run)
    lines = transcript_lines(layout, out["session_id"])
    # SessionStart runs in the background and says nothing; the prompt's block says it all …
    assert attachments(lines, "hook_system_message") == [], lines
    # … and the blocked prompt leaves only an informational line, no assistant turn.
    assert not [line for line in lines if line.get("type") == "assistant"]
    assert [line["content"] for line in lines if line.get("subtype") == "informational"] == [out["result"]]
    # Both thresholds (0.8 and 1.0) fired at once, each recorded once.
    assert [(a["budget_id"], a["threshold"], a["spent_nanousd"], a["limit_value"]) for a in alerts(layout)] == [
        ("daily-global", 0.8, spent, limit), ("daily-global", 1.0, spent, limit)]
    assert errors_log(layout) == ""


def test_far_from_its_limit_the_gates_answer_without_python(tmp_path_factory, claude_bin, costhook_exe):
    """With a budget far from its limit, after a first turn has recorded calls, the next
    turn's UserPromptSubmit and PreToolUse go through the shell gate's clearance (each takes
    a ticket: one byte in gate/used.<generation>) and start no Python; every call is still
    recorded exactly."""
    layout = new_layout(tmp_path_factory, "shell_gate")
    set_budget(layout, "--scope", "global", "--period", "daily", "--limit", "1000", "--action", "block")
    first = h.run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash"}, claude=claude_bin)
    finish(first)
    settled(layout)  # the first turn's background hooks are done: none writes during the second
    gate = layout.costhook_home / "gate"
    assert (gate / "clearance").exists(), context(first)
    before = {p.name for p in gate.glob("used.*")}
    second = h.run_claude(layout, "run echo hi again", {"FAKE_TOOL": "Bash"}, claude=claude_bin)
    assert second.rc == 0 and second.out["terminal_reason"] == "completed", context(second)
    rows = finish(second)
    assert sum(r["cost_nanousd"] for r in rows) == MAIN_TOOL[0] + MAIN_FINAL, context(second)
    taken = {p.name: p.read_text() for p in gate.glob("used.*") if p.name not in before}
    assert list(taken.values()) == [".."], (taken, context(second))  # the prompt's and the tool's
    assert errors_log(layout) == ""


# --------------------------------------- (b) a budget crossed mid-run stops --
def test_first_call_crosses_pre_tool_use_denies_its_tool(tmp_path_factory, claude_bin, costhook_exe):
    """The limit is below the first call: PreToolUse must wait (bounded) for that call's
    tool_use line in the lagging transcript, count it, deny the tool and stop the loop."""
    layout = new_layout(tmp_path_factory, "pre_first")
    limit = 10_000_000  # $0.01 < $0.01537755, the first call
    set_budget(layout, "--scope", "global", "--period", "daily", "--limit", usd(limit), "--action", "block")
    run = h.run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash", "FAKE_TOOL_COMMAND": "echo hi >> ran.txt"},
                       claude=claude_bin)
    assert run.rc == 0 and not run.timed_out and run.out, context(run)
    assert calls(run) == [("main", "tool", 0)], context(run)  # no second call
    out = run.out
    assert out["terminal_reason"] == "hook_stopped", context(run)
    assert (out["stop_reason"], out["result"], out["is_error"]) == ("tool_use", "", False)
    (tool_id,) = [t["id"] for t in run.messages[0]["reply"]["tool_uses"]]
    assert [(d["tool_name"], d["tool_use_id"]) for d in out["permission_denials"]] == [("Bash", tool_id)]
    assert not (layout.workdir / "ran.txt").exists(), "the denied tool ran"

    rows = finish(run)
    spent = sum(r["cost_nanousd"] for r in rows)
    assert spent == MAIN_TOOL[0] == usd_to_nano(out["total_cost_usd"])
    assert_overshoot_bound(spent, limit, MAIN_TOOL[0])
    message = block_message("daily", "global", spent, limit)
    lines = transcript_lines(layout, out["session_id"])
    assert [(r["content"], r["is_error"]) for r in tool_results(lines)] == [
        (f"PreToolUse:Bash hook error: {message}", True)]
    assert [(a["hookEvent"], a["toolUseID"], a["message"]) for a in attachments(lines, "hook_stopped_continuation")] \
        == [("PreToolUse", tool_id, message)]
    assert query(layout.db, "SELECT * FROM tool_calls") == []  # no PostToolUse: the tool never ran
    assert errors_log(layout) == ""


def test_crossing_in_a_multi_tool_run_stops_at_the_next_tool(tmp_path_factory, claude_bin, costhook_exe):
    """Three tool turns; the limit lies between the first call and the first two. The
    first tool runs, the second call crosses, its tool is denied, no third call."""
    layout = new_layout(tmp_path_factory, "pre_multi")
    limit = 20_000_000  # $0.02: 15.4 M after call 1 (77%, under warn_at 0.8), 31.1 M after call 2
    assert MAIN_TOOL[0] < limit < MAIN_TOOL[0] + MAIN_TOOL[1]
    set_budget(layout, "--scope", "session", "--period", "session", "--limit", usd(limit), "--action", "block")
    run = h.run_claude(layout, "run echo hi three times",
                       {"FAKE_TOOL": "Bash", "FAKE_TOOL_TURNS": "3", "FAKE_TOOL_COMMAND": "echo hi >> ran.txt"},
                       claude=claude_bin)
    assert run.rc == 0 and not run.timed_out and run.out, context(run)
    assert calls(run) == [("main", "tool", 0), ("main", "tool", 1)], context(run)
    out = run.out
    assert out["terminal_reason"] == "hook_stopped", context(run)
    first_id, second_id = (r["reply"]["tool_uses"][0]["id"] for r in run.messages)
    assert [d["tool_use_id"] for d in out["permission_denials"]] == [second_id]
    assert (layout.workdir / "ran.txt").read_text() == "hi\n"  # the first tool ran, the second did not

    rows = finish(run)
    spent = sum(r["cost_nanousd"] for r in rows)
    assert spent == MAIN_TOOL[0] + MAIN_TOOL[1]
    assert_overshoot_bound(spent, limit, MAIN_TOOL[1])
    message = block_message("session", "session", spent, limit)
    lines = transcript_lines(layout, out["session_id"])
    assert [(r["tool_use_id"], r["is_error"]) for r in tool_results(lines)] == [(first_id, False), (second_id, True)]
    assert tool_results(lines)[1]["content"] == f"PreToolUse:Bash hook error: {message}"
    assert [(a["hookEvent"], a["toolUseID"]) for a in attachments(lines, "hook_stopped_continuation")] == [
        ("PreToolUse", second_id)]
    # The first turn stayed under every threshold: no warning was shown before the block.
    assert attachments(lines, "hook_system_message") == []
    assert [t["tool_use_id"] for t in query(layout.db, "SELECT tool_use_id FROM tool_calls")] == [first_id]
    assert [(a["threshold"], a["spent_nanousd"]) for a in alerts(layout)] == [(0.8, spent), (1.0, spent)]
    assert errors_log(layout) == ""


# ----------------------------------------------- (c) warn mode, once only ----
def test_warn_budget_lets_the_run_finish_and_alerts_once(tmp_path_factory, claude_bin, costhook_exe):
    """action warn, warn_at 0.5, limit $0.04 over a $0.0503 run: 0.5 is crossed by call 2,
    1.0 by call 3; every later hook sees the spend above both and says nothing more."""
    layout = new_layout(tmp_path_factory, "warn")
    limit = 40_000_000
    set_budget(layout, "--scope", "global", "--period", "daily", "--limit", usd(limit),
               "--warn-at", "0.5", "--action", "warn")
    # stream-json: the only output format in which a hook's systemMessage shows up
    run = h.run_claude(layout, "run echo hi three times",
                       {"FAKE_TOOL": "Bash", "FAKE_TOOL_TURNS": "3", "FAKE_TOOL_COMMAND": "echo hi >> ran.txt"},
                       claude=claude_bin, extra_args=["--output-format", "stream-json", "--verbose"])
    assert run.rc == 0 and not run.timed_out, context(run)
    result = result_of(run)
    assert result["terminal_reason"] == "completed", context(run)
    assert result["result"] == DEFAULT_FINAL_TEXT and result["permission_denials"] == []
    assert calls(run) == [("main", "tool", 0), ("main", "tool", 1), ("main", "tool", 2), ("main", "final", 3)]
    assert (layout.workdir / "ran.txt").read_text() == "hi\n" * 3

    rows = finish(run)
    after = [sum(MAIN_TOOL[: k + 1]) for k in range(3)]
    assert sum(r["cost_nanousd"] for r in rows) == after[-1] + MAIN_FINAL
    # Each threshold recorded exactly once, by the first hook that saw it crossed
    # (PreToolUse of the call that crossed it), although PostToolUse x3, PreToolUse x2 and
    # Stop all saw the spend above 0.5 afterwards.
    assert [(a["threshold"], a["action"], a["spent_nanousd"]) for a in alerts(layout)] == [
        (0.5, "warn", after[1]), (1.0, "warn", after[2])]
    assert len(query(layout.db, "SELECT * FROM tool_calls")) == 3  # three PostToolUse hooks ran
    shown = [
        f"costhook: Budget daily/global: {shown_usd(after[1])} of $0.04 (77%) — {shown_usd(limit - after[1])} left",
        f"costhook: Budget daily/global: {shown_usd(after[2])} of $0.04 (117%) — {shown_usd(after[2] - limit)} over",
    ]
    assert shown == ["costhook: Budget daily/global: $0.0311 of $0.04 (77%) — $0.0089 left",
                     "costhook: Budget daily/global: $0.0471 of $0.04 (117%) — $0.0071 over"]
    # What the user sees: Claude Code prints each systemMessage as an informational event …
    infos = [e["content"] for e in stream_events(run)
             if e.get("type") == "system" and e.get("subtype") == "informational"]
    assert infos == [f"PreToolUse:Bash says: {m}" for m in shown], context(run)
    # … and keeps it in the transcript.
    lines = transcript_lines(layout, result["session_id"])
    assert [(a["hookEvent"], a["content"]) for a in attachments(lines, "hook_system_message")] == [
        ("PreToolUse", m) for m in shown]
    assert attachments(lines, "hook_stopped_continuation") == []
    assert run.stderr.strip() == ""
    assert errors_log(layout) == ""


def test_a_threshold_crossed_by_the_final_call_fires_at_session_end(tmp_path_factory, claude_bin, costhook_exe):
    """Crossed by the last call of the turn: Stop runs in the background and says nothing
    (nor ever blocks: a Stop block makes the agent go on); SessionEnd, which no gate
    follows, fires the threshold (recorded, notified), and the next prompt starts knowing it."""
    layout = new_layout(tmp_path_factory, "warn_stop")
    limit = 20_000_000  # warn_at 0.9 = 18 M: 15.4 M after the tool call, 18.6 M after the final one
    set_budget(layout, "--scope", "global", "--period", "daily", "--limit", usd(limit),
               "--warn-at", "0.9", "--action", "warn")
    run = h.run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash"}, claude=claude_bin,
                       extra_args=["--output-format", "stream-json", "--verbose"])
    assert run.rc == 0 and not run.timed_out, context(run)
    result = result_of(run)
    assert result["terminal_reason"] == "completed" and len(run.messages) == 2, context(run)
    finish(run)
    assert h.wait_for(lambda: alerts(layout), timeout=WAIT_S), context(run)
    assert [(a["threshold"], a["spent_nanousd"]) for a in alerts(layout)] == [(0.9, MAIN_TOOL[0] + MAIN_FINAL)]
    infos = [e["content"] for e in stream_events(run) if e.get("subtype") == "informational"]
    assert not [i for i in infos if i.startswith("Stop says")], context(run)
    lines = transcript_lines(layout, result["session_id"])
    summary = [line for line in lines if line.get("subtype") == "stop_hook_summary"]
    assert summary and not summary[0]["preventedContinuation"] and not summary[0]["hookErrors"]
    # The next session's first prompt gives the model the budget's standing.
    again = h.run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash"}, claude=claude_bin)
    assert again.rc == 0 and again.out, context(again)
    first = again.messages[0]["request"] if "request" in again.messages[0] else {}
    assert "Budget daily/global" in json.dumps(first) or "Budget daily/global" in json.dumps(
        transcript_lines(layout, again.out["session_id"])), context(again)
    assert errors_log(layout) == ""


# ---------------------------------------------------- (d) sub-agent spend ----
def test_subagent_calls_count_toward_session_and_global_budgets(tmp_path_factory, claude_bin, costhook_exe):
    """Main agent (Sonnet) calls Agent; the sub-agent (Haiku) crosses the session budget
    with its first call. Its Bash is denied in the sub-agent (which stops), then the main
    agent's PostToolUse(Agent) stops the main loop: no sub final, no main final call."""
    layout = new_layout(tmp_path_factory, "subagent")
    limit = 20_000_000  # main tool call 15.4 M (77 %) + sub-agent tool call 6.5 M = 21.9 M
    assert MAIN_TOOL[0] < limit < MAIN_TOOL[0] + SUB_TOOL
    set_budget(layout, "--scope", "session", "--period", "session", "--limit", usd(limit), "--action", "block")
    set_budget(layout, "--scope", "global", "--period", "daily", "--limit", "1", "--action", "warn")
    run = h.run_claude(layout, "delegate echo hi",
                       {"FAKE_TOOL": "Agent", "FAKE_TOOL_COMMAND": "echo hi >> ran.txt"}, claude=claude_bin)
    assert run.rc == 0 and not run.timed_out and run.out, context(run)
    assert calls(run) == [("main", "tool", 0), ("sub", "tool", 0)], context(run)
    out = run.out
    assert out["terminal_reason"] == "hook_stopped", context(run)
    assert out["result"] == ""
    sub_tool_id = run.messages[1]["reply"]["tool_uses"][0]["id"]
    agent_tool_id = run.messages[0]["reply"]["tool_uses"][0]["id"]
    assert [(d["tool_name"], d["tool_use_id"]) for d in out["permission_denials"]] == [("Bash", sub_tool_id)]
    assert not (layout.workdir / "ran.txt").exists()

    rows = finish(run)
    spent = MAIN_TOOL[0] + SUB_TOOL
    assert sum(r["cost_nanousd"] for r in rows) == spent == usd_to_nano(out["total_cost_usd"])
    assert [r["agent_id"] is not None for r in rows] == [False, True]
    assert_overshoot_bound(spent, limit, SUB_TOOL)
    message = block_message("session", "session", spent, limit)  # the sub-agent's call is in it
    sub_lines = transcript_lines(layout, sub=True)
    assert [(r["tool_use_id"], r["content"]) for r in tool_results(sub_lines)] == [
        (sub_tool_id, f"PreToolUse:Bash hook error: {message}")]
    assert [(a["hookName"], a["message"]) for a in attachments(sub_lines, "hook_stopped_continuation")] == [
        ("PreToolUse:Bash", message)]
    main_lines = transcript_lines(layout, out["session_id"])
    stops = attachments(main_lines, "hook_stopped_continuation")
    assert [(a["hookName"], a["toolUseID"], a["message"]) for a in stops] == [
        ("PostToolUse:Agent", agent_tool_id, message)]
    # Claude Code drops the systemMessage that PostToolUse sends along with continue:false:
    # it is neither shown nor kept, and `result` is "": the reason is only in the transcript.
    assert attachments(main_lines, "hook_system_message") == []
    assert "Budget" not in run.stdout
    assert [(a["budget_id"], a["threshold"], a["spent_nanousd"]) for a in alerts(layout)] == [
        ("session-session", 0.8, spent), ("session-session", 1.0, spent)]
    # The global rollup holds the sub-agent's Haiku call too.
    status = {s["id"]: s for s in json.loads(
        h.run_costhook(layout, "budget", "status", "--format", "json").stdout)}
    assert round(status["daily-global"]["spent"] * NANO) == spent
    assert round(status["session-session"]["spent"] * NANO) == spent and status["session-session"]["blocking"]
    assert errors_log(layout) == ""


def test_spent_agent_budget_denies_spawning_that_agent(tmp_path_factory, claude_bin, costhook_exe):
    layout = new_layout(tmp_path_factory, "agent_scope")
    limit = 5_000_000  # $0.005 < one sub-agent tool call ($0.006509)
    set_budget(layout, "--scope", "agent:general-purpose", "--period", "daily", "--limit", usd(limit),
               "--action", "block")
    scenario = {"FAKE_TOOL": "Agent", "FAKE_TOOL_COMMAND": "echo hi >> ran.txt"}
    first = h.run_claude(layout, "delegate echo hi", scenario, claude=claude_bin)
    assert first.rc == 0 and first.out, context(first)
    # Inside the sub-agent the budget works: its first call crosses, its Bash is denied, it
    # stops; continue:false there stops only the sub-agent, the main agent finishes.
    assert calls(first) == [("main", "tool", 0), ("sub", "tool", 0), ("main", "final", 1)], context(first)
    assert first.out["terminal_reason"] == "completed"
    assert [d["tool_name"] for d in first.out["permission_denials"]] == ["Bash"]
    finish(first)
    assert not (layout.workdir / "ran.txt").exists()

    # The budget is now spent. A new run may still spend on the main agent (not in scope),
    # but spawning another general-purpose sub-agent should be denied at PreToolUse(Agent).
    second = h.run_claude(layout, "delegate echo hi again", scenario, claude=claude_bin)
    assert second.rc == 0 and second.out, context(second)
    finish(second)
    assert [c[0] for c in calls(second)].count("sub") == 0, context(second)
    # The hook sees tool_name "Agent"; 2.1.330 reports the denial under the legacy name "Task".
    assert [d["tool_name"] for d in second.out["permission_denials"]] in (["Agent"], ["Task"])


# ------------------------- (h) a skill's shell command (PreSkillShellCommand) -
SKILL_SHELL_SINCE = "2.1.332"


def write_skill(layout: h.Layout, name: str, marker) -> None:
    """A project skill whose body embeds a shell command (`!` + backticks), run when the
    skill loads, before any API call of it."""
    folder = layout.workdir / ".claude" / "skills" / name
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: runs a shell command\nallowed-tools: Bash(touch:*)\n---\n"
        f"Result: !`touch {marker}`\nNow say done.\n")


def install_with_claude_on_path(layout: h.Layout, claude_bin) -> None:
    """`costhook install` as a user runs it: with this `claude` on PATH (asked for its version)."""
    bin_dir = layout.root / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").symlink_to(claude_bin)
    path = f"{bin_dir}:{h.base_env(layout)['PATH']}"
    p = h.run_costhook(layout, "install", "--scope", "user", env={"PATH": path})
    assert p.returncode == 0, f"costhook install failed: {p.stdout}\n{p.stderr}"


def test_spent_skill_budget_stops_the_skills_shell_command(tmp_path_factory, claude_bin, claude_cli_version,
                                                           costhook_exe):
    """A `skill:` budget cannot apply at the prompt (`/costly` names no skill yet) and a
    skill's embedded command has no PreToolUse: only PreSkillShellCommand (2.1.332+) can
    refuse it. costhook installs that hook only on a CLI that knows the event."""
    knows = h.at_least(claude_cli_version, SKILL_SHELL_SINCE)
    layout = h.make_layout(tmp_path_factory.mktemp("skill_shell"))
    install_with_claude_on_path(layout, claude_bin)
    assert ("PreSkillShellCommand" in json.loads(layout.settings.read_text())["hooks"]) is knows
    marker = layout.root / "skill-ran.txt"
    write_skill(layout, "costly", marker)

    # The model runs the skill once: its command runs, and the call after it is the skill's.
    seed = h.run_claude(layout, "use the costly skill", {"FAKE_TOOL": "Skill", "FAKE_SKILL": "costly"},
                        claude=claude_bin, allowed_tools="Bash,Agent,Skill")
    assert seed.rc == 0 and seed.out and seed.out["terminal_reason"] == "completed", context(seed)
    rows = finish(seed)
    assert [(r["skill"], r["cost_nanousd"]) for r in rows] == [(None, MAIN_TOOL[0]), ("costly", MAIN_FINAL)]
    assert marker.exists()
    marker.unlink()

    limit = 1_000_000  # $0.001 < the skill's $0.0032556
    set_budget(layout, "--scope", "skill:costly", "--period", "daily", "--limit", usd(limit), "--action", "block")
    run = h.run_claude(layout, "/costly", {}, claude=claude_bin)
    assert run.rc == 0 and not run.timed_out and run.out, context(run)
    if not knows:  # no hook event to stop it: the command runs (README: Supported versions)
        assert marker.exists(), context(run)
        return
    assert not marker.exists(), context(run)
    assert run.messages == [], context(run)  # continue:false: not a single API call
    expected = block_message("daily", "skill:costly", MAIN_FINAL, limit)
    assert run.out["result"] == f"Operation stopped by hook: {expected}", run.out["result"]
    assert (run.out["is_error"], run.out["num_turns"], run.out["total_cost_usd"]) == (False, 0, 0)
    finish(run)
    assert [(a["budget_id"], a["threshold"]) for a in alerts(layout)] == [
        ("daily-skill-costly", 0.8), ("daily-skill-costly", 1.0)]
    assert errors_log(layout) == ""
