"""Where costhook keeps its files, and how it creates them privately.

The hook and the statusline run on the agent's critical path and use the string API
(`*_file`, `home_dir`): `pathlib` alone costs them ~10 ms of imports. The `Path` API
(`home`, `db_path`, `config_path`, `errors_log`) is the same thing for the CLI.
"""

import os
import stat


def home_dir() -> str:
    """`$COSTHOOK_HOME`, else `$XDG_DATA_HOME/costhook`, else `~/.local/share/costhook`."""
    explicit = os.environ.get("COSTHOOK_HOME")
    if explicit:
        return os.path.expanduser(explicit)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "costhook")


def db_file(override: str | os.PathLike | None = None) -> str:
    """`--db`, else `$COSTHOOK_DB`, else `<home>/costhook.db`."""
    if override:
        return os.path.expanduser(os.fspath(override))
    explicit = os.environ.get("COSTHOOK_DB")
    if explicit:
        return os.path.expanduser(explicit)
    return os.path.join(home_dir(), "costhook.db")


def db_named(override=None) -> bool:
    """Whether the database file was named (`--db` or `$COSTHOOK_DB`), not the default."""
    return bool(override or os.environ.get("COSTHOOK_DB"))


def config_file() -> str:
    """`$COSTHOOK_CONFIG`, else `$XDG_CONFIG_HOME/costhook/config.toml` (default `~/.config`)."""
    explicit = os.environ.get("COSTHOOK_CONFIG")
    if explicit:
        return os.path.expanduser(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "costhook", "config.toml")


def config_named() -> bool:
    """Whether `$COSTHOOK_CONFIG` names the config file (then it must exist)."""
    return bool(os.environ.get("COSTHOOK_CONFIG"))


def errors_log_file() -> str:
    return os.path.join(home_dir(), "errors.log")


def prices_file() -> str:
    """The price table `costhook prices update` rebuilt from the installed genai-prices."""
    return os.path.join(home_dir(), "prices.json")


def dashboard_stamp_file() -> str:
    """Its modification time is the time of the dashboard's last refresh."""
    return os.path.join(home_dir(), "dashboard.stamp")


def sync_stamp_file() -> str:
    """Its modification time is the time of the last team sync started after a session."""
    return os.path.join(home_dir(), "sync.stamp")


def gate_dir() -> str:
    """What the shell gate reads (agents/gate.sh, agents/clearance.py): the clearance and its tickets."""
    return os.path.join(home_dir(), "gate")


def clearance_file() -> str:
    return os.path.join(gate_dir(), "clearance")


def drop_clearance() -> None:
    """After a write that may move spend: the shell gate must ask Python again until a
    new clearance is computed from what is stored now."""
    try:
        os.unlink(clearance_file())
    except FileNotFoundError:
        pass
    except OSError as exc:
        log_error("clearance", exc)


ERRORS_LOG_MAX = 1 << 20  # errors.log is rotated to errors.log.1 past this size


def log_error(where: str, exc: BaseException) -> None:
    """One line in errors.log (`<time> <where>: <type>: <message>`), never a payload's
    content; rotated at ERRORS_LOG_MAX. Never raises: whoever logs must go on."""
    import time

    try:
        log = errors_log_file()
        if insecurity(log, kind="error log"):
            return  # a folder others can write to gets nothing from us
        ensure_private_dir(os.path.dirname(log))
        try:
            if os.stat(log).st_size > ERRORS_LOG_MAX:
                os.replace(log, log + ".1")
        except FileNotFoundError:
            pass
        message = str(exc).replace("\n", " ")[:300]
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {where}: {type(exc).__name__}: {message}\n"
        # O_NONBLOCK: a FIFO there would block the open (the hook, a gate) until someone
        # reads it; non-blocking it fails at once, or opens and is refused as not a file.
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except Exception:
        pass  # nowhere left to report


def home():
    from pathlib import Path

    return Path(home_dir())


def db_path(override=None):
    from pathlib import Path

    return Path(db_file(override))


def config_path():
    from pathlib import Path

    return Path(config_file())


def errors_log():
    from pathlib import Path

    return Path(errors_log_file())


def insecurity(path, *, kind: str) -> str | None:
    """Why costhook must not trust `path` (a folder, or a file and its folder), or None.

    As ssh does: it, and each folder above it, must belong to this user (or root) and be
    writable by nobody else — except a folder with the sticky bit (like /tmp), where
    others cannot replace what is ours. A file must not be a symlink (whose target
    someone else may choose). Otherwise another local user could plant a database that
    receives our rows, point it at another SQLite file, or write a config (or its cache)
    that switches a spent blocking budget off."""
    uid = os.getuid()
    path = os.path.abspath(os.fspath(path))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError:
        return None  # unreachable (a file where a folder should be, ...): opening it fails, saying why
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            return f"{kind} {path} is a symlink; costhook does not follow it (replace it with the file itself)"
        problem = _foreign(path, st, uid)
        if problem:
            return f"{kind} {path} {problem}"
    folder = path if st is not None and stat.S_ISDIR(st.st_mode) else os.path.dirname(path)
    own = folder  # the folder holding it: nobody else may even add a name there
    while True:
        try:
            st = os.stat(folder)
        except OSError:
            st = None  # not there yet: it will be made private
        if st is not None:
            problem = _foreign(folder, st, uid, sticky_ok=folder != own)
            if problem:
                return f"{kind} {path}: its folder {folder} {problem}"
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _foreign(path: str, st, uid: int, sticky_ok: bool = False) -> str | None:
    if st.st_uid not in (uid, 0):
        return f"belongs to another user (uid {st.st_uid}); costhook refuses it"
    if st.st_mode & 0o022 and not (sticky_ok and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
        return f"is writable by others; make it private (chmod go-w {path})"
    return None


def ensure_private_dir(path):
    """Create `path` (and missing parents) as 0700; tighten what we just made.

    Not os.makedirs(mode=0o700): it gives that mode to the last folder only, and a home
    made as a parent (of `gate`, of `openclaw-plugin`) was left open to every user's listing."""
    missing, folder = [], os.path.abspath(os.fspath(path))
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # made meanwhile by another process (a file there fails the next mkdir)
        os.chmod(folder, 0o700)  # (mkdir's mode is filtered by the umask)
    return path


def touch_private(path):
    """Create `path` as 0600 if it does not exist (never following a symlink)."""
    ensure_private_dir(os.path.dirname(os.fspath(path)) or ".")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    return path


# -- files from outside: regular, bounded ------------------------------------------

READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket: nothing costhook reads."""


def open_regular(path):
    """`path` opened for binary reading, only if it is a regular file (symlinks followed).

    Files named by an agent, a payload or a folder we scan may be anything: a FIFO would
    block open() and read() for ever, /dev/zero never ends. So: open non-blocking (a FIFO
    opens at once), fstat the descriptor, and refuse anything but a regular file (a
    directory raises IsADirectoryError, the rest NotRegularFile; both are OSError).
    O_NONBLOCK changes nothing for a regular file. Callers still bound what they read."""
    fd = os.open(path, READ_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = IsADirectoryError if stat.S_ISDIR(mode) else NotRegularFile
            raise kind(f"{os.fspath(path)}: not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, limit: int) -> bytes:
    """At most `limit` bytes from the start of the regular file `path` (open_regular)."""
    with open_regular(path) as f:
        return f.read(limit)


def enable_site() -> None:
    """Put the install's site-packages on the path, for the rare moment a hook needs a
    package from there (pydantic, to validate a changed config). A hook command starts
    Python without `site` (agents/settings.hook_launcher: it would cost every hook ~2.5 ms,
    and more in an editable install), so this does what startup skipped; otherwise nothing."""
    import sys

    if sys.flags.no_site and "site" not in sys.modules:
        import site

        site.main()
