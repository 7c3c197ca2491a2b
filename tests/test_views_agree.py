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


def test_budget_status_takes_now_and_tz_like_every_view(home, tmp_path, monkeypatch):
    monkeypatch.delenv("COSTHOOK_DB")  # the default location: nothing recorded yet
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 5\n')
    proc = status("--now", "2026-11-20T23:30:00Z", "--tz", "Europe/Berlin", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["period_key"] == "2026-11-21"  # already tomorrow in Berlin


def view(*args) -> subprocess.CompletedProcess:
    return subprocess.run([COSTHOOK, *args, "--now", "2026-11-21T12:00:00Z"], capture_output=True, text=True, timeout=60)


def imported(home):
    from conftest import EXAMPLES

    assert subprocess.run([COSTHOOK, "import", "--claude-dir", str(EXAMPLES / "claude"), "-q"], timeout=60).returncode == 0


def test_efficiency_counts_the_whole_period_whatever_it_lists(home):
    imported(home)
    listed = json.loads(view("efficiency", "--period", "30d", "--limit", "1", "--format", "json").stdout)
    everything = json.loads(view("efficiency", "--period", "30d", "--limit", "0", "--format", "json").stdout)
    assert len(listed["sessions"]) == 1 < listed["graded_sessions"]
    assert (listed["grades"], listed["graded_sessions"]) == (everything["grades"], everything["graded_sessions"])


def test_whatif_says_what_it_left_out_and_gives_a_total(home):
    imported(home)
    data = json.loads(view("whatif", "--by", "model", "--days", "30", "--limit", "1", "--format", "json").stdout)
    everything = json.loads(view("whatif", "--by", "model", "--days", "30", "--format", "json").stdout)
    assert len(data["rows"]) == 1 and data["omitted"] == len(everything["rows"]) - 1 > 0
    assert data["totals"]["savings_usd"] == round(sum(r["savings_usd"] for r in everything["rows"]), 9)
    table = view("whatif", "--by", "model", "--days", "30", "--limit", "1").stdout
    assert f"TOTAL ({data['omitted']} more" in table


def test_top_branches_is_spelled_right(home):
    imported(home)
    assert view("top", "--by", "branch", "--period", "30d").stdout.startswith("Top branches,")


def test_filters_accept_what_tables_show(home):
    """`--project` takes the name a table shows or a path (that directory and below, as in
    budgets); a session is named by the 8 characters tables show."""
    imported(home)

    def requests(*args):
        proc = subprocess.run([COSTHOOK, "report", *args, "--format", "json"], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["totals"]["requests"]

    by_project = {r["key"]: r["requests"] for r in json.loads(subprocess.run(
        [COSTHOOK, "report", "--by", "project", "--format", "json"], capture_output=True, text=True).stdout)["rows"]}
    path = next(k for k in by_project if k.endswith("/acme-api"))
    assert requests("--project", "acme-api") == requests("--project", path) == by_project[path] > 0
    assert requests("--project", path.rsplit("/", 1)[0]) >= by_project[path]  # a folder above: it and below
    full = "7c1e2d3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"
    assert requests("--session", full[:8]) == requests("--session", full) > 0
    assert subprocess.run([COSTHOOK, "tree", full[:8]], capture_output=True, text=True).stdout.startswith(f"session {full}")


def test_an_ambiguous_session_prefix_is_a_clear_error(home, tmp_path):
    transcript = tmp_path / "s.jsonl"
    write_calls(transcript, [("m1", 10, stamp(datetime.now(UTC)))], session="abc-1")
    write_calls(transcript, [("m2", 10, stamp(datetime.now(UTC)))], session="abc-2")
    assert run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_m2")).returncode == 0
    proc = subprocess.run([COSTHOOK, "report", "--session", "abc"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "several sessions" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_tables_show_the_shortest_unique_prefix_where_8_characters_name_several(home, tmp_path):
    """Two sessions share their first 8 characters: the tables show as much as makes each
    one unique, and what they show works as --session / SESSION_ID."""
    now = datetime.now(UTC)
    transcript = tmp_path / "s.jsonl"
    first, second = "7c1e2d3a-1111-4000-8000-000000000001", "7c1e2d3a-2222-4000-8000-000000000002"
    write_calls(transcript, [("m1", 10_000, stamp(now - timedelta(minutes=5)))], session=first)
    write_calls(transcript, [("m2", 20_000, stamp(now - timedelta(minutes=4)))], session=second)
    write_calls(transcript, [("m3", 15_000, stamp(now - timedelta(minutes=3)))], session="other-session-id")
    assert run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_m3")).returncode == 0
    table = subprocess.run([COSTHOOK, "efficiency", "--period", "7d"], capture_output=True, text=True).stdout
    assert "7c1e2d3a-1 " in table and "7c1e2d3a-2 " in table, table
    assert "other-se " in table, table  # 8 characters where 8 are enough
    for shown, full in (("7c1e2d3a-1", first), ("7c1e2d3a-2", second)):
        proc = subprocess.run([COSTHOOK, "report", "--session", shown, "--format", "json"], capture_output=True, text=True)
        assert proc.returncode == 0 and json.loads(proc.stdout)["totals"]["requests"] == 1, proc.stderr
        assert subprocess.run([COSTHOOK, "tree", shown], capture_output=True, text=True).stdout.startswith(f"session {full}")


def test_import_of_a_file_says_it_is_a_file(home, tmp_path):
    file = tmp_path / "session.jsonl"
    file.write_text("{}\n")
    proc = subprocess.run([COSTHOOK, "import", "--claude-dir", str(file)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "a file, not a directory" in proc.stderr, proc.stderr


def test_a_sub_agent_without_its_meta_file_is_never_the_main_thread(home, tmp_path):
    """Claude Code 2.0.x wrote no agent-*.meta.json: `report --by agent` put every
    sub-agent call under (main), while `tree` listed them apart."""
    projects = tmp_path / "claude" / "projects" / "-home-dev-acme"
    subagents = projects / "sess-1" / "subagents"
    subagents.mkdir(parents=True)
    write_calls(projects / "sess-1.jsonl", [("main-1", 100, stamp(datetime.now(UTC)))], session="sess-1")
    write_calls(subagents / "agent-a1b2.jsonl", [("sub-1", 100, stamp(datetime.now(UTC)))], session="sess-1")
    assert subprocess.run([COSTHOOK, "import", "--claude-dir", str(tmp_path / "claude"), "-q"], timeout=60).returncode == 0
    rows = json.loads(subprocess.run([COSTHOOK, "report", "--by", "agent", "--format", "json"], capture_output=True,
                                     text=True).stdout)["rows"]
    assert sorted((r["key"], r["requests"]) for r in rows) == [("(main)", 1), ("(sub-agent)", 1)]


def test_summary_has_an_all_time_line(home):
    imported(home)
    data = json.loads(view("summary", "--format", "json").stdout)
    total = json.loads(subprocess.run([COSTHOOK, "report", "--format", "json"], capture_output=True, text=True).stdout)
    assert data["periods"]["all"]["requests"] == total["totals"]["requests"] == 16
    assert data["periods"]["all"]["cost_usd"] == total["totals"]["cost_usd"]
    assert "all time" in view("summary").stdout


def test_report_takes_period_like_the_views(home, tmp_path):
    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("old", 10, stamp(datetime.now(UTC) - timedelta(days=40))),
                             ("new", 10, stamp(datetime.now(UTC)))])
    assert run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_new")).returncode == 0

    def requests(*args):
        proc = subprocess.run([COSTHOOK, "report", *args, "--format", "json"], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["totals"]["requests"]

    assert (requests("--period", "7d"), requests("--period", "all"), requests()) == (1, 2, 2)
    both = subprocess.run([COSTHOOK, "report", "--period", "7d", "--since", "2026-01-01"], capture_output=True, text=True)
    assert both.returncode == 2 and "not both" in both.stderr
