"""Files from outside that are not what they claim: FIFOs, endless devices, huge unfinished
lines, transcripts rewritten in place. Every hook here is the real `costhook` process with
JSON on stdin; a hook that hangs fails the test through the subprocess timeout."""

import fcntl
import hashlib
import json
import os
import sqlite3
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


def spent_prompt_event(tmp_path) -> bytes:
    """A UserPromptSubmit whose session has spent its blocking budget: the answer is a block."""
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "session"\nperiod = "session"\ntokens = 1\naction = "block"\n')
    transcript = tmp_path / "s-1.jsonl"
    transcript.write_text(assistant("msg_1", session_id="s-1"))
    return json.dumps({"hook_event_name": "UserPromptSubmit", "session_id": "s-1", "prompt": "hi",
                       "transcript_path": str(transcript), "cwd": str(tmp_path)}).encode()


@pytest.mark.parametrize("complete", [True, False], ids=["whole-event", "half-event"])
def test_a_stdin_that_is_never_closed_does_not_hang_the_hook(home, tmp_path, complete):
    """Whoever starts the hook may write its event and keep the pipe open (a wrapper, a
    terminal): the hook stops waiting for the end of its input within about a second,
    answers the event it has (a spent blocking budget still blocks) or, given half an
    event, fails open with one line."""
    event = spent_prompt_event(tmp_path)
    proc = subprocess.Popen([COSTHOOK, "hook"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.monotonic()
    try:
        proc.stdin.write(event if complete else event[: len(event) // 2])
        proc.stdin.flush()  # and never closed
        assert proc.wait(timeout=HANG_S) == 0  # TimeoutExpired: it hung
        answer = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
    assert time.monotonic() - started < 2.5
    if complete:
        assert json.loads(answer)["decision"] == "block"
    else:
        assert answer == b""
        assert len((home / "errors.log").read_text().splitlines()) == 1


def test_an_event_written_in_slow_pieces_is_answered_whole(home, tmp_path):
    """A busy agent may write a large event in pieces: each piece restarts the wait for
    more, so an event that takes longer than one wait in all still comes whole (a spent
    blocking budget blocks), while a writer that stops is left within a wait."""
    event = spent_prompt_event(tmp_path)
    proc = subprocess.Popen([COSTHOOK, "hook"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for piece in (event[:20], event[20:40], event[40:]):  # 1.4 s in all, 0.7 s apart
            proc.stdin.write(piece)
            proc.stdin.flush()
            time.sleep(0.7)
        proc.stdin.close()
        assert proc.wait(timeout=HANG_S) == 0
        assert json.loads(proc.stdout.read())["decision"] == "block"
    finally:
        proc.kill()
        proc.wait()


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


def test_fifo_and_device_files_in_an_openclaw_dir_are_skipped(home, tmp_path):
    sessions = tmp_path / "oc" / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    os.mkfifo(sessions / "sessions.json")
    os.mkfifo(sessions / "fifo.jsonl")
    os.symlink("/dev/zero", sessions / "zero.jsonl")
    os.mkfifo(sessions / "gone.jsonl.deleted.2026-11-22T18-27-08.892Z.zst")
    (tmp_path / "oc" / "cron" / "runs").mkdir(parents=True)
    os.mkfifo(tmp_path / "oc" / "cron" / "jobs.json")
    os.mkfifo(tmp_path / "oc" / "cron" / "runs" / "job.jsonl")
    proc = subprocess.run([COSTHOOK, "import", "-q", "--openclaw-dir", str(tmp_path / "oc")],
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_a_fifo_settings_file_is_refused_not_waited_on(home, tmp_path):
    settings = tmp_path / "settings.json"
    os.mkfifo(settings)
    code = ("import sys; from pathlib import Path; from costhook.agents.settings import read_settings\n"
            "from costhook.errors import InstallError\n"
            "try:\n    read_settings(Path(sys.argv[1]))\nexcept InstallError as exc:\n    print(exc)\n")
    proc = subprocess.run([str(Path(COSTHOOK).parent / "python"), "-c", code, str(settings)],
                          capture_output=True, text=True, timeout=HANG_S)
    assert "not a regular file" in proc.stdout, proc.stderr


# ------------------------------------------ 10. an unfinished huge last line -----


HUGE = (64 << 20) + (1 << 20)  # past jsonl.MAX_LINE


def write_huge_partial(path, calls=("msg_1",)):
    with open(path, "wb") as f:
        for message_id in calls:
            f.write(assistant(message_id).encode())
        f.write(b'{"type":"user","toolUseResult":"')
        f.write(b"x" * HUGE)


def catch_up(*paths) -> subprocess.CompletedProcess:
    return subprocess.run([COSTHOOK, "hook", "--catch-up", *map(str, paths)], capture_output=True, timeout=60)


def test_a_huge_unfinished_line_is_scanned_once_and_then_skipped(home, tmp_path):
    transcript = tmp_path / "s-1.jsonl"
    write_huge_partial(transcript)
    assert catch_up(transcript).returncode == 0
    # the cursor remembers how far it looked: the next hook has no backlog to hand over
    assert cursor(transcript)["offset"] == transcript.stat().st_size
    with open(transcript, "ab") as f:
        f.write(b'"}\n' + assistant("msg_2").encode())
    quick_hook({"hook_event_name": "PostToolUse", "session_id": "s-1", "transcript_path": str(transcript),
                "tool_use_id": "toolu_1", "tool_name": "Bash"})
    assert keys() == {"msg_1:req_msg_1", "msg_2:req_msg_2"}
    assert cursor(transcript)["offset"] == transcript.stat().st_size


def test_a_huge_complete_line_is_skipped_and_the_lines_after_it_read(home, tmp_path):
    transcript = tmp_path / "s-1.jsonl"
    with open(transcript, "wb") as f:
        f.write(assistant("msg_1").encode())
        f.write(b'{"type":"user","toolUseResult":"' + b"x" * HUGE + b'"}\n')
        f.write(assistant("msg_2").encode())
    assert catch_up(transcript).returncode == 0
    assert keys() == {"msg_1:req_msg_1", "msg_2:req_msg_2"}
    assert cursor(transcript)["offset"] == transcript.stat().st_size


def catch_up_lock_file(home, path) -> Path:
    name = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:24]
    return home / "catch-up" / f"{name}.lock"


def test_one_catch_up_per_file_at_a_time(home, tmp_path):
    transcript = tmp_path / "s-1.jsonl"
    transcript.write_text(assistant("msg_1"))
    assert catch_up(transcript).returncode == 0
    assert keys() == {"msg_1:req_msg_1"}
    lock = catch_up_lock_file(home, transcript)
    assert os.stat(lock).st_mode & 0o777 == 0o600
    assert os.stat(lock.parent).st_mode & 0o777 == 0o700
    with open(transcript, "a") as f:
        f.write(assistant("msg_2"))
    with open(lock, "r+") as held:  # another catch-up of this file is running
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        assert catch_up(transcript).returncode == 0
        assert time.monotonic() - started < 5
        assert keys() == {"msg_1:req_msg_1"}  # left to the one running
    assert catch_up(transcript).returncode == 0
    assert keys() == {"msg_1:req_msg_1", "msg_2:req_msg_2"}


# ------------------------------------------------ 11. rewritten in place -----


def rewrite_in_place(path, data: bytes) -> None:
    inode = os.stat(path).st_ino
    with open(path, "r+b") as f:  # `cp backup.jsonl session.jsonl`: same inode
        f.write(data)
        f.truncate()
    assert os.stat(path).st_ino == inode


def test_a_transcript_rewritten_in_place_is_read_again(home, tmp_path):
    transcript = tmp_path / "s-1.jsonl"
    first = assistant("msg_a", content=[{"type": "text", "text": "a" * 400}])
    transcript.write_text(first + assistant("msg_old", content=[{"type": "text", "text": "o" * 2000}]))
    payload = {"hook_event_name": "PostToolUse", "session_id": "s-1", "transcript_path": str(transcript),
               "tool_use_id": "toolu_1", "tool_name": "Bash"}
    quick_hook(payload)
    assert keys() == {"msg_a:req_msg_a", "msg_old:req_msg_old"}
    # same beginning, longer, but other calls where the old ones were
    rewrite_in_place(transcript, (first + assistant("msg_b") + assistant("msg_c")
                                  + assistant("msg_d", content=[{"type": "text", "text": "d" * 3000}])).encode())
    quick_hook({**payload, "tool_use_id": "toolu_2"})
    assert {"msg_b:req_msg_b", "msg_c:req_msg_c", "msg_d:req_msg_d"} <= keys()


def test_an_appended_transcript_is_still_read_incrementally(home, tmp_path):
    transcript = tmp_path / "s-1.jsonl"
    transcript.write_text(assistant("msg_a"))
    payload = {"hook_event_name": "PostToolUse", "session_id": "s-1", "transcript_path": str(transcript),
               "tool_use_id": "toolu_1", "tool_name": "Bash"}
    quick_hook(payload)
    before = cursor(transcript)
    with open(transcript, "a") as f:
        f.write(assistant("msg_b"))
    quick_hook({**payload, "tool_use_id": "toolu_2"})
    assert keys() == {"msg_a:req_msg_a", "msg_b:req_msg_b"}
    assert cursor(transcript)["offset"] == transcript.stat().st_size > before["offset"]
    # the mark moved with the offset: a third hook reads nothing again
    conn = sqlite3.connect(os.environ["COSTHOOK_DB"])
    conn.execute("DELETE FROM requests")
    conn.commit()
    conn.close()
    quick_hook({**payload, "tool_use_id": "toolu_3"})
    assert keys() == set()


OPENCLAW_MAIN = (Path(__file__).parent / "fixtures" / "openclaw" / "state" / "agents" / "main" / "sessions"
                 / "3c9d0f4e-8a61-4b7e-9d2a-5f1e6c7b8a01.jsonl")


def test_an_openclaw_file_rewritten_in_place_is_read_again(home, tmp_path):
    lines = OPENCLAW_MAIN.read_bytes().splitlines(keepends=True)
    calls = [line for line in lines if b'"usage"' in line]
    others = [line for line in lines if b'"usage"' not in line]
    assert len(calls) >= 4
    sessions = tmp_path / "oc" / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    path = sessions / OPENCLAW_MAIN.name
    path.write_bytes(b"".join(others + calls[:2]))

    def imported():
        proc = subprocess.run([COSTHOOK, "import", "-q", "--openclaw-dir", str(tmp_path / "oc")],
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return len(keys())

    assert imported() == 2
    # the same beginning, then the other calls first: where the old ones were, new ones are
    rewrite_in_place(path, b"".join(others + calls[2:] + calls[:2]))
    assert imported() == len(calls)


# -------------------------------------------------------------- the helper -----


def test_open_regular_refuses_fifos_devices_and_folders(tmp_path):
    from costhook import paths

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(paths.NotRegularFile):
        paths.open_regular(tmp_path / "fifo")  # at once: O_NONBLOCK
    with pytest.raises(paths.NotRegularFile):
        paths.read_regular("/dev/zero", 10)
    with pytest.raises(IsADirectoryError):
        paths.open_regular(tmp_path)
    (tmp_path / "file").write_bytes(b"abc")
    os.symlink(tmp_path / "file", tmp_path / "link")
    assert paths.read_regular(tmp_path / "link", 2) == b"ab"


def test_line_reader_never_holds_much_more_than_a_line_bound():
    import io

    from costhook.agents.jsonl import LineReader

    class Counting(io.BytesIO):
        def read(self, n=-1):
            assert 0 < n <= 16
            return super().read(n)

    data = b'{"a":1}\n' + b"x" * 10_000 + b'\n{"b":2}\n' + b"y" * 500
    reader = LineReader(Counting(data), 16, max_line=100)
    batches = list(reader)
    lines = [line for batch, _, _ in batches for line in batch]
    assert lines == [b'{"a":1}', b'{"b":2}']
    assert sum(skipped for _, _, skipped in batches) == 2  # the long line, and the unfinished one
    assert sum(nbytes for _, nbytes, _ in batches) == len(data)  # scanned to the end, once
    assert reader.skipping and reader.tail == data[-4096:]
    resumed = list(LineReader(io.BytesIO(b"yy\n{}\n"), 16, before=data[-4096:], max_line=100))
    assert resumed == [([b"{}"], 6, 0)]


@pytest.mark.parametrize("agent", ["claude", "openclaw"])
def test_a_fifo_as_the_error_log_does_not_hang_a_hook(home, agent):
    """errors.log opened for writing blocked until something read the FIFO: a hook with an
    error to log (here a payload that is not JSON) hung, a gate until the agent's timeout."""
    home.mkdir(parents=True, exist_ok=True)
    os.mkfifo(home / "errors.log")
    quick_hook(b"not json", args=("--agent", agent))
