"""costhook side by side with ccusage 20.0.24 (issue items 6 and 7), in one run.

    .venv/bin/python -m tests.benchmarks.ccusage                 # full: 84,000 calls, 4,700 files (~1.1 GB), ~5 min
    .venv/bin/python -m tests.benchmarks.ccusage --first-import  # only the first import vs ccusage (+ identical rows), ~2 min
    .venv/bin/python -m tests.benchmarks.ccusage --calls 3000    # small, ~30 s
    .venv/bin/python -m tests.benchmarks.ccusage install         # only install ccusage; prints its path
    options: --json  --work DIR  --keep  --calls N  --runs N  --seed S  --ccusage PATH

ccusage is installed from npm, pinned (`npm install ccusage@20.0.24` into
<repo>/.cache/ccusage-20.0.24; npm's ccusage 20.x is a JS launcher for the native
`@ccusage/ccusage-linux-x64` binary; 20.0.24's binary installs, 20.0.26's did not). It is
run as users run it, through its launcher, with the oracle command of
shared/reference/claude-code.md §6:

    CLAUDE_CONFIG_DIR=<tree> ccusage claude daily --json --offline -z UTC -m calculate

What is measured, all on one generated tree (tests/benchmarks/generate.py) in one run:

* first import: `costhook import --claude-dir TREE` into an empty database vs ccusage's
  daily report on the same tree (issue 14: <= 2x ccusage's wall time, peak RSS <= ccusage's),
  runs interleaved, the tree read just before each timed run (the page cache warm); its
  rows, rollup, sessions and cursors compared with an incremental import of the same tree
  (importer.import_claude, the path a non-empty database takes); and the floor of any such
  import (import_floor.py: reading, JSON parsing, inserting the rows) on one core;
* a report after one new session: a new session is written into the tree while its
  hooks run (`costhook hook` PostToolUse per call, Stop, SessionEnd), then
  `costhook report --by day` vs ccusage daily, which has to re-read the whole tree
  (target >= 50x); also `costhook import` (incremental) + report, for users without hooks;
* the hook: `costhook hook` PostToolUse with one new call, as a ratio to `python -c pass`
  measured interleaved in the same run (target <= 4x);
* peak RSS of each, and memory against transcript size: the import and ccusage on an
  eighth of the tree and on the whole tree (target: costhook's flat);
* accuracy: tokens by day, costhook vs ccusage, exact (ccusage's cacheCreationTokens =
  our 5m + 1h), on the big tree after the new session; costs compared only as explained;
  and a small "quirks" tree with one call per day for each case where ccusage is known to
  differ, each difference checked to be exactly the documented one.

Wall times are medians; peak RSS comes from /usr/bin/time -v (run.py's helpers). Exit
status 1 when a correctness check fails; a missed speed target prints MISS.
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks import generate
from tests.benchmarks.run import REPO, check_ok, finish, machine_info, run_measured, run_with_rss, wait_for_catch_ups

CCUSAGE_VERSION = "20.0.24"
CCUSAGE_PACKAGE = f"ccusage@{CCUSAGE_VERSION}"
NPM_TIMEOUT = 300
FIRST_IMPORT_TARGET = 2.0  # costhook's first import time / ccusage's <= 2 (issue 14)
REPORT_SPEEDUP_TARGET = 50.0
HOOK_RATIO_TARGET = 4.0
RSS_FLAT_TARGET = 1.5  # peak RSS on the whole tree / on an eighth of it
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")


# ------------------------------------------------------------------ install ---------


def cache_dir() -> Path:
    return Path(os.environ.get("COSTHOOK_CCUSAGE_CACHE") or REPO / ".cache" / f"ccusage-{CCUSAGE_VERSION}")


def ccusage_version(path) -> str | None:
    try:
        p = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def install(base: Path | None = None) -> tuple[Path | None, str]:
    """(path of the ccusage launcher, "") once ccusage 20.0.24 answers `--version`, else (None, why)."""
    base = base or cache_dir()
    launcher = base / "node_modules" / ".bin" / "ccusage"
    if launcher.exists() and CCUSAGE_VERSION in (ccusage_version(launcher) or ""):
        return launcher, ""
    npm = shutil.which("npm")
    if not npm:
        return None, f"npm not found: cannot install {CCUSAGE_PACKAGE}"
    base.mkdir(parents=True, exist_ok=True)
    cmd = [npm, "install", "--prefix", str(base), "--no-audit", "--no-fund", "--loglevel=error",
           "--fetch-retries=1", "--fetch-timeout=60000", CCUSAGE_PACKAGE]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=NPM_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"`{' '.join(cmd)}` timed out"
    if p.returncode != 0:
        return None, f"`{' '.join(cmd)}` failed: {(p.stderr or p.stdout).strip()[-500:]}"
    version = ccusage_version(launcher)
    if not version or CCUSAGE_VERSION not in version:
        return None, f"{launcher} answers {version!r}, not {CCUSAGE_VERSION} (is @ccusage/ccusage-linux-x64 installed?)"
    return launcher, ""


# ------------------------------------------------------------------ comparing -------


def ccusage_days(stdout: bytes) -> dict:
    data = json.loads(stdout)
    days = data["daily"] if isinstance(data, dict) else data
    return {d.get("date") or d.get("period"): d for d in days}


def token_diffs(theirs: dict, ours: dict) -> list[str]:
    """Per day: ccusage's four token columns against ours (5m + 1h = its cache creation)."""
    diffs = []
    for day in sorted(set(theirs) | set(ours)):
        t, o = theirs.get(day) or {}, ours.get(day) or {}
        pairs = (
            ("input", t.get("inputTokens", 0), o.get("input_tokens", 0)),
            ("output", t.get("outputTokens", 0), o.get("output_tokens", 0)),
            ("cache write", t.get("cacheCreationTokens", 0), o.get("cache_write_5m_tokens", 0) + o.get("cache_write_1h_tokens", 0)),
            ("cache read", t.get("cacheReadTokens", 0), o.get("cache_read_tokens", 0)),
        )
        diffs += [f"{day} {name}: ccusage {a} vs costhook {b}" for name, a, b in pairs if a != b]
    return diffs


def cost_breakdown(db: Path) -> dict:
    """Where our cost differs from a ccusage-style price, call by call, with costhook's own
    price function: web searches (ccusage does not charge them), US inference (1.1x, not
    applied by ccusage), and the rest (long context billed per request by Anthropic, per
    token bucket by ccusage; model price data)."""
    from costhook.pricing import prices as pricing

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    web = geo = 0
    total = 0
    for r in conn.execute("SELECT * FROM requests WHERE cost_nanousd IS NOT NULL AND session_id != 'quirks-session'"):
        args = dict(input_tokens=r["input_tokens"] or 0, output_tokens=r["output_tokens"] or 0,
                    cache_write_5m_tokens=r["cache_write_5m_tokens"] or 0, cache_write_1h_tokens=r["cache_write_1h_tokens"] or 0,
                    cache_read_tokens=r["cache_read_tokens"] or 0, speed=r["speed"], timestamp=r["timestamp"])
        full = r["cost_nanousd"]
        no_web = pricing.price_call(r["model"], web_search_requests=0, inference_geo=r["inference_geo"], **args)
        no_geo = pricing.price_call(r["model"], web_search_requests=0, inference_geo=None, **args)
        web += full - no_web
        geo += no_web - no_geo
        total += full
    conn.close()
    return {"total_nanousd": total, "web_search_nanousd": web, "us_inference_nanousd": geo}


# ------------------------------------------------------------------ quirks tree -----

# One call per day, compact JSON as Claude Code writes it. Each case: (day, what, line edits,
# whether ccusage counts the call's tokens, whether its cost equals ours).
def _quirk_lines():
    from tests.benchmarks.generate import START_MS, iso

    day_ms = 86_400_000
    base_ms = START_MS + 200 * day_ms  # 2027-03-20..: far from the big tree's days

    def line(n, msg_id, req_id="auto", side=False, tokens=(10, 20, 0, 0, 0), model="claude-sonnet-4-5-20250929", **edits):
        inp, out, w5, w1, read = tokens
        usage = {"input_tokens": inp, "cache_creation_input_tokens": w5 + w1, "cache_read_input_tokens": read,
                 "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1},
                 "output_tokens": out, "service_tier": "standard"}
        usage.update(edits.pop("usage", {}))
        data = {"parentUuid": None, "isSidechain": side, "type": "assistant",
                "message": {"model": model, "id": msg_id, "type": "message", "role": "assistant",
                            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": usage},
                "requestId": f"req_{msg_id}" if req_id == "auto" else req_id, "uuid": f"u-{msg_id}-{n}-{req_id}",
                "timestamp": iso(base_ms + n * day_ms + 3_600_000), "cwd": "/home/dev/quirks", "sessionId": "quirks-session",
                "version": "2.1.330", "gitBranch": "main", "entrypoint": "cli"}
        data.update(edits)
        return data, generate.day_of(base_ms + n * day_ms + 3_600_000)

    cases = []

    def case(what, why, ccusage_tokens, same_cost, *lines):
        cases.append({"what": what, "why": why, "day": lines[0][1], "lines": [d for d, _ in lines],
                      "ccusage_counts_tokens": ccusage_tokens, "same_cost": same_cost})

    case("plain call", "control: both agree", True, True, line(0, "msg_q_plain", tokens=(100, 200, 300, 400, 500)))
    case("a field is null (cwd)", "ccusage skips any line containing \"cwd\":null (its null pre-filter); it is a billed call",
         False, False, line(1, "msg_q_nullcwd", tokens=(1000, 10, 0, 0, 0), cwd=None))
    case("usage.speed is null", "same pre-filter on \"speed\":null (meant for <synthetic> lines, which costhook skips by model)",
         False, False, line(2, "msg_q_nullspeed", tokens=(2000, 10, 0, 0, 0), usage={"speed": None}))
    case("long context (prompt > 200K)", "Anthropic bills the whole request at the long-context rate; ccusage prices only "
         "the tokens above 200K per bucket, so its cost is lower; tokens agree",
         True, False, line(3, "msg_q_long", tokens=(5, 1000, 0, 0, 250_000)))
    case("web search", "web searches cost $0.01 each; ccusage does not charge them; tokens agree", True, False,
         line(4, "msg_q_web", tokens=(10, 10, 0, 0, 0), usage={"server_tool_use": {"web_search_requests": 3}}))
    case("<synthetic> line", "not an API call: both skip it", True, True,
         line(5, "msg_q_synth", req_id=None, tokens=(0, 0, 0, 0, 0), model="<synthetic>", usage={"speed": None}))
    case("sidechain replay", "the same response (message.id) replayed by a sidechain under another requestId "
         "(/btw, forks): one call for both", True, True,
         line(6, "msg_q_replay", tokens=(300, 40, 0, 0, 9000)),
         line(6, "msg_q_replay", req_id="req_q_side_question", side=True, tokens=(300, 40, 0, 0, 9000)))
    return cases


def write_quirks(tree: Path) -> list:
    cases = _quirk_lines()
    path = tree / "projects" / "-home-dev-quirks" / "quirks-session.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for c in cases:
            for data in c["lines"]:
                f.write(json.dumps(data, separators=(",", ":")) + "\n")
    return cases


def check_quirks(cases: list, theirs: dict, ours: dict) -> list[tuple[str, str, str]]:
    """(case, what was seen, OK|FAIL): each difference is exactly the documented one."""
    rows = []
    for c in cases:
        t, o = theirs.get(c["day"]) or {}, ours.get(c["day"]) or {}
        ours_tokens = (o.get("input_tokens", 0), o.get("output_tokens", 0),
                       o.get("cache_write_5m_tokens", 0) + o.get("cache_write_1h_tokens", 0), o.get("cache_read_tokens", 0))
        theirs_tokens = (t.get("inputTokens", 0), t.get("outputTokens", 0), t.get("cacheCreationTokens", 0), t.get("cacheReadTokens", 0))
        ours_cost, theirs_cost = round(o.get("cost_usd", 0) * 1e9), round(t.get("totalCost", 0) * 1e9)
        ok = (theirs_tokens == ours_tokens) == c["ccusage_counts_tokens"] and (ours_cost == theirs_cost) == c["same_cost"]
        if c["what"] == "long context (prompt > 200K)":
            ok = ok and theirs_cost < ours_cost
        seen = (f"tokens costhook {sum(ours_tokens):,} / ccusage {sum(theirs_tokens):,}; "
                f"cost costhook ${ours_cost / 1e9:.6f} / ccusage ${theirs_cost / 1e9:.6f}")
        rows.append((c["what"], seen, "OK" if ok else "FAIL", c["why"]))
    return rows


# ------------------------------------------------------------------ the run ---------


class SideBySide:
    def __init__(self, args, work: Path, ccusage: Path):
        self.args = args
        self.work = work
        self.ccusage = str(ccusage)
        self.python = sys.executable
        self.costhook = str(Path(self.python).parent / "costhook")
        self.scratch = work / "scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.rows = []
        self.data = {"machine": machine_info(), "ccusage": {"version": CCUSAGE_VERSION, "path": self.ccusage}}
        self.failures = []
        self.notes = []

    def env(self, db: Path, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTHOOK_", "CLAUDE_")) and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(COSTHOOK_HOME=str(db.parent), COSTHOOK_DB=str(db), XDG_CONFIG_HOME=str(self.work / "no-config"),
                   LOG_LEVEL="0", TZ="UTC")
        env.update(extra)
        return env

    def row(self, figure, value="", target="", status=""):
        self.rows.append((figure, value, target, status))

    def fail(self, figure, problems):
        if problems:
            self.failures.append(figure)
            self.row(figure, "; ".join(problems)[:300], "exact", "FAIL")
        else:
            self.row(figure, "equal", "exact", "OK")

    def ccusage_cmd(self):
        return [self.ccusage, "claude", "daily", "--json", "--offline", "-z", "UTC", "-m", "calculate"]

    def run_ccusage(self, tree: Path, runs: int):
        env = self.env(self.work / "unused" / "x.db", CLAUDE_CONFIG_DIR=str(tree))
        results = []
        for _ in range(runs):
            warm(tree)
            results.append(check_ok(run_with_rss(self.ccusage_cmd(), env=env, scratch=self.scratch, python=self.python), "ccusage"))
        return results

    def import_fresh(self, tree: Path, name: str, *, incremental: bool = False, checkout: str | None = None):
        db = self.work / name / "costhook.db"
        if db.parent.exists():
            shutil.rmtree(db.parent)
        db.parent.mkdir(parents=True)
        warm(tree)
        cmd = [self.costhook, "import", "--claude-dir", str(tree), "-q"]
        extra = {}
        if incremental:  # the path a database that already holds calls takes
            cmd = [self.python, "-c", INCREMENTAL_IMPORT, str(tree)]
        elif checkout:  # another source tree's code, with this venv (--before)
            cmd, extra = [self.python, "-P", "-m", "costhook", *cmd[1:]], {"PYTHONPATH": checkout}  # (-P: not this one, the cwd)
        run = check_ok(run_with_rss(cmd, env=self.env(db, **extra), scratch=self.scratch, python=self.python), "costhook import")
        return run, db

    def our_days(self, db: Path) -> dict:
        run = check_ok(run_measured([self.costhook, "report", "--by", "day", "--tz", "UTC", "--format", "json"], env=self.env(db),
                                    scratch=self.scratch), "report")
        return {r["key"]: r for r in json.loads(run.stdout)["rows"]}

    # -- steps ---------------------------------------------------------------------------

    def generate(self):
        calls = self.args.calls
        started = time.monotonic()
        self.tree = self.work / "claude"
        shape = dict(session_calls=self.args.session_calls, replays=self.args.replays)
        self.expected = generate.generate_tree(self.tree, calls, self.args.seed, **shape)
        self.cases = write_quirks(self.tree)
        self.small = self.work / "claude-eighth"
        if not self.args.first_import:
            generate.generate_tree(self.small, max(1, calls // 8), self.args.seed, **shape)
        mb = self.expected["bytes"] / 1e6
        self.data["tree"] = {"calls": calls, "mb": mb, "files": self.expected["files"], "subagent_files": self.expected["subagent_files"],
                             "replayed_calls": self.expected["replayed_calls"], "generation_s": time.monotonic() - started}
        self.row("generated tree", f"{mb:,.0f} MB, {self.expected['files']:,} files ({self.expected['subagent_files']:,} of sub-agents), "
                 f"{calls:,} calls, {self.expected['replayed_calls']:,} of them copied into resumed sessions "
                 f"(+ {len(self.cases)} quirk calls) in {time.monotonic() - started:.0f} s")
        subprocess.run([self.python, "-m", "compileall", "-q", str(Path(__import__("costhook").__file__).parent)], check=True,
                       capture_output=True)

    def first_import(self):
        runs = self.args.runs
        theirs, ours, before = [], [], []
        for i in range(runs):  # interleaved: the machine's load moves all alike
            theirs += self.run_ccusage(self.tree, 1)
            if self.args.before:
                run, before_db = self.import_fresh(self.tree, "import-before", checkout=self.args.before)
                before.append(run)
            run, db = self.import_fresh(self.tree, f"import-{i}")
            ours.append(run)
        self.db = db
        if before:
            b_wall, t_wall = statistics.median(r.wall for r in before), statistics.median(r.wall for r in theirs)
            self.data["before"] = {"checkout": self.args.before, "costhook_s": [r.wall for r in before],
                                   "cpu_s": statistics.median(r.cpu for r in before), "rss_mb": max(r.rss_kb for r in before) / 1024}
            self.row(f"--before {self.args.before}: costhook import, first (median of {runs})",
                     f"{b_wall:,.2f} s = {b_wall / t_wall:.2f} x ccusage (run by run: "
                     f"{', '.join(f'{o.wall / t.wall:.2f}' for o, t in zip(before, theirs))}); CPU {self.data['before']['cpu_s']:,.2f} s; "
                     f"peak RSS {self.data['before']['rss_mb']:,.0f} MB")
            problems = [f"{name} differ" for name, (x, y) in compare_tables(db, before_db).items() if x != y]
            self.fail("  --before's tables = these (requests, rollup, price groups, sessions, cursors, sub-agent names)", problems)
        # A copy as it is now, for the "no hooks" path after the new session.
        self.db_nohooks = self.work / "import-nohooks" / "costhook.db"
        shutil.rmtree(self.db_nohooks.parent, ignore_errors=True)  # a kept --work from an earlier run
        self.db_nohooks.parent.mkdir(parents=True)
        with sqlite3.connect(db) as src, sqlite3.connect(self.db_nohooks) as dst:
            src.backup(dst)
        t_wall = statistics.median(r.wall for r in theirs)
        o_wall = statistics.median(r.wall for r in ours)
        ratio = o_wall / t_wall
        self.data["first_import"] = {"costhook_s": [r.wall for r in ours], "ccusage_s": [r.wall for r in theirs],
                                     "ratio": ratio, "costhook_cpu_s": statistics.median(r.cpu for r in ours),
                                     "ccusage_cpu_s": statistics.median(r.cpu for r in theirs),
                                     "ccusage_rss_mb": max(r.rss_kb for r in theirs) / 1024,
                                     "costhook_rss_mb": max(r.rss_kb for r in ours) / 1024}
        mb = self.expected["bytes"] / 1e6
        self.row(f"ccusage claude daily --json --offline (median of {runs})", f"{t_wall:,.2f} s, peak RSS {self.data['first_import']['ccusage_rss_mb']:,.0f} MB")
        self.row(f"costhook import, first, empty DB (median of {runs})", f"{o_wall:,.2f} s ({mb / o_wall:,.0f} MB/s), peak RSS {self.data['first_import']['costhook_rss_mb']:,.0f} MB")
        self.row("  first import time / ccusage time", f"{ratio:.2f} x (run by run: "
                 f"{', '.join(f'{o.wall / t.wall:.2f}' for o, t in zip(ours, theirs))})", f"<= {FIRST_IMPORT_TARGET:g} x",
                 "OK" if ratio <= FIRST_IMPORT_TARGET else "MISS")
        cpu = self.data["first_import"]
        self.row("  CPU time (user + sys, workers included): costhook / ccusage",
                 f"{cpu['costhook_cpu_s']:,.2f} s / {cpu['ccusage_cpu_s']:,.2f} s = {cpu['costhook_cpu_s'] / cpu['ccusage_cpu_s']:.2f} x")
        self.row("  peak RSS (largest process): costhook / ccusage", f"{cpu['costhook_rss_mb']:,.0f} MB / {cpu['ccusage_rss_mb']:,.0f} MB",
                 "costhook <= ccusage", "OK" if cpu["costhook_rss_mb"] <= cpu["ccusage_rss_mb"] else "MISS")
        self.theirs_stdout = theirs[-1].stdout
        again = []
        for _ in range(3):  # the same tree again, nothing new: what a repeated `costhook import` costs
            warm(self.tree)
            again.append(check_ok(run_with_rss([self.costhook, "import", "--claude-dir", str(self.tree), "-q"], env=self.env(db),
                                               scratch=self.scratch, python=self.python), "re-import"))
        cpu["reimport_s"] = statistics.median(r.wall for r in again)
        self.row("  re-import of the unchanged tree (median of 3)", f"{cpu['reimport_s']:,.2f} s "
                 f"({', '.join(f'{r.wall:.2f}' for r in again)})", "~0.3 s")
        # The same tree through the incremental path: the same rows, rollup, sessions and cursors.
        inc, inc_db = self.import_fresh(self.tree, "import-incremental", incremental=True)
        cpu["incremental_s"], cpu["incremental_cpu_s"] = inc.wall, inc.cpu
        self.row("  the incremental path on the same tree (as before issue 14)", f"{inc.wall:,.2f} s, {inc.cpu:,.2f} s CPU, "
                 f"peak RSS {inc.rss_kb / 1024:,.0f} MB")
        problems = [f"{name} differ" for name, (a, b) in compare_tables(db, inc_db).items() if a != b]
        self.data["first_import"]["identical_to_incremental"] = not problems
        self.fail("  first import = incremental import (requests, rollup, price groups, sessions, cursors, sub-agent names)", problems)

    def floor(self):
        """The parts of any first import that do not depend on costhook's per-call work
        (import_floor.py), each on one core, beside ccusage's CPU time."""
        from tests.benchmarks import import_floor

        f = import_floor.measure(self.tree, self.db)
        self.data["import_floor"] = f
        theirs_cpu = self.data["first_import"]["ccusage_cpu_s"]
        self.row("  floor on one core: read + pre-filter / JSON parse / sqlite3 inserts",
                 f"{f['read_cpu_s']:.2f} / {f['parse_cpu_s']:.2f} ({f['parsed_mb']:,.0f} MB) / {f['insert_cpu_s']:.2f} s CPU "
                 f"(SQLite alone {f['insert_select_cpu_s']:.2f} s); ccusage in all {theirs_cpu:.2f} s CPU")

    def accuracy_before(self):
        theirs = ccusage_days(self.theirs_stdout)
        ours = self.our_days(self.db)
        quirk_days = {c["day"] for c in self.cases}
        diffs = token_diffs({d: v for d, v in theirs.items() if d not in quirk_days}, {d: v for d, v in ours.items() if d not in quirk_days})
        self.data["accuracy"] = {"days": len(set(theirs) - quirk_days), "token_diffs": diffs}
        self.fail(f"tokens by day, costhook = ccusage ({len(set(theirs) - quirk_days)} days)", diffs)
        generator = {d: r for d, r in self.expected["by_day"].items()}
        problems = [f"{d} {k}: {ours.get(d, {}).get(k)} != {w[k]}" for d, w in generator.items() for k in ("requests", *TOKEN_KEYS)
                    if ours.get(d, {}).get(k) != w[k]]
        self.fail("tokens by day, costhook = generator", problems)
        quirks = check_quirks(self.cases, theirs, ours)
        self.data["quirks"] = quirks
        for what, seen, status, why in quirks:
            self.row(f"  quirk: {what}", seen, "as documented", status)
            self.notes.append(f"quirk '{what}': {why}")
            if status != "OK":
                self.failures.append(f"quirk {what}")
        breakdown = cost_breakdown(self.db)
        t_cost = round(sum(d["totalCost"] for day, d in theirs.items() if day not in quirk_days) * 1e9)
        o_cost = sum(round(d["cost_usd"] * 1e9) for day, d in ours.items() if day not in quirk_days)
        rest = o_cost - t_cost - breakdown["web_search_nanousd"] - breakdown["us_inference_nanousd"]
        self.data["cost"] = {"costhook_usd": o_cost / 1e9, "ccusage_usd": t_cost / 1e9, **{k: v / 1e9 for k, v in breakdown.items()},
                             "rest_usd": rest / 1e9}
        self.row("cost: costhook / ccusage (big tree)", f"${o_cost / 1e9:,.2f} / ${t_cost / 1e9:,.2f} = "
                 f"web search ${breakdown['web_search_nanousd'] / 1e9:,.2f} + US inference ${breakdown['us_inference_nanousd'] / 1e9:,.2f} "
                 f"+ long context etc. ${rest / 1e9:,.2f}", "explained")

    def new_session(self):
        """A new session in the tree, captured by its hooks as it is written; then a report."""
        session = "7e57ab1e-0000-4000-8000-000000000001"
        path = self.tree / "projects" / "-home-dev-new-session" / f"{session}.jsonl"
        transcript = generate.Transcript(path, seed=self.args.seed + 7, cwd="/home/dev/new-session")
        transcript.write(0.2)
        env = self.env(self.db)
        base = {"session_id": session, "transcript_path": str(path), "cwd": "/home/dev/new-session"}
        hook_runs = []
        check_ok(run_measured([self.costhook, "hook"], env=env, stdin=json.dumps({**base, "hook_event_name": "SessionStart", "source": "startup"}).encode(),
                              scratch=self.scratch), "hook SessionStart")
        passes = []
        n_hooks = max(21, self.args.hook_runs)
        for i in range(n_hooks + 2):
            passes.append(run_measured([self.python, "-c", "pass"], env=env, scratch=self.scratch))
            transcript.append_call()
            payload = {**base, "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": f"toolu_new_{i}",
                       "tool_input": {"command": "ls"}, "tool_response": {"stdout": "ok", "stderr": ""}, "duration_ms": 5}
            hook_runs.append(check_ok(run_measured([self.costhook, "hook"], env=env, stdin=json.dumps(payload).encode(), scratch=self.scratch), "hook"))
        rss = run_with_rss([self.costhook, "hook"], env=env, stdin=json.dumps({**base, "hook_event_name": "Stop"}).encode(),
                           scratch=self.scratch, python=self.python)
        check_ok(run_measured([self.costhook, "hook"], env=env, stdin=json.dumps({**base, "hook_event_name": "SessionEnd", "reason": "other"}).encode(),
                              scratch=self.scratch), "hook SessionEnd")
        wait_for_catch_ups(str(self.work), timeout=120)
        hooks, passes = hook_runs[2:], passes[2:]  # two warm-up rounds
        base_s = statistics.median(r.wall for r in passes)
        hook_s = statistics.median(r.wall for r in hooks)
        cpu_ratio = statistics.median(r.cpu for r in hooks) / statistics.median(r.cpu for r in passes)
        db_rows = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True).execute("SELECT count(*) FROM requests").fetchone()[0]
        self.data["hook"] = {"python_pass_s": base_s, "hook_s": hook_s, "ratio": hook_s / base_s, "cpu_ratio": cpu_ratio,
                             "rss_mb": check_ok(rss, "hook Stop").rss_kb / 1024, "db_rows": db_rows}
        self.row(f"python -c pass / hook PostToolUse +1 call (median of {len(hooks)}, {db_rows:,}-row DB)",
                 f"{base_s * 1000:,.1f} ms / {hook_s * 1000:,.1f} ms, hook peak RSS {rss.rss_kb / 1024:.0f} MB")
        self.row("  hook / python -c pass", f"{hook_s / base_s:.2f} x (CPU {cpu_ratio:.2f} x)", f"<= {HOOK_RATIO_TARGET:g} x",
                 "OK" if hook_s / base_s <= HOOK_RATIO_TARGET else "MISS")
        for name in ("stdout", "stderr"):
            bad = [r for r in hook_runs if getattr(r, name).strip()]
            if bad:
                self.failures.append("hook output")
                self.row(f"hook wrote to {name}", repr(getattr(bad[0], name)[:200]), "nothing", "FAIL")
        self.new_expected = transcript.expected()

    def report_after(self):
        runs = self.args.report_runs
        report_cmd = [self.costhook, "report", "--by", "day", "--tz", "UTC", "--format", "json"]
        reports = [check_ok(run_with_rss(report_cmd, env=self.env(self.db), scratch=self.scratch, python=self.python), "report")
                   for _ in range(runs)]
        theirs = self.run_ccusage(self.tree, max(1, self.args.runs))
        r_wall = statistics.median(r.wall for r in reports)
        t_wall = statistics.median(r.wall for r in theirs)
        # Without hooks: import what is new (the new session), then the report.
        db2 = self.db_nohooks
        inc = [check_ok(run_measured([self.costhook, "import", "--claude-dir", str(self.tree), "-q"], env=self.env(db2), scratch=self.scratch), "re-import")]
        inc += [check_ok(run_measured([self.costhook, "import", "--claude-dir", str(self.tree), "-q"], env=self.env(db2), scratch=self.scratch), "re-import")
                for _ in range(2)]
        inc_s = inc[0].wall + r_wall
        speedup = t_wall / r_wall
        self.data["report_after_new_session"] = {"costhook_report_s": [r.wall for r in reports], "ccusage_s": [r.wall for r in theirs],
                                                 "speedup": speedup, "report_rss_mb": max(r.rss_kb for r in reports) / 1024,
                                                 "import_new_then_report_s": inc_s, "import_speedup": t_wall / inc_s,
                                                 "reimport_unchanged_s": statistics.median(r.wall for r in inc[1:])}
        self.row(f"after one new session: costhook report --by day (median of {runs}) / ccusage", f"{r_wall * 1000:,.0f} ms / {t_wall:,.2f} s, "
                 f"report peak RSS {self.data['report_after_new_session']['report_rss_mb']:,.0f} MB")
        self.row("  speed-up of the report over ccusage", f"{speedup:,.1f} x", f">= {REPORT_SPEEDUP_TARGET:g} x",
                 "OK" if speedup >= REPORT_SPEEDUP_TARGET else "MISS")
        self.row("  without hooks: costhook import (new session only) + report", f"{inc_s:,.2f} s = {t_wall / inc_s:,.1f} x faster than ccusage")
        self.row("  re-import of the unchanged tree", f"{self.data['report_after_new_session']['reimport_unchanged_s']:,.2f} s")
        # the new session is in both, and they still agree
        ours = self.our_days(self.db)
        quirk_days = {c["day"] for c in self.cases}
        theirs_days = ccusage_days(theirs[-1].stdout)
        diffs = token_diffs({d: v for d, v in theirs_days.items() if d not in quirk_days}, {d: v for d, v in ours.items() if d not in quirk_days})
        want = self.new_expected["totals"]
        before = self.expected["totals"]
        got = {k: sum(r[k] for d, r in ours.items() if d not in quirk_days) for k in TOKEN_KEYS}
        problems = diffs + [f"{k}: {got[k]} != {before[k] + want[k]}" for k in TOKEN_KEYS if got[k] != before[k] + want[k]]
        self.fail("after the new session: tokens by day, costhook (hooks) = ccusage = generator", problems)

    def memory(self):
        small_ccusage = self.run_ccusage(self.small, 1)[0]
        small_import, _ = self.import_fresh(self.small, "import-eighth")
        big_c = self.data["first_import"]["ccusage_rss_mb"]
        big_o = self.data["first_import"]["costhook_rss_mb"]
        ratio_o = big_o / (small_import.rss_kb / 1024)
        ratio_c = big_c / (small_ccusage.rss_kb / 1024)
        self.data["memory"] = {"costhook_eighth_mb": small_import.rss_kb / 1024, "costhook_full_mb": big_o,
                               "ccusage_eighth_mb": small_ccusage.rss_kb / 1024, "ccusage_full_mb": big_c}
        self.row("peak RSS, eighth tree -> whole tree: costhook import", f"{small_import.rss_kb / 1024:,.0f} -> {big_o:,.0f} MB ({ratio_o:.2f} x)",
                 f"<= {RSS_FLAT_TARGET:g} x", "OK" if ratio_o <= RSS_FLAT_TARGET else "MISS")
        self.row("peak RSS, eighth tree -> whole tree: ccusage", f"{small_ccusage.rss_kb / 1024:,.0f} -> {big_c:,.0f} MB ({ratio_c:.2f} x)")

    def table(self) -> str:
        head = ("figure", "value", "target", "status")
        widths = [min(max(len(str(r[i])) for r in self.rows + [head]), 90) for i in range(4)]
        lines = []
        for r in [head, tuple("-" * w for w in widths)] + self.rows:
            lines.append("  ".join(str(c)[:w].ljust(w) for c, w in zip(r, widths)).rstrip())
        return "\n".join(lines)


INCREMENTAL_IMPORT = (
    "import sys; from pathlib import Path; from costhook.store import db; from costhook.agents.claude import importer;"
    "importer.import_claude(db.connect(), [Path(sys.argv[1])])"
)


def warm(tree: Path) -> None:
    """Read every transcript of `tree` just before a timed run: this VM drops page cache
    that goes untouched for about a minute, and both sides are timed with it warm."""
    for root, _, names in os.walk(tree):
        for name in names:
            if name.endswith(".jsonl"):
                with open(os.path.join(root, name), "rb") as f:
                    while f.read(1 << 20):
                        pass


def compare_tables(a: Path, b: Path) -> dict:
    """{table: (rows in a, rows in b)} of what an import writes (cursors without their time)."""
    queries = {
        "requests": "SELECT * FROM requests ORDER BY key",
        "rollup": "SELECT * FROM spend WHERE requests != 0 ORDER BY dim, key, bucket",
        "sessions": "SELECT * FROM sessions ORDER BY session_id",
        "cursors": "SELECT path, offset, size, inode, head, state FROM cursors ORDER BY path",
        "subagents": "SELECT * FROM subagents ORDER BY session_id, agent_id",
        "price_groups": "SELECT * FROM price_groups WHERE requests != 0 ORDER BY bucket, agent, model, speed, inference_geo, "
                        "project, agent_type, skill, band, nulls",
    }
    out = {}
    for name, sql in queries.items():
        rows = []
        for path in (a, b):
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                rows.append(conn.execute(sql).fetchall())
        out[name] = tuple(rows)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.ccusage", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "install"])
    parser.add_argument("--calls", type=int, default=84_000, help="API calls in the generated tree (84,000: ~1.1 GB, ~4,700 files)")
    parser.add_argument("--session-calls", type=int, default=15, help="median calls per session (the generator's)")
    parser.add_argument("--replays", type=float, default=0.015, help="share of calls copied into resumed sessions")
    parser.add_argument("--first-import", action="store_true", help="only the first import vs ccusage, and its rows vs the incremental path")
    parser.add_argument("--runs", type=int, default=3, help="runs of ccusage and of the first import (median)")
    parser.add_argument("--before", metavar="DIR", help="with --first-import: also another source tree's first import, "
                        "interleaved (`python -m costhook` with PYTHONPATH=DIR), and its tables compared with these")
    parser.add_argument("--report-runs", type=int, default=7)
    parser.add_argument("--hook-runs", type=int, default=21)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ccusage", help="a ccusage executable (default: install ccusage@20.0.24 from npm into .cache/)")
    parser.add_argument("--work", help="directory for generated data (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout (the table goes to stderr)")
    args = parser.parse_args(argv)
    if args.ccusage:
        ccusage, why = Path(args.ccusage), ""
    else:
        ccusage, why = install()
    if args.command == "install":
        print(ccusage or why)
        return 0 if ccusage else 1
    if ccusage is None:
        raise SystemExit(f"ccusage unavailable: {why}")
    if args.work:
        work = Path(args.work).resolve()
        if work == REPO or REPO in work.parents:
            raise SystemExit("--work must be outside the repository")
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="costhook-ccusage-", dir="/tmp"))
    out = sys.stderr if args.json else sys.stdout
    bench = SideBySide(args, work, ccusage)
    started = time.monotonic()
    print(f"costhook vs ccusage {CCUSAGE_VERSION}, work dir {work}", file=out, flush=True)
    try:
        steps = (bench.generate, bench.first_import, bench.floor, bench.accuracy_before, bench.new_session, bench.report_after, bench.memory)
        for step in steps[:2] if args.first_import else steps:
            print(f"  {step.__name__} ...", file=out, flush=True)
            step()
    finally:
        wait_for_catch_ups(str(work), timeout=120)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    load = bench.data["machine"]
    load["load_end"] = os.getloadavg()
    bench.data["run_s"] = time.monotonic() - started
    bench.data["failures"] = bench.failures
    bench.row("whole run", f"{bench.data['run_s']:,.0f} s; {load['cpus']} CPUs, load {load['load_start'][0]:.1f} -> {load['load_end'][0]:.1f}, "
              f"Python {load['python']}, SQLite {load['sqlite']}, git {load['git']}")
    return finish(bench, args, work, out, bench.notes)


if __name__ == "__main__":
    sys.exit(main())
