"""Which stored calls a price change concerns: the spellings of a model as agents recorded
it, and the calls not priced by costhook (unpriced, or carrying only the agent's own cost)
that the current table would price — what `costhook reprice` and `costhook doctor` ask."""

import re
import sqlite3

from costhook.pricing import prices

DATE_SUFFIX = re.compile(r"\d{8}|\d{4}-\d{2}-\d{2}")


def model_spellings(conn: sqlite3.Connection, model: str) -> list[str]:
    """The stored model ids `model` names: itself, its provider or cloud spellings
    (`anthropic/…`, Bedrock, Vertex) and its dated snapshots (`claude-sonnet-4-5` names
    `claude-sonnet-4-5-20250929`), as `model:<id>` budget scopes do."""
    wanted = prices.normalize_model(model)
    found = []
    for (stored,) in conn.execute("SELECT DISTINCT model FROM requests WHERE model IS NOT NULL"):
        spelt = prices.normalize_model(stored)
        dated = spelt.startswith(wanted + "-") and DATE_SUFFIX.fullmatch(spelt[len(wanted) + 1:])
        if stored == model or spelt == wanted or dated:
            found.append(stored)
    return sorted(found)


def now_priced(conn: sqlite3.Connection, table) -> list[dict]:
    """Models with calls stored unpriced, or at the agent's reported cost, that `table` now
    prices: [{"model", "cost_source", "requests"}], most calls first. `costhook reprice`
    gives them costhook's price."""
    rows = conn.execute(
        """SELECT model, cost_source, count(*) AS requests FROM requests
           WHERE cost_nanousd IS NULL OR cost_source = 'reported'
           GROUP BY model, cost_source ORDER BY requests DESC, model"""
    )
    return [dict(row) for row in rows if row["model"] and prices.model_key(row["model"], table) is not None]
