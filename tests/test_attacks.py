"""Promises held against someone who did not write them (issue 12): a busy database does
not turn a spent blocking budget into "allow", nothing from the agent's working directory
runs, a prompt's text never becomes a "skill", the machine's zone keeps its DST.

Each test failed on bc9f205 (the code before these fixes) and passes now."""

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import COSTHOOK, db_rows, run_hook
from test_budgets import event, write_calls

UTC = timezone.utc
HOOK_TIMEOUT_S = 5  # what `costhook install` registers for UserPromptSubmit and PreToolUse
DEADLINE_S = 2.5  # a hook deciding a budget answers well within it, whatever holds the database


def now_stamp(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def hold_write_lock(db_path: str, seconds: float = 30) -> subprocess.Popen:
    """Another process holding costhook's write lock, as an import's transaction does."""
    code = ("import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(float(sys.argv[2]))")
    holder = subprocess.Popen([sys.executable, "-c", code, db_path, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def timed_hook(data: dict, args=()) -> tuple[dict | None, float]:
    started = time.monotonic()
    proc = run_hook(data, args=args, timeout=HOOK_TIMEOUT_S * 3)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    return (json.loads(proc.stdout) if proc.stdout else None), elapsed


# ------------------------------------------------------- budgets, busy database ----


@pytest.fixture
def spent(home, tmp_path):
    """A session whose stored spend ($0.003) is over a $0.002 daily blocking budget."""
    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m1", 1000, now_stamp())])
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = "0.002"\naction = "block"\n')
    first, _ = timed_hook(event(transcript, "UserPromptSubmit", prompt="x"))  # ingests the call, records the alert
    assert first["decision"] == "block"
    return transcript


def test_a_busy_database_never_turns_a_spent_budget_into_allow(home, spent):
    """Another process holds the write lock for 30 s (an import, a catch-up, another
    session): the hooks cannot catch up or record anything, and still block in time."""
    write_calls(spent, [("m2", 1000, now_stamp(1))])  # something new to catch up: it must wait for the lock
    holder = hold_write_lock(os.environ["COSTHOOK_DB"])
    try:
        prompt, t_prompt = timed_hook(event(spent, "UserPromptSubmit", prompt="more"))
        tool, t_tool = timed_hook(event(spent, "PreToolUse", tool_name="Bash", tool_use_id="toolu_m2"))
        # PostToolUse decides after a tool during which a sub-agent spent (after any other
        # tool it records in the background: the tool's PreToolUse already judged the spend)
        after, t_after = timed_hook(event(spent, "PostToolUse", tool_name="Agent", tool_use_id="toolu_m2"))
    finally:
        holder.kill()
        holder.wait()
    assert prompt["decision"] == "block", prompt
    assert tool["continue"] is False and tool["hookSpecificOutput"]["permissionDecision"] == "deny", tool
    assert after["continue"] is False, after
    assert max(t_prompt, t_tool, t_after) < DEADLINE_S, (t_prompt, t_tool, t_after)
    # What could not be written is not lost: the next hook catches up.
    timed_hook(event(spent, "UserPromptSubmit", prompt="again"))
    assert db_rows("SELECT count(*) AS n FROM requests")[0]["n"] == 2


@pytest.mark.slow
def test_a_large_import_never_turns_a_spent_budget_into_allow(home, spent, tmp_path):
    """`costhook import` of a large history holds the write lock batch after batch: every
    prompt and tool asked meanwhile is still blocked, each within the deadline."""
    from pathlib import Path

    tree = tmp_path / "tree"
    subprocess.run([sys.executable, "-m", "tests.benchmarks.generate", "tree", str(tree), "--calls", "50000"],
                   cwd=Path(__file__).resolve().parent.parent, check=True, capture_output=True, timeout=300)
    importer = subprocess.Popen([COSTHOOK, "import", "--claude-dir", str(tree), "-q"])
    asked = []
    try:
        while importer.poll() is None:
            asked.append(("prompt",) + timed_hook(event(spent, "UserPromptSubmit", prompt="x")))
            asked.append(("tool",) + timed_hook(event(spent, "PreToolUse", tool_name="Bash", tool_use_id="toolu_m1")))
    finally:
        importer.wait(timeout=300)
    assert importer.returncode == 0
    assert len(asked) >= 4, asked  # the hooks did run while the import wrote
    for kind, out, elapsed in asked:
        blocked = out and (out.get("decision") == "block" or out.get("continue") is False)
        assert blocked and elapsed < DEADLINE_S, (kind, out, elapsed)


def test_the_openclaw_gate_holds_on_a_busy_database(home, tmp_path):
    from test_openclaw_hook import assistant, hook, payload

    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "session"\nperiod = "session"\nlimit = 0.05\naction = "block"\n')
    for index in range(3):
        message = assistant(index)
        message["timestamp"] = int(time.time() * 1000) - 1000 + index  # today
        assert hook(payload("message", {"message": message})).returncode == 0
    assert db_rows("SELECT count(*) AS n FROM requests")[0]["n"] == 3
    holder = hold_write_lock(os.environ["COSTHOOK_DB"])
    try:
        started = time.monotonic()
        proc = hook(payload("before_tool_call", {"toolName": "exec", "toolCallId": "toolu_busy"}))
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert json.loads(proc.stdout)["block"] is True
    assert elapsed < 2.0, elapsed  # the plugin gives a gate 3 s, then lets the tool run


# ------------------------------------------------------- code from the project ----


def test_detached_jobs_never_import_code_from_the_working_directory(home, tmp_path):
    """A project holding its own `costhook` package (or module): the hook's detached job
    (here the dashboard refresh after a session) must run costhook, not the project's."""
    project = tmp_path / "project"
    marker = tmp_path / "project-code-ran"
    (project / "costhook").mkdir(parents=True)
    planted = f"open({str(marker)!r}, 'w').write('ran')\n"
    (project / "costhook" / "__init__.py").write_text(planted)
    (project / "costhook" / "__main__.py").write_text(planted)
    (project / "costhook.py").write_text(planted)
    vault = tmp_path / "vault"
    vault.mkdir()
    (tmp_path / "config.toml").write_text(f'[dashboard]\nvault = "{vault}"\nrefresh_on_session_end = true\n')
    proc = subprocess.run([COSTHOOK, "hook"], input=json.dumps({"hook_event_name": "SessionEnd", "session_id": "s-1",
                          "cwd": str(project), "reason": "exit"}).encode(), cwd=project, capture_output=True, timeout=30)
    assert proc.returncode == 0
    note = vault / "costhook" / "Cost dashboard.md"
    deadline = time.monotonic() + 20
    while not note.exists() and not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    assert not marker.exists(), "the project's own costhook code ran"
    assert note.exists(), "the detached dashboard refresh did not run"


# ------------------------------------------------------- prompt text --------------


@pytest.mark.parametrize("content, skill", [
    ("<command-name>/deploy</command-name>", "/deploy"),
    ("<command-message>review is running…</command-message>\n<command-name>/review</command-name>\n"
     "<command-args>pr 12</command-args>", "/review"),
    ("<command-name>frontend-design:ship</command-name>", "frontend-design:ship"),
    # Text that merely mentions the tag is a prompt, and a prompt is never stored.
    ("please explain what <command-name>my secret plan for the merger</command-name> does", None),
    ("summarise: <command-name>/deploy</command-name>", None),
    ("<command-name>/deploy now with the production password hunter2", None),  # no closing tag
    ("<command-name>two words</command-name>", None),
    ("<command-name><img src=https://evil.example/x></command-name>", None),
    ("<command-name>" + "x" * 101 + "</command-name>", None),
])
def test_only_claude_codes_command_wrapper_names_a_skill(home, tmp_path, content, skill):
    from transcript_lines import user

    transcript = tmp_path / "s-1.jsonl"
    transcript.write_text(user(content))
    write_calls(transcript, [("m1", 10, now_stamp())])
    assert run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_m1")).returncode == 0
    assert db_rows("SELECT skill FROM requests") == [{"skill": skill}]


# ------------------------------------------------------- the machine's zone -------


def test_without_a_configured_timezone_the_machines_zone_keeps_its_dst(home, tmp_path):
    """TZ=America/New_York and no `timezone` in the config: a call at 00:30 local time is
    on that local day, in summer and in winter, whatever today's offset is."""
    zone = ZoneInfo("America/New_York")
    now = datetime.now(zone)
    # A past day on the other side of DST from today's offset.
    day = next(now - timedelta(days=n) for n in range(30, 366) if (now - timedelta(days=n)).utcoffset() != now.utcoffset())
    other = day.replace(hour=0, minute=30, second=0, microsecond=0)
    local_day = other.date().isoformat()
    stamp = other.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m1", 1000, stamp)])
    env = {**os.environ, "TZ": "America/New_York"}
    assert run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_m1"), env=env).returncode == 0
    report = subprocess.run([COSTHOOK, "report", "--by", "day", "--format", "json"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert [row["key"] for row in json.loads(report.stdout)["rows"]] == [local_day]


@pytest.mark.parametrize("name, skill", [("pdf", "pdf"), ("frontend-design:ship", "frontend-design:ship"),
                                         ("<img src=https://evil.example/x>", None), ("=HYPERLINK(\"x\")", None)])
def test_a_skill_the_model_names_is_kept_only_with_command_syntax(home, tmp_path, name, skill):
    """The model writes the Skill tool's input: its own output is outside text too."""
    from transcript_lines import assistant, tool_use

    transcript = tmp_path / "s-1.jsonl"
    transcript.write_text(assistant("m0", timestamp=now_stamp(), content=[tool_use("Skill", "toolu_s", skill=name)]))
    write_calls(transcript, [("m1", 10, now_stamp(1))])
    assert run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_m1")).returncode == 0
    assert db_rows("SELECT skill FROM requests WHERE message_id = 'm1'") == [{"skill": skill}]


# ------------------------------------------------------- hostile numbers ----------


def test_one_absurd_call_is_skipped_and_never_blocks_the_others(home, tmp_path):
    """`web_search_requests: 999999999999` priced beyond SQLite's integers: the batch rolled
    back, the transcript was never read again and `import` ended in a traceback having
    recorded none of the valid calls. Now that call is skipped and counted as malformed."""
    from transcript_lines import assistant

    projects = tmp_path / "claude" / "projects" / "-home-dev-acme"
    projects.mkdir(parents=True)
    for n in range(20):
        lines = [assistant(f"m{n}-{i}", session_id=f"s{n}", timestamp=now_stamp(), input_tokens=100) for i in range(5)]
        if n == 7:
            searches = json.loads(assistant("absurd", session_id="s7", timestamp=now_stamp()))
            searches["message"]["usage"]["server_tool_use"] = {"web_search_requests": 999_999_999_999}
            lines.insert(2, json.dumps(searches) + "\n")
            lines.insert(3, assistant("huge", session_id="s7", timestamp=now_stamp(), model="claude-opus-4-5-20251101",
                                      output_tokens=900_000_000_000))
        (projects / f"s{n}.jsonl").write_text("".join(lines))
    proc = subprocess.run([COSTHOOK, "import", "--claude-dir", str(tmp_path / "claude")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "Skipped 2 malformed lines." in proc.stdout, proc.stdout
    assert db_rows("SELECT count(*) AS n FROM requests")[0]["n"] == 100
    # The hook reads the same transcript: the absurd lines do not stall it either.
    again = tmp_path / "s7.jsonl"
    again.write_text((projects / "s7.jsonl").read_text())
    write_calls(again, [("after", 10, now_stamp(1))], session="s7")
    assert run_hook(event(again, "PostToolUse", tool_name="Bash", tool_use_id="toolu_after")).returncode == 0
    assert db_rows("SELECT count(*) AS n FROM requests WHERE message_id = 'after'")[0]["n"] == 1
    assert not (home / "errors.log").exists()


# ------------------------------------------------------- other local users --------


def test_a_home_others_can_write_to_is_refused_with_a_clear_message(home, tmp_path):
    """Another user could plant the database (or a config cache) in it: refuse, as ssh does."""
    home.mkdir(parents=True)
    os.chmod(home, 0o777)
    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m1", 1000, now_stamp())])
    proc = run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_m1"))
    assert (proc.returncode, proc.stdout) == (0, b"")  # the agent goes on
    assert not (home / "costhook.db").exists() and not (home / "errors.log").exists()
    report = subprocess.run([COSTHOOK, "report"], capture_output=True, text=True, timeout=30)
    assert report.returncode == 1 and "Traceback" not in report.stderr
    assert "is writable by others" in report.stderr and "chmod go-w" in report.stderr, report.stderr


def test_a_symlink_at_the_database_path_is_never_followed(home, tmp_path):
    """It would make costhook write its schema (and the user's rows) into another file."""
    import sqlite3

    victim = tmp_path / "victim.sqlite"
    sqlite3.connect(victim).execute("CREATE TABLE mine (x)").connection.commit()
    before = victim.read_bytes()
    home.mkdir(parents=True, mode=0o700)
    (home / "costhook.db").symlink_to(victim)
    report = subprocess.run([COSTHOOK, "report"], capture_output=True, text=True, timeout=30)
    assert report.returncode == 1 and "is a symlink" in report.stderr, report.stderr
    assert victim.read_bytes() == before


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_config_that_belongs_to_another_user_is_refused(home, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 5\n')
    os.chown(config, 4242, 4242)
    proc = subprocess.run([COSTHOOK, "budget", "list"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "belongs to another user" in proc.stderr, proc.stderr


def test_a_config_in_a_folder_others_can_write_to_is_refused(home, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    config = shared / "config.toml"
    config.write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 5\n')
    proc = subprocess.run([COSTHOOK, "budget", "list"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "COSTHOOK_CONFIG": str(config)})
    assert proc.returncode == 1 and "writable by others" in proc.stderr, proc.stderr


def test_the_config_cache_never_outranks_the_config(home, spent, tmp_path):
    """The config replaced by one of the same size and modification time (a copy, an
    editor's save within one tick): the cache of the old file must not stand in for it."""
    config = tmp_path / "config.toml"
    old = config.stat()
    replacement = tmp_path / "config.new"
    text = config.read_text().replace('action = "block"', 'action = "warn" ')
    assert len(text) == old.st_size
    replacement.write_text(text)
    os.utime(replacement, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(replacement, config)
    out, _ = timed_hook(event(spent, "UserPromptSubmit", prompt="x"))
    assert out is None or "decision" not in out  # warn: the prompt goes through


# ------------------------------------------------------- budget ids ---------------


def budget_cli(*args, **kw):
    return subprocess.run([COSTHOOK, "budget", *args], capture_output=True, text=True, timeout=30, **kw)


@pytest.mark.parametrize("first, second", [("project:/home/dev/acme-api", "project:/home/dev/acme/api"),
                                           ("skill:deploy prod", "skill:deploy-prod")])
def test_two_scopes_never_share_a_budget_id(home, first, second):
    """The second `budget set` silently replaced a $10 blocking budget with a $50 warning."""
    a = budget_cli("set", "--scope", first, "--period", "daily", "--limit", "10", "--action", "block")
    b = budget_cli("set", "--scope", second, "--period", "daily", "--limit", "50")
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout.strip() != b.stdout.strip()
    listed = json.loads(budget_cli("list", "--format", "json").stdout)
    assert sorted((x["scope"], x["limit"], x["action"]) for x in listed) == sorted(
        [(first, "10", "block"), (second, "50", "warn")])


def test_an_explicit_id_never_replaces_another_scope_silently(home):
    budget_cli("set", "--scope", "global", "--period", "daily", "--limit", "10", "--action", "block", "--id", "cap")
    again = budget_cli("set", "--scope", "project:acme", "--period", "monthly", "--limit", "50", "--id", "cap")
    assert again.returncode == 0 and "replaced the budget cap that was daily global" in again.stderr, again.stderr


def test_a_broken_config_keeps_the_budgets_it_last_had(home, spent, tmp_path):
    """A duplicate id (or any typo) made the file invalid and the hook ran with no budgets."""
    config = tmp_path / "config.toml"
    config.write_text(config.read_text() * 2)  # the same budget twice: two budgets share an id
    for _ in range(3):
        out, _ = timed_hook(event(spent, "UserPromptSubmit", prompt="x"))
        assert out and out["decision"] == "block", out
    lines = (home / "errors.log").read_text().splitlines()
    assert len(lines) == 1 and "share the id" in lines[0], lines


def test_a_missing_named_config_keeps_the_budgets_it_last_had_and_is_logged_once(home, spent, tmp_path):
    """COSTHOOK_CONFIG names a file that is gone (moved, a typo in the variable): the hook
    ran with no budgets and said nothing."""
    (tmp_path / "config.toml").unlink()
    for _ in range(3):
        out, _ = timed_hook(event(spent, "UserPromptSubmit", prompt="x"))
        assert out and out["decision"] == "block", out
    lines = (home / "errors.log").read_text().splitlines()
    assert len(lines) == 1 and "COSTHOOK_CONFIG names" in lines[0] and "does not exist" in lines[0], lines


@pytest.mark.parametrize("args", [["budget", "list"], ["budget", "status"], ["report"], ["summary"], ["doctor"]],
                         ids=" ".join)
def test_a_missing_named_config_is_reported_by_the_cli(home, tmp_path, args):
    missing = tmp_path / "nowhere" / "config.toml"
    proc = subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COSTHOOK_CONFIG": str(missing)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"COSTHOOK_CONFIG names {missing}, which does not exist" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and not missing.parent.exists()


# ------------------------------------------------------- overlapping reads --------


def test_a_slower_read_of_the_same_transcript_never_takes_the_skill_back(home, tmp_path):
    """Two ingests of one transcript overlap: the one that read less commits last. The
    cursor kept the larger offset but took the older reader state, so calls made later
    under a Skill lost it."""
    from transcript_lines import assistant, tool_use

    from costhook.agents.claude import ingest
    from costhook.store import db

    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m00", 10, now_stamp())])
    conn = db.connect()
    slow = list(ingest.read_chunks(ingest.plan(conn, str(transcript))))  # one reader got this far...
    with open(transcript, "a") as f:
        f.write(assistant("m0", timestamp=now_stamp(), content=[tool_use("Skill", "toolu_s", skill="deploy")]))
    ingest.ingest_file(conn, str(transcript))  # ...another read on, past the Skill call
    ingest.commit(conn, slow, lambda record: (0, "computed"), ingest.IngestResult(str(transcript)))  # the slow one ends last
    write_calls(transcript, [("m1", 10, now_stamp(1))])
    ingest.ingest_file(conn, str(transcript))
    assert db_rows("SELECT skill FROM requests WHERE message_id = 'm1'") == [{"skill": "deploy"}]


# ------------------------------------------------------- the session's project ----


def test_a_project_budget_still_applies_after_cd(home, tmp_path):
    """With the README's own `project:acme-api`, after the agent moved into acme-api/src,
    every tool was allowed: calls were stored under …/src and the hook asked for …/src."""
    root, src = "/home/dev/acme-api", "/home/dev/acme-api/src"
    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m1", 1000, now_stamp())], cwd=root)
    write_calls(transcript, [(f"m{n}", 1000, now_stamp(n)) for n in range(2, 6)], cwd=src)
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "project:acme-api"\nperiod = "daily"\n'
                                          'limit = "0.010"\naction = "block"\n')
    data = event(transcript, "PreToolUse", tool_name="Bash", tool_use_id="toolu_m5", cwd=src)
    proc = run_hook(data, env={"CLAUDE_PROJECT_DIR": root})
    out = json.loads(proc.stdout) if proc.stdout else None
    assert out and out["hookSpecificOutput"]["permissionDecision"] == "deny", out  # $0.015 of $0.010
    status = json.loads(subprocess.run([COSTHOOK, "budget", "status", "--format", "json"], capture_output=True,
                                       text=True, timeout=30).stdout)
    assert status[0]["spent"] == 0.015, status
    report = json.loads(subprocess.run([COSTHOOK, "report", "--by", "project", "--format", "json"], capture_output=True,
                                       text=True, timeout=30).stdout)
    assert [row["key"] for row in report["rows"]] == [root]


# ------------------------------------------------------- the overshoot bound ------


def test_the_overshoot_bound_is_one_call_per_running_agent_thread(home, tmp_path):
    """One session whose main thread and 3 sub-agents run at once, each calling the API and
    asking for tools: a blocking budget is passed by at most one call per running thread
    (each thread's call in flight when the budget is reached), not one per session.
    README (Budgets) and docs/how-it-works.md ("Overshoot bound") state this; before, it claimed one call per session."""
    import threading

    from test_budgets import CALL_TOKENS, NANO_PER_INPUT

    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "session"\nperiod = "session"\nlimit = "0.0200"\n'
                                          'action = "block"\n')
    main = tmp_path / "projects" / "p" / "sess.jsonl"
    main.parent.mkdir(parents=True)
    main.write_text("")
    threads_n = 4
    made = {}

    def agent(agent_id):
        own = main.parent / "sess" / "subagents" / f"agent-{agent_id}.jsonl" if agent_id else main
        own.parent.mkdir(parents=True, exist_ok=True)
        for i in range(50):
            mid = f"{agent_id or 'main'}-{i}"
            write_calls(own, [(mid, CALL_TOKENS, now_stamp())], session="sess")
            made[agent_id] = i + 1
            data = event(main, "PreToolUse", session_id="sess", tool_use_id=f"toolu_{mid}", tool_name="Bash")
            if agent_id:
                data["agent_id"], data["agent_type"] = agent_id, "general-purpose"
            out = run_hook(data, timeout=30).stdout
            if out and json.loads(out).get("continue") is False:
                return

    runners = [threading.Thread(target=agent, args=(f"a{n}" if n else None,)) for n in range(threads_n)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=120)
    spent = db_rows("SELECT sum(cost_nanousd) AS c FROM requests WHERE session_id = 'sess'")[0]["c"]
    limit, call = 20_000_000, CALL_TOKENS * NANO_PER_INPUT
    assert sum(made.values()) * call == spent  # every call made was counted
    assert limit <= spent < limit + threads_n * call, (spent, made)
