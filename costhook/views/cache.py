"""What the prompt cache saved and wasted, and what another model would have cost: both
price a period's calls at counterfactual rates (pricing/rates.py)."""

from datetime import datetime
from fractions import Fraction

from costhook import budgets
from costhook.pricing import prices, rates
from costhook.pricing.rates import CHEAPER, default_target
from costhook.store.rollup import PRICE_BANDS, PRICE_KEYS
from costhook.timeframe import Period
from costhook.views import report
from costhook.views.calls import sequence
from costhook.views.report import MAIN_AGENT, NONE_KEY, usd
from costhook.views.rollup import project_name, share, window_models

CACHE_RULE = ("Hit ratio = cache read / (input + cache read + cache write). Savings = what the cache reads "
              "would have cost at the input price, minus what they cost. A cache write counts as never read when "
              "the next call of the same thread (main thread or sub-agent) read no more from the cache than the "
              "writing call did, or when no call followed within the write's lifetime (5 min or 1 h); writes still "
              "inside their lifetime with no call after them are not judged yet.")


def cache_efficiency(conn, p: Period, now: datetime, table=None, session_id: str | None = None, seq=None) -> dict:
    """Cache hit ratio, dollars saved by cache reads, and cache writes never read (see CACHE_RULE)."""
    table = table or prices.load_table()
    if seq is None:
        seq = sequence(conn, p, now, table, session_id=session_id, results=("groups",))
    shape = seq["shape"]
    by_model = {}
    totals = _zero_cache()
    for key, g in seq["groups"].items():
        model, speed, geo, tier, day, clock = key[:6]
        r = rates.group_rates(shape, model or "", {"speed": speed, "geo": geo, "tier": tier, "day": day, "clock": clock}, p, now, table)
        entry = by_model.setdefault(model, _zero_cache())
        for target in (entry, totals):
            for name in ("requests", "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens"):
                target[name] += g[name]
            target["pending_write_tokens"] += g["pending"]
            target["never_read_5m_tokens"] += g["wasted_5m"]
            target["never_read_1h_tokens"] += g["wasted_1h"]
            if r.priced:
                target["savings_pico"] += g["cache_read_tokens"] * (r.input - r.cache_read)
                target["read_cost_pico"] += g["cache_read_tokens"] * r.cache_read
                target["write_cost_pico"] += g["cache_write_5m_tokens"] * r.cache_write_5m + g["cache_write_1h_tokens"] * r.cache_write_1h
                target["never_read_pico"] += g["wasted_5m"] * r.cache_write_5m + g["wasted_1h"] * r.cache_write_1h
            else:
                target["unpriced_requests"] += g["requests"]
    rows = [{"model": m, **_cache_out(v)} for m, v in sorted(by_model.items(), key=lambda kv: -kv[1]["savings_pico"])]
    return {"period": None if session_id else p.to_json(), "session_id": session_id, "rule": CACHE_RULE,
            "totals": _cache_out(totals), "by_model": rows}


def _group_key(row, shape: rates.PriceShape) -> dict:
    """A price group from a row of a what-if query (model first, then the shape's keys)."""
    g = {"model": row[0], "speed": row[1], "geo": row[2], "tier": int(row[3] or 0)}
    i = 4
    if shape.by_day:
        g["day"] = row[i]
        i += 1
    if shape.by_clock:
        g["clock"] = row[i]
    return g


def _zero_cache() -> dict:
    return {"requests": 0, "input_tokens": 0, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0,
            "pending_write_tokens": 0, "never_read_5m_tokens": 0, "never_read_1h_tokens": 0, "unpriced_requests": 0,
            "savings_pico": Fraction(0), "read_cost_pico": Fraction(0), "write_cost_pico": Fraction(0),
            "never_read_pico": Fraction(0)}


def _cache_out(s: dict) -> dict:
    prompt = s["input_tokens"] + s["cache_read_tokens"] + s["cache_write_5m_tokens"] + s["cache_write_1h_tokens"]
    written = s["cache_write_5m_tokens"] + s["cache_write_1h_tokens"]
    never = s["never_read_5m_tokens"] + s["never_read_1h_tokens"]
    return {
        "requests": s["requests"], "input_tokens": s["input_tokens"], "cache_read_tokens": s["cache_read_tokens"],
        "cache_write_5m_tokens": s["cache_write_5m_tokens"], "cache_write_1h_tokens": s["cache_write_1h_tokens"],
        "hit_ratio": round(s["cache_read_tokens"] / prompt, 6) if prompt else None,
        "saved_usd": usd(rates.nano(s["savings_pico"])),
        "cache_read_cost_usd": usd(rates.nano(s["read_cost_pico"])),
        "cache_write_cost_usd": usd(rates.nano(s["write_cost_pico"])),
        "never_read_write_tokens": never,
        "never_read_write_share": round(never / written, 6) if written else None,
        "never_read_write_cost_usd": usd(rates.nano(s["never_read_pico"])),
        "pending_write_tokens": s["pending_write_tokens"],
        "unpriced_requests": s["unpriced_requests"],
    }


WHATIF_BY = ("project", "skill", "agent", "model", "cli")
_SCOPE_SQL = {"project": "project", "skill": "skill", "agent": "agent_type", "model": "model", "cli": "agent"}


def whatif(conn, p: Period, now: datetime, *, by=("project",), to_model: str | None = None,
           from_model: str | None = None, only: str | None = None, table=None, source: str = "auto") -> dict:
    """What the period's calls would have cost on another model, from their real token
    counts: per scope value (project, skill, sub-agent type, agent CLI) and model actually used.
    From the price_groups rollup where it prices exactly (`rollup_prices`), else from the
    call rows; `source` ("rollup", "requests") forces one."""
    table = table or prices.load_table()
    by = (by,) if isinstance(by, str) else tuple(by)
    for scope in by:
        if scope not in WHATIF_BY:
            raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(WHATIF_BY)}")
    if to_model and prices.model_key(to_model, table) is None:
        raise ValueError(f"model {to_model!r} has no price; add it to the config's [prices]")
    models = window_models(conn, p)
    targets = {to_model} if to_model else {t for _, t in CHEAPER}
    shape = rates.price_shape(models + sorted(targets), table, p, now)
    # Only models with something to compare with.
    wanted = [m for m in models if (not from_model or budgets.model_matches(from_model, m))
              and (to_model or default_target(m)) and not _same_model(m, to_model or default_target(m), table)]
    scopes = [s for s in dict.fromkeys(by) if s != "model"]
    only_scope = by[0] if only is not None and len(by) == 1 else None
    only_value = None if only in (NONE_KEY, MAIN_AGENT) else only
    read = _whatif_rollup if source == "rollup" or (source == "auto" and rollup_prices(shape)) else _whatif_requests
    results = {}
    for g, scope_values, sums in read(conn, p, shape, wanted, scopes, only_scope, only_value):
        _whatif_add(results, by, g, scope_values, sums, to_model, shape, p, now, table)
    return _whatif_result(results, p, by, to_model, from_model)


_WHATIF_SUMS = ("requests", "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
                "cache_read_tokens", "web_search_requests", "cost", "unpriced")


def rollup_prices(shape: rates.PriceShape) -> bool:
    """Whether the price_groups rollup prices the calls exactly at this shape: its tier
    boundaries are prompt bands, and no price depends on the minute of the day."""
    return not shape.by_clock and set(shape.thresholds) <= set(PRICE_BANDS)


def _whatif_rollup(conn, p: Period, shape: rates.PriceShape, wanted: list, scopes: list, only_scope, only_value):
    """(price group, scope values, sums) of the wanted models' calls, from price_groups:
    a few thousand rollup rows for a month, whatever the number of calls. Groups may come
    split finer than the shape's (by band, by a NULL bit of another column): every sum,
    and a price group's cost at its rates, adds up the same."""
    if not wanted:
        return []
    first, last = p.buckets()
    where, args = "bucket >= ? AND bucket < ?", [first, last]
    where += f" AND model IN ({', '.join('?' * len(wanted))}) AND nulls & {1 << PRICE_KEYS.index('model')} = 0"
    args += wanted
    if p.cli:  # one agent CLI's calls (Period.only)
        where += f" AND agent = ? AND nulls & {1 << PRICE_KEYS.index('agent')} = 0"
        args.append(p.cli)
    if only_scope is not None:
        column = _SCOPE_SQL[only_scope]
        bit = 1 << PRICE_KEYS.index(column)
        if only_value is None:
            where += f" AND nulls & {bit}"
        else:
            where += f" AND {column} = ? AND nulls & {bit} = 0"
            args.append(only_value)
    columns = ["model", "speed", "inference_geo", "band", "nulls"] + (["substr(bucket, 1, 10)"] if shape.by_day else [])
    columns += [_SCOPE_SQL[s] for s in scopes]
    sums = ", ".join(f"sum({m})" for m in ("requests", *report.TOKEN_MEASURES, "web_search_requests", "cost_nanousd", "unpriced"))
    sql = f"""SELECT {', '.join(columns)}, {sums} FROM price_groups WHERE {where}
              GROUP BY {', '.join(str(i) for i in range(1, len(columns) + 1))} HAVING sum(requests) > 0"""
    tier_of_band = [sum(1 for bound in PRICE_BANDS[:band] if bound in shape.thresholds) for band in range(len(PRICE_BANDS) + 1)]
    speed_bit, geo_bit = 1 << PRICE_KEYS.index("speed"), 1 << PRICE_KEYS.index("inference_geo")
    out = []
    for row in conn.execute(sql, args):
        model, speed, geo, band, nulls = row[:5]
        n = 6 if shape.by_day else 5
        g = {"model": model, "speed": None if nulls & speed_bit else speed, "geo": None if nulls & geo_bit else geo,
             "tier": tier_of_band[band]}
        if shape.by_day:
            g["day"] = row[5]
        scope_values = {}
        for i, scope in enumerate(scopes):
            value = row[n + i]
            scope_values[scope] = None if nulls & (1 << PRICE_KEYS.index(_SCOPE_SQL[scope])) else value
        out.append((g, scope_values, dict(zip(_WHATIF_SUMS, row[n + len(scopes):]))))
    return out


def _whatif_requests(conn, p: Period, shape: rates.PriceShape, wanted: list, scopes: list, only_scope, only_value):
    """The same from the call rows (a price set by the time of day, a tier boundary that is
    no prompt band): one query per model actually used (the model index, small sorts)."""
    where, args = p.window().where()
    if only_scope is not None:
        where += f" AND {_SCOPE_SQL[only_scope]} IS ?"
        args.append(only_value)
    scope_cols = [f"+{_SCOPE_SQL[s]}" for s in scopes]
    keys = shape.keys_sql()[1:]  # the model is fixed per query
    sql = f"""
        SELECT {', '.join(f'{k} AS k{i}' for i, k in enumerate(keys))}{''.join(f', {c}' for c in scope_cols)},
               count(*), {', '.join(f'coalesce(sum({m}), 0)' for m in (*report.TOKEN_MEASURES, 'web_search_requests', 'cost_nanousd'))},
               sum(cost_nanousd IS NULL)
        FROM requests WHERE model = ? AND {where}
        GROUP BY {', '.join([f'k{i}' for i in range(len(keys))] + scope_cols)}"""
    out = []
    n = len(keys)
    for model in wanted:
        for row in conn.execute(sql, [model, *args]):
            out.append((_group_key((model, *row), shape), dict(zip(scopes, row[n: n + len(scopes)])),
                        dict(zip(_WHATIF_SUMS, row[n + len(scopes):]))))
    return out


def _whatif_add(results, by, g, scope_values, sums, to_model, shape, p, now, table) -> None:
    target = to_model or default_target(g["model"])
    if not target or _same_model(g["model"], target, table):
        return
    r = rates.group_rates(shape, target, g, p, now, table)
    if not r.priced:
        return
    cost = r.cost_pico(sums)
    for scope in by:
        value = g["model"] if scope == "model" else scope_values[scope]
        if value is None:
            value = MAIN_AGENT if scope == "agent" else NONE_KEY
        acc = results.setdefault((scope, value, g["model"], target),
                                 {"requests": 0, "tokens": 0, "actual": 0, "whatif": Fraction(0), "unpriced": 0})
        acc["requests"] += sums["requests"]
        acc["tokens"] += sum(sums[t] for t in report.TOKEN_MEASURES)
        acc["actual"] += sums["cost"]
        acc["unpriced"] += sums["unpriced"] or 0
        acc["whatif"] += cost


def _whatif_result(results: dict, p: Period, by, to_model, from_model) -> dict:
    rows = []
    for (scope, value, model, target), acc in results.items():
        counter = rates.nano(acc["whatif"])
        priced = acc["unpriced"] == 0
        rows.append({
            "scope": scope, "key": value, "name": project_name(value) if scope == "project" else value,
            "from_model": model, "to_model": target, "requests": acc["requests"], "tokens": acc["tokens"],
            "actual_usd": usd(acc["actual"]) if priced else None, "whatif_usd": usd(counter),
            "savings_usd": usd(acc["actual"] - counter) if priced else None,
            "savings_share": share(acc["actual"] - counter, acc["actual"]) if priced else None,
            "unpriced_requests": acc["unpriced"],
        })
    rows.sort(key=lambda r: (-(r["savings_usd"] if r["savings_usd"] is not None else -1e18), r["scope"], str(r["key"]), r["from_model"]))
    return {"period": p.to_json(), "by": list(by), "to_model": to_model, "from_model": from_model,
            "rule": "Real token counts of each call priced at the other model's prices (same tier, speed, region and "
                    "date), against what the calls cost. Quality differences are not modelled.",
            "rows": rows}


def _same_model(a: str | None, b: str, table) -> bool:
    return bool(a) and prices.model_key(a, table) == prices.model_key(b, table)

