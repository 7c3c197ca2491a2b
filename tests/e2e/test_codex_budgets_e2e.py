"""Budgets at Codex's gates, on the real Codex CLI 0.171.0 offline (tests/e2e/codex_harness.py),
with the hooks `costhook install --agent codex` writes.

What Codex lets a hook do (measured, see agents/codex/hook.py): UserPromptSubmit can stop
a prompt before any API call; PreToolUse can refuse a tool, but Codex then calls the
model again with the refusal as the tool's output and `continue: false` is ignored there;
no hook ends a running turn; a Stop block makes the turn go on. So on Codex the bound of a
budget crossed mid-turn is: **the call that crosses it, plus one call per tool call the
model still asks for in that turn** (none of those tools runs). costhook's refusal tells
the model that every tool is refused and to end its turn: a model that does as told
makes exactly one more call. The next prompt is blocked with 0 API calls.

Token budgets keep these tests independent of the model's price."""

from __future__ import annotations

import json
import subprocess

import pytest

from . import codex_harness


@pytest.fixture(scope="module")
def codex_bin():
    path, why = codex_harness.codex_binary()
    if path is None:
        pytest.skip(f"e2e: Codex {codex_harness.CODEX_VERSION} unavailable: {why} "
                    "(install it with `python tests/e2e/codex_harness.py --install`)")
    return path


@pytest.fixture
def box(tmp_path, codex_bin):
    box = codex_harness.Sandbox.make(tmp_path, codex_bin)
    proc = subprocess.run([str(codex_harness.costhook_exe()), "install", "--agent", "codex"], env=box.env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return box


def set_budget(box, scope: str, period: str, tokens: int) -> None:
    box.costhook_config.write_text(
        f'[[budgets]]\nscope = "{scope}"\nperiod = "{period}"\ntokens = {tokens}\naction = "block"\n')


def tokens(usage: dict) -> int:
    """What a token budget counts of one response: all input (cached included) and output."""
    return usage["input_tokens"] + usage["output_tokens"]


def rows(box) -> list:
    proc = box.costhook("report", "--by", "session", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["rows"]


def tool_outputs(box) -> list:
    outputs = []
    for path in box.rollouts():
        for line in open(path):
            item = json.loads(line)
            if item.get("type") == "response_item" and item["payload"].get("type") == "function_call_output":
                outputs.append(item["payload"]["output"])
    return outputs


def ran_commands(run) -> list:
    """The shell commands that ran in this run (`codex exec --json` items)."""
    return [e["item"] for e in run.events if e.get("type") == "item.completed"
            and e["item"].get("type") == "command_execution" and e["item"].get("exit_code") is not None]


def test_a_spent_budget_blocks_the_next_prompt_with_no_api_call(box):
    # One turn of two calls (a tool, then the answer) spends what the fake API reports...
    run = box.run("please TOOLS:1")
    assert run.rc == 0 and len(run.billed) == 2 and len(ran_commands(run)) == 1
    spent = sum(tokens(r["usage"]) for r in run.billed)
    box.wait_for_hooks()
    # ...a daily budget below that is spent: the next prompt, resumed or new, makes no call.
    set_budget(box, "global", "daily", spent - 1)
    resumed = box.run("go on please TOOLS:1", resume=True)
    assert resumed.rc == 0 and resumed.requests == []  # `codex exec` exits 0 on a blocked prompt
    fresh = box.run("a new session TOOLS:1")
    assert fresh.rc == 0 and fresh.requests == []
    assert sum(row["requests"] for row in rows(box)) == 2  # nothing more was billed


def test_a_budget_crossed_mid_turn_stops_a_model_that_obeys_after_one_call(box):
    """The first response crosses the session budget and asks for a tool: refused; the
    model reads the refusal, answers, and the turn ends: 2 billed calls instead of 4."""
    set_budget(box, "session", "session", 1)
    run = box.run("please TOOLS:3 OBEY")
    assert run.rc == 0
    assert [r["kind"] for r in run.requests] == ["call", "text"]
    (output,) = tool_outputs(box)
    assert output.startswith("Command blocked by PreToolUse hook: costhook: Budget session/session")
    assert "do not call any more tools" in output and ran_commands(run) == []
    box.wait_for_hooks()
    assert sum(row["requests"] for row in rows(box)) == 2  # both billed calls recorded
    assert box.run("go on", resume=True).requests == []  # and the next prompt is blocked


def test_a_budget_crossed_mid_turn_bound_for_a_model_that_insists(box):
    """A model that ignores the refusal: one billed call per tool call it still asks for,
    none of those tools runs, and the turn ends when the model stops asking (Codex offers
    no hook that ends it; a Stop block would make it go on, so costhook never blocks there)."""
    set_budget(box, "session", "session", 1)
    run = box.run("please TOOLS:3")
    assert run.rc == 0
    assert [r["kind"] for r in run.requests] == ["call", "call", "call", "text"]  # 1 crossing + 3 refused tools
    outputs = tool_outputs(box)
    assert len(outputs) == 3 and all(o.startswith("Command blocked by PreToolUse hook: costhook:") for o in outputs)
    assert ran_commands(run) == []  # no command ran
    box.wait_for_hooks()
    assert sum(row["requests"] for row in rows(box)) == 4  # every billed call recorded


def test_a_spent_agent_budget_refuses_the_sub_agents_tools(box):
    """A sub-agent's tool calls go through PreToolUse too (with the root's session_id and
    the child's agent_id/agent_type): an `agent:default` budget crossed by the child's first
    call refuses its tool; the child, obeying, answers; the parent (not in that scope)
    goes on. The spawn itself was allowed: nothing of that type had spent yet."""
    set_budget(box, "agent:default", "daily", 1)
    run = box.run("please SPAWN[TOOLS:2 OBEY]", "--enable", "multi_agent_v2")
    assert run.rc == 0
    kinds = [(r["kind"], r["tool"]) for r in run.requests]
    # spawn, the child's tool call (crossing; refused), wait, the child's answer, the parent's answer
    assert sorted(kinds, key=str) == sorted([("call", "spawn_agent"), ("call", "exec_command"), ("call", "wait_agent"),
                                             ("text", None), ("text", None)], key=str), kinds
    assert ran_commands(run) == []
    (refused,) = [output for output in tool_outputs(box) if "blocked" in output]
    assert refused.startswith("Command blocked by PreToolUse hook: costhook: Budget daily/agent:default")
    box.wait_for_hooks()
    proc = box.costhook("report", "--by", "agent", "--format", "json")
    by_agent = {row["key"]: row["requests"] for row in json.loads(proc.stdout)["rows"]}
    assert by_agent.get("default") == 2, by_agent  # the child's crossing call and its answer
