"""Benchmark: what costhook's OpenClaw plugin adds to a real agent turn (issue 14, target 2).

    python -m tests.benchmarks.openclaw_turn [--runs 9] [--checkout DIR] [--before DIR] [--cpu] [--no-budget] [--trace]
                                             [--work DIR] [--json]

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

`--before DIR` adds a third sandbox with the plugin of another checkout (a worktree of
main: before/after in one run), in the same rotation. `--cpu` also reports the CPU time
(user + system) costhook's processes spend per turn, which the machine's load does not
move: each short-lived process logs its own at exit (a sitecustomize in the throw-away
venv; a hook that forks into the background logs both halves), the resident's is read
from /proc; per turn = what the measured turns added (after the warm-up turns and once
their background work ended), divided by their number.
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


def sandbox_with_plugin(work: Path, oc: h.Install, costhook: str, budget: bool, checkout: Path, name: str = "plugin") -> h.Sandbox:
    box = h.Sandbox.start(work / name, oc)
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


CPU_SITECUSTOMIZE = """\
import atexit, os, sys

def _log(_exit=None):
    t = os.times()
    with open({log!r}, "a") as f:
        f.write(f"{{os.getpid()}} {{'serve' if '--serve' in sys.argv else 'event'}} {{t.user + t.system:.4f}}\\n")

atexit.register(_log)
_exit = os._exit
def _logged_exit(code):  # a hook that forks into the background: its parent half ends here
    _log()
    _exit(code)
os._exit = _logged_exit
"""


def log_cpu(python: str, log: Path) -> None:
    """Every process of this venv logs its CPU seconds at exit (`pid kind seconds`)."""
    import subprocess

    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "sitecustomize.py").write_text(CPU_SITECUSTOMIZE.format(log=str(log)))


def live_cpu(costhook: str) -> dict:
    """pid -> (kind, CPU seconds) of this install's costhook processes still running (/proc)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if costhook.encode() not in argv:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found[int(pid)] = ("serve" if b"--serve" in argv else "event",
                           (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return found


def cpu_now(log: Path, costhook: str) -> dict:
    """kind -> CPU seconds so far of this install's costhook processes: those that ended
    (their log lines) and those still running (/proc; a resident logs again as it exits)."""
    live = live_cpu(costhook)
    spent = {"serve": 0.0, "event": 0.0}
    for line in log.read_text().splitlines() if log.exists() else []:
        pid, kind, seconds = line.split()
        if int(pid) not in live:
            spent[kind] += float(seconds)
    for kind, seconds in live.values():
        spent[kind] += seconds
    return spent


def quiet(installs: dict) -> None:
    """Wait (at most SETTLE_S) until no costhook process but the residents runs."""
    deadline = time.monotonic() + SETTLE_S
    while any(k != "serve" for _, _, c in installs.values() for k, _ in live_cpu(c).values()) and time.monotonic() < deadline:
        time.sleep(0.1)


def cpu_spent(before: dict, after: dict, turns: int) -> dict:
    """CPU ms per measured turn of costhook's processes: all, the resident(s), the others."""
    serve, event = after["serve"] - before["serve"], after["event"] - before["event"]
    return {"per_turn_ms": round((serve + event) * 1000 / turns, 1), "resident_per_turn_ms": round(serve * 1000 / turns, 1),
            "others_per_turn_ms": round(event * 1000 / turns, 1), "turns": turns}


def recorded(box: h.Sandbox) -> tuple[int, int, int]:
    """(calls, nano-USD) of the benchmark's turns (their sessions) in the sandbox's costhook
    database, read-only; and the calls of other sessions (OpenClaw's own background runs,
    e.g. memory-core's, which the fake API answers too: counted, not checked)."""
    if not box.db.exists():
        return 0, 0, 0
    conn = sqlite3.connect(f"file:{box.db}?mode=ro", uri=True, timeout=5)
    try:
        try:
            rows = conn.execute("SELECT session_key LIKE 'agent:main:bench-%', count(*), coalesce(sum(cost_nanousd), 0) "
                                "FROM requests GROUP BY 1").fetchall()
        except sqlite3.OperationalError:  # no table yet
            return 0, 0, 0
    finally:
        conn.close()
    by = {bool(ours): (calls, cost) for ours, calls, cost in rows}
    return (*by.get(True, (0, 0)), by.get(False, (0, 0))[0])


def run_turn(box: h.Sandbox, key: str) -> tuple[float, float]:
    """(CLI wall s, the run's own duration s) of one tool turn in a new session."""
    before = len(box.chat_requests())
    run = box.openclaw("agent", "--agent", "main", "--session-key", key, "--message", PROMPT, "--json", timeout=240)
    out = run.json()
    meta = ((out or {}).get("result") or {}).get("meta") or {}
    # OpenClaw's own heartbeat run may call the model meanwhile: not this turn's
    chats = [c.get("branch") for c in box.chat_requests()[before:] if c.get("branch") != "heartbeat"]
    if run.rc != 0 or run.timed_out or not out or chats != ["tool", "final"] or not isinstance(meta.get("durationMs"), (int, float)):
        raise SystemExit(f"the turn failed (fake API answered {chats}):\n{run.describe()}")
    return run.wall, meta["durationMs"] / 1000


def measure(oc: h.Install, installs: dict, work: Path, runs: int, budget: bool, trace: bool = False,
            cpu: bool = False) -> dict:
    """installs: sandbox name -> (checkout, python, costhook) of each plugin measured; each
    runs against the same sandbox without a plugin, all in one rotation."""
    boxes, logs = {}, {}
    try:
        for name, (checkout, python, costhook) in installs.items():
            boxes[name] = sandbox_with_plugin(work, oc, costhook, budget, checkout, name)
            if cpu:  # from here on: not `costhook install` and `budget set` above
                logs[name] = work / f"cpu-{name}.log"
                log_cpu(python, logs[name])
        trace_log = trace_plugin(boxes["plugin"]) if trace else None
        boxes["none"] = h.Sandbox.start(work / "bare", oc)
        started = {name: box.start_gateway(timeout=300) for name, box in boxes.items()}
        for name, box in boxes.items():  # warm-up: the CLI, the Gateway's lazy imports, the venv, the page cache
            run_turn(box, f"agent:main:bench-warm-{name}")
        if cpu:  # from here: what the measured turns cost (not the Gateway's start, the warm-up, the resident's start)
            quiet(installs)
            cpu_before = {n: cpu_now(logs[n], installs[n][2]) for n in installs}
        names = list(boxes)
        walls = {name: [] for name in names}
        durations = {name: [] for name in names}
        loads = []
        for i in range(runs):
            order = names[i % len(names):] + names[:i % len(names)]  # each goes first in turn
            for name in order:
                loads.append(load())
                wall, duration = run_turn(boxes[name], f"agent:main:bench-{i}-{name}")
                walls[name].append(round(wall, 3))
                durations[name].append(round(duration, 3))
        expected = (2 * (runs + 1), TURN_NANOUSD * (runs + 1))
        deadline = time.monotonic() + SETTLE_S
        while any(recorded(boxes[n])[:2] != expected for n in installs) and time.monotonic() < deadline:
            time.sleep(0.1)
        got = {n: recorded(boxes[n]) for n in installs}
        errors = {n: boxes[n].errors_log() for n in installs}
        if cpu:
            quiet(installs)
            cpu_after = {n: cpu_now(logs[n], installs[n][2]) for n in installs}
    finally:
        for box in boxes.values():
            box.close()
    med = {k: {name: statistics.median(v[name]) for name in v} for k, v in (("wall", walls), ("run", durations))}
    result = {
        "runs": runs, "budget": budget, "gateway_start_s": {k: round(v, 1) for k, v in started.items()},
        "walls": walls, "runs_s": durations,
        "load_1min": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
        "median_wall_without_s": round(med["wall"]["none"], 3), "median_run_without_s": round(med["run"]["none"], 3),
        "hooks_ms": traced(trace_log) if trace else None,
        "netns": boxes["none"].netns,
        "plugins": {},
    }
    for name in installs:
        result["plugins"][name] = {
            "checkout": str(installs[name][0]),
            "median_wall_with_plugin_s": round(med["wall"][name], 3),
            "overhead_wall_ms": round((med["wall"][name] - med["wall"]["none"]) * 1000, 1),
            "overhead_wall_pct": round((med["wall"][name] / med["wall"]["none"] - 1) * 100, 1),
            "median_run_with_plugin_s": round(med["run"][name], 3),
            "overhead_run_ms": round((med["run"][name] - med["run"]["none"]) * 1000, 1),
            "overhead_run_pct": round((med["run"][name] / med["run"]["none"] - 1) * 100, 1),
            "recorded": {"calls": got[name][0], "nanousd": got[name][1], "expected_calls": expected[0],
                         "expected_nanousd": expected[1], "exact": got[name][:2] == expected,
                         "other_sessions_calls": got[name][2]},
            "cpu": cpu_spent(cpu_before[name], cpu_after[name], runs) if cpu else None,
            "errors_log": errors[name][-2000:],
        }
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="Turns each way (median reported).")
    parser.add_argument("--checkout", type=Path, default=REPO, help="The costhook checkout to measure.")
    parser.add_argument("--before", type=Path,
                        help="Also measure this checkout's plugin (e.g. a worktree of main), interleaved with the others.")
    parser.add_argument("--cpu", action="store_true", help="Also report the CPU time costhook's processes spend per turn.")
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
    checkouts = {"plugin": args.checkout.resolve()}
    if args.before:
        checkouts["before"] = args.before.resolve()
    try:
        installs = {name: (checkout, *regular_install(checkout, work / f"venv-{name}")) for name, checkout in checkouts.items()}
        result = measure(oc, installs, work, args.runs, not args.no_budget, args.trace, args.cpu)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result["openclaw"] = h.OPENCLAW_VERSION
    plugins = result["plugins"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"OpenClaw {result['openclaw']} (Gateway, network: {result['netns']}), `openclaw agent --message "
              f"{shlex.quote(PROMPT)}` in a new session, {args.runs} turns each way, "
              f"1-minute load {result['load_1min']['min']}–{result['load_1min']['max']}, "
              f"{'one budget' if result['budget'] else 'no budget'}")
        for clock, label in (("wall", "CLI wall time"), ("run", "the run (Gateway's durationMs)")):
            print(f"  {label}")
            print(f"    without plugin          {result[f'median_{clock}_without_s'] * 1000:7.1f} ms (median)")
            for name, p in plugins.items():
                print(f"    with costhook {name:<9} {p[f'median_{clock}_with_plugin_s'] * 1000:7.1f} ms (median), "
                      f"overhead {p[f'overhead_{clock}_ms']:+7.1f} ms = {p[f'overhead_{clock}_pct']:+.1f} %  (target <= +10 %)")
        for name, p in plugins.items():
            rec = p["recorded"]
            print(f"  {name:<9} ({p['checkout']})")
            print(f"    recorded          {rec['calls']} calls, {rec['nanousd']} nano-USD; expected {rec['expected_calls']}, "
                  f"{rec['expected_nanousd']}: {'exact' if rec['exact'] else 'MISMATCH'}"
                  + (f" (and {rec['other_sessions_calls']} calls of OpenClaw's own sessions)" if rec["other_sessions_calls"] else ""))
            if p["cpu"]:
                c = p["cpu"]
                print(f"    costhook CPU      {c['per_turn_ms']:.1f} ms per turn ({c['resident_per_turn_ms']:.1f} in the "
                      f"resident, {c['others_per_turn_ms']:.1f} in processes of their own; {c['turns']} measured turns)")
            if p["errors_log"]:
                print("    errors.log:\n" + p["errors_log"])
        for hook, (ms, count) in (result["hooks_ms"] or {}).items():
            print(f"    {hook:<20} {ms:7.1f} ms (median of {count})")
    return 0 if all(p["recorded"]["exact"] for p in plugins.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
