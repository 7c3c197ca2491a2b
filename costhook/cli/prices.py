"""`costhook reprice` (price stored calls again after a price change) and `costhook prices`
(where the prices come from; `prices update` rebuilds them from the installed genai-prices)."""

import datetime
import importlib.util
import sys

import click

from costhook import text
from costhook.cli.common import (
    db_option,
    emit,
    format_option,
    load_config,
    open_store,
    price_table,
    zone,
)
from costhook.text import term_text
from costhook.usage import NANO


@click.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Only calls from this day on (inclusive, in --tz).")
@click.option("--model", "model", metavar="ID",
              help="Only calls of this model: the id as recorded, or its undated / unprefixed spelling.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--tz", "tz_name", help="IANA time zone of --since (default: config `timezone`, else local).")
@format_option
@db_option
def reprice(since, model, dry_run, tz_name, fmt, db_path):
    """Price stored calls again with today's table and config (after adding or changing a price)."""
    from costhook import timeframe
    from costhook.pricing import prices
    from costhook.store import writes
    from costhook.views import repricing

    cfg = load_config()
    price = prices.pricer(price_table(cfg))
    start = timeframe.dates_window(since.date(), None, zone(tz_name or cfg.get("timezone"))).start if since else None
    conn = open_store(db_path)
    models = repricing.model_spellings(conn, model) if model else None
    result = writes.reprice_calls(conn, price, since=start, models=models, dry_run=dry_run)
    rows = [
        {"model": name, "calls": c["calls"], "newly_priced": c["newly_priced"], "now_unpriced": c["now_unpriced"],
         "before_usd": c["before_nanousd"] / NANO, "after_usd": c["after_nanousd"] / NANO,
         "change_usd": (c["after_nanousd"] - c["before_nanousd"]) / NANO}
        for name, c in sorted(result["models"].items(), key=lambda item: (-item[1]["calls"], item[0]))
    ]
    before = sum(c["before_nanousd"] for c in result["models"].values())
    after = sum(c["after_nanousd"] for c in result["models"].values())
    data = {
        "dry_run": dry_run, "since": since.date().isoformat() if since else None, "model": model,
        "matched_models": models, "examined": result["examined"], "changed": sum(r["calls"] for r in rows),
        "newly_priced": sum(r["newly_priced"] for r in rows), "now_unpriced": sum(r["now_unpriced"] for r in rows),
        "before_usd": before / NANO, "after_usd": after / NANO, "change_usd": (after - before) / NANO, "rows": rows,
    }
    emit(fmt, data, lambda d: _reprice_text(d, result["models"]))


def _reprice_text(data: dict, models: dict) -> str:
    """The summary for a person, money from the exact nano-dollar sums in `models`."""
    scope = []
    if data["since"]:
        scope.append(f"since {data['since']}")
    if data["model"] is not None:
        scope.append(f"model {term_text(data['model'])}" + ("" if data["matched_models"] else " (no calls recorded)"))
    where = f" ({', '.join(scope)})" if scope else ""
    if not data["changed"]:
        return f"Nothing to re-price: the {data['examined']:,} calls examined{where} already have the current prices."
    before = sum(c["before_nanousd"] for c in models.values())
    after = sum(c["after_nanousd"] for c in models.values())
    verb = "Would re-price" if data["dry_run"] else "Re-priced"
    lines = [f"{verb} {data['changed']:,} of {data['examined']:,} calls{where}:"]
    table = [["model", "calls", "newly priced", "now unpriced", "before", "after", "change"]]
    for row in data["rows"]:
        c = models[row["model"]]
        table.append([row["model"], f"{row['calls']:,}", f"{row['newly_priced']:,}", f"{row['now_unpriced']:,}",
                      text.money_change(c["before_nanousd"]), text.money_change(c["after_nanousd"]),
                      text.money_change(c["after_nanousd"] - c["before_nanousd"], signed=True)])
    table.append(["TOTAL", f"{data['changed']:,}", f"{data['newly_priced']:,}", f"{data['now_unpriced']:,}",
                  text.money_change(before), text.money_change(after), text.money_change(after - before, signed=True)])
    lines.append(text.grid(table, right={1, 2, 3, 4, 5, 6}))
    if data["dry_run"]:
        lines.append("Dry run: nothing written. Run again without --dry-run to apply.")
    else:
        lines.append("Reports, budgets and the dashboard now use these costs; unpriced calls counted 0 before.")
    return "\n".join(lines)


# ------------------------------------------------------------------ prices --------


@click.group(invoke_without_command=True)
@format_option
@click.pass_context
def prices(ctx, fmt):
    """Where the prices come from: the table, its date, the config's overrides."""
    if ctx.invoked_subcommand is not None:
        return
    from costhook import paths
    from costhook.pricing import prices as pricing

    cfg = load_config()
    info = pricing.table_info(price_table(cfg))
    info["config"] = str(paths.config_path())
    info["rebuilt_path"] = paths.prices_file()
    emit(fmt, info, _prices_text)


def _prices_text(info: dict) -> str:
    origin = "bundled with costhook" if info["bundled"] else "rebuilt by `costhook prices update`"
    lines = [
        f"table       {info['path']} ({origin})",
        f"source      {info['source']} {info['version']}, exported {info['exported']} ({info['command']})",
        f"models      {info['models']}; corrections: {', '.join(info['corrections']) or 'none'}",
    ]
    if info["set_aside"]:
        lines.append(f"set aside   {info['set_aside']['path']}: {info['set_aside']['reason']}")
    overrides = ", ".join(info["overrides"]) or "none"
    lines.append(f"overrides   {overrides} (from {info['config']})")
    lines.append("Newer prices: `pip install -U genai-prices`, then `costhook prices update` and `costhook reprice`.")
    return "\n".join(term_text(line) for line in lines)


@prices.command()
@click.option("--date", "export_date", metavar="YYYY-MM-DD", type=click.DateTime(["%Y-%m-%d"]),
              help="Export date to record (default: today, UTC).")
@format_option
def update(export_date, fmt):
    """Rebuild the price table from the installed genai-prices (used instead of the bundled one)."""
    if importlib.util.find_spec("genai_prices") is None:
        click.echo("genai-prices is not installed in costhook's environment. Install it with "
                   f"`{sys.executable} -m pip install -U genai-prices`, then run `costhook prices update` again.", err=True)
        sys.exit(1)
    from costhook.pricing import export

    day = (export_date or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%d")
    try:
        result = export.rebuild(day)
    except (export.ExportError, ValueError, OSError) as exc:
        raise click.ClickException(f"price table not rebuilt: {exc}")
    emit(fmt, result, _update_text)
    if not result["written"]:
        sys.exit(1)


def _update_text(result: dict) -> str:
    before, after = result["before"], result["after"]
    if not result["written"]:
        return term_text(
            f"Nothing written: the installed genai-prices {after['version']} is older than the table bundled with "
            f"costhook ({result['bundled_version']}). Upgrade it: `pip install -U genai-prices`.")
    lines = [
        f"Wrote {after['path']}: {after['models']} models from genai-prices {after['version']} "
        f"(was {before['version']}, exported {before['exported']}, {'bundled' if before['bundled'] else 'rebuilt'}).",
    ]
    for label in ("added", "removed", "changed"):
        if result[label]:
            names = ", ".join(result[label][:12]) + (f", … ({len(result[label])} in all)" if len(result[label]) > 12 else "")
            lines.append(f"{label:<9} {names}")
    if not (result["added"] or result["removed"] or result["changed"]):
        lines.append("No model or price changed.")
    lines.append("Calls already recorded keep their costs: `costhook reprice --dry-run` shows what the new prices change.")
    return "\n".join(term_text(line) for line in lines)
