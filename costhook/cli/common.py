"""What the commands share: options declared once, the store and config opened with
errors a user can act on, output as a table or JSON."""

import json
from pathlib import Path

import click

from costhook import errors, paths, timeframe


def db_option(f):
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="COSTHOOK_DB",
        help="Database file (default: $COSTHOOK_HOME/costhook.db).",
    )(f)


def format_option(f):
    return click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
                        help="A table for people, or JSON for programs.")(f)


def tz_option(f):
    return click.option("--tz", "tz_name", help="IANA time zone (default: config `timezone`, else local).")(f)


def now_option(f):
    return click.option("--now", "now_text", metavar="ISO8601", help="Pretend it is this moment (reproducible output).")(f)


def view_options(f):
    """--format, --tz, --now and --db: what every analytics view takes."""
    return db_option(now_option(tz_option(format_option(f))))


def period_option(default="7d", help=None):
    return click.option("--period", "period_name", default=default, show_default=True, help=help or timeframe.PERIOD_HELP)


def days_option(f):
    return click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650),
                        help="How many days back to look.")(f)


def cli_option(f):
    """--cli NAME: only the calls of one agent CLI (not the sub-agent type: that is `agent`)."""
    from costhook.usage import AGENT_CLIS

    return click.option("--cli", type=click.Choice(AGENT_CLIS),
                        help="Only the calls of this agent CLI (" + ", ".join(AGENT_CLIS) + ").")(f)


def session_option(f):
    return click.option("--session", "session_id", help="One session instead of a period.")(f)


def open_store(db_path, *, create: bool = False, empty_ok: bool = True):
    """The database for a command. Only writers (`create=True`: import) make it. A read-only
    command finds nothing to read at the default location (`empty_ok`: an empty database in
    memory, so it prints its empty report), while a named one (--db, COSTHOOK_DB) that does
    not exist is a mistake: exit 1, nothing created."""
    from costhook.store import db

    try:
        return db.connect(db_path, create=create)
    except errors.NoDatabase as exc:
        if empty_ok and not paths.db_named(db_path):
            return db.empty()
        raise NoStore(f"{exc}. {NO_DATABASE_ADVICE}")
    except errors.StoreError as exc:
        raise store_error(exc) from exc


def store_error(exc: errors.StoreError, *, midway: bool = False) -> click.ClickException:
    """What a command says when the database cannot be used: why, and what to do. `midway`:
    it failed during the command, which may have committed some of its work already."""
    advice = WRONG_PATH_ADVICE if getattr(exc, "wrong_path", False) else KEEP_ADVICE if midway else STORE_ADVICE
    return click.ClickException(f"{exc}. {advice}")


class NoStore(click.ClickException):
    """No database file where a read-only command looks (exit 1, nothing created)."""


NO_DATABASE_ADVICE = (
    "costhook created nothing. Check --db / COSTHOOK_DB (default: $COSTHOOK_HOME/costhook.db); "
    "the database is made by `costhook import` or by the hooks (`costhook install`)."
)
WRONG_PATH_ADVICE = (
    "costhook changed nothing. Point --db or COSTHOOK_DB at the database file "
    "(default: $COSTHOOK_HOME/costhook.db, with COSTHOOK_HOME a folder)."
)
# Never "move it aside and re-import": the database holds what only the hooks saw (gate
# decisions, tool timings, OpenClaw events) and calls from transcripts the agent has since
# deleted; an import rebuilds only what transcripts still hold.
KEEP_ADVICE = (
    "Keep the database file: it may hold calls no transcript has any "
    "more, so do not delete it or start over with `costhook import`. If it is read-only, make it "
    "and its folder writable; if it may be damaged, first copy it (with its -wal and -shm files) "
    "somewhere safe, then run `costhook doctor`."
)
STORE_ADVICE = "costhook changed nothing. " + KEEP_ADVICE


def load_config() -> dict:
    from costhook.config import load as config

    try:
        return config.load()
    except errors.ConfigError as exc:
        raise click.ClickException(str(exc))


def price_table(cfg: dict):
    from costhook.pricing import prices

    try:
        return prices.load_table(cfg.get("prices"))
    except ValueError as exc:
        raise click.ClickException(f"{paths.config_path()}: {exc}")


def session(conn, text: str | None, hint: str = "--session") -> str | None:
    """A session id or a unique prefix of one (as tables show them) → the id."""
    if not text:
        return text
    from costhook.views import report

    try:
        return report.resolve_session(conn, text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint)


def bad_option(exc) -> click.UsageError:
    """A report_fast.BadOption as click's error (same message, same exit code)."""
    return click.BadParameter(exc.message, param_hint=exc.option) if exc.option else click.UsageError(exc.message)


def zone(name):
    from costhook.cli import report_fast

    try:
        return report_fast.zone(name)
    except report_fast.BadOption as exc:
        raise bad_option(exc)


def setup(tz_name, now_text):
    """(config, zone, now) for a view, from its --tz and --now."""
    cfg = load_config()
    tz = zone(tz_name or cfg.get("timezone"))
    try:
        now = timeframe.parse_now(now_text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--now")
    return cfg, tz, now


def period(name, now, tz):
    try:
        return timeframe.period(name, now, tz)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--period")


def emit(fmt, data, render):
    """Print `data` as JSON, or as `render(data)` for a person. JSON is ASCII (as `report`'s
    and `budget`'s): json escapes only C0 controls by itself, and a name's C1 controls, bidi
    overrides or invisible characters would reach the terminal it is printed on."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(render(data))
