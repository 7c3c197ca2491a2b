"""Benchmark: what costhook's hooks add to a real Codex turn (issue 14, target 2).

    python -m tests.benchmarks.codex_turn [--runs 9] [--checkout DIR] [--before DIR] [--no-budget] [--work DIR] [--json]

One `codex exec "please TOOLS:1 now"` turn of the real Codex CLI 0.171.0 (the end-to-end
harness: offline, in a private network namespace, against tests/e2e/fake_responses.py): two
billed responses and one shell tool call. Two sandboxes, alternated run after run (which
goes first alternates too): one with costhook's hooks as `costhook install --agent codex`
writes them and one budget configured (a global daily block far from its limit, so every
gate decides), one with no hooks at all (and, with `--before`, a third with another
checkout's hooks, for a before/after in one run). costhook runs from a regular install of the
checkout (hot_path.regular_install). Each run's wall time includes the harness's own start
in the namespace, the same for both sandboxes.

Prints the medians with and without hooks and the overhead, and checks that every billed
response of the hooked sandbox was recorded once its background work settled (exit 1 if
not).
"""

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.turn import alternate, installs, overheads, print_overheads, turn_parser
from tests.e2e import codex_harness as cx

PROMPT = "please TOOLS:1 now"
BUDGET = '[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 100000\naction = "block"\n'


def hooked_sandbox(root: Path, codex: Path, costhook: str, budget: bool) -> cx.Sandbox:
    box = cx.Sandbox.make(root, codex)
    env = {**box.env(), "PATH": f"{Path(costhook).parent}:/usr/local/bin:/usr/bin:/bin"}
    done = subprocess.run([costhook, "install", "--agent", "codex"], env=env, cwd=box.work,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"install failed: {done.stdout}{done.stderr}")
    if budget:
        box.costhook_config.write_text(BUDGET)
    return box


def recorded(box: cx.Sandbox) -> int:
    if not box.db.exists():
        return 0
    conn = sqlite3.connect(f"file:{box.db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT count(*) FROM requests WHERE agent = 'codex'").fetchone()[0]
    finally:
        conn.close()


def turn(box: cx.Sandbox) -> float:
    run = box.run(PROMPT)
    if run.rc != 0:
        raise SystemExit(f"the turn failed: {run.stderr[-2000:]}")
    return run.wall_s


def measure(codex: Path, costhook: str, work: Path, runs: int, budget: bool, before: str | None = None) -> dict:
    hooked = hooked_sandbox(work / "hooks", codex, costhook, budget)
    bare = cx.Sandbox.make(work / "bare", codex)
    order = [("hooks", hooked), ("none", bare)]
    if before:
        order.append(("before", hooked_sandbox(work / "before", codex, before, budget)))
    walls, loads = alternate(order, runs, turn)
    hooked.wait_for_hooks(60)
    billed = sum(len(run.billed) for run in hooked.runs)
    return {
        **overheads(walls, loads), "runs": runs, "budget": budget,
        "recorded": {"rows": recorded(hooked), "billed": billed, "exact": recorded(hooked) == billed},
    }


def main(argv=None) -> int:
    args = turn_parser(__doc__).parse_args(argv)
    codex, reason = cx.codex_binary(install=False)
    if codex is None:
        print(f"codex turn benchmark: {reason} (python3 tests/e2e/codex_harness.py --install)", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="costhook-codex-turn-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        costhook, before = installs(args, work)
        result = measure(codex, costhook, work, args.runs, not args.no_budget, before)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_overheads(f"Codex 0.171.0, `codex exec {PROMPT!r}`", result)
        rec = result["recorded"]
        print(f"  recorded       {rec['rows']} rows for {rec['billed']} billed responses: "
              f"{'exact' if rec['exact'] else 'MISMATCH'}")
    return 0 if result["recorded"]["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
