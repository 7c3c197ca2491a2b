"""One view across agent CLIs (issue 16, item 6): every report, view, budget scope and the
dashboard filter (`--cli NAME`) and group (`--by cli`) by the agent CLI that made the call —
claude, openclaw, codex — which is not the sub-agent type (`--by agent`, `agent:<type>`).

Rows of all three CLIs are written through the real write path (store/writes.py), the
codex ones shaped as Codex capture stores them (thread and response id, OpenAI model)."""

import json
import sqlite3
import subprocess

import pytest
from conftest import COSTHOOK

from costhook.store import db, migrations, rollup, writes

NOW = "2026-11-21T12:00:00Z"


def call(key, agent, session, timestamp, cost_tokens, *, model="claude-sonnet-4-5", agent_type=None, agent_id=None,
         project="/home/dev/acme", tools=(), cron_job=None) -> dict:
    return {
        "key": key, "agent": agent, "session_id": session, "timestamp": timestamp, "model": model,
        "project": project, "agent_type": agent_type, "agent_id": agent_id, "cron_job": cron_job,
        "input_tokens": cost_tokens, "output_tokens": 10, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0,
        "cache_read_tokens": 5, "tools": list(tools),
    }


# One call's cost: 1,000 nano-USD per input token, so `cost_tokens` = cost in micro-dollars.
def price(record):
    return record["input_tokens"] * 1000, "computed"


CALLS = [
    # Claude Code: a main thread and an Explore sub-agent.
    call("msg_1:req_1", "claude", "c1-session", "2026-11-20T09:00:00.000Z", 3000, tools=["Bash"]),
    call("msg_2:req_2", "claude", "c1-session", "2026-11-20T09:05:00.000Z", 1000, agent_type="Explore",
         agent_id="a1"),
    # OpenClaw: a cron run.
    call("oc-msg-1", "openclaw", "o1-session", "2026-11-20T10:00:00.000Z", 500, model="gpt-5-mini",
         project="/home/dev/.openclaw/workspace", cron_job="job-1"),
    # Codex: a main thread and a guardian sub-agent, keyed by (thread, response).
    call("019a-thread:resp_1", "codex", "x1-session", "2026-11-20T11:00:00.000Z", 7000, model="gpt-5-codex",
         tools=["exec_command"]),
    call("019a-guard:resp_2", "codex", "x1-session", "2026-11-20T11:01:00.000Z", 2000, model="gpt-5-codex",
         agent_type="guardian", agent_id="019a-guard"),
    call("019a-thread:resp_3", "codex", "x1-session", "2026-11-21T08:00:00.000Z", 1500, model="gpt-5-codex"),
]


def write(conn, calls) -> None:
    with db.transaction(conn):
        writes.merge_requests(conn, {c["key"]: dict(c) for c in calls}, price)


@pytest.fixture
def three(home):
    conn = db.connect()
    write(conn, CALLS)
    conn.close()
    return home


def run(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def as_json(*args):
    return json.loads(run(*args, "--format", "json").stdout)


def spend_rows(conn, dim) -> list:
    return [tuple(r) for r in conn.execute("SELECT * FROM spend WHERE dim = ? ORDER BY key, bucket, cli", (dim,))]


# ------------------------------------------------------------------ the rollup -----


def all_spend(conn) -> list:
    return [tuple(r) for r in conn.execute("SELECT * FROM spend ORDER BY dim, key, bucket, cli")]


def test_every_rollup_row_names_its_agent_cli_as_a_rebuild_does(tmp_path):
    conn = db.connect(tmp_path / "c.db")
    for c in CALLS:  # one call at a time, as hooks write them
        write(conn, [c])
    kept = all_spend(conn)
    by_cli = dict(conn.execute("SELECT cli, sum(cost_nanousd) FROM spend WHERE dim = 'global' GROUP BY cli").fetchall())
    assert by_cli == {"claude": 4_000_000, "openclaw": 500_000, "codex": 10_500_000}
    # Every dimension holds each CLI's calls: the codex rows of the model dimension are gpt-5-codex's.
    assert [r[0] for r in conn.execute("SELECT DISTINCT key FROM spend WHERE dim = 'model' AND cli = 'codex'")] == ["gpt-5-codex"]
    rollup.rebuild_spend(conn)
    assert all_spend(conn) == kept


def test_the_migration_gives_an_existing_rollup_its_cli(tmp_path):
    path = tmp_path / "old.db"
    conn = db.connect(path)
    write(conn, CALLS)
    expected = all_spend(conn)
    # The database as the schema before made it: no cli column, one row per (dim, key, bucket).
    measures = ", ".join(rollup.SPEND_MEASURES)
    conn.executescript(f"""
        CREATE TABLE old AS SELECT dim, key, bucket, {", ".join(f"sum({m}) AS {m}" for m in rollup.SPEND_MEASURES)}
            FROM spend GROUP BY dim, key, bucket;
        DROP TABLE spend;
        CREATE TABLE spend (dim TEXT, key TEXT, bucket TEXT, {", ".join(f"{m} INTEGER" for m in rollup.SPEND_MEASURES)},
                            PRIMARY KEY (dim, key, bucket));
        INSERT INTO spend (dim, key, bucket, {measures}) SELECT dim, key, bucket, {measures} FROM old;
        DROP TABLE old;
        PRAGMA user_version = {migrations.MIGRATIONS.index(migrations.m011_agent_cli)};""")
    conn.close()
    conn = db.connect(path)
    assert all_spend(conn) == expected
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    write(conn, [call("019c:resp_1", "codex", "x2", "2026-11-21T09:00:00.000Z", 100, model="gpt-5-codex")])  # writes still add up


# ------------------------------------------------------------------ report ---------


def test_report_by_cli_has_one_row_per_agent_cli(three):
    data = as_json("report", "--by", "cli")
    assert data["group_by"] == "cli"
    assert {r["key"]: (r["requests"], r["cost_usd"]) for r in data["rows"]} == {
        "codex": (3, 0.0105), "claude": (2, 0.004), "openclaw": (1, 0.0005)}
    assert [r["key"] for r in data["rows"]] == ["codex", "claude", "openclaw"]  # costliest first
    table = run("report", "--by", "cli").stdout
    assert table.splitlines()[0].split()[0] == "cli" and "codex" in table


def test_session_rows_say_which_cli_ran_them(three):
    rows = as_json("report", "--by", "session")["rows"]
    assert {r["key"]: r["cli"] for r in rows} == {"x1-session": "codex", "c1-session": "claude", "o1-session": "openclaw"}
    table = run("top", "--by", "session", "--now", NOW).stdout.splitlines()
    assert table[1].split()[-1] == "cli" and table[3].split()[-1] == "codex"


def test_report_by_agent_still_means_the_sub_agent_type(three):
    keys = {r["key"] for r in as_json("report", "--by", "agent")["rows"]}
    assert keys == {"(main)", "Explore", "guardian"}


@pytest.mark.parametrize("by", ["day", "model", "agent", "session", "tool", "cli"])
def test_report_cli_filter(three, by):
    data = as_json("report", "--by", by, "--cli", "codex")
    assert data["totals"]["requests"] == 3 and data["totals"]["cost_usd"] == 0.0105
    if by == "model":
        assert [r["key"] for r in data["rows"]] == ["gpt-5-codex"]
    if by == "agent":
        assert {r["key"] for r in data["rows"]} == {"(main)", "guardian"}
    if by == "cli":
        assert [r["key"] for r in data["rows"]] == ["codex"]


def test_report_cli_filter_reads_the_rollup_as_the_calls_say(three):
    from datetime import date

    from costhook import timeframe
    from costhook.views import report

    conn = db.connect()
    tz = timeframe.local_zone("Asia/Kolkata")
    for by in (g for g in report.GROUPS if g != "message"):
        for win in (timeframe.Window(), timeframe.dates_window(date(2026, 11, 21), date(2026, 11, 30), tz)):
            for cli in ("claude", "openclaw", "codex"):
                fast = report.report(conn, by, win=win, tz=tz, filters={"agent": cli})
                slow = report.report(conn, by, win=win, tz=tz, filters={"agent": cli}, source="requests")
                assert fast == slow, (by, cli)


def test_report_rejects_an_unknown_cli(three):
    proc = run("report", "--cli", "cursor", check=False)
    assert proc.returncode == 2 and "cursor" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ budgets --------


def today(hour_offset_minutes: int = 0) -> str:
    from datetime import datetime, timedelta, timezone

    moment = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=hour_offset_minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def claude_and_codex_today(home, tmp_path):
    """A Claude Code session with one $0.003 call (its real transcript, read by the real
    hook) and $0.05 of Codex calls, all made today; a config writer."""
    from test_budgets import write_calls

    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m1", 1000, today())])
    conn = db.connect()
    write(conn, [call("019b-thread:resp_9", "codex", "x-today", today(5), 30_000, model="gpt-5-codex"),
                 call("019b-thread:resp_10", "codex", "x-today", today(4), 20_000, model="gpt-5-codex")])
    conn.close()
    config = tmp_path / "config.toml"
    return transcript, lambda text: config.write_text(text)


def claude_prompt(transcript):
    from conftest import run_hook
    from test_budgets import event

    proc = run_hook(event(transcript, "UserPromptSubmit", prompt="hello"))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout else None


def test_a_cli_budget_governs_only_that_agent_cli(claude_and_codex_today):
    transcript, configure = claude_and_codex_today
    # Codex spent $0.05 of a $0.01 daily cap: that says nothing about Claude Code.
    configure('[[budgets]]\nscope = "cli:codex"\nperiod = "daily"\nlimit = 0.01\naction = "block"\n')
    assert claude_prompt(transcript) is None
    status = as_json("budget", "status")
    assert (status[0]["id"], status[0]["spent"], status[0]["state"]) == ("daily-cli-codex", 0.05, "blocking")
    # Claude Code's own cap counts its own $0.003 only, not Codex's $0.05.
    configure('[[budgets]]\nscope = "cli:claude"\nperiod = "daily"\nlimit = 0.002\naction = "block"\n')
    out = claude_prompt(transcript)
    assert out["decision"] == "block"
    assert out["reason"].startswith("costhook: Budget daily/cli:claude: $0.003 of $0.002 (150%)")
    configure('[[budgets]]\nscope = "cli:claude"\nperiod = "daily"\nlimit = 0.004\naction = "block"\n')
    assert claude_prompt(transcript) is None
    # A session budget scoped to one CLI.
    configure('[[budgets]]\nscope = "cli:claude"\nperiod = "session"\nlimit = 0.002\naction = "block"\n')
    assert claude_prompt(transcript)["decision"] == "block"


def test_openclaw_gates_judge_cli_budgets_as_openclaw(home, tmp_path, monkeypatch):
    from test_openclaw_hook import MAIN, build_agent_store, events_of, hook, payload, silent

    root = tmp_path / "openclaw-state"
    build_agent_store(root / "agents" / "main" / "agent" / "openclaw-agent.sqlite",
                      {MAIN: ("agent:main:main", events_of(MAIN))})
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(root))
    config = tmp_path / "config.toml"
    config.write_text('[[budgets]]\nscope = "cli:claude"\nperiod = "session"\nlimit = 0.05\naction = "block"\n')
    silent(hook(payload("before_tool_call", {"toolName": "exec", "toolCallId": "toolu_01MAINexec"})))
    config.write_text('[[budgets]]\nscope = "cli:openclaw"\nperiod = "session"\nlimit = 0.05\naction = "block"\n')
    decision = json.loads(hook(payload("before_tool_call", {"toolName": "exec", "toolCallId": "toolu_01MAINexec"})).stdout)
    assert decision["block"] is True and "Budget session/cli:openclaw: $0.1137 of $0.05" in decision["blockReason"]


def test_budget_set_takes_a_cli_scope_and_refuses_an_unknown_cli(home, tmp_path):
    proc = run("budget", "set", "--scope", "cli:codex", "--period", "monthly", "--limit", "20")
    assert "monthly-cli-codex" in proc.stdout
    bad = run("budget", "set", "--scope", "cli:cursor", "--period", "monthly", "--limit", "20", check=False)
    assert bad.returncode != 0 and "cli:cursor" in bad.stderr and "cli:codex" in bad.stderr
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------ views ----------


def view(*args):
    return as_json(*args, "--now", NOW, "--tz", "UTC")


def test_top_ranks_agent_clis_and_filters_by_one(three):
    data = view("top", "--by", "cli")
    assert [(r["key"], r["requests"]) for r in data["rows"]] == [("codex", 3), ("claude", 2), ("openclaw", 1)]
    assert data["rows"][0]["share"] == round(10_500 / 15_000, 6)
    assert "Top agent CLIs" in run("top", "--by", "cli", "--now", NOW).stdout
    assert run("top", "--by", "agent", "--cli", "codex", "--now", NOW).stdout.startswith(
        "Top sub-agent types, this week (2026-W47), codex only\n")
    codex = view("top", "--by", "agent", "--cli", "codex")
    assert {r["key"] for r in codex["rows"]} == {"(main)", "guardian"}
    assert codex["total"] == {"cost_usd": 0.0105, "requests": 3, "unpriced_requests": 0}
    assert codex["period"]["cli"] == "codex"
    sessions = view("top", "--by", "session")["rows"]
    assert {r["key"]: r["cli"] for r in sessions} == {"x1-session": "codex", "c1-session": "claude",
                                                      "o1-session": "openclaw"}
    assert [r["key"] for r in view("top", "--by", "model", "--cli", "openclaw")["rows"]] == ["gpt-5-mini"]
    assert [r["key"] for r in view("top", "--by", "tool", "--cli", "codex")["rows"]] == ["exec_command",
                                                                                         "(reasoning/answer)"]


def test_summary_and_trends_of_one_cli(three):
    assert view("summary")["periods"]["all"]["cost_usd"] == 0.015
    codex = view("summary", "--cli", "codex")
    assert codex["periods"]["all"]["cost_usd"] == 0.0105 and codex["periods"]["today"]["requests"] == 1
    assert view("summary", "--cli", "claude")["periods"]["yesterday"]["cost_usd"] == 0.004
    assert run("summary", "--cli", "codex", "--now", NOW).stdout.startswith("codex only\nperiod ")
    assert run("trends", "--cli", "codex", "--now", NOW).stdout.startswith("codex only\n")
    rows = {r["day"]: r["cost_usd"] for r in view("trends", "--days", "3", "--cli", "codex")["rows"]}
    assert rows == {"2026-11-19": 0, "2026-11-20": 0.009, "2026-11-21": 0.0015}
    assert view("trends", "--days", "3", "--cli", "openclaw")["total_usd"] == 0.0005


def test_the_activity_views_take_cli(three):
    assert view("tools", "--period", "all", "--cli", "claude")["total"] == {"cost_usd": 0.004, "requests": 2}
    blocks = view("blocks", "--period", "all", "--cli", "codex")["blocks"]
    assert [(b["start"], b["requests"]) for b in blocks] == [("2026-11-20T11:00:00.000Z", 2), ("2026-11-21T08:00:00.000Z", 1)]
    assert view("idle", "--period", "all", "--cli", "openclaw")["total_cost_usd"] == 0.0005
    assert view("efficiency", "--period", "all", "--cli", "codex")["cost_usd"] == 0.0105
    cache = view("cache", "--period", "all", "--cli", "claude")
    assert [m["model"] for m in cache["by_model"]] == ["claude-sonnet-4-5"]


def test_tree_says_which_cli_ran_the_session(three):
    tree = view("tree", "--period", "all", "--cli", "codex")
    assert (tree["id"], tree["cli"]) == ("x1-session", "codex")
    assert [c["label"] for c in tree["children"]] == ["main thread", "guardian"]
    assert view("tree", "c1-session")["cli"] == "claude"


def test_whatif_by_cli(three):
    # Rows without a web-search count (Codex's, OpenClaw's) made every what-if crash.
    assert view("whatif", "--to", "claude-haiku-4-5", "--days", "7")["rows"]
    rows = view("whatif", "--by", "cli", "--to", "claude-haiku-4-5", "--days", "7")["rows"]
    assert {(r["scope"], r["key"], r["from_model"]) for r in rows} == {
        ("cli", "claude", "claude-sonnet-4-5"), ("cli", "codex", "gpt-5-codex"), ("cli", "openclaw", "gpt-5-mini")}
    assert next(r for r in rows if r["key"] == "codex")["requests"] == 3
    only = view("whatif", "--cli", "claude", "--to", "claude-haiku-4-5", "--days", "7", "--by", "model")
    assert [r["from_model"] for r in only["rows"]] == ["claude-sonnet-4-5"]
    assert [r["key"] for r in view("whatif", "--by", "cli", "--only", "codex", "--to", "claude-haiku-4-5")["rows"]] == ["codex"]


def test_anomalies_of_one_cli(home):
    """A Codex day 10x its usual spend is an anomaly of Codex's, while the same day across
    every CLI (a heavy Claude Code user) is ordinary."""
    calls = []
    for day in range(12, 21):  # 2026-11-12 … 2026-11-20
        calls.append(call(f"c{day}", "claude", f"c-{day}", f"2026-11-{day}T09:00:00.000Z", 1_000_000))
        calls.append(call(f"x{day}:r", "codex", f"x-{day}", f"2026-11-{day}T10:00:00.000Z",
                          200_000 if day == 20 else 20_000, model="gpt-5-codex"))
    conn = db.connect()
    write(conn, calls)
    conn.close()
    assert [a for a in view("anomalies", "--days", "3")["anomalies"] if a["kind"] == "day"] == []
    found = view("anomalies", "--days", "3", "--cli", "codex")["anomalies"]
    assert [(a["kind"], a["key"]) for a in found] == [("session", "x-20"), ("day", "2026-11-20")]
    assert view("anomalies", "--days", "3", "--cli", "claude")["anomalies"] == []


# ------------------------------------------------------------------ dashboard ------


def note(*args) -> str:
    return run("dashboard", "--stdout", "--now", NOW, "--tz", "UTC", *args).stdout


def board(text: str, title: str) -> list:
    """The first column of a leaderboard's table in the note."""
    lines = text.split(f"**{title}**", 1)[1].lstrip("\n").splitlines()
    table = lines[:next((i for i, line in enumerate(lines) if not line.startswith("|")), len(lines))]
    return [line.split("|")[1].strip() for line in table[2:]]


def test_the_dashboard_ranks_agent_clis_and_can_show_one(three):
    everything = note()
    assert board(everything, "Agent CLIs") == ["codex", "claude", "openclaw"]
    codex = note("--cli", "codex")
    assert "## Summary, codex only" in codex and "**Agent CLIs**" not in codex
    assert board(codex, "Sub-agent types") == ["(main)", "guardian"]
    summary = codex.split("## Summary", 1)[1].split("##", 1)[0]
    assert "| All time | **$0.0105** | 3 |" in summary
    assert "gpt-5-mini" not in codex  # OpenClaw's model is nowhere in Codex's note


def test_the_dashboard_cli_can_be_configured(three, tmp_path):
    (tmp_path / "config.toml").write_text('[dashboard]\ncli = "claude"\n')
    assert "## Summary, claude only" in note()
    (tmp_path / "config.toml").write_text('[dashboard]\ncli = "cursor"\n')
    bad = run("dashboard", "--stdout", check=False)
    assert bad.returncode == 1 and "dashboard.cli" in bad.stderr and "Traceback" not in bad.stderr


def test_claude_codes_statusline_shows_only_budgets_that_govern_it(claude_and_codex_today, tmp_path):
    from test_budgets import ingest
    from test_statusline import line, statusline_payload

    transcript, configure = claude_and_codex_today
    conn = db.connect()
    ingest(conn, transcript)
    conn.close()
    payload = statusline_payload(session_id="s-1", transcript_path=str(transcript))
    configure('[[budgets]]\nscope = "cli:codex"\nperiod = "daily"\nlimit = 0.01\naction = "block"\n')
    assert line(payload) == "$0.003 session · 1K tok"  # Codex's spent budget is not Claude Code's
    configure('[[budgets]]\nscope = "cli:claude"\nperiod = "daily"\nlimit = 0.1\naction = "block"\n')
    assert line(payload) == "$0.003 session · 1K tok · daily claude $0.003/$0.10"


def test_no_spend_of_one_cli_says_which(home):
    conn = db.connect()
    write(conn, CALLS[:2])  # Claude Code's calls only
    conn.close()
    assert run("report", "--cli", "codex").stdout == "No codex spend recorded.\n"
    assert run("top", "--cli", "openclaw", "--now", NOW).stdout.strip() == "No openclaw spend this week (2026-W47)."
    assert run("trends", "--cli", "codex", "--now", NOW).stdout.strip() == "No codex spend in the last 30 days."


def test_the_fast_report_path_takes_cli():
    from costhook.cli import report_fast

    assert report_fast.parse(["--by", "cli", "--cli", "codex"])["cli"] == "codex"
    assert report_fast.parse(["--cli", "cursor"]) is None  # click says what is wrong


def test_any_agents_hook_judges_cli_budgets_as_its_own_cli(claude_and_codex_today, monkeypatch):
    """A new session of an agent whose hook names no CLI in its budget context (Codex's
    first prompt: nothing recorded yet) is judged as the CLI of `costhook hook --agent`."""
    from costhook import budgets
    from costhook.agents import runtime

    _, configure = claude_and_codex_today
    configure('[[budgets]]\nscope = "cli:codex"\nperiod = "daily"\nlimit = 0.01\naction = "block"\n')
    monkeypatch.setattr(runtime, "AGENT", "codex")
    verdict = runtime.decide("UserPromptSubmit", lambda conn: (budgets.Context(session_id="new-thread"),
                                                               runtime.user_config()["budgets"]), record=False)
    assert verdict.block is not None and verdict.block.label() == "daily/cli:codex"
    monkeypatch.setattr(runtime, "AGENT", "openclaw")
    verdict = runtime.decide("before_agent_run", lambda conn: (budgets.Context(session_id="new-run"),
                                                               runtime.user_config()["budgets"]), record=False)
    assert verdict.block is None


def test_budget_status_judges_a_cli_session_budget_on_that_clis_session(claude_and_codex_today):
    """The latest call is Claude Code's; a per-session Codex budget is about Codex's session."""
    from test_budgets import ingest

    transcript, configure = claude_and_codex_today
    conn = db.connect()
    ingest(conn, transcript)
    conn.close()
    configure('[[budgets]]\nscope = "cli:codex"\nperiod = "session"\nlimit = 0.01\naction = "block"\n'
              '[[budgets]]\nscope = "cli:claude"\nperiod = "session"\nlimit = 0.01\naction = "block"\n')
    status = {s["id"]: (s["period_key"], s["spent"], s["state"]) for s in as_json("budget", "status")}
    assert status == {"session-cli-codex": ("session:x-today", 0.05, "blocking"),
                      "session-cli-claude": ("session:s-1", 0.003, "ok")}
