"""The links every write keeps (store/links.py: each call's next call in its thread, the
first call of its turn) equal what a rebuild from the calls gives, whatever wrote the
calls and in whatever order; and the views that sum them (views/calls.py `sequence`:
cache, idle, efficiency, the dashboard) give exactly what following each thread call by
call gives (tests/replayed_sequence.py, the pass they replaced)."""

import random
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from conftest import run_hook, wait_for_background
from replayed_sequence import replayed_sequence
from test_budgets import event, write_calls

from costhook.pricing import prices
from costhook.store import db, links, writes
from costhook.timeframe import Period
from costhook.views import activity, cache
from costhook.views.calls import sequence

UTC = timezone.utc
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
TOOLS = [[], [], ["Bash"], ["Read"], ["Edit", "Read"], ["mcp__github__create_issue"], ["Grep"], None]


def keyed_links(conn) -> dict:
    """The links and their sums by call key (rowids differ from one database to another)."""
    return {
        "links": sorted(tuple(row) for row in conn.execute(
            """SELECT r.key, l.at, l.next_read, l.next_at, t.key, l.turn_at, l.bucket, l.wkey, l.waste_5m, l.waste_1h
               FROM links l JOIN requests r ON r.rowid = l.rowid JOIN requests t ON t.rowid = l.turn_row""")),
        "cache_waste": [tuple(row) for row in conn.execute(
            "SELECT * FROM cache_waste WHERE wasted_5m != 0 OR wasted_1h != 0 ORDER BY bucket, wkey")],
        "turns": sorted(tuple(row) for row in conn.execute(
            """SELECT r.key, t.agent, t.session_id, t.agent_id, t.is_sidechain, t.turn_at, t.last_at, t.calls, t.cost,
                      t.unpriced, t.actions, t.answer, t.heartbeats FROM turns t JOIN requests r ON r.rowid = t.turn_row""")),
    }


def rebuilt(conn) -> list:
    """What a rebuild from the calls gives, on a copy (the database itself is left as it is)."""
    copy = sqlite3.connect(":memory:")
    conn.backup(copy)
    links.rebuild(copy)
    return keyed_links(copy)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def a_history(n: int = 900, seed: int = 7) -> dict:
    """Calls of a few sessions, each with a main thread, sub-agents and a sidechain; run or
    prompt ids on some calls (OpenClaw runs, Claude prompts), none on others; calls at
    the very same millisecond; a few without a time or a token count; reads that grow and
    shrink; prompts past the 200k tier."""
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        session = f"s{rng.randrange(4)}"
        agent_id = rng.choice([None, None, None, "a1", "a2"])
        at = T0 + timedelta(minutes=rng.randrange(0, 6 * 24 * 60), milliseconds=rng.choice([0, 0, 1, 250]))
        key = f"m{i}:r{i}"
        out[key] = {
            "key": key, "agent": "claude", "message_id": f"m{i}", "request_id": f"r{i}", "session_id": session,
            "agent_id": agent_id, "is_sidechain": 1 if agent_id or rng.random() < 0.05 else 0,
            "project": "/home/dev/acme", "timestamp": None if rng.random() < 0.01 else stamp(at),
            "model": rng.choice(["claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5"]),
            "input_tokens": rng.randrange(1, 50), "output_tokens": rng.choice([3, 10, 40, 400]),
            "cache_write_5m_tokens": rng.choice([0, 0, 500, 2000]), "cache_write_1h_tokens": rng.choice([0, 0, 0, 900]),
            "cache_read_tokens": rng.choice([0, 1000, 5000, 20000, 150_000, 250_000]), "tools": rng.choice(TOOLS),
            "prompt_id": rng.choice([None, None, None, f"p{rng.randrange(30)}"]), "is_heartbeat": int(rng.random() < 0.03),
        }
        if rng.random() < 0.03:  # a count the agent did not give: the pass took it as 0, the rollup's band as 0
            out[key][rng.choice(["input_tokens", "cache_write_5m_tokens", "cache_read_tokens"])] = None
    return out


def price(record):
    return (record["input_tokens"] or 0) * 7 + record["output_tokens"] * 3 + 1, "computed"


def views_agree(conn, now: datetime) -> None:
    """sequence == the replayed pass: windows that cut turns and threads, that end in the
    past (the next call an hour past the end still counts), that run up to now (writes
    not yet judged), one agent CLI's, all time, and one session's."""
    table = prices.load_table()
    periods = [Period("7d", "7 days", T0 - timedelta(days=1), None),
               Period("x", "cut", T0 + timedelta(days=1, hours=3, minutes=15), T0 + timedelta(days=3, minutes=45)),
               Period("y", "5 h", T0 + timedelta(days=2), T0 + timedelta(days=2, hours=5)),
               Period("all", "all time", None, None),
               Period("3d", "from a cut on", T0 + timedelta(days=2, hours=7, minutes=45), None),
               Period("7d", "7 days", T0 - timedelta(days=1), None).only("claude")]
    for p in periods:
        got, want = sequence(conn, p, now, table), replayed_sequence(conn, p, now, table)
        assert got["groups"] == want["groups"], p.label
        models = [list(dict.fromkeys(key[0] for key in seq["groups"])) for seq in (got, want)]
        assert models[0] == models[1], p.label  # in the order they first appear (the cache view's ties)
        assert got["turns"] == want["turns"], p.label
        assert cache.cache_efficiency(conn, p, now, table) == cache.cache_efficiency(conn, p, now, table, seq=want)
        assert activity.idle(conn, p) == activity.idle(conn, p, want["turns"])
        assert activity.efficiency(conn, p) == activity.efficiency(conn, p, want["turns"])
    for session in ("s0", "s3"):
        got = sequence(conn, periods[0], now, table, session_id=session, results=("groups",))
        want = replayed_sequence(conn, periods[0], now, table, session_id=session, results=("groups",))
        assert list(got["groups"].items()) == list(want["groups"].items())


def test_links_kept_by_every_write_equal_a_rebuild_and_the_views_equal_the_pass(tmp_path):
    records = a_history()
    keys = list(records)
    random.Random(1).shuffle(keys)  # written out of time order, in batches of all sizes
    conn = db.connect(tmp_path / "costhook.db")
    i = 0
    for size in [1, 1, 2, 5, 40, 1, 3, 200, 7, 1000]:
        with db.transaction(conn):
            writes.merge_requests(conn, {k: records[k] for k in keys[i:i + size]}, price)
        i += size
    kept = keyed_links(conn)
    assert kept == rebuilt(conn) and len(kept["links"]) > 800 and len(kept["cache_waste"]) > 50 and len(kept["turns"]) > 100
    now = T0 + timedelta(days=5, hours=20)
    views_agree(conn, now)

    # Grown usage merged into stored calls (more read, an answer that turns out to have
    # asked for a tool), a call's time moved earlier, a prompt id learnt later.
    rng = random.Random(2)
    grown = {}
    for key in rng.sample(keys, 120):
        r = dict(records[key])
        r["cache_read_tokens"] = (r["cache_read_tokens"] or 0) + rng.choice([0, 1, 90_000])
        r["output_tokens"] += 5
        r["tools"] = rng.choice(TOOLS)
        if r["timestamp"] and rng.random() < 0.3:
            r["timestamp"] = stamp(datetime.fromisoformat(r["timestamp"]) - timedelta(minutes=rng.randrange(1, 90)))
        grown[key] = r
    with db.transaction(conn):
        writes.merge_requests(conn, grown, price)
    with db.transaction(conn):
        conn.execute("UPDATE requests SET prompt_id = 'late' WHERE key IN (SELECT key FROM requests ORDER BY key LIMIT 30)")
        writes.fill_empty_columns(conn, {k: {"run_id": "run-9"} for k in keys[:25]})
    assert keyed_links(conn) == rebuilt(conn)
    views_agree(conn, now)

    # A sidechain's replay of a main-thread call folds into it (a row deleted); reprice.
    main_call = {**records[keys[0]], "key": "mz:rm", "message_id": "mz", "request_id": "rm", "is_sidechain": 0,
                 "agent_id": None, "timestamp": stamp(T0 + timedelta(days=2, hours=1))}
    replay = {**main_call, "key": "mz:rs", "request_id": "rs", "is_sidechain": 1, "agent_id": "a1"}
    with db.transaction(conn):
        writes.merge_requests(conn, {"mz:rs": replay}, price)
    with db.transaction(conn):
        writes.merge_requests(conn, {"mz:rm": main_call}, price)
    assert [k for (k,) in conn.execute("SELECT key FROM requests WHERE message_id = 'mz'")] == ["mz:rm"]
    writes.reprice_calls(conn, lambda record: ((record["input_tokens"] or 0) * 11, "computed"))
    assert keyed_links(conn) == rebuilt(conn)
    views_agree(conn, now)


def test_a_hook_keeps_the_links_of_its_thread(home, tmp_path):
    """Real `costhook hook` processes writing a transcript call after call."""
    transcript = tmp_path / "s-1.jsonl"
    start = datetime.now(UTC) - timedelta(minutes=30)
    for i in range(6):
        write_calls(transcript, [(f"m{i}", 1000 + i, stamp(start + timedelta(minutes=i)))])
        assert run_hook(event(transcript, "PostToolUse", tool_name="Bash", tool_use_id=f"toolu_m{i}")).returncode == 0
        wait_for_background()
    conn = db.connect()
    assert len(keyed_links(conn)["links"]) == 6 and keyed_links(conn) == rebuilt(conn)
    assert conn.execute("SELECT count(*) FROM links_dirty").fetchone()[0] == 0
    views_agree(conn, datetime.now(UTC))


@pytest.mark.parametrize("seed", [11, 12])
def test_links_of_calls_written_one_by_one_in_time_order(tmp_path, seed):
    """The hook's case: each call appended to its thread in its own transaction."""
    records = a_history(300, seed)
    conn = db.connect(tmp_path / "costhook.db")
    for key in sorted(records, key=lambda k: records[k]["timestamp"] or ""):
        with db.transaction(conn):
            writes.merge_requests(conn, {key: records[key]}, price)
    assert keyed_links(conn) == rebuilt(conn)
    views_agree(conn, T0 + timedelta(days=6))
