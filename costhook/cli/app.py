"""The `costhook` command line (click). Thin: parse, call, print.

`costhook hook` never comes through here on the hot path (see __main__.py); the
command below exists so `costhook hook --help` and `costhook --help` show it.
"""

import json
import sys
import time
from pathlib import Path

import click

from costhook import errors, paths


def db_option(f):
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="COSTHOOK_DB",
        help="Database file (default: $COSTHOOK_HOME/costhook.db).",
    )(f)


def open_store(db_path):
    from costhook.store import db
    from costhook import errors

    try:
        return db.connect(db_path)
    except errors.StoreError as exc:
        raise click.ClickException(f"{exc}. If the file is damaged, move it aside and run `costhook import`.")


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


class Commands(click.Group):
    """The views (and the analytics they import) are registered only when one of them, or
    the command list, is asked for: `costhook report` and friends start faster without."""

    views_loaded = False

    def _load_views(self):
        if not Commands.views_loaded:
            Commands.views_loaded = True
            _register_views()

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None:
            self._load_views()
            command = super().get_command(ctx, name)
        return command

    def list_commands(self, ctx):
        self._load_views()
        return super().list_commands(ctx)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="costhook", prog_name="costhook")
def cli():
    """Exact cost tracking and budgets for Claude Code and OpenClaw, from their hooks."""


# ------------------------------------------------------------------ hook ----------


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--agent", type=click.Choice(["claude", "openclaw"]), default="claude", show_default=True)
def hook(agent):
    """Handle one agent hook event (JSON on stdin). Called by the agent, not by you."""
    from costhook.agents import runtime

    sys.exit(runtime.run_hook(agent))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--plain", is_flag=True, help="No ANSI colour (also when NO_COLOR is set).")
@db_option
def statusline(plain, db_path):
    """Print Claude Code's status line: session cost, tightest budget, rate limits (JSON on stdin)."""
    from costhook.agents.claude.statusline import main

    sys.exit(main((["--plain"] if plain else []) + (["--db", str(db_path)] if db_path else [])))


# ------------------------------------------------------------------ install -------


@cli.command()
@click.option("--agent", type=click.Choice(["claude", "openclaw", "all"]), default="claude", show_default=True)
@click.option("--scope", type=click.Choice(["user", "project", "local"]), default="user", show_default=True)
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), help="For project/local scope (default: cwd).")
@click.option("--dry-run", is_flag=True, help="Show the change to settings.json without writing it.")
@click.option("--statusline", is_flag=True, help="Also register `costhook statusline` as Claude Code's statusLine.")
@click.option("--force", is_flag=True, help="Replace an existing statusLine (the backup keeps it).")
def install(agent, scope, project_dir, dry_run, statusline, force):
    """Register costhook's hooks in the agent's settings (merged, backed up, idempotent)."""
    from costhook.agents.claude import install as installer

    if agent in ("openclaw", "all"):
        _openclaw_install("install", dry_run)
        if agent == "openclaw":
            return
    try:
        result = installer.install_claude(
            scope=scope, project_dir=project_dir, dry_run=dry_run, statusline=statusline, force_statusline=force
        )
    except installer.InstallError as exc:
        raise click.ClickException(str(exc))
    _print_install(result, dry_run)


@cli.command()
@click.option("--agent", type=click.Choice(["claude", "openclaw", "all"]), default="claude", show_default=True)
@click.option("--scope", type=click.Choice(["user", "project", "local"]), default="user", show_default=True)
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True)
def uninstall(agent, scope, project_dir, dry_run):
    """Remove costhook's hooks from the agent's settings (your data stays)."""
    from costhook.agents.claude import install as installer

    if agent in ("openclaw", "all"):
        _openclaw_install("uninstall", dry_run)
        if agent == "openclaw":
            return
    try:
        result = installer.uninstall_claude(scope=scope, project_dir=project_dir, dry_run=dry_run)
    except installer.InstallError as exc:
        raise click.ClickException(str(exc))
    _print_install(result, dry_run)


def _openclaw_install(action: str, dry_run: bool) -> None:
    """costhook's OpenClaw plugin (see install.py)."""
    from costhook.agents.openclaw import install
    from costhook.errors import InstallError

    try:
        if action == "install":
            result = install.install_openclaw(dry_run=dry_run)
        else:
            result = install.uninstall_openclaw(dry_run=dry_run)
    except InstallError as exc:
        raise click.ClickException(f"OpenClaw: {exc}")
    _print_install(result, dry_run)


def _print_install(result, dry_run):
    if result.diff and (dry_run or result.changed):
        click.echo(result.diff.rstrip("\n"))
    click.echo(result.message)


# ------------------------------------------------------------------ import --------


def _dirs_option(flag: str, name: str, help: str):
    return click.option(flag, name, multiple=True, type=click.Path(path_type=Path), help=help)


@cli.command(name="import")
@_dirs_option(
    "--claude-dir",
    "claude_dirs",
    "A Claude config dir holding projects/ (repeatable). Default: $CLAUDE_CONFIG_DIR, ~/.claude, ~/.config/claude.",
)
@_dirs_option(
    "--openclaw-dir",
    "openclaw_dirs",
    "An OpenClaw state dir, or a folder of transcripts (repeatable). Default: $OPENCLAW_STATE_DIR, ~/.openclaw.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary.")
@db_option
def import_(claude_dirs, openclaw_dirs, quiet, db_path):
    """Backfill usage from existing transcripts (safe to repeat: nothing is counted twice)."""
    from costhook.agents.claude import importer
    from costhook.pricing import prices

    if openclaw_dirs and not claude_dirs:
        _import_openclaw(list(openclaw_dirs), quiet, db_path)
        return
    folders = _existing_dirs(list(claude_dirs) or importer.default_claude_dirs())
    conn = open_store(db_path)
    price = prices.pricer(price_table(load_config()))
    files = importer.transcript_files(folders)
    started = time.monotonic()
    with _progress(lambda: sum(size for _, size in files), "Importing", quiet) as bar:
        summary = importer.import_claude(conn, folders, price=price, progress=bar.update, files=files)
    elapsed = time.monotonic() - started
    if not quiet:
        where = ", ".join(str(f) for f in folders) or "(no Claude directories found)"
        click.echo(
            f"Imported {summary.files} transcript files from {where}: "
            f"{summary.calls} API calls seen, {summary.changed} rows new or updated, "
            f"{summary.bytes_read / 1e6:.1f} MB in {elapsed:.1f} s."
        )
        if summary.malformed:
            click.echo(f"Skipped {summary.malformed} malformed lines.")
    if openclaw_dirs or not claude_dirs:
        from costhook.agents.openclaw import events as openclaw

        defaults = list(openclaw_dirs) or [Path(p) for p in openclaw.default_state_dirs()]
        if defaults:
            _import_openclaw(defaults, quiet, db_path)


def _import_openclaw(folders, quiet, db_path):
    """OpenClaw: agent SQLite stores, transcript files and archives, cron history."""
    from costhook.agents.openclaw import events as openclaw
    from costhook.pricing import prices

    folders = _existing_dirs(folders)
    conn = open_store(db_path)
    price = prices.pricer(price_table(load_config()))
    started = time.monotonic()
    with _progress(lambda: openclaw.total_bytes(folders), "Importing OpenClaw", quiet) as bar:
        stats = openclaw.import_dirs(conn, folders, price=price, progress=bar.update)
    if not quiet:
        click.echo(
            f"Imported OpenClaw history from {', '.join(str(f) for f in folders)}: "
            f"{stats.files + stats.sessions} sessions/files, {stats.calls} API calls seen, {stats.changed} rows new or updated, "
            f"{stats.cron_runs} cron runs, in {time.monotonic() - started:.1f} s."
        )
        if stats.malformed:
            click.echo(f"Skipped {stats.malformed} malformed events.")


def _existing_dirs(folders: list) -> list:
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise click.ClickException(f"no such directory: {', '.join(missing)}")
    return folders


def _progress(total, label: str, quiet: bool):
    """A progress bar on a terminal (sized by calling `total()`), else a silent stand-in."""
    if quiet or not sys.stderr.isatty():
        return _NoBar()
    return click.progressbar(length=total(), label=label, file=sys.stderr, show_eta=True)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


# ------------------------------------------------------------------ report --------


def report_options(f):
    """The click declaration of report_fast.OPTIONS (its fast parser reads the same table)."""
    from costhook.cli.report_fast import OPTIONS

    for option in reversed(OPTIONS):
        if option.kind == "db":
            f = db_option(f)
            continue
        kind = {"choice": click.Choice(option.choices), "date": click.DateTime(["%Y-%m-%d"])}.get(option.kind)
        f = click.option(option.flag, option.name, type=kind, default=option.default,
                         show_default=option.default is not None, help=option.help)(f)
    return f


@cli.command()
@report_options
def report(**options):
    """Where the money went, grouped by day, project, session, model, tool…"""
    from costhook.cli import report_fast

    try:
        text = report_fast.output(options, load_config=load_config, open_store=open_store, price_table=price_table)
    except report_fast.BadOption as exc:
        raise _bad_option(exc)
    click.echo(text, nl=False)


def _bad_option(exc) -> click.UsageError:
    return click.BadParameter(exc.message, param_hint=exc.option) if exc.option else click.UsageError(exc.message)


def _zone(name):
    from costhook.cli import report_fast

    try:
        return report_fast.zone(name)
    except report_fast.BadOption as exc:
        raise _bad_option(exc)


# ------------------------------------------------------------------ doctor --------


@cli.command()
@db_option
def doctor(db_path):
    """Check the installation: database, config, price table, hooks, unpriced models."""
    from costhook.agents.claude import install as installer
    from costhook.pricing import prices
    from costhook.views import report

    problems = 0
    db_file = paths.db_path(db_path)
    click.echo(f"database   {db_file}")
    conn = open_store(db_path)
    count = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
    click.echo(f"           {count:,} requests recorded; integrity: {integrity}")
    problems += integrity != "ok"
    click.echo(f"config     {paths.config_path()}" + ("" if paths.config_path().exists() else " (none; defaults in use)"))
    try:
        cfg = load_config()
        table = price_table(cfg)
    except click.ClickException as exc:
        click.echo(f"           PROBLEM: {exc.message}")
        problems += 1
        table = prices.load_table()
    info = prices.table_info(table)
    click.echo(f"prices     {info.get('models')} models from {info.get('source')} {info.get('version', '')} (exported {info.get('exported')})")
    settings = installer.claude_settings_path("user")
    try:
        events = installer.claude_hook_commands("user")
    except installer.InstallError as exc:
        events = {}
        click.echo(f"           PROBLEM: {exc}")
        problems += 1
    missing = [e for e in installer.HOOK_EVENTS if e not in events]
    if not events:
        click.echo(f"hooks      {settings}: NOT installed (run `costhook install`)")
        problems += 1
    elif missing:
        click.echo(f"hooks      {settings}: partly installed, missing {', '.join(missing)} (run `costhook install`)")
        problems += 1
    else:
        commands = sorted(set(events.values()))
        executable = commands[0].rsplit(" ", 1)[0].strip("'\"")
        state = "" if Path(executable).exists() else f" — but {executable} does not exist (run `costhook install` again)"
        problems += bool(state)
        click.echo(f"hooks      {settings}: {len(events)} events → {commands[0]}{state}")
    log = paths.errors_log()
    if log.exists() and log.stat().st_size:
        lines = log.read_text(errors="replace").splitlines()
        click.echo(f"errors     {len(lines)} lines in {log}; last: {lines[-1]}")
    for row in report.unpriced_models(conn):
        click.echo(f"unpriced   {row['model']}: {row['requests']} requests (add [prices.\"{row['model']}\"] to the config)")
        problems += 1
    if problems:
        sys.exit(1)


# ------------------------------------------------------------------ budget --------


@cli.group()
def budget():
    """Budgets: warn at thresholds, block prompts and tools when spent."""


@budget.command(name="set")
@click.option("--scope", required=True, help="global | session | project:<path or name> | model:<id> | agent:<type> | skill:<name> | cron:<job>")
@click.option("--period", required=True, type=click.Choice(["session", "run", "daily", "weekly", "monthly"]))
@click.option("--limit", "limit_usd", help="Limit in USD, e.g. 10 or 0.50.")
@click.option("--tokens", type=int, help="Limit in tokens instead of USD.")
@click.option("--warn-at", default="0.8", show_default=True, help="Fractions that warn, comma-separated, e.g. 0.5,0.8.")
@click.option("--action", type=click.Choice(["warn", "block"]), default="warn", show_default=True)
@click.option("--on-error", type=click.Choice(["allow", "block"]), default="allow", show_default=True,
              help="What to do when costhook cannot read its own data.")
@click.option("--id", "budget_id", help="Name for the budget (default: <period>-<scope>). An existing id is replaced.")
def budget_set(scope, period, limit_usd, tokens, warn_at, action, on_error, budget_id):
    """Add or replace a budget in the config file; prints its id."""
    from costhook.config import edit
    from costhook.config.model import Budget

    try:
        fractions = [float(part) for part in warn_at.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{warn_at!r} is not a comma-separated list of fractions", param_hint="--warn-at")
    fields = {"scope": scope, "period": period, "warn_at": fractions, "action": action, "on_error": on_error}
    if budget_id:
        fields["id"] = budget_id
    if limit_usd is not None:
        fields["limit"] = limit_usd
    if tokens is not None:
        fields["tokens"] = tokens
    from pydantic import ValidationError

    try:
        entry = Budget.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'budget'}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(problems)
    stored = {"id": entry.id, "scope": entry.scope, "period": entry.period}
    if entry.limit is not None:
        # TOML has no decimals: whole dollars as integers, others as floats (at most 9
        # decimals, which read back exactly).
        stored["limit"] = int(entry.limit) if entry.limit == entry.limit.to_integral() else float(entry.limit)
    if entry.tokens is not None:
        stored["tokens"] = entry.tokens
    stored.update(warn_at=entry.warn_at, action=entry.action)
    if entry.on_error != "allow":
        stored["on_error"] = entry.on_error
    try:
        edit.set_budget(stored)
    except errors.ConfigError as exc:
        raise click.ClickException(str(exc))
    click.echo(entry.id)


@budget.command(name="remove")
@click.argument("budget_id")
def budget_remove(budget_id):
    """Remove the budget with this id."""
    from costhook.config import edit

    try:
        edit.remove_budget(budget_id)
    except KeyError:
        raise click.ClickException(f"no budget with id {budget_id!r} (see `costhook budget list`)")
    except errors.ConfigError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"removed {budget_id}")


@budget.command(name="list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def budget_list(fmt):
    """The configured budgets."""
    budgets = load_config().get("budgets", [])
    if fmt == "json":
        click.echo(json.dumps(budgets, indent=2))
        return
    if not budgets:
        click.echo("No budgets. Add one: costhook budget set --scope global --period daily --limit 10 --action block")
        return
    rows = [["id", "scope", "period", "limit", "warn at", "action"]]
    for b in budgets:
        limit = f"${b['limit']}" if "limit" in b else f"{b['tokens']:,} tokens"
        rows.append([b["id"], b["scope"], b["period"], limit, ",".join(f"{f:g}" for f in b["warn_at"]), b["action"]])
    click.echo(_grid(rows))


@budget.command(name="status")
@click.option("--session", "session_id", help="Session for session-scoped budgets (default: the latest).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@db_option
def budget_status(session_id, fmt, db_path):
    """Spent / limit / % / remaining / projected end-of-period spend, per budget."""
    from datetime import datetime, timezone

    from costhook import budgets as engine

    cfg = load_config()
    conn = open_store(db_path)
    if session_id is None:
        row = conn.execute("SELECT session_id FROM requests ORDER BY timestamp DESC LIMIT 1").fetchone()
        session_id = row[0] if row else None
    now = datetime.now(timezone.utc)
    tz = engine.local_zone(cfg.get("timezone"))
    ctx = engine.Context(session_id=session_id)
    data = []
    for b in cfg.get("budgets", []):
        status = engine.spend(conn, b, ctx, now, tz)
        projected = engine.projection(status, now)
        unit_usd = not status.in_tokens
        scale = (lambda v: v / engine.NANO) if unit_usd else (lambda v: v)
        data.append(
            {
                "id": b["id"], "scope": b["scope"], "period": b["period"], "period_key": status.period_key,
                "action": b["action"], "unit": "usd" if unit_usd else "tokens",
                "spent": scale(status.spent), "limit": scale(status.limit),
                "percent": round(status.fraction * 100, 1), "remaining": scale(status.limit - status.spent),
                "projected": scale(projected) if projected is not None else None,
                "blocking": status.blocking, "unpriced_requests": status.unpriced,
                "period_end": status.end.strftime("%Y-%m-%dT%H:%M:%SZ") if status.end else None,
                "message": status.message(),
            }
        )
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    if not data:
        click.echo("No budgets configured.")
        return
    rows = [["id", "period", "spent", "limit", "%", "remaining", "projected", "state"]]
    for d in data:
        money = (lambda v: f"{'-' if v < 0 else ''}${abs(v):,.2f}") if d["unit"] == "usd" else (lambda v: f"{v:,}")
        state = "BLOCKING" if d["blocking"] else ("over" if d["percent"] >= 100 else "ok")
        rows.append([
            d["id"], d["period_key"], money(d["spent"]), money(d["limit"]), f"{d['percent']:.0f}%",
            money(d["remaining"]), money(d["projected"]) if d["projected"] is not None else "-", state,
        ])
    click.echo(_grid(rows))


def _grid(rows: list) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _register_views():
    """Analytics views, the dashboard (views.py) and `costhook cron` (cron.py)."""
    from costhook.cli import views
    from costhook.views import cron

    views.register(cli)
    cron.register(cli)
