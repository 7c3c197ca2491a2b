"""Budget decisions at Codex's gates: the real `costhook hook --agent codex` process, JSON on
stdin, answering in the form Codex 0.171.0 acts on (the real CLI's reactions are proved in
tests/e2e/test_codex_budgets_e2e.py). Spend is seeded the real way: a Claude transcript
dated now, ingested by `costhook import` (a global budget counts every agent)."""

import json
from datetime import datetime, timezone

import pytest
from conftest import run_hook
from transcript_lines import assistant

SESSION = "019a0000-0000-7000-8000-00000000c0de"


@pytest.fixture
def spent(home, tmp_path):
    """$0.30 spent today (100,000 Sonnet input tokens), imported."""
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path / "claude" / "projects" / "-p"
    folder.mkdir(parents=True)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    (folder / "s.jsonl").write_text(assistant("m1", input_tokens=100_000, output_tokens=0, timestamp=now))
    costhook = str(Path(sys.executable).parent / "costhook")
    proc = subprocess.run([costhook, "import", "--claude-dir", str(tmp_path / "claude"), "-q"], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return tmp_path


def budget(tmp_path, limit: float, action: str = "block", warn_at: str = "[0.5]") -> None:
    import os

    config = os.environ["COSTHOOK_CONFIG"]
    with open(config, "w") as f:
        f.write(f'[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = {limit}\naction = "{action}"\n'
                f"warn_at = {warn_at}\n")


def event(name: str, **extra) -> dict:
    payload = {"session_id": SESSION, "transcript_path": None, "cwd": "/work/proj", "hook_event_name": name,
               "model": "gpt-5.5", "permission_mode": "bypassPermissions", "turn_id": "t-1"}
    payload.update(extra)
    return payload


def answer(name: str, **extra):
    proc = run_hook(event(name, **extra), args=("--agent", "codex"))
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else None


BASH = {"tool_name": "Bash", "tool_input": {"command": "echo hi"}, "tool_use_id": "call_1"}


def test_a_spent_budget_blocks_the_prompt(spent):
    budget(spent, 0.1)
    out = answer("UserPromptSubmit", prompt="hello")
    assert out == {"decision": "block", "reason": out["reason"]}
    assert "Budget daily/global: $0.30 of $0.10" in out["reason"] and "costhook budget" in out["reason"]


def test_a_spent_budget_denies_a_tool_and_tells_the_model_to_stop(spent):
    """Codex ignores `continue: false` at PreToolUse and calls the model again after a
    deny: the reason (the tool output the model reads) is what stops it calling tools."""
    budget(spent, 0.1)
    out = answer("PreToolUse", **BASH)
    assert set(out) == {"hookSpecificOutput"}
    spec = out["hookSpecificOutput"]
    assert spec["hookEventName"] == "PreToolUse" and spec["permissionDecision"] == "deny"
    reason = spec["permissionDecisionReason"]
    assert "$0.30 of $0.10" in reason and "do not call any more tools" in reason and "end your turn" in reason


def test_stop_never_blocks(spent):
    budget(spent, 0.1)
    assert answer("Stop", stop_hook_active=False, last_assistant_message="done") is None


def test_post_tool_use_blocks_only_after_a_spending_tool(spent):
    """After a sub-agent's tool (`collaboration…`, which spent while it ran) the block
    replaces the tool output; after any other tool PreToolUse already judged the spend."""
    budget(spent, 0.1)
    assert answer("PostToolUse", tool_response="hi\n", **BASH) is None
    out = answer("PostToolUse", tool_name="collaborationwait_agent", tool_input={}, tool_use_id="call_2",
                 tool_response="{}")
    assert out["decision"] == "block" and "do not call any more tools" in out["reason"]


def test_a_crossed_threshold_warns_once(spent):
    budget(spent, 0.5, warn_at="[0.5]")
    first = answer("UserPromptSubmit", prompt="hi")
    assert first == {"systemMessage": first["systemMessage"]} and "$0.30 of $0.50" in first["systemMessage"]
    assert answer("PreToolUse", **BASH) is None


def test_a_warn_budget_never_blocks(spent):
    budget(spent, 0.1, action="warn", warn_at="[1.0]")
    out = answer("UserPromptSubmit", prompt="hi")
    assert "decision" not in out and "$0.30 of $0.10" in out["systemMessage"]
    assert answer("PreToolUse", **BASH) is None


def test_no_budget_no_answer(spent):
    assert answer("UserPromptSubmit", prompt="hi") is None
    assert answer("PreToolUse", **BASH) is None


@pytest.mark.parametrize("stdin", [b"", b"[]", b"{not json", b'{"hook_event_name": 5}'])
def test_bad_input_fails_open(home, stdin):
    proc = run_hook(stdin, args=("--agent", "codex"))
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""


def test_a_spent_budget_refuses_an_approval(spent):
    budget(spent, 0.1)
    out = answer("PermissionRequest", tool_name="Bash", tool_input={"command": "touch x", "description": "d"})
    decision = out["hookSpecificOutput"]["decision"]
    assert out["hookSpecificOutput"]["hookEventName"] == "PermissionRequest"
    assert decision["behavior"] == "deny" and "$0.30 of $0.10" in decision["message"]
