"""Where the team ledger is and who this machine is in it: `[team]` in the config and
`COSTHOOK_TEAM_URL`, the connection (psycopg 3), and what a project is called once it
leaves the machine. Imported by `costhook sync` and the team views, never by a hook.

The password is libpq's business (PGPASSWORD, ~/.pgpass, a service file): costhook never
reads, stores, logs or passes it as an argument, and shows the server without it.
"""

import getpass
import os
import re
import socket
from urllib.parse import urlsplit, urlunsplit

from costhook.errors import TeamError

CONNECT_TIMEOUT_S = 5


def settings(cfg: dict) -> dict | None:
    """{url, user, machine, project_name, min_interval_seconds} or None when no team
    server is configured."""
    team = dict(cfg.get("team") or {})
    url = os.environ.get("COSTHOOK_TEAM_URL") or team.get("url")
    if not url:
        return None
    try:
        user = team.get("user") or getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {
        "url": url,
        "user": user,
        "machine": team.get("machine") or socket.gethostname() or "unknown",
        "project_name": team.get("project_name", "git-remote"),
        "min_interval_seconds": float(team.get("min_interval_seconds", 60)),
    }


def shown(url: str) -> str:
    """The server as shown and stored: any password in the URL replaced by ***."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            parts = urlsplit(url)
        except ValueError:  # an unclosed `[` of an IPv6 host: shown while saying libpq refused it
            return re.sub(r"^([a-z]+://[^:/@]*):[^@]*@", r"\1:***@", url)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
        return url
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", url)


def connect(url: str):
    """A psycopg connection (autocommit; transactions are explicit), or TeamError with
    libpq's first line: unreachable, refused, wrong password."""
    import psycopg

    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name="costhook")
    except psycopg.Error as exc:
        # libpq quotes a URI it cannot parse whole, password included: shown without it
        raise TeamError(f"cannot reach the team server {shown(url)}: {first_line(exc).replace(url, shown(url))}") from None
    # JIT compiling costhook's short upserts and rollup sums costs seconds and saves nothing
    conn.execute("SET jit = off")
    return conn


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    for prefix in ("connection failed: ",):
        text = text.removeprefix(prefix)
    return text


# ------------------------------------------------------------ project names ----

_REMOTE = re.compile(r'^\s*\[remote "origin"\]\s*$')
_URL = re.compile(r"^\s*url\s*=\s*(.+?)\s*$")


def project_namer(rule: str):
    """project path -> the name the team sees, by `rule`: "git-remote" (the origin remote,
    normalised: host/owner/repo, no credentials; else the folder's name), "basename" or
    "path". Cached per path."""
    cache = {}

    def name(path: str | None) -> str | None:
        if not path:
            return path
        if path not in cache:
            if rule == "path":
                cache[path] = path
            else:
                remote = git_remote(path) if rule == "git-remote" else None
                cache[path] = remote or os.path.basename(path.rstrip("/")) or path
        return cache[path]

    return name


def git_remote(path: str) -> str | None:
    """The normalised origin URL of the git repository holding `path`, or None."""
    folder = path
    for _ in range(64):
        config = os.path.join(folder, ".git", "config")
        if os.path.isfile(config):
            return normalise_remote(origin_url(config))
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return None


def origin_url(config: str) -> str | None:
    try:
        with open(config, encoding="utf-8", errors="replace") as f:
            lines = f.read(1 << 16).splitlines()
    except OSError:
        return None
    inside = False
    for line in lines:
        if line.lstrip().startswith("["):
            inside = bool(_REMOTE.match(line))
        elif inside:
            found = _URL.match(line)
            if found:
                return found.group(1).strip('"')
    return None


def normalise_remote(url: str | None) -> str | None:
    """git@github.com:acme/api.git, https://user:token@github.com/acme/api → github.com/acme/api."""
    if not url:
        return None
    if "://" in url:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:  # `https://[oops/repo` in a .git/config: no remote, the folder's name then
            return None
        rest = parts.path
    else:
        match = re.match(r"^(?:[^@/]+@)?([^:/]+):(.*)$", url)
        if not match:
            return None
        host, rest = match.group(1).lower(), "/" + match.group(2)
    rest = rest.strip("/").removesuffix(".git")
    if not host or not rest:
        return None
    return f"{host}/{rest}"
