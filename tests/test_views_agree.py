"""Every view tells the same truth (issue 13): one standing per budget, in `budget status`
and the dashboard alike, judged on the running session only."""

import json
import subprocess
from datetime import datetime, timedelta, timezone

from conftest import COSTHOOK, run_hook
from test_budgets import event, write_calls

UTC = timezone.utc


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def status(*args) -> subprocess.CompletedProcess:
    return subprocess.run([COSTHOOK, "budget", "status", *args], capture_output=True, text=True, timeout=30)


def test_budget_status_says_warning_past_the_first_threshold(home, tmp_path):
    """At 84 % of a budget that warns at 80 %, `budget status` said `ok` while the
    dashboard said warning and the alert had fired."""
    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m1", 1000, stamp(datetime.now(UTC)))])  # $0.003
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = "0.0035"\n'
                                          'warn_at = [0.8]\n')
    assert run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_m1")).returncode == 0
    table = status()
    assert table.returncode == 0 and table.stdout.splitlines()[2].split()[-1] == "warning", table.stdout
    assert json.loads(status("--format", "json").stdout)[0]["state"] == "warning"


def test_a_session_that_ended_long_ago_is_not_judged_as_running(home, tmp_path):
    """A session budget judged the latest session, which had ended 11 months ago, and
    showed a red BLOCKING."""
    long_ago = datetime.now(UTC) - timedelta(days=330)
    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m1", 10_000, stamp(long_ago))])
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "session"\nperiod = "session"\nlimit = "0.01"\n'
                                          'action = "block"\n')
    assert run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_m1")).returncode == 0
    table = status()
    assert "BLOCKING" not in table.stdout and "no session" in table.stdout, table.stdout
    # The same session asked for by id is still judged.
    assert "BLOCKING" in status("--session", "s-1").stdout


def test_budget_status_takes_now_and_tz_like_every_view(home, tmp_path):
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 5\n')
    proc = status("--now", "2026-11-20T23:30:00Z", "--tz", "Europe/Berlin", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["period_key"] == "2026-11-21"  # already tomorrow in Berlin
