"""Drive the real OpenAI Codex CLI (npm `@openai/codex@0.171.0`) offline, against
tests/e2e/fake_responses.py, with costhook's hooks in its CODEX_HOME.

Standard library only: `python3 codex_harness.py --inner JOB.json` is also the entry
point that runs inside a private network namespace (`unshare -n`, only loopback up),
where one fake server and one `codex exec` share the loopback.

    python3 tests/e2e/codex_harness.py --install      # CI: install outside test timeouts

    codex, why = codex_binary()               # (path | None, reason); npm into the cache once
    box = Sandbox.make(tmp_path, codex)       # HOME, CODEX_HOME, work dir, COSTHOOK_* in tmp
    box.write_hooks()                         # costhook's hooks for every event, in hooks.json
    run = box.run("please TOOLS:2")           # one `codex exec --json` (new fake server each run)
    run.requests                              # what the fake API answered in this run
    box.run("go on", resume=True)             # `exec resume --last --all`
    box.costhook("report", "--format", "json")

Hooks are written to `$CODEX_HOME/hooks.json` and run with
`--dangerously-bypass-hook-trust` (trusting them is the installer's part). Codex runs
with analytics and plugins off (else it waits ~5 s at exit for a metrics export and
tries to sync plugins), `-s read-only` (the shell still runs `echo`).

Environment knobs
  COSTHOOK_E2E_CODEX_CACHE   install dir (default <repo>/.cache/codex-0.171.0)
  COSTHOOK_E2E_NO_INSTALL=1  never run npm; skip when not installed
  COSTHOOK_E2E_NPM_TIMEOUT   seconds for the npm install (default 600)
  COSTHOOK_E2E_NETNS=0       do not use `unshare -n`
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CODEX_VERSION = "0.171.0"
PACKAGE = f"@openai/codex@{CODEX_VERSION}"
MODEL = "gpt-5.5"
FAKE_KEY = "sk-fake-costhook-codex-e2e"
HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest", "PostToolUse", "PreCompact",
               "PostCompact", "SubagentStart", "SubagentStop", "Stop", "SessionEnd")
TOOL_EVENTS = ("PreToolUse", "PermissionRequest", "PostToolUse")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # offline.py and the fake server, also when run as a script in the namespace
from offline import loopback_up, netns_prefix, npm_install

NPM_TIMEOUT = float(os.environ.get("COSTHOOK_E2E_NPM_TIMEOUT", "600"))


# ------------------------------------------------------------------ install ---------
def cache_dir() -> Path:
    explicit = os.environ.get("COSTHOOK_E2E_CODEX_CACHE")
    return Path(explicit).expanduser().resolve() if explicit else REPO / ".cache" / f"codex-{CODEX_VERSION}"


def _installed(base: Path) -> Path | None:
    binary = base / "node_modules" / ".bin" / "codex"
    if not binary.exists():
        return None
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return binary if out == f"codex-cli {CODEX_VERSION}" else None


@functools.cache
def codex_binary(install: bool = True) -> tuple[Path | None, str]:
    """(path of `codex`, "") when Codex CODEX_VERSION is usable, else (None, why not).
    Installs it with npm into cache_dir() the first time (offline.npm_install). The package
    brings its native binary as an optional dependency: no install script, nothing
    downloaded outside the registry."""
    if not install:
        found = _installed(cache_dir())
        return (found, "") if found else (None, f"Codex {CODEX_VERSION} not installed in {cache_dir()}")
    return npm_install(cache_dir(), [PACKAGE], _installed, timeout=NPM_TIMEOUT)


# ------------------------------------------------------------------ sandbox ---------
def costhook_exe() -> Path:
    """The costhook command of the venv the tests run in."""
    return Path(sys.executable).parent / "costhook"


@dataclass
class Run:
    argv: list
    rc: int | None
    wall_s: float
    stdout: str
    stderr: str
    requests: list  # the fake API's log lines of this run

    @property
    def events(self) -> list:
        """`codex exec --json` events."""
        out = []
        for line in self.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    @property
    def billed(self) -> list:
        """The responses the fake API returned with usage (one billed call each)."""
        return [r for r in self.requests if r.get("usage")]


@dataclass
class Sandbox:
    root: Path
    codex: Path
    runs: list = field(default_factory=list)

    @classmethod
    def make(cls, tmp_path: Path, codex: Path) -> "Sandbox":
        box = cls(Path(tmp_path), Path(codex))
        for folder in (box.home, box.tmp, box.codex_home, box.work, box.costhook_home):
            folder.mkdir(parents=True, exist_ok=True)
        box.costhook_config.touch()
        return box

    home = property(lambda self: self.root / "home")
    tmp = property(lambda self: self.root / "tmp")
    codex_home = property(lambda self: self.root / "codex-home")
    work = property(lambda self: self.root / "work")
    costhook_home = property(lambda self: self.root / "costhook")
    db = property(lambda self: self.root / "costhook" / "costhook.db")
    costhook_config = property(lambda self: self.root / "costhook" / "config.toml")
    requests_log = property(lambda self: self.root / "requests.jsonl")

    def env(self) -> dict:
        return {
            "PATH": f"{costhook_exe().parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "CODEX_HOME": str(self.codex_home),
            "FAKE_OPENAI_API_KEY": FAKE_KEY,
            "COSTHOOK_HOME": str(self.costhook_home),
            "COSTHOOK_DB": str(self.db),
            "COSTHOOK_CONFIG": str(self.costhook_config),
        }

    def hook_command(self) -> str:
        return f"{shlex.quote(str(costhook_exe()))} hook --agent codex"

    def write_hooks(self, events=HOOK_EVENTS, command: str | None = None, timeout: int = 30) -> None:
        """costhook's hook (or `command`) for each event in `$CODEX_HOME/hooks.json`."""
        hooks = {}
        for event in events:
            group = {"hooks": [{"type": "command", "command": command or self.hook_command(), "timeout": timeout}]}
            if event in TOOL_EVENTS:
                group["matcher"] = "*"
            hooks[event] = [group]
        (self.codex_home / "hooks.json").write_text(json.dumps({"hooks": hooks}, indent=1))

    def run(self, prompt: str, *extra: str, resume: bool = False, timeout: float = 120,
            service_tier: str | None = None, hook_trust: bool = True, sandbox: str | None = "read-only") -> Run:
        """One `codex exec --json` against a new fake server, in the private netns.
        `sandbox=None`: no `-s` (which --approve-for-me refuses)."""
        argv = [str(self.codex), "exec", "--json", "--skip-git-repo-check", "-C", str(self.work), "-m", MODEL,
                "-c", "model_provider=fake", "-c", "PROVIDER", "-c", "analytics.enabled=false",
                "-c", "features.plugins=false", *(["-s", sandbox] if sandbox else [])]
        if hook_trust:
            argv.append("--dangerously-bypass-hook-trust")
        argv += list(extra)
        if resume:
            argv += ["resume", "--last", "--all"]
        argv.append(prompt)
        job = self.root / f"job-{len(self.runs) + 1}.json"
        result = self.root / f"result-{len(self.runs) + 1}.json"
        job.write_text(json.dumps({"argv": argv, "env": self.env(), "cwd": str(self.work), "log": str(self.requests_log),
                                   "result": str(result), "timeout": timeout, "service_tier": service_tier}))
        before = len(self.requests())
        started = time.monotonic()
        subprocess.run([*netns_prefix(), sys.executable, str(Path(__file__)), "--inner", str(job)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 30, check=False)
        try:
            out = json.loads(result.read_text())
        except (OSError, ValueError):
            out = {"rc": None, "stdout": "", "stderr": "the harness left no result", "argv": argv}
        run = Run(out["argv"], out["rc"], time.monotonic() - started, out["stdout"], out["stderr"],
                  self.requests()[before:])
        self.runs.append(run)
        return run

    def requests(self) -> list:
        try:
            return [json.loads(line) for line in self.requests_log.read_text().splitlines() if line.strip()]
        except OSError:
            return []

    def rollouts(self) -> list:
        return sorted(glob.glob(str(self.codex_home / "sessions" / "**" / "rollout-*.jsonl"), recursive=True))

    def costhook(self, *args: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(costhook_exe()), *args], cwd=self.work, env=self.env(), input=input,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def wait_for_hooks(self, timeout: float = 30.0) -> None:
        """Background hooks (detached, so Codex does not wait) done: their pending locks free."""
        probe = ("import sys; from costhook.agents import runtime; "
                 "sys.exit(0 if runtime.wait_for_background(float(sys.argv[1])) else 1)")
        subprocess.run([sys.executable, "-c", probe, str(timeout)], env={**os.environ, **self.env()},
                       capture_output=True, timeout=timeout + 10, check=False)


# ------------------------------------------------------------------ inner ----------
def inner(job_path: str) -> None:
    """Inside the namespace: loopback up, a fake server, one codex run; the result as JSON."""
    job = json.loads(Path(job_path).read_text())
    loopback_up()
    import fake_responses

    server = fake_responses.serve(job["log"], job.get("service_tier"))
    port = server.server_address[1]
    provider = ('{name="fake", base_url="http://127.0.0.1:%d/v1", wire_api="responses", env_key="FAKE_OPENAI_API_KEY"}'
                % port)
    argv = [f"model_providers.fake={provider}" if a == "PROVIDER" else a for a in job["argv"]]
    out = {"argv": argv, "rc": None, "stdout": "", "stderr": ""}
    try:
        p = subprocess.run(argv, cwd=job["cwd"], env=job["env"], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=job["timeout"])
        out.update(rc=p.returncode, stdout=p.stdout, stderr=p.stderr)
    except subprocess.TimeoutExpired as exc:
        out.update(stdout=_text(exc.stdout), stderr=_text(exc.stderr) + f"\n(timed out after {job['timeout']} s)")
    finally:
        server.shutdown()
    Path(job["result"]).write_text(json.dumps(out))


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


def main(argv: list) -> int:
    if argv[:1] == ["--install"]:
        path, why = codex_binary()
        print(f"codex {CODEX_VERSION}: {path}" if path else f"codex {CODEX_VERSION} not installed: {why}")
        return 0 if path else 1
    if argv[:1] == ["--inner"] and len(argv) == 2:
        inner(argv[1])
        return 0
    print("usage: codex_harness.py --install | --inner JOB.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
