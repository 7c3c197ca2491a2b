"""The hook process, for every agent: its payload, its lazy database and config, budget
decisions, detached jobs and the one-line error log.

A hook runs on the agent's critical path for every tool call, so this module imports only
the standard library and costhook's stdlib-only modules, opens the database and reads the
config only when a handler asks, and never breaks the agent: `run_hook` turns any internal
error into exit 0, no output and one line in `$COSTHOOK_HOME/errors.log`. Rows that could
not be written are not lost: a transcript's cursor did not advance, so the next hook (or
`costhook import`) picks them up.
"""

import os
import sys
import time

from costhook import jsontext
from costhook import paths

AGENT_HOOKS = {  # `costhook hook --agent NAME` → the module whose handle(payload) answers its events
    "claude": "costhook.agents.claude.hook",
    "openclaw": "costhook.agents.openclaw.hook",
    "codex": "costhook.agents.codex.hook",
}
MAX_STDIN = 32 << 20
BUSY_TIMEOUT_MS = 3000
# A hook in the background holds up nobody: it waits out a long import or catch-up rather
# than give up (and leave a tool call or a session's end unrecorded).
BACKGROUND_BUSY_TIMEOUT_MS = 120_000
# How long a hook deciding a budget waits for another process's write lock, per write:
# the verdict comes from what is stored (readers never wait in WAL), and the whole hook
# must answer well within the agent's hook timeout (5 s for prompts and tools).
DECIDING_BUSY_MS = 600
DASHBOARD_MIN_INTERVAL_S = 60  # the config's default for [dashboard] min_interval_seconds


def run_hook(agent: str, background: bool = False) -> int:
    """Read one event (a JSON object) from stdin; print the agent's answer to it as JSON,
    if it has one; then start what `after_answer` queued. 0 whatever happens.

    `background`: an event that decides nothing (agents.claude.install.GATE_EVENTS are the
    others), or a handler that finds it has nothing to decide (`go_background`): its work
    runs detached in a session of its own — the agent does not wait for it, and it must
    survive the agent's exit — and nothing is printed."""
    global BACKGROUND, AGENT
    BACKGROUND = False
    AGENT = agent
    event = "?"
    try:
        payload = read_payload(sys.stdin.buffer, BACKGROUND_STDIN_WAIT_S if background else STDIN_WAIT_S)
        event = str(payload.get("hook_event_name") or "?")[:40]
        if background:
            go_background()
        output = handler(agent)(payload)
        if output and not BACKGROUND:
            sys.stdout.write(jsontext.dumps(output))
            sys.stdout.flush()
    except Exception as exc:  # fail-open: the agent must never see our bugs
        log_error(event, exc)
    run_after_answer(event)
    if BACKGROUND and not FAILED:
        refresh_clearance(event)
    unmark_pending()
    return 0


def refresh_clearance(event: str, wait: bool = True) -> None:
    """After a background hook's recording (agents/clearance.py), whichever agent's: a write
    of any agent removes the clearance the Claude Code and Codex gates read. Only in the
    background, since it may wait for the write lock, which a gate must not. `wait=False`
    (the resident, whose next gate would wait behind it): while another process holds the
    lock, write none — the next time its queue empties, it tries again."""
    def connection():
        conn = open_db()
        if not wait:
            conn.execute(f"PRAGMA busy_timeout = {CLEARANCE_BUSY_MS}")
        return conn

    try:
        from costhook import timeframe
        from costhook.agents import clearance

        cfg = user_config()
        clearance.refresh(connection, cfg, tz=timeframe.local_zone(cfg.get("timezone")), config_read_ns=CONFIG_READ_NS)
    except Exception as exc:
        if wait or "locked" not in str(exc):  # (sqlite3's "database is locked": busy, not broken)
            log_error(event, exc)


CLEARANCE_BUSY_MS = 20  # the resident's wait for the write lock before it skips the clearance


def serve(agent: str, idle_s: float = 600.0) -> int:
    """`costhook hook --agent NAME --serve`: a resident for a plugin that lives in the agent
    (OpenClaw's), so its events skip the interpreter's start and the imports. Lines on
    stdin, `{"id": N, "payload": {...}}`: a request (N > 0) is answered at once with one
    line `{"id": N, "answer": ... | null}` (the first line out, `{"serve": 1}`, says it is
    ready); an event without an id is posted — nobody waits for it — and handled, like
    what the answers queued (`after_answer`), only while no request is waiting: gates go
    ahead of recording. It runs until stdin closes (the plugin's process is gone, or let
    it go), then handles what it has read and exits; or after `idle_s` with nothing to do.
    It is never needed: the plugin falls back to one `costhook hook` per event whenever
    this is absent, slow or gone. The connection and config are dropped whenever the config
    file or the database file changes (a first import replaces the database by a rename)."""
    global SERVING
    import select
    from collections import deque

    SERVING = True
    handle = handler(agent)
    out = Answers()
    out.line(b'{"serve": 1}')  # warm: the plugin may send its gates now
    stdin = sys.stdin.buffer.fileno()
    pending, later = b"", deque()
    while True:
        ready, _, _ = select.select([stdin], [], [], 0 if later else idle_s)
        if not ready:
            if not later:
                return 0  # idle
            serve_later(later)
            continue
        chunk = os.read(stdin, 1 << 16)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop() if chunk else b""
        if len(pending) > MAX_STDIN:
            log_error("serve", bad_payload(f"a line longer than {MAX_STDIN} bytes"))
            pending = b""  # the rest of that line fails to parse: logged too, and dropped
        for line in lines:
            if line.strip():
                serve_line(handle, line, out, later)
        if not chunk:  # stdin closed: what was posted is still ours to record
            while later:
                serve_later(later)
            return 0


def serve_line(handle, line: bytes, out, later) -> None:
    """One request: answered now; or one posted event: queued in `later`."""
    event, rid, answer = "?", None, None
    try:
        request = jsontext.loads(line)
        rid = request.get("id") if type(request.get("id")) is int and request.get("id") > 0 else None
        payload = request.get("payload")
        if not isinstance(payload, dict):
            raise bad_payload("a request without a payload object")
        event = str(payload.get("hook_event_name") or payload.get("hook") or "?")[:40]
        if rid is None:
            defer(later, event, [lambda: handle(payload)])
            return
        fresh(background=False)
        answer = handle(payload)
    except Exception as exc:  # fail-open, as run_hook
        log_error(event, exc)
    if rid is not None:
        out.line(jsontext.dumps({"id": rid, "answer": answer}).encode())
    # Nothing queued still drains once: serve_later then refreshes the clearance this
    # request's recording may have removed.
    defer(later, event, _after_answer or [lambda: None])


def defer(later, event: str, jobs: list) -> None:
    """Queue `jobs` (emptying the list) for when no request waits. While anything is
    queued the resident holds a pending mark: wait_for_background waits for it too."""
    if jobs and not later and _pending is None:
        mark_pending()
    later.extend((event, job) for job in jobs)
    jobs.clear()


def serve_later(later) -> None:
    """The oldest posted event (or job an answer queued), as a background hook would run
    it; what it queues in turn goes to the end of `later`."""
    event, job = later.popleft()
    try:
        fresh(background=True)  # nobody waits: the long busy timeout, as a detached hook
        job()
    except Exception as exc:
        log_error(event, exc)
    defer(later, event, _after_answer)
    if not later:
        if not FAILED:  # as a background hook does; after any failure, never again in this process
            refresh_clearance(event, wait=False)
        unmark_pending()


def fresh(background: bool) -> None:
    """Before each event a resident handles: drop what changed on disk, and wait for the
    database's lock as this event may (a request briefly, posted work long)."""
    global BACKGROUND, _open_failed
    if stale():
        forget()
    BACKGROUND, _open_failed = background, None
    _logged.clear()  # each event logs its own failures
    if _conn is not None:
        _conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")


class Answers:
    """The resident's stdout. Once the plugin's process is gone nobody reads it: the
    resident goes on with what it has read (and stdin says when there is no more)."""

    def __init__(self):
        self.open = True

    def line(self, data: bytes) -> None:
        data += b"\n"
        while self.open and data:
            try:
                data = data[os.write(1, data):]
            except OSError:
                self.open = False


def file_identity(path: str, changes: bool = False):
    """(device, inode[, change time, size]) of a file, or None when it is not there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) if changes else (st.st_dev, st.st_ino)


def stale() -> bool:
    """Has the config file changed, or the database file been replaced, since this served
    hook cached them?"""
    global _config_seen
    seen = file_identity(paths.config_file(), changes=True)
    changed = seen != _config_seen
    _config_seen = seen
    return changed or (_conn is not None and file_identity(paths.db_file()) != _conn_identity)


_config_seen = None


SERVING = False  # `--serve`: one process answers many events; it never forks or exits for one
BACKGROUND = False  # this hook runs detached: nobody reads its answer
AGENT = None  # the agent CLI whose hook this process runs (`costhook hook --agent NAME`)
MAY_DETACH = False  # this process was started for the hook (__main__.hook): it may fork and exit


def go_background() -> None:
    """From here on this hook answers nothing and holds up nobody (see run_hook). Only in a
    process of its own: a hook called from other code (a test, an embedding) must never
    fork and exit its caller, so there the work simply goes on in the foreground."""
    global BACKGROUND
    BACKGROUND = True
    if MAY_DETACH and not SERVING:
        mark_pending()  # before the parent exits: whoever waits for us sees us at once
        detach()
        yield_cpu()


BACKGROUND_NICE = 10


def yield_cpu() -> None:
    """Lower this detached process's CPU priority: it runs while the agent works, and on a
    small machine an equal share of the CPU slows the agent's own turn (issue 14: on two
    cores the hooks' total CPU, not the time the agent waits for them, is what a turn pays).
    Mild, not idle: a low-priority holder of the write lock still gets to finish."""
    try:
        os.nice(BACKGROUND_NICE)
    except OSError:
        pass


PENDING = "pending"  # <home>/pending/<pid>: a background hook at work holds its lock
_pending = None


def mark_pending() -> None:
    """Hold an exclusive lock on `<home>/pending/<pid>` while this background hook works
    (taken before detach() forks, the lock lives on in the child, and goes with it: a
    crashed hook holds nothing): what `wait_for_background` waits for."""
    global _pending
    import fcntl

    try:
        folder = paths.ensure_private_dir(os.path.join(paths.ensure_private_dir(paths.home_dir()), PENDING))
        path = os.path.join(folder, str(os.getpid()))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _pending = (path, fd)
    except OSError as exc:
        log_error("background", exc)


def unmark_pending() -> None:
    global _pending
    if _pending is not None:
        path, fd = _pending
        _pending = None
        try:
            os.unlink(path)
        finally:
            os.close(fd)


def wait_for_background(timeout: float = 30.0) -> bool:
    """Wait until no background hook is at work (True), at most `timeout` seconds. A
    pending file whose lock nobody holds is a hook that died: removed."""
    import fcntl

    folder = os.path.join(paths.home_dir(), PENDING)
    deadline = time.monotonic() + timeout
    while True:
        try:
            names = os.listdir(folder)
        except OSError:
            return True
        busy = False
        for name in names:
            path = os.path.join(folder, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                try:
                    os.unlink(path)
                except OSError:
                    pass
            except OSError:
                busy = True
            finally:
                os.close(fd)
        if not busy:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def detach() -> None:
    """Continue in a child of our own session, with no tie to the agent: the parent exits
    at once (the agent's hook is done). Started by `setsid -f`, we already lead a session
    and the shell has returned, so nothing is left to do."""
    if os.getsid(0) == os.getpid():
        return
    if os.fork():
        os._exit(0)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


_after_answer = []


def after_answer(job) -> None:
    """Run `job()` once this hook has answered and its own writes are committed: a detached
    catch-up started earlier would take the write lock the hook still needs (a first hook
    on a large backlog then waited for it). Outside a hook (a detached job, a test calling
    a handler) `run_after_answer` runs it."""
    _after_answer.append(job)


def run_after_answer(event: str = "after") -> None:
    global _conn
    if _conn is not None and _after_answer:  # nothing of ours holds a lock while they start
        _conn.close()
        _conn = None
    while _after_answer:
        try:
            _after_answer.pop(0)()
        except Exception as exc:
            log_error(event, exc)


def handler(agent: str):
    """The agent's `handle(payload) -> answer | None`, imported now (only that agent's code)."""
    if agent not in AGENT_HOOKS:
        raise bad_payload(f"unknown --agent {agent!r}")
    return __import__(AGENT_HOOKS[agent], fromlist=["handle"]).handle


def run_job(name: str, job) -> int:
    """A detached job (`costhook hook --NAME`): `job()`, its failures logged; always 0."""
    if MAY_DETACH:
        yield_cpu()
    try:
        job()
    except Exception as exc:
        log_error(name, exc)
    run_after_answer(name)
    return 0


# How long a hook waits for more of its stdin. The agents write the event at once and close
# the pipe; one that keeps it open (a wrapper, a terminal) would hold a gate until the
# agent's hook timeout (5 s) kills it, so the event is then what has arrived. Each arrival
# restarts the wait (a large event from a busy agent still comes whole), up to twice the
# wait in all, so a trickle cannot hold the gate either. A background hook keeps nobody
# waiting (the shell returned at once) and is given longer.
STDIN_WAIT_S = 1.0
BACKGROUND_STDIN_WAIT_S = 10.0


def read_payload(stream, wait_s: float = STDIN_WAIT_S) -> dict:
    """The hook's JSON object from a binary stream (at most MAX_STDIN bytes; see read_stdin)."""
    data = read_stdin(stream, wait_s)
    if len(data) > MAX_STDIN:
        raise bad_payload(f"stdin larger than {MAX_STDIN} bytes")
    if not data.strip():
        raise bad_payload("empty stdin")
    try:
        payload = jsontext.loads(data)
    except ValueError as exc:
        raise bad_payload(f"stdin is not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(payload, dict):
        raise bad_payload(f"stdin is a JSON {type(payload).__name__}, not an object")
    return payload


def read_stdin(stream, wait_s: float) -> bytes:
    """At most MAX_STDIN + 1 bytes of `stream`: up to its end, or what has arrived once
    `wait_s` pass without more (or 2 × `wait_s` in all: a pipe its writer never closes). A
    stream that is no file (an in-process caller's) is read to its end."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # (io.UnsupportedOperation is both)
        return stream.read(MAX_STDIN + 1)
    import select

    now = time.monotonic()
    last, quit_at = now + wait_s, now + 2 * wait_s
    chunks, size = [], 0
    while size <= MAX_STDIN:
        left = min(last, quit_at) - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break  # never closed: what arrived is the event (or a bad payload, logged)
        chunk = os.read(fd, min(1 << 20, MAX_STDIN + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        last = time.monotonic() + wait_s
    return b"".join(chunks)


def bad_payload(message: str) -> Exception:
    """errors.BadPayload, its module imported only when a payload is bad (the hook pays
    for every module it loads)."""
    from costhook.errors import BadPayload

    return BadPayload(message)


# ------------------------------------------------------------- lazy state ---------

_conn = None
_conn_identity = None  # the database file's identity when _conn was opened (see stale)
_config = None
_upgrade_spawned = False
_open_failed = None  # why the database could not be opened: not tried again by this hook


def open_db():
    """The database connection, opened on first use: a hook with nothing to write never
    touches (or creates) the database. A large database that needs schema steps is
    upgraded by a detached process; until then this raises UpgradePending.

    Once opening failed, later calls raise the same error at once: it may have waited its
    busy timeout (a first import putting its file in place holds the open lock), and a
    gate that waited once per step would outlast the agent's hook timeout. (A served hook
    tries again for each event.)"""
    global _conn, _conn_identity, _upgrade_spawned, _open_failed
    if _open_failed is not None:
        raise _open_failed
    if _conn is None:
        from costhook.store import db

        try:
            # taken before connecting: a file replaced meanwhile is seen as stale (a new one, after)
            before = file_identity(paths.db_file())
            _conn = db.connect(busy_timeout_ms=busy_timeout_ms(), upgrade=False)
            _conn_identity = before or file_identity(paths.db_file())
        except Exception as exc:
            from costhook.errors import UpgradePending  # imported when raised: the hook pays for each module

            if isinstance(exc, UpgradePending) and not _upgrade_spawned:  # the cursors wait: the next hook catches up
                _upgrade_spawned = True
                spawn_detached(["--upgrade"])
            _open_failed = exc
            raise
    return _conn


def user_config() -> dict:
    """The validated config ({} without a file). A broken config must not stop the agent,
    the capture or the budgets: it is logged once, and the hook goes on with the config
    as it last validated (config.load.last_valid), or none."""
    global _config, CONFIG_READ_NS
    if _config is None:
        _config = {}
        CONFIG_READ_NS = time.time_ns()
        if paths.config_named() or os.path.exists(paths.config_file()):
            from costhook.config import load as config

            try:  # the validated config is cached in costhook's folder, which a hook (a writer) makes
                paths.ensure_private_dir(paths.home_dir())
            except OSError:
                pass  # then no cache; opening the database says what is wrong
            try:
                _config = config.load()
            except ValueError as exc:  # errors.ConfigError (not imported: the hook pays for each module)
                if not getattr(exc, "known", False):
                    log_error("config", exc)
                _config = config.last_valid() or {}
    return _config


def busy_timeout_ms() -> int:
    return BACKGROUND_BUSY_TIMEOUT_MS if BACKGROUND else BUSY_TIMEOUT_MS


class deciding:
    """`with deciding():` around a hook's writes before a budget decision (catching up a
    transcript, recording a tool call): with budgets configured, each write waits at most
    DECIDING_BUSY_MS for another process's write lock, then fails (the caller logs it; a
    transcript's cursor did not move, so nothing is lost) and the hook decides on what is
    already stored. Without budgets a hook only records, and waits the usual timeout."""

    def __enter__(self):
        self.short = not BACKGROUND and bool(user_config().get("budgets"))
        if self.short:
            open_db().execute(f"PRAGMA busy_timeout = {DECIDING_BUSY_MS}")
        return self

    def __exit__(self, *exc):
        if self.short and _conn is not None:
            _conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms()}")
        return False


def forget() -> None:
    """Close the connection and forget the config: what a new hook process starts from."""
    global _conn, _config, BACKGROUND, _open_failed
    if _conn is not None:
        _conn.close()
    _conn, _config, BACKGROUND, _open_failed = None, None, False, None
    _logged.clear()


def price_table():
    """The bundled prices, with the user's overrides from the config file if it has any."""
    from costhook.pricing import prices

    try:
        return prices.load_table(user_config().get("prices"))
    except ValueError as exc:  # errors.PriceConfigError
        log_error("config", exc)
        return prices.load_table()


def pricer():
    """`price(record)` with the table built on first use: most hooks have nothing to price."""
    from costhook.pricing import prices

    return prices.pricer(load=price_table)


# ------------------------------------------------------------- budgets ------------


def decide(where: str, context, *, record: bool = True, notify_on_block: bool = False):
    """The budgets' verdict, or None when no budget is configured.

    `context(conn)` → (budgets.Context, the budgets to check). If costhook cannot read its
    own data, the budgets' `on_error` policy decides (budgets.on_error). Newly fired
    thresholds (and, with `notify_on_block`, a block) go to the notifier, detached."""
    cfg = user_config()
    if not cfg.get("budgets"):
        return None
    from costhook import budgets, timeframe

    try:
        with deciding():
            conn = open_db()
            ctx, checked = context(conn)
            # A hook judges `cli:<name>` budgets as its own CLI's, even before its session
            # has a row that says so (the first prompt of a new session).
            ctx.cli = ctx.cli or AGENT
            verdict = budgets.check(conn, checked, ctx, tz=timeframe.local_zone(cfg.get("timezone")), record=record)
    except Exception as exc:
        log_error(where, exc)
        return budgets.on_error(cfg["budgets"], exc)
    if verdict.unrecorded is not None:
        log_error(where, verdict.unrecorded)
    if record and (verdict.warnings or (notify_on_block and verdict.block is not None)) and cfg.get("notify"):
        after_answer(lambda: spawn_detached(["--notify"]))
    return verdict


# ------------------------------------------------------------- processes ----------


def spawn_detached(args: list) -> None:
    """Run `costhook hook ARGS` in its own session, detached from the agent's hook.

    The hook runs in the agent's working directory, which belongs to whatever project the
    agent is in: the child must not import anything from there. So it is started by this
    very interpreter's absolute path, in isolated mode (-I: no current directory or script
    folder on sys.path, no PYTHON* variables, no user site), from the root directory."""
    import subprocess

    subprocess.Popen(
        [os.path.abspath(sys.executable), "-I", "-m", "costhook", "hook", *args],
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def dashboard_due(settings: dict, now_ts: float | None = None) -> bool:
    """Is the vault dashboard configured to refresh after a session, and was its last
    refresh (the stamp file's time) at least `min_interval_seconds` ago? One stat: the
    detached refresh asks again under the dashboard's lock."""
    if not settings.get("refresh_on_session_end") or not settings.get("vault"):
        return False
    try:
        age = (now_ts or time.time()) - os.stat(paths.dashboard_stamp_file()).st_mtime
    except OSError:
        return True
    return age >= float(settings.get("min_interval_seconds", DASHBOARD_MIN_INTERVAL_S))


def sync_due(cfg: dict, now_ts: float | None = None) -> bool:
    """Is a sync folder (`[team] folder`) or a team server (`[team] url` or COSTHOOK_TEAM_URL)
    configured, and did the last sync started after a session start at least `[team]
    min_interval_seconds` ago? One stat; the detached `costhook hook --sync` asks again."""
    team = cfg.get("team") or {}
    if not (team.get("folder") or os.environ.get("COSTHOOK_TEAM_URL") or team.get("url")):
        return False
    try:
        age = (now_ts or time.time()) - os.stat(paths.sync_stamp_file()).st_mtime
    except OSError:
        return True
    return age >= float(team.get("min_interval_seconds", 60))


def sync_soon() -> None:
    """At a session's end, and while sessions run (a turn's end, a tool's end): start the
    detached sync (folder, team server) after the answer when due — one stat here — so
    team budgets see the other machines' spend within about `[team] min_interval_seconds`
    (docs/team.md, the bound)."""
    if sync_due(user_config()):
        after_answer(lambda: spawn_detached(["--sync"]))


CONFIG_READ_NS = 0  # when user_config() read the config file (time.time_ns())
FAILED = False  # this process logged an error: it writes no clearance (and no second line)


_logged = set()  # (type, message) of the failures this hook logged (a resident: this event)


def log_error(event: str, exc: BaseException) -> None:
    """One line per failure, never the payload's content; rotated at 1 MB (paths.log_error).
    A failure met again at a later step of the same hook (a broken or read-only database
    fails the catch-up, the tool call's record and the budget check alike) is the same
    line: not written twice."""
    global FAILED
    FAILED = True
    seen = (type(exc).__name__, str(exc))
    if seen in _logged:
        return
    _logged.add(seen)
    paths.log_error(f"hook {event}", exc)
