"""`costhook report` without click: its options, its work and its output.

A report is the command users wait for, and click's import alone costs more than the
report's work. So __main__ gives `costhook report …` to `fast()` before click is imported.
`fast()` understands only well-formed command lines and hands everything else (help, an
unknown option, an odd or bad value, any error) to the click command in cli.py, which is
built from the same OPTIONS and prints the same `output()`: click still writes every help
text and error message, and its exit codes.
"""

import os
import sys

from costhook import timeframe
from costhook.text import csv_cell, md_text, money, no_spend, term_text
from costhook.usage import AGENT_CLIS
from costhook.views import report


class Option:
    """One option of `costhook report`: how click declares it, what `parse` accepts."""

    def __init__(self, flag: str, name: str, help: str | None = None, *, choices: tuple = (), default=None,
                 kind: str = "text"):
        self.flag, self.name, self.help = flag, name, help
        self.choices, self.default = choices, default
        self.kind = "choice" if choices else kind  # "text", "choice", "date" (YYYY-MM-DD) or "db" (cli.db_option)

    def convert(self, value: str):
        """The value click would pass on, or None if click must judge it."""
        if not value or value.startswith("-"):
            return None
        if self.kind == "choice":
            return value if value in self.choices else None
        if self.kind == "date":  # click.DateTime(["%Y-%m-%d"]) gives a datetime
            from datetime import datetime

            digits = value[:4] + value[5:7] + value[8:]
            if len(value) != 10 or value[4] + value[7] != "--" or not (digits.isascii() and digits.isdigit()):
                return None
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                return None
        return value


TEAM_FLAG = "--team"  # the whole team's calls, from the team server (docs/team.md)

OPTIONS = (
    Option("--by", "by", "What each row is: a time period, a project, session, model, tool, sub-agent type (agent), "
           "skill, cron, agent CLI (cli), one call, or the machine or user that recorded it (sync).",
           choices=report.GROUPS, default="day"),
    Option("--since", "since", "First day (inclusive, in --tz).", kind="date"),
    Option("--until", "until", "Last day (inclusive, in --tz).", kind="date"),
    Option("--period", "period_name", "A named period, as the views take it: " + timeframe.PERIOD_HELP),
    Option("--tz", "tz_name", "IANA time zone for days/weeks/months (default: config `timezone`, else local)."),
    Option("--session", "session_id", "Only this session."),
    Option("--project", "project", "Only this project (its path)."),
    Option("--cli", "cli", "Only the calls of this agent CLI.", choices=AGENT_CLIS),
    Option("--format", "fmt", "A table, JSON (design.md §7), CSV or a markdown table.",
           choices=("table", "json", "csv", "markdown"), default="table"),
    Option("--db", "db_path", kind="db"),
)


def parse(argv: list[str]) -> dict | None:
    """The options of a plain `costhook report` command line (`--flag value` or
    `--flag=value`, each at most once), as the click command receives them; None for
    anything else."""
    options = {option.flag: option for option in OPTIONS}
    values = {option.name: option.default for option in OPTIONS}
    values["team"] = False
    args = iter(argv)
    for arg in args:
        if arg == TEAM_FLAG and not values["team"]:
            values["team"] = True
            continue
        flag, equals, value = arg.partition("=")
        option = options.pop(flag, None)  # popped: a repeated flag is click's to handle
        if option is None:
            return None
        value = option.convert(value if equals else next(args, ""))
        if value is None:
            return None
        values[option.name] = value
    return values


class BadOption(Exception):
    """A wrong option value or combination; `option` names it (None: the usage is wrong)."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.message, self.option = message, option


class Failure(Exception):
    """The report cannot be made (no team server configured, or it failed): status 1."""


def window(options: dict, tz) -> tuple:
    """The report's window (--since/--until or --period, in `tz`) and its label."""
    since, until = options["since"], options["until"]
    if since and until and since > until:
        raise BadOption("--since is after --until", "--since")
    win = timeframe.dates_window(since.date() if since else None, until.date() if until else None, tz)
    label = " ".join(f"{word} {day:%Y-%m-%d}" for word, day in (("from", since), ("to", until)) if day) or "all time"
    if options.get("period_name"):
        if since or until:
            raise BadOption("give --period, or --since/--until, not both", "--period")
        try:
            chosen = timeframe.period(options["period_name"], timeframe.parse_now(None), tz)
        except ValueError as exc:
            raise BadOption(str(exc), "--period")
        win, label = chosen.window(), chosen.label
    return win, label


def output(options: dict, *, load_config, open_store, price_table) -> str:
    """Everything `costhook report` prints, for `options` as `parse` or click gives them.
    The loaders are the caller's (cli.py's raise click's errors); raises BadOption."""
    by = options["by"]
    cfg = load_config()
    tz = zone(options["tz_name"] or cfg.get("timezone"))
    win, label = window(options, tz)
    filters = {k: v for k, v in (("session_id", options["session_id"]), ("project", options["project"]),
                                 ("agent", options.get("cli"))) if v}
    if by == "message" and not options["session_id"]:
        raise BadOption("--by message lists every API call: give --session ID")
    conn = open_store(options["db_path"])
    if "session_id" in filters:
        try:
            filters["session_id"] = report.resolve_session(conn, filters["session_id"])
        except ValueError as exc:
            raise BadOption(str(exc), "--session")
    data = report.report(conn, by, win=win, tz=tz, filters=filters, table=price_table(cfg) if by == "message" else None)
    fmt = options["fmt"]
    if not data["rows"] and fmt in ("table", "markdown"):
        return no_spend(label, options.get("cli")) + "\n"
    if fmt == "json":
        import json

        return json.dumps(data, indent=2) + "\n"
    if fmt == "csv":
        return _csv(data)
    text = render_table(data, markdown=(fmt == "markdown")) + "\n"
    # unpriced_models reads every call row in the window; the totals of a report that read
    # the rollup (unfiltered, or of one agent CLI) already say whether it would find any.
    if set(filters) - {"agent"} or data["totals"]["unpriced_requests"]:
        unpriced = report.unpriced_models(conn, win, filters)
        if unpriced:
            names = ", ".join(f"{(md_text if fmt == 'markdown' else term_text)(u['model'])} ({u['requests']})"
                              for u in unpriced)
            text += f"\nUnpriced: {names} — not in the cost column; add prices in the config (see `costhook doctor`).\n"
    return text


def team_output(options: dict, *, load_config) -> str:
    """Everything `costhook report --team` prints: the same JSON and tables as `report`,
    from the server's rollup. Raises BadOption, or Failure when the server cannot say."""
    from costhook import errors
    from costhook.team import link
    from costhook.team import report as team

    for name, flag in (("session_id", "--session"), ("project", "--project"), ("cli", "--cli")):
        if options.get(name):
            raise BadOption(f"not with {TEAM_FLAG} (team reports read the server's rollup)", flag)
    if options["by"] not in team.GROUPS:
        raise BadOption(f"--by {options['by']} is not a team grouping; use one of {', '.join(team.GROUPS)}", "--by")
    cfg = load_config()
    tz = zone(options["tz_name"] or cfg.get("timezone"))
    win, label = window(options, tz)
    settings = link.settings(cfg)
    if settings is None:
        raise Failure("no team server configured: set `url` under [team] in the config, "
                      "or COSTHOOK_TEAM_URL (see docs/team.md)")
    try:
        pg = link.connect(settings["url"])
    except errors.TeamError as exc:
        raise Failure(str(exc)) from None
    try:
        data = team.report(pg, options["by"], start=win.start, end=win.end, tz=tz)
    except Exception as exc:
        import psycopg

        if isinstance(exc, psycopg.Error):
            raise Failure(f"team server {link.shown(settings['url'])}: {link.first_line(exc)}") from None
        raise
    finally:
        pg.close()
    return render(data, options["fmt"], label)


def render(data: dict, fmt: str, label: str) -> str:
    """A report's data as `fmt` prints it (the team report's too; `output` adds the
    unpriced models it can name)."""
    if not data["rows"] and fmt in ("table", "markdown"):
        return no_spend(label) + "\n"
    if fmt == "json":
        import json

        return json.dumps(data, indent=2) + "\n"
    if fmt == "csv":
        return _csv(data)
    return render_table(data, markdown=(fmt == "markdown")) + "\n"


def zone(name: str | None):
    """timeframe.local_zone, or BadOption for a name it does not know."""
    try:
        return timeframe.local_zone(name)
    except Exception:
        raise BadOption(f"unknown time zone {name!r}", "--tz") from None


def fast(argv: list[str]) -> int | None:
    """Run `costhook report ARGV` without click and return its exit status; None (having
    printed nothing) when click must run it."""
    options = parse(argv)
    if options is None:
        return None
    from costhook.config import load as config

    try:
        if options.pop("team"):
            text = team_output(options, load_config=config.load)
        else:
            text = output(options, load_config=config.load, open_store=_open_store, price_table=_price_table)
    except Failure as exc:  # as click says it (a ClickException); asking the server again would wait again
        sys.stderr.write(f"Error: {term_text(str(exc))}\n")
        return 1
    except Exception:
        return None  # click runs the command again and says what is wrong
    if not _echoes_as_is(text, sys.stdout):
        return None
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # as click does: status 1, no message (nor one at exit)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def _open_store(db_path):
    """As cli.common.open_store: never creates the database; an empty one in memory when
    there is none at the default location (a missing named one: click says so)."""
    from costhook import errors, paths
    from costhook.store import db

    try:
        return db.connect(db_path, create=False)
    except errors.NoDatabase:
        if paths.db_named(db_path):
            raise
        return db.empty()


def _price_table(cfg: dict):
    from costhook.pricing import prices

    return prices.load_table(cfg.get("prices"))


def _echoes_as_is(text: str, stream) -> bool:
    """Whether click.echo would write `text` to `stream` unchanged: it strips ANSI escape
    codes (here only from names in the data) when `stream` is no terminal, and it re-wraps
    a stream whose encoding is ASCII."""
    if stream is None or "\x1b" in text:
        return False
    import codecs

    return text.isascii() or codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "utf-8"


def _csv(data: dict) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([data["group_by"], *report.MEASURES])
    for row in data["rows"]:
        writer.writerow([csv_cell(row["key"]), *(row[m] for m in report.MEASURES)])
    writer.writerow(["TOTAL", *(data["totals"][m] for m in report.MEASURES)])
    return out.getvalue()


COLUMNS = (
    ("requests", "calls"),
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_write_5m_tokens", "cache w 5m"),
    ("cache_write_1h_tokens", "cache w 1h"),
    ("cache_read_tokens", "cache read"),
    ("total_tokens", "total tok"),
    ("cost_usd", "cost"),
    ("unpriced_requests", "unpriced"),
)


def render_table(data: dict, markdown: bool = False) -> str:
    header = [data["group_by"], *(label for _, label in COLUMNS)]
    text = md_text if markdown else term_text
    body = []
    for row in data["rows"]:
        body.append([text(row.get("name") or row["key"]), *(_cell(name, row[name]) for name, _ in COLUMNS)])
        body += [_sampling_cells(it, text) for it in row.get("iterations") or ()]
    total = ["TOTAL", *(_cell(name, data["totals"][name]) for name, _ in COLUMNS)]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(COLUMNS)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        lines.append("| " + " | ".join(f"**{c}**" for c in total) + " |")
        return "\n".join(lines)
    table = [header, *body, total]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in body), rule, line(total)])


def _sampling_cells(it: dict, text) -> list:
    """A `--by message` sub-row: one sampling the API billed within the call above it
    (its tokens and cost are part of that call's; the totals count the call once)."""
    label = f"  - {text(it['type'])} {text(it['model'])}"
    tokens = sum(it[name] for name in ("input_tokens", "output_tokens", "cache_write_5m_tokens",
                                        "cache_write_1h_tokens", "cache_read_tokens"))
    cells = {"requests": "", "total_tokens": f"{tokens:,}", "unpriced_requests": "",
             "cost_usd": "unpriced" if it["cost_usd"] is None else _cell("cost_usd", it["cost_usd"])}
    return [label, *(cells[name] if name in cells else _cell(name, it[name]) for name, _ in COLUMNS)]


def _cell(name: str, value) -> str:
    if name == "cost_usd":
        return money(value)
    return f"{value:,}"
