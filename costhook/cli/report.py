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
        kind = {"choice": click.Choice(option.choices), "date": click.DateTime(["%Y-%m-%d"])}.get(option.kind)
        f = click.option(option.flag, option.name, type=kind, default=option.default,
                         show_default=option.default is not None, help=option.help)(f)
    return f


@click.command()
@report_options
@click.option("--team", is_flag=True, help="The whole team's calls, from the team server ([team] in the config); "
              "adds --by user|machine.")
def report(team, **options):
    """Where the money went, grouped by day, project, session, model, tool…"""
    from costhook.cli import report_fast

    try:
        if team:
            text = report_fast.team_output(options, load_config=load_config)
        else:
            text = report_fast.output(options, load_config=load_config, open_store=open_store, price_table=price_table)
    except report_fast.BadOption as exc:
        raise bad_option(exc)
    except report_fast.Failure as exc:
        raise click.ClickException(str(exc))
    click.echo(text, nl=False)
