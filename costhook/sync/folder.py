"""The sync folder: one person's machines share their calls through a folder that
Syncthing, Dropbox or iCloud keeps in step — no server.

Each machine appends immutable segments under `<folder>/<machine>/`: gzip-compressed
JSON Lines, written under a temporary name and renamed, so a sync tool only ever sees a
whole file (or a half-transferred one, which is skipped and read again next time). A
segment holds this machine's calls that are new or whose usage grew since the last
export, with the sessions, tool calls and OpenClaw cron runs and jobs. Each machine
reads the other machines' segments into its own database: calls merge by their key with
`usage.merge_call`'s rule (the final usage wins), so a segment read twice, a duplicated
or conflicted copy, or a call exported again after it grew, is never counted twice; a
content hash skips copies without writing anything.

Everything read from the folder is untrusted: every field is checked, files and folders
others can write to are refused, symlinks are never followed.
"""

import calendar
import gzip
import hashlib
import json
import os
import re
import secrets
import stat
import time
import zlib

from costhook import paths
from costhook.store import writes
from costhook.store.db import transaction
from costhook.timeframe import now_iso, utc_timestamp
from costhook.usage import plausible

FORMAT = "costhook-segment"
VERSION = 1
SUFFIX = ".ndjson.gz"
SEGMENT_NAME = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{8}\.ndjson\.gz$")  # what this module writes
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # a user or machine name
CALLS_PER_SEGMENT = 20_000
MAX_SEGMENT_BYTES = 64 << 20  # compressed; a segment of 20,000 calls is ~2 MB
MAX_CONTENT_BYTES = 512 << 20  # decompressed: a gzip bomb stops here
MAX_LINE_BYTES = 256 << 10
# Each line read is held as a Python object (~40 bytes) and, once parsed, a dict: a line
# is charged this much on top of its bytes against MAX_CONTENT_BYTES, so 512 MB of
# two-byte lines (a 0.5 MB gzip bomb: ~29 GB as objects) stops at two million lines. A
# real record is a few hundred bytes, so real segments are barely affected.
LINE_COST = 256
MAX_TEXT = 4096  # characters in one text field
MAX_TOOLS = 256

# What a segment may carry, field by field: (text fields, integer fields). Anything else
# in a record is dropped; a field of the wrong type makes the record (not the segment) invalid.
CALL_TEXT = ("key", "agent", "message_id", "request_id", "session_id", "parent_session_id", "agent_id",
             "agent_type", "project", "git_branch", "timestamp", "model", "speed", "inference_geo", "service_tier",
             "skill", "cron_job", "prompt_id", "entrypoint", "session_key", "host_agent", "run_id", "provider",
             "session_kind", "iterations")
CALL_INT = ("is_sidechain", "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
            "cache_read_tokens", "web_search_requests", "reported_cost_nanousd", "is_heartbeat", "ack_only")
SESSION_TEXT = ("session_id", "agent", "project", "git_branch", "started_at", "ended_at", "end_reason",
                "parent_session_id", "source", "entrypoint", "model", "session_key", "host_agent", "session_kind",
                "parent_session_key", "label")
SESSION_INT = ("interactive", "reported_cost_nanousd")
TOOL_TEXT = ("tool_use_id", "agent", "session_id", "agent_id", "tool_name", "mcp_server", "timestamp")
TOOL_INT = ("success", "duration_ms", "input_bytes", "output_bytes")
CRON_TEXT = ("run_id", "agent", "host_agent", "job_id", "job_name", "session_id", "session_key", "status",
             "completion_status", "started_at", "model", "provider", "cron_run_id", "error", "session_target")
CRON_INT = ("duration_ms", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
            "total_tokens", "is_heartbeat")
JOB_TEXT = ("job_id", "agent", "host_agent", "name", "kind", "session_target", "schedule", "updated_at")
JOB_INT = ("enabled",)
KINDS = {  # record kind → (text fields, integer fields, its key)
    "call": (CALL_TEXT, CALL_INT, "key"),
    "session": (SESSION_TEXT, SESSION_INT, "session_id"),
    "tool_call": (TOOL_TEXT, TOOL_INT, "tool_use_id"),
    "cron_run": (CRON_TEXT, CRON_INT, "run_id"),
    "cron_job": (JOB_TEXT, JOB_INT, "job_id"),
}
TIME_FIELDS = ("timestamp", "started_at", "ended_at", "updated_at")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d)?$", re.ASCII)
MAX_INT = 10**15  # counts and nano-dollar amounts; plausible() bounds a call's tokens further

# A call's version: what, when it changed, sends the call out again (its usage grew, a tool
# or a sub-agent's type was learnt, the main thread's copy of a sidechain replay arrived).
CALL_VERSION = ("printf('%d|%d|%d|%d|%d|%d|%s|%s|%s|%s|%s|%s|%s|%d', coalesce(input_tokens, 0), "
                "coalesce(output_tokens, 0), coalesce(cache_write_5m_tokens, 0), coalesce(cache_write_1h_tokens, 0), "
                "coalesce(cache_read_tokens, 0), coalesce(web_search_requests, 0), coalesce(tools, ''), "
                "coalesce(agent_type, ''), coalesce(iterations, ''), coalesce(skill, ''), coalesce(session_id, ''), "
                "coalesce(agent_id, ''), coalesce(project, ''), coalesce(is_sidechain, 0))")
LOCAL_SESSIONS = "SELECT DISTINCT session_id FROM requests WHERE origin_machine IS NULL AND session_id IS NOT NULL"
SYNCED_SESSIONS = "SELECT DISTINCT session_id FROM requests WHERE origin_machine IS NOT NULL AND session_id IS NOT NULL"


INCOMPLETE = "incomplete (still syncing?): read again next time"


class SyncError(Exception):
    """The folder cannot be used (missing config, unsafe folder): one line for the user."""


# ------------------------------------------------------------------ settings ------


def settings(cfg: dict) -> dict | None:
    """{folder, user, machine, project_name} from the config's [team] table, or None when
    no folder is configured. User and machine default to the login and host names."""
    team = cfg.get("team") or {}
    if not team.get("folder"):
        return None
    return {
        "folder": os.path.abspath(os.path.expanduser(team["folder"])),
        "user": team.get("user") or safe_name(login_name()),
        "machine": team.get("machine") or safe_name(host_name()),
        "project_name": team.get("project_name") or "git-remote",
    }


def login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


def host_name() -> str:
    import socket

    return socket.gethostname().split(".")[0] or "machine"


def safe_name(text: str) -> str:
    """A login or host name as a folder name: other characters become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", text)[:64].lstrip("._-")
    return name or "unnamed"


# ------------------------------------------------------------------ sync ----------


def sync(conn, cfg: dict, price) -> dict:
    """Export this machine's new and grown calls, then import the other machines' segments.
    Returns the summary: {"exported": {...}, "imported": {...}, "skipped": [...]}. Holds a
    lock file in costhook's home, so two syncs of one machine never export the same calls."""
    found = settings(cfg)
    if found is None:
        raise SyncError("no sync folder configured: add `folder = \"~/Sync/costhook\"` under [team] in the config")
    folder = found["folder"]
    if not os.path.isdir(folder):
        raise SyncError(f"sync folder {folder} does not exist; create it (your sync tool shares it)")
    problem = paths.insecurity(folder, kind="sync folder")
    if problem:
        raise SyncError(problem)
    import fcntl

    lock = os.path.join(paths.home_dir(), "sync.lock")
    try:
        fd = os.open(paths.touch_private(lock), os.O_RDWR | os.O_NOFOLLOW)  # a planted symlink is not followed
    except OSError as exc:
        raise SyncError(f"cannot use the lock file {lock}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        remove_stale_temporaries(os.path.join(folder, found["machine"]))
        exported = export(conn, found)
        imported = import_all(conn, found, price)
    except OSError as exc:  # a full disk, a folder we may not read: one line, what was done stays done
        raise SyncError(f"sync folder {folder}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    return {"folder": folder, "machine": found["machine"], "user": found["user"], "exported": exported, **imported}


# ------------------------------------------------------------------ export --------

TEMPORARY = re.compile(r"^\.\d{8}T\d{6}Z-[0-9a-f]{8}\.ndjson\.gz\.\d+\.tmp$")  # write_segment's
STALE_TEMPORARY_S = 3600


def remove_stale_temporaries(own: str) -> None:
    """Temporary segment files of an export that was killed before its rename: the sync
    tool would carry them to every machine for ever. Only ours, only old ones (a sync
    holding the lock writes its own for a second or two)."""
    try:
        names = os.listdir(own)
    except OSError:
        return
    for name in names:
        path = os.path.join(own, name)
        try:
            if TEMPORARY.match(name) and time.time() - os.lstat(path).st_mtime > STALE_TEMPORARY_S:
                os.unlink(path)
        except OSError:
            pass  # gone already


def export(conn, found: dict) -> dict:
    """Write this machine's calls not yet exported, or changed since, as new segments of
    at most CALLS_PER_SEGMENT calls, read a segment's worth at a time (in key order: the
    calls just exported leave the query, so memory stays bounded whatever the history)."""
    columns = ", ".join(f"r.{name}" for name in CALL_TEXT + CALL_INT + ("tools",))
    sql = f"""SELECT {columns}, {CALL_VERSION} AS sync_version, e.version IS NOT NULL AS sync_again
              FROM requests r LEFT JOIN sync_exports e ON e.kind = 'call' AND e.id = r.key
              WHERE r.key > ? AND r.origin_machine IS NULL AND (e.version IS NULL OR e.version != {CALL_VERSION})
              ORDER BY r.key LIMIT {CALLS_PER_SEGMENT}"""
    summary = {"calls": 0, "updated": 0, "segments": 0}
    labels, after = {}, ""
    while True:
        chunk = plain_rows(conn, sql, (after,))
        summary["calls"] += len(chunk)
        summary["updated"] += sum(r["sync_again"] for r in chunk)
        if len(chunk) == CALLS_PER_SEGMENT:
            write_calls(conn, found, labels, chunk, ([], [], [], []))
            summary["segments"] += 1
            after = chunk[-1]["key"]
            continue
        # the sessions, tool calls, cron runs and jobs of this machine ride with the last segment
        sessions = changed_rows(conn, "session", f"SELECT * FROM sessions WHERE session_id IN ({LOCAL_SESSIONS})")
        tools = plain_rows(conn, f"""SELECT t.* FROM tool_calls t
            LEFT JOIN sync_exports e ON e.kind = 'tool_call' AND e.id = t.tool_use_id
            WHERE e.id IS NULL AND t.session_id IN ({LOCAL_SESSIONS})""", ())
        # a cron run whose transcript was pruned has no calls, but is this machine's unless its
        # session's calls came from elsewhere
        crons = changed_rows(conn, "cron_run", f"""SELECT * FROM cron_runs WHERE session_id IS NULL
            OR session_id IN ({LOCAL_SESSIONS}) OR session_id NOT IN ({SYNCED_SESSIONS})""")
        jobs = changed_rows(conn, "cron_job", "SELECT * FROM cron_jobs")
        if chunk or sessions or tools or crons or jobs:
            write_calls(conn, found, labels, chunk, (sessions, tools, crons, jobs))
            summary["segments"] += 1
        return summary


def plain_rows(conn, sql: str, args) -> list[dict]:
    """The rows of a query as dicts (without sqlite3.Row: an export reads every call)."""
    cursor = conn.cursor()
    cursor.row_factory = None
    cursor.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor]


def write_calls(conn, found: dict, labels: dict, chunk: list, extras: tuple) -> None:
    """One segment of `chunk` (call rows) and `extras` (sessions, tool calls, cron runs and
    jobs), then, once it is renamed into place, the versions exported and the file recorded."""
    sessions, tools, crons, jobs = extras
    own = os.path.join(found["folder"], found["machine"])
    if os.path.lexists(own) and not stat.S_ISDIR(os.lstat(own).st_mode):
        raise SyncError(f"{own} is not a folder; costhook does not follow it")
    paths.ensure_private_dir(own)
    records = [("call", shared_call(r, found, labels)) for r in chunk]
    records += [("session", shared_session(r, found, labels)) for r, _ in sessions]
    records += [("tool_call", {k: r[k] for k in TOOL_TEXT + TOOL_INT}) for r in tools]
    records += [("cron_run", {k: r.get(k) for k in CRON_TEXT + CRON_INT}) for r, _ in crons]
    records += [("cron_job", {k: r.get(k) for k in JOB_TEXT + JOB_INT}) for r, _ in jobs]
    name, digest = write_segment(own, found, records)
    rel = f"{found['machine']}/{name}"
    st = os.lstat(os.path.join(own, name))
    with transaction(conn):
        writes.record_exports(conn, "call", [(r["key"], r["sync_version"]) for r in chunk])
        writes.record_exports(conn, "session", [(r["session_id"], v) for r, v in sessions])
        writes.record_exports(conn, "tool_call", [(r["tool_use_id"], "1") for r in tools])
        writes.record_exports(conn, "cron_run", [(r["run_id"], v) for r, v in crons])
        writes.record_exports(conn, "cron_job", [(r["job_id"], v) for r, v in jobs])
        writes.record_segment(conn, {"hash": digest, "machine": found["machine"], "user": found["user"], "path": rel,
                                     "calls": len(chunk), "created_at": now_iso(), "imported_at": None})
        writes.record_sync_file(conn, {"path": rel, "machine": found["machine"], "size": st.st_size,
                                       "mtime_ns": st.st_mtime_ns, "hash": digest, "status": "exported",
                                       "seen_at": now_iso()})


def changed_rows(conn, kind: str, sql: str) -> list:
    """[(row, version)] of the rows of `sql` whose content changed since they were exported
    (version: a hash of the row). For the small tables: sessions, cron runs."""
    done = {r[0]: r[1] for r in conn.execute("SELECT id, version FROM sync_exports WHERE kind = ?", (kind,))}
    key = KINDS[kind][2]
    out = []
    for row in conn.execute(sql):
        row = dict(row)
        version = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:32]
        if done.get(row[key]) != version:
            out.append((row, version))
    return out


def shared_call(row: dict, found: dict, labels: dict) -> dict:
    """A call as it leaves the machine: no transcript path, the project as `project_name`
    says, no cost (each machine prices with its own table, as `reprice` would)."""
    record = {k: row[k] for k in CALL_TEXT + CALL_INT}
    record["tools"] = json.loads(row["tools"]) if row["tools"] else []
    record["project"] = project_label(row.get("project"), found["project_name"], labels)
    return record


def shared_session(row: dict, found: dict, labels: dict) -> dict:
    record = {k: row.get(k) for k in SESSION_TEXT + SESSION_INT}
    record["project"] = project_label(row.get("project"), found["project_name"], labels)
    return record


def write_segment(own: str, found: dict, records: list) -> tuple[str, str]:
    """One segment file in this machine's folder, whole or not at all: written under a
    hidden temporary name, flushed to disk, then renamed. Returns (name, content hash)."""
    header = {"format": FORMAT, "version": VERSION, "user": found["user"], "machine": found["machine"],
              "created_at": now_iso()}
    lines = [json.dumps(header, separators=(",", ":"))]
    lines += [json.dumps({kind: record}, separators=(",", ":"), ensure_ascii=False) for kind, record in records]
    lines.append(json.dumps({"end": {"records": len(records)}}))
    content = ("\n".join(lines) + "\n").encode("utf-8", "replace")
    name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{secrets.token_hex(4)}{SUFFIX}"
    tmp = os.path.join(own, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(gzip.compress(content, compresslevel=6, mtime=0))
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(own, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(own, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return name, hashlib.sha256(content).hexdigest()


# ------------------------------------------------------------------ projects ------


def project_label(project: str | None, mode: str, labels: dict) -> str | None:
    """What a project is called outside this machine: its path (`path`), its folder's name
    (`basename`), or its git remote without credentials, else the folder's name
    (`git-remote`, the default) — never a home path unless chosen."""
    if not project or mode == "path":
        return project
    if (project, mode) not in labels:
        base = os.path.basename(project.rstrip("/")) or project
        labels[project, mode] = (git_remote(project) or base) if mode == "git-remote" else base
    return labels[project, mode]


def git_remote(project: str) -> str | None:
    """The normalised `origin` (else first) remote of the repository at or above `project`:
    `github.com/acme/api`."""
    folder = project
    for _ in range(32):
        config = git_config(os.path.join(folder, ".git"))
        if config is not None:
            return remote_url(config)
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return None


def git_config(dot_git: str) -> str | None:
    """The text of a repository's config (a worktree's `.git` file leads to it), or None."""
    try:
        if os.path.isfile(dot_git):
            text = paths.read_regular(dot_git, 4096).decode("utf-8", "replace")
            if not text.startswith("gitdir:"):
                return None
            gitdir = os.path.join(os.path.dirname(dot_git), text[7:].strip())
            try:
                common = paths.read_regular(os.path.join(gitdir, "commondir"), 4096).decode().strip()
                gitdir = os.path.join(gitdir, common)
            except OSError:
                pass
            dot_git = gitdir
        if not os.path.isdir(dot_git):
            return None
        return paths.read_regular(os.path.join(dot_git, "config"), 1 << 16).decode("utf-8", "replace")
    except (OSError, UnicodeDecodeError):
        return None


def remote_url(config: str) -> str | None:
    remotes, current = {}, None
    for line in config.splitlines():
        line = line.strip()
        section = re.match(r'^\[remote\s+"([^"]*)"\]', line)
        if section:
            current = section.group(1)
        elif line.startswith("["):
            current = None
        elif current is not None and re.match(r"^url\s*=", line):
            remotes.setdefault(current, line.split("=", 1)[1].strip())
    url = remotes.get("origin") or next(iter(remotes.values()), None)
    return normalise_remote(url) if url else None


def normalise_remote(url: str) -> str | None:
    """`git@github.com:acme/api.git`, `https://user:token@github.com/acme/api` →
    `github.com/acme/api`; a local path → None."""
    url = re.split(r"[?#]", url.strip(), maxsplit=1)[0]  # no query string (a token may hide there)
    scp = re.match(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$", url)
    if "://" in url:
        rest = url.split("://", 1)[1]
        if url.startswith("file://"):
            return None
        host, _, path = rest.partition("/")
        host = host.rsplit("@", 1)[-1].split(":")[0]
    elif scp:
        host, path = scp.group(1), scp.group(2)
    else:
        return None
    path = path.strip("/").removesuffix(".git")
    return f"{host}/{path}" if host and path else None


# ------------------------------------------------------------------ import --------


def import_all(conn, found: dict, price) -> dict:
    """Read every segment this database has not read or written. Long: one pass over the
    folder — each entry checked (a symlink, a foreign owner, a folder others can write to
    are refused), each file classified, read, deduplicated by content and imported."""
    folder = found["folder"]
    known = {r["path"]: (r["size"], r["mtime_ns"]) for r in conn.execute(
        "SELECT path, size, mtime_ns FROM sync_files WHERE status != 'skipped'")}
    with transaction(conn):
        writes.forget_sync_skips(conn)
    summary = {"imported": {"segments": 0, "calls": 0, "changed": 0, "machines": []}, "duplicates": 0, "skipped": []}
    machines = set()
    # This machine's own folder is read too: for segments this database did not write (an
    # earlier database of this machine, or two machines given one name). Its own are known.
    for machine in sorted(os.listdir(folder)):
        where = os.path.join(folder, machine)
        if machine.startswith("."):
            continue  # the sync tool's own: .stfolder, .dropbox.cache
        problem = unsafe_entry(where, folder=True)
        if problem == "not a folder":
            continue  # a note the user keeps there, the sync tool's own files
        if problem is None and not NAME.match(machine):
            problem = "not a machine name"
        if problem:
            skip(conn, summary, machine, machine, problem)
            continue
        try:
            names = sorted(os.listdir(where))
        except OSError as exc:
            skip(conn, summary, machine, machine, f"cannot read ({exc.strerror})")
            continue
        for name in names:
            rel = f"{machine}/{name}"
            path = os.path.join(where, name)
            if name.startswith(".") or not name.endswith(SUFFIX):
                if not name.startswith(".") and ".tmp" not in name:
                    skip(conn, summary, rel, machine, "not a segment")
                continue  # a temporary file: being written or transferred
            problem = unsafe_entry(path, folder=False)
            if problem:
                skip(conn, summary, rel, machine, problem)
                continue
            st = os.lstat(path)
            if known.get(rel) == (st.st_size, st.st_mtime_ns):
                continue
            result = read_segment(path, machine)
            if isinstance(result, str):
                skip(conn, summary, rel, machine, result)
                continue
            try:
                done = import_segment(conn, result, rel, st, price)
            except (ValueError, TypeError, KeyError, OverflowError) as exc:
                # a value the checks let through and a write refused: that segment waits (its
                # batches already in are merged again next time), the others go on
                skip(conn, summary, rel, machine, f"could not be imported ({type(exc).__name__}: {str(exc)[:100]})")
                continue
            if done is None:
                summary["duplicates"] += 1
                continue
            summary["imported"]["segments"] += 1
            summary["imported"]["calls"] += done
            summary["imported"]["changed"] += result["changed"]
            machines.add(machine)
    summary["imported"]["machines"] = sorted(machines)
    return summary


def skip(conn, summary: dict, rel: str, machine: str, reason: str) -> None:
    summary["skipped"].append({"path": rel, "reason": reason})
    with transaction(conn):
        writes.record_sync_file(conn, {"path": rel, "machine": machine, "status": "skipped", "reason": reason,
                                       "seen_at": now_iso()})


def unsafe_entry(path: str, *, folder: bool) -> str | None:
    """Why an entry of the sync folder is not read, or None."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "a symlink; costhook does not follow it"
    if folder and not stat.S_ISDIR(st.st_mode):
        return "not a folder"
    if not folder and not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid not in (os.getuid(), 0):
        return f"belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return "writable by others"
    if not folder and st.st_size > MAX_SEGMENT_BYTES:
        return f"larger than {MAX_SEGMENT_BYTES >> 20} MB"
    return None


def read_segment(path: str, machine: str) -> dict | str:
    """The segment at `path` as {"hash", "header", "records": {kind: [record]}, "invalid"},
    or why it cannot be read: a truncated file (perhaps still arriving) reads as incomplete
    and is tried again at the next sync."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    raw = os.fdopen(fd, "rb")
    digest, lines, size = hashlib.sha256(), [], 0
    try:
        if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
            return "not a regular file"
        with gzip.GzipFile(fileobj=raw) as f:
            while True:
                line = f.readline(MAX_LINE_BYTES + 1)
                if not line:
                    break
                size += len(line) + LINE_COST
                if len(line) > MAX_LINE_BYTES or size > MAX_CONTENT_BYTES:
                    return "damaged: too large"
                digest.update(line)
                lines.append(line)
    except EOFError:
        return INCOMPLETE
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        return f"damaged: {exc.__class__.__name__}"
    finally:
        raw.close()
    if not lines:
        return INCOMPLETE
    return parse_segment(lines, digest.hexdigest(), machine)


def parse_segment(lines: list, digest: str, machine: str) -> dict | str:
    """The lines of a whole segment, checked: a header naming this machine folder, valid
    records, and the end line counting them (else the file is incomplete)."""
    try:
        header = json.loads(lines[0]) if lines else None
        end = json.loads(lines[-1]) if len(lines) > 1 else None
    except (ValueError, RecursionError):  # RecursionError: a line of 100,000 "["
        return "damaged: not JSON"
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return "not a costhook segment"
    if header.get("version") != VERSION:
        return f"segment version {str(header.get('version'))[:20]!r}, this costhook reads {VERSION}: upgrade costhook"
    if header.get("machine") != machine or not isinstance(header.get("user"), str) or not NAME.match(header["user"]):
        return "its header names another machine, or no valid user"
    if not (isinstance(end, dict) and isinstance(end.get("end"), dict) and end["end"].get("records") == len(lines) - 2):
        return INCOMPLETE
    records, invalid = {kind: [] for kind in KINDS}, 0
    for line in lines[1:-1]:
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):
            invalid += 1
            continue
        kind = next(iter(item), None) if isinstance(item, dict) and len(item) == 1 else None
        record = checked(kind, item[kind]) if kind in KINDS else None
        if record is None:
            invalid += 1
        else:
            records[kind].append(record)
    return {"hash": digest, "header": header, "records": records, "invalid": invalid, "changed": 0}


def checked(kind: str, raw) -> dict | None:
    """A record of `kind` with only its known fields, each of its type and bounded; None
    when it has no key, a field of the wrong type, or a call's usage is implausible."""
    if not isinstance(raw, dict):
        return None
    text, ints, key = KINDS[kind]
    out = {}
    for name in text:
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            return None
        if value is not None and name in TIME_FIELDS:
            value = utc_timestamp(value) if TIME.match(value) else None  # the stored form, a real time
            if value is None:
                return None  # the rollup buckets calls by their time: only a UTC time is one
        out[name] = value
    for name in ints:
        value = raw.get(name)
        if value is not None and (type(value) is not int or not 0 <= value < MAX_INT):
            return None
        out[name] = value
    if not out.get(key):
        return None
    if kind == "call":
        tools = raw.get("tools")
        if not isinstance(tools, list) or len(tools) > MAX_TOOLS or \
                any(not isinstance(t, str) or len(t) > MAX_TEXT for t in tools):
            return None
        out["tools"] = tools
        if not out.get("agent") or not plausible(out):
            return None
        if out.get("iterations") is not None:
            try:
                json.loads(out["iterations"])
            except (ValueError, RecursionError):
                return None
    return out


IMPORT_BATCH = 2_000  # calls per write transaction: a hook waiting for the lock waits a fraction of a second


def import_segment(conn, segment: dict, rel: str, st, price) -> int | None:
    """One segment into the database; the number of calls it holds, or None when the same
    content was imported before (a copy). Its calls go in batches of IMPORT_BATCH, each in
    its own transaction, so a hook never waits long for the write lock; the segment counts
    as read only with the last one. A sync killed in between leaves calls merged by key:
    the next sync reads the segment again, and merging them again changes nothing."""
    header, records = segment["header"], segment["records"]
    origin = {"origin_user": header["user"], "origin_machine": header["machine"]}
    calls = {r["key"]: {**r, **origin} for r in records["call"]}
    file_row = {"path": rel, "machine": header["machine"], "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "hash": segment["hash"], "seen_at": now_iso()}
    original = conn.execute("SELECT path FROM sync_segments WHERE hash = ?", (segment["hash"],)).fetchone()
    if original is not None:
        with transaction(conn):
            writes.record_sync_file(conn, {**file_row, "status": "duplicate", "reason": f"same content as {original[0]}"})
        return None
    keys = list(calls)
    for start in range(0, len(keys), IMPORT_BATCH):
        batch = {key: calls[key] for key in keys[start:start + IMPORT_BATCH]}
        with transaction(conn):
            known, _ = writes.stored_ids(conn, list(batch), [])
            segment["changed"] += writes.merge_requests(conn, batch, price)
            writes.fill_empty_columns(conn, {key: batch[key] for key in known})  # a new row has them all already
    with transaction(conn):
        for session in records["session"]:
            facts = {k: v for k, v in session.items() if k != "session_id" and v is not None}
            writes.fill_session(conn, session["session_id"], **facts)
        for tool_call in records["tool_call"]:
            writes.record_tool_call(conn, {k: v for k, v in tool_call.items() if v is not None})
        for run in records["cron_run"]:
            writes.record_cron_run(conn, {k: v for k, v in run.items() if v is not None})
        for job in records["cron_job"]:
            writes.record_cron_job(conn, job, only_fill=True)
        if records["cron_run"]:  # which runs' transcripts are missing, job names learnt since
            writes.refresh_cron_runs(conn, [run["run_id"] for run in records["cron_run"]])
        writes.record_segment(conn, {"hash": segment["hash"], "machine": header["machine"], "user": header["user"],
                                     "path": rel, "calls": len(calls), "created_at": str(header.get("created_at"))[:40],
                                     "imported_at": now_iso()})
        writes.record_sync_file(conn, {**file_row, "status": "imported",
                                       "reason": f"{segment['invalid']} invalid records left out"
                                       if segment["invalid"] else None})
    return len(calls)


# ------------------------------------------------------------------ status --------


def status(conn, cfg: dict) -> dict | None:
    """For `costhook doctor`: the folder, its machines with their newest segment (from the
    names: no file is read), this machine's calls waiting for the next export, and the
    files the last sync skipped, with why."""
    found = settings(cfg)
    if found is None:
        return None
    folder = found["folder"]
    out = {"folder": folder, "machine": found["machine"], "user": found["user"], "problem": None, "machines": [],
           "skipped": [], "duplicates": 0, "waiting": 0}
    if not os.path.isdir(folder):
        out["problem"] = "does not exist"
        return out
    out["problem"] = paths.insecurity(folder, kind="sync folder")
    try:
        entries = sorted(os.listdir(folder))
    except OSError as exc:
        out["problem"] = f"cannot read it ({exc.strerror})"
        entries = []
    for machine in entries:
        where = os.path.join(folder, machine)
        if machine.startswith(".") or unsafe_entry(where, folder=True):
            continue
        try:
            names = os.listdir(where)
        except OSError:
            continue  # the next sync says why
        stamps = sorted(m.group(1) for m in map(SEGMENT_NAME.match, names) if m)
        last = stamps[-1] if stamps else None
        out["machines"].append({"machine": machine, "segments": len(stamps), "this": machine == found["machine"],
                                "last": stamp_iso(last) if last else None,
                                "last_ts": calendar.timegm(time.strptime(last, "%Y%m%dT%H%M%SZ")) if last else None})
    if conn is None:  # no database yet: nothing synced
        return out
    out["waiting"] = conn.execute(f"""SELECT count(*) FROM requests r
        LEFT JOIN sync_exports e ON e.kind = 'call' AND e.id = r.key
        WHERE r.origin_machine IS NULL AND (e.version IS NULL OR e.version != {CALL_VERSION})""").fetchone()[0]
    out["skipped"] = [dict(r) for r in conn.execute(
        "SELECT path, reason FROM sync_files WHERE status = 'skipped' ORDER BY path")]
    out["duplicates"] = conn.execute("SELECT count(*) FROM sync_files WHERE status = 'duplicate'").fetchone()[0]
    return out


def stamp_iso(stamp: str) -> str:
    """`20261206T150102Z` → `2026-12-06T15:01:02Z`."""
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
