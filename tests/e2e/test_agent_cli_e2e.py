"""End to end: a budget scoped to one agent CLI (`cli:<name>`) in the real Claude Code.

The Claude Code run is recorded by costhook's real hooks; Codex's spend of the same day is
written through costhook's write path as Codex capture stores it (thread and response id,
an OpenAI model). A spent `cli:codex` budget lets Claude Code work; a spent `cli:claude`
budget blocks its next prompt before any API call.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from costhook.store import db, writes

from . import harness as h
from .test_budgets_e2e import MAIN_FINAL, MAIN_TOOL, block_message, context, finish, new_layout, set_budget, usd

pytestmark = pytest.mark.e2e


def write_codex_calls(layout: h.Layout, nano: int) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    record = {"key": "019d-thread:resp_1", "agent": "codex", "session_id": "019d-thread", "timestamp": stamp,
              "model": "gpt-5-codex", "project": str(layout.workdir), "input_tokens": 1000, "output_tokens": 10,
              "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0, "tools": []}
    conn = db.connect(layout.db)
    with db.transaction(conn):
        writes.merge_requests(conn, {record["key"]: record}, lambda r: (nano, "computed"))
    conn.close()


def test_a_cli_budget_blocks_only_its_own_cli(tmp_path_factory, claude_bin, costhook_exe):
    layout = new_layout(tmp_path_factory, "cli_budget")
    seed = h.run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash"}, claude=claude_bin)
    assert seed.rc == 0 and seed.out and seed.out["terminal_reason"] == "completed", context(seed)
    spent = sum(r["cost_nanousd"] for r in finish(seed))
    assert spent == MAIN_TOOL[0] + MAIN_FINAL
    write_codex_calls(layout, 50_000_000)  # Codex: $0.05 today

    limit = 10_000_000  # $0.01: below what each CLI spent today
    codex = set_budget(layout, "--scope", "cli:codex", "--period", "daily", "--limit", usd(limit), "--action", "block")
    status = json.loads(h.run_costhook(layout, "budget", "status", "--format", "json").stdout)
    assert [(s["id"], s["spent"], s["blocking"]) for s in status] == [(codex, 0.05, True)]
    run = h.run_claude(layout, "run echo hi again", {"FAKE_TOOL": "Bash"}, claude=claude_bin)
    assert run.rc == 0 and run.out and run.out["terminal_reason"] == "completed", context(run)
    assert len(run.messages) == 2, context(run)  # Codex's budget says nothing about Claude Code
    spent += sum(r["cost_nanousd"] for r in finish(run) if r["session_id"] == run.out["session_id"])

    assert h.run_costhook(layout, "budget", "remove", codex).returncode == 0
    set_budget(layout, "--scope", "cli:claude", "--period", "daily", "--limit", usd(limit), "--action", "block")
    blocked = h.run_claude(layout, "run echo hi once more", {"FAKE_TOOL": "Bash"}, claude=claude_bin)
    assert blocked.rc == 0 and blocked.out and blocked.messages == [], context(blocked)  # not a single API call
    assert blocked.out["result"].startswith("UserPromptSubmit operation blocked by hook:\n"
                                            + block_message("daily", "cli:claude", spent, limit)), blocked.out["result"]
