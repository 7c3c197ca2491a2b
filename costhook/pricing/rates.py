"""Counterfactual prices: per-token rates read off `prices.price_call`.

Cache savings, never-read cache writes, what-if and the cost of a call by token type need
a rate per token type, not a call's price. Rates are read off `price_call` at a prompt
size inside the long-context tier of each group of calls, for the group's model, speed,
region and date, so tiers, fast mode, regional uplifts and dated price changes all apply.
The price table is read only through `prices`' public functions.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from costhook.pricing import prices
from costhook.timeframe import Period, utc_iso

# Default alternatives: one family down, to a model the bundled table prices.
CHEAPER = (("opus", "claude-sonnet-4-5"), ("mythos", "claude-opus-4-5"), ("sonnet", "claude-haiku-4-5"))


def default_target(model: str | None) -> str | None:
    """The what-if model for `model` when none is given: one family down, else None."""
    name = (model or "").lower()
    for family, target in CHEAPER:
        if family in name:
            return target
    return None


class Rates:
    """Per-token rates (pico-USD, exact fractions) read off prices.price_call for one
    model, speed, region, moment and prompt size."""

    __slots__ = ("priced", "input", "output", "cache_write_5m", "cache_write_1h", "cache_read", "web_search")

    def cost_pico(self, sums: dict) -> Fraction:
        return (sums["input_tokens"] * self.input + sums["output_tokens"] * self.output
                + sums["cache_write_5m_tokens"] * self.cache_write_5m + sums["cache_write_1h_tokens"] * self.cache_write_1h
                + sums["cache_read_tokens"] * self.cache_read + sums.get("web_search_requests", 0) * self.web_search)


_rates_cache: dict = {}


def rates(model: str, *, prompt: int, speed, geo, timestamp: str, table) -> Rates:
    """Per-token rates of `model` at this prompt size, speed, region and moment (cached)."""
    key = (id(table), model, prompt, speed, geo, timestamp)
    cached = _rates_cache.get(key)
    if cached is not None:
        return cached
    r = Rates()

    def cost(**tokens):
        return prices.price_call(model, speed=speed, inference_geo=geo, timestamp=timestamp, table=table, **tokens)

    base_tokens = {"input_tokens": prompt, "output_tokens": 0}
    base = cost(**base_tokens)
    r.priced = base is not None
    if not r.priced:
        r.input = r.output = r.cache_write_5m = r.cache_write_1h = r.cache_read = r.web_search = Fraction(0)
    else:
        # Every probe keeps the prompt at `prompt` tokens, so it stays in the group's tier.
        r.input = Fraction(base * 1000, prompt)
        r.output = Fraction(cost(input_tokens=prompt, output_tokens=1_000_000) - base, 1000)
        r.cache_write_5m = Fraction(cost(input_tokens=0, output_tokens=0, cache_write_5m_tokens=prompt) * 1000, prompt)
        r.cache_write_1h = Fraction(cost(input_tokens=0, output_tokens=0, cache_write_1h_tokens=prompt) * 1000, prompt)
        r.cache_read = Fraction(cost(input_tokens=0, output_tokens=0, cache_read_tokens=prompt) * 1000, prompt)
        r.web_search = Fraction(cost(input_tokens=prompt, output_tokens=0, web_search_requests=1000) - base)
    if len(_rates_cache) > 10_000:
        _rates_cache.clear()
    _rates_cache[key] = r
    return r


@dataclass
class PriceShape:
    """How finely calls must be grouped so that one rate set prices a whole group."""

    thresholds: list  # long-context tier boundaries (prompt tokens) of the models involved
    by_day: bool  # some price changes inside the window
    by_clock: bool  # some price depends on the time of day

    def tier_sql(self) -> str:
        prompt = "(input_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens)"
        if not self.thresholds:
            return "0"
        return " + ".join(f"({prompt} > {int(t)})" for t in self.thresholds)

    def keys_sql(self) -> list:
        keys = ["model", "speed", "inference_geo", f"{self.tier_sql()}"]
        if self.by_day:
            keys.append("substr(timestamp, 1, 10)")
        if self.by_clock:
            keys.append("substr(timestamp, 12, 5)")
        return keys

    def probe_prompt(self, tier: int) -> int:
        """A prompt size in tier `tier` (0 = below every threshold), a multiple of 10,000
        where one fits, so rates come out of price_call exactly."""
        bounds = sorted(self.thresholds)
        low = bounds[tier - 1] if tier > 0 else 0
        high = bounds[tier] if tier < len(bounds) else None
        candidate = (low // 10_000 + 1) * 10_000
        if high is None or candidate <= high:
            return candidate
        candidate = (low // 1000 + 1) * 1000
        return candidate if candidate <= high else high

    def timestamp(self, p_end: str, day: str | None, clock: str | None) -> str:
        return f"{day or p_end[:10]}T{clock or p_end[11:16]}:00.000Z"


def price_shape(models, table, p: Period, now: datetime) -> PriceShape:
    """The grouping that prices `models` exactly over period `p`: their tier thresholds, and
    whether a price changes inside it (by day) or depends on the time of day (by clock)."""
    thresholds, by_day, by_clock = set(), False, False
    first_day = p.start.date().isoformat() if p.start else "0000-00-00"
    last_day = (p.end or now).date().isoformat()
    for model in models:
        for price_set in prices.price_sets(model, table):
            for tier in price_set.get("tiers", ()):
                thresholds.add(int(tier["above"]))
            since = price_set.get("since")
            if since and first_day < since <= last_day:
                by_day = True
            if price_set.get("hours"):
                by_clock = True
    return PriceShape(sorted(thresholds), by_day, by_clock)


def group_rates(shape: PriceShape, model: str, g: dict, p: Period, now: datetime, table) -> Rates:
    """The rates of one price group (tier, speed, region, day, clock) of period `p`."""
    end = utc_iso(min(p.end, now) - timedelta(seconds=1)) if p.end else utc_iso(now)
    stamp = shape.timestamp(end, g.get("day"), g.get("clock"))
    return rates(model, prompt=shape.probe_prompt(g["tier"]), speed=g["speed"], geo=g["geo"], timestamp=stamp, table=table)


def nano(pico: Fraction) -> int:
    """Pico-USD (exact) → nano-USD, rounded half up."""
    return math.floor(pico / 1000 + Fraction(1, 2))


def tier_thresholds(model: str, table) -> list:
    """The long-context tier boundaries (prompt tokens) of `model`'s prices, ascending."""
    return sorted({int(t["above"]) for s in prices.price_sets(model, table) for t in s.get("tiers", ())})

