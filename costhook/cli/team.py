"""`costhook sync` and the team part of `costhook doctor` (the team ledger: docs/team.md)."""

import sys

import click

from costhook import errors
from costhook.cli.common import open_store
from costhook.text import money, term_text


def team_settings(cfg: dict) -> dict:
    from costhook.team import link

    found = link.settings(cfg)
    if found is None:
        raise click.ClickException("no team server configured: set `url` under [team] in the config, "
                                   "or COSTHOOK_TEAM_URL (see docs/team.md)")
    return found


def server_sync(cfg: dict, watch: bool, dry_run: bool, quiet: bool, db_path) -> None:
    """`costhook sync` with a team server: push this machine's calls, pull the team's totals."""
    settings = team_settings(cfg)
    conn = open_store(db_path, create=True)
    from costhook.team import link
    from costhook.team import sync as team_sync

    if dry_run:
        waiting = team_sync.pending(conn)
        try:
            syncer = team_sync.Sync(conn, settings)
            version = syncer.open(migrate=False)
            syncer.pg.close()
        except errors.TeamError as exc:
            raise click.ClickException(str(exc))
        state = f"schema v{version}" if version else "no costhook schema yet (a sync creates it)"
        click.echo(term_text(f"Team server {link.shown(settings['url'])}: reachable, {state}."))
        click.echo(f"Would push {waiting.get('requests', 0):,} calls, {waiting.get('sessions', 0):,} sessions, "
                   f"{waiting.get('tool_calls', 0):,} tool calls, {waiting.get('cron_runs', 0):,} cron runs. "
                   "Dry run: nothing sent.")
        return
    progress = None if quiet or not sys.stderr.isatty() else _progress
    if watch:
        interval = settings["min_interval_seconds"] or 60

        def report(counts, exc):
            if exc is not None:
                click.echo(f"costhook sync: {term_text(str(exc))}", err=True)
            else:
                click.echo(summary(conn, counts, cfg))

        team_sync.watch(conn, settings, interval=interval, report=report)
        return
    try:
        counts = team_sync.run(conn, settings, progress=progress)
    except (errors.TeamError, team_sync.Busy) as exc:
        raise click.ClickException(str(exc))
    if progress:
        click.echo("", err=True)
    click.echo(summary(conn, counts, cfg))


def team_store(cfg: dict, dims: list, first: str | None = None, last: str | None = None):
    """For `summary --team`, `top --team`: an in-memory database whose `spend` rollup is the
    team's (from the server), so the local view answers for the whole team."""
    from costhook.store import team as local
    from costhook.team import link
    from costhook.team import report as team

    settings = team_settings(cfg)
    try:
        pg = link.connect(settings["url"])
    except errors.TeamError as exc:
        raise click.ClickException(str(exc))
    try:
        rows = team.rollup_rows(pg, dims, first, last)
    except Exception as exc:
        import psycopg

        if isinstance(exc, psycopg.Error):
            raise click.ClickException(f"team server {link.shown(settings['url'])}: {link.first_line(exc)}")
        raise
    finally:
        pg.close()
    return local.scratch_spend(rows)


def team_budget_store(cfg: dict, now):
    """For `budget status --team`: the team's rollup of the last 62 days (any calendar
    month and week), with each exported project name also as a `project_name` key, so
    `project:<name>` budgets find it."""
    import datetime

    from costhook.timeframe import bucket

    conn = team_store(cfg, ["global", "project", "model", "agent", "skill", "cron", "user", "machine"],
                      bucket(now - datetime.timedelta(days=62)), None)
    from costhook.store import team as local

    local.copy_dimension(conn, "project", "project_name")
    return conn


def _progress(text: str) -> None:
    click.echo(f"\r{text}\x1b[K", nl=False, err=True)


def summary(conn, counts: dict, cfg: dict) -> str:
    """"Pushed 1,204 calls, 3 updated; team today $41.20." """
    from costhook import timeframe
    from costhook.store import team as local

    tz = timeframe.local_zone(cfg.get("timezone"))
    today = timeframe.period("today", timeframe.parse_now(None), tz)
    start, _ = today.buckets()
    team_today = conn.execute("SELECT coalesce(sum(cost_nanousd), 0) FROM team_spend WHERE dim = 'global' AND bucket >= ?",
                              (start,)).fetchone()[0]
    unpushed = local.unpushed_nanousd(conn, today.window().start)
    names = {"sessions": "session", "tool_calls": "tool call", "cron_runs": "cron run"}
    others = [count(counts[k], names[k]) for k in names if counts.get(k)]
    text = f"Pushed {count(counts['new'], 'call')}, {counts['updated']:,} updated"
    text += (" (and " + ", ".join(others) + ")" if others else "") + f"; team today {money(team_today + unpushed)}."
    return text


def count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def doctor_team(conn, cfg: dict | None) -> int:
    """The `team` lines of `costhook doctor`: server reachable, schema version, last push
    and pull, rows waiting. Returns the number of problems."""
    from costhook.team import link

    settings = link.settings(cfg or {})
    if settings is None:
        return 0
    from costhook.store import team as local
    from costhook.team import server
    from costhook.team import sync as team_sync

    where = term_text(f"{link.shown(settings['url'])} as {settings['user']}@{settings['machine']}")
    problems = 0
    try:
        syncer = team_sync.Sync(conn, settings)
        version = syncer.open(migrate=False)
        syncer.pg.close()
        if version > server.SCHEMA_VERSION:
            state = "PROBLEM: " + server.newer_message(version)
            problems += 1
        else:
            state = f"reachable, schema v{version}" if version else "reachable, no costhook schema yet (run `costhook sync`)"
    except errors.TeamError as exc:
        state, problems = f"PROBLEM: {exc}", 1
    click.echo(f"team       {where}: {term_text(state)}")
    if conn is None:
        return problems
    state = local.link(conn)
    waiting = team_sync.pending(conn)
    last = (f"last push {state.get('last_push') or 'never'}, last pull {state.get('last_pull') or 'never'}"
            if state.get("enabled") else "never synced")
    click.echo(f"           {last}; waiting to be pushed: {waiting.get('requests', 0):,} calls, "
               f"{sum(v for k, v in waiting.items() if k != 'requests'):,} other rows")
    if state.get("last_error"):
        click.echo(f"           last sync failed ({state.get('last_error_at')}): {term_text(state['last_error'])}")
    return problems



def background_sync(cfg: dict) -> None:
    """The team ledger's part of `costhook hook --sync` (started after SessionEnd; __main__
    .sync_job decided it is due): one sync; another sync running is fine."""
    from costhook.store import db
    from costhook.team import link
    from costhook.team import sync as team_sync

    settings = link.settings(cfg)
    if settings is None:
        return
    conn = db.connect()
    try:
        team_sync.run(conn, settings, wait=False)
    except team_sync.Busy:
        pass
    finally:
        conn.close()
