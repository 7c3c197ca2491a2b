"""Benchmark: `costhook statusline` process time with a 1,000,000-row database.

    python -m tests.benchmarks.statusline_bench [--rows 1000000] [--runs 40] [--keep DIR]

Builds a database in a temporary directory (schema via costhook.store.db.connect(), rows
via one executemany in one transaction, then the spend rollup), with a config holding
three budgets (daily global, monthly project, session tokens) so every query the
statusline can make is made. The session shown has 2,000 calls (main thread and
sub-agents). Then it times, interleaved, `python -c pass` and `costhook statusline`
(start to exit, stdin = a 2.1.330 statusLine payload with rate_limits; with the
budgets and without a config) and prints medians and 90th percentiles as JSON. `main()` returns 0 when the statusline's median is under the target
(50 ms), 1 otherwise; `run()` returns the numbers for a caller.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

TARGET_MS = 50.0
SESSION = "bench-session-0000-0000-000000000000"
SESSION_CALLS = 2000
PROJECTS = [f"/home/dev/project-{i:02d}" for i in range(30)]
MODELS = ["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-6"]
CONFIG = """timezone = "UTC"
[[budgets]]
scope = "global"
period = "daily"
limit = 2000
[[budgets]]
scope = "project:project-00"
period = "monthly"
limit = 5000
action = "block"
[[budgets]]
scope = "session"
period = "session"
tokens = 500000000
"""


def payload(now: float) -> bytes:
    return json.dumps({
        "session_id": SESSION,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-project-00/{SESSION}.jsonl",
        "cwd": PROJECTS[0],
        "model": {"id": MODELS[0], "display_name": "Opus 4.5"},
        "workspace": {"current_dir": PROJECTS[0], "project_dir": PROJECTS[0], "added_dirs": []},
        "version": "2.1.330",
        "output_style": {"name": "default"},
        "cost": {"total_cost_usd": 12.3456, "total_duration_ms": 460200, "total_api_duration_ms": 61875,
                 "total_lines_added": 3, "total_lines_removed": 1},
        "context_window": {"total_input_tokens": 23034, "total_output_tokens": 58, "context_window_size": 200000,
                           "current_usage": {"input_tokens": 4, "output_tokens": 58, "cache_creation_input_tokens": 350,
                                             "cache_read_input_tokens": 22680},
                           "used_percentage": 12, "remaining_percentage": 88},
        "exceeds_200k_tokens": False,
        "fast_mode": False,
        "rate_limits": {"five_hour": {"used_percentage": 42, "resets_at": int(now) + 3600},
                        "seven_day": {"used_percentage": 12, "resets_at": int(now) + 5 * 86400}},
    }).encode()


def build_db(home: Path, rows: int, seed: int = 1) -> dict:
    """A costhook database with `rows` synthetic calls over the last 60 days."""
    from costhook.store import db, rollup

    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=60)
    span = (now - start).total_seconds()

    def stamp(offset: float) -> str:
        moment = start + timedelta(seconds=offset)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    def row(number: int, session: str, project: str, when: float, agent_id=None):
        model = MODELS[number % len(MODELS)]
        cost = None if number % 997 == 0 else rng.randrange(10_000, 200_000_000)
        return (
            f"msg_{number:08d}:req_{number:08d}", "claude", session, agent_id, "Explore" if agent_id else None,
            project, stamp(when), model, rng.randrange(1, 50), rng.randrange(10, 4000), rng.randrange(0, 5000),
            rng.randrange(0, 2000), rng.randrange(0, 150_000), cost, "unpriced" if cost is None else "computed",
        )

    began = time.perf_counter()
    conn = db.connect(home / "costhook.db")
    data = []
    for number in range(rows - SESSION_CALLS):
        session = f"session-{number // 500:06d}"
        project = PROJECTS[(number // 500) % len(PROJECTS)]
        data.append(row(number, session, project, rng.random() * span))
    for index in range(SESSION_CALLS):  # today's long session, a third of it in sub-agents
        number = rows - SESSION_CALLS + index
        agent = f"a{index % 3:016x}" if index % 3 else None
        data.append(row(number, SESSION, PROJECTS[0], span - 3600 + index * 1.5, agent))
    columns = ("key, agent, session_id, agent_id, agent_type, project, timestamp, model, input_tokens, output_tokens, "
               "cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, cost_nanousd, cost_source")
    conn.execute("PRAGMA cache_size = -500000")  # 500 MB: index pages stay in memory while loading
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests' AND sql IS NOT NULL"
    ).fetchall()
    with db.transaction(conn):  # load without the secondary indexes, then build them (same schema, faster)
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.executemany(f"INSERT INTO requests ({columns}) VALUES ({', '.join('?' * 15)})", data)
        for _, sql in indexes:
            conn.execute(sql)
        rollup.rebuild_spend(conn)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    count = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    conn.close()
    return {"rows": count, "build_s": round(time.perf_counter() - began, 1)}


def time_process(argv: list, stdin: bytes, env: dict) -> float:
    began = time.perf_counter()
    result = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    elapsed = (time.perf_counter() - began) * 1000
    if result.returncode != 0 or result.stderr:
        raise RuntimeError(f"{argv} failed: {result.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def run(rows: int = 1_000_000, runs: int = 40, keep: str | None = None) -> dict:
    if keep:
        return measure(Path(keep), rows, runs)
    with tempfile.TemporaryDirectory(prefix="costhook-statusline-bench-") as workdir:
        return measure(Path(workdir), rows, runs)


def measure(workdir: Path, rows: int, runs: int) -> dict:
    home = workdir / "home"
    db = home / "costhook.db"
    built = {"rows": None, "build_s": 0.0, "reused": True}
    if not db.exists():
        built = {**build_db(home, rows), "reused": False}
    config = workdir / "config.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "COSTHOOK_HOME": str(home), "COSTHOOK_DB": str(db), "COSTHOOK_CONFIG": str(config)}
    env.pop("NO_COLOR", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed costhook has its .pyc files; so do we after the warm-up
    costhook = str(Path(sys.executable).parent / "costhook")
    stdin = payload(time.time())
    line = subprocess.run([costhook, "statusline", "--plain"], input=stdin, capture_output=True, env=env).stdout
    bare = {k: v for k, v in env.items() if k != "COSTHOOK_CONFIG"}  # no budgets: the session and rate limits only
    bare["XDG_CONFIG_HOME"] = str(workdir / "no-config")
    commands = {
        "python_pass_ms": ([sys.executable, "-c", "pass"], b"", env),
        "statusline_ms": ([costhook, "statusline"], stdin, env),
        "statusline_no_budgets_ms": ([costhook, "statusline"], stdin, bare),
    }
    times = {name: [] for name in commands}
    for round_ in range(runs + 3):  # 3 warm-up rounds: page cache, .pyc files, the validated-config cache
        for name, (argv, data, environment) in commands.items():
            elapsed = time_process(argv, data, environment)
            if round_ >= 3:
                times[name].append(elapsed)
    errors = home / "errors.log"
    return {
        "db": {**built, "path": str(db), "size_mb": round(db.stat().st_size / 2**20)},
        "runs": runs,
        "line": line.decode().rstrip("\n"),
        **{name: {"p50": round(statistics.median(t), 1), "p90": round(quantile(t, 0.9), 1)} for name, t in times.items()},
        "target_ms": TARGET_MS,
        "errors_logged": errors.read_text().count("\n") if errors.exists() else 0,
    }


def quantile(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--keep", help="build (or reuse) the database in this directory instead of a temporary one")
    args = parser.parse_args(argv)
    result = run(args.rows, args.runs, args.keep)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result["statusline_ms"]["p50"] < TARGET_MS and not result["errors_logged"] else 1


if __name__ == "__main__":
    sys.exit(main())
