"""Concurrency (design.md §9, issue item 1): many real `costhook hook` processes at once,
one database, nothing lost, nothing counted twice, totals exact to the token and the
nano-dollar, every hook exits 0 in silence within the busy timeout.

The load: 16 writer threads, each playing one transcript writer of Claude Code and
firing the hooks it would fire, so that at most 16 hook processes run at once:

* 6 independent sessions (one transcript each; one of them is a resumed session that
  also replays calls of another one, which must not count twice);
* 4 threads sharing one session's transcript: parallel tool calls, i.e. several
  PostToolUse hooks racing on the same transcript and the same cursor;
* 1 main thread + 5 sub-agents of one session: sub-agent transcripts under
  `<session>/subagents/`, hooks with `agent_id`, SubagentStop, and a Stop that scans the
  folder.

Each thread writes EVENTS API calls (500 by default: 8,000 calls in all). Every call is
streamed over 1-3 lines that share message.id/requestId with a growing output_tokens, and
a hook fires every ~16 calls, sometimes while half a line is on disk. So a call's lines
are often split between two hooks, and its final usage must still win.

The oracle is built while writing (no costhook code): key -> final tokens. Cost is
checked with Sonnet 4.5's list prices, which are whole nano-dollars per token.
"""

import json
import os
import random
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import COSTHOOK, db_rows, wait_for_background
from transcript_lines import assistant, tool_use, user

EVENTS = int(os.environ.get("COSTHOOK_STRESS_EVENTS", "500"))  # API calls per writer thread
HOOK_EVERY = 16  # calls between two hooks of one writer
BUSY_TIMEOUT_S = 3.0  # costhook.agents.runtime.BUSY_TIMEOUT_MS
MODEL = "claude-sonnet-4-5-20250929"
# nano-USD per token at Sonnet 4.5 list prices (prompts stay far below the 200K tier)
PRICE = {"input_tokens": 3000, "output_tokens": 15000, "cache_write_5m_tokens": 3750,
         "cache_write_1h_tokens": 6000, "cache_read_tokens": 300}
TOKENS = tuple(PRICE)


class Oracle:
    """What was written: key -> final usage, and the tool calls reported."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}
        self.tool_ids = set()

    def add(self, key, usage):
        with self.lock:
            assert key not in self.calls or self.calls[key] == usage
            self.calls[key] = usage


class HookRunner:
    """Runs hook processes and remembers how each went."""

    def __init__(self, env):
        self.env = env
        self.lock = threading.Lock()
        self.runs = []  # (event, seconds, returncode, stdout, stderr)
        self.running = 0
        self.max_running = 0

    def fire(self, payload: dict):
        data = json.dumps(payload).encode()
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        started = time.monotonic()
        proc = subprocess.run([COSTHOOK, "hook"], input=data, capture_output=True, env=self.env, timeout=120)
        elapsed = time.monotonic() - started
        with self.lock:
            self.running -= 1
            self.runs.append((payload["hook_event_name"], elapsed, proc.returncode, proc.stdout, proc.stderr))


class Writer:
    """One transcript file, appended like Claude Code does (whole lines, or a line in two
    writes with a hook in between)."""

    def __init__(self, path: Path, lock=None):
        self.path = path
        self.lock = lock or threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def append(self, data: str):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(data)


def call_lines(rng, key_id: str, session_id: str, n: int, agent_id=None) -> tuple[list[str], dict]:
    """The 1-3 streamed lines of one API call and its final usage."""
    final = {
        "input_tokens": rng.randint(1, 3000),
        "output_tokens": rng.randint(1, 4000),
        "cache_write_5m_tokens": rng.randint(0, 20000),
        "cache_write_1h_tokens": rng.choice((0, rng.randint(1, 5000))),
        "cache_read_tokens": rng.randint(0, 150000),
    }
    blocks = rng.randint(1, 3)
    lines = []
    for b in range(blocks):
        out = final["output_tokens"] if b == blocks - 1 else rng.randint(1, final["output_tokens"])
        content = [tool_use("Bash", f"toolu_{key_id}_{b}")] if b == blocks - 1 else [{"type": "text", "text": "thinking aloud"}]
        lines.append(assistant(
            f"msg_{key_id}",
            request_id=f"req_{key_id}",
            session_id=session_id,
            model=MODEL,
            input_tokens=final["input_tokens"],
            output_tokens=out,
            cache_write=final["cache_write_5m_tokens"] + final["cache_write_1h_tokens"],
            cache_write_1h=final["cache_write_1h_tokens"],
            cache_read=final["cache_read_tokens"],
            content=content,
            timestamp=f"2026-11-20T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.{b:03d}Z",
            agent_id=agent_id,
        ))
    return lines, final


def post_tool_use(session_id, transcript, tool_use_id, agent_id=None):
    payload = {
        "session_id": session_id, "transcript_path": str(transcript), "cwd": "/work/proj",
        "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "true"},
        "tool_response": {"stdout": "", "stderr": "", "interrupted": False}, "tool_use_id": tool_use_id,
        "duration_ms": 5,
    }
    if agent_id:
        payload.update(agent_id=agent_id, agent_type="Explore")
    return payload


def write_stream(rng, writer: Writer, hooks: HookRunner, oracle: Oracle, *, name, session_id, main_transcript,
                 agent_id=None, shared=False, replay_from=None):
    """EVENTS calls into `writer.path`, a PostToolUse hook every ~HOOK_EVERY calls."""
    if not shared:
        writer.append(user(f"start {name}", session_id=session_id))
    for i in range(EVENTS):
        key_id = f"{name}_{i:04d}"
        lines, final = call_lines(rng, key_id, session_id, i, agent_id)
        oracle.add(f"msg_{key_id}:req_{key_id}", final)
        hook_now = i % HOOK_EVERY == HOOK_EVERY - 1 or i == EVENTS - 1
        if shared:
            with writer.lock:  # several threads append to one file: whole lines only
                writer.append("".join(lines))
        elif hook_now and rng.random() < 0.5:
            # Half of the last line is on disk when the hook runs; the rest comes later.
            body = "".join(lines)
            cut = len(body) - rng.randint(1, len(lines[-1]) - 1)
            writer.append(body[:cut])
            tool_id = f"toolu_{key_id}_hook"
            with oracle.lock:
                oracle.tool_ids.add(tool_id)
            hooks.fire(post_tool_use(session_id, main_transcript, tool_id, agent_id))
            writer.append(body[cut:])
            continue
        else:
            writer.append("".join(lines))
        if hook_now:
            tool_id = f"toolu_{key_id}_hook"
            with oracle.lock:
                oracle.tool_ids.add(tool_id)
            hooks.fire(post_tool_use(session_id, main_transcript, tool_id, agent_id))
    if replay_from is not None:
        # A resumed session replays calls that are already in another transcript.
        replayed = [line for line in replay_from.path.read_text().splitlines(keepends=True)
                    if '"assistant"' in line and line.endswith("\n")][:60]
        writer.append("".join(replayed))


def expected_cost(usage: dict) -> int:
    return sum(usage[c] * PRICE[c] for c in TOKENS)


@pytest.mark.slow
def test_sixteen_concurrent_hook_streams_lose_and_duplicate_nothing(home, tmp_path):
    projects = tmp_path / "claude" / "projects" / "-work-proj"
    env = {**os.environ}
    hooks = HookRunner(env)
    oracle = Oracle()
    threads = []

    def spawn(target, **kwargs):
        seed = len(threads)
        threads.append(threading.Thread(target=target, kwargs=kwargs, args=(random.Random(seed),), daemon=True))

    # 6 independent sessions; the last one is a resumed session replaying session-0 calls.
    solo = [Writer(projects / f"solo-{k}.jsonl") for k in range(6)]
    for k, writer in enumerate(solo):
        spawn(write_stream, writer=writer, hooks=hooks, oracle=oracle, name=f"solo{k}", session_id=f"solo-{k}",
              main_transcript=writer.path, replay_from=solo[0] if k == 5 else None)
    # 4 threads, one transcript: parallel tool calls racing on one cursor.
    shared = Writer(projects / "parallel.jsonl")
    shared.append(user("start parallel", session_id="parallel"))
    for k in range(4):
        spawn(write_stream, writer=shared, hooks=hooks, oracle=oracle, name=f"par{k}", session_id="parallel",
              main_transcript=shared.path, shared=True)
    # A session with 5 sub-agents, each writing its own file under <session>/subagents/.
    main = Writer(projects / "mother.jsonl")
    spawn(write_stream, writer=main, hooks=hooks, oracle=oracle, name="mother", session_id="mother",
          main_transcript=main.path)
    subs = []
    for k in range(5):
        agent_id = f"a{k:016x}"
        sub = Writer(projects / "mother" / "subagents" / f"agent-{agent_id}.jsonl")
        (sub.path.parent / f"agent-{agent_id}.meta.json").write_text(json.dumps({"agentType": "Explore"}))
        subs.append((agent_id, sub))
        spawn(write_stream, writer=sub, hooks=hooks, oracle=oracle, name=f"sub{k}", session_id="mother",
              main_transcript=main.path, agent_id=agent_id)
    assert len(threads) == 16

    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
        assert not t.is_alive()
    # What Claude Code fires at the end: SubagentStop per sub-agent, Stop per session.
    finals = [{"session_id": "mother", "transcript_path": str(main.path), "hook_event_name": "SubagentStop",
               "agent_id": a, "agent_type": "Explore", "agent_transcript_path": str(s.path)} for a, s in subs]
    finals += [{"session_id": sid, "transcript_path": str(path), "hook_event_name": "Stop"}
               for sid, path in [(f"solo-{k}", w.path) for k, w in enumerate(solo)]
               + [("parallel", shared.path), ("mother", main.path)]]
    final_threads = [threading.Thread(target=hooks.fire, args=(p,)) for p in finals]
    for t in final_threads:
        t.start()
    for t in final_threads:
        t.join(timeout=120)
    wait_for_background()  # the hooks that record in the background (the agent does not wait for them)
    wall = time.monotonic() - started

    # Every hook: exit 0, nothing on stdout or stderr. No hook waited for the database
    # longer than its busy timeout: one that did would have failed with "database is
    # locked" and said so in errors.log, which stays empty. (A hook's wall time also holds
    # its interpreter start-up, 16 at a time on 2 cores, so it is only bounded loosely
    # here, against hangs: e.g. an untimed lock.)
    assert len(hooks.runs) >= 16 * EVENTS // HOOK_EVERY
    bad = [r for r in hooks.runs if r[2] != 0 or r[3] or r[4]]
    assert not bad, bad[:3]
    log = home / "errors.log"
    assert not log.exists() or log.read_text() == "", log.read_text()[-2000:]
    slowest = max(r[1] for r in hooks.runs)
    assert hooks.max_running >= 8, hooks.max_running  # they really did overlap
    assert slowest < 4 * BUSY_TIMEOUT_S, sorted(r[1] for r in hooks.runs)[-10:]

    # No row lost, none duplicated, each with its final (largest) usage.
    rows = {r["key"]: r for r in db_rows(f"SELECT key, session_id, agent_id, {', '.join(TOKENS)}, cost_nanousd FROM requests")}
    assert len(rows) == len(oracle.calls) == 16 * EVENTS
    assert set(rows) == set(oracle.calls)
    wrong = [(k, {c: rows[k][c] for c in TOKENS}, u) for k, u in oracle.calls.items() if {c: rows[k][c] for c in TOKENS} != u]
    assert not wrong, wrong[:3]
    costs = [(k, rows[k]["cost_nanousd"], expected_cost(u)) for k, u in oracle.calls.items() if rows[k]["cost_nanousd"] != expected_cost(u)]
    assert not costs, costs[:3]
    sub_rows = [r for r in rows.values() if r["key"].startswith("msg_sub")]
    assert len(sub_rows) == 5 * EVENTS and all(r["agent_id"] and r["session_id"] == "mother" for r in sub_rows)

    # The spend rollup the budgets read is in step with the rows (written in the same
    # transactions, under the same races).
    want = {c: sum(u[c] for u in oracle.calls.values()) for c in TOKENS}
    want_cost = sum(expected_cost(u) for u in oracle.calls.values())
    spend = db_rows(f"SELECT sum(requests) AS requests, sum(cost_nanousd) AS cost, {', '.join(f'sum({c}) AS {c}' for c in TOKENS)} "
                    "FROM spend WHERE dim = 'global'")[0]
    assert spend == {"requests": 16 * EVENTS, "cost": want_cost, **want}
    per_session = {r["key"]: r["requests"] for r in db_rows("SELECT key, sum(requests) AS requests FROM spend WHERE dim = 'session' GROUP BY key")}
    assert sum(per_session.values()) == 16 * EVENTS

    # One tool_calls row per PostToolUse, whatever raced.
    assert {r["tool_use_id"] for r in db_rows("SELECT tool_use_id FROM tool_calls")} == oracle.tool_ids
    conn = sqlite3.connect(os.environ["COSTHOOK_DB"])
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    print(f"\n{len(hooks.runs)} hook processes, at most {hooks.max_running} at once, {len(rows)} calls, "
          f"{wall:.1f} s; slowest hook {slowest:.2f} s, median {sorted(r[1] for r in hooks.runs)[len(hooks.runs) // 2]:.2f} s")


def test_a_sidechain_replay_under_another_request_id_counts_once(home, tmp_path):
    path = tmp_path / "claude" / "projects" / "-work-proj" / "s-1.jsonl"
    path.parent.mkdir(parents=True)
    usage = dict(input_tokens=1200, output_tokens=340, cache_write=5000, cache_read=40000)
    path.write_text(
        user("question", session_id="s-1")
        + assistant("msg_replayed", request_id="req_original", session_id="s-1", **usage)
        + user("/btw what was that?", session_id="s-1")
        + assistant("msg_replayed", request_id="req_side_question", session_id="s-1", isSidechain=True, **usage)
    )
    proc = subprocess.run([COSTHOOK, "hook"], input=json.dumps({"session_id": "s-1", "transcript_path": str(path),
                                                                "hook_event_name": "Stop"}).encode(), capture_output=True)
    wait_for_background()
    assert proc.returncode == 0 and proc.stdout == b""
    rows = db_rows("SELECT key, input_tokens, is_sidechain FROM requests WHERE message_id = 'msg_replayed'")
    assert len(rows) == 1, rows
    assert rows[0]["is_sidechain"] == 0
