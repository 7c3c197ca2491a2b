"""cron_views: per-run cost and history, top crons, heartbeat idle cost, anomalies,
per-cron budgets, and `costhook cron` — on transcripts and run logs written here with
hand-chosen costs (OpenClaw's reported cost, model not in costhook's table, so every
figure below is exact)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import COSTHOOK
from test_openclaw_source import conn, import_dir  # noqa: F401  (fixture)

from costhook import text
from costhook.views import cron as cv
from costhook.views import report as report_views

NIGHTLY = "11111111-aaaa-4bbb-8ccc-000000000001"
WEEKLY = "22222222-aaaa-4bbb-8ccc-000000000002"
HEARTBEAT = "33333333-aaaa-4bbb-8ccc-000000000003"
DAY = 86_400_000
T0 = 1_778_655_600_000  # 2026-05-13T07:00:00Z
NIGHTLY_COSTS = [0.01, 0.01, 0.01, 0.03, 0.012]  # run 4 costs 3x the average of runs 1-3
MAIN = "aaaaaaaa-0000-4000-8000-00000000main"


def message(n, role, ts, **extra):
    return {"type": "message", "id": f"e{n}", "timestamp": datetime.fromtimestamp(ts / 1000, timezone.utc).isoformat(),
            "message": {"role": role, "timestamp": ts, **extra}}


def reply(n, ts, cost, text="done", tools=(), tokens=(1000, 100, 0, 0)):
    content = [{"type": "text", "text": text}] if text is not None else []
    content += [{"type": "toolCall", "id": f"c{n}", "name": name, "arguments": args} for name, args in tools]
    i, o, r, w = tokens
    return message(n, "assistant", ts, content=content, provider="fake", model="fake-model", responseId=f"r-{ts}-{n}",
                   stopReason="stop", usage={"input": i, "output": o, "cacheRead": r, "cacheWrite": w,
                                             "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": cost}})


def write_session(folder: Path, session_id: str, events: list) -> None:
    header = {"type": "session", "version": 4, "id": session_id, "timestamp": "2026-05-13T00:00:00.000Z", "cwd": "/ws"}
    (folder / f"{session_id}.jsonl").write_text("\n".join(json.dumps(e) for e in [header, *events]) + "\n")


@pytest.fixture
def history(tmp_path):
    """A state dir: 5 nightly runs, 2 weekly runs (one pruned), a main session with three
    heartbeats (two idle) and a user turn, the cron run logs and jobs.json."""
    state = tmp_path / "oc"
    sessions = state / "agents" / "main" / "sessions"
    runs_dir = state / "cron" / "runs"
    sessions.mkdir(parents=True)
    runs_dir.mkdir(parents=True)
    index, logs = {}, {NIGHTLY: [], WEEKLY: [], HEARTBEAT: []}
    for n, cost in enumerate(NIGHTLY_COSTS):
        sid = f"{n:08d}-1111-4000-8000-000000000000"
        at = T0 + n * DAY
        write_session(sessions, sid, [message(1, "user", at + 10, content=f"[cron:{NIGHTLY} Nightly report] go"),
                                      reply(2, at + 1000, cost / 2, tools=[("exec", {"command": "x"})], text=None),
                                      reply(3, at + 2000, cost / 2)])
        key = f"agent:main:cron:{NIGHTLY}:run:{sid}"
        index[key] = {"sessionId": sid}
        logs[NIGHTLY].append({"ts": at + 74000, "jobId": NIGHTLY, "action": "finished", "status": "ok", "runAtMs": at,
                              "durationMs": 74000, "sessionId": sid, "sessionKey": key,
                              "usage": {"input_tokens": 2000, "output_tokens": 200, "total_tokens": 2200}})
    for n in range(2):
        sid = f"{n:08d}-2222-4000-8000-000000000000"
        at = T0 + n * 7 * DAY + 3_600_000
        if n == 1:
            write_session(sessions, sid, [message(1, "user", at + 10, content=f"[cron:{WEEKLY} Weekly digest] go"),
                                          reply(2, at + 1000, 0.05, tokens=(9000, 400, 3000, 0))])
        logs[WEEKLY].append({"ts": at + 30000, "jobId": WEEKLY, "action": "finished", "status": "ok", "runAtMs": at,
                             "durationMs": 30000, "sessionId": sid, "sessionKey": f"agent:main:cron:{WEEKLY}:run:{sid}",
                             "usage": {"input_tokens": 8000, "output_tokens": 300, "total_tokens": 11300, "cache_read_tokens": 3000}})
    hb = T0 + 12 * 3_600_000
    write_session(sessions, MAIN, [
        message(1, "user", hb, content="[OpenClaw heartbeat poll]", provenance={"kind": "internal_system", "sourceTool": "heartbeat"}),
        reply(2, hb + 500, 0.002, text="HEARTBEAT_OK"),
        message(3, "user", hb + 1_800_000, content="[OpenClaw heartbeat poll]", provenance={"kind": "internal_system", "sourceTool": "heartbeat"}),
        reply(4, hb + 1_800_500, 0.001, text=None, tools=[("heartbeat_respond", {"notify": False})]),
        message(5, "toolResult", hb + 1_800_600, toolCallId="c4", toolName="heartbeat_respond", content=[]),
        reply(6, hb + 1_800_700, 0.0005, text=""),
        message(7, "user", hb + 3_600_000, content="[OpenClaw heartbeat poll]", provenance={"kind": "internal_system", "sourceTool": "heartbeat"}),
        reply(8, hb + 3_600_500, 0.003, text="Reminder: the passport renewal is due today."),
        message(9, "user", hb + 4_000_000, content="What's the weather?"),
        reply(10, hb + 4_000_500, 0.004, text="Sunny."),
    ])
    index["agent:main:main"] = {"sessionId": MAIN}
    logs[HEARTBEAT].append({"ts": hb + 600, "jobId": HEARTBEAT, "action": "finished", "status": "ok", "runAtMs": hb - 20,
                            "durationMs": 600})
    (sessions / "sessions.json").write_text(json.dumps(index))
    for job, lines in logs.items():
        (runs_dir / f"{job}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (state / "cron" / "jobs.json").write_text(json.dumps({"jobs": [
        {"id": NIGHTLY, "name": "Nightly report", "agentId": "main", "schedule": {"kind": "cron", "expr": "0 7 * * *"},
         "sessionTarget": "isolated", "payload": {"kind": "agentTurn"}},
        {"id": WEEKLY, "name": "Weekly digest", "agentId": "main", "schedule": {"kind": "cron", "expr": "0 8 * * 1"},
         "sessionTarget": "isolated", "payload": {"kind": "agentTurn"}},
        {"id": HEARTBEAT, "name": "heartbeat-main", "agentId": "main", "schedule": {"kind": "every", "everyMs": 1800000},
         "sessionTarget": "main", "payload": {"kind": "heartbeat"}},
    ]}))
    return state


def test_runs_join_cost_to_history(conn, history):  # noqa: F811
    import_dir(conn, history)
    nightly = cv.runs(conn, job=NIGHTLY)
    assert [r["cost_nanousd"] for r in nightly] == [10_000_000, 10_000_000, 10_000_000, 30_000_000, 12_000_000]
    first = nightly[0]
    assert (first["status"], first["duration_ms"], first["requests"], first["total_tokens"], first["tokens_source"],
            first["job_name"], first["recorded"]) == ("ok", 74000, 2, 2200, "transcript", "Nightly report", True)
    assert first["line"] == "Took 74 s · 2,200 tokens · $0.01"
    weekly = cv.runs(conn, job=WEEKLY)
    pruned, kept = weekly
    assert (pruned["cost_nanousd"], pruned["cost_known"], pruned["transcript_missing"], pruned["total_tokens"],
            pruned["tokens_source"]) == (None, False, True, 11300, "run log")
    assert pruned["line"] == "Took 30 s · 11,300 tokens (run log) · cost unknown (transcript pruned)"
    assert (kept["cost_nanousd"], kept["total_tokens"]) == (50_000_000, 12400)


def test_anomaly_is_a_run_at_least_twice_its_rolling_average(conn, history):  # noqa: F811
    import_dir(conn, history)
    nightly = cv.runs(conn, job=NIGHTLY)
    assert [r["anomaly"] for r in nightly] == [False, False, False, True, False]
    assert (nightly[3]["ratio"], nightly[3]["rolling_avg_usd"]) == (3.0, 0.01)
    assert nightly[3]["line"].endswith("· $0.03 · 3.0× its average")
    assert nightly[4]["ratio"] == 0.8  # 0.012 / mean(0.01, 0.01, 0.01, 0.03)
    flagged = cv.anomalies(conn)
    assert [r["run_id"] for r in flagged] == [nightly[3]["run_id"]]
    assert cv.anomalies(conn, factor=4.0) == []


def test_summary_top_crons_and_sparkline(conn, history):  # noqa: F811
    import_dir(conn, history)
    crons = {c["job_id"]: c for c in cv.summary(conn)}
    nightly = crons[NIGHTLY]
    assert (nightly["runs"], nightly["ok"], nightly["errors"], nightly["cost_nanousd"], nightly["unknown_cost_runs"],
            nightly["avg_cost_usd"], nightly["anomalies"], nightly["schedule"]) == (5, 5, 0, 72_000_000, 0, 0.0144, 1, "cron 0 7 * * *")
    assert nightly["sparkline"] == "▃▃▃█▄" and nightly["spark_values"] == [0.01, 0.01, 0.01, 0.03, 0.012]
    weekly = crons[WEEKLY]
    assert (weekly["cost_nanousd"], weekly["unknown_cost_runs"], weekly["sparkline"]) == (50_000_000, 1, " █")
    assert [c["job_id"] for c in cv.top_crons(conn, n=2)] == [NIGHTLY, WEEKLY]
    beat = crons[HEARTBEAT]  # the heartbeat's run: its window in the main session
    assert (beat["kind"], beat["runs"], beat["cost_nanousd"]) == ("heartbeat", 1, 2_000_000)
    assert text.sparkline([]) == "" and text.sparkline([None, None]) == "  " and text.sparkline([0, 0]) == "▁▁"


def test_heartbeat_idle_cost(conn, history):  # noqa: F811
    import_dir(conn, history)
    idle = cv.heartbeat_idle(conn)
    assert (idle["heartbeats"], idle["idle"], idle["idle_cost_nanousd"], idle["cost_nanousd"], idle["idle_share"]) == (
        3, 2, 3_500_000, 6_500_000, 0.5385)
    assert idle["idle_tokens"] == 3 * 1100
    assert idle["by_agent"][0]["host_agent"] == "main"
    since = datetime.fromtimestamp((T0 + 12 * 3_600_000 + 1_000_000) / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert cv.heartbeat_idle(conn, since=since)["heartbeats"] == 2


def test_cron_budgets_per_run_and_per_period(conn, history):  # noqa: F811
    import_dir(conn, history)
    budgets = [
        {"id": "nightly-run", "scope": "cron:Nightly report", "period": "run", "limit_nanousd": 20_000_000,
         "warn_at": [0.8], "action": "block"},
        {"id": "nightly-monthly", "scope": f"cron:{NIGHTLY}", "period": "monthly", "limit_nanousd": 50_000_000,
         "warn_at": [0.8], "action": "warn"},
        {"id": "global", "scope": "global", "period": "daily", "limit_nanousd": 1, "warn_at": [0.8], "action": "block"},
    ]
    now = datetime(2026, 5, 20, 12, tzinfo=timezone.utc)
    rows = {b["budget_id"]: b for b in cv.budget_status(conn, budgets, now=now, tz=timezone.utc)}
    assert set(rows) == {"nightly-run", "nightly-monthly"}
    run = rows["nightly-run"]
    assert (run["job_id"], run["spent"], run["percent"], run["blocking"]) == (NIGHTLY, 0.012, 60.0, False)
    assert run["message"].startswith("Budget run/cron:Nightly report: $0.012 of $0.02 (60%)")
    month = rows["nightly-monthly"]
    assert (month["period_key"], month["spent"], month["percent"], month["blocking"]) == ("2026-05", 0.072, 144.0, False)


def test_find_job_by_id_prefix_and_name(conn, history):  # noqa: F811
    import_dir(conn, history)
    assert report_views.find_job(conn, NIGHTLY) == NIGHTLY
    assert report_views.find_job(conn, "Weekly digest") == WEEKLY
    assert report_views.find_job(conn, "2222") == WEEKLY
    assert report_views.find_job(conn, "weekly") == WEEKLY  # a unique name prefix, any case
    assert report_views.find_job(conn, "nope") is None


def test_format_run():
    run = {"duration_ms": 74_000, "total_tokens": 12_400, "cost_nanousd": 40_000_000}
    assert text.run_line(run) == "Took 74 s · 12,400 tokens · $0.04"
    assert text.run_line({"duration_ms": 1213, "total_tokens": 3269, "cost_nanousd": 3_723_000}) == "Took 1.2 s · 3,269 tokens · $0.0037"


def test_cli(home, history):
    imported = subprocess.run([COSTHOOK, "import", "--openclaw-dir", str(history)], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    table = subprocess.run([COSTHOOK, "cron", "--tz", "UTC"], capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["cron", "runs", "ok/err", "cost", "avg/run", "last", "run", "last", "trend", "anomalies"]
    assert any(line.startswith("Nightly report") and "$0.07" in line and "▃▃▃█▄" in line for line in lines), table.stdout
    assert "Heartbeats: 3 costing $0.0065; 2 only acknowledged, idle cost $0.0035 (54% of heartbeat spend)." in table.stdout
    assert "3.0× its average" in table.stdout
    one = subprocess.run([COSTHOOK, "cron", "Nightly report", "--tz", "UTC"], capture_output=True, text=True)
    assert one.returncode == 0 and "2026-05-16 07:00  ok ⚠" in one.stdout, one.stdout
    data = json.loads(subprocess.run([COSTHOOK, "cron", "--format", "json"], capture_output=True, text=True).stdout)
    assert set(data) == {"crons", "heartbeat", "anomalies", "budgets"}
    assert data["heartbeat"]["idle"] == 2
    job = json.loads(subprocess.run([COSTHOOK, "cron", WEEKLY, "--format", "json"], capture_output=True, text=True).stdout)
    assert [r["cost_usd"] for r in job["runs"]] == [0.05, None]
    report = json.loads(subprocess.run([COSTHOOK, "report", "--by", "cron", "--format", "json"], capture_output=True, text=True).stdout)
    assert {r["key"]: r["cost_usd"] for r in report["rows"]}[NIGHTLY] == 0.072
    # Tables show the job's name, not its id (issue 13, item 10); JSON keeps the id as key.
    assert {r["key"]: r["name"] for r in report["rows"]}[NIGHTLY] == "Nightly report"
    by_cron = subprocess.run([COSTHOOK, "report", "--by", "cron"], capture_output=True, text=True).stdout
    assert any(line.startswith("Nightly report ") for line in by_cron.splitlines()) and NIGHTLY not in by_cron, by_cron
    top = subprocess.run([COSTHOOK, "top", "--by", "cron", "--period", "all"], capture_output=True, text=True).stdout
    assert "Nightly report" in top and NIGHTLY not in top, top
    missing = subprocess.run([COSTHOOK, "cron", "no-such-job"], capture_output=True, text=True)
    assert missing.returncode != 0 and "no cron job matches" in missing.stderr


def test_budget_status_judges_a_cron_run_budget_on_that_crons_latest_run(home, history, tmp_path):
    """`budget status` judged `cron:<job> --period run` on the latest session of any kind
    (here a newer Claude session) instead of the job's latest run (issue 13, item 9)."""
    from test_budgets import write_calls

    assert subprocess.run([COSTHOOK, "import", "--openclaw-dir", str(history)], capture_output=True).returncode == 0
    claude = tmp_path / "claude" / "projects" / "p"
    claude.mkdir(parents=True)
    write_calls(claude / "s-1.jsonl", [("m1", 100_000, "2026-05-20T09:00:00.000Z")], session="unrelated-session")
    assert subprocess.run([COSTHOOK, "import", "--claude-dir", str(tmp_path / "claude")], capture_output=True).returncode == 0
    (tmp_path / "config.toml").write_text('[[budgets]]\nid = "nightly-run"\nscope = "cron:Nightly report"\n'
                                          'period = "run"\nlimit = "0.02"\naction = "block"\n')
    now = ["--now", "2026-05-20T10:00:00Z"]
    status = json.loads(subprocess.run([COSTHOOK, "budget", "status", "--format", "json", *now],
                                       capture_output=True, text=True).stdout)
    cron = json.loads(subprocess.run([COSTHOOK, "cron", "--format", "json", *now], capture_output=True, text=True).stdout)
    assert status[0]["spent"] == NIGHTLY_COSTS[-1] == cron["budgets"][0]["spent"]
    assert status[0]["state"] == "ok" and not status[0]["blocking"]  # $0.012 of $0.02: 60 %


def test_an_isolated_cron_run_is_one_anomaly_not_two(conn, request, monkeypatch):  # noqa: F811
    """Run 4 of the nightly cron ($1.00 against $0.20 runs) is its own session, and that
    session also costs over 2x the sessions started in the 7 days before it: one event,
    listed once, as the cron run — by the view, `costhook anomalies` and the dashboard."""
    from costhook.dashboard import sections
    from costhook.views import anomalies as anomaly_views

    import test_openclaw_views as here

    monkeypatch.setattr(here, "NIGHTLY_COSTS", [0.2, 0.2, 0.2, 1.0, 0.2])
    import_dir(conn, request.getfixturevalue("history"))
    run4 = cv.runs(conn, job=NIGHTLY)[3]
    assert run4["anomaly"] and run4["session_id"]
    now = datetime.fromtimestamp((T0 + 5 * DAY) / 1000, timezone.utc)
    found = anomaly_views.anomalies(conn, now, timezone.utc, 30)["anomalies"]
    assert [(x["kind"], x["key"]) for x in found] == [("cron_run", run4["run_id"]), ("day", "2026-05-16")]
    assert found[0]["session_id"] == run4["session_id"]
    text = sections.anomalies({"tz": timezone.utc, "anomalies": {"anomalies": found}})
    assert text.count("> [!warning]") == 2 and text.count("Cron run of **Nightly report**") == 1 and "Session" not in text
    proc = subprocess.run([COSTHOOK, "anomalies", "--now", now.isoformat(), "--tz", "UTC"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("cron_run") == 1 and "\nsession" not in proc.stdout
