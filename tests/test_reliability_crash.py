"""Crash safety (design.md §9, issue item 2): `kill -9` a hook or an import at random
moments, 100 times. After every kill the database passes `PRAGMA integrity_check`, holds
nothing that is not in the transcripts, and keeps its spend rollup in step with its rows;
the next hook or import then brings the totals back to exactly what was written.

Each trial appends a few hundred new API calls (~0.5 MB) to the transcripts (so the killed process has
real work: parsing, merging, several transactions), starts the process, and sends SIGKILL
after a random delay spread over that process's measured run time (a quarter of the
kills in its first half, mostly interpreter start-up; the rest in its second half and just
past its usual end). The database carries
over from trial to trial, as a user's does. Every tenth trial instead kills the very
first hook on a brand-new database, i.e. during the schema migration.

The trials are classed by what the killed process had managed (nothing / part / all of
its work); the test insists that a good share were killed half-way, so it cannot pass by
killing only idle processes.
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import wait_for_background, COSTHOOK
from transcript_lines import assistant, tool_use, user

from costhook.store import migrations
from costhook.store.db import SCHEMA_VERSION

TRIALS = int(os.environ.get("COSTHOOK_CRASH_TRIALS", "100"))
CALLS_PER_TRIAL = 300
TOKENS = ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")
MODEL = "claude-haiku-4-5-20251001"
# nano-USD per token at Haiku 4.5 list prices: every call costs whole nano-dollars
PRICE = {"input_tokens": 1000, "output_tokens": 5000, "cache_write_5m_tokens": 1250,
         "cache_write_1h_tokens": 2000, "cache_read_tokens": 100}
SESSION = "crash-session"


class Tree:
    """A Claude config dir whose transcripts grow trial by trial, with the oracle."""

    def __init__(self, root: Path, seed: int):
        self.root = root
        self.projects = root / "projects" / "-work-crash"
        self.rng = random.Random(seed)
        self.prefix = f"s{seed}x"
        self.calls = {}  # key -> final usage
        self.n = 0
        self.files = []

    def path(self, name: str) -> Path:
        return self.projects / name

    def grow(self, files: list[Path], calls: int) -> None:
        """Append `calls` streamed calls spread over `files` (each call 1-3 lines, bulky
        tool results between them), whole lines only."""
        chunks = {f: [] for f in files}
        for _ in range(calls):
            f = self.rng.choice(files)
            self.n += 1
            key_id = f"{self.prefix}{self.n:07d}"
            usage = {
                "input_tokens": self.rng.randint(1, 5000),
                "output_tokens": self.rng.randint(1, 8000),
                "cache_write_5m_tokens": self.rng.randint(0, 30000),
                "cache_write_1h_tokens": self.rng.choice((0, self.rng.randint(0, 9000))),
                "cache_read_tokens": self.rng.randint(0, 120000),
            }
            agent_id = f.stem[len("agent-"):] if f.stem.startswith("agent-") else None
            blocks = self.rng.randint(1, 3)
            for b in range(blocks):
                out = usage["output_tokens"] if b == blocks - 1 else self.rng.randint(1, usage["output_tokens"])
                chunks[f].append(assistant(
                    f"msg_c{key_id}", request_id=f"req_c{key_id}", session_id=SESSION, model=MODEL,
                    input_tokens=usage["input_tokens"], output_tokens=out,
                    cache_write=usage["cache_write_5m_tokens"] + usage["cache_write_1h_tokens"],
                    cache_write_1h=usage["cache_write_1h_tokens"], cache_read=usage["cache_read_tokens"],
                    content=[tool_use("Read", f"toolu_c{key_id}_{b}", file_path="/x")],
                    timestamp=f"2026-11-{1 + self.n % 28:02d}T{self.n % 24:02d}:00:{b:02d}.000Z", agent_id=agent_id,
                ))
            if self.rng.random() < 0.3:
                chunks[f].append(user([{"type": "tool_result", "tool_use_id": f"toolu_c{key_id}_0",
                                        "content": "y" * self.rng.randint(100, 4000)}], session_id=SESSION))
            self.calls[f"msg_c{key_id}:req_c{key_id}"] = usage
        for f, lines in chunks.items():
            f.parent.mkdir(parents=True, exist_ok=True)
            with open(f, "a") as out:
                out.write("".join(lines))

    def sums(self) -> dict:
        return {"requests": len(self.calls), **{c: sum(u[c] for u in self.calls.values()) for c in TOKENS},
                "cost": sum(u[c] * PRICE[c] for u in self.calls.values() for c in TOKENS)}


def db_state(db: Path, since_rowid: int = 0, integrity: bool = True) -> dict:
    """integrity, row sums, spend-rollup sums, and the rows written after `since_rowid`
    (an upsert gives a row a new rowid), read by a fresh connection."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall() if integrity else [("ok",)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "requests" not in tables:
            return {"integrity": integrity, "keys": set(), "rows": {}, "spend": None, "max_rowid": 0,
                    "sums": {"requests": 0}}
        cols = ", ".join(f"coalesce(sum({c}), 0)" for c in TOKENS)
        row = conn.execute(f"SELECT count(*), {cols}, coalesce(sum(cost_nanousd), 0) FROM requests").fetchone()
        rows = {r[0]: dict(zip(TOKENS, r[1:]))
                for r in conn.execute(f"SELECT key, {', '.join(TOKENS)} FROM requests WHERE rowid > ?", (since_rowid,))}
        spend = None
        if "spend" in tables:
            s = conn.execute(f"SELECT coalesce(sum(requests), 0), {cols}, coalesce(sum(cost_nanousd), 0) FROM spend WHERE dim = 'global'").fetchone()
            spend = dict(zip(("requests", *TOKENS, "cost"), s))
        return {"integrity": integrity, "rows": rows, "keys": set(rows),
                "sums": dict(zip(("requests", *TOKENS, "cost"), row)), "spend": spend,
                "max_rowid": conn.execute("SELECT coalesce(max(rowid), 0) FROM requests").fetchone()[0]}
    finally:
        conn.close()


def assert_consistent(state: dict, tree: Tree, what: str) -> None:
    assert state["integrity"] == [("ok",)], (what, state["integrity"])
    # Nothing that was not written; no call with more tokens than its final sighting.
    stray = state["keys"] - set(tree.calls)
    assert not stray, (what, sorted(stray)[:3])
    over = [k for k, r in state["rows"].items() if any(r[c] > tree.calls[k][c] for c in TOKENS)]
    assert not over, (what, over[:3])
    if state["rows"]:
        assert state["spend"] == state["sums"], (what, state["spend"], state["sums"])


def assert_exact(state: dict, tree: Tree, what: str, every_key: bool = True) -> None:
    """Totals equal the oracle's; with `every_key` (state read from rowid 0), each row too."""
    assert_consistent(state, tree, what)
    assert state["sums"] == tree.sums(), (what, state["sums"], tree.sums())
    if every_key:
        wrong = [k for k, u in tree.calls.items() if state["rows"].get(k) != u]
        assert not wrong, (what, wrong[:3])


def run_to_end(cmd, env, stdin=None):
    proc = subprocess.run(cmd, input=stdin, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    if cmd[1] == "hook":
        assert proc.stdout == b"" and proc.stderr == b"", proc
        wait_for_background(env)  # Stop records in the background
    return proc


def hook_ingest(files) -> list:
    """What a Stop hook does in the background (ingest the session's transcripts), run in
    the foreground — the same code — so that a kill lands in it: `costhook hook --catch-up`."""
    return [COSTHOOK, "hook", "--catch-up", *map(str, files)]


def kill_after(cmd, env, delay: float, stdin: bytes | None = None) -> str:
    """Start `cmd`, SIGKILL it after `delay` s; 'finished' if it exited first."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "finished"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return "killed" if proc.returncode == -signal.SIGKILL else "finished"


def schema_version(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def classify(result: str, gained: int, owed: int) -> str:
    if result == "finished":
        return "finished"
    return "killed before any write" if gained == 0 else "killed after its work" if gained >= owed else "killed half-way"


def stop_payload(main: Path) -> bytes:
    return json.dumps({"session_id": SESSION, "transcript_path": str(main), "cwd": "/work/crash",
                       "hook_event_name": "Stop"}).encode()


@pytest.mark.slow
def test_kill_9_at_random_points_never_corrupts_and_the_next_run_completes(home, tmp_path):
    rng = random.Random(20261122)
    env = {**os.environ}
    db = Path(env["COSTHOOK_DB"])

    # The import trials' tree, and the hook trials' session (main + 3 sub-agents).
    import_tree = Tree(tmp_path / "claude-import", seed=1)
    import_files = [import_tree.path(f"import-{k}.jsonl") for k in range(8)]
    hook_tree = Tree(tmp_path / "claude-hook", seed=2)
    main = hook_tree.path(f"{SESSION}.jsonl")
    hook_files = [main] + [hook_tree.path(f"{SESSION}/subagents/agent-a{k:016x}.jsonl") for k in range(3)]
    both = Tree(tmp_path / "unused", seed=0)  # the union oracle for the shared DB
    import_cmd = [COSTHOOK, "import", "--claude-dir", str(import_tree.root), "-q"]
    hook_cmd = hook_ingest(hook_files)

    # Seed both with some history, and measure how long an unkilled run of each takes.
    durations = {}
    for tree, files, cmd, stdin, name in ((import_tree, import_files, import_cmd, None, "import"),
                                          (hook_tree, hook_files, hook_cmd, None, "hook")):
        times = []
        for _ in range(3):
            tree.grow(files, CALLS_PER_TRIAL)
            started = time.monotonic()
            run_to_end(cmd, env, stdin)
            times.append(time.monotonic() - started)
        durations[name] = sorted(times)[1]
    recent = {name: [] for name in durations}
    fresh_duration = None

    half_migrated = 0
    outcomes = {"finished": 0, "killed before any write": 0, "killed half-way": 0, "killed after its work": 0}
    for trial in range(TRIALS):
        if trial % 10 == 9:
            # The first hook on a brand-new database: killed during creation and migration.
            fresh = tmp_path / f"fresh-{trial}"
            tree = Tree(fresh / "claude", seed=100 + trial)
            f = tree.path(f"{SESSION}.jsonl")
            tree.grow([f], 200)
            fenv = {**env, "COSTHOOK_HOME": str(fresh / "home"), "COSTHOOK_DB": str(fresh / "home" / "costhook.db")}
            if fresh_duration is None:
                probe = tmp_path / "probe"
                penv = {**fenv, "COSTHOOK_HOME": str(probe), "COSTHOOK_DB": str(probe / "costhook.db")}
                started = time.monotonic()
                run_to_end(hook_ingest([f]), penv)
                fresh_duration = time.monotonic() - started
            result = kill_after(hook_ingest([f]), fenv, rng.uniform(0.0, fresh_duration))
            fdb = Path(fenv["COSTHOOK_DB"])
            gained = 0
            if fdb.exists() and fdb.stat().st_size:
                state = db_state(fdb)
                assert_consistent(state, tree, f"trial {trial}: fresh DB after kill")
                gained = len(state["keys"])
            outcomes[classify(result, gained, len(tree.calls))] += 1
            version = schema_version(fdb)
            if 0 < version < SCHEMA_VERSION:
                half_migrated += 1  # killed between two schema steps: the next hook finishes them
            run_to_end([COSTHOOK, "hook"], fenv, stop_payload(f))  # the next hook, as Claude Code runs it
            assert_exact(db_state(fdb), tree, f"trial {trial}: fresh DB (left at schema v{version}), next hook")
            continue

        use_import = trial % 2 == 0
        tree, files = (import_tree, import_files) if use_import else (hook_tree, hook_files)
        cmd, stdin = (import_cmd, None) if use_import else (hook_cmd, None)
        tree.grow(files, CALLS_PER_TRIAL)
        last = db_state(db, integrity=False)  # checked right after the previous kill
        before, since = last["sums"]["requests"], last["max_rowid"]
        # Kill anywhere from process start to a little past its usual end; most kills in the
        # second half, where the process reads, merges and commits (the first half is mostly
        # the interpreter starting).
        usual = durations["import" if use_import else "hook"]
        delay = usual * (rng.uniform(0.0, 0.5) if rng.random() < 0.25 else rng.uniform(0.5, 1.15))
        result = kill_after(cmd, env, delay, stdin)
        both.calls = {**import_tree.calls, **hook_tree.calls}
        state = db_state(db, since)
        assert_consistent(state, both, f"trial {trial} ({'import' if use_import else 'hook'}) after kill at {delay:.3f} s")
        outcomes[classify(result, state["sums"]["requests"] - before, len(both.calls) - before)] += 1
        # The next run of the same kind completes the job, exactly. Its time is how long such
        # a run takes now (the database grows trial after trial): the next kills aim at it.
        started = time.monotonic()
        run_to_end(cmd, env, stdin)
        name = "import" if use_import else "hook"
        recent[name] = (recent[name] + [time.monotonic() - started])[-5:]
        durations[name] = sorted(recent[name])[len(recent[name]) // 2]
        full = trial % 10 == 8 or trial == TRIALS - 1
        assert_exact(db_state(db, 0 if full else since, integrity=full), both, f"trial {trial}: after the next run", every_key=full)

    print(f"\n{TRIALS} trials, import {durations['import']:.2f} s / hook {durations['hook']:.2f} s unkilled: {outcomes}; "
          f"{half_migrated} fresh databases left between two schema steps")
    assert sum(outcomes.values()) == TRIALS
    # The kills really landed inside the work, not only before or after it.
    assert outcomes["killed half-way"] + outcomes["killed after its work"] >= TRIALS // 10, outcomes
    assert outcomes["killed half-way"] >= TRIALS // 20, outcomes


def test_a_migration_cut_short_by_a_crash_is_finished_by_the_next_hook(home, tmp_path):
    """The state a kill between the first hook's schema steps leaves (made deterministic:
    the same steps, stopped after the k-th, as store._migrate runs them), then one hook."""
    tree = Tree(tmp_path / "claude", seed=7)
    f = tree.path(f"{SESSION}.jsonl")
    tree.grow([f], 50)
    db = Path(os.environ["COSTHOOK_DB"])
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    import sqlite_utils

    for number, step in enumerate(migrations.MIGRATIONS[:2], start=1):
        step(sqlite_utils.Database(conn))
        conn.execute(f"PRAGMA user_version = {number}")
    conn.close()
    run_to_end([COSTHOOK, "hook"], {**os.environ}, stop_payload(f))
    assert_exact(db_state(db), tree, "the next hook")
