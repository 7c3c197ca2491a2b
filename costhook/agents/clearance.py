"""The shell gate's clearance: what agents/gate.sh reads to let a gate go on without Python.

A gate (a prompt, a tool about to run) must answer before the agent goes on; starting an
interpreter is most of what that costs (issue 14). When no budget threshold can be crossed
within the next few calls, the answer is known in advance, so a hook process that has
just recorded calls writes it down here, with the number of gates it covers
(budgets.clearance). The file is four lines — `<tickets> <generation>`, the database, the
config file and the TZ it was computed for — and is removed by every commit that may move
spend (store/db.transaction), so it never outlives the totals it stands on.
"""

import os
import time

from costhook import paths

ABANDONED_S = 60  # a temporary file this old was left by a process that died; old tickets go too


def gate_script(entry: str) -> str | None:
    """The gate script of the install whose entry file is `entry` (`<pkg>/costhook/__main__.py`)."""
    script = os.path.join(os.path.dirname(entry), "agents", "gate.sh")
    return script if os.path.isfile(script) else None


def refresh(conn, cfg: dict, tz=None, config_read_ns: int = 0) -> int:
    """Write a new clearance when there is none, for `cfg` as read at `config_read_ns`
    (`conn()` opens the database, if needed): under the write lock, so no commit can move
    spend between the totals read and the file written (a commit after it removes it).
    Returns the tickets written (0: none written)."""
    if os.path.exists(paths.clearance_file()):
        return 0
    from costhook import budgets

    where = [paths.db_file(), paths.config_file(), os.environ.get("TZ", "")]
    if any("\n" in part or "\r" in part for part in where):
        return 0
    if not cfg.get("budgets"):  # nothing to decide, whatever is stored: no database needed
        tickets = budgets.CLEARANCE_MAX
        write(tickets, where)
    else:
        from costhook.store import db

        conn = conn()
        with db.transaction(conn, spend=False):
            tickets = budgets.clearance(conn, cfg["budgets"], tz=tz)
            if tickets > 0:
                write(tickets, where)
    if tickets > 0 and config_changed_since(where[1], config_read_ns):
        paths.drop_clearance()  # computed from a config edited meanwhile: the shell gate's -nt cannot tell
        return 0
    return tickets


CLOCK_SLACK_NS = 50_000_000  # file times come from a coarser clock (a kernel tick) than time.time_ns()


def config_changed_since(config: str, read_ns: int) -> bool:
    try:
        return os.stat(config).st_mtime_ns >= read_ns - CLOCK_SLACK_NS
    except FileNotFoundError:
        return False


def write(tickets: int, where: list) -> None:
    """The clearance file, atomically (a temporary file renamed over it), 0600 in a 0700
    folder; the ticket files of earlier generations (which no gate reads any more) are
    removed once a minute old."""
    folder = paths.ensure_private_dir(paths.gate_dir())
    generation = os.urandom(8).hex()
    temporary = os.path.join(folder, f"clearance.{generation}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (f"{tickets} {generation}\n" + "".join(part + "\n" for part in where)).encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)
    os.replace(temporary, paths.clearance_file())
    for name in os.listdir(folder):
        if generation in name or not name.startswith(("used.", "clearance.")):
            continue
        path = os.path.join(folder, name)
        try:  # another writer's temporary file is its own until it is clearly abandoned; old tickets can wait too
            if os.lstat(path).st_mtime < time.time() - ABANDONED_S:
                os.unlink(path)
        except OSError:
            pass
