"""One money rule and one empty-period line for every view (issue 13, item 11): the same
amounts read the same in report, top, the statusline, budget status and the dashboard
(no `$101` beside `$98.83`, no `$0.02` for $0.0236), and a period with no spend says
so the same way everywhere."""

import json
import os
import re
import subprocess
from datetime import datetime, timezone

from conftest import COSTHOOK
from transcript_lines import assistant

SONNET = "claude-sonnet-4-5-20250929"
NOW = "2026-11-20T12:00:00Z"


def run(*args, stdin=None) -> str:
    proc = subprocess.run([COSTHOOK, *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TZ": "UTC"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def history(tmp_path):
    """Two sessions today: $100.600005 (6,706,667 output tokens at $15/MTok) and $0.0236001."""
    folder = tmp_path / "claude" / "projects" / "-work-proj"
    folder.mkdir(parents=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    (folder / "big.jsonl").write_text(assistant("msg_big", session_id="big", model=SONNET, input_tokens=0,
                                                output_tokens=6_706_667, timestamp=stamp))
    (folder / "small.jsonl").write_text(assistant("msg_small", session_id="small", model=SONNET, input_tokens=2_000,
                                                  output_tokens=1_000, cache_read=8_667, timestamp=stamp))
    run("import", "--claude-dir", str(tmp_path / "claude"), "-q")


def test_the_same_amounts_read_the_same_in_every_view(home, tmp_path):
    history(tmp_path)
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = "98.83"\n')
    outputs = {
        "report": run("report", "--by", "session"),
        "top": run("top", "--by", "session", "--period", "today"),
        "dashboard": run("dashboard", "--stdout"),
        "statusline big": run("statusline", "--plain", stdin=json.dumps({"session_id": "big", "cwd": "/work/proj"})),
        "statusline small": run("statusline", "--plain", stdin=json.dumps({"session_id": "small", "cwd": "/work/proj"})),
        "budget status": run("budget", "status"),
    }
    for name in ("report", "top", "dashboard"):
        assert "$100.60" in outputs[name] and "$0.0236" in outputs[name], (name, outputs[name])
    assert outputs["statusline big"].startswith("$100.60 session")
    assert outputs["statusline small"].startswith("$0.0236 session")
    assert "$100.62" in outputs["budget status"] and "$98.83" in outputs["budget status"]
    assert "$100.62/$98.83" in outputs["statusline big"]
    # The dashboard's forecast callout (burn rate per hour, the month's projection) holds
    # amounts of the clock, not these: run at 00:59 UTC, its burn rate read $101.xx/hour.
    outputs["dashboard"] = "\n".join(line for line in outputs["dashboard"].splitlines() if not line.startswith("> "))
    for name, text in outputs.items():
        assert not re.search(r"\$101\b|\$0\.02(?![0-9])|\$100\.6[0-9]{2}", text), (name, text)


def test_an_empty_period_reads_the_same_in_every_view(home, tmp_path):
    history(tmp_path)  # spend today; none last month
    period = ("--period", "last-month", "--now", NOW)
    label = json.loads(run("top", *period, "--format", "json"))["period"]["label"]
    want = f"No spend {label}."
    assert run("report", "--period", "last-month").strip().startswith("No spend last month (")
    for view in ("top", "tools", "cache", "idle", "efficiency", "blocks"):
        assert run(view, *period).strip() == want, view
    assert run("trends", "--days", "7", "--now", "2027-06-01T00:00:00Z").strip() == "No spend in the last 7 days."
    assert run("whatif", "--days", "7", "--now", "2027-06-01T00:00:00Z").strip() == "No spend in the last 7 days."
    note = run("dashboard", "--stdout", "--now", "2027-06-01T00:00:00Z")
    assert note.count("No spend in the last 7 days.") >= 3
    assert "No usage" not in note
