"""`costhook budget set|remove|list|status`: budgets in the config file, and where they stand."""

import json

import click

from costhook import errors, text
from costhook.cli.common import format_option, load_config, open_store, setup, view_options

TEAM_KINDS = ("team", "user", "machine")  # scopes that are always the team's (config.model)


def team_configured(cfg: dict) -> bool:
    """Is a team server configured (`[team] url` or COSTHOOK_TEAM_URL)? A sync folder
    alone needs no team budgets: every machine's calls are in the local ledger."""
    import os

    team = cfg.get("team") or {}
    return bool(os.environ.get("COSTHOOK_TEAM_URL") or team.get("url"))


@click.group()
def budget():
    """Budgets: warn at thresholds, block prompts and tools when spent."""


@budget.command(name="set")
@click.option("--scope", required=True, help="global | session | project:<path or name> | model:<id> | agent:<type> | skill:<name> | cron:<job>"
              " | cli:claude|openclaw|codex | team | user:<name> | machine:<name> (the last three: the team's spend).")
@click.option("--period", required=True, type=click.Choice(["session", "run", "daily", "weekly", "monthly"]),
              help="The span the limit applies to: one session or run, or a calendar day, week or month (config timezone).")
@click.option("--limit", "limit_usd", help="Limit in USD, e.g. 10 or 0.50.")
@click.option("--tokens", type=int, help="Limit in tokens instead of USD.")
@click.option("--warn-at", default="0.8", show_default=True, help="Fractions that warn, comma-separated, e.g. 0.5,0.8.")
@click.option("--action", type=click.Choice(["warn", "block"]), default="warn", show_default=True,
              help="Only warn at the thresholds, or also block prompts and tools once spent.")
@click.option("--on-error", type=click.Choice(["allow", "block"]), default="allow", show_default=True,
              help="What to do when costhook cannot read its own data.")
@click.option("--id", "budget_id", help="Name for the budget (default: <period>-<scope>). An existing id is replaced.")
@click.option("--team", "team", is_flag=True, help="Against the whole team's spend (needs [team]; see docs/team.md), "
              "e.g. a team-wide model:<id> cap.")
def budget_set(scope, period, limit_usd, tokens, warn_at, action, on_error, budget_id, team):
    """Add or replace a budget in the config file; prints its id."""
    from costhook.config import edit
    from costhook.config.model import Budget, describe

    try:
        fractions = [float(part) for part in warn_at.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{warn_at!r} is not a comma-separated list of fractions", param_hint="--warn-at")
    fields = {"scope": scope, "period": period, "warn_at": fractions, "action": action, "on_error": on_error, "team": team}
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
        # Each problem named by its option (--limit, --warn-at), in plain words.
        problems = "; ".join(f"{'--' + str(e['loc'][0]).replace('_', '-') if e['loc'] else 'budget'}: {describe(e)}"
                             for e in exc.errors())
        raise click.UsageError(problems)
    if entry.team and not team_configured(load_config()):
        raise click.UsageError("a team budget needs a team: set [team] url (or COSTHOOK_TEAM_URL) first (docs/team.md)")
    stored = {"id": entry.id, "scope": entry.scope, "period": entry.period}
    if entry.team and entry.scope.partition(":")[0] not in TEAM_KINDS:
        stored["team"] = True
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
        replaced = edit.set_budget(stored)
    except errors.ConfigError as exc:
        raise click.ClickException(str(exc))
    click.echo(entry.id)
    if replaced:
        click.echo(f"replaced the budget {text.term_text(entry.id)} that was "
                   f"{text.term_text(replaced.get('period'))} {text.term_text(replaced.get('scope'))}", err=True)


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
    click.echo(f"removed {text.term_text(budget_id)}")


@budget.command(name="list")
@format_option
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
        limit = text.money(float(b["limit"])) if "limit" in b else f"{b['tokens']:,} tokens"
        scope = f"{b['scope']} (team)" if b.get("team") and b["scope"].partition(":")[0] not in TEAM_KINDS else b["scope"]
        rows.append([b["id"], scope, b["period"], limit, ",".join(f"{f:g}" for f in b["warn_at"]), b["action"]])
    click.echo(text.grid(rows))


@budget.command(name="status")
@click.option("--session", "session_id", help="Session for session-scoped budgets (default: the running one, if any).")
@click.option("--team", is_flag=True, help="Each budget against the whole team's spend, from the team server "
              "(session budgets: no session).")
@view_options
def budget_status(session_id, team, fmt, tz_name, now_text, db_path):
    """Spent / limit / % / remaining / projected end-of-period spend, per budget."""
    from costhook.views import budgets as standing

    cfg, tz, now = setup(tz_name, now_text)
    if team:
        from costhook.cli.team import team_budget_store

        conn = team_budget_store(cfg, now)
    else:
        conn = open_store(db_path)
    if session_id is None:
        session_id = standing.latest_session(conn, now)
    budgets = cfg.get("budgets", [])
    if team:  # the server's rollup is the team's: a team budget is its plain scope there
        budgets = [{**b, "team": False, "scope": "global" if b["scope"] == "team" else b["scope"]} for b in budgets]
    data = standing.pick(standing.budget_rows(conn, budgets, now, tz, session_id=session_id),
                         standing.STATUS_FIELDS)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    if not data:
        click.echo("No budgets configured.")
        return
    rows = [["id", "period", "spent", "limit", "%", "remaining", "projected", "state"]]
    for d in data:
        money = text.money if d["unit"] == "usd" else (lambda v: f"{v:,}")
        state = d["state"].upper() if d["blocking"] else d["state"]
        rows.append([
            d["id"], d["period_key"], money(d["spent"]), money(d["limit"]), f"{d['percent']:.0f}%",
            money(d["remaining"]), money(d["projected"]) if d["projected"] is not None else "-", state,
        ])
    click.echo(text.grid(rows))
