"""Timings of the analytics views and the dashboard on a 1,000,000-row database.

    python -m tests.benchmarks.views_bench [--db PATH] [--runs 5] [--now 2026-11-29T23:00:00Z]

Without --db, a database is generated once with tests/benchmarks/generate.py (1M synthetic
calls over 90 days, ~11,000 a day: every 7-day view reads ~78,000 calls, every 30-day view
~333,000) and kept in ~/.cache/costhook-bench/views-1m.db for the next run.

For each view it prints the median and best of --runs in-process calls (the function the
CLI calls) and of --runs `costhook ...` processes (start to exit, what a user waits for),
and, measured in the same run so that a busy machine shows as such, two yardsticks:
`python -c pass` and one full scan of `requests` (SELECT count(*), sum(cost_nanousd)).
Target: every view and the dashboard under 1 s. Output: one JSON object.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COSTHOOK = str(Path(sys.executable).parent / "costhook")
DEFAULT_DB = Path.home() / ".cache" / "costhook-bench" / "views-1m.db"
NOW = "2026-11-29T23:00:00Z"  # the generated data runs from 2026-09-01 to 2026-11-30


def timed(fn, runs: int) -> dict:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 3), "best_s": round(min(times), 3)}


def process(args: list, runs: int, env: dict) -> dict:
    def run():
        proc = subprocess.run(args, capture_output=True, env=env, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode(errors="replace").strip().splitlines()[-1][:300])

    try:
        return timed(run, runs)
    except RuntimeError as exc:
        return {"error": str(exc)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="an existing costhook database (default: generate 1M rows once)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--now", default=NOW)
    args = parser.parse_args(argv)

    db = args.db or DEFAULT_DB
    if not db.exists():
        if args.db:
            raise SystemExit(f"{db} does not exist")
        db.parent.mkdir(parents=True, exist_ok=True)
        from tests.benchmarks.generate import generate_db

        print(f"generating {args.rows:,} rows into {db} (once)…", file=sys.stderr)
        generate_db(db, args.rows)
    os.environ["COSTHOOK_DB"] = str(db)
    home = tempfile.mkdtemp(prefix="costhook-views-bench-")
    env = {**os.environ, "COSTHOOK_DB": str(db), "COSTHOOK_HOME": home, "XDG_CONFIG_HOME": os.path.join(home, "none")}
    env.pop("COSTHOOK_CONFIG", None)  # no config file at all
    os.environ.pop("COSTHOOK_CONFIG", None)
    os.environ.update(env)

    from costhook import timeframe
    from costhook.views import activity, anomalies, cache, spend
    from costhook.dashboard import note as dashboard
    from costhook.pricing import prices as pricing
    from costhook.views import report as reports
    from costhook.store import db as database

    conn = database.connect(db)
    rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    now = timeframe.parse_now(args.now)
    tz = timeframe.local_zone("UTC")
    table = pricing.load_table()
    week, month = timeframe.period("7d", now, tz), timeframe.period("30d", now, tz)
    session = conn.execute("SELECT session_id FROM requests ORDER BY timestamp DESC LIMIT 1").fetchone()[0]
    runs = args.runs

    out = {"rows": rows, "runs": runs, "now": args.now, "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    # Yardsticks, measured in this run.
    out["baseline"] = {
        "python_c_pass": process([sys.executable, "-c", "pass"], runs, env),
        "full_scan_sql": timed(lambda: conn.execute("SELECT count(*), sum(cost_nanousd) FROM requests").fetchone(), runs),
    }
    in_process = {
        "summary": lambda: spend.summary(conn, now, tz),
        "top --by session (week)": lambda: spend.top(conn, "session", timeframe.period("week", now, tz), 5),
        "top --by tool (week)": lambda: spend.top(conn, "tool", timeframe.period("week", now, tz), 5),
        "top --by branch (week)": lambda: spend.top(conn, "branch", timeframe.period("week", now, tz), 5),
        "tree": lambda: activity.tree(conn, session),
        "tools (7d)": lambda: activity.by_tool(conn, week),
        "cache (7d)": lambda: cache.cache_efficiency(conn, week, now, table),
        "anomalies (30 days)": lambda: anomalies.anomalies(conn, now, tz, 30),
        "whatif (30 days)": lambda: cache.whatif(conn, month, now, by=("project",), table=table),
        "idle (7d)": lambda: activity.idle(conn, week),
        "efficiency (7d)": lambda: activity.efficiency(conn, week),
        "report --by message (1 session)": lambda: reports.report(conn, "message", filters={"session_id": session}, table=table),
        "report --by hour (7d)": lambda: reports.report(conn, "hour", win=week.window(), tz=tz),
        "blocks (7d)": lambda: activity.blocks(conn, now, week),
        "trends (30 days)": lambda: spend.trends(conn, now, tz, 30),
        "dashboard (render)": lambda: dashboard.render(conn, {}, now=now, tz=tz, table=table, db_path=db),
    }
    out["in_process"] = {}
    for name, fn in in_process.items():
        try:
            fn()  # warm the page cache and the price lookups once
        except Exception as exc:  # report it, time the rest
            out["in_process"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        out["in_process"][name] = timed(fn, runs)
    vault = tempfile.mkdtemp(prefix="costhook-vault-")
    common = ["--now", args.now, "--tz", "UTC"]
    commands = {
        "summary": ["summary", *common],
        "top --by session --period week": ["top", "--by", "session", "--period", "week", *common],
        "top --by tool --period week": ["top", "--by", "tool", "--period", "week", *common],
        "tree": ["tree", session, *common],
        "tools": ["tools", *common],
        "cache": ["cache", *common],
        "anomalies": ["anomalies", *common],
        "whatif --days 30": ["whatif", "--days", "30", *common],
        "idle": ["idle", *common],
        "efficiency": ["efficiency", *common],
        "report --by message --session": ["report", "--by", "message", "--session", session, "--format", "json"],
        "report --by hour --since (7 days)": ["report", "--by", "hour", "--since", "2026-11-23", "--tz", "UTC"],
        "blocks": ["blocks", *common],
        "trends --days 30": ["trends", "--days", "30", *common],
        "dashboard": ["dashboard", "--vault", vault, *common],
    }
    out["cli"] = {name: process([COSTHOOK, *cmd], runs, env) for name, cmd in commands.items()}
    pass_s = out["baseline"]["python_c_pass"]["median_s"] or 1e-9
    scan_s = out["baseline"]["full_scan_sql"]["median_s"] or 1e-9
    for section in ("in_process", "cli"):
        for timing in out[section].values():
            if "error" in timing:
                continue
            timing["x_full_scan"] = round(timing["median_s"] / scan_s, 2)
            if section == "cli":
                timing["x_python_pass"] = round(timing["median_s"] / pass_s, 1)
    timed_cli = {k: v for k, v in out["cli"].items() if "error" not in v}
    slowest = max(timed_cli.items(), key=lambda kv: kv[1]["median_s"]) if timed_cli else ("-", {"median_s": None})
    out["verdict"] = {
        "target_s": 1.0,
        "slowest_cli": slowest[0], "slowest_cli_median_s": slowest[1]["median_s"],
        "all_under_target": all("error" not in t and t["median_s"] < 1.0 for s in ("in_process", "cli") for t in out[s].values()),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
