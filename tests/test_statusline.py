"""`costhook statusline`: the real process, Claude Code's statusLine JSON on stdin, real
SQLite files under a private COSTHOOK_HOME. Timing lives in tests/benchmarks/statusline_bench.py."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import COSTHOOK

from costhook.store import db, rollup
from costhook import text, timeframe

SESSION = "7c1e2d3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"
NANO = 10**9


def statusline_payload(**overrides) -> dict:
    """Claude Code 2.1.330's statusLine input, trimmed (no rate_limits: API-key billing)."""
    data = {
        "session_id": SESSION,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-acme-api/{SESSION}.jsonl",
        "cwd": "/home/dev/acme-api",
        "model": {"id": "claude-opus-4-5-20251101", "display_name": "Opus 4.5"},
        "workspace": {"current_dir": "/home/dev/acme-api", "project_dir": "/home/dev/acme-api", "added_dirs": []},
        "version": "2.1.330",
        "cost": {"total_cost_usd": 0.3156025, "total_duration_ms": 460200, "total_api_duration_ms": 61875},
        "context_window": {"total_input_tokens": 23034, "total_output_tokens": 58, "context_window_size": 200000},
    }
    data.update(overrides)
    return data


def run(payload, *args, env=None, plain=True) -> subprocess.CompletedProcess:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment.update({"TZ": "UTC", **(env or {})})
    return subprocess.run(
        [COSTHOOK, "statusline", *(["--plain"] if plain else []), *args],
        input=data, capture_output=True, timeout=30, env=environment,
    )


def line(payload, *args, **kwargs) -> str:
    result = run(payload, *args, **kwargs)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b"", result.stderr
    return result.stdout.decode().rstrip("\n")


def add_calls(rows: list[dict]) -> None:
    """Insert `requests` rows (defaults for what a test does not care about) and rebuild the rollup."""
    conn = db.connect()
    with db.transaction(conn):
        for number, row in enumerate(rows):
            full = {
                "key": f"msg_{number}:req_{number}", "agent": "claude", "session_id": SESSION,
                "timestamp": timeframe.now_iso(), "model": "claude-opus-4-5-20251101", "project": "/home/dev/acme-api",
                "input_tokens": 0, "output_tokens": 0, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0,
                "cache_read_tokens": 0, "cost_nanousd": 0, "cost_source": "computed", **row,
            }
            if full["cost_nanousd"] is None:
                full["cost_source"] = "unpriced"
            conn.execute(
                f"INSERT INTO requests ({', '.join(full)}) VALUES ({', '.join('?' * len(full))})", list(full.values())
            )
        rollup.rebuild_spend(conn)
    conn.close()


def write_config(text: str) -> None:
    Path(os.environ["COSTHOOK_CONFIG"]).write_text(text)


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------ session cost ----


def test_session_cost_and_tokens_come_from_the_database(home):
    add_calls([
        {"cost_nanousd": 123_456_789, "input_tokens": 3, "output_tokens": 187, "cache_write_5m_tokens": 2450,
         "cache_write_1h_tokens": 16000, "cache_read_tokens": 0},
        # a sub-agent's call shares the session id
        {"cost_nanousd": 1_111_111_111, "agent_id": "a3f9c2e1b7d04a6f8", "agent_type": "Explore",
         "input_tokens": 10, "output_tokens": 350, "cache_read_tokens": 13_000},
        # another session: not counted
        {"cost_nanousd": 50 * NANO, "session_id": "other", "input_tokens": 999_999},
    ])
    # 1.234567900 USD; 32,000 tokens
    assert line(statusline_payload()) == "$1.23 session · 32K tok"


def test_unpriced_calls_are_counted_not_guessed(home):
    add_calls([{"cost_nanousd": 450_000_000, "input_tokens": 1500},
               {"cost_nanousd": None, "model": "mystery-model", "input_tokens": 100},
               {"cost_nanousd": None, "model": "mystery-model", "input_tokens": 100}])
    assert line(statusline_payload()) == "$0.45 session +2 unpriced · 1.7K tok"


@pytest.mark.parametrize("nano, shown", [
    (0, "$0.00"), (40_000, "<$0.0001"), (400_000, "$0.0004"), (17_733_150, "$0.0177"), (23_600_000, "$0.0236"),
    (450_000_000, "$0.45"), (999_950_000, "$1.00"), (12_300_000_000, "$12.30"), (100_600_000_000, "$100.60"),
    (1_234_567 * NANO, "$1,234,567.00"), (-5_000_000, "-$0.005"),
])
def test_money_format(nano, shown):
    """The one money rule (issue 13, item 11): never `$0.02` for $0.0236, never `$101` for $100.60."""
    assert text.usd(nano) == shown


@pytest.mark.parametrize("value, shown", [
    (0, "0"), (950, "950"), (1234, "1.2K"), (32_000, "32K"), (456_789, "457K"), (1_000_000, "1M"),
    (12_345_678, "12M"), (1_500_000_000, "1.5B"),
])
def test_token_format(value, shown):
    assert text.tokens_short(value) == shown


# ------------------------------------------------------------------ fallback --------


def test_no_database_uses_claude_codes_estimate_and_creates_nothing(home):
    assert line(statusline_payload()) == "~$0.3156 session"
    assert not Path(os.environ["COSTHOOK_DB"]).exists()
    assert not any(Path(os.environ["COSTHOOK_DB"]).parent.glob("costhook.db*"))


def test_session_not_recorded_yet_uses_the_estimate(home):
    add_calls([{"cost_nanousd": 5 * NANO, "session_id": "other"}])
    assert line(statusline_payload()) == "~$0.3156 session"


def test_payload_without_a_cost_still_prints_what_it_can(home):
    payload = statusline_payload(rate_limits={"five_hour": {"used_percentage": 42, "resets_at": 1795400000}})
    del payload["cost"]
    assert line(payload) == "5h 42%"
    assert line({}) == ""


def test_unmigrated_database_is_left_alone(home):
    db = Path(os.environ["COSTHOOK_DB"])
    db.parent.mkdir(parents=True)
    sqlite3.connect(db).execute("CREATE TABLE unrelated (x)").connection.commit()
    before = digest(db)
    assert line(statusline_payload()) == "~$0.3156 session"
    assert digest(db) == before
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 0


def test_database_is_only_read(home):
    add_calls([{"cost_nanousd": NANO}])
    write_config('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 1\nwarn_at = [0.5]\n')
    db = Path(os.environ["COSTHOOK_DB"])
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = digest(db)
    assert "daily" in line(statusline_payload())
    assert digest(db) == before
    assert sqlite3.connect(db).execute("SELECT count(*) FROM alerts").fetchone()[0] == 0


def test_corrupt_database_falls_back_and_logs_once(home):
    db = Path(os.environ["COSTHOOK_DB"])
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database" * 100)
    for _ in range(3):
        assert line(statusline_payload()) == "~$0.3156 session"
    log = (home / "errors.log").read_text().splitlines()
    assert len(log) == 1 and "statusline" in log[0] and "DatabaseError" in log[0]


# ------------------------------------------------------------------ budgets ---------


def test_budget_under_its_warning_threshold(home):
    add_calls([{"cost_nanousd": 2_500_000_000, "session_id": "earlier-today"}, {"cost_nanousd": 700_000_000}])
    write_config('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 10\n')
    assert line(statusline_payload()) == "$0.70 session · 0 tok · daily $3.20/$10.00"


def test_most_constraining_budget_is_shown(home):
    add_calls([{"cost_nanousd": 8_120_000_000, "input_tokens": 90_000}])
    write_config(
        '[[budgets]]\nscope = "global"\nperiod = "monthly"\nlimit = 100\n'
        '[[budgets]]\nscope = "project:acme-api"\nperiod = "daily"\nlimit = 10\n'
        '[[budgets]]\nscope = "global"\nperiod = "weekly"\ntokens = 1000000\n'
        '[[budgets]]\nscope = "project:other-repo"\nperiod = "daily"\nlimit = 1\n'  # does not apply here
    )
    assert line(statusline_payload()) == "$8.12 session · 90K tok · daily acme-api $8.12/$10.00"
    write_config('[[budgets]]\nscope = "session"\nperiod = "session"\ntokens = 100000\n')
    assert line(statusline_payload()).endswith(" · session 90K/100K tok")


def test_spent_blocking_budget_says_blocked(home):
    add_calls([{"cost_nanousd": 10_020_000_000}])
    write_config(
        '[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 10\naction = "block"\n'
        '[[budgets]]\nscope = "global"\nperiod = "monthly"\nlimit = 5\n'  # warn-only, further over
    )
    assert line(statusline_payload()) == "$10.02 session · 0 tok · daily BLOCKED $10.02/$10.00"
    colored = line(statusline_payload(), plain=False)
    assert "\x1b[1;31mdaily BLOCKED $10.02/$10.00\x1b[0m" in colored


def test_over_a_warn_only_budget(home):
    add_calls([{"cost_nanousd": 12_345_000_000}])
    write_config('[[budgets]]\nscope = "model:claude-opus-4-5"\nperiod = "weekly"\nlimit = 10.5\n')
    assert line(statusline_payload()).endswith(" · weekly claude-opus-4-5 $12.35/$10.50")


def test_broken_config_is_shown_not_fatal(home):
    add_calls([{"cost_nanousd": NANO}])
    write_config('[[budgets]]\nscope = "galaxy"\nperiod = "daily"\nlimit = 10\n')
    assert line(statusline_payload()) == "$1.00 session · 0 tok · config error"
    assert "config" in (home / "errors.log").read_text()


def test_a_missing_named_config_is_shown_and_logged_once(home):
    add_calls([{"cost_nanousd": NANO}])
    Path(os.environ["COSTHOOK_CONFIG"]).unlink()
    for _ in range(3):
        assert line(statusline_payload()) == "$1.00 session · 0 tok · config error"
    lines = (home / "errors.log").read_text().splitlines()
    assert len(lines) == 1 and "COSTHOOK_CONFIG names" in lines[0], lines


# ------------------------------------------------------------------ rate limits -----


def test_rate_limits_object_shape(home):
    # 2.1.330: {used_percentage, resets_at (epoch seconds)}; spend_limit also used_usd/limit_usd (≥2.1.284)
    limits = {
        "five_hour": {"used_percentage": 91.6, "resets_at": 1795400000},  # 2026-11-22T02:13:20Z
        "seven_day": {"used_percentage": 12, "resets_at": 1795900000},
        "spend_limit": {"used_percentage": 40, "used_usd": 40, "limit_usd": 100, "period": "monthly"},
    }
    assert line(statusline_payload(rate_limits=limits)) == "~$0.3156 session · 5h 91% ↻02:13 · 7d 12% · spend $40.00/$100.00"


def test_rate_limits_defensive_shapes(home):
    limits = {"five_hour": 42, "seven_day": {"utilization": 99.5, "resets_at": "2026-11-26T09:00:00Z"},
              "spend_limit": {"weird": True}, "unknown_window": 5}
    colored = line(statusline_payload(rate_limits=limits), plain=False)
    assert "5h 42%" in colored and "\x1b[31m7d 99% ↻Thu 09:00\x1b[0m" in colored
    for junk in (None, [], "full", {"five_hour": None, "seven_day": "x"}, {"five_hour": {"used_percentage": True}}):
        assert line(statusline_payload(rate_limits=junk)) == "~$0.3156 session"


# ------------------------------------------------------------------ robustness ------


@pytest.mark.parametrize("stdin", [b"", b"garbage", b"[1, 2]", b"\xff\xfe\x00", b'{"cost": ', b"null"])
def test_garbage_stdin_exits_0_quietly(home, stdin):
    result = run(stdin)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert "statusline" in (home / "errors.log").read_text()


def test_wrong_types_in_the_payload(home):
    add_calls([{"cost_nanousd": NANO}])
    payload = statusline_payload(session_id=12, cwd=["x"], model="opus", cost={"total_cost_usd": "0.5"},
                                 workspace=None, rate_limits={"five_hour": {"used_percentage": float("nan")}})
    assert line(payload) == ""
    assert line(statusline_payload(cost=None, model=None, cwd=None)) == "$1.00 session · 0 tok"


def test_colour_unless_no_color(home):
    colored = line(statusline_payload(), plain=False)
    assert colored == "\x1b[2m~$0.3156 session\x1b[0m"
    assert line(statusline_payload(), plain=False, env={"NO_COLOR": "1"}) == "~$0.3156 session"


def test_db_option(home, tmp_path):
    add_calls([{"cost_nanousd": 2 * NANO}])
    moved = tmp_path / "elsewhere.db"
    os.replace(os.environ["COSTHOOK_DB"], moved)
    assert line(statusline_payload(), "--db", str(moved)) == "$2.00 session · 0 tok"
    assert line(statusline_payload()) == "~$0.3156 session"


# ------------------------------------------------------------------ import weight ----

MODULES = ("import sys; before = set(sys.modules); from costhook.agents.claude import statusline; statusline.main(['--plain']); "
           "print(*sorted(set(sys.modules) - before))")
HEAVY = {"click", "pydantic", "sqlite_utils", "tomllib", "pathlib", "typing", "dataclasses", "decimal", "zoneinfo",
         "sqlite3", "datetime", "costhook.store.db", "costhook.cli", "costhook.config.model", "costhook.pricing.prices"}


def statusline_modules(payload: dict) -> tuple[str, set]:
    """The line and the modules the statusline loaded (beyond the interpreter's own start-up)."""
    result = subprocess.run([sys.executable, "-c", MODULES], input=json.dumps(payload).encode(),
                            capture_output=True, timeout=30, check=True)
    shown, _, modules = result.stdout.decode().partition("\n")
    return shown, set(modules.split())


def test_statusline_imports_stay_light(home):
    """It runs on every conversation update: the C sqlite and datetime modules alone, no
    zoneinfo for a UTC config (the config is validated once, then cached)."""
    add_calls([{"cost_nanousd": 2 * NANO}])
    shown, modules = statusline_modules(statusline_payload())
    assert shown == "$2.00 session · 0 tok"
    assert not modules & HEAVY
    write_config('timezone = "UTC"\n[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 10\n'
                 '[[budgets]]\nscope = "session"\nperiod = "session"\ntokens = 1000\n')
    line(statusline_payload())  # validates the new config (pydantic) and caches it
    shown, modules = statusline_modules(statusline_payload())
    assert shown == "$2.00 session · 0 tok · daily $2.00/$10.00"
    assert "costhook.budgets" in modules
    assert not modules & HEAVY


def test_an_absurd_estimate_loses_only_itself(home):
    """A finite total_cost_usd too big for nano-dollars (1e308) overflowed to infinity and blanked
    the whole line, the budget included."""
    add_calls([{"cost_nanousd": 2_500_000_000, "session_id": "another"}])
    write_config('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 10\n')
    assert line(statusline_payload(session_id="not-recorded", cost={"total_cost_usd": 1e308})) == "daily $2.50/$10.00"
