"""Benchmark: the team ledger on a real PostgreSQL server (tests/pgserver.py), issue 15's targets.

    python -m tests.benchmarks.team_bench [--calls 1000000] [--machines 20] [--server-calls 5000000]
                                          [--runs 5] [--hook-runs 15] [--keep DIR] [--push-only]
                                          [--dbs DIR] [--concurrent N]

1. push: --machines costhook databases of --calls/--machines synthetic calls each
   (tests/benchmarks/generate.py's `db`, one seed per machine), each pushed by a first
   `costhook sync` process, one machine after the other; calls/s over the sum of the
   sync processes' wall times (start to exit: COPY, upsert, rollup, pulls). Target ≥ 20,000.
2. the server is grown to --server-calls calls (copies of the pushed calls under other
   keys and machine names, rollup included), then `costhook report --team` processes are
   timed (--by day, model, user). Target < 1 s.
3. pull: the team totals budgets read, pulled after another machine pushed one call
   (incremental: what a sync does every few minutes), and the first pull of the whole
   40-day window. Target < 100 ms.
4. the hook with [team] configured vs without, interleaved with `python -c pass`
   (PostToolUse, one new call each run). Target: unchanged.
Prints one JSON object.
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

from tests import pgserver

COSTHOOK = str(Path(sys.executable).parent / "costhook")


def machine_env(root: Path, index: int, url: str, team: bool = True) -> dict:
    home = root / f"m{index:02d}"
    config = home / "config.toml"
    if not config.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        config.write_text(f'[team]\nuser = "user{index % 7}"\nmachine = "m{index:02d}"\nproject_name = "basename"\n')
        config.chmod(0o600)
    env = {**os.environ, "COSTHOOK_HOME": str(home), "COSTHOOK_DB": str(home / "costhook.db"),
           "COSTHOOK_CONFIG": str(config), "PGPASSWORD": pgserver.PASSWORD}
    env.pop("COSTHOOK_TEAM_URL", None)
    if team:
        env["COSTHOOK_TEAM_URL"] = url
    return env


def timed_process(args: list, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, check=False, env=env, capture_output=True, timeout=3600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{args}: {proc.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def grow_server(url: str, copies: int) -> None:
    """Copies of every call under other keys and machine names, and the rollup to match:
    each dimension's sums times (copies + 1), the copies' machines as rows of their own."""
    import psycopg

    from costhook.team import server

    with psycopg.connect(url, password=pgserver.PASSWORD, autocommit=True) as pg:
        columns = [r[0] for r in pg.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                            "'costhook' AND table_name = 'calls' ORDER BY ordinal_position")]
        for n in range(1, copies + 1):
            picked = ", ".join(f"key || '#{n}'" if c == "key" else f"origin_machine || '-copy{n}'"
                               if c == "origin_machine" else c for c in columns)
            pg.execute(f"INSERT INTO costhook.calls ({', '.join(columns)}) SELECT {picked} FROM costhook.calls "
                       "WHERE position('#' in key) = 0")
            measures = ", ".join(server.MEASURES)
            pg.execute(f"INSERT INTO costhook.spend (dim, key, bucket, {measures}, rev) "
                       f"SELECT dim, key || '-copy{n}', bucket, {measures}, rev FROM costhook.spend "
                       "WHERE dim = 'machine' AND position('-copy' in key) = 0")
        sets = ", ".join(f"{m} = {m} * {copies + 1}" for m in server.MEASURES)
        pg.execute(f"UPDATE costhook.spend SET {sets} WHERE dim <> 'machine'")
        pg.execute("VACUUM ANALYZE costhook.calls")
        pg.execute("VACUUM ANALYZE costhook.spend")


def concurrent_push(root: Path, server, args, per_machine: int) -> dict:
    """The same machines' first syncs into a new database, `args.concurrent` at a time (as
    a team's machines push in real life): calls/s over the wall time from the first start
    to the last exit, and the CPU of each side."""
    import resource
    from concurrent.futures import ThreadPoolExecutor

    url = server.create_database("concurrent")
    envs = []
    for i in range(args.machines):
        env = machine_env(root / "concurrent", i, url)
        shutil.copyfile(root / f"m{i:02d}" / "costhook.db.orig", env["COSTHOOK_DB"])
        envs.append(env)
    client_before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu_s(server)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrent) as pool:
        list(pool.map(lambda env: timed_process([COSTHOOK, "sync", "-q"], env), envs))
    wall = time.perf_counter() - start
    client_after, server_after = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu_s(server)
    calls = per_machine * args.machines
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    server_cpu = server_after - server_before
    import psycopg

    with psycopg.connect(url, password=pgserver.PASSWORD) as pg:
        count, cost = pg.execute("SELECT count(*), sum(cost_nanousd) FROM costhook.calls").fetchone()
        rolled = pg.execute("SELECT sum(cost_nanousd), sum(requests) FROM costhook.spend WHERE dim = 'global'").fetchone()
    return {"at_a_time": args.concurrent, "wall_s": round(wall, 2), "calls_per_s": round(calls / wall),
            "client_cpu_s": round(client_cpu, 2), "server_cpu_s": round(server_cpu, 2),
            "calls_per_cpu_s": round(calls / (client_cpu + server_cpu)),
            "rollup_matches_calls": (int(rolled[0]), int(rolled[1])) == (int(cost), count), "server_calls": count}


def server_cpu_s(server) -> float:
    """CPU seconds (user + system) used so far by the server's processes: the postmaster and
    its children (the backends serving the syncs included, while they live)."""
    with open(os.path.join(server.data, "postmaster.pid")) as f:
        root = int(f.readline())
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        if pid == root or ppid == root:
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])  # utime stime cutime cstime
    return total / tick


def report_in_process(url: str, runs: int) -> dict:
    """The team report's own work, connection open (what a process adds is Python, click
    and psycopg starting): by day in a zone with DST, by model, by user."""
    from zoneinfo import ZoneInfo

    import psycopg

    from costhook.team import report

    out = {}
    with psycopg.connect(url, password=pgserver.PASSWORD, autocommit=True) as pg:
        pg.execute("SET jit = off")
        for by in ("day", "model", "user"):
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                report.report(pg, by, tz=ZoneInfo("Europe/Berlin"))
                times.append(time.perf_counter() - start)
            out[by + "_median_s"] = round(statistics.median(times), 4)
    return out


def pg_count(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url, password=pgserver.PASSWORD) as pg:
        return pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def add_call(env: dict, n: int) -> None:
    """One new call in a machine's database, as a hook records it."""
    saved = dict(os.environ)
    os.environ.update({k: env[k] for k in ("COSTHOOK_HOME", "COSTHOOK_DB", "COSTHOOK_CONFIG")})
    try:
        from costhook.store import db, writes

        conn = db.connect()
        record = {"key": f"bench-new-{n}", "agent": "claude", "session_id": "bench", "timestamp":
                  time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "model": "claude-sonnet-4-5",
                  "input_tokens": 10, "output_tokens": 20, "tools": ["Bash"]}
        with db.transaction(conn):
            writes.merge_requests(conn, {record["key"]: record}, lambda row: (123, "computed"))
        conn.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pull_times(env: dict, url: str, runs: int, other_env: dict) -> dict:
    """In-process pulls of one machine (the connection already open, as in a sync),
    each after another machine pushed one new call; and the first pull of the window."""
    saved = dict(os.environ)
    os.environ.update({k: env[k] for k in ("COSTHOOK_HOME", "COSTHOOK_DB", "COSTHOOK_CONFIG", "PGPASSWORD")})
    try:
        from costhook.config import load
        from costhook.store import db
        from costhook.team import link
        from costhook.team import sync as team_sync

        os.environ["COSTHOOK_TEAM_URL"] = url
        settings = link.settings(load.load())
        conn = db.connect()
        warm = team_sync.Sync(conn, settings)  # catch up first with what the other machines pushed meanwhile
        warm.open(migrate=False)
        warm.pull()
        warm.pg.close()
        incremental, connected = [], []
        for n in range(runs):
            add_call(other_env, n)
            timed_process([COSTHOOK, "sync", "-q"], other_env)
            start = time.perf_counter()
            syncer = team_sync.Sync(conn, settings)
            syncer.open(migrate=False)
            opened = time.perf_counter()
            syncer.pull()
            done = time.perf_counter()
            syncer.pg.close()
            incremental.append(done - opened)
            connected.append(done - start)
        conn.execute("UPDATE team_link SET pull_since = NULL, pull_rev = 0")
        syncer = team_sync.Sync(conn, settings)
        syncer.open(migrate=False)
        start = time.perf_counter()
        syncer.pull()
        first = time.perf_counter() - start
        rows = conn.execute("SELECT count(*) FROM team_spend").fetchone()[0]
        syncer.pg.close()
        return {"incremental_median_s": round(statistics.median(incremental), 4),
                "incremental_with_connect_median_s": round(statistics.median(connected), 4),
                "first_window_pull_s": round(first, 3), "team_spend_rows": rows}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def hook_times(root: Path, url: str, runs: int) -> dict:
    """`costhook hook` PostToolUse (one new call each run) with and without [team], and
    `python -c pass`, interleaved."""
    env_team = machine_env(root, 99, url)
    env_plain = {**machine_env(root, 98, url, team=False)}
    transcripts = {}
    for name, env in (("team", env_team), ("plain", env_plain)):
        path = Path(env["COSTHOOK_HOME"]) / "t.jsonl"
        path.write_text("")
        transcripts[name] = path
    times = {"team": [], "plain": [], "python": []}
    for n in range(runs + 2):
        for name, env in (("team", env_team), ("plain", env_plain)):
            line = {"type": "assistant", "requestId": f"r{n}", "sessionId": "s1", "timestamp": "2026-11-20T10:00:00.000Z",
                    "message": {"id": f"m{n}", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 5, "output_tokens": 7},
                                "content": [{"type": "tool_use", "id": f"t{n}", "name": "Bash", "input": {}}]}}
            with open(transcripts[name], "a") as f:
                f.write(json.dumps(line) + "\n")
            payload = json.dumps({"hook_event_name": "PostToolUse", "session_id": "s1", "transcript_path":
                                  str(transcripts[name]), "cwd": "/", "tool_name": "Bash", "tool_use_id": f"t{n}",
                                  "tool_input": {}, "tool_response": {}}).encode()
            start = time.perf_counter()
            subprocess.run([COSTHOOK, "hook"], check=False, input=payload, env=env, capture_output=True, timeout=60)
            if n >= 2:  # warm-up rounds not counted
                times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=False, timeout=60)
        if n >= 2:
            times["python"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"hook_with_team_median_s": round(med["team"], 4), "hook_without_team_median_s": round(med["plain"], 4),
            "python_c_pass_median_s": round(med["python"], 4),
            "team_to_plain_ratio": round(med["team"] / med["plain"], 3),
            "team_to_python_ratio": round(med["team"] / med["python"], 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--machines", type=int, default=20)
    parser.add_argument("--server-calls", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hook-runs", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="keep the work folder here")
    parser.add_argument("--push-only", action="store_true", help="stop after 1. (to compare two checkouts' push)")
    parser.add_argument("--concurrent", type=int, default=0, metavar="N",
                        help="then push the same history again into a new database, N machines' syncs at a time")
    parser.add_argument("--dbs", type=Path, help="keep the generated databases here and reuse them (same seeds)")
    args = parser.parse_args(argv)
    from tests.benchmarks import generate

    root = Path(tempfile.mkdtemp(prefix="costhook-team-bench-"))
    server = pgserver.start()
    out = {"calls": args.calls, "machines": args.machines, "load_average": os.getloadavg()}
    try:
        url = server.create_database("team")
        started = time.perf_counter()
        per_machine = args.calls // args.machines
        envs = []
        for i in range(args.machines):
            env = machine_env(root, i, url)
            cached = args.dbs / f"{per_machine}-{i + 1}.db" if args.dbs else None
            if cached and cached.exists():
                shutil.copyfile(cached, env["COSTHOOK_DB"])
            else:
                saved = dict(os.environ)
                try:
                    generate.generate_db(env["COSTHOOK_DB"], per_machine, i + 1)
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
                if cached:
                    args.dbs.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(env["COSTHOOK_DB"], cached)
            if args.concurrent:
                shutil.copyfile(env["COSTHOOK_DB"], env["COSTHOOK_DB"] + ".orig")  # before its first sync
            envs.append(env)
        out["generated_s"] = round(time.perf_counter() - started, 1)
        import resource

        client_before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu_s(server)
        push = []
        for env in envs:  # the backend of each sync ends with it: its CPU is counted by the postmaster (cutime)
            push.append(timed_process([COSTHOOK, "sync", "-q"], env))
        client_after, server_after = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu_s(server)
        total = sum(push)
        calls = per_machine * args.machines
        client_cpu = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
        server_cpu = server_after - server_before
        out["push"] = {"total_s": round(total, 2), "calls_per_s": round(calls / total),
                       "per_machine_median_s": round(statistics.median(push), 2),
                       "client_cpu_s": round(client_cpu, 2), "server_cpu_s": round(server_cpu, 2),
                       # what the wall rate would be with the CPU to ourselves, client and server one after the other
                       "calls_per_cpu_s": round(calls / (client_cpu + server_cpu))}
        import psycopg

        with psycopg.connect(url, password=pgserver.PASSWORD) as pg:
            count = pg.execute("SELECT count(*) FROM costhook.calls").fetchone()[0]
            cost = pg.execute("SELECT sum(cost_nanousd) FROM costhook.calls").fetchone()[0]
            rolled = pg.execute("SELECT sum(cost_nanousd), sum(requests) FROM costhook.spend WHERE dim = 'global'").fetchone()
        out["push"]["server_calls"] = count
        out["push"]["rollup_matches_calls"] = (int(rolled[0]), int(rolled[1])) == (int(cost), count)
        out["push"]["server_rollup_rows"] = pg_count(url, "costhook.spend")
        if args.concurrent:
            out["push_concurrent"] = concurrent_push(root, server, args, per_machine)
        if args.push_only:
            return 0
        copies = max(0, args.server_calls // max(count, 1) - 1)
        started = time.perf_counter()
        grow_server(url, copies)
        out["server_grown_s"] = round(time.perf_counter() - started, 1)
        with psycopg.connect(url, password=pgserver.PASSWORD) as pg:
            out["server_calls"] = pg.execute("SELECT count(*) FROM costhook.calls").fetchone()[0]
            out["server_rollup_rows"] = pg.execute("SELECT count(*) FROM costhook.spend").fetchone()[0]
            cost = pg.execute("SELECT sum(cost_nanousd) FROM costhook.calls").fetchone()[0]
            rolled = pg.execute("SELECT sum(cost_nanousd) FROM costhook.spend WHERE dim = 'global'").fetchone()[0]
            out["server_rollup_matches_calls"] = int(cost) == int(rolled)
        reports = {}
        for by in ("day", "model", "user"):
            cmd = [COSTHOOK, "report", "--team", "--by", by, "--format", "json", "--tz", "Europe/Berlin"]
            times = [timed_process(cmd, envs[0]) for _ in range(args.runs)]
            reports[by] = {"median_s": round(statistics.median(times), 3), "best_s": round(min(times), 3)}
        reports["in_process"] = report_in_process(url, args.runs)
        data = json.loads(subprocess.run([COSTHOOK, "report", "--team", "--format", "json"], env=envs[0],
                                         capture_output=True, check=True).stdout)
        reports["totals_requests"] = data["totals"]["requests"]
        out["team_report"] = reports
        out["pull"] = pull_times(envs[0], url, args.runs, envs[1])
        out["hook"] = hook_times(root, url, args.hook_runs)
    finally:
        pgserver.finish(server)
        if args.keep:
            shutil.copytree(root, args.keep, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
