"""scripts/export_prices.py: the committed price table is what the export produces."""

import importlib.util
import json
from decimal import Decimal
from pathlib import Path

import pytest

from costhook.pricing import prices as pricing

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "export_prices.py"


@pytest.fixture(scope="module")
def exporter():
    pytest.importorskip("genai_prices")
    spec = importlib.util.spec_from_file_location("export_prices", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def committed():
    return Path(pricing.PRICES_PATH).read_text()


def test_export_reproduces_committed_file(exporter, committed):
    source = json.loads(committed)["source"]
    installed = exporter.version("genai-prices")
    if installed != source["version"]:
        pytest.skip(f"prices.json is from genai-prices {source['version']}, installed is {installed}")
    assert exporter.dumps(exporter.export(source["exported"])) == committed


def test_committed_file_is_compact_and_exact(committed):
    assert len(committed.encode()) < 200_000
    data = json.loads(committed)
    assert [p["id"] for p in data["providers"]] == ["anthropic", "openai", "google", "x-ai", "deepseek", "mistral"]

    def check(price_set):
        for key, value in price_set.items():
            if key == "tiers":
                for tier in value:
                    check(tier)
            elif key not in ("since", "hours"):
                assert type(value) is int and value >= 0, (key, value)

    for provider in data["providers"]:
        for model in provider["models"]:
            for price_set in model["prices"] + model.get("fast", []):
                check(price_set)


def test_inexact_price_fails_the_export(exporter):
    assert exporter.to_pico(Decimal("3.75"), 10**6, "x") == 3_750_000
    with pytest.raises(exporter.ExportError):
        exporter.to_pico(Decimal("0.0000001"), 10**6, "x")
