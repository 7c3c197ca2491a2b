"""Benchmark: the hot path of two costhook checkouts side by side, interleaved.

    python -m tests.benchmarks.hot_path --before DIR [--after DIR] [--rows 1000000]
                                        [--transcript-mb 50] [--runs 30] [--keep DIR]

For a change that must not slow the hook or the statusline (a refactor, a new layer):
each checkout's `costhook/` package is copied into a throw-away venv of its own, as
`install.sh` installs it (no editable finder; the dependencies come from this venv,
and the hot path needs none), with its own copies of the same 1,000,000-row databases
(run.py's for the hook, statusline_bench's for the statusline) and of the same 50 MB
transcript, already ingested. Then, round after round, the two
alternate (which goes first alternates too): `python -c pass`, one API call appended
to the transcript and `costhook hook` (PostToolUse, no budgets: design.md §8's
measurement), and `costhook statusline` with three budgets (statusline_bench's). It
prints medians (wall and CPU) per checkout and the after/before ratios as JSON.

`--gate`: the hook is PostToolUse after an Agent tool with the three budgets configured,
a gate that opens the database, ingests and judges before it answers (without budgets,
PostToolUse answers at once and works in the background, where these timings do not see).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from tests.benchmarks import generate, statusline_bench
from tests.benchmarks.run import run_measured

REPO = Path(__file__).resolve().parents[2]
WARM_UP_ROUNDS = 3


# The console script pip writes for `costhook = "costhook.__main__:main"` (distlib's template),
# imports and all: what a user's `costhook` runs.
PIP_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from costhook.__main__ import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def regular_install(checkout: Path, venv: Path) -> tuple[str, str]:
    """(python, costhook script) of a venv holding a plain copy of `checkout`'s package."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    shutil.copytree(checkout / "costhook", site / "costhook", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "dev-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "compileall", "-q", str(site / "costhook")], check=True)
    script = venv / "bin" / "costhook"
    script.write_text(PIP_SCRIPT.format(python=python))
    script.chmod(0o755)
    return str(python), str(script)


class Side:
    """One checkout: its install, database, transcript and timings."""

    def __init__(self, label: str, checkout: Path, work: Path, templates: Path, transcript_mb: float, gate: bool = False):
        self.label, self.work = label, work / label
        self.home = self.work / "home"
        self.home.mkdir(parents=True)
        self.python, self.costhook = regular_install(checkout, self.work / "venv")
        self.db = self.home / "costhook.db"
        shutil.copyfile(templates / "hook.db", self.db)
        statusline_db = self.home / "statusline.db"
        shutil.copyfile(templates / "statusline" / "costhook.db", statusline_db)
        self.transcript = generate.Transcript(self.work / "projects" / "bench" / "bench-session.jsonl", seed=7)
        self.transcript.write(transcript_mb)
        (self.work / "budgets.toml").write_text(statusline_bench.CONFIG)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("COSTHOOK_", "CLAUDE_"))
                and k not in ("PYTHONDONTWRITEBYTECODE", "NO_COLOR")}
        base.update(COSTHOOK_HOME=str(self.home))
        self.hook_env = {**base, "COSTHOOK_DB": str(self.db), "XDG_CONFIG_HOME": str(self.work / "no-config")}  # no config file
        self.gate = gate
        if gate:
            self.hook_env["COSTHOOK_CONFIG"] = str(self.work / "budgets.toml")
        self.statusline_env = {**base, "COSTHOOK_DB": str(statusline_db), "COSTHOOK_CONFIG": str(self.work / "budgets.toml")}
        # The backlog is read once, synchronously, as the detached catch-up would.
        subprocess.run([self.costhook, "hook", "--catch-up", str(self.transcript.path)], env=self.hook_env, check=True)
        self.times = {"python_pass": [], "hook": [], "statusline": []}
        self.calls = 0

    def hook_payload(self) -> bytes:
        self.calls += 1
        return json.dumps({
            "session_id": self.transcript.session_id, "transcript_path": str(self.transcript.path),
            "cwd": self.transcript.cwd, "hook_event_name": "PostToolUse", "tool_name": "Agent" if self.gate else "Bash",
            "tool_input": {"command": "npm test"}, "tool_response": {"stdout": "ok\n", "stderr": ""},
            "tool_use_id": f"toolu_01HotPath{self.calls:012d}", "duration_ms": 812,
        }).encode()

    def round(self, scratch: Path, keep: bool) -> None:
        runs = {
            "python_pass": run_measured([self.python, "-c", "pass"], env=self.hook_env, scratch=scratch),
        }
        self.transcript.append_call()
        runs["hook"] = run_measured([self.costhook, "hook"], env=self.hook_env, stdin=self.hook_payload(), scratch=scratch)
        runs["statusline"] = run_measured([self.costhook, "statusline", "--plain"], env=self.statusline_env,
                                          stdin=statusline_bench.payload(time.time()), scratch=scratch)
        for name, run in runs.items():
            # (a gate may answer: its budgets' standing, a warning; the hook without budgets never does)
            if run.returncode != 0 or (name == "hook" and (run.stderr or run.stdout and not self.gate)):
                raise SystemExit(f"{self.label} {name} failed: rc={run.returncode} {run.stdout[:200]!r} {run.stderr[:300]!r}")
            if keep:
                self.times[name].append(run)

    def summary(self) -> dict:
        out = {}
        for name, runs in self.times.items():
            out[name] = {"wall_ms": round(statistics.median(r.wall for r in runs) * 1000, 2),
                         "cpu_ms": round(statistics.median(r.cpu for r in runs) * 1000, 2)}
        errors = self.home / "errors.log"
        out["errors_logged"] = errors.read_text().count("\n") if errors.exists() else 0
        return out


def measure(before: Path, after: Path, work: Path, rows: int, transcript_mb: float, runs: int, gate: bool = False) -> dict:
    templates = work / "templates"
    built = statusline_bench.build_db(templates / "statusline", rows)
    generate.generate_db(templates / "hook.db", rows)
    sides = [Side("before", before, work, templates, transcript_mb, gate),
             Side("after", after, work, templates, transcript_mb, gate)]
    scratch = work / "scratch"
    scratch.mkdir()
    load = os.getloadavg()[0]
    for index in range(runs + WARM_UP_ROUNDS):
        for side in (sides if index % 2 == 0 else sides[::-1]):
            side.round(scratch, keep=index >= WARM_UP_ROUNDS)
    result = {"rows": built["rows"], "transcript_mb": transcript_mb, "runs": runs, "hook": "gate" if gate else "PostToolUse",
              "load_1min_before_after": [round(load, 2), round(os.getloadavg()[0], 2)]}
    for side in sides:
        result[side.label] = side.summary()
    for name in ("hook", "statusline", "python_pass"):
        for unit in ("wall_ms", "cpu_ms"):
            result.setdefault("after_over_before", {})[f"{name}_{unit}"] = round(
                result["after"][name][unit] / result["before"][name][unit], 3)
    return result


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a costhook checkout (e.g. a git worktree of the base)")
    parser.add_argument("--after", type=Path, default=REPO, help="a costhook checkout (default: this one)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--transcript-mb", type=float, default=50)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="work in this (new) directory and keep it")
    parser.add_argument("--gate", action="store_true", help="time a gate that opens the database (see above)")
    args = parser.parse_args(argv)
    for checkout in (args.before, args.after):
        if not (checkout / "costhook" / "__main__.py").is_file():
            parser.error(f"{checkout} is not a costhook checkout")
    if args.keep:
        args.keep.mkdir(parents=True)
        result = measure(args.before.resolve(), args.after.resolve(), args.keep, args.rows, args.transcript_mb, args.runs, args.gate)
    else:
        with tempfile.TemporaryDirectory(prefix="costhook-hot-path-") as work:
            result = measure(args.before.resolve(), args.after.resolve(), Path(work), args.rows, args.transcript_mb, args.runs,
                             args.gate)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
