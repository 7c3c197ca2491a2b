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
    assert "9 events" in proc.stdout and "none yet: nothing recorded" in proc.stdout
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


def test_doctor_says_when_the_hooks_entry_file_is_gone(home, tmp_path, monkeypatch):
    """A hook command `<python> -IS <package>/__main__.py hook` (a venv install) whose
    package is gone (a venv rebuilt elsewhere) runs nothing: doctor checks both files."""
    monkeypatch.delenv("COSTHOOK_DB")
    claude = tmp_path / "claude-config"
    env = {"CLAUDE_CONFIG_DIR": str(claude)}
    assert cli("install", env=env).returncode == 0
    settings = claude / "settings.json"
    text = settings.read_text()
    assert " -IS " in text and "/costhook/__main__.py" in text  # this venv has its interpreter beside the script
    settings.write_text(text.replace("/costhook/__main__.py", "/gone/costhook/__main__.py"))
    proc = cli("doctor", env=env)
    assert proc.returncode == 1 and "/gone/costhook/__main__.py does not exist" in proc.stdout, proc.stdout
    settings.write_text(text.replace("/costhook/agents/gate.sh", "/gone/costhook/agents/gate.sh"))
    proc = cli("doctor", env=env)  # the gates' script: the gates' command runs nothing without it
    assert proc.returncode == 1 and "/gone/costhook/agents/gate.sh does not exist" in proc.stdout, proc.stdout


def test_doctor_asks_for_the_event_an_upgraded_claude_code_knows(home, tmp_path, monkeypatch):
    """Installed for Claude Code 2.1.330 (no PreSkillShellCommand), then the CLI is upgraded
    to 2.1.332: doctor names the missing event until `costhook install` runs again."""
    import os

    monkeypatch.delenv("COSTHOOK_DB")  # the default location: nothing recorded yet is no problem

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "claude"
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config"), "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def claude_reports(version):
        fake.write_text(f'#!/bin/sh\necho "{version} (Claude Code)"\n')
        fake.chmod(0o755)

    claude_reports("2.1.330")
    installed = cli("install", env=env)
    assert installed.returncode == 0 and "PreSkillShellCommand" not in installed.stdout
    proc = cli("doctor", env=env)
    assert proc.returncode == 0 and "8 events" in proc.stdout, proc.stdout
    claude_reports("2.1.332")
    proc = cli("doctor", env=env)
    assert proc.returncode == 1 and "partly installed, missing PreSkillShellCommand" in proc.stdout, proc.stdout
    installed = cli("install", env=env)
    assert installed.returncode == 0 and "PreSkillShellCommand" in installed.stdout
    proc = cli("doctor", env=env)
    assert proc.returncode == 0 and "9 events" in proc.stdout, proc.stdout


def test_bad_config_is_a_clear_cli_error(home, tmp_path):
    (tmp_path / "config.toml").write_text("[[budgets]]\nscope = 'global'\nperiod = 'daily'\nlimit = 0\n")
    proc = cli("budget", "list")
    assert proc.returncode == 1
    assert "budgets[0].limit: must be a positive amount of USD" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "config.toml").write_text("this is = = not toml")
    proc = cli("report")
    assert proc.returncode == 1 and "not valid TOML" in proc.stderr


BAD_CONFIGS = [  # (config, what the user is told)
    ('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = "abc"\n', "budgets[0].limit: not a number: 'abc'"),
    ('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = -1\n', "budgets[0].limit: must be a positive amount of USD"),
    ('[[budgets]]\nscope = "global"\nperiod = "hourly"\nlimit = 1\n',
     "budgets[0].period: 'hourly' is not one of 'session', 'run', 'daily', 'weekly' or 'monthly'"),
    ('[[budgets]]\nscope = "global"\nperiod = "daily"\ntokens = "x"\n', "budgets[0].tokens: not a whole number: 'x'"),
    ('[[budgets]]\nperiod = "daily"\nlimit = 1\nfoo = 1\n', "budgets[0].scope: missing; budgets[0].foo: unknown key"),
    ('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = "1e999999999"\n', "budgets[0].limit: more than $1,000,000,000,000"),
    ('[prices."my-model"]\ninput = "cheap"\noutput = 1\n', "prices.\"my-model\".input: not a number: 'cheap'"),
    ('[prices."my-model"]\ninput = -1\noutput = 1\n', "prices.\"my-model\".input: must be a non-negative number"),
    ('timezone = "Mars/Base"\n', "timezone: unknown time zone 'Mars/Base'"),
    ('[dashboard]\nmin_interval_seconds = -5\nrefresh_on_session_end = "yes please"\n',
     "dashboard.refresh_on_session_end: not true or false: 'yes please'; dashboard.min_interval_seconds: must be at least 0, not -5"),
    ('budgets = 3\n', "budgets: not a list: 3"),
]
PYDANTIC_WORDS = ("Value error", "Input should", "valid decimal", "pydantic", "Field required", "Extra inputs")


def test_config_errors_in_plain_words_everywhere(home, tmp_path, claude_dir):
    """A wrong value in the config reads the same, in plain words, from every command that
    meets it (a view, doctor, the dashboard) and in the hook's error log; never pydantic's."""
    from conftest import acme_transcript, payload, run_hook

    vault = tmp_path / "vault"
    vault.mkdir()
    for config, told in BAD_CONFIGS:
        (tmp_path / "config.toml").write_text(config)
        summary, doctor, dashboard = cli("summary"), cli("doctor"), cli("dashboard", "--vault", str(vault))
        assert summary.returncode == 1 and dashboard.returncode == 1, config
        for out in (summary.stderr, doctor.stdout, dashboard.stderr):
            assert told in out, (config, out)
            assert not any(word in out for word in PYDANTIC_WORDS), (config, out)
            assert "Traceback" not in out
    (home / "errors.log").unlink(missing_ok=True)
    (tmp_path / "config.toml").write_text(BAD_CONFIGS[0][0])
    proc = run_hook(payload("UserPromptSubmit", transcript_path=str(acme_transcript(claude_dir))))
    assert proc.returncode == 0 and proc.stdout == b""
    log = (home / "errors.log").read_text()
    assert BAD_CONFIGS[0][1] in log and not any(word in log for word in PYDANTIC_WORDS)


def test_budget_set_errors_in_plain_words(home):
    """`costhook budget set` names the option and says what is wrong with it."""
    for args, told in (
        (("--limit", "abc"), "Error: --limit: not a number: 'abc'"),
        (("--limit", "-3", "--warn-at", "2"), "Error: --limit: must be a positive amount of USD; --warn-at: fractions must be in (0, 1]"),
        (("--tokens", "5", "--limit", "1"), "Error: budget: give exactly one of `limit` (USD) or `tokens`"),
        # TOML holds 64-bit integers: a bigger one was written, and other TOML readers refuse the file
        (("--tokens", "99999999999999999999999999"), "Error: --tokens: more than 1,000,000,000,000,000 tokens is not a budget"),
    ):
        proc = cli("budget", "set", "--scope", "global", "--period", "daily", *args)
        assert proc.returncode == 2 and told in proc.stderr, proc.stderr
        assert not any(word in proc.stderr for word in PYDANTIC_WORDS), proc.stderr
