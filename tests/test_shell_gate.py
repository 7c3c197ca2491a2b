"""The shell gate (agents/gate.sh) and its clearance (agents/clearance.py, budgets.clearance).

A gate lets the agent go on without starting Python only while a clearance written from the
stored totals says no budget threshold can be crossed within its tickets; anything else
runs the full gate. The tests run the real script with /bin/sh, as Claude Code and Codex
do, and a stand-in for the full gate that says it ran (`echo FULL`), so each test sees
which way the script went.
"""

import json
import os
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import COSTHOOK, run_hook
from test_budgets import write_budgets, write_calls

from costhook import budgets, paths
from costhook.agents import clearance
from costhook.config.model import validate_data
from costhook.store import db

GATE = Path(clearance.__file__).parent / "gate.sh"
FULL = ["sh", "-c", "cat >/dev/null; echo FULL"]


def now_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def gate(env=None, data=b'{"hook_event_name": "PreToolUse"}', timeout=10) -> str:
    """What the gate printed: "" when it let the agent go on by itself, "FULL" when it ran the full gate."""
    proc = subprocess.run(["/bin/sh", str(GATE), *FULL], input=data, capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    return proc.stdout.decode().strip()


@pytest.fixture
def setup(home, tmp_path):
    """One recorded $0.003 call, a config writer, and a way to record more calls through the
    real background hook (which refreshes the clearance, as after every recording)."""
    transcript = tmp_path / "s-1.jsonl"
    config = Path(os.environ["COSTHOOK_CONFIG"])

    def configure(*entries):
        write_budgets(config, *entries)
        past = time.time() - 5  # written before the hooks that follow read it
        os.utime(config, (past, past))

    def record(*ids):
        write_calls(transcript, [(i, 1000, now_stamp()) for i in ids])
        event = {"hook_event_name": "Stop", "session_id": "s-1", "transcript_path": str(transcript), "cwd": "/x"}
        assert run_hook(event, args=["--background"]).returncode == 0

    return configure, record


def test_far_from_every_threshold_the_gate_answers_without_python(setup):
    configure, record = setup
    configure({"scope": "global", "period": "daily", "limit": "1.00", "action": "block"})
    record("m1")  # $0.003: 80 % of $1 is 266 such calls away, /2 per ticket: capped at 100
    assert Path(paths.clearance_file()).read_text().split("\n")[0].split()[0] == str(budgets.CLEARANCE_MAX)
    assert gate() == ""
    assert gate(data=b"x" * (1 << 20)) == ""  # a large event is drained, never left in the pipe


def test_a_stdin_that_is_never_closed_does_not_hold_a_cleared_gate(setup):
    """The script drains the event it never reads; a writer that keeps the pipe open (a
    wrapper, a terminal) held it until the agent's hook timeout killed it. It answers at
    once and the drain goes on behind it, as long as the writer keeps the pipe."""
    configure, record = setup
    configure({"scope": "global", "period": "daily", "limit": "1.00", "action": "block"})
    record("m1")
    proc = subprocess.Popen(["/bin/sh", str(GATE), *FULL], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b'{"hook_event_name": "PreToolUse"}')
        proc.stdin.flush()  # and never closed
        assert proc.wait(timeout=5) == 0  # TimeoutExpired: it waited for the end of its input
        assert proc.stdout.read() == b"" and proc.stderr.read() == b""
        proc.stdin.write(b"x" * (1 << 20))  # the rest of a large event still has a reader
        proc.stdin.flush()
    finally:
        proc.kill()
        proc.stdin.close()
        proc.wait()


def test_each_gate_takes_a_ticket_and_the_last_one_sends_it_to_python(setup):
    configure, record = setup
    # $0.003 a call, spent $0.003; the warning at 80 % of $0.027 is $0.0186 away: 3 tickets of 2 calls.
    configure({"scope": "global", "period": "daily", "limit": "0.027", "action": "block"})
    record("m1")
    assert [gate() for _ in range(4)] == ["", "", "", "FULL"]
    record("m2")  # spent $0.006: $0.0156 to the warning, 2 tickets, a new generation
    assert [gate() for _ in range(3)] == ["", "", "FULL"]
    used = sorted(n for n in os.listdir(paths.gate_dir()) if n.startswith("used."))
    assert len(used) == 2  # the earlier generation's, read by no gate now, goes once a minute old
    past = time.time() - clearance.ABANDONED_S - 1
    for name in used:
        os.utime(os.path.join(paths.gate_dir(), name), (past, past))
    record("m3")
    assert [n for n in os.listdir(paths.gate_dir()) if n.startswith("used.")] == []


def test_near_a_threshold_or_past_it_there_is_no_clearance(setup):
    configure, record = setup
    configure({"scope": "global", "period": "daily", "limit": "0.008", "action": "block"})
    record("m1")  # $0.003: the warning at $0.0064 is closer than two such calls
    assert not os.path.exists(paths.clearance_file())
    assert gate() == "FULL"
    configure({"scope": "global", "period": "daily", "limit": "0.002", "action": "block"})
    record("m2")  # spent: the full gate blocks, every time
    assert gate() == "FULL"
    out = run_hook({"hook_event_name": "UserPromptSubmit", "session_id": "s-2", "transcript_path": "/nonexistent.jsonl",
                    "cwd": "/x", "prompt": "hi"})
    assert json.loads(out.stdout)["decision"] == "block"


@pytest.mark.parametrize("budget", [
    {"scope": "session", "period": "daily", "limit": "100", "action": "block"},
    {"scope": "global", "period": "session", "limit": "100", "action": "block"},
    {"scope": "global", "period": "daily", "limit": "100", "action": "block", "on_error": "block"},
])
def test_budgets_the_clearance_cannot_vouch_for(setup, budget):
    """A session's own spend (any session's), and a budget that blocks when costhook cannot
    read its data: every gate decides in full."""
    configure, record = setup
    configure(budget)
    record("m1")
    assert gate() == "FULL"


def test_without_budgets_every_gate_is_cleared(setup):
    _, record = setup
    record("m1")
    assert gate() == ""


def test_a_write_that_moves_spend_removes_the_clearance_and_others_do_not(setup, tmp_path):
    configure, record = setup
    configure({"scope": "global", "period": "daily", "limit": "1.00", "action": "block"})
    record("m1")
    conn = db.connect()
    from costhook.store import writes

    with db.transaction(conn, spend=False):
        writes.upsert_session(conn, "s-9", agent="claude")
    assert gate() == ""
    write_calls(tmp_path / "s-1.jsonl", [("m2", 1000, now_stamp())])
    from costhook.agents.claude import ingest

    ingest.ingest_file(conn, str(tmp_path / "s-1.jsonl"))
    assert not os.path.exists(paths.clearance_file())
    assert gate() == "FULL"


def test_a_config_dated_as_the_clearance_is_an_edit(setup):
    """A coarse file clock (one tick: ~4 ms) gives a config edited just after the clearance
    was written the clearance's own time: not newer, yet edited. Only a clearance newer than
    the config holds; with no config file at all there is nothing to edit."""
    configure, record = setup
    configure({"scope": "global", "period": "daily", "limit": "1.00", "action": "block"})
    record("m1")
    assert gate() == ""
    written = os.stat(paths.clearance_file()).st_mtime_ns
    os.utime(os.environ["COSTHOOK_CONFIG"], ns=(written, written))
    assert gate() == "FULL"
    os.utime(os.environ["COSTHOOK_CONFIG"], ns=(written - 10**9, written - 10**9))
    assert gate() == ""


def test_a_budget_set_from_the_cli_is_never_cleared_by_the_clearance_before_it(setup):
    """A config written in the same tick of the file clock (a coarse one: 4 ms) as the
    clearance has its time: a blocking budget just set with `costhook budget set` still
    goes to Python at the next gate, not behind up to 100 tickets (the gate's rule:
    test_a_config_dated_as_the_clearance_is_an_edit)."""
    configure, record = setup
    configure({"scope": "global", "period": "daily", "limit": "1.00", "action": "block"})
    record("m1")
    assert gate() == ""
    proc = subprocess.run([COSTHOOK, "budget", "set", "--scope", "global", "--period", "daily", "--limit", "0.001",
                           "--action", "block", "--id", "now-spent"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    if os.path.exists(paths.clearance_file()):  # as a coarse file clock dates both
        written = os.stat(os.environ["COSTHOOK_CONFIG"]).st_mtime_ns
        os.utime(paths.clearance_file(), ns=(written, written))
    assert gate() == "FULL"


def test_the_clearance_is_for_one_database_config_and_zone(setup, tmp_path):
    configure, record = setup
    configure({"scope": "global", "period": "daily", "limit": "1.00", "action": "block"})
    record("m1")
    assert gate() == ""
    assert gate({"COSTHOOK_DB": str(tmp_path / "other.db")}) == "FULL"
    assert gate({"COSTHOOK_CONFIG": str(tmp_path / "other.toml")}) == "FULL"
    assert gate({"TZ": "Asia/Tokyo"}) == "FULL"
    assert gate({"COSTHOOK_HOME": "~/elsewhere"}) == "FULL"
    Path(os.environ["COSTHOOK_CONFIG"]).write_text(Path(os.environ["COSTHOOK_CONFIG"]).read_text())  # edited
    assert gate() == "FULL"


def test_a_config_edited_while_the_clearance_was_computed_voids_it(setup):
    """The hook read the config, the user raised... or added a budget, then the hook wrote its
    clearance (newer than the config, so the script's -nt cannot tell): it is removed."""
    from costhook.agents import runtime

    configure, record = setup
    record("m1")
    os.unlink(paths.clearance_file())
    cfg = runtime.user_config()
    configure({"scope": "global", "period": "daily", "limit": "0.001", "action": "block"})
    os.utime(os.environ["COSTHOOK_CONFIG"])  # now: after the hook read it
    assert clearance.refresh(db.connect, cfg, config_read_ns=runtime.CONFIG_READ_NS) == 0
    assert not os.path.exists(paths.clearance_file())
    time.sleep(0.1)  # a config read well after its last change
    assert clearance.refresh(db.connect, cfg, config_read_ns=time.time_ns()) == budgets.CLEARANCE_MAX


@pytest.mark.parametrize("plant", ["fifo", "symlink", "garbage", "traversal", "empty"])
def test_a_planted_or_odd_clearance_sends_it_to_python_and_never_hangs(setup, tmp_path, plant):
    configure, record = setup
    configure({"scope": "global", "period": "daily", "limit": "1.00", "action": "block"})
    record("m1")
    target = Path(paths.clearance_file())
    lines = target.read_text().split("\n")
    target.unlink()
    if plant == "fifo":
        os.mkfifo(target)
    elif plant == "symlink":
        good = tmp_path / "good"
        good.write_text("\n".join(lines))
        target.symlink_to(good)
    elif plant == "garbage":
        target.write_text("100 $(touch /tmp/pwned)\n" + "\n".join(lines[1:]))
    elif plant == "traversal":
        target.write_text("100 ../../x\n" + "\n".join(lines[1:]))
    else:
        target.write_text("")
    assert gate(timeout=5) == "FULL"


def test_clearance_counts_every_budget_whatever_work_it_governs(home, tmp_path):
    """A project budget far away elsewhere still counts: the shell gate cannot tell whose work it is."""
    conn = db.connect()
    from costhook.agents.claude import ingest

    path = tmp_path / "s-1.jsonl"
    write_calls(path, [("m1", 1000, now_stamp())], cwd="/home/dev/acme-api")
    ingest.ingest_file(conn, str(path))
    def tickets(*entries):
        return budgets.clearance(conn, validate_data({"budgets": list(entries)})["budgets"])

    assert tickets() == budgets.CLEARANCE_MAX
    far = {"scope": "global", "period": "monthly", "limit": "1000", "action": "warn"}
    assert tickets(far) == budgets.CLEARANCE_MAX
    # acme-api spent $0.003 of $0.03: the first warning (0.5) is $0.012 away, 2 tickets of $0.006
    acme = {"scope": "project:acme-api", "period": "weekly", "limit": "0.03", "warn_at": [0.5, 0.9], "action": "block"}
    assert tickets(far, acme) == 2
    tokens = {"scope": "model:claude-sonnet-4-5", "period": "daily", "tokens": 5000, "action": "block"}
    assert tickets(far, tokens) == 1  # 80 % of 5,000 is 3,000 tokens away: one ticket of 2 × 1,000
