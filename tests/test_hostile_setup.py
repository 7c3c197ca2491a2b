"""Setup, notifier and CLI under bad input (issue items 15-18; docs/reliability.md,
"Setup, notifier and CLI under bad input"). Every test runs the real `costhook` process
against real files: settings files costhook must not corrupt, a webhook that drips, a
database path that is a directory.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import COSTHOOK

# ------------------------------------------------------------------ helpers ----


def costhook(*args, env=None, timeout=60, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=timeout,
                          input=stdin, env={**os.environ, **(env or {})})


def strict_json(text: str):
    """JSON as Claude Code's JSON.parse reads it: no NaN/Infinity words."""
    def refuse(word):
        raise ValueError(f"not JSON: {word}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def claude(home, tmp_path, monkeypatch) -> Path:
    """CLAUDE_CONFIG_DIR for this test: `costhook install` edits <it>/settings.json."""
    folder = tmp_path / "claude"
    folder.mkdir()
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def oc(home, tmp_path, monkeypatch) -> Path:
    state = tmp_path / "openclaw"
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(state))
    for name in ("OPENCLAW_CONFIG_PATH", "OPENCLAW_CONFIG_READONLY", "OPENCLAW_NIX_MODE", "COSTHOOK_OPENCLAW_CLI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", f"{Path(COSTHOOK).parent}:/usr/bin:/bin")  # no `openclaw` here
    return state


def backups(folder: Path) -> list:
    return sorted(p.name for p in folder.glob("*.costhook-backup-*"))


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


# --------------------------------------------------- 15. settings editing ----


@pytest.mark.parametrize("number", ["1e999", "-1e999", "0.1000000000000000055511151231257827"])
def test_a_number_json_cannot_write_back_is_refused_not_rewritten(claude, number):
    """Python reads 1e999 as inf and json.dumps writes the bare word Infinity: Claude Code
    could no longer parse its settings and would lose every one of them."""
    text = '{\n  "model": "opus",\n  "cleanupPeriodDays": ' + number + "\n}\n"
    settings = claude / "settings.json"
    settings.write_text(text)
    for action in ("install", "uninstall"):
        proc = costhook(action)
        no_traceback(proc)
        if action == "install":
            assert proc.returncode == 1, proc.stdout
            assert number[:20] in proc.stderr and "changed nothing" in proc.stderr, proc.stderr
        assert settings.read_text() == text  # untouched: never Infinity
        assert backups(claude) == []


def test_numbers_that_round_trip_still_install_as_json(claude):
    settings = claude / "settings.json"
    settings.write_text('{"a": 1e5, "b": 0.1, "c": -2.5e-3, "d": 12345678901234567890123}\n')
    proc = costhook("install")
    assert proc.returncode == 0, proc.stderr
    data = strict_json(settings.read_text())
    assert (data["a"], data["b"], data["c"], data["d"]) == (1e5, 0.1, -2.5e-3, 12345678901234567890123)


def test_a_lone_surrogate_escape_is_a_clear_error_and_leaves_no_backup(claude):
    text = '{"statusLineLabel": "\\ud800 broken", "model": "opus"}\n'
    settings = claude / "settings.json"
    settings.write_text(text)
    proc = costhook("install")
    no_traceback(proc)
    assert proc.returncode == 1
    assert "surrogate" in proc.stderr and "changed nothing" in proc.stderr, proc.stderr
    assert settings.read_text() == text
    assert backups(claude) == []


def _edit_commands(settings: Path, edit) -> None:
    data = json.loads(settings.read_text())
    for groups in data["hooks"].values():
        for group in groups:
            for handler in group["hooks"]:
                handler["command"] = edit(handler["command"])
    if "statusLine" in data:
        data["statusLine"]["command"] = edit(data["statusLine"]["command"])
    settings.write_text(json.dumps(data, indent=2))


@pytest.mark.parametrize("suffix", [" 2>/dev/null", " || true", " >>/tmp/costhook.log 2>&1"])
def test_uninstall_finds_entries_the_user_decorated(claude, suffix):
    settings = claude / "settings.json"
    settings.write_text('{"model": "opus"}\n')
    assert costhook("install", "--statusline").returncode == 0
    _edit_commands(settings, lambda command: command + suffix)
    proc = costhook("uninstall")
    assert proc.returncode == 0, proc.stderr
    assert "Removed costhook hooks" in proc.stdout
    assert strict_json(settings.read_text()) == {"model": "opus"}
    # and install replaces a decorated entry instead of adding a second one
    settings.write_text('{"model": "opus"}\n')
    assert costhook("install").returncode == 0
    _edit_commands(settings, lambda command: command + suffix)
    assert costhook("install").returncode == 0
    data = strict_json(settings.read_text())
    assert all(len(data["hooks"][event][0]["hooks"]) == 1 for event in data["hooks"])


def test_uninstall_never_claims_to_remove_what_is_still_there(claude):
    """An entry that runs costhook and something else is not costhook's to delete, but
    uninstall must say it is still there (and exit 1), not "Removed"."""
    settings = claude / "settings.json"
    settings.write_text("{}")
    assert costhook("install").returncode == 0
    _edit_commands(settings, lambda command: f"cd /tmp && {command}")
    before = settings.read_text()
    proc = costhook("uninstall")
    assert proc.returncode == 1, proc.stdout
    assert "Removed costhook hooks" not in proc.stdout
    assert "costhook removed nothing" in proc.stdout and "Still running costhook" in proc.stdout
    assert "hooks.Stop: cd /tmp && " in proc.stdout
    assert settings.read_text() == before


def test_openclaw_uninstall_finds_an_edited_load_path(oc, home):
    """A load path pointing at the plugin's index.js (or with a trailing slash) is still
    costhook's plugin: uninstall removes it instead of leaving OpenClaw loading it."""
    assert costhook("install", "--agent", "openclaw").returncode == 0
    config = oc / "openclaw.json"
    data = json.loads(config.read_text())
    plugin = data["plugins"]["load"]["paths"][0]
    data["plugins"]["load"]["paths"] = [plugin + "/index.js", plugin + "/", "/opt/other-plugin"]
    config.write_text(json.dumps(data))
    proc = costhook("uninstall", "--agent", "openclaw")
    assert proc.returncode == 0, proc.stderr
    assert strict_json(config.read_text())["plugins"] == {"load": {"paths": ["/opt/other-plugin"]}}


def test_openclaw_uninstall_names_an_entry_that_still_runs_costhook(oc, home):
    assert costhook("install", "--agent", "openclaw").returncode == 0
    config = oc / "openclaw.json"
    data = json.loads(config.read_text())
    data["plugins"]["entries"]["costhook-dev"] = json.loads(json.dumps(data["plugins"]["entries"]["costhook"]))
    config.write_text(json.dumps(data))
    proc = costhook("uninstall", "--agent", "openclaw")
    assert proc.returncode == 1, proc.stdout
    assert "plugins.entries.costhook-dev" in proc.stdout and "Still running costhook" in proc.stdout
    assert "Removed costhook's OpenClaw plugin from" not in proc.stdout


@pytest.mark.parametrize("value", ["1e999", '"\\ud800"'])
def test_openclaw_config_json_cannot_write_back_is_not_rewritten(oc, value):
    oc.mkdir()
    config = oc / "openclaw.json"
    text = '{"gateway": {"limit": ' + value + "}}\n"
    config.write_text(text)
    proc = costhook("install", "--agent", "openclaw")
    no_traceback(proc)
    assert proc.returncode == 1 and "changed nothing" in proc.stderr, proc.stderr
    assert config.read_text() == text
    assert backups(oc) == []


# ------------------------------------------- 18. a database path that is wrong ----

STORE_COMMANDS = [
    ["report"], ["report", "--format", "json"], ["summary"], ["top"], ["tree"], ["tools"], ["cache"],
    ["anomalies"], ["whatif"], ["idle"], ["efficiency"], ["blocks"], ["trends"],
    ["cron"], ["budget", "status"], ["doctor"], ["import", "--claude-dir", "."],
]


def _clear_failure(proc, *needles) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, (proc.returncode, out)
    assert "Traceback" not in out, out
    for needle in needles:
        assert needle in out, out
    assert "move it aside" not in out and "re-import" not in out, out
    return out


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=lambda a: " ".join(a))
def test_every_command_on_a_database_path_that_is_a_directory(home, args, monkeypatch):
    """The default path ($COSTHOOK_HOME/costhook.db); `--db DIR` and COSTHOOK_DB=DIR are
    refused by click before the command runs (a usage error, exit 2)."""
    monkeypatch.delenv("COSTHOOK_DB")
    (home / "costhook.db").mkdir(parents=True)
    _clear_failure(costhook(*args), "costhook.db: it is a directory, not a database file")
    assert list((home / "costhook.db").iterdir()) == []


@pytest.mark.parametrize("args", [["report"], ["summary"], ["doctor"], ["budget", "status"]], ids=" ".join)
def test_costhook_home_that_is_a_file(home, args, monkeypatch):
    monkeypatch.delenv("COSTHOOK_DB")
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("not a folder\n")
    _clear_failure(costhook(*args), f"{home} is a file, not a folder")
    assert home.read_text() == "not a folder\n"


@pytest.mark.parametrize("args", [["report"], ["top"], ["import", "--claude-dir", "."]], ids=" ".join)
def test_a_bad_db_option_under_a_file(home, tmp_path, args):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    _clear_failure(costhook(*args, "--db", str(blocker / "costhook.db")), f"{blocker} is a file, not a folder")


def test_a_damaged_database_is_kept_and_the_advice_never_loses_data(home):
    """A damaged database still holds what only the hooks saw: the advice is to copy it
    and run doctor, never to move it aside and re-import; doctor still runs its other checks."""
    home.mkdir(parents=True)
    db = home / "costhook.db"
    junk = b"not a sqlite database " * 400
    db.write_bytes(junk)
    out = _clear_failure(costhook("summary"), "file is not a database", "Keep the database file", "costhook doctor")
    assert "copy it" in out
    doctor = costhook("doctor")
    _clear_failure(doctor, "PROBLEM: cannot use database", "config ", "prices ")
    assert db.read_bytes() == junk


def test_a_config_that_is_a_directory_is_a_clear_error(home, tmp_path):
    (tmp_path / "config.toml").unlink()
    (tmp_path / "config.toml").mkdir()
    for args in (["report"], ["summary"], ["budget", "list"]):
        _clear_failure(costhook(*args), "config.toml: cannot read config")


# ------------------------------------------------ 17. a webhook that drips ----


class Dripper:
    """A webhook on 127.0.0.1 that reads the request, then answers one byte every
    `interval` seconds, forever: each read the client makes gets data before a socket
    timeout, so only an overall deadline ends it. Records when each client went away."""

    def __init__(self, interval: float):
        self.interval = interval
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted: list[float] = []
        self.gone: list[float] = []
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _serve(self):
        while not self.stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(time.monotonic())
            threading.Thread(target=self._drip, args=(client,), daemon=True).start()

    def _drip(self, client):
        with client:
            client.settimeout(0.2)
            try:
                while b"\r\n\r\n" not in client.recv(65536):
                    pass
            except OSError:
                pass
            answer = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 100000
            for byte in answer:
                if self.stop.is_set():
                    return
                try:
                    client.sendall(bytes([byte]))  # fails soon after the client has closed its end
                except OSError:
                    break
                time.sleep(self.interval)
            self.gone.append(time.monotonic())

    def close(self):
        self.stop.set()
        self.sock.close()


def _alerts(db_file: Path) -> list[dict]:
    conn = sqlite3.connect(db_file, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM alerts ORDER BY id")]
    finally:
        conn.close()


def test_a_dripping_webhook_is_given_up_at_the_deadline_and_the_alert_released(tmp_path):
    """One byte every 0.3 s against a 1 s timeout: the old notifier's socket timeout never
    fired, so it stayed alive for good with the alert claimed (`sending:...`)."""
    from test_notify import Home, system_message, wait_for, webhook

    dripper = Dripper(interval=0.3)
    try:
        home = Home(tmp_path / "home", [webhook(dripper.url, timeout=1.0)])
        home.warm()
        _, proc = home.cross("s-1")
        assert system_message(proc).startswith("costhook: Budget session/session")
        assert wait_for(lambda: dripper.accepted, 10), "the notifier never connected"
        # Given up at the 1 s deadline: the process exits and the connection closes.
        assert wait_for(lambda: dripper.gone, 6), "the notifier is still reading the drip"
        assert dripper.gone[0] - dripper.accepted[0] < 1.0 + 2.0, dripper.gone[0] - dripper.accepted[0]
        (alert,) = _alerts(home.db)
        assert wait_for(lambda: not _alerts(home.db)[0]["notified_at"].startswith("sending"), 3), _alerts(home.db)
        assert _alerts(home.db)[0]["notified_at"].startswith("failed:"), _alerts(home.db)
        errors = wait_for(home.errors, 3)
        assert len(errors) == 1 and "timed out" in errors[0], errors
    finally:
        dripper.close()


def test_a_claim_left_by_a_dead_notifier_is_released(tmp_path):
    """A notifier killed mid-send leaves its claim: the next one releases a claim older
    than CLAIM_TTL_S and sends the alert (if still fresh) instead of leaving it for good."""
    from test_notify import Home, Receiver, system_message, wait_for, webhook

    receiver = Receiver()
    try:
        home = Home(tmp_path / "home")  # no target yet: the alert waits, unsent
        home.warm()
        _, proc = home.cross("s-1")
        assert system_message(proc)
        old_claim = f"sending:999999:{time.time_ns() - 3600 * 10**9}"
        conn = sqlite3.connect(home.db)
        conn.execute("UPDATE alerts SET notified_at = ?", (old_claim,))
        conn.commit()
        conn.close()
        home.write_config([webhook(receiver.url())])
        run = subprocess.run([COSTHOOK, "hook", "--notify"], env=home.env, capture_output=True, timeout=30)
        assert run.returncode == 0, run.stderr
        assert wait_for(lambda: len(receiver.received()) == 1, 10), receiver.received()
        assert wait_for(lambda: _alerts(home.db)[0]["notified_at"][:2] == "20", 5), _alerts(home.db)
    finally:
        receiver.close()


# ------------------------------------------- dates at the ends of the calendar ----

FAR_NOW = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"]


@pytest.mark.parametrize("now", FAR_NOW)
@pytest.mark.parametrize("args", [["summary"], ["top"], ["trends"], ["budget", "status"], ["dashboard", "--stdout"]],
                         ids=" ".join)
def test_a_now_at_the_end_of_the_calendar_is_a_usage_error(home, args, now):
    """Views step back 9,999 days and forward a year from --now: near year 1 or 9999 that
    raised OverflowError deep inside a view."""
    proc = costhook(*args, "--now", now, "--tz", "UTC")
    no_traceback(proc)
    assert proc.returncode == 2 and "--now" in proc.stderr and "between the years" in proc.stderr, proc.stderr


@pytest.mark.parametrize("args, shown", [
    (["report", "--until", "9999-12-31"], "$2.10"),  # every example call
    (["report", "--since", "0001-01-01", "--tz", "Etc/GMT-14"], "$2.10"),
    (["report", "--since", "9999-12-31", "--until", "9999-12-31"], "No spend"),
    (["cron", "--until", "9999-12-31"], ""),
], ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_the_first_and_last_days_of_the_calendar_are_open_ends(home, args, shown):
    """A window from before year 1 (in UTC) or to after 9999-12-31 is open on that side
    (the day after 9999-12-31 raised OverflowError)."""
    from conftest import EXAMPLES

    costhook("import", "--claude-dir", str(EXAMPLES / "claude"))
    proc = costhook(*args)
    no_traceback(proc)
    assert proc.returncode == 0 and shown in proc.stdout, proc.stderr + proc.stdout


@pytest.mark.parametrize("args", [["report"], ["report", "--by", "model"], ["cron"], ["budget", "status"],
                                  ["dashboard", "--stdout"]], ids=" ".join)
def test_a_database_damaged_past_its_first_page_is_a_clear_error(home, args):
    """A database that opens (its header and schema are whole) but fails when a view reads
    a damaged page: one line and the advice, as when it cannot be opened at all."""
    from conftest import EXAMPLES

    (home.parent / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = 1\n')
    costhook("import", "--claude-dir", str(EXAMPLES / "claude"))
    db = Path(os.environ["COSTHOOK_DB"])
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    roots = [r for (r,) in conn.execute("SELECT rootpage FROM sqlite_master WHERE rootpage > 1")]
    conn.close()
    data = bytearray(db.read_bytes())
    for root in roots:  # every table's and index's first page; the schema itself stays whole
        data[(root - 1) * size:root * size] = b"\xff" * size
    db.write_bytes(bytes(data))
    proc = costhook(*args)
    _clear_failure(proc, "malformed", "Keep the database file", "costhook doctor")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "changed nothing" not in proc.stderr  # (midway: a writer may have committed some of its work)
