"""Model prices and the exact cost of one API call.

Standard library only, and cheap to import: the hook prices calls on every tool call.
The bundled table (`data/prices.json`, exported from genai-prices by
`scripts/export_prices.py`) and its hand-kept corrections (`data/price_corrections.json`)
are read once per process, on first use.

All arithmetic is on integers: prices are pico-USD (1e-12) per token or per request,
a call's cost is summed in pico-USD and rounded half-up once, to nano-USD (1e-9).
"""

from __future__ import annotations

import os
from bisect import bisect_left

from costhook import paths

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing costs the hook ~10 ms to import
    from collections.abc import Mapping

__all__ = [
    "PriceTable",
    "iteration_costs",
    "load_table",
    "model_key",
    "normalize_model",
    "price_call",
    "price_record",
    "table_info",
]

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PRICES_PATH = os.path.join(DATA_DIR, "prices.json")
CORRECTIONS_PATH = os.path.join(DATA_DIR, "price_corrections.json")

TOKEN_KEYS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
PRICE_KEYS = TOKEN_KEYS + ("web_search",)
OVERRIDE_KEYS = frozenset(PRICE_KEYS + ("match",))
# Multipliers from the USD amounts people write to integer pico-USD per unit.
USD_PER_MTOK = 10**6  # USD per million tokens -> pico-USD per token
USD_PER_REQUEST = 10**12  # USD per request -> pico-USD per request

# Bedrock spellings: "[region.]vendor.model[-vN:M]".
_BEDROCK_REGIONS = frozenset({"us", "eu", "apac", "au", "ca", "jp", "us-gov", "global"})
_BEDROCK_VENDORS = frozenset({"anthropic", "openai", "mistral", "deepseek", "meta", "xai", "google"})


class PriceTable:
    """Bundled prices with corrections applied, plus the user's overrides.

    Models are plain dicts as in prices.json, with prices in pico-USD. A plain class
    rather than a dataclass: importing dataclasses costs the hook ~10 ms.
    """

    __slots__ = ("info", "providers", "extra", "replaced", "geo_models", "geo_factor", "_cache", "_rates")

    def __init__(self, info, providers, extra, replaced, geo_models, geo_factor):
        self.info = info  # provenance
        self.providers = providers  # [(provider match clause or None, [model, ...]), ...]
        self.extra = extra  # user models and their match clauses, checked first
        self.replaced = replaced  # bundled model id -> user model replacing its prices
        self.geo_models = geo_models  # model ids billed 1.1x for inference_geo "us"
        self.geo_factor = geo_factor  # (numerator, denominator)
        self._cache = {}  # model as the agent spelt it -> model dict or None
        self._rates = {}  # what _rates_of remembers

    def __repr__(self):
        return f"<PriceTable {table_info(self)}>"


# Loading ------------------------------------------------------------------------------

def price_config_error(message: str) -> Exception:
    """errors.PriceConfigError, its module imported only when an override is bad (the hook
    prices calls and pays for every module it loads)."""
    from costhook.errors import PriceConfigError

    return PriceConfigError(message)


def load_table(overrides: Mapping[str, Mapping] | None = None) -> PriceTable:
    """The bundled table, with the user's `[prices]` config layered on top.

    `overrides` maps a model id to {input, output, cache_write_5m, cache_write_1h,
    cache_read} in USD per million tokens, optional `web_search` in USD per request and
    optional `match` (exact ids, or "prefix*"). An id that names a bundled model replaces
    that model's prices (tiers and fast mode included) wherever it matches; any other id
    adds a model. Missing cache prices fall back to the input price.
    """
    base = _base()
    if not overrides:
        return base
    extra, replaced = [], {}
    bundled_ids = {m["id"] for _, models in base.providers for m in models}
    if not hasattr(overrides, "items"):
        raise price_config_error("prices: expected a table of models")
    for model_id, spec in overrides.items():
        entry = _override_entry(str(model_id), spec)
        extra.append(entry)
        if entry["id"] in bundled_ids:
            replaced[entry["id"]] = entry
    return PriceTable(base.info, base.providers, extra, replaced, base.geo_models, base.geo_factor)


def _base() -> PriceTable:
    """The bundled table, or the one `costhook prices update` wrote when it is usable and
    not older (see choose_table). Built once per process and costhook home."""
    user_path = paths.prices_file()
    table = _base_tables.get(user_path)
    if table is None:
        table = _base_tables[user_path] = choose_table(user_path)
    return table


_base_tables: dict = {}  # user table path -> PriceTable


def forget_tables() -> None:
    """Build the table again on next use (after `costhook prices update` wrote a new one)."""
    _base_tables.clear()

USER_TABLE_MAX_BYTES = 8 << 20  # the bundled table is ~150 KB; anything far bigger is not ours


def choose_table(user_path: str) -> PriceTable:
    """The user's rebuilt table at `user_path` when it exists, builds, and was exported from
    a genai-prices at least as new as the bundled table's; else the bundled table. A broken
    user table never breaks pricing: it is logged to errors.log and set aside (`costhook
    prices` and `costhook doctor` say why)."""
    from costhook import jsontext

    with open(PRICES_PATH, "rb") as f:
        bundled = jsontext.loads(f.read())
    with open(CORRECTIONS_PATH, "rb") as f:
        corrections = jsontext.loads(f.read())
    if not os.path.lexists(user_path):
        return build_table(bundled, corrections, PRICES_PATH)
    try:
        problem = paths.insecurity(user_path, kind="price table")
        if problem:
            raise ValueError(problem)
        raw = paths.read_regular(user_path, USER_TABLE_MAX_BYTES + 1)
        if len(raw) > USER_TABLE_MAX_BYTES:
            raise ValueError(f"larger than {USER_TABLE_MAX_BYTES >> 20} MB")
        data = jsontext.loads(raw)
        if not isinstance(data, dict) or data.get("format") != 1:
            raise ValueError("not a costhook price table (format 1)")
        newer = version_key(data["source"]["version"]) >= version_key(bundled["source"]["version"])
        user = build_table(data, corrections, user_path, check=True) if newer else None
    except Exception as exc:  # anything at all: a bad file must not stop the hook pricing calls
        paths.log_error(f"prices {user_path}", exc)
        reason = f"unusable: {type(exc).__name__}: {exc}"[:300]
    else:
        if user is not None:
            return user
        reason = f"genai-prices {data['source']['version']} is older than the bundled table's {bundled['source']['version']}"
    table = build_table(bundled, corrections, PRICES_PATH)
    table.info["set_aside"] = {"path": user_path, "reason": reason}
    return table


def build_table(data: dict, corrections: dict, path: str, *, check: bool = False) -> PriceTable:
    """A PriceTable from an exported table (prices.json's shape) with the corrections
    applied. With `check`, every match clause and price set is checked first (a table
    from outside the package): one that could make price_call fail raises here instead."""
    if not isinstance(data.get("providers"), list) or not isinstance(data.get("source"), dict):
        raise ValueError("expected a source and a list of providers")
    source = data["source"]
    for key in ("package", "version", "exported", "command"):
        if not isinstance(source.get(key), str):
            raise ValueError(f"source.{key}: missing")
    if check:
        for provider in data["providers"]:
            if not isinstance(provider, dict) or not isinstance(provider.get("id"), str) \
                    or not isinstance(provider.get("models"), list):
                raise ValueError("a provider without an id or a list of models")
            if provider.get("match") is not None:
                _check_clause(provider["match"], f"provider {provider['id']!r}")
    providers = [(p["match"], p["models"]) for p in data["providers"]]
    by_id = {}
    for _, models in providers:
        for m in models:
            if check:
                check_model(m)
            by_id[m["id"]] = m
    applied = []
    for model_id, fix in corrections["models"].items():
        where = f"price_corrections.json: {model_id}"
        model = by_id.get(model_id)
        if model is None:  # a model genai-prices does not list yet
            model = by_id[model_id] = {"id": model_id, "match": fix["match"]}
            provider = next(p for p in data["providers"] if p["id"] == fix["provider"])
            provider["models"].append(model)
        for field in ("prices", "fast"):
            if field in fix:
                model[field] = [_price_set_from_usd(s, f"{where} {field}") for s in fix[field]]
        applied.append(model_id)
    geo = corrections["inference_geo_us"]
    info = dict(source)
    info["models"] = len(by_id)
    info["corrections"] = applied
    info["path"] = path
    return PriceTable(info, providers, [], {}, frozenset(geo["models"]), _fraction(geo["multiplier"], "inference_geo_us"))


def check_model(model) -> None:
    """Raise ValueError unless `model` is a model entry price_call can use."""
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        raise ValueError(f"model {model!r}: expected an object with an id")
    where = f"model {model['id']!r}"
    _check_clause(model.get("match"), where)
    for field in ("prices", "fast"):
        sets = model.get(field, [])
        if not isinstance(sets, list):
            raise ValueError(f"{where}: {field}: expected a list")
        for price_set in sets:
            _check_price_set(price_set, f"{where} {field}", tiers=True)
    service_tiers = model.get("service_tier", {})
    if not isinstance(service_tiers, dict):
        raise ValueError(f"{where}: service_tier: expected an object")
    for tier, sets in service_tiers.items():
        if not isinstance(sets, list):
            raise ValueError(f"{where}: service_tier {tier}: expected a list")
        for price_set in sets:
            _check_price_set(price_set, f"{where} service_tier {tier}", tiers=True)


def _check_clause(clause, where: str) -> None:
    if not isinstance(clause, dict) or len(clause) != 1:
        raise ValueError(f"{where}: bad match clause")
    ((kind, arg),) = clause.items()
    if kind in ("or", "and") and isinstance(arg, list):
        for inner in arg:
            _check_clause(inner, where)
    elif kind not in ("starts_with", "equals", "contains", "ends_with", "regex") or not isinstance(arg, str):
        raise ValueError(f"{where}: bad match clause {kind!r}")


def _check_price_set(price_set, where: str, *, tiers: bool) -> None:
    if not isinstance(price_set, dict):
        raise ValueError(f"{where}: expected a price set")
    for key, value in price_set.items():
        if key in PRICE_KEYS or key == "above":
            if type(value) is not int or value < 0:
                raise ValueError(f"{where}.{key}: expected a non-negative integer")
        elif key == "since":
            if not (isinstance(value, str) and len(value) == 10):
                raise ValueError(f"{where}.since: expected YYYY-MM-DD")
        elif key == "hours":
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(h, str) for h in value)):
                raise ValueError(f"{where}.hours: expected [start, end]")
        elif key == "tiers" and tiers and isinstance(value, list):
            for tier in value:
                _check_price_set(tier, f"{where}.tiers", tiers=False)
                if "above" not in tier:
                    raise ValueError(f"{where}.tiers: a tier without 'above'")
        else:
            raise ValueError(f"{where}.{key}: unknown key")


def version_key(version: str) -> tuple:
    """"0.2.10" -> (0, 2, 10): a release's numeric parts, compared as numbers."""
    parts = []
    for part in str(version).split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple(parts)


def _override_entry(model_id: str, spec) -> dict:
    where = f'prices."{model_id}"'
    if not hasattr(spec, "items"):
        raise price_config_error(f"{where}: expected a table of prices")
    for key in spec:
        if key not in OVERRIDE_KEYS:
            raise price_config_error(f"{where}.{key}: unknown key (expected one of {', '.join(sorted(OVERRIDE_KEYS))})")
    for key in ("input", "output"):
        if key not in spec:
            raise price_config_error(f"{where}.{key}: missing")
    normalized = normalize_model(model_id)
    clauses = [{"equals": normalized}]
    patterns = spec.get("match", [])
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)):
        raise price_config_error(f"{where}.match: expected a list of model ids or prefixes ending in *")
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip("*"):
            raise price_config_error(f"{where}.match: {pattern!r} is not a model id or prefix*")
        if "*" in pattern[:-1]:
            raise price_config_error(f"{where}.match: {pattern!r}: only a trailing * is supported")
        if pattern.endswith("*"):
            clauses.append({"starts_with": normalize_model(pattern[:-1])})
        else:
            clauses.append({"equals": normalize_model(pattern)})
    prices = {key: spec[key] for key in PRICE_KEYS if key in spec}
    return {
        "id": normalized,
        "match": {"or": clauses},
        "prices": [_price_set_from_usd(prices, where)],
        "source": "config",
    }


def _price_set_from_usd(spec, where: str) -> dict:
    """{key: USD amount} (and tiers, since/hours) -> the same shape in pico-USD."""
    out = {}
    for key, value in spec.items():
        if key in TOKEN_KEYS:
            out[key] = _pico(value, USD_PER_MTOK, f"{where}.{key}")
        elif key == "web_search":
            out[key] = _pico(value, USD_PER_REQUEST, f"{where}.{key}")
        elif key == "tiers":
            out[key] = [
                {"above": int(tier["above"]), **_price_set_from_usd(_without(tier, "above"), f"{where}.tiers")}
                for tier in value
            ]
        elif key in ("since", "hours"):
            out[key] = value
        else:
            raise price_config_error(f"{where}.{key}: unknown key")
    return out


def _without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


def _decimal(value, where: str) -> tuple[int, int]:
    """A non-negative number or numeric string as exact (digits, power of ten)."""
    is_decimal = hasattr(value, "as_tuple") and hasattr(value, "is_finite")  # decimal.Decimal
    if isinstance(value, bool) or not (isinstance(value, (int, float, str)) or is_decimal):
        raise price_config_error(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int):
        digits, exponent = value, 0
    else:
        # repr() of a float is the shortest decimal that reads back the same: 3.75 -> "3.75"
        text = repr(value) if isinstance(value, float) else str(value).strip()
        if text.startswith("-"):
            raise price_config_error(f"{where}: must not be negative, got {value!r}")
        mantissa, e, exp_text = text.lower().removeprefix("+").partition("e")
        whole, _, frac = mantissa.partition(".")
        exp_digits = exp_text.removeprefix("-").removeprefix("+")
        if not (whole + frac).isdecimal() or not (whole + frac).isascii() or (e and not exp_digits.isdecimal()):
            raise price_config_error(f"{where}: expected a number, got {value!r}")
        digits, exponent = int(whole + frac), (int(exp_text) if e else 0) - len(frac)
    if digits < 0:
        raise price_config_error(f"{where}: must not be negative, got {value!r}")
    return digits, exponent


def _pico(value, multiplier: int, where: str) -> int:
    digits, exponent = _decimal(value, where)
    scaled = digits * multiplier
    if exponent >= 0:
        return scaled * 10**exponent
    quotient, remainder = divmod(scaled, 10**-exponent)
    if remainder:
        raise price_config_error(f"{where}: {value!r} is more precise than 1e-12 USD per unit")
    return quotient


def _fraction(value, where: str) -> tuple[int, int]:
    digits, exponent = _decimal(value, where)
    return (digits * 10**exponent, 1) if exponent >= 0 else (digits, 10**-exponent)


# Model ids ----------------------------------------------------------------------------


def normalize_model(model: str) -> str:
    """The model id as the price table spells it: lower case, no provider or cloud dressing.

    "openrouter/anthropic/claude-sonnet-4.5" -> "claude-sonnet-4.5"
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0" -> "claude-sonnet-4-5-20250929"
    "claude-sonnet-4-5@20250929" (Vertex) -> "claude-sonnet-4-5-20250929"
    "Claude-Opus-4-6[1m]" -> "claude-opus-4-6"
    Date suffixes are kept: some providers price dated snapshots differently.
    """
    m = model.strip().lower()
    if m.endswith("]") and "[" in m:  # Claude Code's "[1m]" context marker
        m = m[: m.rindex("[")].rstrip()
    m = m.rpartition("/")[2]  # "anthropic/", "openrouter/anthropic/", "publishers/.../models/"
    head, dot, rest = m.partition(".")
    if dot and head in _BEDROCK_REGIONS:  # "us.anthropic.claude-..."
        head, dot, rest = rest.partition(".")
    if dot and head in _BEDROCK_VENDORS:  # "anthropic.claude-...-v1:0"
        m = rest
        base, colon, revision = m.rpartition(":")
        if colon and revision.isdigit():
            m = base
        base, dash_v, version = m.rpartition("-v")
        if dash_v and version.isdigit():
            m = base
    return m.replace("@", "-")  # Vertex: "claude-opus-4-1@20250805"


def model_key(model: str, table: PriceTable | None = None) -> str | None:
    """The id of the price-table model that prices `model`, or None when it is unpriced."""
    entry = _lookup(model, table or _base())
    return entry["id"] if entry else None


def _lookup(model: str, table: PriceTable) -> dict | None:
    if not model or not isinstance(model, str) or model == "<synthetic>":
        return None
    cache = table._cache
    if model in cache:
        return cache[model]
    ref = normalize_model(model)
    entry = None
    for candidate in _candidates(ref):
        entry = _first_match(table.extra, candidate) or _find_bundled(table, candidate)
        if entry is not None:
            entry = table.replaced.get(entry["id"], entry)
            break
    if entry is not None and not entry["prices"]:
        entry = None  # priced only in units costhook does not record
    if len(cache) >= 10_000:  # hostile input: endless made-up model names
        cache.clear()
    cache[model] = entry
    return entry


def _candidates(ref: str):
    yield ref
    import re

    # genai-prices' own fallback: compact dates as LiteLLM/OpenRouter write them.
    dashed = re.sub(
        r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)",
        lambda d: f"-{d[2]}-{d[3]}-{d[4]}",
        ref,
    )
    if dashed != ref:
        yield dashed
    # A snapshot newer than the table: price it as its undated family.
    undated = re.sub(r"-(\d{8}|\d{4}-\d{2}-\d{2})$", "", ref)
    if undated != ref and undated:
        yield undated


def _find_bundled(table: PriceTable, ref: str) -> dict | None:
    # Like genai-prices: the first provider whose own clause matches the id...
    tried = []
    for provider_match, models in table.providers:
        if provider_match is not None and _matches(provider_match, ref):
            found = _first_match(models, ref)
            if found is not None:
                return found
            tried.append(models)
    # ... then, unlike genai-prices (which gives up), every other provider's models.
    for _, models in table.providers:
        if not any(models is t for t in tried):
            found = _first_match(models, ref)
            if found is not None:
                return found
    return None


def _first_match(models, ref: str) -> dict | None:
    for model in models:
        if _matches(model["match"], ref):
            return model
    return None


_regex_cache: dict = {}
_REGEX_META = frozenset("\\.^$*+?{}[]|()")


def _matches(clause: dict, ref: str) -> bool:
    ((kind, arg),) = clause.items()
    if kind == "starts_with":
        return ref.startswith(arg)
    if kind == "equals":
        return ref == arg
    if kind == "contains":
        return arg in ref
    if kind == "ends_with":
        return ref.endswith(arg)
    if kind == "or":
        return any(_matches(c, ref) for c in arg)
    if kind == "and":
        return all(_matches(c, ref) for c in arg)
    if kind == "regex":
        return _regex_match(arg, ref)
    raise ValueError(f"unknown match clause {kind!r}")


def _regex_match(pattern: str, ref: str) -> bool:
    cached = _regex_cache.get(pattern)
    if cached is None:
        cached = _regex_cache[pattern] = [_literal_prefix(pattern), None]
    prefix, compiled = cached
    if not ref.startswith(prefix):
        return False  # skips compiling the patterns of unrelated models
    if compiled is None:
        import re

        compiled = cached[1] = re.compile(pattern)
    return compiled.search(ref) is not None


def _literal_prefix(pattern: str) -> str:
    """The literal text an anchored pattern must start with ("" when unsure)."""
    if not pattern.startswith("^") or "|" in pattern:
        return ""
    end = 1
    while end < len(pattern) and pattern[end] not in _REGEX_META:
        end += 1
    prefix = pattern[1:end]
    if end < len(pattern) and pattern[end] in "?*{":
        prefix = prefix[:-1]  # the last literal may be optional or repeated
    return prefix


# Prices -------------------------------------------------------------------------------


def price_call(
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_write_5m_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    cache_read_tokens: int = 0,
    web_search_requests: int = 0,
    speed: str | None = None,
    inference_geo: str | None = None,
    timestamp: str | None = None,
    table: PriceTable | None = None,
    service_tier: str | None = None,
) -> int | None:
    """The cost of one API call in integer nano-USD, or None when the model is unpriced.

    `input_tokens` is uncached input only (Anthropic's meaning); the prompt size that
    selects long-context tiers is input + cache reads + cache writes. `timestamp` is
    ISO 8601 (default now); prices that changed over time are chosen by its UTC date.
    `service_tier` (flex, priority, ...: OpenAI's) picks that tier's prices where the
    table has them; any other tier is billed at the standard price.
    """
    counts = (input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens)
    return _price_counts(model, counts, web_search_requests, speed, inference_geo, timestamp, table or _base(),
                         service_tier)


def _price_counts(model: str, counts: tuple, web_search_requests: int, speed, inference_geo, timestamp,
                  table: PriceTable, service_tier) -> int | None:
    """price_call's cost, its arguments in order (price_record calls it for every call)."""
    entry = _lookup(model, table)
    if entry is None:
        return None
    day, clock = _utc_day_and_time(timestamp)
    scaled = _scaled_cost(entry, table, counts, web_search_requests, speed, inference_geo, day, clock, model,
                          service_tier)
    return _round_nano(scaled, table)


def _scaled_cost(entry: dict, table: PriceTable, counts: tuple, web_search_requests: int, speed, inference_geo,
                 day: str, clock: str, model: str, service_tier: str | None = None) -> int:
    """One sampling's exact cost in pico-USD times the table's regional-uplift denominator
    (so that samplings of one call add up exactly before the single rounding)."""
    if min(counts) < 0 or web_search_requests < 0:
        raise ValueError(f"negative token count for {model!r}")
    input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens = counts
    prompt = input_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens
    rates = _rates_of(table, entry, day, clock, prompt, speed == "fast", service_tier)

    inp = rates.get("input", 0)
    write_5m = rates.get("cache_write_5m", inp)
    token_pico = (
        input_tokens * inp
        + output_tokens * rates.get("output", 0)
        + cache_write_5m_tokens * write_5m
        + cache_write_1h_tokens * rates.get("cache_write_1h", write_5m)
        + cache_read_tokens * rates.get("cache_read", inp)
    )
    web_pico = web_search_requests * rates.get("web_search", 0)

    denominator = table.geo_factor[1]
    numerator = denominator
    if inference_geo and inference_geo.lower() == "us" and entry["id"] in table.geo_models:
        numerator = table.geo_factor[0]  # token part only, not web search
    return token_pico * numerator + web_pico * denominator


def _round_nano(scaled: int, table: PriceTable) -> int:
    scale = 1000 * table.geo_factor[1]
    return (2 * scaled + scale) // (2 * scale)  # nano-USD, half-up


# Iterations ---------------------------------------------------------------------------
#
# A response's `usage.iterations` lists every sampling the API ran for the request: the
# model's own (`message`, or `fallback_message` when a fallback model served it), a
# server-side compaction's summarisation pass (`compaction`), and the advisor tool's
# sub-inference (`advisor_message`, at the advisor's own `model`). The top-level counts
# are the `message` samplings only, so the bill is the iterations, each at its own model
# (the call's when none is named) and its own prompt size's tier. Transcript readers store
# them (usage.ITERATION_FIELDS per entry) as JSON text in the call's `iterations` column.

MESSAGE_ITERATIONS = frozenset({"message", "fallback_message"})
ADVISOR_ITERATION = "advisor_message"
ITERATION_TOKENS = ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")


def iterations_of(record: dict) -> list | None:
    """The stored iterations of a call record (JSON text or a list), else None."""
    value = record.get("iterations")
    if not value:
        return None
    if isinstance(value, str):
        from costhook import jsontext

        try:
            value = jsontext.loads(value)
        except ValueError:
            return None
    if not isinstance(value, list) or not value or not all(isinstance(i, dict) for i in value):
        return None
    return value


def billed_samplings(record: dict, iterations: list) -> list:
    """What the API bills for a call with iterations, one entry per sampling:
    (type, model, (input, output, cache 5m, cache 1h, cache read), speed).

    The `message`-type iterations replace the top-level counts (they are what the top
    level sums); every other iteration is billed beside them. A call whose iterations
    name no message sampling keeps its top-level counts as the message part. An advisor
    runs at standard speed (fast mode is the call's model's); the region is the request's.
    """
    model = record.get("model") or ""
    speed = record.get("speed")
    out = []
    if not any(i.get("type") in MESSAGE_ITERATIONS for i in iterations):
        out.append(("message", model, tuple(record.get(k) or 0 for k in ITERATION_TOKENS), speed))
    for it in iterations:
        kind = it.get("type") if isinstance(it.get("type"), str) else ""
        own = it.get("model") if isinstance(it.get("model"), str) and it.get("model") else model
        counts = tuple(_count(it.get(k)) for k in ITERATION_TOKENS)
        out.append((kind, own, counts, None if kind == ADVISOR_ITERATION else speed))
    return out


def _count(value) -> int:
    return value if type(value) is int and value >= 0 else 0


def iteration_costs(record: dict, table: PriceTable | None = None) -> list | None:
    """Each billed sampling of a call with iterations as {type, model, token counts, speed,
    cost_nanousd (None when its model is unpriced)}; None for a call without."""
    iterations = iterations_of(record)
    if iterations is None:
        return None
    table = table or _base()
    day, clock = _utc_day_and_time(record.get("timestamp"))
    geo = record.get("inference_geo")
    rows = []
    for kind, model, counts, speed in billed_samplings(record, iterations):
        entry = _lookup(model, table)
        cost = None if entry is None else _round_nano(
            _scaled_cost(entry, table, counts, 0, speed, geo, day, clock, model), table)
        rows.append({"type": kind, "model": model, **dict(zip(ITERATION_TOKENS, counts)), "speed": speed,
                     "cost_nanousd": cost})
    return rows


def price_record(record: dict, table: PriceTable | None = None) -> int | None:
    """The cost of a stored call record in nano-USD (None when unpriced): its top-level
    counts, or, when it carries iterations, every sampling at its own model and tier,
    rounded once. An iteration at a model the table does not price leaves the whole call
    unpriced rather than silently under-counted."""
    table = table or _base()
    model = record.get("model") or ""
    iterations = iterations_of(record)
    web = record.get("web_search_requests") or 0
    if iterations is None:
        get = record.get
        counts = (get("input_tokens") or 0, get("output_tokens") or 0, get("cache_write_5m_tokens") or 0,
                  get("cache_write_1h_tokens") or 0, get("cache_read_tokens") or 0)
        return _price_counts(model, counts, web, get("speed"), get("inference_geo"), get("timestamp"), table,
                             get("service_tier"))
    call_entry = _lookup(model, table)
    if call_entry is None:
        return None
    day, clock = _utc_day_and_time(record.get("timestamp"))
    geo, speed = record.get("inference_geo"), record.get("speed")
    # Web searches are the request's, billed once at the call's model.
    total = _scaled_cost(call_entry, table, (0, 0, 0, 0, 0), web, speed, geo, day, clock, model)
    for _kind, own, counts, own_speed in billed_samplings(record, iterations):
        entry = _lookup(own, table)
        if entry is None:
            return None
        total += _scaled_cost(entry, table, counts, 0, own_speed, geo, day, clock, own)
    return _round_nano(total, table)


def _rates_of(table: PriceTable, entry: dict, day: str, clock: str, prompt: int, fast: bool,
              service_tier: str | None) -> dict:
    """_rates, remembered in the table (read-only): the same for every call of a model on
    one day whose prompt passes the same tier boundaries (and, for a price by the hour, at
    the same time): ~0.8 of the ~4.1 µs a call's price took; an import prices every call."""
    memo = table._rates
    marks = memo.get(id(entry))
    if marks is None:
        tiers = (entry.get("service_tier") or {}).values()
        sets = [*entry["prices"], *entry.get("fast", ()), *(price_set for sets_ in tiers for price_set in sets_)]
        bounds = sorted({tier["above"] for price_set in sets for tier in price_set.get("tiers", ())})
        marks = memo[id(entry)] = (bounds, any("hours" in price_set for price_set in sets))
    if service_tier is not None and not isinstance(service_tier, str):
        return _rates(entry, day, clock, prompt, fast, service_tier)
    bounds, hourly = marks
    key = (id(entry), day, clock if hourly else None, bisect_left(bounds, prompt) if bounds else 0, fast, service_tier)
    rates = memo.get(key)
    if rates is None:
        if len(memo) > 10_000:  # (hostile input: endless days and tiers)
            memo.clear()
        rates = memo[key] = _rates(entry, day, clock, prompt, fast, service_tier)
    return rates


def _rates(entry: dict, day: str, clock: str, prompt: int, fast: bool, service_tier: str | None = None) -> dict:
    sets = entry["prices"]
    chosen = sets[0]  # genai-prices: the last active set, else the first
    for price_set in reversed(sets):
        if _active(price_set, day, clock):
            chosen = price_set
            break
    rates = _tiered(chosen, prompt)
    variants = list(entry["fast"]) if fast and "fast" in entry else []
    tiers = entry.get("service_tier")
    if service_tier and tiers and isinstance(service_tier, str):
        variants += tiers.get(service_tier.lower(), ())
    seen = set()  # genai-prices: for each key, the first active variant that has it
    for variant in variants:
        if _active(variant, day, clock):
            for key, rate in _tiered(variant, prompt).items():
                if key not in seen:
                    seen.add(key)
                    rates[key] = rate
    return rates


def _tiered(price_set: dict, prompt: int) -> dict:
    rates = {key: price_set[key] for key in PRICE_KEYS if key in price_set}
    for tier in price_set.get("tiers", ()):
        if prompt > tier["above"]:
            for key in PRICE_KEYS:
                if key in tier:
                    rates[key] = tier[key]
    return rates


def _active(price_set: dict, day: str, clock: str) -> bool:
    since = price_set.get("since")
    if since is not None and day < since:
        return False
    hours = price_set.get("hours")
    if hours is not None:
        start, end = hours  # "HH:MM", end exclusive; compares correctly with "HH:MM:SS"
        if start <= end:
            return start <= clock < end
        return clock >= start or clock < end
    return True


def _utc_day_and_time(timestamp: str | None) -> tuple[str, str]:
    """("YYYY-MM-DD", "HH:MM:SS") in UTC."""
    import time

    if timestamp is None:
        now = time.gmtime()
        return time.strftime("%Y-%m-%d", now), time.strftime("%H:%M:%S", now)
    ts = timestamp.strip()
    offset = ts[19:].lstrip(".0123456789") if len(ts) > 19 else ""
    if offset in ("", "Z", "z", "+00:00", "-00:00", "+0000"):
        day, clock = ts[:10], ts[11:19].rstrip("Zz") or "00:00:00"
    else:
        from datetime import datetime, timezone

        utc = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc)
        day, clock = utc.strftime("%Y-%m-%d"), utc.strftime("%H:%M:%S")
    if len(day) != 10 or day[4] != "-" or day[7] != "-" or not (day[:4] + day[5:7] + day[8:]).isdigit():
        raise ValueError(f"not an ISO 8601 timestamp: {timestamp!r}")
    return day, clock


def table_info(table: PriceTable | None = None) -> dict:
    """Where the prices come from: source, version, export date, model counts, the file
    (bundled or rebuilt), a rebuilt table set aside and why, the config's overrides."""
    table = table or _base()
    info = table.info
    return {
        "source": info["package"],
        "version": info["version"],
        "exported": info["exported"],
        "command": info["command"],
        "models": info["models"],
        "corrections": list(info["corrections"]),
        "overrides": [entry["id"] for entry in table.extra],
        "path": info["path"],
        "bundled": info["path"] == PRICES_PATH,  # else rebuilt by `costhook prices update`
        "set_aside": info.get("set_aside"),  # {path, reason}: a rebuilt table not used, and why
    }


def pricer(table=None, *, load=None):
    """`price(record) -> (cost_nanousd, cost_source)` for store.writes.merge_requests: a call
    record's price, else the agent's own reported cost, else unpriced.

    `load()` (instead of `table`) builds the price table on the first call that needs it:
    most hook runs have nothing new to price and skip reading the table altogether.
    """
    tables = [table]

    def prepare() -> None:
        """Build the table now: callers do it before taking the write lock, so no other
        process waits while the prices (or a changed config) are read."""
        if tables[0] is None and load is not None:
            tables[0] = load()

    def price(record: dict):
        prepare()
        cost = price_record(record, tables[0])
        if cost is not None:
            return cost, "computed"
        reported = record.get("reported_cost_nanousd")
        if reported is not None:
            return reported, "reported"
        return None, "unpriced"

    price.prepare = prepare
    return price


def model_entry(model: str, table: PriceTable) -> dict | None:
    """The price-table model that prices `model` (user models first), as the table holds it."""
    model_id = model_key(model, table)
    if model_id is None:
        return None
    if model_id in table.replaced:
        return table.replaced[model_id]
    for entry in table.extra:
        if entry["id"] == model_id:
            return entry
    for _, models in table.providers:
        for entry in models:
            if entry["id"] == model_id:
                return entry
    return None


def price_sets(model: str, table: PriceTable) -> list:
    """Every price set of the model pricing `model`: the regular ones, then fast mode's."""
    entry = model_entry(model, table)
    return list(entry.get("prices") or []) + list(entry.get("fast") or []) if entry else []
