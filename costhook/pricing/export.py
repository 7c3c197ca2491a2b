"""Build costhook's price table from the installed genai-prices package.

Used by `scripts/export_prices.py` (the bundled `data/prices.json`) and by `costhook prices
update` (a table rebuilt into the costhook home, so a newer genai-prices reaches users
without a costhook release). Imports genai-prices (pydantic, a 1.6 MB data module): never
on the hook's path, which reads the exported JSON with the standard library alone
(prices.py). The CLI checks that genai-prices is installed before importing this module.

Every price is stored as an integer: pico-USD per token (USD per million tokens x 1e6)
and pico-USD per web search request (USD per 1,000 requests x 1e9), so costs are sums of
integer products. The export fails if any price does not convert exactly.

Kept: match clauses (as data), date- and time-of-day-effective price sets, long-context
tiers, `speed=fast` variants, service-tier variants (OpenAI's flex, priority, ...: what a
Codex rollout records) and web-search prices. Dropped: batch variants, and units costhook
never records (audio, images, documents, storage ...).
Models priced only in dropped units stay in the table with no price sets, so they still
match (and report "unpriced") instead of falling through to a wrong model; models that
genai-prices lists as free keep an empty price set (cost 0).
"""

import datetime
import json
import os
from decimal import Decimal
from importlib.metadata import version

from genai_prices import types
from genai_prices.data import providers as ALL_PROVIDERS

from costhook import paths
from costhook.pricing import prices

PROVIDERS = ["anthropic", "openai", "google", "x-ai", "deepseek", "mistral"]

# genai-prices price key -> (costhook key, multiplier to integer pico-USD per unit)
PRICE_KEYS = {
    "input_mtok": ("input", 10**6),
    "output_mtok": ("output", 10**6),
    "cache_write_mtok": ("cache_write_5m", 10**6),
    "cache_write_1h_mtok": ("cache_write_1h", 10**6),
    "cache_read_mtok": ("cache_read", 10**6),
    "web_searches_kcount": ("web_search", 10**9),
}
TOKEN_KEYS = {"input", "output", "cache_write_5m", "cache_write_1h", "cache_read"}

UNITS = {
    "input, output, cache_write_5m, cache_write_1h, cache_read": (
        "integer pico-USD per token (= USD per million tokens x 1e6)"
    ),
    "web_search": "integer pico-USD per request (= USD per 1,000 requests x 1e9)",
    "cache_write_5m": (
        "genai-prices' cache_write_mtok: every cache write not priced more specifically, "
        "so 1-hour writes too when a model has no cache_write_1h"
    ),
    "missing keys": (
        "cache_read and cache_write_5m fall back to input; cache_write_1h to "
        "cache_write_5m, then input; others cost nothing (genai-prices semantics)"
    ),
    "prices": (
        "price sets tried last to first: the last whose 'since' (UTC date) and 'hours' "
        "(UTC time-of-day window, end exclusive) both hold wins; if none holds, the first"
    ),
    "tiers": (
        "when the prompt (input + cache reads + cache writes) is above 'above', the whole "
        "request is billed at the tier's rates; keys a tier omits keep the lower rate"
    ),
    "fast": (
        "speed=fast variants, first to last, skipping those whose 'since' is in the "
        "future; for each key the first variant that has it replaces the standard price "
        "(and its tiers)"
    ),
    "service_tier": (
        "service tier -> variants (a call's recorded service_tier: flex, priority, ...), "
        "applied like 'fast' (after it, when both apply); a tier not listed is billed at "
        "the standard price"
    ),
}


class ExportError(Exception):
    pass


def to_pico(value: Decimal, multiplier: int, where: str) -> int:
    scaled = value * multiplier
    if scaled != scaled.to_integral_value() or scaled < 0:
        raise ExportError(f"{where}: {value} does not convert exactly to integer pico-USD")
    return int(scaled)


def clause(logic) -> dict:
    """A genai-prices match clause as plain data; literals lower-cased (matching is)."""
    if isinstance(logic, types.ClauseOr):
        return {"or": [clause(c) for c in logic.or_]}
    if isinstance(logic, types.ClauseAnd):
        return {"and": [clause(c) for c in logic.and_]}
    if isinstance(logic, types.ClauseRegex):
        return {"regex": logic.regex}
    for kind in ("starts_with", "ends_with", "contains", "equals"):
        if hasattr(logic, kind):
            return {kind: getattr(logic, kind).lower()}
    raise ExportError(f"unknown match clause {logic!r}")


def price_set(model_price: types.ModelPrice, where: str) -> dict:
    """Flat prices plus a merged list of tiers: {"above": threshold, key: price, ...}."""
    out: dict = {}
    tiers: dict[int, dict] = {}
    for gp_key, value in model_price.__dict__.items():
        if value is None or gp_key not in PRICE_KEYS:
            continue
        key, multiplier = PRICE_KEYS[gp_key]
        if isinstance(value, types.TieredPrices):
            if key not in TOKEN_KEYS:
                raise ExportError(f"{where}: tiered {gp_key} is not supported")
            out[key] = to_pico(value.base, multiplier, f"{where} {gp_key}")
            for tier in value.tiers:
                tiers.setdefault(tier.start, {"above": tier.start})[key] = to_pico(
                    tier.price, multiplier, f"{where} {gp_key} tier {tier.start}"
                )
        else:
            out[key] = to_pico(value, multiplier, f"{where} {gp_key}")
    out = {key: out[key] for key, _ in PRICE_KEYS.values() if key in out}
    if tiers:
        out["tiers"] = [tiers[start] for start in sorted(tiers)]
    return out


def hhmm(value: datetime.time, where: str) -> str:
    if value.second or value.microsecond:
        raise ExportError(f"{where}: time {value} has seconds")
    offset = value.utcoffset()
    if offset:  # naive or UTC only: constraints in the data are UTC
        raise ExportError(f"{where}: time {value} is not UTC")
    return f"{value.hour:02d}:{value.minute:02d}"


def constraint(c, where: str) -> dict:
    if c is None:
        return {}
    if isinstance(c, types.StartDateConstraint):
        return {"since": c.start_date.isoformat()}
    if isinstance(c, types.TimeOfDateConstraint):
        return {"hours": [hhmm(c.start_time, where), hhmm(c.end_time, where)]}
    raise ExportError(f"{where}: unknown constraint {c!r}")


def model_entry(model: types.ModelInfo, where: str) -> dict:
    entry = {"id": model.id}
    if model.name:
        entry["name"] = model.name
    entry["match"] = clause(model.match)
    conditional = (
        model.prices
        if isinstance(model.prices, list)
        else [types.ConditionalPrice(prices=model.prices)]
    )
    sets, non_token = [], 0
    for cp in conditional:
        prices = price_set(cp.prices, f"{where} prices")
        if not prices and any(v is not None for v in cp.prices.__dict__.values()):
            non_token += 1  # priced only in units we drop (audio hours, pages ...)
        sets.append({**constraint(cp.constraint, where), **prices})
    if non_token == len(sets):
        sets = []  # matches, but unpriced for costhook
    elif non_token:
        raise ExportError(f"{where}: some price sets have no token prices")
    entry["prices"] = sets
    fast = [
        {**constraint(v.constraint, where), **price_set(v.prices, f"{where} fast")}
        for v in model.price_variants or ()
        if v.when == {"speed": "fast"}
    ]
    if fast and sets:
        entry["fast"] = fast
    tiers: dict = {}
    for v in model.price_variants or ():
        tier = v.when.get("service_tier") if set(v.when) == {"service_tier"} else None
        prices = price_set(v.prices, f"{where} service_tier {tier}") if tier else {}
        if prices:  # "default" is the standard price: no variant
            tiers.setdefault(tier, []).append({**constraint(v.constraint, where), **prices})
    if tiers and sets:
        entry["service_tier"] = {tier: tiers[tier] for tier in sorted(tiers)}
    return entry


def export(export_date: str, command: str = "python scripts/export_prices.py") -> dict:
    by_id = {p.id: p for p in ALL_PROVIDERS}
    seen_ids: set[str] = set()
    earlier: list[types.Provider] = []
    providers = []
    for provider_id in PROVIDERS:
        provider = by_id[provider_id]
        models = []
        for model in provider.models:
            if model.id in seen_ids or any(p.model_match and p.model_match.is_match(model.id) for p in earlier):
                # Google (Vertex) repeats the Claude models: ids that name another
                # provider's model are priced by that provider once normalised.
                continue
            seen_ids.add(model.id)
            models.append(model_entry(model, f"{provider_id}/{model.id}"))
        earlier.append(provider)
        providers.append(
            {
                "id": provider_id,
                "match": clause(provider.model_match) if provider.model_match else None,
                "models": models,
            }
        )
    return {
        "format": 1,
        "source": {
            "package": "genai-prices",
            "version": version("genai-prices"),
            "exported": export_date,
            "command": command,
        },
        "units": UNITS,
        "providers": providers,
    }


def dumps(table: dict) -> str:
    """Indented JSON with one model per line: compact, and diffs read well."""
    one_line = lambda value: json.dumps(value, separators=(",", ":"))  # noqa: E731
    lines = ["{"]
    for key in ("format", "source", "units"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(table[key], indent=2)},".replace("\n", "\n  "))
    lines.append('  "providers": [')
    for i, provider in enumerate(table["providers"]):
        lines.append(
            f'    {{"id": {json.dumps(provider["id"])}, "match": {one_line(provider["match"])}, "models": ['
        )
        models = provider["models"]
        for j, model in enumerate(models):
            lines.append("      " + one_line(model) + ("," if j < len(models) - 1 else ""))
        lines.append("    ]}" + ("," if i < len(table["providers"]) - 1 else ""))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- costhook prices update


def rebuild(export_date: str) -> dict:
    """Rebuild the price table from the installed genai-prices into the costhook home
    (paths.prices_file: 0600, in a 0700 folder, replaced atomically), where prices.py
    prefers it to the bundled table. Returns what changed: {"before", "after" (table_info of
    the table in use before and after), "written" (False when the installed genai-prices
    is older than the bundled table: nothing is written), "added", "removed", "changed"
    (model ids)}. Raises ExportError, or ValueError for a table that would not load."""
    import json

    before_table = prices.choose_table(paths.prices_file())
    before = prices.table_info(before_table)
    table = export(export_date, command="costhook prices update")
    text = dumps(table)
    bundled_version = _bundled_source()["version"]
    if prices.version_key(table["source"]["version"]) < prices.version_key(bundled_version):
        return {"before": before, "after": before, "written": False, "added": [], "removed": [], "changed": [],
                "bundled_version": bundled_version}
    with open(prices.CORRECTIONS_PATH, "rb") as f:
        prices.build_table(json.loads(text), json.load(f), "(new)", check=True)  # loads, or raises: nothing written
    with open(before["path"], "rb") as f:
        old_models = _models(json.load(f))
    new_models = _models(table)
    path = paths.prices_file()
    problem = paths.insecurity(path, kind="price table")
    if problem:
        raise ValueError(problem)
    write_private(path, text)
    prices.forget_tables()
    after = prices.table_info(prices.choose_table(path))
    return {
        "before": before,
        "after": after,
        "written": True,
        "added": sorted(set(new_models) - set(old_models)),
        "removed": sorted(set(old_models) - set(new_models)),
        "changed": sorted(m for m in set(old_models) & set(new_models) if old_models[m] != new_models[m]),
        "bundled_version": bundled_version,
    }


def _bundled_source() -> dict:
    import json

    with open(prices.PRICES_PATH, "rb") as f:
        return json.load(f)["source"]


def _models(table: dict) -> dict:
    """model id -> what prices it (its match clause, price sets and fast mode)."""
    return {m["id"]: (m.get("match"), m.get("prices"), m.get("fast")) for p in table["providers"] for m in p["models"]}


def write_private(path: str, text: str) -> None:
    """Write `text` to `path` atomically: a new 0600 file beside it (in a 0700 folder),
    flushed to disk, then renamed over it, so a reader sees the old table or the new one."""
    folder = os.path.dirname(path) or "."
    paths.ensure_private_dir(folder)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
