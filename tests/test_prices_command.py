"""`costhook prices` and `costhook prices update` (issue 13, item 2): where the prices come
from, and a table rebuilt from the installed genai-prices that the hook then prefers —
unless it is older than the bundled one or broken, which never stops the hook pricing."""

import importlib.util
import json
import os
import stat
import subprocess

import pytest
from conftest import COSTHOOK, db_rows, run_hook
from transcript_lines import assistant

from costhook.pricing import prices

BUNDLED = json.loads(open(prices.PRICES_PATH).read())


def costhook(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert not check or proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def hook_call(tmp_path, model="claude-sonnet-4-5-20250929") -> dict:
    """Record one call through the real hook; returns its row."""
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(assistant("msg_1", model=model, input_tokens=100_000, output_tokens=0) + "\n")
    proc = run_hook({"hook_event_name": "Stop", "session_id": "s-1", "transcript_path": str(transcript)})
    assert proc.returncode == 0 and proc.stdout == b"", proc.stderr
    return db_rows("SELECT cost_nanousd, cost_source FROM requests")[0]


def user_table(home, **source) -> dict:
    """The bundled table, as `prices update` would write it, with `source` changed."""
    data = json.loads(json.dumps(BUNDLED))
    data["source"].update(command="costhook prices update", **source)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return data


def write(path, data) -> None:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    path.chmod(0o600)


def sonnet(data: dict) -> dict:
    return next(m for p in data["providers"] for m in p["models"] if m["id"] == "claude-sonnet-4-5")


def test_prices_says_where_the_table_comes_from(home, tmp_path):
    (tmp_path / "config.toml").write_text('[prices."acme-llm-1"]\ninput = 1\noutput = 2\n')
    out = costhook("prices").stdout
    assert f"table       {prices.PRICES_PATH} (bundled with costhook)" in out
    assert f"genai-prices {BUNDLED['source']['version']}, exported {BUNDLED['source']['exported']}" in out
    assert "overrides   acme-llm-1" in out
    data = json.loads(costhook("prices", "--format", "json").stdout)
    assert (data["bundled"], data["path"], data["overrides"], data["set_aside"]) == (True, prices.PRICES_PATH, ["acme-llm-1"], None)
    assert data["version"] == BUNDLED["source"]["version"] and data["rebuilt_path"] == str(home / "prices.json")


def test_prices_update_rebuilds_the_table_privately_and_it_is_used(home, tmp_path):
    pytest.importorskip("genai_prices")
    out = costhook("prices", "update", "--date", "2030-01-02").stdout
    target = home / "prices.json"
    assert f"Wrote {target}" in out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and stat.S_IMODE(home.stat().st_mode) == 0o700
    written = json.loads(target.read_text())
    assert written["source"] == {**BUNDLED["source"], "exported": "2030-01-02", "command": "costhook prices update"}
    assert written["providers"] == BUNDLED["providers"]  # the installed genai-prices is the one pinned for the tests
    assert not [name for name in os.listdir(home) if name.endswith(".tmp")]
    info = json.loads(costhook("prices", "--format", "json").stdout)
    assert (info["bundled"], info["path"], info["exported"]) == (False, str(target), "2030-01-02")
    assert "rebuilt in" in costhook("doctor", check=False).stdout


def test_a_newer_rebuilt_table_prices_the_hooks_calls(home, tmp_path):
    data = user_table(home, version="99.0.0")
    sonnet(data)["prices"] = [{"input": 7_000_000, "output": 1}]  # $7 per million input tokens
    write(home / "prices.json", data)
    assert hook_call(tmp_path) == {"cost_nanousd": 700_000_000, "cost_source": "computed"}


def test_an_older_rebuilt_table_is_set_aside(home, tmp_path):
    data = user_table(home, version="0.0.1")
    sonnet(data)["prices"] = [{"input": 7_000_000, "output": 1}]
    write(home / "prices.json", data)
    assert hook_call(tmp_path) == {"cost_nanousd": 300_000_000, "cost_source": "computed"}  # bundled: $3 per million
    info = json.loads(costhook("prices", "--format", "json").stdout)
    assert info["bundled"] and "genai-prices 0.0.1 is older than the bundled table's" in info["set_aside"]["reason"]


@pytest.mark.parametrize("content", [
    "{not json",
    json.dumps({"format": 1, "source": {}, "providers": []}),
    "BAD-PRICE",  # a price that is a string: would fail inside price_call
    "BAD-CLAUSE",
])
def test_a_broken_rebuilt_table_never_stops_the_hook(home, tmp_path, content):
    if content.startswith("BAD-"):
        data = user_table(home, version="99.0.0")
        if content == "BAD-PRICE":
            sonnet(data)["prices"] = [{"input": "3"}]
        else:
            sonnet(data)["match"] = {"like": "claude-sonnet-4-5"}
        content = json.dumps(data)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    write(home / "prices.json", content)
    assert hook_call(tmp_path) == {"cost_nanousd": 300_000_000, "cost_source": "computed"}
    log = (home / "errors.log").read_text()
    assert f"prices {home / 'prices.json'}" in log and "Traceback" not in log
    assert "set aside" in costhook("prices").stdout
    doctor = costhook("doctor", check=False)
    assert doctor.returncode == 1 and "not used: unusable" in doctor.stdout


def test_prices_update_without_genai_prices_says_how_to_install_it(home, monkeypatch):
    from click.testing import CliRunner

    from costhook.cli.app import cli

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "genai_prices" else find_spec(name, *a))
    result = CliRunner().invoke(cli, ["prices", "update"])
    assert result.exit_code == 1
    assert "genai-prices is not installed" in result.output and "pip install -U genai-prices" in result.output
    assert not (home / "prices.json").exists()


def test_a_model_a_newer_table_adds_reaches_calls_already_recorded(home, tmp_path):
    """The whole story of a newer genai-prices: the call was recorded unpriced; the rebuilt
    table lists its model; doctor says so, and reprice prices it."""
    assert hook_call(tmp_path, model="acme-llm-1") == {"cost_nanousd": None, "cost_source": "unpriced"}
    data = user_table(home, version="99.0.0")
    data["providers"][0]["models"].append(
        {"id": "acme-llm-1", "match": {"equals": "acme-llm-1"}, "prices": [{"input": 2_000_000, "output": 1}]})
    write(home / "prices.json", data)
    doctor = costhook("doctor", check=False).stdout
    assert "unpriced   acme-llm-1: now in the price table; 1 older calls still unpriced — run `costhook reprice`" in doctor
    assert "Re-priced 1 of 1 calls" in costhook("reprice").stdout
    assert db_rows("SELECT cost_nanousd, cost_source FROM requests")[0] == {"cost_nanousd": 200_000_000, "cost_source": "computed"}
