"""Budget alerts sent to notification targets: the real `costhook hook` process, a local
HTTP server (stdlib, 127.0.0.1) as the webhook, targets configured in the config file.

The hook that fires an alert only starts a detached `costhook hook --notify` process, so a
slow or dead endpoint must never delay the agent; that process claims each alert before
sending it, so two notifiers never send the same alert twice.

A hook "crosses" by ingesting a transcript with one Sonnet 4.5 call of 200,000 input
tokens ($0.60) against a $1 session budget with warn_at 0.5 (plus 40,000 output tokens,
$1.20, to cross 0.5 and 1.0 at once; more than 200,000 input tokens would be priced at the
long-context rate).
"""

import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import COSTHOOK
from e2e.offline import wait_for
from transcript_lines import assistant, tool_use

TOKENS_60 = 200_000  # input x $3/MTok = $0.60 (200 K is still the base tier)
OUTPUT_60 = 40_000  # output x $15/MTok = $0.60
MESSAGE_60 = "Budget session/session: $0.60 of $1.00 (60%) — $0.40 left"
MESSAGE_120 = "Budget session/session: $1.20 of $1.00 (120%) — $0.20 over"
TIMING_SLACK_S = 0.3  # generous: a 2-core machine shared with other work
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


# ------------------------------------------------------------ the receiver --
class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every request. `delay` makes it
    answer late (after reading the request)."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body, "received": time.monotonic(), "answered": None}
                with receiver.lock:
                    receiver.posts.append(record)
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up (slow endpoint)
                    pass
                record["answered"] = time.monotonic()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self) -> list[dict]:
        with self.lock:
            return list(self.posts)

    def wait(self, count: int, timeout: float = 10.0) -> list[dict]:
        wait_for(lambda: len(self.received()) >= count, timeout)
        return self.received()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(delay: float = 0.0) -> Receiver:
        made.append(Receiver(delay))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------- a costhook home --
class Home:
    """A private COSTHOOK_HOME / DB / config, and hook processes run against it."""

    def __init__(self, root: Path, notify=()):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "config.toml"
        self.db = root / "costhook.db"
        self.env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and not k.startswith("COSTHOOK_")}
        self.env.update(COSTHOOK_HOME=str(root), COSTHOOK_DB=str(self.db), COSTHOOK_CONFIG=str(self.config),
                        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        self.env.pop("CLAUDE_CODE_ENTRYPOINT", None)
        self.write_config(notify)

    def write_config(self, notify=()) -> None:
        lines = ["# a $1 session budget that warns at half", "[[budgets]]", 'scope = "session"', 'period = "session"',
                 "limit = 1", "warn_at = [0.5]", 'action = "warn"']
        for target in notify:
            lines += ["", "[[notify]]", f'type = "{target["type"]}"', f'url = "{target["url"]}"']
            if "timeout" in target:
                lines.append(f"timeout = {target['timeout']}")
        self.config.write_text("\n".join(lines) + "\n")

    def hook(self, payload: dict, args=()) -> tuple[float, subprocess.CompletedProcess]:
        """Run one hook process; (its wall time in seconds, the result)."""
        started = time.monotonic()
        proc = subprocess.run([COSTHOOK, "hook", *args], input=json.dumps(payload).encode(), capture_output=True,
                              env=self.env, timeout=60)
        return time.monotonic() - started, proc

    def warm(self) -> None:
        """First hook: creates and migrates the DB and caches the validated config, so the
        hooks timed later all do the same work."""
        _, proc = self.hook({"hook_event_name": "SessionStart", "session_id": "warm-up", "cwd": str(self.root),
                             "source": "startup"})
        assert proc.returncode == 0 and proc.stdout == b"", proc
        assert self.errors() == []

    def cross(self, session: str, output_tokens: int = 0, event: str = "PreToolUse"):
        """A tool hook for `session` whose transcript holds one call of TOKENS_60 input
        tokens and `output_tokens`."""
        transcript = self.root / f"{session}.jsonl"
        if not transcript.exists():
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            transcript.write_text(assistant(
                f"msg_{session}", session_id=session, input_tokens=TOKENS_60, output_tokens=output_tokens,
                timestamp=now, cwd=str(self.root), stop_reason="tool_use",
                content=[tool_use("Bash", f"toolu_{session}", command="echo hi")]))
        payload = {"hook_event_name": event, "session_id": session, "transcript_path": str(transcript),
                   "cwd": str(self.root), "tool_name": "Bash", "tool_use_id": f"toolu_{session}",
                   "tool_input": {"command": "echo hi"}}
        if event == "PostToolUse":
            payload.update(tool_response={"stdout": "hi", "stderr": ""}, duration_ms=5)
        return self.hook(payload)

    def errors(self) -> list[str]:
        log = self.root / "errors.log"
        return log.read_text().splitlines() if log.exists() else []

    def alerts(self) -> list[dict]:
        conn = sqlite3.connect(self.db, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM alerts ORDER BY id")]
        finally:
            conn.close()

    def delivered(self) -> bool:
        """Every alert has been handled by a notifier (claimed and finished)."""
        rows = self.alerts()
        return bool(rows) and all(r["notified_at"] and not r["notified_at"].startswith("sending") for r in rows)


def system_message(proc) -> str | None:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["systemMessage"] if proc.stdout else None


def webhook(url: str, timeout: float | None = None) -> dict:
    target = {"type": "webhook", "url": url}
    if timeout is not None:
        target["timeout"] = timeout
    return target


# ------------------------------------------------------------------ tests ----
def test_crossing_hook_returns_at_once_and_the_webhook_gets_one_post(tmp_path, receivers):
    receiver = receivers(delay=1.5)  # answers late: a hook that waited for it would show
    home = Home(tmp_path / "home", [webhook(receiver.url())])
    home.warm()

    wall, proc = home.cross("s-1")
    hook_done = time.monotonic()
    assert system_message(proc) == f"costhook: {MESSAGE_60}"
    (post,) = receiver.wait(1)
    assert post["answered"] is None or post["answered"] > hook_done, "the hook waited for the webhook"
    assert wall < receiver.delay, wall

    assert post["path"] == "/hook"
    assert post["headers"]["content-type"] == "application/json"
    body = json.loads(post["body"])  # Slack-compatible: a `text` field
    assert body["text"] == MESSAGE_60
    assert body.get("title") == "costhook budget alert"
    assert wait_for(home.delivered, 5), home.alerts()
    (alert,) = home.alerts()
    assert (alert["threshold"], alert["message"]) == (0.5, MESSAGE_60)
    datetime.strptime(alert["notified_at"], "%Y-%m-%dT%H:%M:%SZ")  # delivered, not left claimed

    # Later hooks of the session still see the spend above 0.5: no new alert, no new POST.
    for event in ("PreToolUse", "PostToolUse"):
        _, again = home.cross("s-1", event=event)
        assert system_message(again) is None
    _, stop = home.hook({"hook_event_name": "Stop", "session_id": "s-1", "cwd": str(home.root),
                         "transcript_path": str(home.root / "s-1.jsonl"), "last_assistant_message": ""})
    assert system_message(stop) is None
    time.sleep(1.0)
    assert len(receiver.received()) == 1
    assert len(home.alerts()) == 1
    assert home.errors() == []


def test_dead_and_slow_endpoints_never_delay_the_hook(tmp_path, receivers):
    """Hook wall time with a dead (closed port) or slow (answers after 3 s, timeout 0.5 s)
    webhook, against the same hook without targets, interleaved trials; each failure is one
    line in errors.log, written by the notifier after the hook has returned."""
    slow = receivers(delay=3.0)
    homes = {
        "none": Home(tmp_path / "none"),
        "dead": Home(tmp_path / "dead", [webhook(f"http://127.0.0.1:{closed_port()}/hook", timeout=0.5)]),
        "slow": Home(tmp_path / "slow", [webhook(slow.url(), timeout=0.5)]),
    }
    for home in homes.values():
        home.warm()
    walls = {name: [] for name in homes}
    for trial in range(3):
        for name, home in homes.items():
            before = len(home.errors())
            wall, proc = home.cross(f"s-{trial}")
            returned = time.monotonic()
            assert system_message(proc) == f"costhook: {MESSAGE_60}", (name, proc)
            walls[name].append(wall)
            if name == "none":
                continue
            # The notifier fails in the background: one line, naming the target and why.
            new = wait_for(lambda: home.errors()[before:], timeout=10)
            logged = time.monotonic()
            time.sleep(0.2)
            assert home.errors()[before:] == new and len(new) == 1, home.errors()
            assert " hook notify: RuntimeError: 1 notification(s) failed; first: webhook: " in new[0], new
            if name == "dead":
                assert "Connection refused" in new[0], new
            else:
                assert "timed out" in new[0], new
                assert logged - returned >= 0.3, "the timeout was spent before the hook returned"
            assert wait_for(home.delivered, 5), home.alerts()  # given up, not retried
    assert len(slow.received()) == 3  # the slow endpoint did get each request
    assert homes["none"].errors() == []

    base = sorted(walls["none"])[1]  # medians of 3
    for name in ("dead", "slow"):
        median = sorted(walls[name])[1]
        assert median - base < TIMING_SLACK_S, {k: [round(w, 3) for w in v] for k, v in walls.items()}
    print("hook wall (s):", {k: [round(w, 3) for w in v] for k, v in walls.items()})


def test_two_notifiers_at_once_send_each_alert_once(tmp_path, receivers):
    receiver = receivers(delay=0.2)  # slow enough that the two overlap while sending
    home = Home(tmp_path / "home")  # no target yet: the alerts wait, unsent
    home.warm()
    expected = []
    for round_ in range(3):
        home.write_config()
        _, proc = home.cross(f"s-{round_}", output_tokens=OUTPUT_60)  # $1.20: 0.5 and 1.0 at once
        assert system_message(proc) == f"costhook: {MESSAGE_120}"
        expected += [MESSAGE_120, MESSAGE_120]
        assert [a["notified_at"] for a in home.alerts()][-2:] == [None, None]
        home.write_config([webhook(receiver.url())])
        notifiers = [subprocess.Popen([COSTHOOK, "hook", "--notify"], env=home.env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outputs = [p.communicate(timeout=30) for p in notifiers]
        assert [p.returncode for p in notifiers] == [0, 0]
        assert outputs == [(b"", b""), (b"", b"")]
        assert home.delivered(), home.alerts()
        posts = receiver.received()
        assert [json.loads(p["body"])["text"] for p in posts] == expected, posts
    # six alerts (3 sessions x 2 thresholds), six POSTs, none twice
    assert len({(a["session_id"], a["threshold"]) for a in home.alerts()}) == len(home.alerts()) == 6
    assert home.errors() == []


def test_a_webhook_added_later_does_not_replay_old_alerts(tmp_path, receivers):
    """An alert of an earlier period, recorded while no target was configured, is history:
    adding a webhook today must not send it (nor 50 of them) along with today's alert."""
    receiver = receivers()
    home = Home(tmp_path / "home")
    home.warm()
    _, proc = home.cross("old-session")
    assert system_message(proc) == f"costhook: {MESSAGE_60}"
    past = (datetime.now(timezone.utc) - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    conn = sqlite3.connect(home.db)
    with conn:
        conn.execute("UPDATE alerts SET created_at = ?", (past,))
    conn.close()

    home.write_config([webhook(receiver.url())])
    _, proc = home.cross("s-today")
    assert system_message(proc) == f"costhook: {MESSAGE_60}"
    assert wait_for(home.delivered, 10), home.alerts()
    time.sleep(0.3)
    sessions = [a["session_id"] for a in home.alerts()]
    assert sessions == ["old-session", "s-today"]
    assert [json.loads(p["body"])["text"] for p in receiver.received()] == [MESSAGE_60]


# ---------------------------------------------------------------- apprise ----
def _apprise_or_skip():
    try:
        import apprise  # noqa: F401
    except ImportError:
        pytest.skip("apprise is not installed (optional extra: pip install 'costhook[notify]')")


def test_apprise_json_target(tmp_path, receivers):
    _apprise_or_skip()
    receiver = receivers()
    home = Home(tmp_path / "home", [{"type": "apprise", "url": f"json://127.0.0.1:{receiver.port}/"}])
    home.warm()
    wall, proc = home.cross("s-1")
    assert system_message(proc) == f"costhook: {MESSAGE_60}"
    (post,) = receiver.wait(1, timeout=20)  # importing apprise takes a while, in the notifier
    body = json.loads(post["body"])
    assert body["message"] == MESSAGE_60
    assert body["title"] == "costhook budget alert"
    assert wait_for(home.delivered, 10), home.alerts()
    time.sleep(0.3)
    assert len(receiver.received()) == 1
    assert home.errors() == []


def test_apprise_dead_target_is_logged(tmp_path):
    _apprise_or_skip()
    home = Home(tmp_path / "home", [{"type": "apprise", "url": f"json://127.0.0.1:{closed_port()}/"}])
    home.warm()
    _, proc = home.cross("s-1")
    assert system_message(proc) == f"costhook: {MESSAGE_60}"
    assert wait_for(home.delivered, 20), home.alerts()
    assert len(wait_for(home.errors, 3)) == 1, home.errors()
