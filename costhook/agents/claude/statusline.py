"""`costhook statusline`: Claude Code's statusLine JSON on stdin → one line on stdout.

    $0.45 session · 32K tok · daily $8.12/$10.00 · 5h 42% · 7d 12%

- session cost and tokens: this session's recorded calls (sub-agents included: they
  share the session id), exact from costhook's database; `+N unpriced` counts calls
  without a price. With no recorded call (or no usable database) the line shows Claude
  Code's own estimate from the payload instead, marked with `~` (`~$0.32 session`).
- budget: the most constraining configured budget that applies to this session (the
  highest spent/limit), as `<period>[ <target>] <spent>/<limit>`; a spent blocking
  budget reads `daily BLOCKED $10.02/$10.00`.
- rate limits: the subscription's 5-hour / 7-day windows (and a gateway spend limit)
  when the payload carries `rate_limits`; the reset time is added once a window is 80 %
  used (`5h 91% ↻14:30`).

Claude Code runs this on every conversation update, so like `costhook hook` it is
dispatched before click, imports only the standard library and costhook's stdlib-only
modules, opens the database read-only (never creating or migrating it) and never fails:
on any error it prints the best line it still can (or nothing), exits 0 and logs one
line to `$COSTHOOK_HOME/errors.log`. ANSI colour unless `NO_COLOR` is set or `--plain`.
"""

import os
import sys

from costhook import paths
from costhook.text import tokens_short, usd
from costhook.usage import NANO

SEP = " · "
LIMIT_WARN = 80  # rate-limit percentage from which it turns yellow and shows its reset
LIMIT_HIGH = 95
BUSY_TIMEOUT_S = 0.25
TOKEN_SUM = " + ".join(
    f"coalesce({c}, 0)"
    for c in ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")
)
USAGE = """Usage: costhook statusline [--plain] [--db PATH]

  Claude Code's statusLine command: reads its JSON on stdin and prints one line
  (session cost and tokens, the tightest budget, subscription rate limits).
  Set it up with `costhook install --statusline`. NO_COLOR or --plain: no colour.
"""

DIM, YELLOW, RED, BOLD_RED, RESET = "\x1b[2m", "\x1b[33m", "\x1b[31m", "\x1b[1;31m", "\x1b[0m"


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        sys.stdout.write(USAGE)
        return 0
    style = Style(color=not ("--plain" in argv or os.environ.get("NO_COLOR")))
    payload = None
    try:
        if sys.stdin is None or sys.stdin.isatty():
            sys.stderr.write(USAGE)
            return 0
        from costhook.agents.runtime import read_payload

        payload = read_payload(sys.stdin.buffer)
        line = render(payload, style, db=option(argv, "--db"))
    except Exception as exc:  # fail-open: print what we still can
        log_error("", exc)
        try:
            line = fallback_line(payload, style) if isinstance(payload, dict) else ""
        except Exception:
            line = ""
    write(line)
    return 0


def option(argv: list[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def write(line: str) -> None:
    if not line:
        return
    try:
        sys.stdout.buffer.write(line.encode("utf-8", "replace") + b"\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # Claude Code went away; nothing to say to anyone


# ------------------------------------------------------------------- rendering ----


class Style:
    def __init__(self, color: bool):
        self.color = color

    def __call__(self, text: str, code: str | None) -> str:
        return f"{code}{text}{RESET}" if self.color and code else text

    def join(self, parts: list) -> str:
        return self(SEP, DIM).join(p for p in parts if p)


def render(payload: dict, style: Style, db: str | None = None) -> str:
    session_id = text(payload.get("session_id"))
    parts = []
    conn = None
    try:
        conn = open_readonly(paths.db_file(db))
    except Exception as exc:
        log_error("db", exc)
    try:
        usage = None
        if conn is not None and session_id:
            try:
                usage = session_usage(conn, session_id)
            except Exception as exc:
                log_error("db", exc)
        if usage and usage["calls"]:
            cost = style(usd(usage["cost"]) + " session", None)
            if usage["unpriced"]:
                cost += " " + style(f"+{usage['unpriced']} unpriced", YELLOW)
            parts += [cost, f"{tokens_short(usage['tokens'])} tok"]
        else:
            parts.append(estimate(payload, style))
        if conn is not None:
            parts.append(budget_part(conn, payload, session_id, style))
    finally:
        if conn is not None:
            conn.close()
    parts += rate_limit_parts(payload.get("rate_limits"), style)
    return style.join(parts)


def fallback_line(payload: dict, style: Style) -> str:
    return style.join([estimate(payload, style), *rate_limit_parts(payload.get("rate_limits"), style)])


def estimate(payload: dict, style: Style) -> str | None:
    """Claude Code's own running estimate of the session's cost, marked `~`."""
    cost = payload.get("cost")
    value = cost.get("total_cost_usd") if isinstance(cost, dict) else None
    if not is_number(value) or not 0 <= value < 1e9:  # as a transcript's cost-state: beyond, no session's cost
        return None  # (and 1e308 × NANO is infinity, which would blank the whole line)
    return style("~" + usd(round(value * NANO)) + " session", DIM)


def budget_part(conn, payload: dict, session_id: str | None, style: Style) -> str | None:
    cfg = user_config()
    if cfg is None:
        return style("config error", YELLOW)
    if not cfg.get("budgets"):
        return None
    try:
        from costhook import budgets, timeframe

        model = payload.get("model")
        ctx = budgets.session_context(conn, session_id, project=text(payload.get("cwd")) or workspace_dir(payload),
                                      cli="claude")
        ctx.model = ctx.model or text(model.get("id") if isinstance(model, dict) else model)
        verdict = budgets.check(conn, cfg["budgets"], ctx, tz=timeframe.local_zone(cfg.get("timezone")), record=False)
    except Exception as exc:
        log_error("budget", exc)
        return style("budget ?", YELLOW)
    if verdict.block is not None:
        status = verdict.block
    elif verdict.statuses:
        status = max(verdict.statuses, key=lambda s: s.fraction)
    else:
        return None
    return budget_text(status, style)


def budget_text(status, style: Style) -> str:
    """`daily $8.12/$10.00`, `monthly acme-api 1.2M/2M tok`, `daily BLOCKED $10.02/$10.00`."""
    budget = status.budget
    kind, _, target = budget["scope"].partition(":")
    label = budget["period"]
    if target:
        label += " " + ((os.path.basename(target.rstrip("/")) or target) if kind == "project" else target)
    if status.in_tokens:
        amounts = f"{tokens_short(status.spent)}/{tokens_short(status.limit)} tok"
    else:
        amounts = f"{usd(status.spent)}/{usd(status.limit)}"
    if status.blocking:
        return style(f"{label} BLOCKED {amounts}", BOLD_RED)
    warn_at = min(budget.get("warn_at") or [0.8])
    code = RED if status.fraction >= 1 else YELLOW if status.fraction >= warn_at else None
    return style(f"{label} {amounts}", code)


def rate_limit_parts(limits, style: Style) -> list:
    """`5h 42%`, `7d 12%`, `spend $40.00/$100.00`; the reset time once a window is 80 % used."""
    if not isinstance(limits, dict):
        return []
    parts = []
    for key, label in (("five_hour", "5h"), ("seven_day", "7d"), ("spend_limit", "spend")):
        try:
            part = rate_limit(limits.get(key), label, key == "seven_day", style)
        except Exception:
            part = None
        if part:
            parts.append(part)
    return parts


def rate_limit(value, label: str, weekly: bool, style: Style) -> str | None:
    resets_at = None
    amounts = None
    if isinstance(value, dict):
        used, limit = value.get("used_usd"), value.get("limit_usd")
        if is_number(used) and is_number(limit) and limit > 0:
            amounts = f"{usd(round(used * NANO))}/{usd(round(limit * NANO))}"
        resets_at = value.get("resets_at")
        value = first_number(value, ("used_percentage", "utilization", "percentage", "used"))
        if value is None and amounts is not None:
            value = used * 100 / limit
    if not is_number(value):
        return None
    percent = int(value) if value < 100 else int(round(value))  # 99.6 % is not yet 100 %
    shown = f"{label} {amounts or f'{percent}%'}"
    if percent >= LIMIT_WARN:
        when = reset_time(resets_at, weekly)
        if when:
            shown += f" ↻{when}"
    return style(shown, RED if percent >= LIMIT_HIGH else YELLOW if percent >= LIMIT_WARN else None)


def reset_time(value, weekly: bool) -> str | None:
    """Local `14:30` (or `Thu 14:30` for the weekly window) from epoch seconds/ms or ISO."""
    import time

    if is_number(value):
        seconds = value / 1000 if value > 1e11 else value
    elif isinstance(value, str) and value:
        from datetime import datetime

        seconds = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    else:
        return None
    return time.strftime("%a %H:%M" if weekly else "%H:%M", time.localtime(seconds))


# ------------------------------------------------------------------- data ---------


def open_readonly(path):
    """A read-only connection, or None when nothing was ever recorded. Never creates the
    file and never migrates it: the hook owns the schema."""
    if not os.path.isfile(path):
        return None
    problem = paths.insecurity(path, kind="database")
    if problem:
        raise PermissionError(problem)
    try:  # the C module alone: the `sqlite3` package adds datetime and its adapters (~3 ms)
        from _sqlite3 import connect
    except ImportError:
        from sqlite3 import connect
    location = os.path.abspath(path).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    conn = connect(f"file:{location}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only = 1")
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:  # created, never migrated
            conn.close()
            return None
    except BaseException:
        conn.close()
        raise
    return conn


def session_usage(conn, session_id: str) -> dict:
    """Calls, exact cost (nano-USD), unpriced calls and tokens of the session and its sub-agents."""
    row = conn.execute(
        f"""SELECT count(*), coalesce(sum(cost_nanousd), 0), coalesce(sum(cost_nanousd IS NULL), 0),
                   coalesce(sum({TOKEN_SUM}), 0)
            FROM requests WHERE session_id = ?""",
        (session_id,),
    ).fetchone()
    return {"calls": row[0], "cost": row[1], "unpriced": row[2], "tokens": row[3]}


def user_config() -> dict | None:
    """The validated config ({} without a file), or None when it is broken (logged)."""
    if not paths.config_named() and not os.path.exists(paths.config_file()):
        return {}
    from costhook.config import load as config

    try:
        return config.load()
    except ValueError as exc:  # ConfigError
        if not getattr(exc, "known", False):  # logged when it was found
            log_error("config", exc)
        return None


# ------------------------------------------------------------------- helpers ------


def text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def workspace_dir(payload: dict) -> str | None:
    workspace = payload.get("workspace")
    return text(workspace.get("current_dir")) if isinstance(workspace, dict) else None


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")


def first_number(data: dict, keys) -> float | None:
    for key in keys:
        if is_number(data.get(key)):
            return data[key]
    return None


_logged = set()


def log_error(where: str, exc: BaseException) -> None:
    """One line in the hook's errors log, not repeated when the log already ends with it
    (the statusline reruns every few hundred ms; a lasting problem stays one line)."""
    event = f"statusline {where}".strip()
    try:
        message = str(exc).replace("\n", " ")[:300]
        tail = f" hook {event}: {type(exc).__name__}: {message}\n".encode("utf-8", "replace")
        if tail in _logged:
            return
        _logged.add(tail)
        try:
            with open(paths.errors_log_file(), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - len(tail) - 64))
                if f.read().endswith(tail):
                    return
        except OSError:
            pass
        from costhook.agents.runtime import log_error as append

        append(event, exc)
    except Exception:
        pass
