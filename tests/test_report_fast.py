"""`costhook report` without click (report_command.py): the same bytes and exit codes as
the click command for every command line, and no click import when it needs none."""

import subprocess
import sys
from datetime import datetime

import pytest
from conftest import COSTHOOK
from test_report import populated  # noqa: F401  (the fixture)
from transcript_lines import assistant

from costhook.agents.claude import ingest
from costhook.cli import report_fast as report_command
from costhook.store import db

# The click command itself, as the console script would run it without the fast path.
CLICK = [sys.executable, "-c", "import sys; from costhook.cli.app import cli; cli(sys.argv[1:], prog_name='costhook')"]

COMMAND_LINES = [
    [],
    *(["--by", by, "--format", "json"] for by in ("day", "week", "month", "hour", "project", "session", "model", "tool",
                                                  "agent", "skill", "cron")),
    *(["--by", by, "--format", fmt] for by in ("day", "model", "tool") for fmt in ("table", "csv", "markdown")),
    ["--by=session", "--tz=UTC", "--format=csv"],
    ["--by", "day", "--tz", "Asia/Kolkata"],
    ["--by", "week", "--tz", "America/Los_Angeles", "--format", "markdown"],
    ["--since", "2026-11-21", "--until", "2026-11-30", "--tz", "UTC"],
    ["--since", "2026-11-21", "--format", "json"],
    ["--session", "s-b"],
    ["--session", "s-a", "--by", "tool", "--format", "json"],
    ["--project", "/p/two", "--by", "model"],
    ["--project", "/p/one"],
    ["--by", "message", "--session", "s-a", "--format", "json"],
    ["--by", "message", "--session", "s-b"],
    # click's to explain (or to accept in its own way):
    ["--by", "message"],
    ["--by", "fortnight"],
    ["--by"],
    ["--by", "day", "--by", "week"],
    ["--tz", "Mars/Olympus"],
    ["--tz", ""],
    ["--since", "2026-11-30", "--until", "2026-11-01"],
    ["--since", "2026-2-30"],
    ["--since", "2026-11-1"],
    ["--since", "21/11/2026"],
    ["--format", "yaml"],
    ["--formats", "json"],
    ["--project", "-x"],
    ["--project="],
    ["extra"],
    ["--", "--by", "day"],
    ["--help"],
    ["-h"],
    ["--db", "."],
]


def run(command: list, args: list) -> tuple:
    proc = subprocess.run([*command, "report", *args], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("args", COMMAND_LINES, ids=lambda args: " ".join(args) or "(none)")
def test_fast_path_prints_what_click_prints(populated, args):  # noqa: F811
    assert run([COSTHOOK], args) == run(CLICK, args)


def test_fast_path_with_other_databases(populated, tmp_path, monkeypatch):  # noqa: F811
    for args in (["--db", str(tmp_path / "new.db")], ["--db", str(tmp_path)], ["--db", str(tmp_path / "no" / "such" / "dir.db")]):
        assert run([COSTHOOK], args) == run(CLICK, args)
    assert not (tmp_path.parent / (tmp_path.name + ".lock")).exists()  # a folder named as the database gets no lock file
    monkeypatch.setenv("COSTHOOK_DB", str(tmp_path))  # a directory: click's error
    assert run([COSTHOOK], []) == run(CLICK, [])


def test_names_with_terminal_escapes_are_left_to_click(home, tmp_path):
    """click.echo strips ANSI codes when printing to a pipe; the fast path hands such output over."""
    path = tmp_path / "s.jsonl"
    path.write_text(assistant("m1", cwd="/p/\x1b[31mred\x1b[0m") + assistant("m2", cwd="/p/caf\u00e9"))
    ingest.ingest_file(db.connect(), str(path), price=lambda record: (1000, "computed"))
    for args in (["--by", "project"], ["--by", "project", "--format", "csv"], ["--by", "project", "--format", "json"]):
        fast, slow = run([COSTHOOK], args), run(CLICK, args)
        assert fast == slow and fast[0] == 0
    assert "\x1b" not in run([COSTHOOK], ["--by", "project"])[1]


NO_CLICK = """
import sys
sys.argv = ["costhook", "report", *sys.argv[1:]]
from costhook import __main__
__main__.exit_at_once = sys.exit  # (it ends the process at once: nothing left to look at)
try:
    __main__.main()
except SystemExit as exit:
    print(exit.code, sorted(m for m in sys.modules if m.split(".")[0] == "click"), file=sys.stderr)
"""


@pytest.mark.parametrize("args, click_loaded", [
    (["--by", "day", "--tz", "UTC", "--format", "json"], False),
    (["--by", "session", "--format", "csv"], False),
    (["--by", "model", "--format", "markdown", "--since", "2026-11-01"], False),
    ([], False),
    (["--by", "fortnight"], True),
    (["--help"], True),
])
def test_fast_path_does_not_import_click(populated, args, click_loaded):  # noqa: F811
    proc = subprocess.run([sys.executable, "-c", NO_CLICK, *args], capture_output=True, text=True, timeout=60)
    status, modules = proc.stderr.strip().splitlines()[-1].split(" ", 1)
    assert (modules != "[]") == click_loaded, proc.stderr
    assert status == ("2" if args == ["--by", "fortnight"] else "0")


def test_parse_reads_only_plain_command_lines():
    parsed = report_command.parse(["--by=model", "--since", "2026-03-01", "--format", "csv", "--db", "x.db"])
    assert parsed == {"by": "model", "since": datetime(2026, 3, 1), "until": None, "period_name": None, "tz_name": None,
                      "session_id": None, "project": None, "cli": None, "fmt": "csv", "db_path": "x.db", "team": False}
    assert report_command.parse([])["by"] == "day"
    team = report_command.parse(["--by", "user", "--team"])
    assert (team["team"], team["by"]) == (True, "user") and report_command.parse(["--team", "--by", "user"]) == team
    for odd in (["--by", "Day"], ["--since", "2026-3-01"], ["--since", "2026-02-29"], ["--until", "２０２６-01-01"],
                ["--tz"], ["--tz", "UTC", "--tz", "UTC"], ["-h"], ["--db", ""], ["report"], ["--session", "--by"],
                ["--team", "--team"], ["--session", "--team"]):
        assert report_command.parse(odd) is None, odd
