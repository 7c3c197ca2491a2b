"""Shared test fixtures: a private costhook home per test, the fixture transcript tree,
and a way to run the real `costhook hook` process with JSON on stdin."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = Path(__file__).parent.parent / "examples"
COSTHOOK = str(Path(sys.executable).parent / "costhook")

ACME_SESSION = "7c1e2d3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"
ACME_SUBAGENT = "a3f9c2e1b7d04a6f8"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An isolated COSTHOOK_HOME / DB / config for this test (also inherited by subprocesses)."""
    root = tmp_path / "costhook-home"
    monkeypatch.setenv("COSTHOOK_HOME", str(root))
    monkeypatch.setenv("COSTHOOK_DB", str(root / "costhook.db"))
    config = tmp_path / "config.toml"
    config.touch()  # empty: no budgets (a COSTHOOK_CONFIG that names no file is an error)
    monkeypatch.setenv("COSTHOOK_CONFIG", str(config))
    monkeypatch.delenv("CLAUDE_CODE_ENTRYPOINT", raising=False)
    # `install --agent all` writes Codex's hooks too: never into the real ~/.codex.
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))
    monkeypatch.delenv("COSTHOOK_CODEX_CLI", raising=False)
    return root


@pytest.fixture
def claude_dir(tmp_path):
    """A copy of the fixture Claude config dir (projects/ with 5 transcripts)."""
    target = tmp_path / "claude"
    shutil.copytree(EXAMPLES / "claude", target)
    return target


def acme_transcript(claude_dir: Path) -> Path:
    return claude_dir / "projects" / "-home-dev-acme-api" / f"{ACME_SESSION}.jsonl"


def run_hook(payload, *, env=None, timeout=30, args=(), wait=True) -> subprocess.CompletedProcess:
    """Run the installed `costhook hook` with `payload` (dict → JSON, or raw bytes) on stdin;
    then, unless `wait` is False, wait for the work it does in the background after it
    answered (an event that decides nothing: the agent does not wait for it, a test does)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    proc = subprocess.run(
        [COSTHOOK, "hook", *args],
        input=data,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if wait:
        wait_for_background({**os.environ, **(env or {})})
    return proc


def wait_for_background(env=None, timeout=30) -> None:
    """Wait for background hooks of the costhook home in `env` (default: this process's)."""
    from costhook.agents import runtime

    saved = os.environ.get("COSTHOOK_HOME")
    home = (env or os.environ).get("COSTHOOK_HOME")
    try:
        if home:
            os.environ["COSTHOOK_HOME"] = home
        assert runtime.wait_for_background(timeout), "a background hook is still at work"
    finally:
        if saved is None:
            os.environ.pop("COSTHOOK_HOME", None)
        else:
            os.environ["COSTHOOK_HOME"] = saved


def db_rows(sql: str, args=()) -> list[dict]:
    conn = sqlite3.connect(os.environ["COSTHOOK_DB"])
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def totals() -> dict:
    return db_rows(
        """SELECT count(*) AS calls, sum(input_tokens) AS input, sum(output_tokens) AS output,
                  sum(cache_write_5m_tokens) AS cw5m, sum(cache_write_1h_tokens) AS cw1h,
                  sum(cache_read_tokens) AS read, sum(web_search_requests) AS searches,
                  sum(cost_nanousd) AS cost FROM requests"""
    )[0]


def payload(name: str, **overrides) -> dict:
    data = json.loads((FIXTURES / "hook-payloads" / f"{name}.json").read_text())
    data.update(overrides)
    return data
