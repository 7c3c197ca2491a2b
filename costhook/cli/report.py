"""`costhook report` for click: the same option table and output as the click-free path
in report_fast.py, which __main__ tries first; click prints help and every error."""

import click

from costhook.cli.common import bad_option, db_option, load_config, open_store, price_table


def report_options(f):
    """The click declaration of report_fast.OPTIONS (its fast parser reads the same table)."""
    from costhook.cli.report_fast import OPTIONS

    for option in reversed(OPTIONS):
        if option.kind == "db":
            f = db_option(f)
            continue
        choices = (*option.choices, *TEAM_ONLY) if option.name == "by" else option.choices
        kind = {"choice": click.Choice(choices), "date": click.DateTime(["%Y-%m-%d"])}.get(option.kind)
        f = click.option(option.flag, option.name, type=kind, default=option.default,
                         show_default=option.default is not None, help=option.help)(f)
    return f


TEAM_ONLY = ("user", "machine")  # groupings of `report --team`


@click.command()
@report_options
@click.option("--team", is_flag=True, help="The whole team's calls, from the team server ([team] in the config); "
              "adds --by user|machine.")
def report(team, **options):
    """Where the money went, grouped by day, project, session, model, tool…"""
    from costhook.cli import report_fast

    if team:
        click.echo(team_report(options), nl=False)
        return
    if options["by"] in TEAM_ONLY:
        raise click.BadParameter(f"--by {options['by']} needs --team", param_hint="--by")
    try:
        text = report_fast.output(options, load_config=load_config, open_store=open_store, price_table=price_table)
    except report_fast.BadOption as exc:
        raise bad_option(exc)
    click.echo(text, nl=False)


def team_report(options: dict) -> str:
    """`report --team`: the same JSON and tables as `report`, from the server's rollup."""
    from costhook import errors, timeframe
    from costhook.cli import report_fast
    from costhook.cli.team import team_settings
    from costhook.team import link
    from costhook.team import report as team

    for name, flag in (("session_id", "--session"), ("project", "--project")):
        if options[name]:
            raise click.BadParameter("not with --team (team reports read the server's rollup)", param_hint=flag)
    if options["by"] not in team.GROUPS:
        raise click.BadParameter(f"--by {options['by']} is not a team grouping; use one of {', '.join(team.GROUPS)}",
                                 param_hint="--by")
    cfg = load_config()
    settings = team_settings(cfg)
    try:
        tz = report_fast.zone(options["tz_name"] or cfg.get("timezone"))
    except report_fast.BadOption as exc:
        raise bad_option(exc)
    since, until = options["since"], options["until"]
    if since and until and since > until:
        raise click.BadParameter("--since is after --until", param_hint="--since")
    win = timeframe.dates_window(since.date() if since else None, until.date() if until else None, tz)
    label = " ".join(f"{word} {day:%Y-%m-%d}" for word, day in (("from", since), ("to", until)) if day) or "all time"
    if options.get("period_name"):
        if since or until:
            raise click.BadParameter("give --period, or --since/--until, not both", param_hint="--period")
        try:
            chosen = timeframe.period(options["period_name"], timeframe.parse_now(None), tz)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--period")
        win, label = chosen.window(), chosen.label
    try:
        pg = link.connect(settings["url"])
    except errors.TeamError as exc:
        raise click.ClickException(str(exc))
    try:
        data = team.report(pg, options["by"], start=win.start, end=win.end, tz=tz)
    except Exception as exc:
        import psycopg

        if isinstance(exc, psycopg.Error):
            raise click.ClickException(f"team server {link.shown(settings['url'])}: {link.first_line(exc)}")
        raise
    finally:
        pg.close()
    return report_fast.render(data, options["fmt"], label)
