"""`usage.iterations`: every sampling the API billed for one call (issue 13, costhook item 1).

With server-side compaction the summarisation pass appears only in `usage.iterations`
(the API docs' example: top level 23,000 / 1,000, a compaction iteration of 180,000 /
3,500 beside it); an advisor's sub-inference is billed at the advisor's own model. The
top level is the `message` samplings only, so costhook bills the iterations, each at its
own model and its own prompt size's tier. Real hook processes, real SQLite, real CLI.
"""

import json
import subprocess

from conftest import COSTHOOK, db_rows, payload, run_hook
from transcript_lines import assistant

from costhook.pricing import prices
from costhook.usage import merge_call

SONNET = "claude-sonnet-4-5-20250929"
OPUS = "claude-opus-4-6"
SESSION = "s-iter"
STAMP = "2026-11-20T10:00:00.000Z"

# The compaction example of the API docs: the response after compaction (top level) and the
# summarisation pass that read the whole conversation (only in iterations).
COMPACTED = [
    {"type": "compaction", "input_tokens": 180000, "output_tokens": 3500,
     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    {"type": "message", "input_tokens": 23000, "output_tokens": 1000,
     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
]
# An advisor call: two executor samplings (the top level is their sum) around the advisor's.
ADVISED = [
    {"type": "message", "input_tokens": 2, "output_tokens": 40,
     "cache_creation_input_tokens": 3496, "cache_read_input_tokens": 120024},
    {"type": "advisor_message", "model": OPUS, "input_tokens": 125169, "output_tokens": 1600,
     "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    {"type": "message", "input_tokens": 2, "output_tokens": 60,
     "cache_creation_input_tokens": 4635, "cache_read_input_tokens": 123520},
]


def line(message_id: str, iterations, timestamp: str = STAMP, **counts) -> str:
    text = assistant(message_id, session_id=SESSION, model=SONNET, timestamp=timestamp, **counts)
    data = json.loads(text)
    data["message"]["usage"]["iterations"] = iterations
    return json.dumps(data) + "\n"


def ingest(tmp_path, *lines: str):
    transcript = tmp_path / f"{SESSION}.jsonl"
    transcript.write_text("".join(lines))
    proc = run_hook(payload("Stop", session_id=SESSION, transcript_path=str(transcript), cwd="/work/proj"))
    assert proc.returncode == 0 and proc.stdout == b"", proc
    return {r["key"]: r for r in db_rows("SELECT * FROM requests")}


def cost(model: str, **tokens) -> int:
    return prices.price_call(model, timestamp=STAMP, **{k: tokens.get(k, 0) for k in (
        "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")})


def test_a_compaction_iteration_is_billed_beside_the_top_level(home, tmp_path):
    rows = ingest(tmp_path, line("m-compact", COMPACTED, input_tokens=23000, output_tokens=1000))
    row = rows["m-compact:req_m-compact"]
    # The row's tokens stay the response's top-level usage...
    assert (row["input_tokens"], row["output_tokens"]) == (23000, 1000)
    # ... its cost is both samplings: $0.084 for the answer, $0.5925 for the summary.
    assert cost(SONNET, input_tokens=23000, output_tokens=1000) == 84_000_000
    assert row["cost_nanousd"] == 84_000_000 + cost(SONNET, input_tokens=180000, output_tokens=3500) == 676_500_000
    assert row["cost_source"] == "computed"
    stored = json.loads(row["iterations"])
    assert [(i["type"], i["input_tokens"], i["output_tokens"]) for i in stored] == [
        ("compaction", 180000, 3500), ("message", 23000, 1000)]
    # The rollup behind every other view holds the same money.
    assert db_rows("SELECT sum(cost_nanousd) AS c FROM spend WHERE dim = 'model'")[0]["c"] == 676_500_000


def test_an_advisor_iteration_is_billed_at_the_advisors_model(home, tmp_path):
    top = dict(input_tokens=4, output_tokens=100, cache_write=8131, cache_read=243544)
    row = ingest(tmp_path, line("m-advice", ADVISED, **top))["m-advice:req_m-advice"]
    executor = [cost(SONNET, input_tokens=2, output_tokens=40, cache_write_5m_tokens=3496, cache_read_tokens=120024),
                cost(SONNET, input_tokens=2, output_tokens=60, cache_write_5m_tokens=4635, cache_read_tokens=123520)]
    advisor = cost(OPUS, input_tokens=125169, output_tokens=1600)
    assert advisor == 665_845_000  # Opus 4.6: $5 / $25 per MTok
    # Rounded once for the whole call, so it may differ from the rounded parts by 1 nano-USD.
    assert abs(row["cost_nanousd"] - (sum(executor) + advisor)) <= 1
    assert row["model"] == SONNET  # the call is the executor's; its cost includes the advice


def test_tiers_are_decided_per_sampling():
    """Two samplings of 150k prompt tokens each: the top level sums 300k, past Sonnet 4.5's
    200k long-context threshold, but neither sampling's own prompt is."""
    record = {"model": SONNET, "timestamp": STAMP, "input_tokens": 300000, "output_tokens": 2000,
              "iterations": json.dumps([{"type": "message", "input_tokens": 150000, "output_tokens": 1000}] * 2)}
    per_sampling = 2 * cost(SONNET, input_tokens=150000, output_tokens=1000)
    assert prices.price_record(record) == per_sampling == 930_000_000
    assert cost(SONNET, input_tokens=300000, output_tokens=2000) == 1_845_000_000  # the top level as one prompt


def test_a_plain_call_stores_no_iterations_and_prices_as_before(home, tmp_path):
    single = [{"type": "message", "input_tokens": 10, "output_tokens": 20,
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}]
    rows = ingest(tmp_path, line("m-plain", single), line("m-none", None))
    assert {k: r["iterations"] for k, r in rows.items()} == {"m-plain:req_m-plain": None, "m-none:req_m-none": None}
    assert {r["cost_nanousd"] for r in rows.values()} == {cost(SONNET, input_tokens=10, output_tokens=20)}


def test_an_unpriced_advisor_model_leaves_the_call_unpriced():
    record = {"model": SONNET, "timestamp": STAMP, "input_tokens": 10, "output_tokens": 20,
              "iterations": [{"type": "message", "input_tokens": 10, "output_tokens": 20},
                             {"type": "advisor_message", "model": "acme-advisor-9", "input_tokens": 5}]}
    assert prices.price_record(record) is None
    assert prices.pricer()(record) == (None, "unpriced")


def test_malformed_iterations_fall_back_to_the_top_level(home, tmp_path):
    rows = ingest(tmp_path, line("m-bad", [{"type": "compaction", "input_tokens": 5}, "junk"]),
                  line("m-huge", [{"type": "compaction", "input_tokens": 10**10}]),
                  line("m-many", [{"type": "compaction", "input_tokens": 10**9}] * 2))
    assert {r["iterations"] for r in rows.values()} == {None}
    assert {r["cost_nanousd"] for r in rows.values()} == {cost(SONNET, input_tokens=10, output_tokens=20)}


def test_the_last_line_of_a_response_brings_its_iterations():
    """Each content block is its own line; the iterations come with the final usage."""
    first = {"key": "k", "input_tokens": 23000, "output_tokens": 1000, "iterations": None}
    last = dict(first, iterations='[{"type":"compaction"}]')
    assert merge_call(first, last)["iterations"] == last["iterations"]
    assert merge_call(last, first)["iterations"] == last["iterations"]


def test_report_by_message_shows_the_breakdown(home, tmp_path):
    ingest(tmp_path, line("m-compact", COMPACTED, input_tokens=23000, output_tokens=1000),
           line("m-advice", ADVISED, input_tokens=4, output_tokens=100, cache_write=8131, cache_read=243544,
                timestamp="2026-11-20T10:01:00.000Z"))
    run = subprocess.run([COSTHOOK, "report", "--by", "message", "--session", SESSION, "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    compact = next(r for r in data["rows"] if r["key"].startswith("m-compact"))
    assert compact["cost_usd"] == 0.6765
    assert [(i["type"], i["model"], i["input_tokens"], i["cost_usd"]) for i in compact["iterations"]] == [
        ("compaction", SONNET, 180000, 0.5925), ("message", SONNET, 23000, 0.084)]
    assert sum(compact["cost_by_type_usd"].values()) == 0.6765
    advice = next(r for r in data["rows"] if r["key"].startswith("m-advice"))
    assert [(i["type"], i["model"]) for i in advice["iterations"]] == [
        ("message", SONNET), ("advisor_message", OPUS), ("message", SONNET)]
    table = subprocess.run([COSTHOOK, "report", "--by", "message", "--session", SESSION],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert f"  - compaction {SONNET}" in table.stdout and f"  - advisor_message {OPUS}" in table.stdout
    assert "$0.5925" in table.stdout and "$0.6765" in table.stdout


def test_the_breakdown_reads_the_same_without_click(home, tmp_path):
    from test_report_fast import CLICK, run

    ingest(tmp_path, line("m-compact", COMPACTED, input_tokens=23000, output_tokens=1000),
           line("m-advice", ADVISED, input_tokens=4, output_tokens=100, cache_write=8131, cache_read=243544,
                timestamp="2026-11-20T10:01:00.000Z"))
    for fmt in ("table", "markdown", "json", "csv"):
        args = ["--by", "message", "--session", SESSION, "--format", fmt]
        fast = run([COSTHOOK], args)
        assert fast == run(CLICK, args) and fast[0] == 0, fmt
    assert "|   - advisor_message claude-opus-4-6 |" in run([COSTHOOK], args[:-1] + ["markdown"])[1]
