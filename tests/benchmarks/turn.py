"""Benchmark: what costhook's hooks add to a real agent turn (issue 14, target 1).

    python -m tests.benchmarks.turn [--runs 9] [--checkout DIR] [--before DIR] [--no-budget] [--trace] [--work DIR] [--json]

One `claude -p "run echo hi"` turn of the real Claude Code (the end-to-end harness: offline,
against tests/e2e/fake_anthropic.py, in a private network namespace): two API calls and
one Bash tool call. Two layouts, alternated run after run (which goes first alternates
too): one with costhook's hooks as `costhook install --scope user` writes them and one
budget configured (a global daily block far from its limit, so every gate decides), and
one with no hooks at all. costhook runs from a regular install of the checkout (its
package copied into a throw-away venv, as install.sh installs it), not the editable one.

Prints the median wall time of the CLI with and without hooks, the overhead (ms and %),
and checks every run's calls were recorded exactly: the 2 calls of each turn, at the
fake server's fixed price, once the detached work has finished — so a faster hook that
loses or delays rows past the check fails the benchmark (exit 1).
"""

import argparse
import json
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.hot_path import regular_install
from tests.e2e import harness as h

REPO = Path(__file__).resolve().parents[2]
PROMPT = "run echo hi"
SCENARIO = {"FAKE_TOOL": "Bash"}
TURN_NANOUSD = 18_633_150  # the tool call + the final answer at Sonnet 4.5 list prices (test_budgets_e2e)
SETTLE_S = 10.0


def load() -> float:
    return os.getloadavg()[0]


def layout_with_hooks(work: Path, costhook: str, budget: bool, name: str = "hooks") -> tuple[h.Layout, dict]:
    layout = h.make_layout(work / name)
    env = {**h.base_env(layout), "PATH": f"{Path(costhook).parent}:/usr/local/bin:/usr/bin:/bin"}
    steps = [[costhook, "install", "--scope", "user"]]
    if budget:
        steps.append([costhook, "budget", "set", "--scope", "global", "--period", "daily", "--limit", "1000",
                      "--action", "block"])
    for cmd in steps:
        done = subprocess.run(cmd, env=env, cwd=layout.workdir, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[1:])} failed: {done.stdout}{done.stderr}")
    return layout, env


TRACE_WRAPPER = """\
start=$(date +%s%N); "$@"; rc=$?; end=$(date +%s%N)
printf '%s %s %s\\n' "$COSTHOOK_TRACE_EVENT" "$start" "$end" >> "$COSTHOOK_TRACE_LOG"; exit $rc
"""


def trace_hooks(layout: h.Layout) -> Path:
    """Wrap each installed hook command in a shell that logs its event, start and end (ns):
    where the turn's time goes. The wrapper itself costs a few ms per hook."""
    wrapper = layout.root / "trace.sh"
    wrapper.write_text(TRACE_WRAPPER)
    log = layout.root / "trace.log"
    settings = json.loads(layout.settings.read_text())
    for event, entries in settings["hooks"].items():
        for entry in entries:
            for hook in entry["hooks"]:
                hook["command"] = (f"COSTHOOK_TRACE_EVENT={event} COSTHOOK_TRACE_LOG={shlex.quote(str(log))} "
                                   f"/bin/sh {shlex.quote(str(wrapper))} {hook['command']}")
    layout.settings.write_text(json.dumps(settings, indent=2))
    return log


def traced(log: Path) -> dict:
    """event -> [median ms, count] from the trace log."""
    spans = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        event, start, end = line.split()
        spans.setdefault(event, []).append((int(end) - int(start)) / 1e6)
    return {event: [round(statistics.median(ms), 1), len(ms)] for event, ms in sorted(spans.items())}


def layout_without_hooks(work: Path) -> h.Layout:
    layout = h.make_layout(work / "bare")
    layout.settings.write_text("{}\n")
    return layout


def recorded(layout: h.Layout) -> tuple[int, int]:
    """(calls, nano-USD) in the layout's database, read-only."""
    if not layout.db.exists():
        return 0, 0
    conn = sqlite3.connect(f"file:{layout.db}?mode=ro", uri=True, timeout=5)
    try:
        calls, cost = conn.execute("SELECT count(*), coalesce(sum(cost_nanousd), 0) FROM requests").fetchone()
        return calls, cost
    finally:
        conn.close()


def run_turn(layout: h.Layout, claude) -> float:
    run = h.run_claude(layout, PROMPT, SCENARIO, claude=claude)
    if run.rc != 0 or run.timed_out or not run.out or run.out.get("is_error"):
        raise SystemExit(f"the turn failed:\n{run.describe()}")
    return run.wall_s


def alternate(order: list, runs: int, turn) -> tuple[dict, list]:
    """One warm-up turn in each layout (the CLI binary, the venv, the page cache), then
    `runs` rounds, the order reversed every other round: ({name: [wall s]}, 1-minute loads).
    `order`: [(name, layout)]; `turn(layout)` runs one turn and returns its wall time."""
    for _, layout in order:
        turn(layout)
    walls = {name: [] for name, _ in order}
    loads = []
    for i in range(runs):
        for name, layout in order if i % 2 == 0 else order[::-1]:
            loads.append(load())
            walls[name].append(turn(layout))
    return walls, loads


def overheads(walls: dict, loads: list) -> dict:
    """Medians of the `hooks`, `none` (and `before`) turns, and what the hooks add."""
    with_hooks, without = statistics.median(walls["hooks"]), statistics.median(walls["none"])
    compared = None
    if "before" in walls:
        old = statistics.median(walls["before"])
        compared = {"median_s": round(old, 3), "overhead_ms": round((old - without) * 1000, 1),
                    "overhead_pct": round((old / without - 1) * 100, 1)}
    return {
        "before": compared, "median_with_hooks_s": round(with_hooks, 3), "median_without_s": round(without, 3),
        "overhead_ms": round((with_hooks - without) * 1000, 1), "overhead_pct": round((with_hooks / without - 1) * 100, 1),
        "walls": walls, "load_1min": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
    }


def print_overheads(title: str, result: dict) -> None:
    """The lines every turn benchmark prints: the medians, the overhead, the other checkout's."""
    print(f"{title}, {result['runs']} turns each way, "
          f"1-minute load {result['load_1min']['min']}–{result['load_1min']['max']}")
    print(f"  without hooks  {result['median_without_s'] * 1000:7.1f} ms (median)")
    print(f"  with costhook  {result['median_with_hooks_s'] * 1000:7.1f} ms (median), "
          f"{'one budget' if result['budget'] else 'no budget'}")
    print(f"  overhead       {result['overhead_ms']:+7.1f} ms = {result['overhead_pct']:+.1f} %  (target <= +10 %)")
    if result["before"]:
        b = result["before"]
        print(f"  --before       {b['median_s'] * 1000:7.1f} ms (median): {b['overhead_ms']:+.1f} ms = {b['overhead_pct']:+.1f} %")


def measure(claude, costhook: str, work: Path, runs: int, budget: bool, trace: bool = False,
            before: str | None = None) -> dict:
    hooked, _ = layout_with_hooks(work, costhook, budget)
    trace_log = trace_hooks(hooked) if trace else None
    bare = layout_without_hooks(work)
    order = [("hooks", hooked), ("none", bare)]
    if before:
        order.append(("before", layout_with_hooks(work, before, budget, "before")[0]))
    walls, loads = alternate(order, runs, lambda layout: run_turn(layout, claude))
    expected = (2 * (runs + 1), TURN_NANOUSD * (runs + 1))
    deadline = time.monotonic() + SETTLE_S
    while recorded(hooked) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    got = recorded(hooked)
    return {
        **overheads(walls, loads), "runs": runs, "budget": budget,
        "recorded": {"calls": got[0], "nanousd": got[1], "expected_calls": expected[0], "expected_nanousd": expected[1],
                     "exact": got == expected},
        "hooks_ms": traced(trace_log) if trace else None,
        "errors_log": hooked.errors_log.read_text(errors="replace")[-2000:] if hooked.errors_log.exists() else "",
    }


def turn_parser(doc: str) -> argparse.ArgumentParser:
    """The options every turn benchmark takes (the Claude Code and Codex ones)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="Turns each way (median reported).")
    parser.add_argument("--checkout", type=Path, default=REPO, help="The costhook checkout to measure.")
    parser.add_argument("--before", type=Path, help="A second checkout, timed in the same run, interleaved (before/after).")
    parser.add_argument("--no-budget", action="store_true", help="No budget configured (the gates decide nothing).")
    parser.add_argument("--work", type=Path, help="Keep the sandboxes here (default: a temporary folder, removed).")
    parser.add_argument("--json", action="store_true", help="Print the result as JSON only.")
    return parser


def installs(args, work: Path) -> tuple[str, str | None]:
    """The `costhook` of a regular install of `--checkout`, and of `--before` (or None)."""
    costhook = regular_install(args.checkout.resolve(), work / "venv")[1]
    before = regular_install(args.before.resolve(), work / "venv-before")[1] if args.before else None
    return costhook, before


def main(argv=None) -> int:
    parser = turn_parser(__doc__)
    parser.add_argument("--trace", action="store_true",
                        help="Also time each hook event (a shell wrapper adds a few ms to each).")
    args = parser.parse_args(argv)
    claude, reason = h.claude_binary(install=False)
    if claude is None:
        print(f"turn benchmark: {reason} (python3 tests/e2e/harness.py --install)", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="costhook-turn-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        costhook, before = installs(args, work)
        result = measure(claude, costhook, work, args.runs, not args.no_budget, args.trace, before)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result["claude_code"] = h.claude_version(claude)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_overheads(f"Claude Code {result['claude_code']}, `claude -p {PROMPT!r}`", result)
        rec = result["recorded"]
        print(f"  recorded       {rec['calls']} calls, {rec['nanousd']} nano-USD; expected {rec['expected_calls']}, "
              f"{rec['expected_nanousd']}: {'exact' if rec['exact'] else 'MISMATCH'}")
        for event, (ms, count) in (result["hooks_ms"] or {}).items():
            print(f"    {event:<20} {ms:7.1f} ms (median of {count})")
        if result["errors_log"]:
            print("  errors.log:\n" + result["errors_log"])
    return 0 if result["recorded"]["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
