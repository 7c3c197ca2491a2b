"""Files from outside that are not what they claim: FIFOs, endless devices, huge unfinished
lines, transcripts rewritten in place. Every hook here is the real `costhook` process with
JSON on stdin; a hook that hangs fails the test through the subprocess timeout."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import COSTHOOK, db_rows, run_hook
from transcript_lines import assistant

HANG_S = 10  # a hook that takes this long has hung (every one here answers well within 1 s)
BUDGET = '[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = "100"\naction = "block"\n'


def quick_hook(payload, **kwargs) -> subprocess.CompletedProcess:
    started = time.monotonic()
    proc = run_hook(payload, timeout=HANG_S, **kwargs)  # TimeoutExpired: it hung
    assert time.monotonic() - started < HANG_S / 2
    assert proc.returncode == 0, proc.stderr
    return proc


def keys() -> set:
    if not os.path.exists(os.environ["COSTHOOK_DB"]):
        return set()
    return {row["key"] for row in db_rows("SELECT key FROM requests")}


def cursor(path) -> dict:
    rows = db_rows("SELECT * FROM cursors WHERE path = ?", (str(path),))
    return rows[0] if rows else {}


@pytest.fixture
def budgets(home, tmp_path):
    (tmp_path / "config.toml").write_text(BUDGET)


# ------------------------------------------------------ 9. FIFOs, endless files -----


@pytest.mark.parametrize("where", ["cwd", "parent", "gitdir"])
def test_a_fifo_as_git_head_does_not_stall_session_start(home, tmp_path, where):
    root = tmp_path / "repo"
    cwd = root / "a" / "b" if where == "parent" else root
    cwd.mkdir(parents=True)
    if where == "gitdir":  # a worktree: .git is a file naming the folder holding HEAD
        (tmp_path / "real-git").mkdir()
        os.mkfifo(tmp_path / "real-git" / "HEAD")
        (root / ".git").write_text(f"gitdir: {tmp_path / 'real-git'}\n")
    else:
        (root / ".git").mkdir()
        os.mkfifo(root / ".git" / "HEAD")
    quick_hook({"hook_event_name": "SessionStart", "session_id": "s-git", "cwd": str(cwd), "source": "startup"})
    assert db_rows("SELECT git_branch FROM sessions WHERE session_id = 's-git'") == [{"git_branch": None}]


def test_a_fifo_as_the_gitdir_file_is_no_branch(home, tmp_path):
    os.mkfifo(tmp_path / ".git")
    quick_hook({"hook_event_name": "SessionStart", "session_id": "s-git", "cwd": str(tmp_path)})


def test_a_fifo_transcript_does_not_hang_stop_or_pre_tool_use(home, tmp_path, budgets):
    fifo = tmp_path / "s-1.jsonl"
    os.mkfifo(fifo)
    quick_hook({"hook_event_name": "Stop", "session_id": "s-1", "transcript_path": str(fifo),
                "last_assistant_message": "done"})
    quick_hook({"hook_event_name": "PreToolUse", "session_id": "s-1", "transcript_path": str(fifo),
                "tool_use_id": "toolu_1", "tool_name": "Bash", "tool_input": {}})


def test_dev_zero_as_a_transcript_is_not_read(home):
    proc = quick_hook({"hook_event_name": "Stop", "session_id": "s-1", "transcript_path": "/dev/zero",
                       "last_assistant_message": "done"})
    assert proc.stdout == b""
    assert not (home / "errors.log").exists()  # not a transcript: nothing read, nothing wrong


def test_a_fifo_subagent_meta_file_does_not_hang_subagent_stop(home, tmp_path):
    subagents = tmp_path / "s-1" / "subagents"
    subagents.mkdir(parents=True)
    child = subagents / "agent-a1.jsonl"
    child.write_text(assistant("msg_child", session_id="s-1", agent_id="a1"))
    os.mkfifo(subagents / "agent-a1.meta.json")
    quick_hook({"hook_event_name": "SubagentStop", "session_id": "s-1", "agent_id": "a1",
                "transcript_path": str(tmp_path / "s-1.jsonl"), "agent_transcript_path": str(child)})
    assert keys() == {"msg_child:req_msg_child"}


def test_a_fifo_config_file_fails_open(home, tmp_path, monkeypatch):
    config = tmp_path / "fifo.toml"
    os.mkfifo(config)
    monkeypatch.setenv("COSTHOOK_CONFIG", str(config))
    proc = quick_hook({"hook_event_name": "UserPromptSubmit", "session_id": "s-1", "prompt": "hi"})
    assert proc.stdout == b""
    assert "not a regular file" in (home / "errors.log").read_text()


def test_a_fifo_settings_file_is_refused_not_waited_on(home, tmp_path):
    settings = tmp_path / "settings.json"
    os.mkfifo(settings)
    code = ("import sys; from pathlib import Path; from costhook.agents.settings import read_settings\n"
            "from costhook.errors import InstallError\n"
            "try:\n    read_settings(Path(sys.argv[1]))\nexcept InstallError as exc:\n    print(exc)\n")
    proc = subprocess.run([str(Path(COSTHOOK).parent / "python"), "-c", code, str(settings)],
                          capture_output=True, text=True, timeout=HANG_S)
    assert "not a regular file" in proc.stdout, proc.stderr
