"""Setting costhook up: the agents' hooks (install, uninstall), the hook and statusline
entry points (for help: __main__ runs them before click), history (import), doctor."""

import json
import shlex
import sqlite3
import sys
import time
from pathlib import Path

import click

from costhook import errors, paths, text
from costhook.agents.runtime import AGENT_HOOKS
from costhook.cli.common import NoStore, db_option, load_config, open_store, price_table, store_error
from costhook.text import term_text


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--agent", type=click.Choice(sorted(AGENT_HOOKS)), default="claude", show_default=True,
              help="Which agent sends the event.")
def hook(agent):
    """Handle one agent hook event (JSON on stdin). Called by the agent, not by you."""
    from costhook.agents import runtime

    sys.exit(runtime.run_hook(agent))


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--plain", is_flag=True, help="No ANSI colour (also when NO_COLOR is set).")
@db_option
def statusline(plain, db_path):
    """Print Claude Code's status line: session cost, tightest budget, rate limits (JSON on stdin)."""
    from costhook.agents.claude.statusline import main

    sys.exit(main((["--plain"] if plain else []) + (["--db", str(db_path)] if db_path else [])))


# ------------------------------------------------------------------ install -------


def settings_options(f):
    """--agent, --scope, --project-dir, --dry-run: which settings install and uninstall edit."""
    f = click.option("--verbose", "-v", is_flag=True, help="Also print the diff of the settings file changed.")(f)
    f = click.option("--dry-run", is_flag=True, help="Show the change to the settings without writing it.")(f)
    f = click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="For project/local scope (default: cwd).")(f)
    f = click.option("--scope", type=click.Choice(["user", "project", "local"]), default="user", show_default=True,
                     help="Claude Code's settings file: ~/.claude (user), the project's, or its local one.")(f)
    return click.option("--agent", type=click.Choice(["claude", "openclaw", "codex", "all"]), default="claude",
                        show_default=True, help="Claude Code, OpenClaw, Codex CLI, or all three.")(f)


@click.command()
@settings_options
@click.option("--statusline", is_flag=True, help="Also register `costhook statusline` as Claude Code's statusLine.")
@click.option("--force", is_flag=True, help="Replace an existing statusLine (the backup keeps it).")
def install(agent, scope, project_dir, dry_run, verbose, statusline, force):
    """Register costhook's hooks in the agent's settings (merged, backed up, idempotent)."""
    from costhook.agents.claude import install as installer

    if agent in ("openclaw", "all"):
        _agent_install("openclaw", "install", dry_run, verbose)
    if agent in ("codex", "all"):
        _agent_install("codex", "install", dry_run, verbose)
    if agent in ("openclaw", "codex"):
        return
    try:
        result = installer.install_claude(
            scope=scope, project_dir=project_dir, dry_run=dry_run, statusline=statusline, force_statusline=force
        )
    except installer.InstallError as exc:
        raise click.ClickException(str(exc))
    _print_install(result, dry_run, verbose)


@click.command()
@settings_options
def uninstall(agent, scope, project_dir, dry_run, verbose):
    """Remove costhook's hooks from the agent's settings (your data stays)."""
    from costhook.agents.claude import install as installer

    results = []
    if agent in ("openclaw", "all"):
        results.append(_agent_install("openclaw", "uninstall", dry_run, verbose))
    if agent in ("codex", "all"):
        results.append(_agent_install("codex", "uninstall", dry_run, verbose))
    if agent in ("claude", "all"):
        try:
            results.append(installer.uninstall_claude(scope=scope, project_dir=project_dir, dry_run=dry_run))
        except installer.InstallError as exc:
            raise click.ClickException(str(exc))
        _print_install(results[-1], dry_run, verbose)
    if not dry_run and any(result.leftovers for result in results):
        sys.exit(1)  # not uninstalled: entries that still run costhook are named above


# The agents whose setup lives in their own files: label, module, its install / uninstall.
AGENT_INSTALLS = {
    "openclaw": ("OpenClaw", "costhook.agents.openclaw.install", "install_openclaw", "uninstall_openclaw"),
    "codex": ("Codex", "costhook.agents.codex.install", "install_codex", "uninstall_codex"),
}


def _agent_install(agent: str, action: str, dry_run: bool, verbose: bool):
    """Install or uninstall one agent's part (OpenClaw's plugin; Codex's hooks, trusted
    through `codex app-server`): see that agent's install.py."""
    import importlib

    from costhook.errors import InstallError

    label, module, install, uninstall = AGENT_INSTALLS[agent]
    step = getattr(importlib.import_module(module), install if action == "install" else uninstall)
    try:
        result = step(dry_run=dry_run)
    except InstallError as exc:
        raise click.ClickException(f"{label}: {exc}")
    _print_install(result, dry_run, verbose)
    return result


def _print_install(result, dry_run, verbose):
    """The summary line(s); the diff too on a dry run or with --verbose (a first install's
    diff is the whole ~100-line file)."""
    if result.diff and (dry_run or (verbose and result.changed)):
        click.echo(result.diff.rstrip("\n"))
    click.echo(result.message)


# ------------------------------------------------------------------ import --------


def _dirs_option(flag: str, name: str, help: str):
    return click.option(flag, name, multiple=True, type=click.Path(path_type=Path), help=help)


@click.command(name="import")
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
@_dirs_option(
    "--codex-dir",
    "codex_dirs",
    "A Codex home holding sessions/, or a folder of rollouts (repeatable). Default: $CODEX_HOME, ~/.codex.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary.")
@db_option
def import_(claude_dirs, openclaw_dirs, codex_dirs, quiet, db_path):
    """Backfill usage from existing transcripts (safe to repeat: nothing is counted twice)."""
    from costhook.agents.claude import importer
    from costhook.pricing import prices

    if (openclaw_dirs or codex_dirs) and not claude_dirs:
        if openclaw_dirs:
            _import_openclaw(list(openclaw_dirs), quiet, db_path)
        if codex_dirs:
            _import_codex(list(codex_dirs), quiet, db_path)
        return
    folders = _existing_dirs(list(claude_dirs) or importer.default_claude_dirs())
    price = prices.pricer(price_table(load_config()))
    files = importer.transcript_files(folders)
    started = time.monotonic()
    with _progress(lambda: sum(size for _, size in files), "Importing", quiet) as bar:
        try:  # (it opens the database, or makes it: the same checks and messages as open_store)
            summary = importer.first_import(db_path, folders, price=price, progress=bar.update, files=files)
        except errors.StoreError as exc:
            raise store_error(exc) from exc
        except errors.ImportStopped as exc:
            raise click.ClickException(str(exc)) from exc
    elapsed = time.monotonic() - started
    if not quiet and not folders:
        click.echo("No Claude Code transcripts to import yet (no projects/ folder in $CLAUDE_CONFIG_DIR, "
                   "~/.claude or ~/.config/claude); the hooks record sessions from now on.")
    elif not quiet:
        where = ", ".join(str(f) for f in folders)
        click.echo(
            f"Imported {summary.files} transcript files from {where}: "
            f"{summary.calls} API calls seen, {summary.changed} rows new or updated, "
            f"{summary.bytes_read / 1e6:.1f} MB in {elapsed:.1f} s."
        )
        if summary.malformed:
            click.echo(f"Skipped {summary.malformed} malformed lines.")
    if openclaw_dirs or not claude_dirs:
        from costhook.agents.openclaw import paths as openclaw_paths

        defaults = list(openclaw_dirs) or [Path(p) for p in openclaw_paths.default_state_dirs()]
        if defaults:
            _import_openclaw(defaults, quiet, db_path)
    if codex_dirs or not claude_dirs:
        from costhook.agents.codex import importer as codex

        defaults = list(codex_dirs) or codex.default_codex_dirs()
        if defaults:
            _import_codex(defaults, quiet, db_path)


def _import_codex(folders, quiet, db_path):
    """Codex: every rollout under sessions/ and archived_sessions/."""
    from costhook.agents.codex import importer as codex
    from costhook.pricing import prices

    folders = _existing_dirs(folders)
    conn = open_store(db_path, create=True)
    price = prices.pricer(price_table(load_config()))
    files = codex.rollout_files(folders)
    started = time.monotonic()
    with _progress(lambda: sum(size for _, size in files), "Importing Codex", quiet) as bar:
        summary = codex.import_codex(conn, folders, price=price, progress=bar.update, files=files)
    if not quiet:
        click.echo(
            f"Imported {summary.files} Codex rollouts from {', '.join(term_text(str(f)) for f in folders)}: "
            f"{summary.calls} API calls seen, {summary.changed} rows new or updated, "
            f"{summary.bytes_read / 1e6:.1f} MB in {time.monotonic() - started:.1f} s."
        )
        if summary.malformed:
            click.echo(f"Skipped {summary.malformed} malformed lines.")


def _import_openclaw(folders, quiet, db_path):
    """OpenClaw: agent SQLite stores, transcript files and archives, cron history."""
    from costhook.agents.openclaw import importer as openclaw
    from costhook.pricing import prices

    folders = _existing_dirs(folders)
    conn = open_store(db_path, create=True)
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
    files = [str(f) for f in folders if f.exists() and not f.is_dir()]
    if files:
        raise click.ClickException(f"{', '.join(term_text(f) for f in files)}: a file, not a directory "
                                   "(give the folder that holds the transcripts, e.g. ~/.claude)")
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise click.ClickException(f"no such directory: {', '.join(term_text(f) for f in missing)}")
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


# ------------------------------------------------------------------ doctor --------


def _doctor_database(db_path):
    """(connection or None, problems) after printing the database's state; a database that
    cannot be opened is a problem reported, and the other checks still run."""
    db_file = paths.db_path(db_path)
    click.echo(f"database   {db_file}")
    try:
        conn = open_store(db_path, empty_ok=False)
        count = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
    except NoStore as exc:
        if paths.db_named(db_path):  # a --db or COSTHOOK_DB that names nothing: a mistake
            click.echo(f"           PROBLEM: {exc.message}")
            return None, 1
        click.echo("           none yet: nothing recorded (the hooks or `costhook import` make it)")
        return None, 0
    except (click.ClickException, sqlite3.DatabaseError) as exc:
        click.echo(f"           PROBLEM: {getattr(exc, 'message', exc)}")
        return None, 1
    click.echo(f"           {count:,} requests recorded; integrity: {integrity}")
    if integrity == "ok":
        return conn, 0
    click.echo("           Keep the file; copy it (with its -wal file) before any repair, e.g. "
               f"`sqlite3 {shlex.quote(str(db_file))} .recover | sqlite3 recovered.db`.")
    return conn, 1


def _doctor_sync(conn, cfg) -> int:
    """The sync folder, when configured: each machine's newest segment, and the files the
    last `costhook sync` skipped, with why. 1 when the folder cannot be used."""
    from costhook.sync import folder

    found = folder.status(conn, cfg)
    if found is None:
        return 0
    problem = found["problem"]
    click.echo(term_text(f"sync       {found['folder']} (this machine: {found['machine']}, user: {found['user']})"))
    if problem:
        click.echo(term_text(f"           PROBLEM: {problem}"))
    now = time.time()
    for machine in found["machines"]:
        last = machine["last"]
        age = f"last segment {last} ({text.age(now - machine['last_ts'])} ago)" if last else "no segment yet"
        this = " (this machine)" if machine["this"] else ""
        count = f"{machine['segments']:,} segment" + ("s" if machine["segments"] != 1 else "")
        click.echo(term_text(f"           {machine['machine']}{this}: {count}, {age}"))
    if found["waiting"]:
        plural = "s" if found["waiting"] != 1 else ""
        click.echo(f"           {found['waiting']:,} call{plural} of this machine waiting for the next `costhook sync`")
    for item in found["skipped"]:
        click.echo(term_text(f"           skipped {item['path']}: {item['reason']}"))
    if found["duplicates"]:
        copies = "1 copy" if found["duplicates"] == 1 else f"{found['duplicates']:,} copies"
        click.echo(f"           {copies} of imported segments (conflicted or duplicated) left out")
    return int(bool(problem))


def _doctor_prices(conn, table, info) -> int:
    """A rebuilt table set aside; unpriced models; calls the table now prices but that were
    stored before their price was there (unpriced, or at the agent's reported cost)."""
    from costhook.views import report, repricing

    problems = 0
    if info["set_aside"]:
        click.echo(term_text(f"           PROBLEM: {info['set_aside']['path']} not used: {info['set_aside']['reason']} "
                             "(run `costhook prices update` again, or delete the file)"))
        problems += 1
    if conn is None:
        return problems
    stale = {}
    for row in repricing.now_priced(conn, table):
        stale.setdefault(row["model"], {})[row["cost_source"]] = row["requests"]
    for row in report.unpriced_models(conn):
        model = term_text(row["model"])
        if row["model"] not in stale:
            key = term_text(json.dumps(row["model"], ensure_ascii=False))  # a TOML key even with `"` or `\` in it
            click.echo(f"unpriced   {model}: {row['requests']} requests (add [prices.{key}] to the config)")
            problems += 1
    for model, sources in stale.items():
        parts = []
        if sources.get("unpriced"):
            parts.append(f"{sources['unpriced']} older calls still unpriced")
        if sources.get("reported"):
            parts.append(f"{sources['reported']} older calls at the agent's reported cost")
        from costhook.pricing import prices

        where = "price configured" if prices.model_key(model, table) in info["overrides"] else "now in the price table"
        click.echo(f"unpriced   {term_text(model)}: {where}; {' and '.join(parts)} — run `costhook reprice`")
        problems += 1
    return problems


def _doctor_codex() -> int:
    """Codex CLI's hooks.json: costhook's hooks there, and whether Codex trusts them (it skips
    an untrusted hook without a word), asked through `codex app-server`."""
    from costhook.agents.codex import install as codex
    from costhook.errors import InstallError

    path = codex.hooks_path()
    cli = codex.codex_cli()
    try:
        events = codex.our_commands(codex.settings.read_settings(path).data)
    except InstallError as exc:
        click.echo(term_text(f"codex      PROBLEM: {exc}"))
        return 1
    if not events:
        if cli or codex.codex_home().is_dir():
            click.echo(f"codex      {term_text(str(path))}: not installed (`costhook install --agent codex` to track Codex)")
        return 0
    problems = 0
    missing = [e for e in codex.HOOK_EVENTS if e not in events]
    command = sorted(set(events.values()))[0]
    line = f"codex      {path}: {len(events)} events → {command}"
    if missing:
        line += f"; missing {', '.join(missing)} (run `costhook install --agent codex`)"
        problems += 1
    click.echo(term_text(line))
    if cli is None:
        click.echo("           trust not checked: no `codex` on PATH (set COSTHOOK_CODEX_CLI); "
                   "Codex skips untrusted hooks silently, see /hooks in codex")
        return problems
    try:
        trust = codex.check_trust(path, cli)
    except InstallError as exc:
        click.echo(term_text(f"           trust not checked: {exc}"))
        return problems
    if trust.untrusted:
        names = ", ".join(str(h.get("eventName")) for h in trust.untrusted)
        click.echo(term_text(f"           PROBLEM: Codex skips {len(trust.untrusted)} costhook hooks silently, "
                             f"they are not trusted ({names}): run `costhook install --agent codex` "
                             "(or trust them in codex's /hooks)"))
        problems += 1
    else:
        click.echo(f"           Codex trusts all {len(trust.ours)} of them")
    if trust.elsewhere:
        click.echo(term_text(f"           {codex.elsewhere_note(trust)}"))
    return problems


@click.command()
@db_option
def doctor(db_path):
    """Check the installation: database, config, price table, hooks, unpriced models."""
    from costhook.agents.claude import install as installer
    from costhook.pricing import prices

    conn, problems = _doctor_database(db_path)
    cfg = None
    click.echo(f"config     {paths.config_path()}" + ("" if paths.config_path().exists() else " (none; defaults in use)"))
    cfg = {}
    try:
        cfg = load_config()
        table = price_table(cfg)
    except click.ClickException as exc:
        click.echo(f"           PROBLEM: {term_text(exc.message)}")
        problems += 1
        table = prices.load_table()
    info = prices.table_info(table)
    origin = "" if info["bundled"] else f", rebuilt in {info['path']}"
    click.echo(f"prices     {info.get('models')} models from {info.get('source')} {info.get('version', '')} (exported {info.get('exported')}{origin})")
    settings = installer.claude_settings_path("user")
    try:
        events = installer.claude_hook_commands("user")
    except installer.InstallError as exc:
        events = {}
        click.echo(f"           PROBLEM: {term_text(exc)}")
        problems += 1
    missing = [e for e in installer.hook_events(installer.claude_cli_version()) if e not in events]
    if not events:
        click.echo(f"hooks      {settings}: NOT installed (run `costhook install`)")
        problems += 1
    elif missing:
        click.echo(f"hooks      {settings}: partly installed, missing {', '.join(missing)} (run `costhook install`)")
        problems += 1
    else:
        commands = sorted(set(events.values()))
        files = dict.fromkeys(p for command in commands for p in installer.command_files(command))
        gone = [p for p in files if not Path(p).exists()]
        state = f" — but {gone[0]} does not exist (run `costhook install` again)" if gone else ""
        problems += bool(state)
        click.echo(term_text(f"hooks      {settings}: {len(events)} events → {commands[0]}{state}"))
    problems += _doctor_codex()
    log = paths.errors_log()
    if log.exists() and log.stat().st_size:
        lines = log.read_text(errors="replace").splitlines()
        click.echo(f"errors     {len(lines)} lines in {log}; last: {term_text(lines[-1])}")
    problems += _doctor_prices(conn, table, info)
    problems += _doctor_sync(conn, cfg)
    from costhook.cli.team import doctor_team

    problems += doctor_team(conn, cfg)
    if problems:
        sys.exit(1)
