"""Re-pricing (issue 13, item 2): a price added after calls were recorded reaches them.

`costhook reprice` prices stored calls again from their stored columns, through the same
pricer the ingest uses, in one transaction with the rollup kept exact; `costhook doctor`
says when a price is there but older calls are still unpriced. Real SQLite files and real
`costhook` processes; the in-process tests call the store's own functions."""

import json
import os
import random
import sqlite3
import subprocess

import pytest
from conftest import COSTHOOK, db_rows

from costhook.pricing import prices
from costhook.store import db, rollup, writes

BIGCTX = "2b8d4f6a-1c3e-4a5b-9d7f-0e2c4a6b8d1f"
ACME_PRICE = '[prices."acme-llm-1"]\ninput = 3\noutput = 15\ncache_read = 0.3\ncache_write_5m = 3.75\n'


def costhook(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert not check or proc.returncode == 0, proc.stderr + proc.stdout
    return proc


@pytest.fixture
def unpriced_dir(claude_dir):
    """The example tree, its bigctx session (3 calls) recorded under a model without a price."""
    for path in (claude_dir / "projects" / "-home-dev-bigctx").glob("*.jsonl"):
        path.write_text(path.read_text().replace("claude-sonnet-4-5-20250929", "acme-llm-1"))
    return claude_dir


def spend_rows(path) -> list:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM spend WHERE cost_nanousd OR tokens OR requests ORDER BY dim, key, bucket").fetchall()
    finally:
        conn.close()


def rebuilt_spend(path, tmp_path) -> list:
    """The rollup recomputed from the calls, on a copy of the database."""
    copy = tmp_path / "rebuilt.db"
    source = sqlite3.connect(path)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    rollup.rebuild_spend(target)
    target.commit()
    target.close()
    return spend_rows(copy)


def report_totals() -> dict:
    return json.loads(costhook("report", "--by", "model", "--format", "json").stdout)["totals"]


def test_reprice_prices_calls_stored_before_their_price_as_an_import_would(home, unpriced_dir, tmp_path):
    costhook("import", "--claude-dir", str(unpriced_dir), "-q")
    assert report_totals()["unpriced_requests"] == 3
    (tmp_path / "config.toml").write_text(ACME_PRICE)
    assert report_totals()["unpriced_requests"] == 3  # a price in the config alone changes nothing stored
    before = db_rows("SELECT key, cost_nanousd, cost_source FROM requests ORDER BY key")

    dry = costhook("reprice", "--dry-run").stdout
    assert "Would re-price 3 of 16 calls" in dry and "acme-llm-1" in dry and "+$0.8009" in dry
    assert "nothing written" in dry
    assert db_rows("SELECT key, cost_nanousd, cost_source FROM requests ORDER BY key") == before

    out = costhook("reprice").stdout
    assert "Re-priced 3 of 16 calls" in out and "+$0.8009" in out
    assert report_totals()["unpriced_requests"] == 0
    # exactly what importing with the price in place gives, row by row
    fresh = tmp_path / "fresh.db"
    subprocess.run([COSTHOOK, "import", "--claude-dir", str(unpriced_dir), "-q", "--db", str(fresh)], check=True,
                   env=os.environ.copy())
    conn = sqlite3.connect(fresh)
    expected = conn.execute("SELECT key, cost_nanousd, cost_source FROM requests ORDER BY key").fetchall()
    conn.close()
    assert [tuple(r.values()) for r in db_rows("SELECT key, cost_nanousd, cost_source FROM requests ORDER BY key")] == expected
    # the rollup equals a rebuild from the calls, and the fresh import's
    assert spend_rows(home / "costhook.db") == rebuilt_spend(home / "costhook.db", tmp_path) == spend_rows(fresh)
    # idempotent: nothing left to change, and it says so
    again = costhook("reprice").stdout
    assert again.startswith("Nothing to re-price: the 16 calls examined")
    data = json.loads(costhook("reprice", "--format", "json").stdout)
    assert (data["examined"], data["changed"], data["rows"]) == (16, 0, [])


def test_reprice_since_and_model_choose_the_calls(home, unpriced_dir, tmp_path):
    costhook("import", "--claude-dir", str(unpriced_dir), "-q")
    (tmp_path / "config.toml").write_text(ACME_PRICE)
    # another model: nothing of it changes
    none = json.loads(costhook("reprice", "--model", "claude-opus-4-5", "--dry-run", "--format", "json").stdout)
    assert none["matched_models"] == ["claude-opus-4-5-20251101"] and none["changed"] == 0 and none["examined"] == 6
    # the bigctx calls are on 2026-11-19 (UTC): none from the 20th on
    later = json.loads(costhook("reprice", "--since", "2026-11-20", "--tz", "UTC", "--format", "json").stdout)
    assert (later["examined"], later["changed"]) == (0, 0)
    assert report_totals()["unpriced_requests"] == 3
    # a provider spelling of the model names it too
    data = json.loads(costhook("reprice", "--model", "anthropic/acme-llm-1", "--since", "2026-11-19", "--tz", "UTC",
                               "--format", "json").stdout)
    assert data["matched_models"] == ["acme-llm-1"]
    assert (data["examined"], data["changed"], data["newly_priced"]) == (3, 3, 3)
    assert data["rows"] == [{"model": "acme-llm-1", "calls": 3, "newly_priced": 3, "now_unpriced": 0,
                             "before_usd": 0.0, "after_usd": data["after_usd"], "change_usd": data["after_usd"]}]
    assert data["after_usd"] == sum(r["cost_nanousd"] for r in db_rows(
        "SELECT cost_nanousd FROM requests WHERE model = 'acme-llm-1'")) / 1e9
    unknown = costhook("reprice", "--model", "no-such-model").stdout
    assert "Nothing to re-price: the 0 calls examined (model no-such-model (no calls recorded))" in unknown
    bad = costhook("reprice", "--since", "yesterday", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_doctor_tells_the_truth_after_a_price_is_added(home, unpriced_dir, tmp_path):
    costhook("import", "--claude-dir", str(unpriced_dir), "-q")
    first = costhook("doctor", check=False).stdout
    assert 'unpriced   acme-llm-1: 3 requests (add [prices."acme-llm-1"] to the config)' in first
    (tmp_path / "config.toml").write_text(ACME_PRICE)
    second = costhook("doctor", check=False).stdout
    assert "add [prices." not in second
    assert "unpriced   acme-llm-1: price configured; 3 older calls still unpriced — run `costhook reprice`" in second
    costhook("reprice")
    assert "unpriced" not in costhook("doctor", check=False).stdout


# ---------------------------------------------------------------- in-process, store --

TOOLS = [["Bash"], ["Bash", "Edit"], ["Read", "Grep", "Edit"], [], ["Grep", "Bash"]]


def calls(n=200, seed=7) -> dict:
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        key = f"m{i}:r{i}"
        out[key] = {
            "key": key, "agent": "claude", "message_id": f"m{i}", "request_id": f"r{i}", "session_id": f"s{i % 4}",
            "project": f"/home/dev/p{i % 3}", "timestamp": f"2026-11-{20 + i % 3}T1{i % 10}:{i % 60:02d}:00.000Z",
            "model": rng.choice(["claude-sonnet-4-5", "acme-llm-1", "acme-llm-2"]), "input_tokens": rng.randrange(1, 500),
            "output_tokens": rng.randrange(1, 500), "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0,
            "cache_read_tokens": rng.randrange(0, 70), "tools": rng.choice(TOOLS),
        }
    return out


def test_reprice_keeps_the_rollup_exact_and_is_idempotent(tmp_path):
    path = tmp_path / "c.db"
    conn = db.connect(path)
    with db.transaction(conn):
        writes.merge_requests(conn, calls(), prices.pricer(prices.load_table()))
    unpriced = conn.execute("SELECT count(*) FROM requests WHERE cost_nanousd IS NULL").fetchone()[0]
    assert unpriced > 100
    table = prices.load_table({"acme-llm-1": {"input": "3.01", "output": 7, "cache_read": "0.333"},
                               "claude-sonnet-4-5": {"input": 1, "output": 2}})  # odd prices: shares leave remainders
    result = writes.reprice_calls(conn, prices.pricer(table), since="2026-11-21")
    changed = sum(m["calls"] for m in result["models"].values())
    assert set(result["models"]) == {"acme-llm-1", "claude-sonnet-4-5"} and changed > 50
    assert spend_rows(path) == rebuilt_spend(path, tmp_path)
    # calls before --since kept their old price
    assert conn.execute("SELECT count(*) FROM requests WHERE model = 'acme-llm-1' AND cost_nanousd IS NULL "
                        "AND timestamp < '2026-11-21'").fetchone()[0] > 0
    assert writes.reprice_calls(conn, prices.pricer(table), since="2026-11-21") == {
        "examined": result["examined"], "models": {}}
    # back to the bundled prices: every changed call returns to what it was, rollup too
    writes.reprice_calls(conn, prices.pricer(prices.load_table()))
    fresh = tmp_path / "fresh.db"
    other = db.connect(fresh)
    with db.transaction(other):
        writes.merge_requests(other, calls(), prices.pricer(prices.load_table()))
    assert spend_rows(path) == spend_rows(fresh)


def test_reprice_dry_run_writes_nothing(tmp_path):
    path = tmp_path / "c.db"
    conn = db.connect(path)
    with db.transaction(conn):
        writes.merge_requests(conn, calls(), prices.pricer(prices.load_table()))
    image = path.read_bytes(), spend_rows(path), conn.execute("SELECT * FROM requests ORDER BY key").fetchall()
    table = prices.load_table({"acme-llm-2": {"input": 2, "output": 4}})
    planned = writes.reprice_calls(conn, prices.pricer(table), dry_run=True)
    assert planned["models"]["acme-llm-2"]["newly_priced"] > 0
    assert (spend_rows(path), conn.execute("SELECT * FROM requests ORDER BY key").fetchall()) == image[1:]
    assert writes.reprice_calls(conn, prices.pricer(table)) == planned


def test_reprice_prices_reported_calls_and_keeps_the_reported_cost(tmp_path):
    """OpenClaw's own cost stands for a model costhook cannot price; once it can, costhook's
    computed cost counts (as for a new call), and the reported cost stays beside it."""
    conn = db.connect(tmp_path / "c.db")
    record = {"key": "openclaw:r1@1", "agent": "openclaw", "session_id": "s", "timestamp": "2026-11-20T10:00:00.000Z",
              "model": "acme-llm-1", "input_tokens": 1000, "output_tokens": 100, "reported_cost_nanousd": 123_456,
              "tools": []}
    with db.transaction(conn):
        writes.merge_requests(conn, {record["key"]: record}, prices.pricer(prices.load_table()))
    assert tuple(conn.execute("SELECT cost_nanousd, cost_source FROM requests").fetchone()) == (123_456, "reported")
    table = prices.load_table({"acme-llm-1": {"input": 3, "output": 15}})
    result = writes.reprice_calls(conn, prices.pricer(table))
    assert result["models"]["acme-llm-1"] == {"calls": 1, "newly_priced": 0, "now_unpriced": 0,
                                              "before_nanousd": 123_456, "after_nanousd": 4_500_000}
    row = conn.execute("SELECT cost_nanousd, cost_source, reported_cost_nanousd FROM requests").fetchone()
    assert tuple(row) == (4_500_000, "computed", 123_456)
    assert conn.execute("SELECT cost_nanousd FROM spend WHERE dim = 'global'").fetchone()[0] == 4_500_000


def test_reprice_hands_the_pricer_every_stored_column(tmp_path):
    """Every column, `iterations` (a call's samplings, each priced at its own model) among
    them, reaches the pricer unchanged."""
    conn = db.connect(tmp_path / "c.db")
    record = dict(next(iter(calls(1).values())), iterations='[{"model": "x", "input_tokens": 5}]')
    with db.transaction(conn):
        writes.merge_requests(conn, {record["key"]: record}, lambda r: (1, "computed"))
    seen = []

    def price(r):
        seen.append(r)
        return 2, "computed"

    writes.reprice_calls(conn, price)
    assert seen[-1]["iterations"] == record["iterations"]
    assert conn.execute("SELECT cost_nanousd FROM requests").fetchone()[0] == 2


def test_doctors_advice_for_a_model_with_quotes_is_a_toml_key_for_it(home, claude_dir, tmp_path):
    """A model name is outside text: with a `"` or a backslash in it, the [prices."…"] the
    doctor suggests must still name exactly that model when pasted into the config."""
    import re
    import tomllib

    name = 'acme "q" \\ llm'
    for path in (claude_dir / "projects" / "-home-dev-bigctx").glob("*.jsonl"):
        path.write_text(path.read_text().replace("claude-sonnet-4-5-20250929", json.dumps(name)[1:-1]))
    costhook("import", "--claude-dir", str(claude_dir), "-q")
    advice = re.search(r"add (\[prices\..*\]) to the config", costhook("doctor", check=False).stdout)
    assert advice, costhook("doctor", check=False).stdout
    assert tomllib.loads(advice[1] + "\n")["prices"] == {name: {}}
