"""The cost dashboard: one markdown note in the user's Obsidian vault.

Every number comes from views/ (the same functions as the CLI views); sections.py turns
them into markdown, one function a section; this module collects, merges and writes. The note has
YAML frontmatter that Obsidian properties and Dataview read, and one marked block per
section (`<!-- costhook:begin NAME -->` … `<!-- costhook:end NAME -->`): on regeneration
only those blocks and costhook's own properties are replaced, so text the user writes
outside the blocks (and properties of their own) survive. The note is written to a
temporary file next to it and renamed over it, under a lock, so a syncing vault never
sees half a note; nothing else in the vault is touched.
"""

import contextlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from costhook import paths, timeframe
from costhook.agents.runtime import dashboard_due
from costhook.dashboard import sections
from costhook.errors import DashboardError
from costhook.pricing import prices
from costhook.store import db
from costhook.views import activity, anomalies, cache, calls, cron, report, rollup, spend
from costhook.views import budgets as views_budgets
from costhook.views import team_local

DEFAULT_NOTE = "costhook/Cost dashboard.md"
SECTIONS = tuple(sections.SECTIONS)
OWNED_PROPERTIES = (
    "costhook_updated", "timezone", "cost_today_usd", "cost_yesterday_usd", "cost_week_usd", "cost_month_usd",
    "cost_last_month_usd", "cost_year_usd", "cost_all_time_usd", "projected_month_usd", "burn_rate_usd_per_hour",
    "budget_status", "budgets_over", "budgets_warning", "anomalies_30d", "cache_hit_ratio_7d", "idle_share_7d",
    "unpriced_requests_month",
)
BEGIN = "<!-- costhook:begin {} -->"
END = "<!-- costhook:end {} -->"


# ----------------------------------------------------------------------- data --------


def collect(conn, cfg: dict, now: datetime, tz, table=None, db_path=None) -> dict:
    """Every section's data. The heavier window scans run on a second connection in
    parallel (SQLite releases the GIL), so the note stays well under a second."""
    table = table or prices.load_table(cfg.get("prices"))
    cli = (cfg.get("dashboard") or {}).get("cli")  # one agent CLI's note (`dashboard --cli`), else every CLI's
    week = timeframe.period("7d", now, tz).only(cli)
    data = {"now": now, "tz": tz, "week": week, "cli": cli}

    def week_pass(c):  # one pass over the week's calls feeds three sections; what-if sums its rollup
        seq = calls.sequence(c, week, now, table)
        return {
            "cache": cache.cache_efficiency(c, week, now, table, seq=seq),
            "idle": activity.idle(c, week, seq["turns"], limit=5),
            "efficiency": activity.efficiency(c, week, seq["turns"], limit=0, projects=False),
            "whatif": cache.whatif(c, week, now, by=("project", "agent", "skill"), table=table),
        }

    path = paths.db_path(db_path)
    # Nothing recorded yet: the CLI reads an empty database in memory, which no second
    # connection can see (and opening `path` would create it).
    in_memory = not conn.execute("PRAGMA database_list").fetchone()[2]
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = None if in_memory else pool.submit(_on_own_connection, path, week_pass)
        data["tools"] = activity.by_tool(conn, week)
        data["summary"] = spend.summary(conn, now, tz, cli)
        data["budgets"] = views_budgets.budget_status(conn, cfg, now, tz)
        data["trends"] = spend.trends(conn, now, tz, 30, cli)
        data["models_by_month"] = spend.models_by_month(conn, now, tz, cli=cli)
        data["anomalies"] = anomalies.anomalies(conn, now, tz, 30, cli)
        data["top"] = {by: spend.top(conn, by, week, 5) for by in ("session", "project", "model", "agent", "skill", "cli")}
        data["trees"] = [activity.tree(conn, s) for s in activity.sessions_with_subagents(conn, week)[:2]]
        data["unpriced"] = rollup.unpriced_models(conn, timeframe.period("month", now, tz).only(cli))
        data["cron"] = _cron_data(conn, now, tz) if cli in (None, "openclaw") else None
        data["team"] = team_local.team_rollup(conn, now, tz) if cli is None else None
        data.update(week_pass(conn) if future is None else future.result())
    # Projects only for the sessions the note names.
    worst = [r for r in data["efficiency"]["sessions"] if r["grade"] == "C"]
    worst = sorted(worst, key=lambda r: -r["cost_usd"])[:5]
    rollup.fill_projects(conn, worst, [r["session_id"] for r in worst])
    data["short_ids"] = report.short_sessions(conn, _shown_sessions(data, worst))
    return data


def _shown_sessions(data: dict, worst: list) -> list:
    """The session ids the note names: each is shown by its shortest unique prefix."""
    ids = [r["key"] for r in data["top"]["session"]["rows"]]
    ids += [x["key"] for x in data["anomalies"]["anomalies"] if x["kind"] == "session"]
    ids += [x["session_id"] for x in data["idle"]["top_idle_sessions"]] + [r["session_id"] for r in worst]

    def walk(node):
        if node.get("kind") == "session":
            ids.append(node.get("id"))
        for child in node.get("children", []):
            walk(child)

    for tree in data["trees"]:
        walk(tree)
    return ids


def _on_own_connection(path, fn):
    conn = db.connect(path)
    try:
        return fn(conn)
    finally:
        conn.close()


def _cron_data(conn, now, tz) -> dict | None:
    """The cron section's data: the 8 costliest cron jobs of the last 30 days and heartbeat
    idle cost; None without cron rows, {"error": …} when reading them fails."""
    has_rows = conn.execute("SELECT 1 FROM requests WHERE cron_job IS NOT NULL LIMIT 1").fetchone() or \
        conn.execute("SELECT 1 FROM cron_runs LIMIT 1").fetchone()
    if not has_rows:
        return None
    since = timeframe.utc_iso(timeframe.period("30d", now, tz).start)
    try:
        return {"jobs": cron.summary(conn, since=since)[:8], "beats": cron.heartbeat_idle(conn, since=since)}
    except Exception as exc:  # the rest of the dashboard must not depend on it
        return {"error": type(exc).__name__}


def frontmatter(data: dict) -> dict:
    s = data["summary"]["periods"]
    states = [b["state"] for b in data["budgets"]]
    status = "none" if not states else ("over" if any(x in ("over", "blocking") for x in states)
                                         else ("warning" if "warning" in states else "ok"))
    return {
        "costhook_updated": data["now"].astimezone(data["tz"]).isoformat(timespec="seconds"),
        "timezone": str(data["tz"]),
        "cost_today_usd": s["today"]["cost_usd"],
        "cost_yesterday_usd": s["yesterday"]["cost_usd"],
        "cost_week_usd": s["week"]["cost_usd"],
        "cost_month_usd": s["month"]["cost_usd"],
        "cost_last_month_usd": s["last_month"]["cost_usd"],
        "cost_year_usd": s["year"]["cost_usd"],
        "cost_all_time_usd": s["all"]["cost_usd"],
        "projected_month_usd": data["summary"]["projection"]["projected_month_usd"],
        "burn_rate_usd_per_hour": data["summary"]["burn_rate"]["today_usd_per_hour"],
        "budget_status": status,
        "budgets_over": sum(1 for x in states if x in ("over", "blocking")),
        "budgets_warning": sum(1 for x in states if x == "warning"),
        "anomalies_30d": len(data["anomalies"]["anomalies"]),
        "cache_hit_ratio_7d": data["cache"]["totals"]["hit_ratio"],
        "idle_share_7d": data["idle"]["idle_share"],
        "unpriced_requests_month": s["month"]["unpriced_requests"],
    }


def _yaml_value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./+:-]+", text) and not re.fullmatch(r"[0-9.:+-]+", text) and text not in ("null", "true", "false"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ----------------------------------------------------------------------- the note ----


def render(conn, cfg: dict, *, now: datetime, tz, table=None, db_path=None, existing: str | None = None) -> str:
    """The whole note: `existing` (the note as it is now) keeps the user's own text."""
    data = collect(conn, cfg, now, tz, table, db_path)
    return merge(existing, frontmatter(data), sections.sections(data))


def merge(existing: str | None, props: dict, blocks: dict) -> str:
    """Put costhook's properties and section blocks into the note, leaving everything else."""
    front_lines, body = _split_frontmatter(existing or "")
    new_note = existing is None or not existing.strip()
    kept = _drop_owned(front_lines)
    owned = [f"{key}: {_yaml_value(value)}" for key, value in props.items()]
    extra = ["tags:", "  - costhook"] if new_note else []
    front = "---\n" + "\n".join(owned + kept + extra) + "\n---\n"
    if new_note:
        body = ("# Cost dashboard\n\n"
                "_Written by costhook (`costhook dashboard` refreshes it). "
                "Text outside the `costhook:begin`/`end` markers is yours and is kept._\n")
    for name in SECTIONS:
        block = f"{BEGIN.format(name)}\n{blocks.get(name, '').strip()}\n{END.format(name)}".replace("\n\n" + END.format(name), "\n" + END.format(name))
        lines = body.split("\n")
        found = marked_blocks(lines)
        if name in found:
            first, last = found[name]
            lines[first:last + 1] = block.split("\n")
            body = "\n".join(lines)
        else:
            body = _insert_after_previous(lines, found, name, block)
    return front + body.rstrip("\n") + "\n"


def marked_blocks(lines: list) -> dict:
    """Section name -> (begin, end) line indexes of its block. A marker counts only as a
    whole line (trailing blanks allowed) and only in a pair: a begin line, then the same
    section's end line with no other marker line between them. The first pair of a name
    wins; any other marker text is the user's and is left alone."""
    markers = {}
    for name in SECTIONS:
        markers[BEGIN.format(name)] = (name, True)
        markers[END.format(name)] = (name, False)
    found, open_at = {}, None
    for index, line in enumerate(lines):
        marker = markers.get(line.rstrip())
        if marker is None:
            continue
        name, begins = marker
        if begins:
            open_at = (name, index)
        elif open_at is not None and open_at[0] == name:
            found.setdefault(name, (open_at[1], index))
            open_at = None
        else:
            open_at = None
    return found


def _insert_after_previous(lines: list, found: dict, name: str, block: str) -> str:
    index = SECTIONS.index(name)
    for previous in reversed(SECTIONS[:index]):
        if previous in found:
            at = found[previous][1] + 1
            lines[at:at] = ["", *block.split("\n")]
            return "\n".join(lines)
    return "\n".join(lines).rstrip("\n") + "\n\n" + block + "\n"


def _split_frontmatter(text: str) -> tuple[list, str]:
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end >= 0:
            after = text.find("\n", end + 4)
            return text[4:end].split("\n"), text[after + 1:] if after >= 0 else ""
    return [], text


def _drop_owned(lines: list) -> list:
    """Frontmatter lines minus costhook's own keys (and their continuation lines)."""
    kept, skipping = [], False
    for line in lines:
        if line and not line[0].isspace() and not line.startswith("-"):
            key = line.split(":", 1)[0].strip()
            skipping = key in OWNED_PROPERTIES
        if not skipping and line.strip():
            kept.append(line)
    return kept


def note_path(vault, note: str | None) -> Path:
    vault = Path(vault).expanduser()
    if not vault.is_dir():
        raise DashboardError(f"vault {vault} is not a directory")
    note = note or DEFAULT_NOTE
    relative = Path(note)
    if relative.is_absolute() or ".." in relative.parts or not note.endswith(".md"):
        raise DashboardError(f"note {note!r} must be a relative path ending in .md inside the vault")
    return vault / relative


def write(conn, cfg: dict, vault, note: str | None = None, *, now: datetime | None = None, tz=None, table=None,
          db_path=None, lock_timeout: float = 30) -> Path:
    """Render and write the note atomically (temporary file + rename) under a file lock."""
    from filelock import FileLock, Timeout

    path = note_path(vault, note)
    now = now or datetime.now(timezone.utc)
    tz = tz or timeframe.local_zone(cfg.get("timezone"))
    paths.ensure_private_dir(paths.home())
    try:
        with FileLock(str(lock_path()), timeout=lock_timeout, mode=0o600):
            _write_locked(conn, cfg, path, now, tz, table, db_path)
    except Timeout:
        raise DashboardError(f"another costhook is writing the dashboard (lock {lock_path()})") from None
    return path


def _write_locked(conn, cfg, path: Path, now, tz, table, db_path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DashboardError(f"cannot write {path}: {exc.strerror or exc}") from None
    # Checked once the folder exists (made now, or by someone else a moment ago): where
    # another user can add names, or at a symlink, the note's old text would be read from a
    # file they chose (and kept in the note as the user's own) and the temporary file could
    # be a link of theirs. A vault that is itself a symlink of the user's is fine.
    problem = paths.insecurity(path, kind="dashboard note")
    if problem:
        raise DashboardError(problem)
    existing, mode = _read_note(path)
    text = render(conn, cfg, now=now, tz=tz, table=table, db_path=db_path, existing=existing)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.costhook-tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # left by a crash of a process with our pid (or planted): never written through
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        with open(fd, "w", encoding="utf-8") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)  # the note keeps its permissions
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise DashboardError(f"cannot write {path}: {exc.strerror or exc}") from None
    touch_stamp()


def _read_note(path: Path) -> tuple[str | None, int | None]:
    """The note's text and permissions, (None, None) when there is none. Only a regular
    file is read (a FIFO there would block the refresh, and its lock, for ever)."""
    try:
        with paths.open_regular(path) as f:
            return f.read().decode("utf-8"), os.fstat(f.fileno()).st_mode & 0o777
    except FileNotFoundError:
        return None, None
    except UnicodeDecodeError:
        raise DashboardError(f"{path} is not UTF-8 text; costhook leaves it as it is") from None
    except OSError as exc:  # a folder, a FIFO, a device (NotRegularFile), unreadable
        raise DashboardError(f"cannot read {path}: {exc.strerror or 'not a regular file'}; costhook writes the note "
                             "only over a regular file") from None


def lock_path() -> Path:
    return paths.home() / "dashboard.lock"


def stamp_path() -> Path:
    return Path(paths.dashboard_stamp_file())


def touch_stamp() -> None:
    """Mark the time of the last refresh: a private file, never followed through a symlink."""
    fd = os.open(stamp_path(), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def refresh(cfg: dict) -> Path | None:
    """The SessionEnd refresh (detached process): write the note unless another process
    is writing it or one was written within the interval."""
    from filelock import FileLock, Timeout

    settings = cfg.get("dashboard") or {}
    if not dashboard_due(settings):
        return None
    paths.ensure_private_dir(paths.home())
    try:
        with FileLock(str(lock_path()), timeout=0, mode=0o600):
            if not dashboard_due(settings):
                return None
            touch_stamp()
            path = note_path(settings["vault"], settings.get("note"))
            conn = db.connect()
            try:
                _write_locked(conn, cfg, path, datetime.now(timezone.utc), timeframe.local_zone(cfg.get("timezone")),
                              prices.load_table(cfg.get("prices")), None)
            finally:
                conn.close()
            return path
    except Timeout:
        return None
