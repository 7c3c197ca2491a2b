"""The team ledger against a real PostgreSQL server of the suite's own (tests/pgserver.py):
sync, team reports, doctor, and the faults of issue 15 — the server stopped while hooks
run, `kill -9` mid-push, a wrong password or an unreachable host, a newer server schema.
Every machine is a COSTHOOK_HOME of its own; `costhook` runs as a real process."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pgserver
import pytest
from conftest import COSTHOOK, EXAMPLES, run_hook
from transcript_lines import assistant

psycopg = pytest.importorskip("psycopg", reason="psycopg is a costhook dependency: pip install -e '.[test]'")


@pytest.fixture(scope="session")
def pg():
    try:
        server = pgserver.start()
    except RuntimeError as exc:
        pytest.skip(f"no PostgreSQL server to test against: {exc}")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"PostgreSQL would not start here: {exc.stderr.decode(errors='replace')[-500:]}")
    yield server
    pgserver.finish(server)


_databases = iter(range(10**6))


@pytest.fixture
def team_url(pg):
    """A fresh database on the server (its name is the test's own)."""
    if not pg.running():
        pg.start()
    return pg.create_database(f"team{next(_databases)}")


class Machine:
    """One machine of the team: its own COSTHOOK_HOME, config ([team] user and machine) and
    database; commands run as real processes with PGPASSWORD in their environment."""

    def __init__(self, root: Path, url: str, user: str, name: str, *, project_name: str = "basename", extra: str = ""):
        self.root, self.name, self.user = root, name, user
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home = root / "home"
        self.config = root / "config.toml"
        self.config.write_text(f'[team]\nuser = "{user}"\nmachine = "{name}"\nproject_name = "{project_name}"\n{extra}')
        self.config.chmod(0o600)
        self.env = {**os.environ, "COSTHOOK_HOME": str(self.home), "COSTHOOK_DB": str(self.home / "costhook.db"),
                    "COSTHOOK_CONFIG": str(self.config), "COSTHOOK_TEAM_URL": url, "PGPASSWORD": pgserver.PASSWORD}
        self.claude = root / "claude"

    def run(self, *args, check=True, timeout=300, env=None) -> subprocess.CompletedProcess:
        proc = subprocess.run([COSTHOOK, *args], check=False, capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **(env or {})})
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def transcript(self, session: str, lines: list, project: str = "-work-proj") -> Path:
        path = self.claude / "projects" / project / f"{session}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines))
        return path

    def import_(self):
        return self.run("import", "--claude-dir", str(self.claude), "-q")

    def report(self, *args) -> dict:
        return json.loads(self.run("report", "--format", "json", *args).stdout)


def server_rows(url: str, sql: str, args=()) -> list:
    with psycopg.connect(url, password=pgserver.PASSWORD) as conn:
        return conn.execute(sql, args).fetchall()


def rollup_matches_calls(url: str) -> None:
    """No partial state: the server's rollup is exactly the sum of its call rows."""
    calls = server_rows(url, "SELECT count(*), coalesce(sum(cost_nanousd), 0), coalesce(sum(output_tokens), 0) "
                             "FROM costhook.calls")[0]
    rollup = server_rows(url, "SELECT coalesce(sum(requests), 0), coalesce(sum(cost_nanousd), 0), "
                              "coalesce(sum(output_tokens), 0) FROM costhook.spend WHERE dim = 'global'")[0]
    assert tuple(map(int, calls)) == tuple(map(int, rollup))
    tools = server_rows(url, "SELECT coalesce(sum(cost_nanousd), 0) FROM costhook.spend WHERE dim = 'tool'")[0][0]
    assert int(tools) == int(calls[1])  # a call's cost split between its tools adds up exactly


def test_sync_pushes_once_and_the_team_report_is_the_local_report(tmp_path, team_url):
    """One machine: `report --team` prints what `report` prints, in every grouping both
    know; a second sync pushes nothing; the server holds no path, prompt or password."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    a.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")
    dry = a.run("sync", "--dry-run").stdout
    assert "Would push 16 calls" in dry and "nothing sent" in dry
    assert server_rows(team_url, "SELECT to_regclass('costhook.calls')") == [(None,)]  # a dry run creates nothing
    first = a.run("sync").stdout
    assert first.startswith("Pushed 16 calls, 0 updated"), first
    assert a.run("sync").stdout.startswith("Pushed 0 calls, 0 updated")
    for by in ("day", "month", "week", "model", "tool", "agent", "skill"):
        mine, team = a.report("--by", by, "--tz", "UTC"), a.report("--team", "--by", by, "--tz", "UTC")
        assert team == mine, by
    mine = a.report("--by", "project")
    for row in mine["rows"]:
        row["key"] = os.path.basename(row["key"])  # project_name = "basename": paths never leave the machine
    assert a.report("--team", "--by", "project") == mine
    by_user = a.report("--team", "--by", "user")
    assert [r["key"] for r in by_user["rows"]] == ["ann"] and by_user["totals"] == mine["totals"]
    assert [r["key"] for r in a.report("--team", "--by", "machine")["rows"]] == ["laptop"]
    rollup_matches_calls(team_url)
    dump = "\n".join(str(r) for table in ("calls", "sessions") for r in server_rows(team_url, f"SELECT * FROM costhook.{table}"))
    assert "/home/dev" not in dump and pgserver.PASSWORD not in dump
    assert a.run("report", "--team", "--session", "7c1e", check=False).returncode == 2
    assert a.run("report", "--team", "--cli", "codex", check=False).returncode == 2  # the rollup cannot filter by CLI
    # a plain `report --team` runs without click, as a local report does (its import is most of a process)
    importtime = subprocess.run([sys.executable, "-X", "importtime", COSTHOOK, "report", "--team", "--format", "json"],
                                capture_output=True, text=True, env=a.env, timeout=60, check=True)
    assert json.loads(importtime.stdout) == a.report("--team")
    assert "click" not in {line.rsplit("|", 1)[1].strip() for line in importtime.stderr.splitlines() if "|" in line}
    lone = Machine(tmp_path / "lone", team_url, "bob", "desk")
    lone.env.pop("COSTHOOK_TEAM_URL")
    nobody = lone.run("report", "--team", check=False)
    assert nobody.returncode == 1 and nobody.stderr.startswith("Error: no team server configured"), nobody.stderr
    local = a.run("report", "--by", "user", "--format", "json")  # without --team: the calls synced into this database
    assert [r["key"] for r in json.loads(local.stdout)["rows"]] == ["(this machine)"]


def test_four_machines_converge_exactly(tmp_path, team_url):
    """Four machines with overlapping history — a session seen on two of them (a synced
    ~/.claude), a call whose usage grows after its first push — sync concurrently,
    repeatedly: the team report is the exact total of every distinct call, each call once,
    with the machine that pushed it first as its origin."""
    machines = [Machine(tmp_path / n, team_url, u, n) for u, n in
                (("ann", "laptop"), ("ann", "buildbox"), ("bob", "desk"), ("cy", "mini"))]
    oracle = Machine(tmp_path / "oracle", team_url, "all", "oracle")  # every transcript in one ledger: the truth
    shared = [assistant(f"msg_shared{i}", session_id="shared", output_tokens=100 + i,
                        timestamp=f"2026-11-2{i % 3}T10:0{i}:00.000Z") for i in range(6)]
    for index, m in enumerate(machines):
        own = [assistant(f"msg_{m.name}{i}", session_id=f"s-{m.name}", output_tokens=10 * (i + 1) + index,
                         model=("claude-sonnet-4-5-20250929", "claude-opus-4-6", "claude-haiku-4-5")[i % 3],
                         timestamp=f"2026-11-{18 + i % 4}T0{i % 10}:15:00.000Z",
                         content=[{"type": "tool_use", "id": f"t{m.name}{i}", "name": "Bash", "input": {}}] if i % 2 else None)
               for i in range(20)]
        m.transcript(f"s-{m.name}", own)
        oracle.transcript(f"s-{m.name}", own, project=f"-{m.name}")
    for m in machines[:2]:  # the same session on two machines
        m.transcript("shared", shared)
    growing = assistant("msg_grow", session_id="s-growing", output_tokens=5, timestamp="2026-11-21T09:00:00.000Z")
    machines[2].transcript("s-growing", [growing])
    for m in machines:
        m.import_()

    def sync_all():
        results = [None] * len(machines)

        def one(i):
            results[i] = machines[i].run("sync", check=False)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(machines))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for proc in results:
            assert proc.returncode == 0, proc.stderr

    sync_all()
    # the call grows after its first push (the response streamed on), and syncs again
    grown = assistant("msg_grow", session_id="s-growing", output_tokens=5000, timestamp="2026-11-21T09:00:01.000Z")
    machines[2].transcript("s-growing", [growing, grown])
    machines[2].import_()
    sync_all()
    sync_all()
    oracle.transcript("shared", shared, project="-shared")
    oracle.transcript("s-growing", [growing, grown], project="-growing")
    oracle.import_()

    truth = oracle.report("--by", "day", "--tz", "UTC")
    team = machines[0].report("--team", "--by", "day", "--tz", "UTC")
    assert team == truth  # to the nano-dollar, day by day
    assert machines[3].report("--team", "--by", "model")["rows"] == oracle.report("--by", "model")["rows"]
    calls = server_rows(team_url, "SELECT key, origin_machine, output_tokens FROM costhook.calls")
    assert len(calls) == truth["totals"]["requests"] == 4 * 20 + 6 + 1  # every call once
    origin = {key: machine for key, machine, _ in calls}
    for m in machines:
        assert all(origin[f"msg_{m.name}{i}:req_msg_{m.name}{i}"] == m.name for i in range(20))
    assert {origin[f"msg_shared{i}:req_msg_shared{i}"] for i in range(6)} <= {"laptop", "buildbox"}
    assert [t for k, _, t in calls if k.startswith("msg_grow")] == [5000]
    by_machine = {r["key"]: r["requests"] for r in machines[1].report("--team", "--by", "machine")["rows"]}
    assert by_machine["desk"] == 21 and by_machine["mini"] == 20
    assert by_machine["laptop"] + by_machine["buildbox"] == 46
    rollup_matches_calls(team_url)
    # each machine pulled the team's totals for its budgets: team_spend + its unpushed calls
    import sqlite3

    for m in machines:
        db = sqlite3.connect(m.home / "costhook.db")
        assert db.execute("SELECT count(*) FROM team_outbox").fetchone()[0] == 0
        db.close()


def test_the_server_stopped_while_hooks_run(tmp_path, team_url, pg):
    """Hooks record as ever (exit 0, nothing on stdout, nothing about the team in errors.log,
    psycopg never imported); sync fails in one line; after the restart everything arrives."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    a.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")
    a.run("sync")
    pg.stop()
    try:
        transcript = a.transcript("s-live", [assistant(f"msg_live{i}", session_id="s-live", output_tokens=7 + i)
                                             for i in range(5)])
        payload = {"hook_event_name": "PostToolUse", "session_id": "s-live", "transcript_path": str(transcript),
                   "cwd": str(tmp_path), "tool_name": "Bash", "tool_use_id": "toolu_1", "tool_input": {}, "tool_response": {}}
        for event in ("PostToolUse", "Stop", "SessionEnd"):
            proc = run_hook({**payload, "hook_event_name": event}, env=a.env)
            assert proc.returncode == 0 and proc.stdout == b"", proc.stderr
        failed = a.run("sync", check=False)
        assert failed.returncode == 1
        assert len(failed.stderr.strip().splitlines()) == 1 and "cannot reach the team server" in failed.stderr
        assert "Traceback" not in failed.stderr
    finally:
        pg.start()
    a.run("sync")
    local = a.report()["totals"]
    assert a.report("--team")["totals"] == local and local["requests"] == 21
    rollup_matches_calls(team_url)


def test_the_hook_never_imports_psycopg_with_a_team_configured(tmp_path, team_url):
    """`costhook hook` with [team] configured and its server up: no psycopg, no team code,
    in any event, SessionEnd included (it only starts a detached sync, which does push)."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    transcript = a.transcript("s1", [assistant("msg_1", session_id="s1")])
    env = {**a.env, "PYTHONDONTWRITEBYTECODE": "1"}
    for event in ("SessionStart", "PreToolUse", "PostToolUse", "Stop", "SessionEnd"):
        payload = {"hook_event_name": event, "session_id": "s1", "transcript_path": str(transcript), "cwd": str(tmp_path),
                   "tool_name": "Bash", "tool_use_id": "toolu_1", "tool_input": {}, "tool_response": {}}
        proc = subprocess.run([sys.executable, "-X", "importtime", COSTHOOK, "hook"], check=False, input=json.dumps(payload).encode(),
                              env=env, capture_output=True, timeout=60)
        assert proc.returncode == 0
        modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.decode().splitlines()
                   if line.startswith("import time:") and "|" in line}
        assert "costhook.agents.runtime" in modules  # the hook ran: the test looks where it should
        assert not {m for m in modules if m.split(".")[0] in ("psycopg", "psycopg_binary")
                    or m.startswith(("costhook.team", "costhook.cli"))}, event
    deadline = time.time() + 60  # the detached sync SessionEnd started pushes the call
    while time.time() < deadline:
        try:
            if server_rows(team_url, "SELECT count(*) FROM costhook.calls")[0][0] == 1:
                break
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(0.3)
    else:
        pytest.fail("the sync started after SessionEnd pushed nothing: " + (a.home / "errors.log").read_text()
                    if (a.home / "errors.log").exists() else "no errors.log")


def test_a_wrong_password_or_an_unreachable_host(tmp_path, team_url):
    """One line from `sync` and from `doctor` (exit 1, no traceback, no password shown),
    for a URL libpq cannot parse too; the hook does not notice."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    a.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")
    for env, words in (({"PGPASSWORD": "not-the-password"}, "password authentication failed"),
                       ({"COSTHOOK_TEAM_URL": "postgresql://costhook@/team?host=/nonexistent/socket-dir"},
                        "cannot reach the team server"),
                       # an unclosed IPv6 bracket: urlsplit raised while the error was being shown
                       # (a traceback), and libpq's message quotes the whole URI, password included
                       ({"COSTHOOK_TEAM_URL": "postgresql://costhook:not-the-password@[::1/team"},
                        "cannot reach the team server")):
        proc = a.run("sync", check=False, env=env)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert words in proc.stderr and "not-the-password" not in proc.stderr + proc.stdout
        report = a.run("report", "--team", check=False, env=env)  # said once, as click says an error
        assert (report.returncode, report.stdout) == (1, "") and report.stderr.count("\n") == 1, report.stderr
        assert report.stderr.startswith("Error: ") and words in report.stderr and "not-the-password" not in report.stderr
        doctor = a.run("doctor", check=False, env=env)
        team_lines = [line for line in doctor.stdout.splitlines() if line.startswith("team ")]
        assert len(team_lines) == 1 and "PROBLEM" in team_lines[0] and words in team_lines[0], doctor.stdout
        assert "last sync failed" in doctor.stdout and "not-the-password" not in doctor.stdout
        hook = run_hook({"hook_event_name": "SessionEnd", "session_id": "s9", "cwd": str(tmp_path)}, env={**a.env, **env})
        assert hook.returncode == 0 and hook.stdout == b""
    config_with_password = a.config.read_text() + 'url = "postgresql://costhook:hunter2@/team"\n'
    a.config.write_text(config_with_password.replace("[team]\n", "[team]\n", 1))
    proc = a.run("sync", check=False)
    assert proc.returncode == 1 and "holds a password" in proc.stderr and "hunter2" not in proc.stderr


def test_a_newer_server_schema_is_never_written(tmp_path, team_url):
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    a.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")
    a.run("sync")
    with psycopg.connect(team_url, password=pgserver.PASSWORD, autocommit=True) as conn:
        conn.execute("INSERT INTO costhook.schema_version (version) VALUES (99)")
    a.transcript("s-new", [assistant("msg_new", session_id="s-new")])
    a.import_()
    proc = a.run("sync", check=False)
    assert proc.returncode == 1 and "schema is v99, newer than this costhook" in proc.stderr
    assert server_rows(team_url, "SELECT count(*) FROM costhook.calls") == [(16,)]  # nothing written
    doctor = a.run("doctor", check=False).stdout
    assert "newer than this costhook" in doctor


def test_kill_9_mid_push_leaves_no_partial_state(tmp_path, team_url):
    """A sync killed while it pushes a large backlog: the server's rollup still matches its
    rows exactly (each batch is one transaction), and the next sync completes exactly."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    lines = [assistant(f"msg_{i:06d}", session_id=f"s{i // 1000}", output_tokens=1 + i % 97,
                       timestamp=f"2026-11-{10 + i % 15:02d}T{i % 24:02d}:{i % 60:02d}:00.000Z",
                       content=[{"type": "tool_use", "id": f"t{i}", "name": ("Bash", "Read")[i % 2], "input": {}}])
             for i in range(120_000)]
    a.transcript("big", lines)
    a.import_()
    proc = subprocess.Popen([COSTHOOK, "sync"], env=a.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it once the first batch is on the server, the next in flight
        try:
            if server_rows(team_url, "SELECT count(*) FROM costhook.calls")[0][0] > 0:
                break
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the server notices the dropped connection and rolls its transaction back
    pushed = server_rows(team_url, "SELECT count(*) FROM costhook.calls")[0][0]
    assert 0 < pushed < 120_000 and pushed % 50_000 == 0, pushed  # whole batches only
    rollup_matches_calls(team_url)
    a.run("sync")
    assert a.report("--team")["totals"] == a.report()["totals"]
    assert server_rows(team_url, "SELECT count(*) FROM costhook.calls") == [(120_000,)]
    rollup_matches_calls(team_url)


def test_the_budget_contract_team_spend_plus_unpushed_calls(tmp_path, team_url):
    """What a team budget check reads without the network (docs/team.md): the team's spend
    as last pulled plus this machine's calls not yet pushed — new calls whole, a pushed
    call that grew by its growth only — is the team's exact spend (other machines: up to
    their last push)."""
    import datetime
    import sqlite3

    from costhook.store import team as local

    day = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    b = Machine(tmp_path / "b", team_url, "bob", "desk")
    a.transcript("sa", [assistant(f"msg_a{i}", session_id="sa", output_tokens=100 * (i + 1),
                                  timestamp=f"{day}T0{i}:00:00.000Z") for i in range(5)])
    a.import_()
    a.run("sync")
    b_calls = [assistant(f"msg_b{i}", session_id="sb", output_tokens=50 * (i + 1), timestamp=f"{day}T1{i}:00:00.000Z")
               for i in range(3)]
    b.transcript("sb", b_calls)
    b.import_()
    b.run("sync")
    # after the pull: A's five and B's three calls; then B records more without syncing:
    # a new call, and its first call grows (the same message streamed on)
    grown = assistant("msg_b0", session_id="sb", output_tokens=9000, timestamp=f"{day}T10:00:00.000Z")
    new = assistant("msg_b9", session_id="sb", output_tokens=777, timestamp=f"{day}T18:00:00.000Z")
    b.transcript("sb", [*b_calls, grown, new])
    b.import_()
    a.transcript("sa2", [assistant("msg_a9", session_id="sa2", timestamp=f"{day}T20:00:00.000Z")])
    a.import_()  # A's unpushed call: not in B's view (the stated bound)
    conn = sqlite3.connect(b.home / "costhook.db")
    since = f"{day}T00:00"
    seen_by_b = local.team_nanousd(conn, "global", "", since) + local.unpushed_nanousd(conn, f"{day}T00:00:00Z")
    conn.close()
    a.run("sync")
    b.run("sync")
    everything = a.report("--team", "--since", day, "--until", day, "--tz", "UTC")["totals"]
    a_unpushed = a.report("--session", "sa2", "--tz", "UTC")["totals"]["cost_usd"]
    assert seen_by_b == round((everything["cost_usd"] - a_unpushed) * 10**9)
    conn = sqlite3.connect(b.home / "costhook.db")
    assert local.unpushed_nanousd(conn, f"{day}T00:00:00Z") == 0  # all pushed and pulled back
    assert local.team_nanousd(conn, "global", "", since) == round(everything["cost_usd"] * 10**9)
    per_user = {u: local.team_nanousd(conn, "user", u, since) for u in ("ann", "bob")}
    assert sum(per_user.values()) == round(everything["cost_usd"] * 10**9) and all(per_user.values())
    conn.close()


def test_summary_top_and_budget_status_for_the_team(tmp_path, team_url):
    """`summary --team`, `top --team` and `budget status --team` are the local views over
    the team's rollup: two machines' calls together, the same JSON shape."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    budgets = ('[[budgets]]\nscope = "global"\nperiod = "monthly"\nlimit = 100\n'
               '[[budgets]]\nscope = "model:claude-opus-4-6"\nperiod = "monthly"\nlimit = 100\n')
    b = Machine(tmp_path / "b", team_url, "bob", "desk", extra=budgets)
    a.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")
    b.transcript("sb", [assistant(f"msg_b{i}", session_id="sb", output_tokens=1000, model="claude-opus-4-6",
                                  timestamp=f"2026-11-19T1{i}:00:00.000Z") for i in range(4)])
    b.import_()
    a.run("sync")
    b.run("sync")
    now = ["--now", "2026-11-19T18:00:00Z", "--tz", "UTC", "--format", "json"]
    mine_a, mine_b = (json.loads(m.run("summary", *now).stdout) for m in (a, b))
    team = json.loads(a.run("summary", "--team", *now).stdout)
    for name in ("today", "month", "all"):
        assert team["periods"][name]["requests"] == mine_a["periods"][name]["requests"] + mine_b["periods"][name]["requests"]
        assert round(team["periods"][name]["cost_usd"] * 10**9) == round(
            (mine_a["periods"][name]["cost_usd"] + mine_b["periods"][name]["cost_usd"]) * 10**9)
    top = json.loads(b.run("top", "--team", "--by", "model", "--period", "month", *now).stdout)
    models = {r["key"]: r["requests"] for r in top["rows"]}
    assert models["claude-opus-4-6"] == 4 and sum(models.values()) + top["others"].get("count", 0) >= 5
    assert b.run("top", "--team", "--by", "session", check=False).returncode == 2
    status = {r["id"]: r for r in json.loads(b.run("budget", "status", "--team", *now).stdout)}
    assert status["monthly-global"]["spent"] == team["periods"]["month"]["cost_usd"]
    mine = {r["id"]: r for r in json.loads(b.run("budget", "status", *now).stdout)}
    assert status["monthly-model-claude-opus-4-6"]["spent"] == mine["monthly-model-claude-opus-4-6"]["spent"] > 0
    assert mine["monthly-global"]["spent"] < status["monthly-global"]["spent"]


def test_a_call_folded_into_another_row_leaves_the_server_too(tmp_path, team_url):
    """A sidechain's replay of a call is pushed first; then the main-thread copy arrives
    and the ledger folds the two into one row (store.writes): the server drops the
    replay's row and its spend, so the team counts the response once."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    replay = assistant("msg_fold", request_id="req_side", session_id="sf", output_tokens=300, isSidechain=True)
    main = assistant("msg_fold", request_id="req_main", session_id="sf", output_tokens=300)
    a.transcript("sf", [replay])
    a.import_()
    a.run("sync")
    assert server_rows(team_url, "SELECT key FROM costhook.calls") == [("msg_fold:req_side",)]
    a.transcript("sf", [replay, main])
    a.import_()
    assert a.report()["totals"]["requests"] == 1
    a.run("sync")
    assert server_rows(team_url, "SELECT key FROM costhook.calls") == [("msg_fold:req_main",)]
    assert a.report("--team")["totals"] == a.report()["totals"]
    rollup_matches_calls(team_url)


def test_projects_leave_the_machine_as_their_git_remote_without_credentials(tmp_path, team_url):
    """project_name = "git-remote" (the default): the origin remote, normalised, with the
    token in its URL dropped; a folder without a repository goes by its name."""
    repo = tmp_path / "src" / "api"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "config").write_text('[core]\n\tbare = false\n[remote "origin"]\n'
                                          '\turl = https://ann:ghp_SECRET@github.com/Acme/api.git\n')
    plain = tmp_path / "src" / "notes"
    plain.mkdir()
    a = Machine(tmp_path / "a", team_url, "ann", "laptop", project_name="git-remote")
    a.transcript("s1", [assistant("msg_r1", session_id="s1", cwd=str(repo / "sub"))])
    a.transcript("s2", [assistant("msg_r2", session_id="s2", cwd=str(plain))])
    a.import_()
    a.run("sync")
    assert sorted(server_rows(team_url, "SELECT project FROM costhook.calls")) == [("github.com/Acme/api",), ("notes",)]
    dump = str(server_rows(team_url, "SELECT * FROM costhook.calls")) + str(server_rows(team_url, "SELECT * FROM costhook.sessions"))
    assert "SECRET" not in dump and str(tmp_path) not in dump


def test_sync_watch_keeps_pushing(tmp_path, team_url):
    """`costhook sync --watch` (a systemd or launchd unit's command) pushes what arrives."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop", extra="min_interval_seconds = 0.5\n")
    a.transcript("s1", [assistant("msg_w1", session_id="s1")])
    a.import_()
    proc = subprocess.Popen([COSTHOOK, "sync", "--watch"], env=a.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        def server_calls():
            try:
                return server_rows(team_url, "SELECT count(*) FROM costhook.calls")[0][0]
            except psycopg.errors.UndefinedTable:
                return 0

        for expected in (1, 2):
            if expected == 2:
                a.transcript("s2", [assistant("msg_w2", session_id="s2")])
                a.import_()
            deadline = time.time() + 60
            while server_calls() < expected and time.time() < deadline:
                time.sleep(0.2)
            assert server_calls() == expected
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "Pushed 1 call, 0 updated (and 1 session)" in out and "Traceback" not in err


def test_hostile_text_reaches_the_server_without_breaking_a_batch(tmp_path, team_url):
    """A NUL character (valid in JSON and SQLite, refused by PostgreSQL's text) in one call
    must not stall the whole batch: the call arrives, cleaned."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    a.transcript("s1", [assistant("msg_nul", session_id="s1", gitBranch="evil\u0000branch", model="claude-\u0000x"),
                        assistant("msg_ok", session_id="s1")])
    a.import_()
    proc = a.run("sync", check=False)
    assert proc.returncode == 0, proc.stderr
    rows = dict(server_rows(team_url, "SELECT key, git_branch FROM costhook.calls"))
    assert rows["msg_nul:req_msg_nul"] == "evilbranch" and len(rows) == 2
    assert a.report("--team")["totals"] == a.report()["totals"]


def test_text_copy_must_escape_and_odd_times_arrive_as_stored(tmp_path, team_url):
    """SQLite builds most calls' COPY lines unescaped (team/sync.py calls_batch): a value
    holding a tab, newline, CR, backslash or a literal \\N, and a time SQLite cannot vouch
    for, must still reach the server exactly as stored (times: parsed as Python does)."""
    import sqlite3

    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    a.transcript("s1", [assistant(f"msg_{i}", session_id="s1", timestamp=f"2026-11-20T10:0{i}:00.000Z")
                        for i in range(8)])
    a.import_()
    odd = {"msg_0": ("tab\there", "2026-11-20T10:00:00.000Z"), "msg_1": ("new\nline\r", "2026-11-20T12:00:00+02:00"),
           "msg_2": ("back\\slash", "2026-02-30T10:00:00.000Z"), "msg_3": ("\\N", "2026-11-20T10:03:00.500+00:00"),
           "msg_4": ("plain", "not a time"), "msg_5": (None, "2026-11-20T10:05:00Z"),
           "msg_6": ("ünïcode ✓", "2026-11-20T10:06:00.123456Z"), "msg_7": ("", None)}
    conn = sqlite3.connect(a.home / "costhook.db")
    with conn:
        for msg, (branch, ts) in odd.items():
            conn.execute("UPDATE requests SET git_branch = ?, timestamp = ? WHERE key = ?", (branch, ts, f"{msg}:req_{msg}"))
    conn.close()
    a.run("sync")
    got = {k: (b, ts) for k, b, ts in server_rows(
        team_url, "SELECT key, git_branch, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM costhook.calls")}
    want = {"tab\there": "2026-11-20 10:00:00.000000", "new\nline\r": "2026-11-20 10:00:00.000000",
            "back\\slash": None, "\\N": "2026-11-20 10:03:00.500000", "plain": None, None: "2026-11-20 10:05:00.000000",
            "ünïcode ✓": "2026-11-20 10:06:00.123456", "": None}
    assert {got[f"{m}:req_{m}"] for m in odd} == set(want.items())
    rollup_matches_calls(team_url)


def yesterdays_calls(machine: Machine, prefix: str, n: int, hour: int = 0) -> None:
    """`n` calls of session `prefix`, one an hour from `hour` yesterday (UTC), imported."""
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
    machine.transcript(prefix, [assistant(f"msg_{prefix}{i}", session_id=prefix, output_tokens=10 + i,
                                          timestamp=f"{day}T{(hour + i) % 24:02d}:00:00.000Z") for i in range(n)])
    machine.import_()


def team_spend(machine: Machine) -> list:
    """The machine's pulled team_spend rows that count, as rollup_rows gives the server's."""
    import sqlite3

    conn = sqlite3.connect(machine.home / "costhook.db")
    rows = conn.execute("SELECT dim, key, bucket, cost_nanousd, requests FROM team_spend WHERE requests <> 0").fetchall()
    conn.close()
    return sorted(rows)


def rollup_rows(url: str) -> list:
    return sorted(server_rows(url, """SELECT dim, key, to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI'),
                                             cost_nanousd, requests FROM costhook.spend WHERE requests <> 0"""))


def test_a_push_updates_rollup_rows_in_place_and_pulls_find_them(tmp_path, team_url):
    """Schema v2: the rollup has no index on a column a push changes, so its updates are
    HOT (in place, no index entries); which buckets each push changed is logged, and an
    incremental pull — across the migration from v1 too — brings the changed rows."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    b = Machine(tmp_path / "b", team_url, "bob", "desk")

    yesterdays_calls(a, "a", 30)
    a.run("sync")
    yesterdays_calls(b, "b", 30)  # the same hours: B's push updates A's global, model, tool rows
    b.run("sync")
    hot = 0
    for _ in range(50):  # statistics reach the view once the backend reports them
        hot = server_rows(team_url, "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'costhook.spend'::regclass")[0][0]
        if hot:
            break
        time.sleep(0.1)
    assert hot > 0
    indexed = server_rows(team_url, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'costhook' AND tablename = 'spend'")
    assert not any("(rev)" in d for d, in indexed), indexed
    # the server back at v1 (no log, spend.rev indexed) before A pulled B's push: A's next
    # sync migrates to v2, whose log is rebuilt from spend.rev, and its pull finds B's rows
    with psycopg.connect(team_url, password=pgserver.PASSWORD, autocommit=True) as conn:
        conn.execute("""DROP TABLE costhook.spend_revs; DROP TABLE costhook.spend_revs_pruned; DROP INDEX costhook.spend_by_bucket;
                        CREATE INDEX spend_by_rev ON costhook.spend (rev); DELETE FROM costhook.schema_version WHERE version > 1""")
    a.run("sync")
    assert server_rows(team_url, "SELECT max(version) FROM costhook.schema_version") == [(3,)]
    assert team_spend(a) == rollup_rows(team_url)
    yesterdays_calls(b, "c", 5)
    b.run("sync")
    a.run("sync")
    assert team_spend(a) == rollup_rows(team_url)


def test_the_pull_log_is_pruned_and_a_pull_from_before_reads_the_whole_window(tmp_path, team_url):
    """`spend_revs` (one row per push) keeps a week: a sync prunes what is older and notes
    up to which revision. A machine whose last pull is older than that reads the team's
    whole window again, so it still gets every change (an incremental pull would miss the
    buckets only the pruned pushes changed)."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    b = Machine(tmp_path / "b", team_url, "bob", "desk")

    yesterdays_calls(a, "a", 3)
    a.run("sync")
    b.run("sync")  # B pulls: its revision is A's first push
    yesterdays_calls(a, "c", 3, hour=5)  # buckets only this push changes
    a.run("sync")
    logged = server_rows(team_url, "SELECT count(*), max(rev) FROM costhook.spend_revs")[0]
    assert logged[0] == 2
    with psycopg.connect(team_url, password=pgserver.PASSWORD, autocommit=True) as conn:
        conn.execute("UPDATE costhook.spend_revs SET at = now() - interval '8 days'")
    yesterdays_calls(a, "d", 1, hour=12)
    a.run("sync")  # prunes the two week-old revisions
    kept = server_rows(team_url, "SELECT rev FROM costhook.spend_revs")
    assert len(kept) == 1 and kept[0][0] > logged[1]
    assert server_rows(team_url, "SELECT upto FROM costhook.spend_revs_pruned") == [(logged[1],)]
    assert team_spend(b) != rollup_rows(team_url)
    b.run("sync")  # its revision is older than what was pruned: the whole window
    assert team_spend(b) == rollup_rows(team_url)
    assert {k for d, k, *_ in team_spend(b) if d == "machine"} == {"laptop"}
    yesterdays_calls(a, "e", 1, hour=20)
    a.run("sync")
    b.run("sync")  # incremental again
    assert team_spend(b) == rollup_rows(team_url)
    rollup_matches_calls(team_url)


def test_a_push_finds_its_calls_by_key_not_by_reading_the_whole_server(tmp_path, team_url):
    """A push reads the old rows of its batch by key (an index lookup per call): the cost
    of a push must not grow with the team's history. Before, the staging table (never
    analysed) was hash-joined with the whole of `costhook.calls`, every row of it read."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    a.run("sync")  # the schema
    with psycopg.connect(team_url, password=pgserver.PASSWORD, autocommit=True) as conn:
        conn.execute("""INSERT INTO costhook.calls (key, agent, origin_user, origin_machine, bucket)
                        SELECT 'history-' || g, 'claude', 'bob', 'desk', now() FROM generate_series(1, 30000) g""")
        conn.execute("ANALYZE costhook.calls")

    def stats():  # (rows read by scans, rows inserted)
        return server_rows(team_url, "SELECT coalesce(seq_tup_read, 0), n_tup_ins FROM pg_stat_user_tables "
                                     "WHERE relid = 'costhook.calls'::regclass")[0]

    before = stats()
    a.transcript("s", [assistant(f"msg_{i}", request_id=f"req_{i}", output_tokens=10 + i,
                                 timestamp=f"2026-11-20T{i % 24:02d}:{i % 60:02d}:00.000Z") for i in range(2000)])
    a.import_()
    assert a.run("sync").stdout.startswith("Pushed 2,000 calls")
    after = stats()
    for _ in range(100):  # a backend's statistics reach the view when it ends
        if after[1] - before[1] >= 2000:
            break
        time.sleep(0.1)
        after = stats()
    assert after[1] - before[1] >= 2000
    read = after[0] - before[0]
    assert read < 30000, f"the push read {read:,} rows of costhook.calls"


def test_an_openclaw_session_end_starts_a_sync_too(tmp_path, team_url):
    """OpenClaw's session_end, like Claude Code's SessionEnd, hands the team sync to a
    detached process (the hook itself answers at once, without psycopg)."""
    a = Machine(tmp_path / "a", team_url, "ann", "laptop")
    a.run("import", "--claude-dir", str(EXAMPLES / "claude"), "-q")
    event = {"hook": "session_end", "hook_event_name": "session_end", "plugin": "costhook",
             "ctx": {"agentId": "main", "sessionKey": "agent:main:main", "sessionId": "oc-s1"},
             "event": {"sessionId": "oc-s1", "sessionKey": "agent:main:main", "reason": "idle"}}
    env = {**a.env, "OPENCLAW_STATE_DIR": str(tmp_path / "oc")}
    proc = run_hook(event, args=("--agent", "openclaw"), env=env)
    assert proc.returncode == 0 and proc.stdout == b""
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if server_rows(team_url, "SELECT count(*) FROM costhook.calls")[0][0] == 16:
                break
        except psycopg.errors.UndefinedTable:
            pass
        time.sleep(0.3)
    else:
        pytest.fail("no sync after OpenClaw's session_end")
