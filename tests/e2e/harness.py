"""Drive the real Claude Code CLI offline against tests/e2e/fake_anthropic.py.

Standard library only: `python harness.py --inner JOB.json` is also the
entry point that runs inside a private network namespace (`unshare -n`), where
the fake server and the CLI share a loopback-only network.

    binary, reason = claude_binary("2.1.332") # installs with npm into a cache
    layout = make_layout(tmp_path)            # HOME, CLAUDE_CONFIG_DIR, ... in tmp
    run = run_claude(layout, "run echo hi", {"FAKE_TOOL": "Bash"}, claude=binary)
    run.out["total_cost_usd"], run.messages, run.proxy_attempts

Supported range: every Claude Code from CLAUDE_VERSIONS[0] on; the suite runs on each
version in CLAUDE_VERSIONS (the oldest and the newest the registry served when it was
last raised), a test id naming the version (`test_x[cc2.1.332]`).

Environment knobs
  COSTHOOK_E2E_CLAUDE_VERSIONS  comma-separated versions to test instead (e.g. a newer
                         "2.1.340"; installed like the others, tried, never refused)
  COSTHOOK_E2E_CACHE     parent dir of the installs (default <repo>/.cache; each
                         version goes to claude-code-<version> under it)
  COSTHOOK_E2E_CLAUDE    use this claude binary instead (tested as the version it reports)
  COSTHOOK_E2E_NO_INSTALL=1   never run npm; skip if the CLI is not installed
  COSTHOOK_E2E_NPM_TIMEOUT    seconds allowed for that npm install (default 300)
  COSTHOOK_E2E_NETNS=0   do not use `unshare -n` (the proxy guard still applies)
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLAUDE_VERSIONS = ("2.1.330", "2.1.332")  # the oldest supported and the newest tested
CLAUDE_VERSION = CLAUDE_VERSIONS[-1]  # the default of claude_binary()
MODEL = "claude-sonnet-4-5-20250929"
HAIKU_MODEL = "claude-haiku-4-5-20251001"
FAKE_API_KEY = "sk-ant-e2e-fake-key"

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # offline.py, also when run as a script in the namespace
from offline import loopback_up, netns_prefix, npm_install, wait_for  # noqa: F401 (wait_for: the tests use h.wait_for)
FAKE_SERVER = HERE / "fake_anthropic.py"
NPM_TIMEOUT = float(os.environ.get("COSTHOOK_E2E_NPM_TIMEOUT", "300"))
DEFAULT_RUN_TIMEOUT = 90


# ------------------------------------------------------------ the binary ----
def claude_versions() -> tuple[str, ...]:
    """The versions the e2e suite runs on: CLAUDE_VERSIONS, or COSTHOOK_E2E_CLAUDE_VERSIONS."""
    chosen = os.environ.get("COSTHOOK_E2E_CLAUDE_VERSIONS", "")
    return tuple(v.strip() for v in chosen.split(",") if v.strip()) or CLAUDE_VERSIONS


def version_tuple(version: str) -> tuple[int, ...]:
    """"2.1.332 (Claude Code)" or "2.1.332" -> (2, 1, 332); () when unreadable."""
    head = version.split()[0] if version.split() else ""
    parts = head.split(".")
    return tuple(int(p) for p in parts) if parts and all(p.isdigit() for p in parts) else ()


def at_least(version: str, minimum: str) -> bool:
    """Whether Claude Code `version` is `minimum` or newer."""
    return version_tuple(version) >= version_tuple(minimum)


def cache_dir(version: str = CLAUDE_VERSION) -> Path:
    explicit = os.environ.get("COSTHOOK_E2E_CACHE")
    base = Path(explicit).expanduser().resolve() if explicit else REPO / ".cache"
    return base / f"claude-code-{version}"


def claude_version(path: os.PathLike | str) -> str | None:
    """`claude --version` (e.g. "2.1.330 (Claude Code)"), or None if unusable."""
    try:
        p = subprocess.run([str(path), "--version"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent",
                                "DISABLE_AUTOUPDATER": "1"})
    except (OSError, subprocess.SubprocessError):
        return None
    out = p.stdout.strip()
    return out if p.returncode == 0 and out else None


def _find_installed(base: Path, version: str) -> Path | None:
    """The working claude binary of `version` under an npm prefix. If the postinstall
    did not run, bin/claude.exe is a stub and the real binary sits in the platform
    package (…/claude-code-linux-x64/claude)."""
    nm = base / "node_modules"
    candidates = [nm / ".bin" / "claude",
                  nm / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"]
    candidates += sorted(Path(p) for p in glob.glob(str(nm / "@anthropic-ai" / "claude-code-*" / "claude")))
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            found = claude_version(cand)
            if found and found.split()[0] == version:
                return cand.resolve()
    return None


@functools.cache
def claude_binary(version: str = CLAUDE_VERSION, install: bool = True) -> tuple[Path | None, str]:
    """(path, "") when Claude Code `version` is usable, else (None, why not).

    Installs it with npm into cache_dir(version) the first time (a file lock keeps
    parallel workers from installing twice). With COSTHOOK_E2E_CLAUDE that binary is
    used for whatever version it reports."""
    explicit = os.environ.get("COSTHOOK_E2E_CLAUDE")
    if explicit:
        found = claude_version(explicit)
        if found:
            return Path(explicit).resolve(), ""
        return None, f"COSTHOOK_E2E_CLAUDE={explicit} does not answer `--version`"
    package = f"@anthropic-ai/claude-code@{version}"
    base = cache_dir(version)
    if not install:
        found = _find_installed(base, version)
        return (found, "") if found else (None, f"Claude Code {version} not installed in {base}")
    # Its install script fetches the native binary (the stub bin/claude.exe otherwise).
    return npm_install(base, [package], lambda b: _find_installed(b, version), timeout=NPM_TIMEOUT, scripts=True)


# ----------------------------------------------------------- the sandbox ----
@dataclass
class Layout:
    """Every path a run touches, all inside one throwaway directory."""
    root: Path

    @property
    def home(self) -> Path: return self.root / "home"
    @property
    def config_dir(self) -> Path: return self.home / ".claude"
    @property
    def tmpdir(self) -> Path: return self.root / "tmp"
    @property
    def workdir(self) -> Path: return self.root / "work"
    @property
    def costhook_home(self) -> Path: return self.root / "costhook"
    @property
    def db(self) -> Path: return self.costhook_home / "costhook.db"
    @property
    def costhook_config(self) -> Path: return self.root / "costhook-config" / "config.toml"
    @property
    def settings(self) -> Path: return self.config_dir / "settings.json"
    @property
    def errors_log(self) -> Path: return self.costhook_home / "errors.log"

    def project_dir(self) -> Path:
        """Where the CLI keeps this workdir's transcripts."""
        slug = "".join(c if c.isalnum() else "-" for c in str(self.workdir))
        return self.config_dir / "projects" / slug

    def transcripts(self) -> list[Path]:
        return sorted(self.config_dir.glob("projects/*/*.jsonl"))

    def subagent_transcripts(self) -> list[Path]:
        return sorted(self.config_dir.glob("projects/*/*/subagents/**/agent-*.jsonl"))


GIT_BRANCH = "e2e-branch"


def make_layout(root: os.PathLike | str, git: bool = True) -> Layout:
    layout = Layout(Path(root).resolve())
    for d in (layout.home, layout.config_dir, layout.tmpdir, layout.workdir, layout.costhook_config.parent):
        d.mkdir(parents=True, exist_ok=True)
    layout.costhook_config.touch()  # empty: no budgets (COSTHOOK_CONFIG naming no file is an error)
    if git and shutil.which("git"):  # a real repo, so the CLI records gitBranch
        genv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(layout.home),
                "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@example.invalid",
                "GIT_COMMITTER_NAME": "e2e", "GIT_COMMITTER_EMAIL": "e2e@example.invalid"}
        for cmd in (["git", "init", "-q", "-b", GIT_BRANCH],
                    ["git", "commit", "-q", "--allow-empty", "-m", "e2e"]):
            subprocess.run(cmd, cwd=layout.workdir, env=genv, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
    return layout


def base_env(layout: Layout) -> dict[str, str]:
    """A clean environment (`env -i` style) pointing everything into the layout.
    The venv's bin dir comes first on PATH, as for a user who installed costhook."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(layout.home),
        "CLAUDE_CONFIG_DIR": str(layout.config_dir),
        "TMPDIR": str(layout.tmpdir),
        "XDG_CONFIG_HOME": str(layout.home / ".config"),
        "XDG_DATA_HOME": str(layout.home / ".local" / "share"),
        "XDG_CACHE_HOME": str(layout.home / ".cache"),
        "XDG_STATE_HOME": str(layout.home / ".local" / "state"),
        "COSTHOOK_HOME": str(layout.costhook_home),
        "COSTHOOK_DB": str(layout.db),
        "COSTHOOK_CONFIG": str(layout.costhook_config),
    }


def claude_env(layout: Layout, port: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{port}"
    env = base_env(layout)
    env.update({
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        # Anything that ignores ANTHROPIC_BASE_URL lands on the fake server's
        # proxy handler, which refuses and logs it.
        "HTTPS_PROXY": url, "HTTP_PROXY": url, "https_proxy": url, "http_proxy": url,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": HAIKU_MODEL,
    })
    return env


# ---------------------------------------------------- network namespace -----
# ------------------------------------------------------------------ runs ----
@dataclass
class Run:
    layout: Layout
    argv: list[str]
    rc: int | None
    timed_out: bool
    wall_s: float
    stdout: str
    stderr: str
    out: dict | None
    requests: list[dict]
    netns: str
    server_log: str
    run_dir: Path
    extra: dict = field(default_factory=dict)

    @property
    def messages(self) -> list[dict]:
        """The /v1/messages requests, in order."""
        return [r for r in self.requests if r.get("kind") == "messages"]

    @property
    def proxy_attempts(self) -> list[dict]:
        """Anything the CLI tried to send somewhere other than the fake API."""
        return [r for r in self.requests if r.get("kind") in ("proxy", "unknown")]

    def describe(self) -> str:
        """A compact summary for assertion messages."""
        reqs = [(r.get("n"), r.get("kind"), r.get("agent"),
                 (r.get("reply") or {}).get("kind"), r.get("path")) for r in self.requests]
        return (f"rc={self.rc} timed_out={self.timed_out} wall={self.wall_s:.2f}s netns={self.netns}\n"
                f"requests={reqs}\nstdout={self.stdout[:2000]}\nstderr={self.stderr[-3000:]}\n"
                f"server={self.server_log[-1000:]}")


def run_claude(layout: Layout | os.PathLike | str, prompt: str,
               scenario_env: dict[str, str] | None = None, *,
               settings: dict | None = None, claude: os.PathLike | str | None = None,
               model: str = MODEL, allowed_tools: str = "Bash,Agent",
               extra_args: list[str] = (), extra_env: dict[str, str] | None = None,
               timeout: float = DEFAULT_RUN_TIMEOUT, netns: bool | None = None) -> Run:
    """Start the fake API, run `claude -p PROMPT --output-format json` once.

    `layout` may be a Layout or a directory (a Layout is made there).
    `scenario_env` holds FAKE_* knobs for the server. `settings`, if given, is
    written to $CLAUDE_CONFIG_DIR/settings.json (otherwise the file is left as
    it is, e.g. as `costhook install` wrote it). Never hangs: the CLI is
    killed after `timeout` seconds."""
    if not isinstance(layout, Layout):
        layout = make_layout(layout)
    if claude is None:
        claude, reason = claude_binary()
        if claude is None:
            raise RuntimeError(reason)
    if settings is not None:
        layout.settings.write_text(json.dumps(settings, indent=2))
    runs = layout.root / "runs"
    runs.mkdir(exist_ok=True)
    run_dir = runs / f"{len(list(runs.iterdir())) + 1:02d}"
    run_dir.mkdir()
    argv = [str(claude), "-p", prompt, "--output-format", "json", "--model", model,
            "--allowedTools", allowed_tools, *extra_args]
    prefix = netns_prefix() if netns in (None, True) else ()
    if netns and not prefix:
        raise RuntimeError("a private network namespace was requested but unshare -n does not work here")
    job = {
        "layout": str(layout.root), "argv": argv, "timeout": timeout,
        "scenario_env": dict(scenario_env or {}), "extra_env": dict(extra_env or {}),
        "run_dir": str(run_dir), "netns": bool(prefix), "python": sys.executable,
    }
    (run_dir / "job.json").write_text(json.dumps(job, indent=1))
    if prefix:
        cmd = [*prefix, sys.executable, str(Path(__file__).resolve()), "--inner",
               str(run_dir / "job.json")]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            inner_out, _ = proc.communicate(timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            inner_out = "inner runner timed out"
        if proc.returncode not in (0, None):
            (run_dir / "inner.log").write_text(inner_out or "")
    else:
        _inner(job)
    return _collect(layout, job, " ".join(prefix) or "none (proxy guard only)")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _inner(job: dict) -> None:
    """Start the server, run the CLI, stop the server. Writes run_dir/result.json."""
    layout = Layout(Path(job["layout"]))
    run_dir = Path(job["run_dir"])
    result = {"rc": None, "timed_out": False, "wall_s": 0.0, "error": None}
    server = None
    try:
        if job["netns"]:
            loopback_up()
        port_file = run_dir / "port"
        senv = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", **job["scenario_env"]}
        with open(run_dir / "server.log", "wb") as slog:
            server = subprocess.Popen(
                [job["python"], str(FAKE_SERVER), "--port", "0", "--port-file", str(port_file),
                 "--log", str(run_dir / "requests.jsonl"),
                 "--max-seconds", str(job["timeout"] + 60)],
                env=senv, stdin=subprocess.DEVNULL, stdout=slog, stderr=slog)
        deadline = time.monotonic() + 15
        while not port_file.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fake server did not start: "
                                   + (run_dir / "server.log").read_text(errors="replace")[-2000:])
            time.sleep(0.02)
        port = int(port_file.read_text())
        env = claude_env(layout, port)
        env.update(job["extra_env"])
        t0 = time.monotonic()
        with open(run_dir / "stdout", "wb") as out, open(run_dir / "stderr", "wb") as err:
            # Files, not pipes: a hook that leaves a detached child holding
            # the CLI's stdout must not make us wait for EOF.
            proc = subprocess.Popen(job["argv"], cwd=layout.workdir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
            try:
                result["rc"] = proc.wait(timeout=job["timeout"])
            except subprocess.TimeoutExpired:
                result["timed_out"] = True
                _kill_group(proc)
                result["rc"] = proc.returncode
        result["wall_s"] = round(time.monotonic() - t0, 3)
    except Exception as exc:  # reported through result.json
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)
        (run_dir / "result.json").write_text(json.dumps(result))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def read_jsonl(path: os.PathLike | str) -> list[dict]:
    rows = []
    for line in _read(Path(path)).splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


def _collect(layout: Layout, job: dict, netns: str) -> Run:
    run_dir = Path(job["run_dir"])
    try:
        result = json.loads((run_dir / "result.json").read_text())
    except (FileNotFoundError, ValueError):
        result = {"rc": None, "timed_out": True, "wall_s": 0.0,
                  "error": "no result.json: " + _read(run_dir / "inner.log")[-2000:]}
    stdout = _read(run_dir / "stdout")
    try:
        out = json.loads(stdout)
    except ValueError:
        out = None
    stderr = _read(run_dir / "stderr")
    if result.get("error"):
        stderr = f"[harness] {result['error']}\n{stderr}"
    return Run(layout=layout, argv=job["argv"], rc=result.get("rc"),
               timed_out=bool(result.get("timed_out")), wall_s=float(result.get("wall_s") or 0),
               stdout=stdout, stderr=stderr, out=out,
               requests=read_jsonl(run_dir / "requests.jsonl"), netns=netns,
               server_log=_read(run_dir / "server.log"), run_dir=run_dir)


# ------------------------------------------------------- costhook itself ----
def costhook_exe() -> Path:
    """The costhook command of the venv the tests run in."""
    return Path(sys.executable).parent / "costhook"


def run_costhook(layout: Layout, *args: str, timeout: float = 60, input: str | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the venv's `costhook` with the layout's clean environment (+ `env`)."""
    return subprocess.run([str(costhook_exe()), *args], cwd=layout.workdir,
                          env={**base_env(layout), **(env or {})}, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------- a trivial logging hook -----
HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop",
               "SubagentStop", "SessionEnd")

_LOGGING_HOOK = """\
import json, sys, time
raw = sys.stdin.read()
try:
    payload = json.loads(raw)
except ValueError:
    payload = {"_raw": raw}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"event": sys.argv[2], "ts": time.time(), "payload": payload}) + "\\n")
"""


def logging_hook_settings(layout: Layout) -> tuple[dict, Path]:
    """settings.json content whose hooks only log their stdin, and the log path."""
    script = layout.root / "log_hook.py"
    script.write_text(_LOGGING_HOOK)
    log = layout.root / "hooks.jsonl"
    hooks = {}
    for event in HOOK_EVENTS:
        entry = {"hooks": [{"type": "command", "command": shlex.join(
            [sys.executable, str(script), str(log), event])}]}
        if event in ("PreToolUse", "PostToolUse"):
            entry["matcher"] = "*"
        hooks[event] = [entry]
    return {"hooks": hooks}, log


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--inner":
        _inner(json.loads(Path(sys.argv[2]).read_text()))
        sys.exit(0)
    if len(sys.argv) == 2 and sys.argv[1] == "--install":  # every version in the range
        failed = 0
        for wanted in claude_versions():
            path, why = claude_binary(wanted)
            print(f"Claude Code {wanted}: {path or why}")
            failed += path is None
        sys.exit(1 if failed else 0)
    print("usage: harness.py --install | --inner JOB.json", file=sys.stderr)
    sys.exit(2)
