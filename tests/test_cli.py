"""CLI commands other than report and budget: import, doctor, install wiring."""

import json
import subprocess

from conftest import COSTHOOK, EXAMPLES


def cli(*args, env=None):
    import os

    return subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_import_summary_and_idempotence(home):
    first = cli("import", "--claude-dir", str(EXAMPLES / "claude"))
    assert first.returncode == 0, first.stderr
    assert "Imported 5 transcript files" in first.stdout and "16 rows new or updated" in first.stdout
    again = cli("import", "--claude-dir", str(EXAMPLES / "claude"))
    assert "0 rows new or updated" in again.stdout
    data = json.loads(cli("report", "--format", "json").stdout)
    assert data["totals"]["requests"] == 16 and data["totals"]["cost_usd"] == 2.0956605


def test_import_accepts_the_projects_dir_itself(home):
    proc = cli("import", "--claude-dir", str(EXAMPLES / "claude" / "projects"), "-q")
    assert proc.returncode == 0 and proc.stdout == ""
    assert json.loads(cli("report", "--format", "json").stdout)["totals"]["requests"] == 16


def test_import_missing_dir_is_a_clear_error(home, tmp_path):
    proc = cli("import", "--claude-dir", str(tmp_path / "nope"))
    assert proc.returncode == 1 and "no such directory" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor_reports_hooks_and_unpriced_models(home, tmp_path, monkeypatch):
    monkeypatch.delenv("COSTHOOK_DB")  # the default location: nothing recorded yet is no problem
    claude = tmp_path / "claude-config"
    env = {"CLAUDE_CONFIG_DIR": str(claude)}
    proc = cli("doctor", env=env)
    assert proc.returncode == 1 and "NOT installed" in proc.stdout
    assert cli("install", env=env).returncode == 0
    proc = cli("doctor", env=env)
    assert proc.returncode == 0, proc.stdout
    assert "8 events" in proc.stdout and "none yet: nothing recorded" in proc.stdout
    assert not home.exists()  # doctor only looks
    transcript = tmp_path / "projects" / "p" / "s.jsonl"
    transcript.parent.mkdir(parents=True)
    transcript.write_text(
        json.dumps({"type": "assistant", "sessionId": "s", "timestamp": "2026-11-20T10:00:00.000Z",
                    "message": {"id": "m1", "model": "acme-llm-9", "usage": {"input_tokens": 5, "output_tokens": 1}},
                    "requestId": "r1"}) + "\n"
    )
    cli("import", "--claude-dir", str(tmp_path))
    proc = cli("doctor", env=env)
    assert proc.returncode == 1 and "unpriced   acme-llm-9: 1 requests" in proc.stdout
    assert "integrity: ok" in proc.stdout


def test_bad_config_is_a_clear_cli_error(home, tmp_path):
    (tmp_path / "config.toml").write_text("[[budgets]]\nscope = 'global'\nperiod = 'daily'\nlimit = 0\n")
    proc = cli("budget", "list")
    assert proc.returncode == 1
    assert "budgets.0.limit" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "config.toml").write_text("this is = = not toml")
    proc = cli("report")
    assert proc.returncode == 1 and "not valid TOML" in proc.stderr
