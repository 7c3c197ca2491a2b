"""costhook's performance figures (design.md §8), all measured in one run on this machine.

    .venv/bin/python -m tests.benchmarks.run            # full: 80,000-call tree (~750 MB), 1M-row DB, 50 MB transcript
    .venv/bin/python -m tests.benchmarks.run --quick    # small sizes, ~15-30 s
    options: --json  --work DIR  --keep  --tree-calls N  --db-rows N  --transcript-mb MB  --runs N
             --report-runs N  --seed S  --ccusage PATH

Not part of the test suite. Generated data goes to a fresh directory under /tmp (or
--work DIR, never inside the repository) and is removed afterwards unless --keep.
Every costhook process is the installed console script of the interpreter running
this module (the project venv), with its own COSTHOOK_HOME/DB/CONFIG under the work dir.
Wall times are medians over N runs; peak RSS comes from os.wait4 (what /usr/bin/time -v
reports). Correctness is checked on the way: the imported tree, the hook-ingested
transcript and the reports on the big DB must equal the generator's own totals exactly,
else FAIL (exit status 1). A missed performance target prints MISS (exit status 0).
"""

import argparse
import functools
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks import generate

REPO = Path(__file__).resolve().parents[2]
TOKEN_KEYS = generate.TOKEN_KEYS
FULL = {"tree_calls": 80_000, "db_rows": 1_000_000, "transcript_mb": 50.0, "runs": 21, "report_runs": 5}
QUICK = {"tree_calls": 3_000, "db_rows": 100_000, "transcript_mb": 20.0, "runs": 11, "report_runs": 3}
HOOK_RATIO_TARGET = 2.5  # design.md §8, issue 14 target 3
REPORT_TARGET_S = 1.0
REIMPORT_TARGET_S = 1.0
CCUSAGE_SPEEDUP_TARGET = 3.0


# ------------------------------------------------------------------ processes -------


class Run:
    def __init__(self, wall, cpu, returncode, stdout, stderr):
        self.wall = wall
        self.cpu = cpu  # user + system CPU seconds of the process itself
        self.rss_kb = None  # set by run_with_rss only
        self.background = 0.0  # seconds a hook's background work ran on after it returned
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def run_measured(cmd, *, env, stdin: bytes | None = None, scratch: Path) -> Run:
    """Run `cmd` to completion: wall time from spawn to reap, and its CPU time."""
    out_path, err_path = scratch / "stdout", scratch / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        if stdin is not None:
            try:
                proc.stdin.write(stdin)
            except BrokenPipeError:
                pass
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    run = Run(wall, usage.ru_utime + usage.ru_stime, proc.returncode, out_path.read_bytes(), err_path.read_bytes())
    run.background = settle(env)
    return run


def settle(env) -> float:
    """Wait for the work a hook left in the background (the agent does not wait for it; a
    benchmark must, before it checks rows or times the next run): seconds waited."""
    from costhook.agents import runtime

    started = time.perf_counter()
    saved = os.environ.get("COSTHOOK_HOME")
    if (env or {}).get("COSTHOOK_HOME"):
        os.environ["COSTHOOK_HOME"] = env["COSTHOOK_HOME"]
    try:
        if not runtime.wait_for_background(600):
            raise RuntimeError("a background hook did not finish in 600 s")
    finally:
        if saved is None:
            os.environ.pop("COSTHOOK_HOME", None)
        else:
            os.environ["COSTHOOK_HOME"] = saved
    return time.perf_counter() - started


GNU_TIME = "/usr/bin/time"
# Fallback when /usr/bin/time is missing: a small launcher whose child's peak RSS is read
# with getrusage(RUSAGE_CHILDREN). (Our own children cannot be measured directly: Linux
# carries the high-water RSS of the forking parent, this big process, across exec.)
_LAUNCHER = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)
"""


@functools.lru_cache(maxsize=None)
def have_gnu_time() -> bool:
    try:
        return subprocess.run([GNU_TIME, "-v", "-o", os.devnull, "true"], capture_output=True).returncode == 0
    except OSError:
        return False


def run_with_rss(cmd, *, env, stdin: bytes | None = None, scratch: Path, python: str) -> Run:
    """Like run_measured, but through /usr/bin/time -v (or a small launcher) so that
    `rss_kb` is the command's own peak RSS. Adds about a millisecond of wall time."""
    report = scratch / "rss.txt"
    if have_gnu_time():
        run = run_measured([GNU_TIME, "-v", "-o", str(report), *cmd], env=env, stdin=stdin, scratch=scratch)
        for line in report.read_text().splitlines():
            if "Maximum resident set size" in line:
                run.rss_kb = int(line.rsplit(":", 1)[1])
    else:
        run = run_measured([python, "-S", "-c", _LAUNCHER, str(report), *cmd], env=env, stdin=stdin, scratch=scratch)
        run.rss_kb = int(report.read_text() or 0)
    return run


def check_ok(run: Run, what: str) -> Run:
    if run.returncode != 0:
        raise SystemExit(f"{what} failed (exit {run.returncode}): {run.stderr.decode(errors='replace')[-2000:]}")
    return run


def catch_up_processes(marker: str) -> list:
    """Pids of detached `costhook hook --catch-up` processes working under our work dir."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if b"--catch-up" in cmdline and marker.encode() in cmdline:
            found.append(int(entry))
    return found


def wait_for_catch_ups(marker: str, timeout: float = 600) -> bool:
    deadline = time.monotonic() + timeout
    while catch_up_processes(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# ------------------------------------------------------------------ figures ---------


class Bench:
    def __init__(self, args, sizes: dict, work: Path):
        self.args = args
        self.sizes = sizes
        self.work = work
        self.python = args.python
        self.costhook = str(Path(self.python).parent / "costhook")
        self.scratch = work / "scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.home = work / "home"
        self.rows = []  # (figure, value, target, status)
        self.data = {"sizes": sizes, "machine": machine_info()}
        self.failures = []

    def env(self, db: Path, **extra) -> dict:
        # PYTHONDONTWRITEBYTECODE would make every run recompile the modules changed since
        # their .pyc was written: an installed costhook has its bytecode.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTHOOK_", "CLAUDE_")) and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(COSTHOOK_HOME=str(self.home), COSTHOOK_DB=str(db), XDG_CONFIG_HOME=str(self.work / "no-config"))
        env.update(extra)
        return env

    def rss(self, cmd, env, stdin=None) -> int:
        """Peak RSS (kB) of one more run of `cmd`, measured from outside."""
        return check_ok(run_with_rss(cmd, env=env, stdin=stdin, scratch=self.scratch, python=self.python), cmd[1]).rss_kb

    def row(self, figure, value="", target="", status=""):
        self.rows.append((figure, value, target, status))

    def correctness(self, figure, problems: list):
        if problems:
            self.failures.append(figure)
            self.row(figure, "; ".join(problems)[:300], "exact", "FAIL")
        else:
            self.row(figure, "equal", "exact", "OK")
        self.data.setdefault("correctness", {})[figure] = problems or "ok"

    # -- generation ---------------------------------------------------------------------

    def compile_bytecode(self):
        """Byte-compile the measured costhook, as an installed package is."""
        where = subprocess.run([self.python, "-c", "import costhook, os; print(os.path.dirname(costhook.__file__))"],
                               capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run([self.python, "-m", "compileall", "-q", where], check=True, env=self.env(self.work / "unused.db"))

    def generate(self):
        self.compile_bytecode()
        started = time.monotonic()
        self.tree = self.work / "claude"
        self.tree_expected = generate.generate_tree(self.tree, self.sizes["tree_calls"], self.args.seed)
        t_tree = time.monotonic() - started

        started = time.monotonic()
        self.big_db = self.work / "big" / "costhook.db"
        self.big_db.parent.mkdir(parents=True)
        saved = os.environ.get("COSTHOOK_DB")
        self.db_expected = generate.generate_db(self.big_db, self.sizes["db_rows"], self.args.seed)
        if saved is None:
            os.environ.pop("COSTHOOK_DB", None)
        else:
            os.environ["COSTHOOK_DB"] = saved
        t_db = time.monotonic() - started

        started = time.monotonic()
        session = "5b0c4f1e-9d2a-4c3b-8e7f-6a5b4c3d2e1f"
        self.transcript_path = self.work / "hook" / "projects" / "-home-dev-bench" / f"{session}.jsonl"
        self.transcript = generate.Transcript(self.transcript_path, seed=self.args.seed)
        self.transcript.write(self.sizes["transcript_mb"])
        t_transcript = time.monotonic() - started
        self.data["generation_s"] = {"tree": round(t_tree, 2), "db": round(t_db, 2), "transcript": round(t_transcript, 2),
                                     "db_phases": self.db_expected.get("phases")}
        mb = self.tree_expected["bytes"] / 1e6
        self.row(
            "generated: tree / DB / transcript",
            f"{mb:,.0f} MB in {t_tree:.1f} s / {self.sizes['db_rows']:,} rows in {t_db:.1f} s / "
            f"{self.transcript_path.stat().st_size / 1e6:,.0f} MB in {t_transcript:.1f} s",
        )

    # -- reports on the big DB ------------------------------------------------------------

    def reports(self):
        env = self.env(self.big_db)
        expected = self.db_expected
        problems = []
        for by in ("day", "session", "model"):
            cmd = [self.costhook, "report", "--by", by, "--format", "json", "--tz", "UTC"]
            runs = [check_ok(run_measured(cmd, env=env, scratch=self.scratch), f"report --by {by}") for _ in range(self.sizes["report_runs"])]
            median = statistics.median(r.wall for r in runs)
            rss = self.rss(cmd, env)
            self.data.setdefault("report_s", {})[by] = median
            self.data.setdefault("report_rss_mb", {})[by] = rss / 1024
            self.row(f"report --by {by} ({self.sizes['db_rows']:,} rows), median of {len(runs)}", f"{median * 1000:,.0f} ms, {rss / 1024:.0f} MB RSS",
                     f"< {REPORT_TARGET_S:g} s", "OK" if median < REPORT_TARGET_S else "MISS")
            report = json.loads(runs[-1].stdout)
            totals = report["totals"]
            for key in ("requests",) + TOKEN_KEYS:
                if totals[key] != expected["totals"][key]:
                    problems.append(f"--by {by} totals.{key} {totals[key]} != {expected['totals'][key]}")
            if round(totals["cost_usd"] * 1e9) != expected["totals"]["cost_nanousd"]:
                problems.append(f"--by {by} cost {totals['cost_usd']} != {expected['totals']['cost_nanousd'] / 1e9}")
            if by == "day":
                problems += compare_rows(report, expected["by_day"], "by day")
            elif by == "model":
                problems += compare_rows(report, expected["by_model"], "by model")
            elif len(report["rows"]) != expected["sessions"]:
                problems.append(f"--by session: {len(report['rows'])} sessions != {expected['sessions']}")
        self.correctness(f"reports on the {self.sizes['db_rows']:,}-row DB = generator", problems)

    # -- the hook --------------------------------------------------------------------------

    def gate_payload(self) -> bytes:
        """PreToolUse for a Bash call, as Claude Code sends it (no tool_use_id: its line is
        in the transcript either way, so the hook has nothing to wait for)."""
        return json.dumps({
            "session_id": self.transcript.session_id, "transcript_path": str(self.transcript_path), "cwd": self.transcript.cwd,
            "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
            "tool_input": {"command": "npm test -- orders", "description": "Run the orders tests"},
        }).encode()

    def payload(self, n: int) -> bytes:
        return json.dumps({
            "session_id": self.transcript.session_id, "transcript_path": str(self.transcript_path), "cwd": self.transcript.cwd,
            "prompt_id": "0f1e2d3c-4b5a-4697-8879-9a0b1c2d3e4f", "permission_mode": "default", "effort": {"level": "high"},
            "hook_event_name": "PostToolUse", "tool_name": "Bash",
            "tool_input": {"command": "npm test -- orders", "description": "Run the orders tests"},
            "tool_response": {"stdout": "ok\n" * 20, "stderr": "", "interrupted": False, "isImage": False},
            "tool_use_id": f"toolu_01Bench{n:012d}", "duration_ms": 812,
        }).encode()

    def regular_install(self) -> tuple[str, str]:
        """A venv holding a plain copy of the costhook package and its console script, as
        `pip install <repo>` makes it (no editable finder); the dev venv's site-packages
        is on its path for the dependencies (the hook needs none)."""
        venv = self.work / "regular-venv"
        subprocess.run([self.python, "-m", "venv", "--without-pip", str(venv)], check=True)
        python = venv / "bin" / "python"
        site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        dev_site = subprocess.run([self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip()
        package = subprocess.run([self.python, "-c", "import costhook, os; print(os.path.dirname(costhook.__file__))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        shutil.copytree(package, site / "costhook", ignore=shutil.ignore_patterns("__pycache__"))
        (site / "dev-venv-deps.pth").write_text(dev_site + "\n")
        subprocess.run([str(python), "-m", "compileall", "-q", str(site / "costhook")], check=True)
        script = venv / "bin" / "costhook"
        lines = Path(self.costhook).read_text().splitlines()
        script.write_text("\n".join([f"#!{python}", *lines[1:]]) + "\n")
        script.chmod(0o755)
        return str(python), str(script)

    def cursor_offset(self) -> int:
        conn = sqlite3.connect(f"file:{self.big_db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute('SELECT "offset" FROM cursors WHERE path = ?', (str(self.transcript_path),)).fetchone()
            return row[0] if row else 0
        except sqlite3.OperationalError:
            return 0
        finally:
            conn.close()

    def hook(self):
        env = self.env(self.big_db)
        size_mb = self.transcript_path.stat().st_size / 1e6
        n = 0

        # Warm the OS caches and the DB file once with a hook that has nothing to read.
        warm = json.dumps({"session_id": "warm-up", "transcript_path": "", "cwd": "/", "hook_event_name": "PostToolUse", "tool_name": "Bash"})
        for _ in range(2):
            check_ok(run_measured([self.costhook, "hook"], env=env, stdin=warm.encode(), scratch=self.scratch), "warm-up hook")

        # Cold: the first hook on an unseen transcript (a big backlog goes to a detached process).
        started = time.perf_counter()
        cold = check_ok(run_measured([self.costhook, "hook"], env=env, stdin=self.payload(n), scratch=self.scratch), "cold hook")
        n += 1
        size = self.transcript_path.stat().st_size
        deferred = self.cursor_offset() < size
        deadline = time.monotonic() + 900
        while self.cursor_offset() < size and time.monotonic() < deadline:
            time.sleep(0.05)
        caught_up = time.perf_counter() - started
        wait_for_catch_ups(str(self.work), timeout=60)
        self.data["hook_cold"] = {"wall_s": cold.wall, "deferred": deferred, "caught_up_s": caught_up}
        self.row(f"hook, first on an unseen {size_mb:.0f} MB transcript (hook process)", f"{cold.wall * 1000:,.0f} ms",
                 "", f"backlog {'deferred' if deferred else 'ingested inline'}")
        self.row("  all its rows in the DB after", f"{caught_up:.1f} s")
        if self.cursor_offset() < size:
            self.failures.append("catch-up")
            self.row("  catch-up", "did not finish", "", "FAIL")

        # Steady state: cursor up to date; each run appends one API call, then runs the hook.
        for _ in range(2):  # warm-up
            self.transcript.append_call()
            check_ok(run_measured([self.costhook, "hook"], env=env, stdin=self.payload(n), scratch=self.scratch), "hook")
            n += 1
        passes, hooks, appended = [], [], []
        for _ in range(self.sizes["runs"]):
            passes.append(check_ok(run_measured([self.python, "-c", "pass"], env=env, scratch=self.scratch), "python -c pass"))
            appended.append(self.transcript.append_call())
            hooks.append(check_ok(run_measured([self.costhook, "hook"], env=env, stdin=self.payload(n), scratch=self.scratch), "hook"))
            n += 1
        idle = []
        for _ in range(max(5, self.sizes["runs"] // 4)):
            idle.append(check_ok(run_measured([self.costhook, "hook"], env=env, stdin=self.payload(n), scratch=self.scratch), "hook"))
            n += 1
        self.transcript.append_call()
        hook_rss = self.rss([self.costhook, "hook"], env, self.payload(n))
        n += 1
        base = statistics.median(r.wall for r in passes)
        hook = statistics.median(r.wall for r in hooks)
        ratio = hook / base
        self.data["python_pass_s"] = base
        cpu_ratio = statistics.median(r.cpu for r in hooks) / statistics.median(r.cpu for r in passes)
        self.data["hook_steady"] = {"wall_s": hook, "ratio": ratio, "cpu_ratio": cpu_ratio, "rss_mb": hook_rss / 1024,
                                    "idle_wall_s": statistics.median(r.wall for r in idle), "bytes_appended": statistics.median(appended),
                                    "all_s": [r.wall for r in hooks], "pass_all_s": [r.wall for r in passes]}
        self.row(f"python -c pass, median of {len(passes)}", f"{base * 1000:,.1f} ms")
        self.row(f"hook PostToolUse, +1 call on a {size_mb:.0f} MB transcript, median of {len(hooks)}", f"{hook * 1000:,.1f} ms")
        self.row("  ratio to python -c pass", f"{ratio:.2f} x", f"<= {HOOK_RATIO_TARGET:g} x", "OK" if ratio <= HOOK_RATIO_TARGET else "MISS")
        self.row("  CPU-time ratio (user+sys, less sensitive to load)", f"{cpu_ratio:.2f} x")
        self.row(f"hook PostToolUse, nothing new, median of {len(idle)}", f"{statistics.median(r.wall for r in idle) * 1000:,.1f} ms")
        self.row("hook peak RSS (+1 call)", f"{hook_rss / 1024:.1f} MB")

        # The same with a regular (non-editable) install, as install.sh makes for users: the
        # dev venv's editable-install finder adds ~20 ms to every interpreter start,
        # python -c pass included, which flatters the ratio.
        # And a gate — PreToolUse with a budget configured (a daily block far from its
        # limit), +1 call: it does all its work while the agent waits, where PostToolUse
        # after Bash (no budget can be crossed by a tool that spends nothing) answers at
        # once and ingests in the background.
        budget = self.work / "gate-config.toml"
        budget.write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 1000000\naction = "block"\n')
        gate_env = {**env, "COSTHOOK_CONFIG": str(budget)}
        regular = []
        reg_python, reg_costhook = self.regular_install()
        reg_passes, reg_hooks, reg_gates = [], [], []
        for i in range(self.sizes["runs"] + 2):
            p = run_measured([reg_python, "-c", "pass"], env=env, scratch=self.scratch)
            self.transcript.append_call()
            h = check_ok(run_measured([reg_costhook, "hook"], env=env, stdin=self.payload(n), scratch=self.scratch), "hook (regular install)")
            n += 1
            self.transcript.append_call()
            g = check_ok(run_measured([reg_costhook, "hook"], env=gate_env, stdin=self.gate_payload(), scratch=self.scratch), "gate (regular install)")
            if i >= 2:  # the first two are warm-up
                reg_passes.append(check_ok(p, "python -c pass (regular install)"))
                reg_hooks.append(h)
                reg_gates.append(g)
        regular = reg_hooks
        reg_base = statistics.median(r.wall for r in reg_passes)
        reg_hook = statistics.median(r.wall for r in reg_hooks)
        self.data["regular_install"] = {"python_pass_s": reg_base, "hook_s": reg_hook, "ratio": reg_hook / reg_base,
                                        "cpu_ratio": statistics.median(r.cpu for r in reg_hooks) / statistics.median(r.cpu for r in reg_passes)}
        self.row("regular (non-editable) install: python -c pass / hook +1 call", f"{reg_base * 1000:,.1f} ms / {reg_hook * 1000:,.1f} ms")
        self.row("  ratio to python -c pass (regular install)", f"{reg_hook / reg_base:.2f} x (CPU {self.data['regular_install']['cpu_ratio']:.2f} x)",
                 f"<= {HOOK_RATIO_TARGET:g} x", "OK" if reg_hook / reg_base <= HOOK_RATIO_TARGET else "MISS")
        reg_gate = statistics.median(r.wall for r in reg_gates)
        gate_cpu = statistics.median(r.cpu for r in reg_gates) / statistics.median(r.cpu for r in reg_passes)
        self.data["regular_install"].update(gate_s=reg_gate, gate_ratio=reg_gate / reg_base, gate_cpu_ratio=gate_cpu,
                                            hook_background_s=statistics.median(r.background for r in reg_hooks))
        self.row("  PostToolUse: its background work done after (median)",
                 f"{statistics.median(r.background for r in reg_hooks) * 1000:,.1f} ms")
        self.row("gate PreToolUse with a budget, +1 call (regular install)", f"{reg_gate * 1000:,.1f} ms")
        self.row("  ratio to python -c pass", f"{reg_gate / reg_base:.2f} x (CPU {gate_cpu:.2f} x)",
                 f"<= {HOOK_RATIO_TARGET:g} x", "OK" if reg_gate / reg_base <= HOOK_RATIO_TARGET else "MISS")

        problems = []
        bad = [r for r in [cold, *hooks, *idle, *regular, *reg_gates] if r.stdout.strip() or r.stderr.strip()]
        if bad:
            problems.append(f"{len(bad)} hook runs wrote output, e.g. {(bad[0].stdout + bad[0].stderr)[:200]!r}")
        log = self.home / "errors.log"
        if log.exists() and log.stat().st_size:
            problems.append("errors.log: " + log.read_text(errors="replace").strip().splitlines()[-1][:200])
        expected = self.transcript.expected()
        conn = sqlite3.connect(f"file:{self.big_db}?mode=ro", uri=True)
        got = conn.execute(
            f"SELECT count(*), {', '.join(f'coalesce(sum({k}), 0)' for k in TOKEN_KEYS)} FROM requests WHERE session_id = ?",
            (self.transcript.session_id,),
        ).fetchone()
        tools = conn.execute("SELECT count(*) FROM tool_calls WHERE session_id = ?", (self.transcript.session_id,)).fetchone()[0]
        conn.close()
        want = (expected["totals"]["requests"], *(expected["totals"][k] for k in TOKEN_KEYS))
        for name, g, w in zip(("requests",) + TOKEN_KEYS, got, want):
            if g != w:
                problems.append(f"{name} {g} != {w}")
        if tools != n:
            problems.append(f"tool_calls {tools} != {n}")
        self.correctness("hook-ingested transcript = generator", problems)

    # -- import -----------------------------------------------------------------------------

    def import_tree(self):
        db = self.work / "import" / "costhook.db"
        db.parent.mkdir(parents=True)
        env = self.env(db)
        expected = self.tree_expected
        cmd = [self.costhook, "import", "--claude-dir", str(self.tree)]
        first = check_ok(run_with_rss(cmd, env=env, scratch=self.scratch, python=self.python), "import")
        again = check_ok(run_with_rss(cmd, env=env, scratch=self.scratch, python=self.python), "re-import")
        mb = expected["bytes"] / 1e6
        self.data["import"] = {"wall_s": first.wall, "mb": mb, "mb_per_s": mb / first.wall, "calls_per_s": expected["calls"] / first.wall,
                               "rss_mb": first.rss_kb / 1024, "reimport_s": again.wall, "reimport_rss_mb": again.rss_kb / 1024,
                               "summary": first.stdout.decode(errors="replace").strip(), "reimport_summary": again.stdout.decode(errors="replace").strip()}
        self.row(f"import {mb:,.0f} MB tree ({expected['files']:,} files, {expected['calls']:,} calls)", f"{first.wall:,.2f} s")
        self.row("  throughput", f"{mb / first.wall:,.1f} MB/s, {expected['calls'] / first.wall:,.0f} calls/s")
        self.row("  import peak RSS", f"{first.rss_kb / 1024:.1f} MB")
        self.row("re-import of the unchanged tree", f"{again.wall:,.2f} s", f"~0 (< {REIMPORT_TARGET_S:g} s)",
                 "OK" if again.wall < REIMPORT_TARGET_S else "MISS")

        problems = []
        for by, table in (("day", "by_day"), ("model", "by_model")):
            run = check_ok(run_measured([self.costhook, "report", "--by", by, "--format", "json", "--tz", "UTC"], env=env, scratch=self.scratch), "report")
            report = json.loads(run.stdout)
            problems += compare_rows(report, expected[table], f"by {by}")
            if by == "day":
                self.our_days = {row["key"]: row for row in report["rows"]}
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        calls, web = conn.execute("SELECT count(*), coalesce(sum(web_search_requests), 0) FROM requests").fetchone()
        conn.close()
        if calls != expected["calls"]:
            problems.append(f"rows {calls} != calls {expected['calls']}")
        if web != expected["totals"]["web_search_requests"]:
            problems.append(f"web_search_requests {web} != {expected['totals']['web_search_requests']}")
        if "0 rows new or updated" not in again.stdout.decode(errors="replace"):
            problems.append(f"re-import changed rows: {again.stdout.decode(errors='replace').strip()[:200]}")
        self.correctness("imported tree = generator", problems)

    # -- ccusage ----------------------------------------------------------------------------

    def ccusage(self, path: str):
        env = self.env(self.work / "unused.db", CLAUDE_CONFIG_DIR=str(self.tree), LOG_LEVEL="0", TZ="UTC")
        cmd = [path, "claude", "daily", "--json", "--offline", "-z", "UTC"]
        run = run_with_rss(cmd, env=env, scratch=self.scratch, python=self.python)
        if run.returncode != 0:  # an older ccusage without -z: TZ=UTC does the same
            cmd = cmd[:-2]
            run = run_with_rss(cmd, env=env, scratch=self.scratch, python=self.python)
        if run.returncode != 0:
            self.failures.append("ccusage")
            self.row("ccusage claude daily --json --offline", f"failed: {run.stderr.decode(errors='replace')[-200:]}", "", "FAIL")
            return
        ours = self.data["import"]["wall_s"]
        speedup = run.wall / ours
        self.data["ccusage"] = {"cmd": cmd, "wall_s": run.wall, "rss_mb": run.rss_kb / 1024, "speedup": speedup}
        self.row(f"ccusage {' '.join(cmd[1:])}", f"{run.wall:,.2f} s, peak RSS {run.rss_kb / 1024:.0f} MB")
        self.row("  costhook import speed-up over ccusage", f"{speedup:.2f} x", f">= {CCUSAGE_SPEEDUP_TARGET:g} x",
                 "OK" if speedup >= CCUSAGE_SPEEDUP_TARGET else "MISS")
        try:
            daily = json.loads(run.stdout)
            days = daily["daily"] if isinstance(daily, dict) else daily
            theirs = {d.get("date") or d.get("period"): d for d in days}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.row("ccusage daily tokens = ours", f"cannot read its JSON: {exc}", "", "DIFF")
            return
        diffs = []
        for day in sorted(set(theirs) | set(self.our_days)):
            t, o = theirs.get(day) or {}, self.our_days.get(day) or {}
            pairs = (
                ("input", t.get("inputTokens", 0), o.get("input_tokens", 0)),
                ("output", t.get("outputTokens", 0), o.get("output_tokens", 0)),
                ("cache write", t.get("cacheCreationTokens", 0), o.get("cache_write_5m_tokens", 0) + o.get("cache_write_1h_tokens", 0)),
                ("cache read", t.get("cacheReadTokens", 0), o.get("cache_read_tokens", 0)),
            )
            for name, a, b in pairs:
                if a != b:
                    diffs.append(f"{day} {name}: ccusage {a} vs ours {b}")
        self.data["ccusage"]["diffs"] = diffs
        self.row("ccusage daily tokens = ours", f"{len(diffs)} differences" + (f", e.g. {diffs[0]}" if diffs else ""), "exact",
                 "OK" if not diffs else "DIFF")

    # -- output -----------------------------------------------------------------------------

    def table(self) -> str:
        widths = [max(len(str(r[i])) for r in self.rows + [("figure", "value", "target", "status")]) for i in range(4)]
        widths[1] = min(widths[1], 70)
        lines = []
        for r in [("figure", "value", "target", "status"), tuple("-" * w for w in widths)] + self.rows:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        return "\n".join(lines)


def compare_rows(report: dict, expected: dict, label: str) -> list:
    got = {row["key"]: row for row in report["rows"]}
    problems = []
    for key in sorted(set(got) | set(expected)):
        g, w = got.get(key), expected.get(key)
        if g is None or w is None:
            problems.append(f"{label}: {key} {'missing' if g is None else 'unexpected'}")
            continue
        for name in ("requests",) + TOKEN_KEYS:
            if g[name] != w[name]:
                problems.append(f"{label} {key} {name}: {g[name]} != {w[name]}")
    return problems


def machine_info() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_start": os.getloadavg(),
        "git": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    }


def work_dir(args) -> tuple[Path, bool]:
    if args.work:
        work = Path(args.work).resolve()
        if work == REPO or REPO in work.parents:
            raise SystemExit(f"--work {work} is inside the repository; generated data stays out of it")
        if work.exists() and any(work.iterdir()):
            raise SystemExit(f"--work {work} is not empty")
        work.mkdir(parents=True, exist_ok=True)
        return work, False
    return Path(tempfile.mkdtemp(prefix="costhook-bench-", dir="/tmp")), True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (3,000-call tree, 100k-row DB, 20 MB transcript)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout (the table goes to stderr)")
    parser.add_argument("--work", help="directory for generated data (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--tree-calls", type=int)
    parser.add_argument("--db-rows", type=int)
    parser.add_argument("--transcript-mb", type=float)
    parser.add_argument("--runs", type=int, help="runs of the hook and of python -c pass")
    parser.add_argument("--report-runs", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ccusage", help="path of a ccusage executable to time on the same tree, or `auto`: install "
                        "the pinned ccusage@20.0.24 from npm into .cache/ (tests/benchmarks/ccusage.py)")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the venv whose costhook is measured")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in sizes:
        if getattr(args, key, None) is not None:
            sizes[key] = getattr(args, key)
    if not (Path(args.python).parent / "costhook").exists():
        raise SystemExit(f"no costhook next to {args.python}; run with the project venv's python")
    if args.ccusage == "auto":
        from tests.benchmarks import ccusage

        path, why = ccusage.install()
        if path is None:
            raise SystemExit(f"--ccusage auto: {why}")
        args.ccusage = str(path)

    started = time.monotonic()
    work, made = work_dir(args)
    bench = Bench(args, sizes, work)
    out = sys.stderr if args.json else sys.stdout
    print(f"costhook benchmark ({'quick' if args.quick else 'full'}), work dir {work}", file=out, flush=True)
    try:
        for step in (bench.generate, bench.reports, bench.hook, bench.import_tree):
            print(f"  {step.__name__} ...", file=out, flush=True)
            step()
        if args.ccusage:
            print("  ccusage ...", file=out, flush=True)
            bench.ccusage(args.ccusage)
    finally:
        wait_for_catch_ups(str(work), timeout=120)
        if not args.keep:
            if made:
                shutil.rmtree(work, ignore_errors=True)
            else:  # an empty directory given with --work: empty it again
                for child in work.iterdir():
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
    total = time.monotonic() - started
    bench.data["machine"]["load_end"] = os.getloadavg()
    bench.data["run_s"] = total
    bench.data["failures"] = bench.failures
    bench.row("whole run (generation included)", f"{total:,.1f} s")
    load = bench.data["machine"]
    bench.row("machine", f"{load['cpus']} CPUs, load {load['load_start'][0]:.1f} -> {load['load_end'][0]:.1f}, Python {load['python']}, SQLite {load['sqlite']}")
    return finish(bench, args, work, out)


def finish(bench, args, work, out, notes=()) -> int:
    """Print the table (and notes) to `out`, the data as JSON on stdout with --json; the exit status."""
    print(bench.table(), file=out)
    for note in notes:
        print(f"  * {note}", file=out)
    if bench.failures:
        print(f"FAIL: {', '.join(bench.failures)}", file=out)
    if args.keep:
        print(f"data kept in {work}", file=out)
    if args.json:
        json.dump(bench.data, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
