"""Sub-agents of Claude Code 2.0.x transcripts, which have no agent-*.meta.json (issue 13,
item 3): the parent's Task/Agent call names the type (`input.subagent_type`) and its result
names the sub-agent (`toolUseResult.agentId`, or `agentId: <id>` in its text). Every view
that groups by agent type shows that name, whichever file is read first; a sub-agent that
nothing names is "(sub-agent)", never the main thread."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import COSTHOOK, db_rows, run_hook
from transcript_lines import assistant, tool_use

REPO = Path(__file__).resolve().parents[1]
SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5-20251001"
AGENT = "a1b2c3d4"  # 2.0.x: a + 7 hex
SESSION = "sess-20x"


def costhook(*args) -> str:
    proc = subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def nano(usd: float) -> int:
    return round(usd * 1e9)


def rollup_agrees_with_rows() -> None:
    """The `agent` rows of the spend rollup are exactly what the calls add up to."""
    rolled = {r["key"]: (r["cost"], r["n"]) for r in db_rows(
        "SELECT key, sum(cost_nanousd) AS cost, sum(requests) AS n FROM spend WHERE dim = 'agent' GROUP BY key"
        " HAVING sum(requests) != 0")}
    rows = {r["key"]: (r["cost"], r["n"]) for r in db_rows(
        "SELECT agent_type AS key, sum(cost_nanousd) AS cost, count(*) AS n FROM requests"
        " WHERE agent_type IS NOT NULL GROUP BY agent_type")}
    assert rolled == rows


# ------------------------------------------------------------ holdout: a generated history --


def test_a_generated_2_0_history_matches_its_ground_truth_in_every_view(tmp_path, home):
    """A generated history with sub-agents and no .meta.json (2.0.x), imported: report, top,
    whatif and the dashboard give every agent type, and the total, to the nano-dollar the
    generator priced."""
    tree = tmp_path / "claude"
    subprocess.run([sys.executable, "-m", "tests.benchmarks.generate", "tree", str(tree), "--calls", "500", "--seed", "5",
                    "--days", "3", "--no-meta", "--cost"], cwd=REPO, check=True, capture_output=True, timeout=120)
    truth = json.loads((tree / "expected.json").read_text())
    assert not list(tree.rglob("*.meta.json")) and truth["subagent_files"] >= 3
    want = {key[len("agent:"):]: cost for key, cost in truth["cost_nanousd"].items() if key.startswith("agent:")}
    assert set(want) == {"(main)", "Explore", "Plan", "general-purpose"}
    calls = {key: row["requests"] for key, row in truth["by_agent"].items()}
    costhook("import", "--claude-dir", str(tree), "-q")

    report = json.loads(costhook("report", "--by", "agent", "--period", "all", "--format", "json"))
    assert {r["key"]: nano(r["cost_usd"]) for r in report["rows"]} == want
    assert {r["key"]: r["requests"] for r in report["rows"]} == calls
    assert nano(report["totals"]["cost_usd"]) == truth["cost_nanousd"]["total"]

    top = json.loads(costhook("top", "--by", "agent", "--period", "all", "--limit", "100", "--format", "json"))
    assert {r["key"]: (nano(r["cost_usd"]), r["requests"]) for r in top["rows"]} == {k: (want[k], calls[k]) for k in want}

    whatif = json.loads(costhook("whatif", "--by", "agent", "--to", "claude-opus-4-1", "--limit", "10000", "--days", "3650",
                                 "--now", "2026-09-08T00:00:00Z", "--format", "json"))
    by_agent = {}
    for row in whatif["rows"]:
        by_agent[row["key"]] = by_agent.get(row["key"], 0) + nano(row["actual_usd"])
    assert by_agent == want and nano(whatif["totals"]["actual_usd"]) == truth["cost_nanousd"]["total"]

    from costhook.text import money

    note = costhook("dashboard", "--stdout", "--now", "2026-09-08T00:00:00Z", "--tz", "UTC")
    board = note.split("**Sub-agent types**", 1)[1].split("<!--", 1)[0]
    shown = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in board.splitlines()
             if line.startswith("| ") and not line.startswith("| Sub-agent type")}
    assert shown == {key: money(cost / 1e9) for key, cost in want.items()}
    assert "(sub-agent)" not in costhook("tree", "--period", "all")
    rollup_agrees_with_rows()


# ------------------------------------------------------------ either file first -------------


def parent_lines(*, result_in_text: bool = False) -> tuple[str, str]:
    """The parent's Task call (2.0.x) and the user line with its result."""
    call = assistant("msg_parent", session_id=SESSION, model=SONNET, input_tokens=100, output_tokens=50,
                     content=[tool_use("Task", "toolu_task1", description="Review", prompt="SECRET-PROMPT",
                                       subagent_type="code-reviewer")], version="2.0.30")
    text = "Looks fine." + (f"\nagentId: {AGENT} (for resuming to continue this agent's work if needed)" if result_in_text else "")
    line = {"type": "user", "sessionId": SESSION, "isSidechain": False, "cwd": "/work/proj", "version": "2.0.30",
            "timestamp": "2026-11-20T10:00:09.000Z",
            "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_task1",
                                                     "content": [{"type": "text", "text": text}]}]}}
    if not result_in_text:
        line["toolUseResult"] = {"status": "completed", "prompt": "SECRET-PROMPT", "agentId": AGENT,
                                 "content": [{"type": "text", "text": text}], "totalTokens": 500}
    return call, json.dumps(line) + "\n"


def sub_lines() -> str:
    return "".join(assistant(f"msg_sub{i}", session_id=SESSION, model=HAIKU, input_tokens=1000, output_tokens=200,
                             agent_id=AGENT, timestamp=f"2026-11-20T10:00:0{i}.000Z", version="2.0.30")
                   for i in (1, 2, 3))


def layout(tmp_path) -> tuple[Path, Path]:
    folder = tmp_path / "projects" / "-work-proj"
    (folder / SESSION / "subagents").mkdir(parents=True)
    return folder / f"{SESSION}.jsonl", folder / SESSION / "subagents" / f"agent-{AGENT}.jsonl"


def hook(name: str, transcript: Path, **extra) -> None:
    payload = {"hook_event_name": name, "session_id": SESSION, "transcript_path": str(transcript), "cwd": "/work/proj", **extra}
    proc = run_hook(payload)
    assert proc.returncode == 0 and not proc.stdout and not proc.stderr, proc


def by_agent() -> dict:
    rows = json.loads(costhook("report", "--by", "agent", "--period", "all", "--format", "json"))["rows"]
    return {r["key"]: r["requests"] for r in rows}


def test_the_parent_names_the_type_after_the_sub_agent_was_stored(tmp_path, home):
    """The usual order: the sub-agent's calls are in before its parent's Task result."""
    parent, child = layout(tmp_path)
    call, result = parent_lines()
    parent.write_text(call)
    hook("PostToolUse", parent, tool_name="Bash", tool_use_id="toolu_x")  # the Task call, read before its result
    child.write_text(sub_lines())
    hook("SubagentStop", parent, agent_id=AGENT)
    assert by_agent() == {"(main)": 1, "(sub-agent)": 3}
    with parent.open("a") as f:
        f.write(result)
    hook("PostToolUse", parent, tool_name="Task", tool_use_id="toolu_task1")
    assert by_agent() == {"(main)": 1, "code-reviewer": 3}
    rollup_agrees_with_rows()
    assert db_rows("SELECT * FROM subagents") == [{"session_id": SESSION, "agent_id": AGENT, "agent_type": "code-reviewer"}]
    # Nothing of the tool's input is kept: only the type's name.
    conn = sqlite3.connect(os.environ["COSTHOOK_DB"])
    assert "SECRET-PROMPT" not in "\n".join(conn.iterdump())
    conn.close()


def test_the_sub_agent_read_after_its_parent_takes_the_name(tmp_path, home):
    """A background agent: its Task result (with the agentId) comes before its calls."""
    parent, child = layout(tmp_path)
    call, result = parent_lines(result_in_text=True)
    parent.write_text(call + result)
    hook("PostToolUse", parent, tool_name="Task", tool_use_id="toolu_task1")
    child.write_text(sub_lines())
    hook("SubagentStop", parent, agent_id=AGENT)
    assert by_agent() == {"(main)": 1, "code-reviewer": 3}
    rollup_agrees_with_rows()
    costhook("import", "--claude-dir", str(tmp_path))  # and again: nothing changes
    assert by_agent() == {"(main)": 1, "code-reviewer": 3}


def test_import_names_sub_agents_whichever_file_is_older(tmp_path, home):
    parent, child = layout(tmp_path)
    call, result = parent_lines()
    parent.write_text(call + result)
    child.write_text(sub_lines())
    os.utime(child, (2_000_000_000, 2_000_000_000))  # the sub-agent's file is read last
    costhook("import", "--claude-dir", str(tmp_path), "-q")
    assert by_agent() == {"(main)": 1, "code-reviewer": 3}
    rollup_agrees_with_rows()


def test_a_sub_agent_nothing_names_stays_a_sub_agent(tmp_path, home):
    parent, child = layout(tmp_path)
    call, _ = parent_lines()
    parent.write_text(call)  # the result never came (a killed session)
    child.write_text(sub_lines())
    costhook("import", "--claude-dir", str(tmp_path), "-q")
    assert by_agent() == {"(main)": 1, "(sub-agent)": 3}


def test_a_database_from_before_names_its_sub_agents_on_the_next_import(tmp_path, home):
    """Rows stored by an older costhook (sub-agent calls under the main thread, no names
    table): the upgrade makes them "(sub-agent)", and the next import reads the parents
    again and names them."""
    parent, child = layout(tmp_path)
    call, result = parent_lines()
    parent.write_text(call + result)
    child.write_text(sub_lines())
    costhook("import", "--claude-dir", str(tmp_path), "-q")
    conn = sqlite3.connect(os.environ["COSTHOOK_DB"])
    with conn:
        conn.execute("UPDATE requests SET agent_type = NULL")
        conn.execute("DROP TABLE subagents")
        conn.execute("PRAGMA user_version = 5")
        from costhook.store.rollup import rebuild_spend

        rebuild_spend(conn)
    conn.close()
    assert by_agent() == {"(main)": 1, "(sub-agent)": 3}
    rollup_agrees_with_rows()
    costhook("import", "--claude-dir", str(tmp_path), "-q")
    assert by_agent() == {"(main)": 1, "code-reviewer": 3}
    rollup_agrees_with_rows()
