"""Benchmark: every view of two costhook checkouts as `costhook …` processes, interleaved.

    python -m tests.benchmarks.views_before_after --before DIR [--after DIR] --db PATH
                                                  [--runs 5] [--now 2026-11-29T23:00:00Z]

For a change to the views (issue 14: every view under 1 s at 5,000,000 rows): each
checkout's package is copied into a throw-away venv of its own, as hot_path.py does (no
editable finder), and gets its own copy of the database at PATH (a newer schema migrates
its copy once, before anything is timed; views_bench.py's generated database is the
usual one). Then, view after view and round after round, the two alternate (which goes
first alternates too), so a busy machine slows both alike. Prints per view the median wall
time of each and the after/before ratio, as JSON; the machine's load is in the output.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.hot_path import regular_install
from tests.benchmarks.views_bench import NOW

REPO = Path(__file__).resolve().parents[2]
STATUSLINE_PAYLOAD = {"session_id": None, "model": {"id": "claude-opus-4-5", "display_name": "Opus"},
                      "workspace": {"current_dir": "/home/dev/acme-api"}, "cost": {"total_cost_usd": 1.0}}


def views(now: str, session: str) -> dict:
    common = ["--now", now, "--tz", "UTC"]
    return {
        "report --by day": ["report", "--by", "day", "--tz", "UTC", "--format", "json"],
        "report --by session": ["report", "--by", "session", "--tz", "UTC", "--format", "json"],
        "report --by model --period 30d": ["report", "--by", "model", "--period", "30d", "--tz", "UTC"],
        "summary": ["summary", *common],
        "top --by session --period week": ["top", "--by", "session", "--period", "week", *common],
        "top --by tool --period week": ["top", "--by", "tool", "--period", "week", *common],
        "trends --days 30": ["trends", "--days", "30", *common],
        "anomalies": ["anomalies", *common],
        "tree": ["tree", session, *common],
        "tools": ["tools", *common],
        "cache": ["cache", *common],
        "idle": ["idle", *common],
        "efficiency": ["efficiency", *common],
        "whatif --days 30": ["whatif", "--days", "30", *common],
        "blocks": ["blocks", *common],
        "budget status": ["budget", "status", *common],
        "dashboard": ["dashboard", "--vault", "{vault}", *common],
        "statusline": ["statusline"],
    }


class Side:
    def __init__(self, label: str, checkout: Path, work: Path, db: Path):
        self.label = label
        self.work = work / label
        self.work.mkdir(parents=True)
        self.python, self.costhook = regular_install(checkout, self.work / "venv")
        self.vault = self.work / "vault"
        self.vault.mkdir()
        self.db = self.work / "costhook.db"
        shutil.copyfile(db, self.db)
        (self.work / "config.toml").write_text(
            '[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 50\n'
            '[[budgets]]\nscope = "global"\nperiod = "monthly"\nlimit = 900\n')
        base = {k: v for k, v in os.environ.items() if not k.startswith(("COSTHOOK_", "CLAUDE_"))
                and k not in ("PYTHONDONTWRITEBYTECODE", "NO_COLOR")}
        self.env = {**base, "COSTHOOK_HOME": str(self.work), "COSTHOOK_DB": str(self.db),
                    "COSTHOOK_CONFIG": str(self.work / "config.toml")}
        subprocess.run([self.costhook, "summary"], env=self.env, capture_output=True, check=True, timeout=3600)  # migrate
        self.times: dict = {}
        self.errors: dict = {}

    def run(self, name: str, args: list, stdin: bytes | None = None) -> None:
        args = [a.replace("{vault}", str(self.vault)) for a in args]
        start = time.perf_counter()
        proc = subprocess.run([self.costhook, *args], env=self.env, input=stdin, capture_output=True, timeout=600)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            self.errors[name] = proc.stderr.decode(errors="replace").strip()[-300:]
        self.times.setdefault(name, []).append(elapsed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout to compare with (a git worktree)")
    parser.add_argument("--after", type=Path, default=REPO, help="default: this checkout")
    parser.add_argument("--db", type=Path, required=True, help="a costhook database (e.g. views_bench's 5M-row one)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--now", default=NOW)
    parser.add_argument("--only", action="append", help="time only these views (repeatable)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="costhook-views-ba-"))
    try:
        sides = [Side("before", args.before, work, args.db), Side("after", args.after, work, args.db)]
        import sqlite3

        conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
        rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        session = conn.execute("SELECT session_id FROM requests ORDER BY timestamp DESC LIMIT 1").fetchone()[0]
        conn.close()
        payload = json.dumps({**STATUSLINE_PAYLOAD, "session_id": session}).encode()
        load_start = os.getloadavg()
        table = views(args.now, session)
        for name, cmd in table.items():
            if args.only and name not in args.only:
                continue
            for side in sides:  # warm-up: page cache, .pyc
                side.run("warm-up", cmd, payload if name == "statusline" else None)
            for i in range(args.runs):
                for side in (sides if i % 2 == 0 else sides[::-1]):
                    side.run(name, cmd, payload if name == "statusline" else None)
            medians = [round(statistics.median(side.times[name]), 3) for side in sides]
            print(f"{name}: before {medians[0]} s, after {medians[1]} s, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        out = {"rows": rows, "runs": args.runs, "now": args.now,
               "machine": {"cpus": os.cpu_count(), "load_at_start": load_start, "load_at_end": os.getloadavg()},
               "views": {}}
        for name in table:
            if name not in sides[0].times:
                continue
            before, after = (statistics.median(side.times[name]) for side in sides)
            out["views"][name] = {"before_s": round(before, 3), "after_s": round(after, 3), "ratio": round(after / before, 3)}
            for side in sides:
                if name in side.errors:
                    out["views"][name][f"{side.label}_error"] = side.errors[name]
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
