"""Benchmark: `costhook hook --agent codex` against `python -c pass` (design.md §8: ≤ 4 ×).

    python -m tests.benchmarks.codex_hook [--rollout-mb 50] [--rows 1000000] [--runs 21] [--quick] [--keep DIR]

A plain copy of this checkout's package in a throw-away venv, as install.sh installs it
(hot_path.regular_install), a costhook database of `--rows` calls (generate.generate_db)
and a Codex rollout of `--rollout-mb` MB in the shape Codex 0.171.0 writes (a tool call
per response, its output, `token_count` events, a `token_usage_record` per response),
already ingested. Then, round after round: `python -c pass`; one response appended and
the hook for **PostToolUse** (no budgets: Codex waits only for the process that answers,
the recording goes on in the background, timed apart); one response appended and
**PreToolUse with a budget configured** (the gate: it catches the rollout up in the
foreground, then decides); and **Stop** with nothing new. Prints medians (wall, CPU of
the answering process, the background's wall) and the ratios to `python -c pass` as
JSON; checks that the rows stored equal the responses written.
"""

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

from tests.benchmarks import generate
from tests.benchmarks.hot_path import regular_install
from tests.benchmarks.run import HOOK_RATIO_TARGET, run_measured

REPO = Path(__file__).resolve().parents[2]
THREAD = "019b0000-0000-7000-8000-00000000c0de"
BUDGET = '[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 100000\naction = "block"\n'


class Rollout:
    """A Codex rollout that grows one response at a time; counts what it holds."""

    def __init__(self, codex_home: Path, seed: int = 7):
        folder = codex_home / "sessions" / "2026" / "12" / "06"
        folder.mkdir(parents=True)
        self.path = folder / f"rollout-2026-12-06T08-00-00-{THREAD}.jsonl"
        self.rng = random.Random(seed)
        self.responses = self.n = 0
        self.write({"type": "session_meta", "payload": {"id": THREAD, "session_id": THREAD, "cwd": "/home/dev/bench",
                    "originator": "codex_exec", "cli_version": "0.171.0", "source": "exec", "thread_source": "user",
                    "base_instructions": {"text": "You are Codex. " * 1200}}})
        self.turn()

    def write(self, *lines: dict) -> int:
        text = "".join(json.dumps({"timestamp": f"2026-12-06T08:{(self.n // 60) % 60:02d}:{self.n % 60:02d}.000Z",
                                   "ordinal": self.n, **line}) + "\n" for line in lines)
        self.n += len(lines)
        with open(self.path, "a") as f:
            f.write(text)
        return len(text)

    def turn(self) -> None:
        self.turn_id = f"turn-{self.n}"
        self.write({"type": "turn_context", "payload": {"turn_id": self.turn_id, "model": "gpt-5.5", "cwd": "/home/dev/bench"}},
                   {"type": "event_msg", "payload": {"type": "task_started", "turn_id": self.turn_id}})

    def append_response(self) -> int:
        """One billed response asking for a tool, the tool's output (5-60 KB) and the events
        around it: about what one tool call adds to a real rollout."""
        self.responses += 1
        k, rng = self.responses, self.rng
        usage = {"input_tokens": 20_000 + k, "cached_input_tokens": 15_000, "cache_write_input_tokens": 0,
                 "output_tokens": 300 + k % 97, "reasoning_output_tokens": 120, "total_tokens": 20_300 + k + k % 97}
        output = "x" * rng.randint(5_000, 60_000)
        return self.write(
            {"type": "response_item", "payload": {"type": "function_call", "name": "exec_command", "call_id": f"call_{k}",
                                                  "arguments": json.dumps({"cmd": "npm test"})}},
            {"type": "token_usage_record", "payload": {"thread_id": THREAD, "session_id": THREAD, "turn_id": self.turn_id,
                                                       "response_id": f"resp_bench_{k}", "usage": usage,
                                                       "turn_token_usage": usage, "thread_token_usage": usage}},
            {"type": "event_msg", "payload": {"type": "item_completed", "item": {"type": "CommandExecution",
                                                                                 "aggregated_output": output}}},
            {"type": "response_item", "payload": {"type": "function_call_output", "call_id": f"call_{k}", "output": output}},
            {"type": "event_msg", "payload": {"type": "token_count", "info": {"last_token_usage": usage,
                                                                              "total_token_usage": usage}}},
        )

    def grow(self, megabytes: float) -> None:
        while self.path.stat().st_size < megabytes * 1e6:
            if self.responses % 40 == 39:
                self.turn()
            self.append_response()


def payload(event: str, rollout: Rollout, n: int) -> bytes:
    data = {"session_id": THREAD, "transcript_path": str(rollout.path), "cwd": "/home/dev/bench",
            "hook_event_name": event, "model": "gpt-5.5", "turn_id": rollout.turn_id, "permission_mode": "bypassPermissions"}
    if event in ("PreToolUse", "PostToolUse"):
        data.update(tool_name="Bash", tool_input={"command": "npm test"}, tool_use_id=f"call_bench_{n}")
    if event == "PostToolUse":
        data["tool_response"] = "ok\n" * 20
    if event == "Stop":
        data.update(stop_hook_active=False, last_assistant_message="Done.")
    return json.dumps(data).encode()


def median_ms(runs, attr: str) -> float:
    return round(statistics.median(getattr(r, attr) for r in runs) * 1000, 2)


def measure(work: Path, rows: int, rollout_mb: float, runs: int) -> dict:
    python, costhook = regular_install(REPO, work / "venv")
    home = work / "home"
    home.mkdir()
    db = home / "costhook.db"
    generate.generate_db(db, rows)
    rollout = Rollout(work / "codex-home")
    rollout.grow(rollout_mb)
    (work / "budget.toml").write_text(BUDGET)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COSTHOOK_", "CLAUDE_", "CODEX_"))
            and k != "PYTHONDONTWRITEBYTECODE"}
    base.update(COSTHOOK_HOME=str(home), COSTHOOK_DB=str(db), CODEX_HOME=str(work / "codex-home"))
    plain = {**base, "XDG_CONFIG_HOME": str(work / "no-config")}
    budgeted = {**base, "COSTHOOK_CONFIG": str(work / "budget.toml")}
    scratch = work / "scratch"
    scratch.mkdir()
    cmd = [costhook, "hook", "--agent", "codex"]
    first = run_measured(cmd, env=plain, stdin=payload("Stop", rollout, 0), scratch=scratch)  # the backlog, in the background
    times = {"python_pass": [], "post_tool_use": [], "pre_tool_use_budget": [], "stop_nothing_new": []}
    for i in range(runs + 2):
        keep = i >= 2  # two warm-up rounds
        measured = {"python_pass": run_measured([python, "-c", "pass"], env=plain, scratch=scratch)}
        rollout.append_response()
        measured["post_tool_use"] = run_measured(cmd, env=plain, stdin=payload("PostToolUse", rollout, i), scratch=scratch)
        rollout.append_response()
        measured["pre_tool_use_budget"] = run_measured(cmd, env=budgeted, stdin=payload("PreToolUse", rollout, i),
                                                       scratch=scratch)
        measured["stop_nothing_new"] = run_measured(cmd, env=plain, stdin=payload("Stop", rollout, i), scratch=scratch)
        for name, run in measured.items():
            if run.returncode != 0 or (name != "python_pass" and run.stderr):
                raise SystemExit(f"{name} failed: rc={run.returncode} {run.stdout[:200]!r} {run.stderr[:300]!r}")
            if keep:
                times[name].append(run)
    result = {"rows": rows, "rollout_mb": round(rollout.path.stat().st_size / 1e6, 1), "runs": runs,
              "load_1min": round(os.getloadavg()[0], 2), "first_hook_backlog_s": round(first.background, 2)}
    passes = times["python_pass"]
    for name, measured in times.items():
        entry = {"wall_ms": median_ms(measured, "wall"), "cpu_ms": median_ms(measured, "cpu")}
        if name != "python_pass":
            entry["background_ms"] = median_ms(measured, "background")
            entry["ratio_wall"] = round(statistics.median(r.wall for r in measured) / statistics.median(r.wall for r in passes), 2)
            entry["ratio_cpu"] = round(statistics.median(r.cpu for r in measured) / statistics.median(r.cpu for r in passes), 2)
            entry["target"] = f"<= {HOOK_RATIO_TARGET:g} x"
            entry["ok"] = entry["ratio_wall"] <= HOOK_RATIO_TARGET
        result[name] = entry
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT count(*) FROM requests WHERE session_id = ?", (THREAD,)).fetchone()[0]
    tools = conn.execute("SELECT count(*) FROM tool_calls WHERE session_id = ?", (THREAD,)).fetchone()[0]
    conn.close()
    result["rows_equal_responses"] = stored == rollout.responses
    result["tool_calls_recorded"] = tools
    errors = home / "errors.log"
    result["errors_logged"] = errors.read_text().count("\n") if errors.exists() else 0
    return result


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rollout-mb", type=float, default=50)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, a 10 MB rollout, 7 runs")
    parser.add_argument("--keep", type=Path, help="work in this (new) directory and keep it")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.rollout_mb, args.runs = 100_000, 10, 7
    if args.keep:
        args.keep.mkdir(parents=True)
        result = measure(args.keep, args.rows, args.rollout_mb, args.runs)
    else:
        with tempfile.TemporaryDirectory(prefix="costhook-codex-hook-") as work:
            result = measure(Path(work), args.rows, args.rollout_mb, args.runs)
    print(json.dumps(result, indent=2))
    return 0 if result["rows_equal_responses"] and not result["errors_logged"] else 1


if __name__ == "__main__":
    sys.exit(main())
