"""Benchmark: what costhook's OpenClaw plugin adds to a real agent turn (issue 14, target 2).

    python -m tests.benchmarks.openclaw_turn [--runs 9] [--checkout DIR] [--no-budget] [--trace] [--work DIR] [--json]

One turn of the real OpenClaw 2026.9.6 (the end-to-end harness: offline, against
tests/e2e/fake_openai.py, in a private network namespace): `openclaw agent --agent main
--session-key <new> --message "USE_TOOL …" --json` through a running Gateway — two API
calls and one `exec` tool call, in a new session each time. Two sandboxes, each with its
own Gateway, fake API and state, alternated run after run (which goes first alternates
too): one with costhook's plugin as `costhook install --agent openclaw` wires it and one
budget configured (a global daily block far from its limit, so every gate decides), and
one with no plugin. costhook runs from a regular install of the checkout (its package
copied into a throw-away venv, as install.sh installs it), not the editable one.

Two clocks per turn: the CLI's wall time (`openclaw agent` is a Node process that starts,
connects to the Gateway and waits for the run: ~1.5–3 s of it is the CLI itself) and the
run as the Gateway times it (`durationMs` in the CLI's JSON: from the run's start to its
answer). Prints the medians with and without the plugin, the overhead (ms and %) on
each, and checks every run's calls were recorded exactly: the 2 calls of each turn, at
the fake model's price, once background work has finished — so a faster plugin that
loses or delays rows past the check fails the benchmark (exit 1).
"""

import argparse
import json
import os
import shlex
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.hot_path import regular_install
from tests.e2e import openclaw_harness as h

REPO = Path(__file__).resolve().parents[2]
PROMPT = "USE_TOOL run the echo"
TURN_NANOUSD = 3_723_000  # the tool call + the final answer at the fake model's price (test_openclaw_e2e)
SETTLE_S = 15.0


def load() -> float:
    return os.getloadavg()[0]


def sandbox_with_plugin(work: Path, oc: h.Install, costhook: str, budget: bool, checkout: Path) -> h.Sandbox:
    box = h.Sandbox.start(work / "plugin", oc)
    env = {"COSTHOOK_OPENCLAW_PLUGIN": str(checkout / "hooks" / "openclaw")}
    steps = [["install", "--agent", "openclaw"]]
    if budget:
        steps.append(["budget", "set", "--scope", "global", "--period", "daily", "--limit", "1000", "--action", "block"])
    for args in steps:
        done = box.run([costhook, *args], env=env)
        if done.rc != 0:
            box.close()
            raise SystemExit(f"costhook {' '.join(args)} failed:\n{done.describe()}")
    return box


TRACE_WRAPPER = """\
case " $* " in *" --serve "*) exec "$@";; esac  # the resident: not timed
start=$(date +%s%N); payload=$(cat); printf '%s' "$payload" | "$@"; rc=$?; end=$(date +%s%N)
hook=$(printf '%s' "$payload" | sed -n 's/^{"hook":"\\([a-z_]*\\)".*/\\1/p')
printf '%s %s %s\\n' "$hook" "$start" "$end" >> "$COSTHOOK_TRACE_LOG"; exit $rc
"""


def trace_plugin(box: h.Sandbox) -> Path:
    """Run the plugin's command through a shell that logs each event's hook, start and end
    (ns): how long each `costhook hook` process lives (not the resident's answers). The
    wrapper costs a few ms each."""
    wrapper = box.root / "trace.sh"
    wrapper.write_text(TRACE_WRAPPER)
    log = box.root / "trace.log"
    config = json.loads(box.config_file.read_text())
    entry = config["plugins"]["entries"]["costhook"]["config"]
    entry["command"] = ["/usr/bin/env", f"COSTHOOK_TRACE_LOG={log}", "/bin/sh", str(wrapper), *entry["command"]]
    box.config_file.write_text(json.dumps(config, indent=2))
    return log


def traced(log: Path) -> dict:
    """hook -> [median ms, count] from the trace log."""
    spans = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        hook, start, end = line.split()
        spans.setdefault(hook or "?", []).append((int(end) - int(start)) / 1e6)
    return {hook: [round(statistics.median(ms), 1), len(ms)] for hook, ms in sorted(spans.items())}


def recorded(box: h.Sandbox) -> tuple[int, int]:
    """(calls, nano-USD) in the sandbox's costhook database, read-only."""
    if not box.db.exists():
        return 0, 0
    conn = sqlite3.connect(f"file:{box.db}?mode=ro", uri=True, timeout=5)
    try:
        try:
            return tuple(conn.execute("SELECT count(*), coalesce(sum(cost_nanousd), 0) FROM requests").fetchone())
        except sqlite3.OperationalError:  # no table yet
            return 0, 0
    finally:
        conn.close()


def run_turn(box: h.Sandbox, key: str) -> tuple[float, float]:
    """(CLI wall s, the run's own duration s) of one tool turn in a new session."""
    before = len(box.chat_requests())
    run = box.openclaw("agent", "--agent", "main", "--session-key", key, "--message", PROMPT, "--json", timeout=240)
    out = run.json()
    meta = ((out or {}).get("result") or {}).get("meta") or {}
    chats = [c.get("branch") for c in box.chat_requests()[before:]]
    if run.rc != 0 or run.timed_out or not out or chats != ["tool", "final"] or not isinstance(meta.get("durationMs"), (int, float)):
        raise SystemExit(f"the turn failed (fake API answered {chats}):\n{run.describe()}")
    return run.wall, meta["durationMs"] / 1000


def measure(oc: h.Install, costhook: str, checkout: Path, work: Path, runs: int, budget: bool, trace: bool = False) -> dict:
    plugin = sandbox_with_plugin(work, oc, costhook, budget, checkout)
    bare = None
    try:
        trace_log = trace_plugin(plugin) if trace else None
        bare = h.Sandbox.start(work / "bare", oc)
        started = {"plugin": plugin.start_gateway(timeout=300), "none": bare.start_gateway(timeout=300)}
        boxes = {"plugin": plugin, "none": bare}
        for name, box in boxes.items():  # warm-up: the CLI, the Gateway's lazy imports, the venv, the page cache
            run_turn(box, f"agent:main:bench-warm-{name}")
        walls = {"plugin": [], "none": []}
        durations = {"plugin": [], "none": []}
        loads = []
        for i in range(runs):
            order = ["plugin", "none"] if i % 2 == 0 else ["none", "plugin"]
            for name in order:
                loads.append(load())
                wall, duration = run_turn(boxes[name], f"agent:main:bench-{i}-{name}")
                walls[name].append(round(wall, 3))
                durations[name].append(round(duration, 3))
        expected = (2 * (runs + 1), TURN_NANOUSD * (runs + 1))
        deadline = time.monotonic() + SETTLE_S
        while recorded(plugin) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        got = recorded(plugin)
        errors = plugin.errors_log()
    finally:
        plugin.close()
        if bare is not None:
            bare.close()
    med = {k: {name: statistics.median(v[name]) for name in v} for k, v in (("wall", walls), ("run", durations))}
    return {
        "runs": runs, "budget": budget, "gateway_start_s": {k: round(v, 1) for k, v in started.items()},
        "median_wall_with_plugin_s": round(med["wall"]["plugin"], 3), "median_wall_without_s": round(med["wall"]["none"], 3),
        "overhead_wall_ms": round((med["wall"]["plugin"] - med["wall"]["none"]) * 1000, 1),
        "overhead_wall_pct": round((med["wall"]["plugin"] / med["wall"]["none"] - 1) * 100, 1),
        "median_run_with_plugin_s": round(med["run"]["plugin"], 3), "median_run_without_s": round(med["run"]["none"], 3),
        "overhead_run_ms": round((med["run"]["plugin"] - med["run"]["none"]) * 1000, 1),
        "overhead_run_pct": round((med["run"]["plugin"] / med["run"]["none"] - 1) * 100, 1),
        "walls": walls, "runs_s": durations,
        "load_1min": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
        "recorded": {"calls": got[0], "nanousd": got[1], "expected_calls": expected[0], "expected_nanousd": expected[1],
                     "exact": got == expected},
        "hooks_ms": traced(trace_log) if trace else None,
        "errors_log": errors[-2000:],
        "netns": plugin.netns,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="Turns each way (median reported).")
    parser.add_argument("--checkout", type=Path, default=REPO, help="The costhook checkout to measure.")
    parser.add_argument("--no-budget", action="store_true", help="No budget configured (the gates decide nothing).")
    parser.add_argument("--work", type=Path, help="Keep the sandboxes here (default: a temporary folder, removed).")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON only.")
    parser.add_argument("--trace", action="store_true",
                        help="Also time each `costhook hook` process (a shell wrapper adds a few ms to each).")
    args = parser.parse_args(argv)
    oc, reason = h.openclaw_install(install=False)
    if oc is None:
        print(f"openclaw turn benchmark: {reason} (python3 tests/e2e/openclaw_harness.py --install)", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="costhook-octurn-"))
    work.mkdir(parents=True, exist_ok=True)
    checkout = args.checkout.resolve()
    try:
        _, costhook = regular_install(checkout, work / "venv")
        result = measure(oc, costhook, checkout, work, args.runs, not args.no_budget, args.trace)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result["openclaw"] = h.OPENCLAW_VERSION
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"OpenClaw {result['openclaw']} (Gateway, network: {result['netns']}), `openclaw agent --message "
              f"{shlex.quote(PROMPT)}` in a new session, {args.runs} turns each way, "
              f"1-minute load {result['load_1min']['min']}–{result['load_1min']['max']}")
        for clock, label in (("wall", "CLI wall time"), ("run", "the run (Gateway's durationMs)")):
            print(f"  {label}")
            print(f"    without plugin  {result[f'median_{clock}_without_s'] * 1000:7.1f} ms (median)")
            print(f"    with costhook   {result[f'median_{clock}_with_plugin_s'] * 1000:7.1f} ms (median), "
                  f"{'one budget' if result['budget'] else 'no budget'}")
            print(f"    overhead        {result[f'overhead_{clock}_ms']:+7.1f} ms = {result[f'overhead_{clock}_pct']:+.1f} %"
                  "  (target <= +10 %)")
        rec = result["recorded"]
        print(f"  recorded          {rec['calls']} calls, {rec['nanousd']} nano-USD; expected {rec['expected_calls']}, "
              f"{rec['expected_nanousd']}: {'exact' if rec['exact'] else 'MISMATCH'}")
        for hook, (ms, count) in (result["hooks_ms"] or {}).items():
            print(f"    {hook:<20} {ms:7.1f} ms (median of {count})")
        if result["errors_log"]:
            print("  errors.log:\n" + result["errors_log"])
    return 0 if result["recorded"]["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
