"""The spend rollup is the same however the calls were batched (issue 13, item 4): a call
that requested several tools is split between them call by call, so a group of calls in
one transaction gives each tool the same as the calls one by one, and as rebuild_spend."""

import random
import sqlite3

from costhook.store import db, rollup, writes

TOOLS = [["Bash"], ["Bash", "Edit"], ["Read", "Grep", "Edit"], [], ["Grep", "Bash"]]


def calls(n: int = 300, seed: int = 4) -> dict:
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        key = f"m{i}:r{i}"
        out[key] = {
            "key": key, "agent": "claude", "message_id": f"m{i}", "request_id": f"r{i}", "session_id": f"s{i % 3}",
            "project": "/home/dev/acme", "timestamp": f"2026-11-20T10:{i % 30:02d}:00.000Z", "model": "claude-sonnet-4-5",
            "input_tokens": rng.randrange(1, 50), "output_tokens": rng.randrange(1, 50), "cache_write_5m_tokens": 0,
            "cache_write_1h_tokens": 0, "cache_read_tokens": rng.randrange(0, 7), "tools": rng.choice(TOOLS),
        }
    return out


def price(record):  # odd costs, so that shares leave remainders
    return record["input_tokens"] * 7 + record["output_tokens"] * 3 + 1, "computed"


def tool_rows(conn) -> list:
    return [tuple(row) for row in conn.execute("SELECT * FROM spend WHERE dim = 'tool' ORDER BY key, bucket")]


def test_tool_rows_do_not_depend_on_batching(tmp_path):
    records = calls()
    one = db.connect(tmp_path / "one.db")
    with db.transaction(one):
        writes.merge_requests(one, records, price)
    each = db.connect(tmp_path / "each.db")
    for key, record in records.items():
        with db.transaction(each):
            writes.merge_requests(each, {key: record}, price)
    assert tool_rows(one) == tool_rows(each)
    rebuilt = sqlite3.connect(tmp_path / "each.db")
    rollup.rebuild_spend(rebuilt)
    rebuilt.commit()
    assert tool_rows(rebuilt) == tool_rows(each)
    # and the tools together still hold every call's cost exactly
    assert sum(r[3] for r in tool_rows(one)) == sum(price(r)[0] for r in records.values())


def test_rebuilt_tool_rows_are_the_hooks_for_calls_of_every_form(tmp_path):
    """rebuild_spend sums calls of the usual forms per tool in SQL, anything else the
    hook's way (SpendDelta): a call of any form lands in the tool rows as the hook puts it."""
    forms = [None, "", "[]", '["Bash"]', '["Bash", "Edit"]', '["a,b"]', '["a,b", "c"]', '[1, "Bash", "Edit"]',
             '["caf\\u00e9", "Edit"]', '["\\u00e9"]', "not json", '{"Bash": 1}', '["Bash"] ', '[ "Bash" ]', '["x\\"y", "z"]',
             '["Read", "Grep", "Edit", "Bash"]', '"Bash"', '[null]', '["Bash", "Bash"]']
    times = ["2026-11-20T10:07:00.000Z", None, "2026-11-20T10", "2026-11-20T10:5", "2026-11-20T23:59:59Z"]
    rng = random.Random(9)
    hooks = db.connect(tmp_path / "hooks.db")
    rows = []
    for i in range(400):
        cost = None if i % 11 == 0 else rng.randrange(0, 10_000)
        rows.append({"key": f"k{i}", "agent": rng.choice(["claude", "codex", ""]), "session_id": "s",
                     "timestamp": times[i % len(times)], "tools": forms[i % len(forms)], "cost_nanousd": cost,
                     "input_tokens": rng.randrange(0, 999), "output_tokens": rng.choice([None, rng.randrange(0, 99)]),
                     "cache_write_5m_tokens": 0, "cache_write_1h_tokens": rng.randrange(0, 5), "cache_read_tokens": 7})
    delta = rollup.SpendDelta()
    for row in rows:
        delta.add(row, +1)
    with db.transaction(hooks):
        delta.write(hooks, only=("tool",))
    rebuilt = db.connect(tmp_path / "rebuilt.db")
    with db.transaction(rebuilt):
        columns = list(rows[0])
        rebuilt.executemany(f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                            [tuple(row.values()) for row in rows])
        rollup.rebuild_spend(rebuilt)
    assert len(tool_rows(hooks)) > 40
    assert tool_rows(rebuilt) == tool_rows(hooks)
