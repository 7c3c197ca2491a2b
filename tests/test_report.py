"""`costhook report`: the JSON contract, time zones, groupings, formats, bad arguments."""

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import COSTHOOK
from transcript_lines import assistant, tool_use

from costhook import timeframe
from costhook.agents.claude import ingest
from costhook.store import db


def price_by_input(record):
    """A price that makes every number checkable by hand: 1,000 nano-USD per input token,
    and a made-up model that is unpriced."""
    if record["model"] == "mystery-model":
        return None, "unpriced"
    return record["input_tokens"] * 1000, "computed"


@pytest.fixture
def populated(home, tmp_path):
    """Five calls across two sessions, two projects, a UTC day boundary and an unpriced model."""
    path = tmp_path / "s-a.jsonl"
    path.write_text(
        assistant("m1", session_id="s-a", input_tokens=100, output_tokens=1, cwd="/p/one",
                  timestamp="2026-11-20T22:30:00.000Z", content=[tool_use("Bash", "t1")])
        + assistant("m2", session_id="s-a", input_tokens=200, output_tokens=2, cwd="/p/one",
                    timestamp="2026-11-20T23:30:00.000Z", content=[tool_use("Bash", "t2"), tool_use("Read", "t3")])
        + assistant("m3", session_id="s-a", input_tokens=300, output_tokens=3, cwd="/p/one",
                    timestamp="2026-11-21T00:30:00.000Z", cache_read=1000, cache_write=50, cache_write_1h=20)
    )
    other = tmp_path / "s-b.jsonl"
    other.write_text(
        assistant("m4", session_id="s-b", input_tokens=5, output_tokens=4, cwd="/p/two",
                  timestamp="2026-11-21T10:00:00.000Z", model="mystery-model")
        + assistant("m5", session_id="s-b", input_tokens=7, output_tokens=5, cwd="/p/two",
                    timestamp="2026-12-02T10:00:00.000Z")
    )
    conn = db.connect()
    for p in (path, other):
        ingest.ingest_file(conn, str(p), price=price_by_input)
    return conn


def cli(*args, check=True, env=None):
    proc = subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def report_json(*args):
    return json.loads(cli("report", "--format", "json", *args).stdout)


def test_json_contract(populated):
    data = report_json("--by", "day", "--tz", "UTC")
    assert set(data) == {"group_by", "rows", "totals"}
    assert data["group_by"] == "day"
    measures = {
        "requests", "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
        "cache_read_tokens", "total_tokens", "cost_usd", "unpriced_requests",
    }
    for row in data["rows"]:
        assert set(row) == {"key"} | measures
    assert set(data["totals"]) == measures
    assert [r["key"] for r in data["rows"]] == ["2026-11-20", "2026-11-21", "2026-12-02"]
    assert data["totals"] == {
        "requests": 5, "input_tokens": 612, "output_tokens": 15, "cache_write_5m_tokens": 30,
        "cache_write_1h_tokens": 20, "cache_read_tokens": 1000, "total_tokens": 1677,
        # 607 priced input tokens × 1,000 nano-USD; the mystery model's 5 are not in it.
        "cost_usd": 0.000607, "unpriced_requests": 1,
    }


def test_days_follow_the_time_zone(populated):
    # In Tokyo (UTC+9) the 22:30 and 23:30 UTC calls are on the 21st, with the 00:30 one.
    tokyo = report_json("--by", "day", "--tz", "Asia/Tokyo")
    assert [(r["key"], r["requests"]) for r in tokyo["rows"]] == [("2026-11-21", 4), ("2026-12-02", 1)]
    # In Los Angeles (UTC-8) everything on the 20th/21st UTC before 08:00 is the 20th.
    la = report_json("--by", "day", "--tz", "America/Los_Angeles")
    assert [(r["key"], r["requests"]) for r in la["rows"]] == [("2026-11-20", 3), ("2026-11-21", 1), ("2026-12-02", 1)]


def test_week_and_month_keys(populated):
    assert [r["key"] for r in report_json("--by", "week", "--tz", "UTC")["rows"]] == ["2026-W47", "2026-W49"]
    assert [r["key"] for r in report_json("--by", "month", "--tz", "UTC")["rows"]] == ["2026-11", "2026-12"]


def test_since_until_are_inclusive_local_days(populated):
    data = report_json("--by", "day", "--tz", "UTC", "--since", "2026-11-21", "--until", "2026-11-21")
    assert [(r["key"], r["requests"]) for r in data["rows"]] == [("2026-11-21", 2)]
    assert data["totals"]["requests"] == 2


def test_by_session_project_model(populated):
    sessions = {r["key"]: r["cost_usd"] for r in report_json("--by", "session")["rows"]}
    assert sessions == {"s-a": 0.0006, "s-b": 0.000007}
    projects = {r["key"]: r["requests"] for r in report_json("--by", "project")["rows"]}
    assert projects == {"/p/one": 3, "/p/two": 2}
    models = {r["key"]: r["unpriced_requests"] for r in report_json("--by", "model")["rows"]}
    assert models == {"claude-sonnet-4-5-20250929": 0, "mystery-model": 1}


def test_by_tool_splits_a_calls_cost_between_its_tools(populated):
    rows = {r["key"]: r for r in report_json("--by", "tool")["rows"]}
    # m1 (Bash) 100k nano; m2 (Bash+Read) 200k split 100k/100k; m3, m5 no tool; m4 unpriced.
    assert rows["Bash"]["cost_usd"] == 0.0002 and rows["Bash"]["requests"] == 2
    assert rows["Read"]["cost_usd"] == 0.0001 and rows["Read"]["requests"] == 1
    assert rows["(reasoning/answer)"]["cost_usd"] == 0.000307
    assert sum(r["cost_usd"] * 10**9 for r in rows.values()) == pytest.approx(607_000)


def test_csv_and_markdown(populated):
    rows = list(csv.reader(io.StringIO(cli("report", "--by", "project", "--format", "csv").stdout)))
    assert rows[0][0] == "project" and rows[-1][0] == "TOTAL"
    assert rows[-1][-1] == "1"  # unpriced requests visible
    markdown = cli("report", "--by", "model", "--format", "markdown").stdout
    assert markdown.startswith("| model |")
    assert "mystery-model" in markdown and "Unpriced: mystery-model (1)" in markdown


def test_table_shows_unpriced(populated):
    out = cli("report", "--by", "model").stdout
    assert "TOTAL" in out and "Unpriced: mystery-model (1)" in out


def test_unpriced_line_follows_the_filters(populated):
    """The Unpriced line counts the calls the report shows, not the whole database."""
    for args in (("--project", "/p/two"), ("--session", "s-b"), ("--since", "2026-11-21", "--tz", "UTC")):
        assert "Unpriced: mystery-model (1)" in cli("report", "--by", "model", *args).stdout
    for args in (("--project", "/p/one"), ("--session", "s-a"), ("--since", "2026-11-22", "--tz", "UTC")):
        out = cli("report", "--by", "model", *args).stdout
        assert "TOTAL" in out and "Unpriced" not in out and "mystery-model" not in out


def test_nothing_recorded_yet_reports_nothing_cleanly_and_creates_nothing(home, monkeypatch):
    """At the default location (no --db, no COSTHOOK_DB) a missing database is "nothing
    recorded yet": empty reports, and neither the file nor its folder is made."""
    monkeypatch.delenv("COSTHOOK_DB")
    Path(os.environ["COSTHOOK_CONFIG"]).write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 5\n')
    assert cli("report").stdout == "No spend recorded.\n"
    assert report_json()["totals"]["requests"] == 0
    for args in (["summary"], ["top"], ["tools"], ["budget", "status"], ["cron"], ["trends"]):
        assert cli(*args).returncode == 0, args
    assert not home.exists()


@pytest.mark.parametrize("args", [["report"], ["report", "--by", "model", "--format", "json"], ["summary"], ["top"],
                                  ["tools"], ["cache"], ["efficiency"], ["whatif", "--to", "claude-haiku-4-5"],
                                  ["anomalies"], ["budget", "status"], ["cron"], ["dashboard", "--stdout"], ["doctor"]],
                         ids=" ".join)
@pytest.mark.parametrize("how", ["--db", "COSTHOOK_DB"])
def test_a_named_database_that_does_not_exist_is_an_error_and_nothing_is_created(home, tmp_path, args, how):
    typo = tmp_path / "typo" / "x.db"
    env = {"COSTHOOK_DB": str(typo)} if how == "COSTHOOK_DB" else {}
    proc = cli(*args, *(["--db", str(typo)] if how == "--db" else []), check=False, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"no costhook database at {typo}" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert not typo.parent.exists() and not home.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("report", "--by", "planet"),
        ("report", "--since", "yesterday"),
        ("report", "--tz", "Mars/Olympus"),
        ("report", "--format", "xml"),
        ("report", "--since", "2026-11-22", "--until", "2026-11-01"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(home, args):
    proc = cli(*args, check=False)
    assert proc.returncode == 2
    assert "Error" in proc.stderr and "Traceback" not in proc.stderr


def test_corrupt_database_is_a_clear_error(home):
    home.mkdir(parents=True)
    (home / "costhook.db").write_bytes(b"garbage" * 1000)
    proc = cli("report", check=False)
    assert proc.returncode == 1
    assert "cannot use database" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("by", ["day", "week", "month", "hour", "project", "session", "model", "tool", "agent", "skill", "cron",
                                "cli"])
@pytest.mark.parametrize("zone_name", ["UTC", "Asia/Kolkata", "America/Los_Angeles"])
def test_rollup_and_call_rows_give_the_same_report(populated, by, zone_name):
    """Reports read the spend rollup; the call rows are the ground truth it must match."""
    from datetime import date

    from costhook.views import report as reports

    tz = timeframe.local_zone(zone_name)
    for win in (timeframe.Window(), timeframe.dates_window(date(2026, 11, 21), date(2026, 11, 30), tz)):
        fast = reports.report(populated, by, win=win, tz=tz, source="rollup")
        slow = reports.report(populated, by, win=win, tz=tz, source="requests")
        assert fast == slow


def _calls_around_offset_changes() -> list[str]:
    """Timestamps every 15–45 minutes over two days around each zone change below, and
    every ~7 hours across the year between them."""
    from datetime import datetime, timedelta, timezone

    changes = ["2026-03-08T10:00", "2026-03-29T01:00", "2026-04-04T15:00", "2026-10-04T15:30",
               "2026-10-25T01:00", "2026-11-01T09:00", "2026-12-31T23:00"]
    moments = set()
    for change in changes:
        start = datetime.fromisoformat(change).replace(tzinfo=timezone.utc) - timedelta(days=1)
        moments.update(start + timedelta(minutes=15 * i + (i * 7) % 30) for i in range(0, 192, 2))
    first = datetime(2026, 1, 1, tzinfo=timezone.utc)
    moments.update(first + timedelta(minutes=433 * i) for i in range(1300))
    return [m.strftime("%Y-%m-%dT%H:%M:%S.000Z") for m in sorted(moments)]


@pytest.mark.parametrize("zone_name", ["UTC", "America/Los_Angeles", "Europe/Berlin", "Australia/Lord_Howe",
                                       "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham", "Etc/GMT+5"])
def test_calendar_periods_follow_the_zone_offset_at_each_call(home, tmp_path, zone_name):
    """SQL shifts each 15-minute bucket by the zone's offset at that moment; the oracle here
    converts every call's own timestamp with zoneinfo."""
    from collections import Counter
    from datetime import date, datetime

    from costhook.views import report as reports

    stamps = _calls_around_offset_changes()
    path = tmp_path / "year.jsonl"
    path.write_text("".join(assistant(f"m{i}", input_tokens=1, timestamp=t) for i, t in enumerate(stamps)))
    conn = db.connect()
    ingest.ingest_file(conn, str(path), price=price_by_input)
    tz = timeframe.local_zone(zone_name)
    local = [datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(tz) for t in stamps]
    expected = {
        "hour": Counter(t.strftime("%Y-%m-%dT%H") for t in local),
        "day": Counter(t.strftime("%Y-%m-%d") for t in local),
        "week": Counter("{}-W{:02d}".format(*t.isocalendar()[:2]) for t in local),
        "month": Counter(t.strftime("%Y-%m") for t in local),
    }
    for by, counts in expected.items():
        for source in ("rollup", "requests"):
            rows = reports.report(conn, by, tz=tz, source=source)["rows"]
            assert {r["key"]: r["requests"] for r in rows} == counts, (by, source)
    win = timeframe.dates_window(date(2026, 3, 8), date(2026, 10, 25), tz)
    inside = Counter(t.strftime("%Y-%m-%d") for t in local if "2026-03-08" <= t.strftime("%Y-%m-%d") <= "2026-10-25")
    assert {r["key"]: r["requests"] for r in reports.report(conn, "day", win=win, tz=tz)["rows"]} == inside


@pytest.mark.parametrize("timed", [True, False])
def test_calls_without_a_time_count_in_the_totals_only(home, tmp_path, timed):
    from costhook.views import report as reports

    path = tmp_path / "t.jsonl"
    path.write_text(assistant("m1", timestamp=None, input_tokens=3) + (assistant("m2", input_tokens=4) if timed else ""))
    conn = db.connect()
    ingest.ingest_file(conn, str(path), price=price_by_input)
    for by in ("day", "week", "hour"):
        for source in ("rollup", "requests"):
            data = reports.report(conn, by, tz=timeframe.local_zone("UTC"), source=source)
            assert [r["input_tokens"] for r in data["rows"]] == ([4] if timed else [])
            assert data["totals"]["input_tokens"] == (7 if timed else 3)
