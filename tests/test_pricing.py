"""costhook.pricing: exact costs, model ids, corrections, overrides, import weight.

Expected costs come from the shared Claude Code fixtures (their README, "Expected cost");
the per-message numbers are copied here so the suite runs from a plain clone.
"""

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import genai_prices
import pytest
from genai_prices.data import providers as GENAI_PROVIDERS
from genai_prices.data_snapshot import get_snapshot

from costhook.pricing import prices as pricing
from costhook.errors import PriceConfigError
from costhook.pricing.prices import (
    load_table,
    model_key,
    normalize_model,
    price_call,
    table_info,
)


def call(model, usage, **kwargs):
    """usage = (input, output, cache_write_5m, cache_write_1h, cache_read, web_searches)."""
    inp, out, cw5, cw1, read, web = usage
    return price_call(
        model,
        input_tokens=inp,
        output_tokens=out,
        cache_write_5m_tokens=cw5,
        cache_write_1h_tokens=cw1,
        cache_read_tokens=read,
        web_search_requests=web,
        **kwargs,
    )


# (1) Fixture costs -------------------------------------------------------------------

# acme-api main session, Opus 4.5, messages A..F after de-duplication.
ACME_MAIN = [
    (3, 187, 2450, 16000, 0, 0),  # A
    (5, 96, 1200, 0, 18450, 0),  # B
    (4, 71, 640, 0, 19650, 0),  # C
    (6, 158, 910, 0, 20290, 0),  # D
    (7, 412, 0, 1480, 21200, 2),  # E: two web searches
    (4, 58, 350, 0, 22680, 0),  # F
]
# Sub-agent, Haiku 4.5: S1, S2.
ACME_SUBAGENT = [(10, 88, 5200, 0, 0, 0), (8, 310, 640, 0, 5200, 0)]
# bigctx, Sonnet 4.5: L1 (prompt 210,000), L2 (prompt 254,200), L3 (small).
BIGCTX = [(210000, 1500, 0, 0, 0, 0), (1200, 2200, 8000, 0, 245000, 0), (50, 300, 0, 0, 12000, 0)]
# legacy v1.0.8 sessions: G, J Opus 4; H, I Sonnet 4; K Opus 4.1 (no cache split: all 5m).
G = ("claude-opus-4-20250514", (12, 420, 3000, 0, 9000, 0))
H = ("claude-sonnet-4-20250514", (20, 350, 4100, 0, 0, 0))
I = ("claude-sonnet-4-20250514", (15, 200, 500, 0, 4100, 0))  # noqa: E741
J = ("claude-opus-4-20250514", (9, 250, 800, 0, 12000, 0))
K = ("claude-opus-4-1-20250805", (6, 130, 300, 0, 12800, 0))


def nano(*terms):
    """Sum of (tokens, "USD per MTok") in nano-USD, exactly."""
    return int(sum(Decimal(tokens) * Decimal(rate) for tokens, rate in terms) * 1000)


def test_acme_main_session_opus_4_5_with_web_search():
    costs = [call("claude-opus-4-5-20251101", u, timestamp="2026-11-18T09:00:05.010Z") for u in ACME_MAIN]
    assert sum(costs) == 305_317_500  # $0.3053175
    # Message A alone: 1h writes at the model's own 1h rate ($10), not 2x by rule.
    assert costs[0] == 3 * 5000 + 187 * 25000 + 2450 * 6250 + 16000 * 10000
    # Message E: $0.01 per web search.
    assert costs[4] == nano((7, "5"), (412, "25"), (1480, "10"), (21200, "0.5")) + 2 * 10_000_000


def test_acme_subagent_haiku_4_5():
    costs = [call("claude-haiku-4-5-20251001", u, timestamp="2026-11-18T09:01:00.000Z") for u in ACME_SUBAGENT]
    assert sum(costs) == 9_828_000  # $0.009828


def test_bigctx_sonnet_4_5_whole_request_at_long_context_rates():
    costs = [call("claude-sonnet-4-5-20250929", u, timestamp="2026-11-19T14:00:41.000Z") for u in BIGCTX]
    assert costs[1] == 263_700_000  # $0.2637, not ccusage's per-bucket $0.1536
    assert sum(costs) == 1_565_700_000  # $1.5657


def test_legacy_sessions():
    a = [call(model, usage, timestamp="2025-06-10T08:00:06.000Z") for model, usage in (G, H, I, J)]
    b = [call(model, usage, timestamp="2025-06-11T10:00:09.000Z") for model, usage in (J, K)]
    assert sum(a) == 180_150_000  # $0.18015
    assert sum(b) == 86_550_000  # $0.08655


# List prices as Claude Code 2.1.330's own catalog has them (USD per MTok):
# input, 5m write, 1h write, cache read, output.
REFERENCE_PRICES = {
    "claude-opus-4-20250514": ("15", "18.75", "30", "1.5", "75"),
    "claude-opus-4-1-20250805": ("15", "18.75", "30", "1.5", "75"),
    "claude-opus-4-5-20251101": ("5", "6.25", "10", "0.5", "25"),
    "claude-opus-4-6": ("5", "6.25", "10", "0.5", "25"),
    "claude-opus-4-7": ("5", "6.25", "10", "0.5", "25"),
    "claude-opus-4-8": ("5", "6.25", "10", "0.5", "25"),
    "claude-opus-5": ("5", "6.25", "10", "0.5", "25"),
    "claude-opus-5-5": ("4", "5", "8", "0.2", "20"),
    "claude-3-7-sonnet-20250219": ("3", "3.75", "6", "0.3", "15"),
    "claude-sonnet-4-20250514": ("3", "3.75", "6", "0.3", "15"),
    "claude-sonnet-4-5-20250929": ("3", "3.75", "6", "0.3", "15"),
    "claude-sonnet-4-6": ("3", "3.75", "6", "0.3", "15"),
    "claude-sonnet-5": ("2", "2.5", "4", "0.2", "10"),
    "claude-sonnet-5-5": ("2", "2.5", "4", "0.1", "10"),
    "claude-3-5-haiku-20241022": ("0.8", "1", "1.6", "0.08", "4"),
    "claude-haiku-4-5-20251001": ("1", "1.25", "2", "0.1", "5"),
    "claude-haiku-5-5": ("0.1", "0.125", "0.2", "0.01", "0.5"),
    "claude-fable-5": ("10", "12.5", "20", "1", "50"),
    "claude-mythos-5": ("10", "12.5", "20", "1", "50"),
    "claude-fable-5-1": ("10", "12.5", "20", "0.25", "50"),
    "claude-mythos-5-1": ("10", "12.5", "20", "0.25", "50"),
    "claude-fable-5-2": ("8", "10", "16", "0.2", "40"),
    "claude-mythos-5-2": ("8", "10", "16", "0.2", "40"),
}


@pytest.mark.parametrize("model", sorted(REFERENCE_PRICES))
def test_list_prices_match_claude_code_catalog(model):
    inp, write_5m, write_1h, read, out = REFERENCE_PRICES[model]
    ts = "2026-11-18T09:00:00Z"
    assert call(model, (1000, 0, 0, 0, 0, 0), timestamp=ts) == nano((1000, inp))
    assert call(model, (0, 0, 1000, 0, 0, 0), timestamp=ts) == nano((1000, write_5m))
    assert call(model, (0, 0, 0, 1000, 0, 0), timestamp=ts) == nano((1000, write_1h))
    assert call(model, (0, 0, 0, 0, 1000, 0), timestamp=ts) == nano((1000, read))
    assert call(model, (0, 1000, 0, 0, 0, 0), timestamp=ts) == nano((1000, out))
    assert call(model, (0, 0, 0, 0, 0, 1), timestamp=ts) == 10_000_000  # $0.01 per web search


def test_haiku_5_5_prompt_tier_at_100k():
    at = (100_000, 1000, 0, 0, 0, 0)
    over = (100_001, 1000, 0, 0, 0, 0)
    assert call("claude-haiku-5-5", at) == nano((100_000, "0.1"), (1000, "0.5"))
    assert call("claude-haiku-5-5", over) == nano((100_001, "0.5"), (1000, "2.5"))


# (2) Parity with genai-prices ---------------------------------------------------------

CORRECTED_SONNET_4 = "claude-sonnet-4-0"
CORRECTED_FAST_OPUS_4_6 = "claude-opus-4-6"
FAST_OPUS_4_6_ENDED = datetime(2026, 6, 30, tzinfo=timezone.utc)  # price_corrections.json


def requires_exported_version():
    if genai_prices.__version__ != table_info()["version"]:
        pytest.skip(
            f"prices.json was exported from genai-prices {table_info()['version']}, "
            f"installed is {genai_prices.__version__}: re-run scripts/export_prices.py"
        )


def genai_nano(model, usage, when, fast, provider_id=None):
    """genai-prices' price for the same call, in nano-USD rounded half-up (None: no model)."""
    inp, out, cw5, cw1, read, web = usage
    try:
        result = genai_prices.calc_price(
            genai_prices.Usage(
                # genai-prices' input_tokens is the whole prompt, as its Anthropic
                # extractor builds it; cache_write_tokens is every write, 1h included.
                input_tokens=inp + read + cw5 + cw1,
                output_tokens=out,
                cache_read_tokens=read,
                cache_write_tokens=cw5 + cw1,
                cache_write_1h_tokens=cw1,
                web_searches=web,
            ),
            model,
            provider_id=provider_id,
            genai_request_timestamp=when,
            price_context={"speed": "fast"} if fast else None,
        )
    except LookupError:
        return None
    return int((result.total_price * 10**9).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def random_usage(rng):
    """Token counts that often land on, just below and just above the 100k/200k tiers."""
    web = rng.choice([0, 0, 0, 1, 2, 7])
    shape = rng.random()
    if shape < 0.3:
        small = rng.randint
        return (small(0, 5000), small(0, 5000), small(0, 3000), small(0, 3000), small(0, 50000), web)
    if shape < 0.8:
        prompt = rng.choice([100_000, 200_000, 199_999, 272_000]) + rng.randint(-2, 2)
    else:
        prompt = rng.randint(0, 1_200_000)
    # split the prompt over uncached input, 5m writes, 1h writes and reads
    cuts = sorted(rng.randint(0, prompt) for _ in range(3))
    inp, cw5, cw1, read = cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], prompt - cuts[2]
    if rng.random() < 0.3:
        cw1 = 0
    if rng.random() < 0.2:
        cw5 = read = 0
    return (inp, rng.randint(0, 64000), cw5, cw1, read, web)


def random_time(rng):
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return start + timedelta(seconds=rng.randint(0, 3 * 365 * 86400))


def anthropic_refs():
    """Every Anthropic model id genai-prices knows, plus the API ids Claude Code writes."""
    provider = next(p for p in GENAI_PROVIDERS if p.id == "anthropic")
    return sorted({m.id for m in provider.models}) + [
        "claude-opus-4-5-20251101",
        "claude-sonnet-4-20250514",
        "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5-20251001",
        "claude-3-7-sonnet-20250219",
        "claude-3-5-haiku-20241022",
        "claude-opus-4-1-20250805",
        "claude-opus-4-20250514",
        "claude-opus-5-20260115",
        "claude-haiku-5-5-20261001",
    ]


def expected_with_corrections(ref, usage, when, fast):
    """genai-prices' answer, adjusted where price_corrections.json documents a fix."""
    key = model_key(ref)
    inp, out, cw5, cw1, read, web = usage
    if key == CORRECTED_SONNET_4 and inp + cw5 + cw1 + read > 200_000:
        # Sonnet 4 above 200K is billed like Sonnet 4.5 (whose tier genai-prices has).
        return genai_nano("claude-sonnet-4-5", usage, when, False, "anthropic")
    if key == CORRECTED_FAST_OPUS_4_6 and fast and when >= FAST_OPUS_4_6_ENDED:
        return genai_nano(ref, usage, when, False, "anthropic")  # fast mode ended: standard rates
    if key == CORRECTED_FAST_OPUS_4_6 and fast:
        # Opus 4.6 fast mode: 6x the standard token rates that apply; web search as is.
        tokens_only = (inp, out, cw5, cw1, read, 0)
        standard = genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=inp + read + cw5 + cw1,
                output_tokens=out,
                cache_read_tokens=read,
                cache_write_tokens=cw5 + cw1,
                cache_write_1h_tokens=cw1,
            ),
            ref,
            provider_id="anthropic",
            genai_request_timestamp=when,
        ).total_price
        assert genai_nano(ref, tokens_only, when, False, "anthropic") is not None
        return int((standard * 6 * 10**9).quantize(Decimal(1), rounding=ROUND_HALF_UP)) + web * 10_000_000
    return genai_nano(ref, usage, when, fast, "anthropic")


def test_parity_with_genai_prices_anthropic():
    requires_exported_version()
    rng = random.Random(20261122)
    refs = anthropic_refs()
    mismatches = []
    for i in range(4000):
        ref = refs[i % len(refs)] if i < len(refs) else rng.choice(refs)
        usage = random_usage(rng)
        when = random_time(rng)
        fast = rng.random() < 0.4
        ours = call(
            ref,
            usage,
            speed="fast" if fast else "standard",
            timestamp=when.isoformat().replace("+00:00", "Z"),
        )
        theirs = expected_with_corrections(ref, usage, when, fast)
        if ours != theirs:
            mismatches.append((ref, usage, when.isoformat(), fast, ours, theirs))
    assert not mismatches, f"{len(mismatches)} mismatches, e.g. {mismatches[:5]}"


def test_corrections_change_only_what_they_say():
    """The parity test is not passing by accident: corrected cases do differ from genai-prices."""
    when = datetime(2026, 6, 1, tzinfo=timezone.utc)
    big = (150_000, 1000, 60_000, 0, 0, 0)  # prompt 210,000
    assert call("claude-sonnet-4-20250514", big, timestamp="2026-06-01") != genai_nano(
        "claude-sonnet-4-20250514", big, when, False, "anthropic"
    )
    small = (1000, 1000, 0, 0, 0, 0)
    assert call("claude-opus-4-6", small, speed="fast", timestamp="2026-06-01") == 6 * call(
        "claude-opus-4-6", small, timestamp="2026-06-01"
    )
    assert call("claude-opus-4-6", small, speed="fast", timestamp="2026-06-01") != genai_nano(
        "claude-opus-4-6", small, when, True, "anthropic"
    )


def test_model_key_matches_genai_prices_model():
    requires_exported_version()
    for ref in anthropic_refs():
        found = get_snapshot().find_provider_model(ref, None, "anthropic", None)[1]
        assert model_key(ref) == found.id, ref


def test_parity_with_genai_prices_other_providers():
    """OpenClaw users' providers: same prices, tiers, date and time-of-day switches."""
    requires_exported_version()
    rng = random.Random(7)
    data = json.loads(open(pricing.PRICES_PATH).read())
    refs = [m["id"] for p in data["providers"][1:] for m in p["models"] if m["prices"]]
    assert len(refs) > 150
    checked, mismatches = 0, []
    for i in range(3000):
        ref = refs[i % len(refs)]
        usage = random_usage(rng)
        when = random_time(rng)
        theirs = genai_nano(ref, usage, when, False)
        if theirs is None:
            continue  # genai-prices finds no provider for this id without a hint
        checked += 1
        ours = call(ref, usage, timestamp=when.isoformat())
        if ours != theirs:
            mismatches.append((ref, usage, when.isoformat(), ours, theirs))
    assert checked > 2000
    assert not mismatches, f"{len(mismatches)} mismatches, e.g. {mismatches[:5]}"


# (3) Model ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,normalized,key",
    [
        ("claude-opus-4-5-20251101", "claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6", "claude-opus-4-6"),
        ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic/claude-sonnet-4-20250514", "claude-sonnet-4-20250514", "claude-sonnet-4-0"),
        ("openrouter/anthropic/claude-sonnet-4.5", "claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("claude-opus-4-6[1m]", "claude-opus-4-6", "claude-opus-4-6"),
        ("Claude-Sonnet-4-5-20250929[1M]", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("  CLAUDE-HAIKU-4-5  ", "claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude-opus-4-20250514", "claude-opus-4-20250514", "claude-opus-4-0"),
        ("claude-opus-5-20260115", "claude-opus-5-20260115", "claude-opus-5"),
        # a snapshot newer than the table falls back to its undated family
        ("claude-fable-5-2-2026-12-01", "claude-fable-5-2-2026-12-01", "claude-fable-5-2"),
        # dated OpenAI snapshots keep their own (different) prices
        ("openai/gpt-4o-2024-05-13", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06", "gpt-4o"),
        ("google/gemini-2.5-pro", "gemini-2.5-pro", "gemini-2.5-pro"),
        ("deepseek/deepseek-chat", "deepseek-chat", "deepseek-chat"),
    ],
)
def test_normalize_and_match(raw, normalized, key):
    assert normalize_model(raw) == normalized
    assert model_key(raw) == key


def test_all_spellings_price_the_same():
    usage = (100, 200, 300, 400, 500, 1)
    ts = "2026-11-18T09:00:00Z"
    base = call("claude-sonnet-4-5-20250929", usage, timestamp=ts)
    for spelling in (
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "claude-sonnet-4-5@20250929",
        "anthropic/claude-sonnet-4-5",
        "claude-sonnet-4-5[1m]",
        "CLAUDE-SONNET-4-5",
    ):
        assert call(spelling, usage, timestamp=ts) == base, spelling


# (4) Unpriced -------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["<synthetic>", "", "totally-unknown-model", "claude-unknown-9", "tts-1"])
def test_unknown_models_are_unpriced(model):
    assert call(model, (10, 10, 0, 0, 0, 0)) is None
    assert model_key(model) is None


def test_free_model_costs_zero_not_none():
    assert call("gemma-3", (10, 10, 0, 0, 0, 0)) == 0


# (5) Overrides ------------------------------------------------------------------------


def test_extra_model_from_config():
    table = load_table({"my-local-model": {"input": 1, "output": "2.5"}})
    assert price_call("my-local-model", input_tokens=1_000_000, output_tokens=1_000_000, table=table) == 3_500_000_000
    # cache prices not given: billed like ordinary input
    assert call("my-local-model", (0, 0, 0, 1000, 1000, 0), table=table) == 2_000_000
    assert model_key("My-Local-Model", table) == "my-local-model"
    assert price_call("my-local-model", input_tokens=1, output_tokens=1) is None  # default table untouched


def test_override_with_all_keys_and_match_patterns():
    table = load_table(
        {
            "acme-llm": {
                "input": "0.5",
                "output": 2,
                "cache_write_5m": 0.625,
                "cache_write_1h": "1",
                "cache_read": "0.05",
                "web_search": "0.02",
                "match": ["acme-llm-*", "acme-legacy"],
            }
        }
    )
    expected = nano((1000, "0.5"), (1000, "2"), (1000, "0.625"), (1000, "1"), (1000, "0.05")) + 20_000_000
    for name in ("acme-llm", "acme-llm-v2", "vendor/ACME-Legacy"):
        assert call(name, (1000, 1000, 1000, 1000, 1000, 1), table=table) == expected, name
    assert call("acme-legacy-2", (1, 1, 0, 0, 0, 0), table=table) is None
    assert table_info(table)["overrides"] == ["acme-llm"]


def test_override_replaces_a_bundled_model_everywhere_it_matches():
    table = load_table({"claude-sonnet-4-5": {"input": 1, "output": 2}})
    big = (300_000, 1_000_000, 0, 0, 0, 1)
    # every spelling of the bundled model, no long-context tier, no web-search price
    assert call("us.anthropic.claude-sonnet-4-5-20250929-v1:0", big, table=table) == 300_000_000 + 2_000_000_000
    assert model_key("claude-sonnet-4-5-20250929", table) == "claude-sonnet-4-5"
    assert call("claude-opus-4-5", (1, 0, 0, 0, 0, 0), table=table) == 5000  # others untouched


def test_override_of_one_dated_id_leaves_the_family_alone():
    table = load_table({"claude-sonnet-4-5-20250929": {"input": "1", "output": "1"}})
    assert call("claude-sonnet-4-5-20250929", (1000, 0, 0, 0, 0, 0), table=table) == 1_000_000
    assert call("claude-sonnet-4-5", (1000, 0, 0, 0, 0, 0), table=table) == 3_000_000


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"input": -1, "output": 1}, 'prices."m".input'),
        ({"input": "-0.5", "output": 1}, 'prices."m".input'),
        ({"input": 1, "output": "cheap"}, 'prices."m".output'),
        ({"input": 1, "output": 1, "cache_read": True}, 'prices."m".cache_read'),
        ({"input": 1, "output": 1, "cache_read": "nan"}, 'prices."m".cache_read'),
        ({"input": 1, "output": 1, "inptu": 1}, 'prices."m".inptu'),
        ({"input": 1}, 'prices."m".output'),
        ({"input": "0.0000001", "output": 1}, 'prices."m".input'),
        ({"input": 1, "output": 1, "web_search": "1e-13"}, 'prices."m".web_search'),
        ({"input": 1, "output": 1, "match": ["a*b"]}, 'prices."m".match'),
        ({"input": 1, "output": 1, "match": [3]}, 'prices."m".match'),
    ],
)
def test_bad_override_names_the_key(spec, message):
    with pytest.raises(PriceConfigError) as excinfo:
        load_table({"m": spec})
    assert message in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_override_numbers_are_exact():
    # 0.1 + 0.2 style float trouble must not leak in: TOML floats become their decimal text
    table = load_table({"m": {"input": 0.1, "output": 0.2, "cache_read": "1e-6", "web_search": 1e-3}})
    assert call("m", (10**6, 10**6, 0, 0, 1, 3), table=table) == 100_000_000 + 200_000_000 + 0 + 3_000_000
    # what the pydantic config model hands over: decimals, or their JSON strings
    table = load_table({"m": {"input": Decimal("0.30"), "output": "1E+1", "cache_read": "3E-2"}})
    assert call("m", (10**6, 10**6, 0, 0, 10**6, 0), table=table) == 300_000_000 + 10_000_000_000 + 30_000_000
    with pytest.raises(PriceConfigError, match="input"):
        load_table({"m": {"input": Decimal("NaN"), "output": 1}})


# (6) inference_geo "us" -----------------------------------------------------------------


def test_us_inference_geo_is_exactly_1_1x_the_token_part():
    usage = (1000, 2000, 3000, 4000, 5000, 0)
    ts = "2026-11-18T09:00:00Z"
    standard = call("claude-opus-4-6", usage, timestamp=ts)
    assert call("claude-opus-4-6", usage, timestamp=ts, inference_geo="us") * 10 == standard * 11
    assert call("claude-opus-4-6", usage, timestamp=ts, inference_geo="global") == standard
    # web search is not part of the token price
    with_web = (1000, 2000, 3000, 4000, 5000, 3)
    assert call("claude-opus-4-6", with_web, timestamp=ts, inference_geo="us") == standard * 11 // 10 + 30_000_000
    # older models have no US-only option: no premium
    opus_4_5 = call("claude-opus-4-5", usage, timestamp=ts)
    assert call("claude-opus-4-5", usage, timestamp=ts, inference_geo="us") == opus_4_5


def test_us_inference_geo_rounds_half_up_once():
    # one 5m write on Haiku 5.5: 0.125 USD/MTok = 125 nano; x1.1 = 137.5 -> 138
    one_write, two_writes = (0, 0, 1, 0, 0, 0), (0, 0, 2, 0, 0, 0)
    assert call("claude-haiku-5-5", one_write) == 125
    assert call("claude-haiku-5-5", one_write, inference_geo="us") == 138
    # rounding happens once, on the sum: 2 x 137.5 = 275 exactly
    assert call("claude-haiku-5-5", two_writes, inference_geo="us") == 275


def test_geo_models_exist_in_table():
    corrections = json.loads(open(pricing.CORRECTIONS_PATH).read())
    for model_id in corrections["inference_geo_us"]["models"]:
        assert model_key(model_id) == model_id


# (7) Import weight ----------------------------------------------------------------------


def test_import_does_not_pull_in_heavy_modules():
    code = (
        "import sys, costhook; before = set(sys.modules); import costhook.pricing.prices as p; "
        "p.price_call('claude-opus-4-5-20251101', input_tokens=3, output_tokens=5); "
        "p.load_table({'x': {'input': '1', 'output': 2.5}}); "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    added = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split())
    heavy = {"genai_prices", "pydantic", "click", "sqlite_utils", "filelock", "typing", "dataclasses", "decimal"}
    assert "costhook.pricing" in added
    assert not {m.split(".")[0] for m in added} & heavy


# (8) Sonnet 4 long context --------------------------------------------------------------


def test_sonnet_4_long_context_correction():
    model = "claude-sonnet-4-20250514"
    at_limit = (100_000, 1000, 50_000, 20_000, 30_000, 0)  # prompt exactly 200,000: base rates
    over = (100_001, 1000, 50_000, 20_000, 30_000, 0)  # 200,001: the whole request at premium
    assert call(model, at_limit) == nano((100_000, "3"), (1000, "15"), (50_000, "3.75"), (20_000, "6"), (30_000, "0.3"))
    assert call(model, over) == nano((100_001, "6"), (1000, "22.5"), (50_000, "7.5"), (20_000, "12"), (30_000, "0.6"))
    # the same as Sonnet 4.5, which genai-prices prices this way itself
    assert call(model, over) == call("claude-sonnet-4-5-20250929", over)


# Dates, times, fast mode ---------------------------------------------------------------


def test_date_effective_prices_use_the_utc_date():
    long = (250_000, 1000, 0, 0, 0, 0)
    before = call("claude-opus-4-6", long, timestamp="2026-03-12T23:59:59.999Z")
    after = call("claude-opus-4-6", long, timestamp="2026-03-13T00:00:00.000Z")
    assert before == nano((250_000, "10"), (1000, "37.5"))  # long-context tier until 2026-03-12
    assert after == nano((250_000, "5"), (1000, "25"))
    # 01:00 at UTC+2 is still 2026-03-12 in UTC
    assert call("claude-opus-4-6", long, timestamp="2026-03-13T01:00:00+02:00") == before


def test_time_of_day_prices():
    # deepseek-chat: peak 00:30-16:30 UTC, off-peak otherwise
    peak = call("deepseek-chat", (10**6, 0, 0, 0, 0, 0), timestamp="2025-06-01T10:00:00Z")
    off_peak = call("deepseek-chat", (10**6, 0, 0, 0, 0, 0), timestamp="2025-06-01T20:00:00Z")
    assert (peak, off_peak) == (270_000_000, 135_000_000)
    assert call("deepseek-chat", (10**6, 0, 0, 0, 0, 0), timestamp="2025-06-01T16:30:00Z") == off_peak


def test_fast_mode():
    usage = (1000, 1000, 1000, 1000, 1000, 0)
    standard = call("claude-opus-4-8", usage)
    assert call("claude-opus-4-8", usage, speed="fast") == 2 * standard
    assert call("claude-opus-4-8", usage, speed="standard") == standard
    # no fast variant in the data: standard prices
    assert call("claude-haiku-4-5", usage, speed="fast") == call("claude-haiku-4-5", usage)


def test_timestamp_default_and_bad_timestamp():
    assert call("claude-opus-4-5", (1, 1, 0, 0, 0, 0)) == 30_000  # $5 + $25 per MTok
    with pytest.raises(ValueError):
        call("claude-opus-4-5", (1, 1, 0, 0, 0, 0), timestamp="yesterday")


def test_table_info():
    info = table_info()
    assert info["source"] == "genai-prices"
    assert info["version"].count(".") == 2
    assert info["exported"][:2] == "20"
    assert info["models"] > 250
    assert info["corrections"] == ["claude-sonnet-4-0", "claude-opus-4-6", "claude-mythos-5", "claude-mythos-5-1"]


def test_price_set_selection_rules():
    """genai-prices' rules: the last active set wins, else the first; time windows may wrap."""
    entry = {
        "id": "x",
        "prices": [
            {"since": "2025-01-01", "input": 1},
            {"since": "2026-01-01", "input": 2},
            {"since": "2026-01-01", "hours": ["22:00", "02:00"], "input": 3},
        ],
    }
    rates = lambda day, clock: pricing._rates(entry, day, clock, 0, False)["input"]  # noqa: E731
    assert rates("2024-06-01", "12:00:00") == 1  # nothing active yet: the first set
    assert rates("2025-06-01", "23:00:00") == 1
    assert rates("2026-06-01", "12:00:00") == 2
    assert rates("2026-06-01", "23:00:00") == 3
    assert rates("2026-06-01", "01:59:59") == 3
    assert rates("2026-06-01", "02:00:00") == 2


def test_remembered_rates_are_the_rates():
    """prices._rates_of remembers _rates per model, day, tier band, speed and service tier
    (and time, for prices by the hour): on days either side of a price change, at times
    in and out of an hourly window, with prompts on each side of every tier boundary, fast
    or not, at every service tier, twice, the rates _rates gives."""
    tiers = {"tiers": [{"above": 200_000, "input": 20}, {"above": 100_000, "input": 15}]}
    entry = {
        "id": "x",
        "prices": [
            {"since": "2025-01-01", "input": 1, "output": 5, **tiers},
            {"since": "2026-01-01", "input": 2, "output": 6},
            {"since": "2026-01-01", "hours": ["22:00", "02:00"], "input": 3, "output": 7},
        ],
        "fast": [{"input": 12, "tiers": [{"above": 272_000, "input": 24}]}],
        "service_tier": {"flex": [{"output": 1, "tiers": [{"above": 50_000, "output": 2}]}]},
    }
    table = pricing.PriceTable({}, [], [], {}, set(), (11, 10))
    for _ in range(2):
        for day in ("2024-06-01", "2025-06-01", "2026-06-01"):
            for clock in ("01:59:59", "02:00:00", "12:00:00", "22:00:00"):
                for prompt in (0, 50_000, 50_001, 100_000, 100_001, 200_000, 200_001, 272_000, 272_001):
                    for fast in (False, True):
                        for tier in (None, "flex", "FLEX", "priority"):
                            expected = pricing._rates(entry, day, clock, prompt, fast, tier)
                            assert pricing._rates_of(table, entry, day, clock, prompt, fast, tier) == expected


def test_opus_4_6_fast_mode_ended_on_2026_06_29():
    small = (1000, 1000, 0, 0, 0, 0)
    assert call("claude-opus-4-6", small, speed="fast", timestamp="2026-06-29T23:59:59Z") == 6 * call(
        "claude-opus-4-6", small, timestamp="2026-06-29T23:59:59Z")
    assert call("claude-opus-4-6", small, speed="fast", timestamp="2026-06-30T00:00:00Z") == call(
        "claude-opus-4-6", small, timestamp="2026-06-30T00:00:00Z")


# (3) OpenAI's service tiers (what a Codex rollout records) -----------------------------

SERVICE_TIERS = (None, "default", "flex", "priority", "fast")


def test_parity_with_genai_prices_openai_service_tiers():
    """Every OpenAI model genai-prices prices in tokens, at each service tier Codex records,
    on both sides of the tiers' start dates and of the 272k long-context threshold: the
    same cost as genai-prices with that tier in its price context."""
    requires_exported_version()
    provider = next(p for p in GENAI_PROVIDERS if p.id == "openai")
    refs = sorted(m.id for m in provider.models if m.price_variants and model_key(m.id) == m.id)
    assert "gpt-5.5" in refs and len(refs) > 20
    rng = random.Random(20261206)
    mismatches, tiered = [], 0
    for i in range(3000):
        ref = refs[i % len(refs)]
        inp, out, _, _, read, web = random_usage(rng)
        usage = (inp, out, 0, 0, read, web)  # OpenAI reports no cache writes here
        when = datetime(2026, 10, 12, tzinfo=timezone.utc) + timedelta(days=rng.randint(-60, 60))
        tier = rng.choice(SERVICE_TIERS)
        ours = call(ref, usage, service_tier=tier, timestamp=when.isoformat().replace("+00:00", "Z"))
        result = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=inp + read, output_tokens=out, cache_read_tokens=read, web_searches=web),
            ref, provider_id="openai", genai_request_timestamp=when,
            price_context={"service_tier": tier} if tier else None)
        theirs = int((result.total_price * 10**9).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        tiered += tier in ("flex", "priority", "fast") and ours != call(ref, usage, timestamp=when.isoformat())
        if ours != theirs:
            mismatches.append((ref, usage, when.date().isoformat(), tier, ours, theirs))
    assert not mismatches, f"{len(mismatches)} mismatches, e.g. {mismatches[:5]}"
    assert tiered > 300  # the tiers do change prices: the test is not passing by accident


def test_a_service_tier_prices_only_where_the_table_has_it():
    small = (100_000, 100_000, 0, 0, 100_000, 0)  # a 200k prompt: below the long-context tier
    at = "2026-12-06T10:00:00Z"
    standard = nano((100_000, "5"), (100_000, "30"), (100_000, "0.5"))
    assert call("gpt-5.5", small, timestamp=at) == standard
    assert call("gpt-5.5", small, timestamp=at, service_tier="default") == standard
    assert call("gpt-5.5", small, timestamp=at, service_tier="flex") == nano((100_000, "2.5"), (100_000, "15"),
                                                                             (100_000, "0.25"))
    assert call("gpt-5.5", small, timestamp=at, service_tier="priority") == nano(
        (100_000, "12.5"), (100_000, "75"), (100_000, "1.25"))
    assert call("gpt-5.5", small, timestamp=at, service_tier="no-such-tier") == standard
    assert call("gpt-5.5", small, timestamp="2026-09-01T10:00:00Z", service_tier="flex") == standard  # not yet
    assert call("claude-sonnet-4-5", (1000, 1000, 0, 0, 0, 0), service_tier="priority") == call(
        "claude-sonnet-4-5", (1000, 1000, 0, 0, 0, 0))  # no tier prices: the standard price
