"""End to end, privacy (issue item 5): marker strings go through the real Claude Code
2.1.330 — in the prompt, in a file the agent reads, in a tool's input and output, in a
sub-agent's prompt, in the model's answer — with costhook's hooks registered by
`costhook install` and a budget configured (so every hook does its whole work). None of
them may appear in any file costhook wrote (database, its WAL, error log, config), nor
after a `costhook import` of the same transcripts. The markers must be in the transcripts
themselves, or the test proves nothing.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from leaks import markers_in

from . import harness as h

pytestmark = pytest.mark.e2e

WAIT_S = float(os.environ.get("COSTHOOK_E2E_WAIT", "5"))
MARKERS = {
    "prompt": "MARKER-E2E-PROMPT-51c3",
    "file content": "MARKER-E2E-FILE-CONTENT-a8d2",
    "tool input": "MARKER-E2E-TOOLIN-0f4e",
    "tool output": "MARKER-E2E-TOOLOUT-2",  # only the shell's arithmetic makes this: the input says $((1+1))
    "answer": "MARKER-E2E-ANSWER-77b9",
}
COMMAND = f"cat notes.txt; echo MARKER-E2E-TOOLOUT-$((1+1)) # {MARKERS['tool input']}"


def scan(folder: Path) -> list[str]:
    return markers_in(folder, MARKERS)


def test_no_prompt_tool_data_or_file_content_reaches_costhook(tmp_path, claude_bin, costhook_exe):
    layout = h.make_layout(tmp_path / "run")
    (layout.workdir / "notes.txt").write_text(f"secret notes: {MARKERS['file content']}\n")
    inst = h.run_costhook(layout, "install", "--scope", "user")
    assert inst.returncode == 0, inst.stdout + inst.stderr
    budget = h.run_costhook(layout, "budget", "set", "--scope", "global", "--period", "daily", "--limit", "1000")
    assert budget.returncode == 0, budget.stdout + budget.stderr

    run = h.run_claude(layout, f"please read the notes {MARKERS['prompt']} and delegate",
                       {"FAKE_TOOL": "Agent", "FAKE_TOOL_COMMAND": COMMAND,
                        "FAKE_FINAL_TEXT": f"all done {MARKERS['answer']}"}, claude=claude_bin)
    assert run.rc == 0 and not run.timed_out and run.out, run.describe()

    def recorded():
        conn = sqlite3.connect(layout.db, timeout=5)
        try:
            rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
            ended = conn.execute("SELECT count(*) FROM sessions WHERE end_reason IS NOT NULL").fetchone()[0]
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()
        return rows >= 4 and ended

    assert h.wait_for(recorded, timeout=WAIT_S), run.describe()

    # The markers did pass through Claude Code: they are in its transcripts.
    transcripts = b"".join(p.read_bytes() for p in layout.transcripts() + layout.subagent_transcripts())
    missing = [name for name, m in MARKERS.items() if m.encode() not in transcripts]
    assert missing == [], (missing, run.describe())

    # …and nowhere costhook writes.
    config_dir = layout.costhook_config.parent
    assert scan(layout.costhook_home) == [], (scan(layout.costhook_home), layout.errors_log.exists())
    assert scan(config_dir) == []

    # The CLI over the same data: a re-import and the reports add nothing of it either.
    assert h.run_costhook(layout, "import", "--claude-dir", str(layout.config_dir)).returncode == 0
    for args in (["report", "--by", "session", "--format", "json"], ["report", "--by", "tool"], ["doctor"]):
        h.run_costhook(layout, *args)
    assert scan(layout.costhook_home) == []
    # What costhook did keep is metadata: the calls and the tools by name.
    conn = sqlite3.connect(layout.db)
    tools = {r[0] for r in conn.execute("SELECT tool_name FROM tool_calls")}
    rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    conn.close()
    assert tools == {"Agent", "Bash"} and rows == 4
