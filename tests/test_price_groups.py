"""The price_groups rollup (issue 14, target 7): `whatif` sums it instead of a month of
calls. It must stay exactly what rebuild_prices computes from the calls however they were
written (batched, one by one, replayed, re-priced, sub-agents renamed), and `whatif` must
give the same answer from it as from the call rows."""

import random
from datetime import datetime, timezone

import pytest

from costhook import timeframe
from costhook.pricing import prices, rates
from costhook.pricing.prices import pricer
from costhook.store import db, rollup, writes
from costhook.usage import UNKNOWN_SUBAGENT
from costhook.views import cache
from costhook.views.rollup import window_models

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
MODELS = ["claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-6",
          "gpt-4o", "no-such-model"]
PROMPTS = [0, 5_000, 100_001, 128_001, 199_999, 200_000, 200_001, 272_001, 900_000]


def calls(n: int = 400, seed: int = 5) -> dict:
    """Calls over 20 days with every kind of price key: NULL and empty scopes, speeds,
    regions, prompts on each side of each band boundary, unpriced models, sub-agents."""
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        prompt = rng.choice(PROMPTS)
        read = rng.randrange(0, prompt + 1)
        w5 = rng.randrange(0, prompt - read + 1)
        w1 = rng.randrange(0, prompt - read - w5 + 1)
        sub = rng.random() < 0.3
        key = f"m{i}:r{i}"
        out[key] = {
            "key": key, "agent": "claude", "message_id": f"m{i}", "request_id": f"r{i}", "session_id": f"s{i % 7}",
            "agent_id": f"a{i % 3}" if sub else None, "is_sidechain": int(sub),
            "agent_type": rng.choice(["Explore", UNKNOWN_SUBAGENT, None]) if sub else None,
            "project": rng.choice(["/home/dev/acme", "/home/dev/beta/", "", None]),
            "skill": rng.choice([None, None, "deploy", ""]),
            "timestamp": f"2026-11-{rng.randrange(1, 21):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:07.000Z",
            "model": rng.choice(MODELS), "speed": rng.choice([None, "standard", "fast"]),
            "inference_geo": rng.choice([None, "global", "us", ""]),
            "input_tokens": prompt - read - w5 - w1, "output_tokens": rng.randrange(0, 5000),
            "cache_write_5m_tokens": w5, "cache_write_1h_tokens": w1, "cache_read_tokens": read,
            "web_search_requests": rng.choice([0, 0, 1, 3]), "tools": rng.choice([["Bash"], [], ["Read", "Edit"]]),
        }
    return out


def price_rows(conn) -> list:
    return [tuple(row) for row in conn.execute("SELECT * FROM price_groups WHERE requests != 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10")]


def test_price_rollup_is_what_a_rebuild_computes_however_calls_were_written(tmp_path):
    records = calls()
    price = pricer(prices.load_table())
    one = db.connect(tmp_path / "one.db")
    with db.transaction(one):
        writes.merge_requests(one, records, price)
    each = db.connect(tmp_path / "each.db")
    keys = list(records)
    for key in keys[:200]:
        with db.transaction(each):
            writes.merge_requests(each, {key: records[key]}, price)
    # Later sightings of the same calls, with more output (a streamed call read twice) ...
    grown = {k: {**records[k], "output_tokens": records[k]["output_tokens"] + 7} for k in keys[:50]}
    with db.transaction(each):
        writes.merge_requests(each, grown, price)
    # ... a replay of a call under another request id (folded into one row) ...
    replay = {**records[keys[3]], "key": "m3:other", "request_id": "other", "is_sidechain": 1}
    with db.transaction(each):
        writes.merge_requests(each, {"m3:other": replay}, price)
    for key in keys[200:]:
        with db.transaction(each):
            writes.merge_requests(each, {key: records[key]}, price)
    # ... sub-agents named after their calls were stored, and a re-pricing.
    with db.transaction(each):
        writes.name_subagents(each, {("s1", "a1"): "Plan", ("s2", "a2"): "Explore"}, [])
    writes.reprice_calls(each, lambda row: (7, "computed") if row.get("model") == "gpt-4o" else price(row))
    assert price_rows(one)  # something to compare
    for conn in (one, each):
        stored = price_rows(conn)
        with db.transaction(conn):
            rollup.rebuild_prices(conn)
        assert price_rows(conn) == stored
    # Every call is in the rollup once, with its cost.
    calls_, cost = each.execute("SELECT count(*), coalesce(sum(cost_nanousd), 0) FROM requests").fetchone()
    assert tuple(each.execute("SELECT sum(requests), sum(cost_nanousd) FROM price_groups").fetchone()) == (calls_, cost)


@pytest.mark.parametrize("kwargs", [
    {"by": ("project",)},
    {"by": ("model", "agent", "skill")},
    {"by": ("agent",), "only": "(main)"},
    {"by": ("project",), "only": "/home/dev/acme"},
    {"by": ("skill",), "only": "(none)"},
    {"by": ("project", "agent"), "to_model": "claude-haiku-4-5"},
    {"by": ("model",), "from_model": "claude-opus-4-5-20251101"},
])
def test_whatif_from_the_rollup_equals_whatif_from_the_calls(tmp_path, kwargs):
    conn = db.connect(tmp_path / "c.db")
    table = prices.load_table()
    with db.transaction(conn):
        writes.merge_requests(conn, calls(), pricer(table))
    for name in ("7d", "30d", "all"):
        p = timeframe.period(name, NOW, timeframe.local_zone("UTC"))
        assert cache.rollup_prices(rates.price_shape(window_models(conn, p) + ["claude-sonnet-4-5"], table, p, NOW))
        from_rollup = cache.whatif(conn, p, NOW, table=table, source="rollup", **kwargs)
        assert from_rollup["rows"], name
        assert from_rollup == cache.whatif(conn, p, NOW, table=table, source="requests", **kwargs)
        assert cache.whatif(conn, p, NOW, table=table, **kwargs) == from_rollup


def test_the_dashboards_whatif_is_the_whatif_command(tmp_path):
    """The dashboard's what-if section sums the same rollup as `costhook whatif`: a call
    whose token count is missing (NULL) is in the lowest tier in both (the dashboard's pass
    over the calls put it by the tokens it had)."""
    from costhook.dashboard import note

    records = calls()
    odd = next(r for r in records.values() if r["model"].startswith("claude-opus-4-5") and r["timestamp"] >= "2026-11-14")
    odd.update(input_tokens=None, cache_read_tokens=250_000, cache_write_5m_tokens=0, cache_write_1h_tokens=0)
    conn = db.connect(tmp_path / "c.db")
    table = prices.load_table()
    with db.transaction(conn):
        writes.merge_requests(conn, records, pricer(table))
    utc = timeframe.local_zone("UTC")
    week = timeframe.period("7d", NOW, utc)
    data = note.collect(conn, {}, NOW, utc, table, tmp_path / "c.db")
    assert data["whatif"]["rows"]
    assert data["whatif"] == cache.whatif(conn, week, NOW, by=("project", "agent", "skill"), table=table, source="requests")


def test_a_pass_for_one_result_gives_what_the_whole_pass_gives(tmp_path):
    """`sequence(results=...)` skips the columns and work of the result not asked for;
    what it returns is the same (tools, heartbeats and run ids decide turns; tokens, prices
    and the next call's cache read decide groups)."""
    records = calls()
    for i, record in enumerate(records.values()):
        record["is_heartbeat"] = int(i % 11 == 0)
        record["run_id"] = f"run{i // 5}" if i % 3 == 0 else None
    conn = db.connect(tmp_path / "c.db")
    table = prices.load_table()
    with db.transaction(conn):
        writes.merge_requests(conn, records, pricer(table))
    for name in ("7d", "all"):
        p = timeframe.period(name, NOW, timeframe.local_zone("UTC"))
        whole = calls_pass(conn, p, table)
        assert whole["groups"] and whole["turns"]
        assert calls_pass(conn, p, table, results=("groups",))["groups"] == whole["groups"]
        assert calls_pass(conn, p, table, results=("turns",))["turns"] == whole["turns"]


def calls_pass(conn, p, table, **kwargs):
    from costhook.views.calls import sequence

    return sequence(conn, p, NOW, table, **kwargs)


def test_whatif_reads_the_calls_where_the_rollup_cannot_price_them():
    """A tier boundary that is no prompt band (a config price "above 150000") or a price by
    the time of day cannot be told from the rollup's rows: whatif then reads the calls."""
    assert cache.rollup_prices(rates.PriceShape([200_000, 272_000], True, False))
    assert cache.rollup_prices(rates.PriceShape([], False, False))
    assert not cache.rollup_prices(rates.PriceShape([150_000], False, False))
    assert not cache.rollup_prices(rates.PriceShape([200_000], False, True))
