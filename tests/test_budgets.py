"""Budgets: calendar periods in the user's zone, scopes, decisions, hook outputs, overshoot."""

import json
import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import db_rows, run_hook
from transcript_lines import assistant, tool_use

from costhook import timeframe
from costhook import budgets
from costhook.store import db
from costhook.budgets import Context
from costhook.timeframe import period_bounds
from costhook.config.model import validate_data

UTC = timezone.utc
SONNET = "claude-sonnet-4-5-20250929"  # $3 per million input tokens = 3,000 nano-USD per token
NANO_PER_INPUT = 3_000


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ------------------------------------------------------------------ periods ------


@pytest.mark.parametrize(
    "period, now, zone, key, start, end",
    [
        ("daily", "2026-11-22T12:00:00", "UTC", "2026-11-22", "2026-11-22T00:00:00", "2026-11-23T00:00:00"),
        # Berlin: 23:30 UTC is already tomorrow (UTC+1 in winter).
        ("daily", "2026-11-22T23:30:00", "Europe/Berlin", "2026-11-23", "2026-11-22T23:00:00", "2026-11-23T23:00:00"),
        # Spring forward (2026-03-29): a 23-hour day.
        ("daily", "2026-03-29T12:00:00", "Europe/Berlin", "2026-03-29", "2026-03-28T23:00:00", "2026-03-29T22:00:00"),
        # Fall back (2026-10-25): a 25-hour day.
        ("daily", "2026-10-25T12:00:00", "Europe/Berlin", "2026-10-25", "2026-10-24T22:00:00", "2026-10-25T23:00:00"),
        # Half-hour zone: the day starts at 18:30 UTC.
        ("daily", "2026-11-22T19:00:00", "Asia/Kolkata", "2026-11-23", "2026-11-22T18:30:00", "2026-11-23T18:30:00"),
        ("monthly", "2026-01-31T23:59:59", "UTC", "2026-01", "2026-01-01T00:00:00", "2026-02-01T00:00:00"),
        ("monthly", "2026-12-31T12:00:00", "UTC", "2026-12", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
        ("monthly", "2028-02-29T12:00:00", "UTC", "2028-02", "2028-02-01T00:00:00", "2028-03-01T00:00:00"),
        # New York: 03:00 UTC on March 1st is still February locally.
        ("monthly", "2026-03-01T03:00:00", "America/New_York", "2026-02", "2026-02-01T05:00:00", "2026-03-01T05:00:00"),
        # ISO weeks start on Monday; 2026 has a week 53.
        ("weekly", "2026-11-22T12:00:00", "UTC", "2026-W47", "2026-11-16T00:00:00", "2026-11-23T00:00:00"),
        ("weekly", "2026-12-31T12:00:00", "UTC", "2026-W53", "2026-12-28T00:00:00", "2027-01-04T00:00:00"),
    ],
)
def test_period_bounds(period, now, zone, key, start, end):
    got_key, got_start, got_end = period_bounds(period, at(now), ZoneInfo(zone))
    assert (got_key, got_start, got_end) == (key, at(start), at(end))


@pytest.mark.parametrize("name", ["UTC", "Etc/UTC"])
def test_utc_zone_needs_no_zoneinfo_and_gives_the_same_periods(name):
    assert timeframe.local_zone(name) is UTC
    for period in ("daily", "weekly", "monthly"):
        for now in ("2026-11-22T23:59:59", "2026-12-31T00:00:00", "2028-02-29T12:00:00"):
            assert period_bounds(period, at(now), timeframe.local_zone(name)) == period_bounds(period, at(now), ZoneInfo(name))


def test_bucket_floor_is_fifteen_minutes():
    assert timeframe.bucket(at("2026-11-22T18:44:59")) == "2026-11-22T18:30"
    assert timeframe.bucket(at("2026-11-22T18:45:00")) == "2026-11-22T18:45"


# ------------------------------------------------------------------ scopes -------


@pytest.mark.parametrize(
    "scope, ctx, expected",
    [
        ("global", Context(), True),
        ("session", Context(session_id="s"), True),
        ("project:/home/dev/acme-api", Context(project="/home/dev/acme-api/src"), True),
        ("project:/home/dev/acme-api", Context(project="/home/dev/acme-api-v2"), False),
        ("project:acme-api", Context(project="/home/dev/acme-api"), True),
        ("project:acme-api", Context(project="/home/dev/other"), False),
        ("project:acme-api", Context(project=None), False),
        ("model:claude-opus-4-5", Context(model="claude-opus-4-5-20251101"), True),
        ("model:claude-opus-4-5", Context(model="claude-opus-4-5"), True),
        ("model:claude-opus-4", Context(model="claude-opus-4-5-20251101"), True),
        ("model:claude-opus-4-5", Context(model="claude-sonnet-4-5"), False),
        ("model:claude-opus-4-5", Context(model=None), False),
        ("agent:Explore", Context(agent_type="Explore"), True),
        ("agent:Explore", Context(agent_type=None), False),
        ("skill:/review", Context(skill="/review"), True),
        ("cron:nightly", Context(cron_job="nightly"), True),
        ("cron:nightly", Context(), False),
    ],
)
def test_scope_applies(scope, ctx, expected):
    assert budgets.applies({"scope": scope}, ctx) is expected


# ------------------------------------------------------------------ decisions ----


def make_budgets(*entries) -> list:
    return validate_data({"budgets": list(entries)})["budgets"]


def write_calls(path, calls, session="s-1", cwd="/home/dev/acme-api"):
    """calls: list of (message id, input tokens, timestamp[, model])."""
    with open(path, "a") as f:
        for call in calls:
            mid, tokens, stamp = call[:3]
            model = call[3] if len(call) > 3 else SONNET
            f.write(assistant(mid, session_id=session, model=model, input_tokens=tokens, output_tokens=0,
                              timestamp=stamp, cwd=cwd, content=[tool_use("Bash", f"toolu_{mid}")]))


@pytest.fixture
def conn(home):
    return db.connect()


def ingest(conn, path):
    from costhook.agents.claude import ingest as ing

    ing.ingest_file(conn, str(path))


def test_spend_is_exact_and_period_bound(conn, tmp_path):
    path = tmp_path / "s-1.jsonl"
    write_calls(path, [("m1", 1000, "2026-11-21T23:59:00.000Z"), ("m2", 2000, "2026-11-22T00:00:00.000Z"),
                       ("m3", 4000, "2026-11-22T10:00:00.000Z", "mystery-model")])
    ingest(conn, path)
    daily, tokens = make_budgets(
        {"scope": "global", "period": "daily", "limit": 1},
        {"scope": "project:acme-api", "period": "daily", "tokens": 10_000},
    )
    now = at("2026-11-22T12:00:00")
    status = budgets.spend(conn, daily, Context(session_id="s-1"), now, ZoneInfo("UTC"))
    assert (status.spent, status.limit, status.unpriced) == (2000 * NANO_PER_INPUT, 10**9, 1)
    assert "(+1 unpriced calls not counted)" in status.message()
    assert budgets.spend(conn, tokens, Context(), now, ZoneInfo("UTC")).spent == 6000
    # The day before, in Berlin, 23:59 UTC already belongs to the 22nd.
    berlin = budgets.spend(conn, daily, Context(), now, ZoneInfo("Europe/Berlin"))
    assert berlin.spent == 3000 * NANO_PER_INPUT


def test_message_format():
    status = budgets.Status(
        {"period": "daily", "scope": "global", "limit_nanousd": 10 * 10**9}, "2026-11-22",
        8_120_000_000, 10 * 10**9, 0, None, None,
    )
    assert status.message() == "Budget daily/global: $8.12 of $10.00 (81%) — $1.88 left"
    over = budgets.Status({"period": "session", "scope": "session", "tokens": 2_000_000}, "k", 2_500_000, 2_000_000, 0, None, None)
    assert over.message() == "Budget session/session: 2.5M of 2M tokens (125%) — 500K over"


def test_thresholds_fire_once_per_period_and_block_every_time(conn, tmp_path):
    path = tmp_path / "s-1.jsonl"
    (limit,) = make_budgets({"scope": "global", "period": "daily", "limit": "0.01", "warn_at": [0.5, 0.8], "action": "block"})
    ctx = Context(session_id="s-1")
    now = at("2026-11-22T12:00:00")
    utc = ZoneInfo("UTC")

    def check():
        return budgets.check(conn, [limit], ctx, now=now, tz=utc)

    assert check().warnings == [] and check().block is None  # no data yet: 0 spent, never an error
    write_calls(path, [("m1", 2000, "2026-11-22T01:00:00.000Z")])  # $0.006 = 60 %
    ingest(conn, path)
    first = check()
    assert [w.budget["id"] for w in first.warnings] == ["daily-global"] and first.block is None
    assert check().warnings == []  # the 50 % threshold fired once
    write_calls(path, [("m2", 1000, "2026-11-22T02:00:00.000Z")])  # 90 %
    ingest(conn, path)
    assert len(check().warnings) == 1 and check().warnings == []
    write_calls(path, [("m3", 1000, "2026-11-22T03:00:00.000Z")])  # 120 %
    ingest(conn, path)
    for _ in range(3):  # a gate, not an alert
        verdict = check()
        assert verdict.block is not None and "120%" in verdict.message()
    # The next day the period rolled over: allowed again.
    assert budgets.check(conn, [limit], ctx, now=at("2026-11-23T00:00:01"), tz=utc).block is None
    fired = db_rows("SELECT threshold FROM alerts ORDER BY threshold")
    assert [r["threshold"] for r in fired] == [0.5, 0.8, 1.0]


def test_a_budget_created_or_lowered_after_the_spend_warns(conn, tmp_path):
    path = tmp_path / "s-1.jsonl"
    write_calls(path, [("m1", 3000, "2026-11-22T01:00:00.000Z")])  # $0.009
    ingest(conn, path)
    now, utc, ctx = at("2026-11-22T12:00:00"), ZoneInfo("UTC"), Context(session_id="s-1")
    (generous,) = make_budgets({"scope": "global", "period": "daily", "limit": "0.01", "warn_at": [0.8]})
    assert len(budgets.check(conn, [generous], ctx, now=now, tz=utc).warnings) == 1
    (lowered,) = make_budgets({"scope": "global", "period": "daily", "limit": "0.005", "warn_at": [0.8]})
    assert len(budgets.check(conn, [lowered], ctx, now=now, tz=utc).warnings) == 1


def test_strictest_blocking_budget_is_named(conn, tmp_path):
    path = tmp_path / "s-1.jsonl"
    write_calls(path, [("m1", 1000, "2026-11-22T01:00:00.000Z")])  # $0.003
    ingest(conn, path)
    entries = make_budgets(
        {"id": "loose", "scope": "global", "period": "daily", "limit": "0.002", "action": "block"},
        {"id": "tight", "scope": "session", "period": "session", "limit": "0.001", "action": "block"},
        {"id": "other-project", "scope": "project:elsewhere", "period": "daily", "limit": "0.0001", "action": "block"},
    )
    verdict = budgets.check(conn, entries, Context(session_id="s-1", project="/home/dev/acme-api"),
                            now=at("2026-11-22T12:00:00"), tz=ZoneInfo("UTC"))
    assert verdict.block.budget["id"] == "tight"
    assert "Budget session/session: $0.003 of $0.001 (300%)" in verdict.message()


def test_clock_going_backwards_is_harmless(conn, tmp_path):
    path = tmp_path / "s-1.jsonl"
    write_calls(path, [("m1", 1000, "2026-11-22T01:00:00.000Z")])
    ingest(conn, path)
    (b,) = make_budgets({"scope": "global", "period": "daily", "limit": "0.001", "action": "block"})
    ctx = Context(session_id="s-1")
    assert budgets.check(conn, [b], ctx, now=at("2026-11-22T12:00:00"), tz=ZoneInfo("UTC")).block
    earlier = budgets.check(conn, [b], ctx, now=at("2026-11-21T12:00:00"), tz=ZoneInfo("UTC"))
    assert earlier.block is None  # a different (earlier) day: nothing spent in it


# ------------------------------------------------------------------ hook outputs --


@pytest.fixture
def session(home, tmp_path):
    """A transcript with one $0.003 call that requested a tool, and a config writer."""
    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m1", 1000, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))])
    config = tmp_path / "config.toml"

    def configure(*entries):
        write_budgets(config, *entries)

    return transcript, configure


def write_budgets(config, *entries) -> None:
    """The config file `config` with these budgets (dicts of TOML keys) and nothing else."""
    lines = []
    for entry in entries:
        lines.append("[[budgets]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
    config.write_text("\n".join(lines) + "\n")


def event(transcript, name, **extra):
    data = {"hook_event_name": name, "session_id": "s-1", "transcript_path": str(transcript), "cwd": "/home/dev/acme-api"}
    data.update(extra)
    return data


def decision(proc) -> dict | None:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout else None


def test_user_prompt_submit_blocks_when_spent(session):
    transcript, configure = session
    configure({"scope": "global", "period": "daily", "limit": "0.002", "action": "block"})
    out = decision(run_hook(event(transcript, "UserPromptSubmit", prompt="hello")))
    assert out["decision"] == "block"
    assert out["reason"].startswith("costhook: Budget daily/global: $0.003 of $0.002 (150%) — $0.001 over")


def test_pre_tool_use_denies_and_stops(session):
    transcript, configure = session
    configure({"scope": "session", "period": "session", "limit": "0.002", "action": "block"})
    out = decision(run_hook(event(transcript, "PreToolUse", tool_name="Bash", tool_use_id="toolu_m1")))
    assert out["continue"] is False and "Budget session/session" in out["stopReason"]
    assert out["hookSpecificOutput"]["hookEventName"] == "PreToolUse"
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_pre_tool_use_counts_the_call_that_asked_for_the_tool(session):
    """The transcript lags: the hook waits (bounded) for the tool_use line and counts it."""
    transcript, configure = session
    configure({"scope": "session", "period": "session", "limit": "0.004", "action": "block"})
    assert decision(run_hook(event(transcript, "PreToolUse", tool_use_id="toolu_m1"))) is None

    def late():
        import time

        time.sleep(0.2)
        write_calls(transcript, [("m2", 1000, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))])

    writer = threading.Thread(target=late)
    writer.start()
    out = decision(run_hook(event(transcript, "PreToolUse", tool_use_id="toolu_m2")))
    writer.join()
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"


def test_pre_tool_use_waits_for_the_call_only_when_it_could_spend_the_budget(session):
    """The line of the call that asked for the tool is waited for only when that call could
    spend a blocking budget (headroom ≤ twice the costliest recent call): far from every
    limit the tool goes ahead at once (issue 14: the wait was ~50 ms of each tool call)."""
    import time

    transcript, configure = session

    def took(tool_use_id: str) -> float:
        start = time.monotonic()
        decision(run_hook(event(transcript, "PreToolUse", tool_use_id=tool_use_id)))
        return time.monotonic() - start

    configure({"scope": "global", "period": "daily", "limit": "10", "action": "block"})
    on_disk = min(took("toolu_m1") for _ in range(3))
    never_written = min(took("toolu_never") for _ in range(3))
    assert never_written < on_disk + 0.3  # the old code waited its whole 0.5 s here
    configure({"scope": "global", "period": "daily", "limit": "0.005", "action": "block"})  # $0.002 left, calls cost $0.003
    assert min(took("toolu_never") for _ in range(2)) > on_disk + 0.4


def skill_shell(transcript, skill="costly", **extra):
    """A PreSkillShellCommand payload as Claude Code 2.1.332 sends it (measured)."""
    return event(transcript, "PreSkillShellCommand", tool_name="Bash", tool_input={"command": "make deploy"},
                 tool_use_id="2cf317c1-f06b-4fe4-bda5-59de59314eb7:inner:preamble-0", command_name=skill,
                 command_source="projectSettings", invoked_by="user", permission_mode="default", **extra)


def test_pre_skill_shell_command_refuses_and_stops(session):
    """A skill's `!` command runs without a PreToolUse: a spent budget refuses it and stops the turn."""
    transcript, configure = session
    configure({"scope": "global", "period": "daily", "limit": "0.002", "action": "block"})
    out = decision(run_hook(skill_shell(transcript)))
    assert out["continue"] is False and "Budget daily/global: $0.003 of $0.002" in out["stopReason"]
    assert out["hookSpecificOutput"] == {"hookEventName": "PreSkillShellCommand", "permissionDecision": "deny",
                                         "permissionDecisionReason": out["stopReason"]}
    configure({"scope": "global", "period": "daily", "limit": "1", "action": "block"})
    assert decision(run_hook(skill_shell(transcript))) is None


def test_pre_skill_shell_command_is_checked_against_its_skill_budget(session, tmp_path):
    """`skill:costly` is spent by an earlier session; a new session's prompt cannot know the
    skill it will run, its shell command can (`command_name`)."""
    transcript, configure = session
    earlier = tmp_path / "s-0.jsonl"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with open(earlier, "w") as f:
        f.write(assistant("m0", session_id="s-0", input_tokens=10, output_tokens=0, timestamp=stamp,
                          content=[tool_use("Skill", "toolu_s0", skill="costly")]))
        f.write(assistant("m00", session_id="s-0", input_tokens=1000, output_tokens=0, timestamp=stamp))
    assert decision(run_hook(event(earlier, "Stop", session_id="s-0", stop_hook_active=False))) is None
    assert db_rows("SELECT skill FROM requests WHERE message_id = 'm00'") == [{"skill": "costly"}]
    configure({"scope": "skill:costly", "period": "daily", "limit": "0.002", "action": "block"})
    fresh = tmp_path / "s-2.jsonl"
    fresh.write_text("")
    assert decision(run_hook(event(fresh, "UserPromptSubmit", session_id="s-2", prompt="/costly"))) is None
    out = decision(run_hook(skill_shell(fresh, session_id="s-2")))
    assert out["continue"] is False and "Budget daily/skill:costly: $0.003 of $0.002" in out["stopReason"]
    assert decision(run_hook(skill_shell(fresh, skill="other", session_id="s-2"))) is None


def test_post_tool_use_warns_once_then_stops(session):
    """After the Agent tool (a sub-agent spent while it ran) PostToolUse decides: it warns
    once, then stops the main agent before its next call."""
    transcript, configure = session
    configure({"scope": "session", "period": "session", "limit": "0.005", "warn_at": [0.5], "action": "block"})
    out = decision(run_hook(event(transcript, "PostToolUse", tool_name="Agent", tool_use_id="toolu_m1")))
    assert out == {"systemMessage": "costhook: Budget session/session: $0.003 of $0.005 (60%) — $0.002 left"}
    assert decision(run_hook(event(transcript, "PostToolUse", tool_name="Agent", tool_use_id="toolu_m1"))) is None
    write_calls(transcript, [("m2", 1000, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))])
    out = decision(run_hook(event(transcript, "PostToolUse", tool_name="Agent", tool_use_id="toolu_m2")))
    assert out["continue"] is False and "(120%)" in out["stopReason"]


def test_after_any_other_tool_post_tool_use_records_in_the_background_and_the_next_gate_warns(session):
    """After Bash the spend is what its PreToolUse judged: PostToolUse answers nothing (the
    agent does not wait for it) and leaves the threshold to the next gate, which shows it."""
    transcript, configure = session
    configure({"scope": "session", "period": "session", "limit": "0.005", "warn_at": [0.5], "action": "block"})
    assert decision(run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id="toolu_m1"))) is None
    assert db_rows("SELECT count(*) AS n FROM tool_calls") == [{"n": 1}]  # recorded all the same
    assert db_rows("SELECT count(*) AS n FROM alerts") == [{"n": 0}]  # nobody saw it yet: not fired
    out = decision(run_hook(event(transcript, "PreToolUse", tool_name="Bash", tool_use_id="toolu_m1")))
    assert out == {"systemMessage": "costhook: Budget session/session: $0.003 of $0.005 (60%) — $0.002 left"}


def test_stop_never_blocks(session):
    """Stop runs in the background: it neither blocks (a Stop block makes the agent go on)
    nor fires the threshold nobody would see; the next prompt is blocked, with the message."""
    transcript, configure = session
    configure({"scope": "global", "period": "daily", "limit": "0.001", "action": "block"})
    assert decision(run_hook(event(transcript, "Stop", stop_hook_active=False))) is None
    assert db_rows("SELECT count(*) AS n FROM requests") == [{"n": 1}]  # the final call is recorded
    out = decision(run_hook(event(transcript, "UserPromptSubmit", prompt="more")))
    assert out["decision"] == "block" and "(300%)" in out["reason"]


def test_session_end_fires_what_the_last_calls_crossed(session):
    """No gate follows SessionEnd: the thresholds the session's last calls crossed fire there
    (recorded, and sent to the notification targets), though nobody sees an answer."""
    transcript, configure = session
    configure({"scope": "global", "period": "daily", "limit": "0.005", "warn_at": [0.5]})
    assert decision(run_hook(event(transcript, "SessionEnd", reason="other"))) is None
    assert db_rows("SELECT threshold FROM alerts") == [{"threshold": 0.5}]


def test_the_first_prompt_tells_the_budgets_standing(session):
    """SessionStart runs in the background: the session's first prompt gives the model (and
    the user) the budgets already past their first threshold; later prompts do not repeat it."""
    earlier, configure = session
    configure({"scope": "global", "period": "daily", "limit": "0.005", "warn_at": [0.5]})
    assert decision(run_hook(event(earlier, "Stop"))) is None  # an earlier session spent 60 %
    transcript = earlier.parent / "s-2.jsonl"
    transcript.write_text("")
    new = {"session_id": "s-2", "transcript_path": str(transcript), "cwd": "/home/dev/acme-api"}
    assert decision(run_hook({**new, "hook_event_name": "SessionStart", "source": "startup"})) is None
    out = decision(run_hook({**new, "hook_event_name": "UserPromptSubmit", "prompt": "go"}))
    context = out["hookSpecificOutput"]["additionalContext"]
    assert out["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit" and "(60%)" in context
    write_calls(transcript, [("m9", 10, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))], session="s-2")
    assert decision(run_hook({**new, "hook_event_name": "Stop"})) is None  # the turn's calls are recorded
    assert decision(run_hook({**new, "hook_event_name": "UserPromptSubmit", "prompt": "again"})) is None


def test_config_changes_are_seen_by_the_next_hook(session):
    transcript, configure = session
    configure({"scope": "global", "period": "daily", "limit": "1", "action": "block"})
    assert decision(run_hook(event(transcript, "UserPromptSubmit", prompt="x"))) is None
    configure({"scope": "global", "period": "daily", "limit": "0.001", "action": "block"})
    assert decision(run_hook(event(transcript, "UserPromptSubmit", prompt="x")))["decision"] == "block"


def test_no_budgets_means_no_database_work(home, tmp_path):
    transcript = tmp_path / "s-1.jsonl"
    write_calls(transcript, [("m1", 1000, "2026-11-22T01:00:00.000Z")])
    assert decision(run_hook(event(transcript, "UserPromptSubmit", prompt="x"))) is None
    assert not (home / "costhook.db").exists()


@pytest.mark.parametrize("policy, blocked", [("allow", False), ("block", True)])
def test_on_error_policy_when_the_database_is_unreadable(session, home, policy, blocked):
    transcript, configure = session
    configure({"scope": "global", "period": "daily", "limit": "5", "action": "block", "on_error": policy})
    home.mkdir(parents=True, exist_ok=True)
    (home / "costhook.db").write_bytes(b"not a database" * 200)
    out = decision(run_hook(event(transcript, "UserPromptSubmit", prompt="x")))
    if blocked:
        assert out["decision"] == "block" and "on_error = block" in out["reason"]
    else:
        assert out is None
    assert (home / "errors.log").exists()


def test_bad_budget_config_fails_open_and_names_the_key(session, home):
    transcript, configure = session
    configure({"scope": "global", "period": "fortnightly", "limit": "5", "action": "block"})
    assert decision(run_hook(event(transcript, "UserPromptSubmit", prompt="x"))) is None
    assert "budgets[0].period: 'fortnightly' is not one of" in (home / "errors.log").read_text()


# ------------------------------------------------------------------ overshoot ----

CALL_TOKENS = 1000  # each call costs $0.003


def agent_loop(transcript, session_id, stop_flag, made):
    """One simulated agent: make an API call (append it), then ask PreToolUse for its tool;
    stop as soon as a hook says so. Returns through `made` the number of calls made."""
    for i in range(50):
        mid = f"{session_id}-{i}"
        write_calls(transcript, [(mid, CALL_TOKENS, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"))], session=session_id)
        made[session_id] = i + 1
        proc = run_hook(event(transcript, "PreToolUse", session_id=session_id, tool_use_id=f"toolu_{mid}"))
        out = json.loads(proc.stdout) if proc.stdout else {}
        if out.get("continue") is False:
            return


@pytest.mark.parametrize("sessions", [1, 2])
def test_overshoot_is_at_most_the_call_in_flight_per_session(home, tmp_path, sessions):
    (tmp_path / "config.toml").write_text(
        '[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = "0.0200"\naction = "block"\n'
    )
    made = {}
    threads = []
    for n in range(sessions):
        transcript = tmp_path / f"agent-{n}.jsonl"
        threads.append(threading.Thread(target=agent_loop, args=(transcript, f"agent-{n}", None, made)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    spent = db_rows("SELECT sum(cost_nanousd) AS c FROM requests")[0]["c"]
    limit = 20_000_000
    call = CALL_TOKENS * NANO_PER_INPUT
    assert spent >= limit  # the budget was reached…
    # …and passed by at most the calls in flight: one per concurrently running session.
    assert spent - limit < call * sessions
    assert sum(made.values()) * call == spent
