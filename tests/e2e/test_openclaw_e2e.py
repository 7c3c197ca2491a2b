"""costhook's OpenClaw plugin under the real OpenClaw 2026.9.6 (Node 24), offline.

One Gateway for the whole module (it takes ~25 s to start): `costhook install --agent
openclaw` wires the plugin into a fresh state dir, the Gateway loads it, and every test
drives it with the real `openclaw` CLI against tests/e2e/fake_openai.py, inside a private
network namespace when the machine allows one.

Install Node 24 + OpenClaw once, outside test timeouts: `python3 tests/e2e/openclaw_harness.py --install`.
Without them (no npm, no registry) every test here is skipped with the reason.
"""

from __future__ import annotations

import json
import time

import pytest

from . import openclaw_harness as h
from .fake_openai import openclaw_usage

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROMPT_MARKER = "USE_TOOL please run the echo (e2e-secret-prompt-7c1f)"
TOOL_MARKER = "costhook-e2e-tool"  # the tool's command and its output
TIMINGS: dict = {}


def usd_to_nano(value) -> int:
    from costhook.agents.openclaw.events import usd_to_nano as convert

    return convert(value)


@pytest.fixture(scope="module")
def oc():
    t0 = time.monotonic()
    found, why = h.openclaw_install()
    TIMINGS["install_s"] = round(time.monotonic() - t0, 1)
    if found is None:
        pytest.skip(f"e2e: OpenClaw {h.OPENCLAW_VERSION} on Node {h.NODE_VERSION} unavailable: {why} "
                    "(install with `python3 tests/e2e/openclaw_harness.py --install`)")
    return found


@pytest.fixture(scope="module")
def box(oc, tmp_path_factory):
    sandbox = h.Sandbox.start(tmp_path_factory.mktemp("openclaw-e2e"), oc)
    try:
        t0 = time.monotonic()
        installed = sandbox.costhook("install", "--agent", "openclaw")
        TIMINGS["costhook_install_s"] = round(time.monotonic() - t0, 2)
        assert installed.rc == 0, installed.describe()
        TIMINGS["gateway_start_s"] = round(sandbox.start_gateway(), 1)
        TIMINGS["netns"] = sandbox.netns
        yield sandbox
    finally:
        sandbox.close()
        print(f"\nopenclaw e2e timings: {json.dumps(TIMINGS)}")


def agent_turn(box, session_key: str, message: str, timeout: float = 150):
    before = len(box.chat_requests())
    t0 = time.monotonic()
    result = box.openclaw("agent", "--agent", "main", "--session-key", session_key, "--message", message, "--json",
                          timeout=timeout)
    TIMINGS.setdefault("agent_turn_s", []).append(round(time.monotonic() - t0, 1))
    # The Gateway runs heartbeats in agent:main:main on its own (in CI one landed inside a later
    # turn, after the cron test had asked for beats): they are not this turn's calls.
    return result, [c for c in box.chat_requests()[before:] if c["branch"] != "heartbeat"]


def session_rows(box, session_id: str, count: int, timeout: float = 15) -> list:
    def ready():
        rows = box.rows("SELECT * FROM requests WHERE session_id = ? ORDER BY timestamp", (session_id,))
        return rows if len(rows) == count else None

    return h.wait_for(ready, timeout=timeout)


def cron_view(box) -> dict:
    return json.loads(box.costhook("cron", "--format", "json").stdout)


def test_install_wired_the_plugin_and_is_idempotent(box):
    config = json.loads(box.config_file.read_text())
    entry = config["plugins"]["entries"]["costhook"]
    assert entry["enabled"] is True and entry["hooks"]["allowConversationAccess"] is True
    assert entry["config"]["command"][1:] == ["hook", "--agent", "openclaw"]
    plugin_dir = box.costhook_home / "openclaw-plugin"
    assert str(plugin_dir) in config["plugins"]["load"]["paths"]
    assert {p.name for p in plugin_dir.iterdir()} == {"openclaw.plugin.json", "package.json", "index.js"}
    again = box.costhook("install", "--agent", "openclaw")
    assert again.rc == 0 and "nothing changed" in again.stdout, again.describe()
    assert json.loads(box.config_file.read_text()) == config
    # the Gateway loaded it and registered the hooks costhook needs
    log = h._strip_ansi(box.gateway_log.read_text(errors="replace"))
    assert "costhook" in log, log[-3000:]


def test_install_on_a_json5_config_goes_through_openclaw_config_patch(box, tmp_path):
    """A hand-written JSON5 config is not ours to re-serialise: the real `openclaw config
    patch` applies the change (and validates it). No Gateway involved."""
    state = tmp_path / "json5-state"
    state.mkdir()
    (state / "openclaw.json").write_text('// hand-written\n{ plugins: { load: { paths: ["/opt/other"] }, }, }\n')
    env = {"OPENCLAW_STATE_DIR": str(state), "OPENCLAW_CONFIG_PATH": str(state / "openclaw.json")}
    t0 = time.monotonic()
    installed = box.costhook("install", "--agent", "openclaw", env=env)
    TIMINGS["json5_install_s"] = round(time.monotonic() - t0, 1)
    assert installed.rc == 0 and "openclaw config patch" in installed.stdout, installed.describe()
    written = box.openclaw("config", "get", "plugins", "--json", env=env)
    plugins = written.json()
    assert plugins["load"]["paths"] == ["/opt/other", str(box.costhook_home / "openclaw-plugin")], written.describe()
    assert plugins["entries"]["costhook"]["hooks"] == {"allowConversationAccess": True}
    again = box.costhook("install", "--agent", "openclaw", env=env)  # OpenClaw wrote plain JSON: now edited directly
    assert again.rc == 0 and "nothing changed" in again.stdout, again.describe()


def test_tool_turn_is_recorded_exactly(box):
    result, chats = agent_turn(box, "agent:main:e2e-tool", PROMPT_MARKER)
    assert result.rc == 0, result.describe()
    out = result.json()
    meta = out["result"]["meta"]["agentMeta"]
    session_id = meta["sessionId"]
    assert [c["branch"] for c in chats] == ["tool", "final"], chats
    rows = session_rows(box, session_id, 2)
    assert rows, box.rows("SELECT key, session_id FROM requests") + [box.errors_log()]
    # tokens: exactly what the fake API returned, in OpenClaw's buckets
    for row, chat in zip(rows, chats):
        expected = openclaw_usage(chat["branch"])
        assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_5m_tokens"]) == (
            expected["input"], expected["output"], expected["cacheRead"], expected["cacheWrite"]), row
    # cost: OpenClaw's own figure, per call (its transcript) and per run (the CLI's costUsd)
    transcript = [e["message"] for e in box.transcript(session_id)
                  if e and e.get("type") == "message" and e["message"].get("role") == "assistant"]
    assert [usd_to_nano(m["usage"]["cost"]["total"]) for m in transcript] == [r["reported_cost_nanousd"] for r in rows]
    assert sum(r["cost_nanousd"] for r in rows) == usd_to_nano(meta["costUsd"]) == 3_723_000
    assert {r["cost_source"] for r in rows} == {"reported"}  # fake-model is not in costhook's price table
    assert {(r["agent"], r["session_key"], r["host_agent"], r["session_kind"], r["run_id"], r["model"], r["provider"])
            for r in rows} == {("openclaw", "agent:main:e2e-tool", "main", "explicit", out["runId"], "fake-model", "fake")}
    assert json.loads(rows[0]["tools"]) == ["exec"] and json.loads(rows[1]["tools"]) == []
    assert rows[0]["key"] == f"openclaw:{transcript[0]['responseId']}@{transcript[0]['timestamp']}"
    calls = h.wait_for(lambda: box.rows("SELECT * FROM tool_calls WHERE session_id = ?", (session_id,)), timeout=10)
    assert [(c["tool_name"], c["success"]) for c in calls] == [("exec", 1)]
    # privacy: neither the prompt nor the tool's command or output reached costhook's database
    stored = b"".join(p.read_bytes() for p in box.costhook_home.glob("costhook.db*"))
    assert PROMPT_MARKER.encode() not in stored and TOOL_MARKER.encode() not in stored
    assert box.errors_log() == ""


def test_cron_run_and_heartbeat_are_attributed(box):
    added = box.openclaw("cron", "add", "0 7 * * *", "USE_TOOL nightly report", "--name", "e2e-nightly",
                         "--agent", "main", "--session", "isolated", "--no-deliver", "--json")
    assert added.rc == 0, added.describe()
    job_id = added.json()["id"]
    t0 = time.monotonic()
    ran = box.openclaw("cron", "run", job_id, "--wait", "--wait-timeout", "2m", "--json")
    TIMINGS["cron_run_s"] = round(time.monotonic() - t0, 1)
    assert ran.rc == 0, ran.describe()
    entry = ran.json()["run"]
    assert entry["status"] == "ok", entry
    rows = session_rows(box, entry["sessionId"], 2)
    assert rows, box.errors_log()
    assert {(r["cron_job"], r["session_key"], r["session_kind"], r["is_heartbeat"]) for r in rows} == {
        (job_id, entry["sessionKey"], "cron", 0)}
    # OpenClaw's run log (no cost) agrees with the calls costhook recorded
    usage = entry["usage"]
    assert sum(r["input_tokens"] for r in rows) == usage["input_tokens"]
    assert sum(r["output_tokens"] for r in rows) == usage["output_tokens"]
    assert sum(r["cache_read_tokens"] for r in rows) == usage["cache_read_tokens"]
    run_id = f"{job_id}@{entry['runAtMs']}"
    runs = h.wait_for(lambda: box.rows("SELECT * FROM cron_runs WHERE run_id = ?", (run_id,)), timeout=15)
    assert runs, box.rows("SELECT run_id FROM cron_runs") + [box.errors_log()]
    assert (runs[0]["job_id"], runs[0]["job_name"], runs[0]["status"], runs[0]["duration_ms"], runs[0]["session_id"]) == (
        job_id, "e2e-nightly", "ok", entry["durationMs"], entry["sessionId"])
    view = box.costhook("cron", "--format", "json")
    assert view.rc == 0, view.describe()
    cron = next(c for c in json.loads(view.stdout)["crons"] if c["job_id"] == job_id)
    assert (cron["job_name"], cron["runs"], cron["cost_nanousd"]) == ("e2e-nightly", 1, sum(r["cost_nanousd"] for r in rows))
    history = box.costhook("cron", "e2e-nightly")
    assert history.rc == 0 and "Took " in history.stdout and "$0.0037" in history.stdout, history.describe()
    report = json.loads(box.costhook("report", "--by", "cron", "--format", "json").stdout)
    assert any(r["key"] == job_id and r["requests"] == 2 for r in report["rows"]), report

    # the heartbeat is a managed cron job in 2026.9; its run happens in the main session
    jobs = box.openclaw("cron", "list", "--json").json()
    jobs = jobs.get("jobs", jobs) if isinstance(jobs, dict) else jobs
    heartbeat = next(j for j in jobs if (j.get("payload") or {}).get("kind") == "heartbeat")
    beat = box.openclaw("cron", "run", heartbeat["id"], "--wait", "--wait-timeout", "2m", "--json")
    for _ in range(3):  # OpenClaw skips a heartbeat until the main session's route is stored ("no-route"):
        if beat.rc == 0 or "no-route" not in beat.stdout:  # a write of its own that lags on a loaded machine
            break
        time.sleep(2)
        beat = box.openclaw("cron", "run", heartbeat["id"], "--wait", "--wait-timeout", "2m", "--json")
    assert beat.rc == 0 and beat.json()["run"]["status"] == "ok", beat.describe()
    beats = h.wait_for(lambda: box.rows("SELECT * FROM requests WHERE is_heartbeat = 1"), timeout=15)
    assert beats and {(b["ack_only"], b["session_key"]) for b in beats} == {(1, "agent:main:main")}, beats
    idle = h.wait_for(lambda: cron_view(box) if cron_view(box)["heartbeat"]["idle"] else None, timeout=15)
    assert idle and idle["heartbeat"]["idle_cost_nanousd"] == sum(b["cost_nanousd"] for b in beats), idle
    hb_cron = next(c for c in idle["crons"] if c["job_id"] == heartbeat["id"])
    assert hb_cron["kind"] == "heartbeat" and hb_cron["cost_nanousd"] == sum(b["cost_nanousd"] for b in beats)


def test_spent_budget_blocks_the_tool_then_the_run(box):
    # $0.001 per session: the first call of a USE_TOOL turn costs $0.0024552
    box.costhook_config.write_text('[[budgets]]\nid = "e2e-session"\nscope = "session"\nperiod = "session"\n'
                                   'limit = 0.001\naction = "block"\n')
    try:
        result, chats = agent_turn(box, "agent:main:e2e-budget", "USE_TOOL this tool must be blocked")
        assert result.rc == 0, result.describe()
        session_id = result.json()["result"]["meta"]["agentMeta"]["sessionId"]
        assert [c["branch"] for c in chats] == ["tool", "final"], chats
        results = [e["message"] for e in box.transcript(session_id)
                   if e and e.get("type") == "message" and e["message"].get("role") == "toolResult"]
        assert len(results) == 1 and results[0]["details"]["status"] == "blocked", results
        assert "costhook: Budget session/session" in json.dumps(results[0]["content"])
        assert TOOL_MARKER not in json.dumps(results[0]["content"])  # the tool never ran
        calls = h.wait_for(lambda: box.rows("SELECT * FROM tool_calls WHERE session_id = ?", (session_id,)), timeout=10)
        assert [(c["tool_name"], c["success"]) for c in calls] == [("exec", 0)]
        assert box.rows("SELECT budget_id FROM alerts WHERE session_id = ? AND threshold = 1.0", (session_id,))

        blocked, chats = agent_turn(box, "agent:main:e2e-budget", "hello again")
        assert blocked.rc != 0, blocked.describe()
        assert chats == []  # stopped before any model call
        assert "costhook" in blocked.stdout + blocked.stderr, blocked.describe()
    finally:
        box.costhook_config.write_text("")


def test_nothing_left_the_machine(box):
    assert box.stray_requests() == [], box.stray_requests()
    if box.netns.startswith("unshare"):
        assert "-n" in box.netns
