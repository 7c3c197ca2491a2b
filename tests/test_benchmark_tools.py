"""The benchmark tools in tests/benchmarks work (not the benchmarks themselves).

The generator's tree must import to exactly the totals the generator says it wrote, the
same seed must give the same bytes, and `run.py --quick` must complete without a FAIL
and clean up after itself. Tiny sizes: a few seconds in all.
"""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COSTHOOK = str(Path(sys.executable).parent / "costhook")
TOKENS = ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")


def generate(*args) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.generate", *args], cwd=REPO, capture_output=True, check=True, timeout=120
    )
    return json.loads(proc.stdout)


def costhook(*args) -> str:
    proc = subprocess.run([COSTHOOK, *args], capture_output=True, check=True, timeout=120)
    return proc.stdout.decode()


def by_key(report: str) -> dict:
    return {row["key"]: {k: row[k] for k in ("requests",) + TOKENS} for row in json.loads(report)["rows"]}


def test_generated_tree_imports_to_the_generators_totals(tmp_path, home):
    tree = tmp_path / "claude"
    expected = generate("tree", str(tree), "--calls", "400", "--seed", "7")
    written = json.loads((tree / "expected.json").read_text())
    assert {k: v for k, v in expected.items() if k != "generated_in_s"} == written
    assert expected["calls"] == 400
    # The rare shapes are all there, so the exact totals below mean something.
    assert expected["synthetic_lines"] >= 1 and expected["truncated_lines"] >= 1 and expected["partial_tail_files"] >= 1
    assert expected["subagent_files"] >= 1 and expected["totals"]["web_search_requests"] >= 1
    assert expected["totals"]["cache_write_5m_tokens"] > 0 and expected["totals"]["cache_write_1h_tokens"] > 0
    assert len(expected["by_model"]) >= 2 and len(expected["by_day"]) >= 2

    summary = costhook("import", "--claude-dir", str(tree))
    assert f"{expected['files']} transcript files" in summary

    assert by_key(costhook("report", "--by", "day", "--tz", "UTC", "--format", "json")) == expected["by_day"]
    assert by_key(costhook("report", "--by", "model", "--tz", "UTC", "--format", "json")) == expected["by_model"]
    conn = sqlite3.connect(os.environ["COSTHOOK_DB"])
    rows, web = conn.execute("SELECT count(*), sum(web_search_requests) FROM requests").fetchone()
    conn.close()
    assert rows == expected["calls"] and web == expected["totals"]["web_search_requests"]

    assert "0 rows new or updated" in costhook("import", "--claude-dir", str(tree))

    proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.import_floor", str(tree), os.environ["COSTHOOK_DB"]],
                          cwd=REPO, capture_output=True, check=True, timeout=120)
    floor = json.loads(proc.stdout)
    assert floor["files"] == expected["files"] and floor["rows"] == expected["calls"]
    assert floor["parsed_mb"] > 0 and all(floor[k] > 0 for k in ("read_cpu_s", "parse_cpu_s", "insert_cpu_s"))


def test_same_seed_same_bytes(tmp_path):
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        generate("tree", str(out), "--calls", "150", "--seed", "3")
        digest = hashlib.sha256()
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(out)).encode() + b"\0" + path.read_bytes())
        digests.append(digest.hexdigest())
    assert digests[0] == digests[1]


def test_transcript_and_db_modes(tmp_path, home):
    session = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    path = tmp_path / "projects" / "-home-dev-bench" / f"{session}.jsonl"
    expected = generate("transcript", str(path), "--mb", "1")
    assert path.stat().st_size >= 1_000_000 and expected["session_id"] == session and expected["calls"] > 10
    costhook("import", "--claude-dir", str(tmp_path))
    report = json.loads(costhook("report", "--by", "day", "--tz", "UTC", "--format", "json"))
    assert {k: report["totals"][k] for k in ("requests",) + TOKENS} == {
        k: v for k, v in expected["totals"].items() if k != "web_search_requests"
    }

    db = tmp_path / "big.db"
    expected = generate("db", str(db), "--rows", "3000")
    totals = json.loads(costhook("report", "--db", str(db), "--by", "model", "--tz", "UTC", "--format", "json"))["totals"]
    assert totals["requests"] == 3000
    assert {k: totals[k] for k in TOKENS} == {k: expected["totals"][k] for k in TOKENS}
    assert round(totals["cost_usd"] * 1e9) == expected["totals"]["cost_nanousd"]


def test_run_quick_completes_and_cleans_up(tmp_path):
    work = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.run", "--quick", "--json", "--work", str(work),
         "--tree-calls", "300", "--db-rows", "3000", "--transcript-mb", "2", "--runs", "3", "--report-runs", "1"],
        cwd=REPO, capture_output=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    data = json.loads(proc.stdout)
    assert data["failures"] == []
    assert set(data["correctness"].values()) == {"ok"}
    assert data["hook_steady"]["wall_s"] > 0 and data["import"]["wall_s"] > 0 and data["report_s"]["day"] > 0
    assert b"ratio to python -c pass" in proc.stderr
    assert list(work.iterdir()) == []


def test_codex_hook_benchmark_completes_and_counts_every_response(tmp_path):
    work = tmp_path / "codex-work"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.codex_hook", "--rows", "2000", "--rollout-mb", "1", "--runs", "2",
         "--keep", str(work)],
        cwd=REPO, capture_output=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    data = json.loads(proc.stdout)
    assert data["rows_equal_responses"] and data["errors_logged"] == 0 and data["tool_calls_recorded"] == 4
    for case in ("post_tool_use", "pre_tool_use_budget", "stop_nothing_new"):
        assert data[case]["wall_ms"] > 0 and data[case]["ratio_wall"] > 0
