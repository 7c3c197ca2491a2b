"""Hostile input (design.md §9, issue item 3), property-based with hypothesis.

The hook must never break the agent and never lose what was valid, whatever arrives on
stdin or in a transcript. Most cases run in-process through the very code the hook
process runs — `costhook hook` (costhook.__main__.hook) with the case on stdin, `ingest.ingest_file()`,
`sources.claude.parse_lines()` — because 10,000 hook processes would not fit in CI; a
few hundred run as real `costhook hook` processes for the exit-code/stdout contract.

| test | cases | through |
|---|---|---|
| test_stdin_bytes_never_break_the_hook | 2,500 | `costhook hook`, stdin = random / truncated / non-UTF-8 / nested bytes |
| test_wrong_types_in_every_payload_field | 2,000 | `costhook hook`, payloads of all 8 events, any field deleted or of any JSON type |
| test_budget_decisions_under_hostile_payloads | 400 | hook.main() with budgets configured (stdout may carry a decision) |
| test_hostile_transcript_lines_parse | 4,500 | parse_lines(): truncated, NUL-padded, non-UTF-8, nested, null/wrong-typed fields, negative and huge counts, between valid calls |
| test_hostile_transcript_files_ingest | 1,000 | ingest_file() on real files, then the rest of a partial last line |
| test_hook_process_contract | 300 | the real `costhook hook` process |

The in-process hook runs reset agents.runtime's per-process caches (its connection and
config) after each case, as a new process would start without them. Fuzzed payloads never
carry a *string* `last_assistant_message` (nor, with budgets, a foreign `tool_use_id`):
those make the hook wait up to 0.5 s for the transcript to catch up, by design, and would
cost the run minutes; they are covered by test_hook.py.

Lines nested deeper than Python's recursion limit and JSON strings holding a lone UTF-16
surrogate (`"\\udc80"`) once lost valid data; they are generated like everything else
now, and the regression tests at the end pin them.
"""

import io
import itertools
import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import COSTHOOK, db_rows, wait_for_background
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transcript_lines import assistant, tool_use, user

from costhook.pricing.prices import pricer
from costhook import __main__ as front_door
from costhook.agents import runtime
from costhook.agents.claude import ingest
from costhook.store import db
from costhook.agents.claude import transcript as claude

SCALE = float(os.environ.get("COSTHOOK_FUZZ_SCALE", "1"))
ONCE_LOST_DATA = True  # the two classes of input that once lost data are generated too
# Raw surrogate bytes (ED A0 80) inserted at random places, so also inside a call's
# message.id or requestId (once fatal too: test_a_lone_surrogate_in_a_call_id_...).
SURROGATE_BYTES = True
TOKENS = ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")
MAX_COUNT = 10**12  # costhook.usage.MAX_COUNT: larger counts are garbage, stored as 0
LOG_MAX = 1 << 20
EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure", "Stop",
          "SubagentStop", "SessionEnd")
INGESTING = {"SessionStart", "PostToolUse", "PostToolUseFailure", "Stop", "SubagentStop", "SessionEnd"}
DECISION_KEYS = {"continue", "stopReason", "systemMessage", "suppressOutput", "decision", "reason", "hookSpecificOutput"}


def budget(n: int) -> int:
    return max(1, int(n * SCALE))


def fuzz_settings(n: int):
    return settings(max_examples=budget(n), deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def run_cases(n: int, check, *strategies) -> None:
    """Run `check(*example)` on `n` (scaled by budget) examples drawn from `strategies`, and
    make sure that many did run: a fuzz test that ran on nothing would prove nothing."""
    ran = itertools.count()

    @fuzz_settings(n)
    @given(st.tuples(*strategies))
    def case(example):
        next(ran)
        check(*example)

    case()
    assert next(ran) >= budget(n)


# ------------------------------------------------------------------ strategies ----

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=30) | st.sampled_from(["", "../..", "/", "a/b", "\x00", "PostToolUse", "mcp__", "mcp__x__y", "é€𝄞"]))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=8)
counts = (st.integers(0, 200_000) | st.integers(-(2**63), -1) | st.integers(MAX_COUNT, 2**80)
          | st.floats(allow_nan=True, allow_infinity=True) | st.none() | st.text(max_size=5) | st.booleans())


def nested(depth: int, kind: str = "list") -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


class Case:
    """A transcript with known calls, in a fresh file per case."""

    counter = 0

    def __init__(self, folder: Path, rng: random.Random, calls: int, session_id: str = "fuzz-session"):
        Case.counter += 1
        self.n = Case.counter
        self.session_id = session_id
        self.path = folder / f"case-{self.n}" / f"{session_id}.jsonl"
        self.path.parent.mkdir(parents=True)
        self.calls = {}
        text = user("hello", session_id=session_id)
        for i in range(calls):
            key_id = f"{self.n}_{i}"
            usage = valid_usage(rng)
            text += "".join(streamed(key_id, usage, rng, session_id))
            self.calls[f"msg_v{key_id}:req_v{key_id}"] = usage
        # Compact JSON as Claude Code writes it, naming the tool the PreToolUse payload asks about.
        text += json.dumps({"type": "progress", "toolUseID": f"toolu_{self.n}_1", "data": {"id": f"toolu_{self.n}_1"}},
                           separators=(",", ":")) + "\n"
        self.path.write_text(text)


def valid_usage(rng) -> dict:
    w1 = rng.choice((0, rng.randint(0, 5000)))
    return {"input_tokens": rng.randint(0, 9000), "output_tokens": rng.randint(1, 9000),
            "cache_write_5m_tokens": rng.randint(0, 9000), "cache_write_1h_tokens": w1,
            "cache_read_tokens": rng.randint(0, 90000)}


def streamed(key_id: str, usage: dict, rng, session_id="fuzz-session", agent_id=None) -> list[str]:
    """A valid call's 1-3 lines (shared ids, growing output_tokens)."""
    blocks = rng.randint(1, 3)
    lines = []
    for b in range(blocks):
        out = usage["output_tokens"] if b == blocks - 1 else rng.randint(0, usage["output_tokens"])
        lines.append(assistant(
            f"msg_v{key_id}", request_id=f"req_v{key_id}", session_id=session_id, input_tokens=usage["input_tokens"],
            output_tokens=out, cache_write=usage["cache_write_5m_tokens"] + usage["cache_write_1h_tokens"],
            cache_write_1h=usage["cache_write_1h_tokens"], cache_read=usage["cache_read_tokens"],
            content=[tool_use("Bash", f"toolu_{key_id}_{b}", command="ls")] if b else [{"type": "text", "text": "ok"}],
            agent_id=agent_id,
        ))
    return lines


def stored(keys) -> dict:
    keys = list(keys)
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    return {r["key"]: {c: r[c] for c in TOKENS} for r in db_rows(f"SELECT key, {', '.join(TOKENS)} FROM requests WHERE key IN ({marks})", keys)}


# ------------------------------------------------------------- in-process hook -----


class HookRun:
    def __init__(self, code, stdout, stderr):
        self.code, self.stdout, self.stderr = code, stdout, stderr


def run_hook_in_process(data: bytes, argv=("hook",)) -> HookRun:
    """`costhook hook` (costhook.__main__.hook) as the console script runs it, with `data` on stdin; then drop the
    per-process state (DB connection, config) a new process would not have."""
    saved = sys.stdin, sys.stdout, sys.stderr
    out, err = io.StringIO(), io.StringIO()
    sys.stdin = io.TextIOWrapper(io.BytesIO(data))
    sys.stdout, sys.stderr = out, err
    try:
        code = front_door.hook(list(argv))
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        runtime.forget()
    return HookRun(code, out.getvalue(), err.getvalue())


def log_lines(home: Path) -> int:
    log = home / "errors.log"
    return len(log.read_bytes().splitlines()) if log.exists() else 0


def assert_log_bounded(home: Path) -> None:
    """At most the log and one rotated copy, each bounded. A detached process a hook started
    may be rotating the log right now: a file may vanish between listing and stat."""
    for name in ("errors.log", "errors.log.1"):
        try:
            size = (home / name).stat().st_size
        except FileNotFoundError:
            continue
        assert size <= LOG_MAX + 4096, (name, size)
    assert sorted(p.name for p in home.glob("errors.log*")) in ([], ["errors.log"], ["errors.log.1"], ["errors.log", "errors.log.1"])


def prefill_log(home: Path) -> None:
    """An error log just under the rotation size, so the run has to rotate it."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "errors.log").write_bytes(b"2026-01-01T00:00:00Z hook old: line\n" * (LOG_MAX // 36 - 50))


stdin_cases = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=40).map(lambda b: b + b"\xff\xfe" + b),  # not UTF-8
    st.builds(lambda d, cut: json.dumps(d).encode()[:cut], st.dictionaries(st.sampled_from(["hook_event_name", "session_id", "transcript_path", "x"]), json_values, max_size=4), st.integers(0, 200)),
    json_values.map(lambda v: json.dumps(v).encode()),  # valid JSON, often not an object
    st.sampled_from([b"", b" \n", b"\x00" * 64, b"null", b"[]", b"{}", b'{"hook_event_name":', "\ufeff{}".encode(), b"NaN"]),
    st.integers(1, 300).map(lambda d: nested(d).encode()),
    st.integers(1, 300).map(lambda d: ('{"hook_event_name":"Stop","x":' + nested(d, "dict") + "}").encode()),
    st.integers(2_000, 200_000).map(lambda d: nested(d).encode()),  # deeper than the recursion limit
)


def test_stdin_bytes_never_break_the_hook(home):
    prefill_log(home)

    def check(data):
        before = log_lines(home)
        result = run_hook_in_process(data)
        assert result.code == 0 and result.stdout == "" and result.stderr == ""
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, dict):
            # Not a payload: exactly one line in the log (rotation may have just emptied it).
            after = log_lines(home)
            assert after == before + 1 or after == 1
        assert_log_bounded(home)

    run_cases(2_500, check, stdin_cases)
    assert (home / "errors.log.1").exists()  # the run did cross the 1 MB mark
    assert not (home / "costhook.db").exists() or db_rows("SELECT count(*) AS n FROM requests") == [{"n": 0}]


def event_payload(event: str, case: Case, agent_id: str | None) -> dict:
    base = {"session_id": case.session_id, "transcript_path": str(case.path), "cwd": "/work/proj",
            "hook_event_name": event, "permission_mode": "default", "prompt_id": "p-1", "effort": {"level": "high"}}
    if event in ("PreToolUse", "PostToolUse", "PostToolUseFailure"):
        base.update(tool_name="Bash", tool_input={"command": "ls"}, tool_use_id=f"toolu_{case.n}_1")
        if event == "PostToolUse":
            base.update(tool_response={"stdout": "x", "stderr": ""}, duration_ms=12)
        if event == "PostToolUseFailure":
            base.update(error="boom", is_interrupt=False)
    if event == "SessionStart":
        base.update(source="startup", model="claude-sonnet-4-5-20250929")
    if event == "SessionEnd":
        base.update(reason="other")
    if event == "UserPromptSubmit":
        base.update(prompt="do it")
    if event in ("Stop", "SubagentStop"):
        base.update(stop_hook_active=False)
    if agent_id:
        base.update(agent_id=agent_id, agent_type="Explore")
        if event == "SubagentStop":
            base["agent_transcript_path"] = str(case.path.parent / case.session_id / "subagents" / f"agent-{agent_id}.jsonl")
    return base


FIELDS = ("session_id", "transcript_path", "cwd", "hook_event_name", "tool_name", "tool_input", "tool_response",
          "tool_use_id", "duration_ms", "agent_id", "agent_type", "agent_transcript_path", "source", "model", "reason",
          "prompt", "error", "permission_mode", "prompt_id", "effort", "stop_hook_active", "mcp_server",
          "last_assistant_message", "is_interrupt", "background_tasks")
CORE = ("session_id", "transcript_path", "hook_event_name")
mutation = st.one_of(st.just(("keep",)), st.just(("delete",)), st.tuples(st.just("set"), json_values))


def no_strings(value):
    return not isinstance(value, str)


@st.composite
def fuzzed_payloads(draw, with_budgets=False):
    event = draw(st.sampled_from(EVENTS))
    agent = draw(st.sampled_from([None, "a0123456789abcdef"]))
    changes = {name: ("keep",) for name in FIELDS}
    # A few fields per case (drawing all 25 would spend the run in hypothesis itself).
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=6, unique=True)):
        if name == "last_assistant_message" or (with_budgets and name == "tool_use_id"):
            # a string here makes the hook wait (bounded, 0.5 s) for the transcript: see module doc
            changes[name] = draw(st.one_of(st.just(("delete",)), st.tuples(st.just("set"), json_values.filter(no_strings))))
        else:
            changes[name] = draw(mutation)
    seed = draw(st.integers(0, 2**32))
    return event, agent, changes, seed


def apply_changes(payload: dict, changes: dict) -> dict:
    payload = dict(payload)
    for name, change in changes.items():
        if change[0] == "delete":
            payload.pop(name, None)
        elif change[0] == "set":
            payload[name] = change[1]
    return payload


def check_payload_case(home, tmp_path, event, agent, changes, seed, with_budgets=False):
    rng = random.Random(seed)
    case = Case(tmp_path, rng, calls=rng.randint(0, 4))
    if agent and rng.random() < 0.7:  # the sub-agent's own file, where Claude Code puts it
        sub = case.path.parent / case.session_id / "subagents" / f"agent-{agent}.jsonl"
        sub.parent.mkdir(parents=True)
        lines = []
        for i in range(rng.randint(1, 3)):
            usage = valid_usage(rng)
            lines += streamed(f"{case.n}_s{i}", usage, rng, case.session_id, agent_id=agent)
            case.calls[f"msg_v{case.n}_s{i}:req_v{case.n}_s{i}"] = usage
        sub.write_text("".join(lines))
    payload = apply_changes(event_payload(event, case, agent), changes)
    result = run_hook_in_process(json.dumps(payload).encode())
    assert result.code == 0 and result.stderr == ""
    if with_budgets:
        if result.stdout:
            decision = json.loads(result.stdout)
            assert isinstance(decision, dict) and set(decision) <= DECISION_KEYS, decision
    else:
        assert result.stdout == ""
    core_valid = all(changes[name] == ("keep",) for name in CORE)
    if core_valid and (event in INGESTING or with_budgets):
        # Garbage in the other fields must not cost the valid transcript its rows.
        assert stored(expected_keys(event, agent, changes, case)) == expected_keys(event, agent, changes, case), (event, payload)
    assert_log_bounded(home)


def expected_keys(event, agent, changes, case) -> dict:
    """The calls this hook must have recorded: the main transcript's always; a sub-agent's
    when the hook scans the folder (Stop, SessionEnd) or names the file (a valid agent_id,
    or SubagentStop's agent_transcript_path)."""
    main = {k: v for k, v in case.calls.items() if "_s" not in k.split(":")[0]}
    if not agent or event in ("SessionStart", "UserPromptSubmit"):
        return main
    agent_ok = changes["agent_id"] == ("keep",)
    if event in ("Stop", "SessionEnd"):
        named = True
    elif event == "SubagentStop":
        path_change = changes["agent_transcript_path"]
        named = path_change == ("keep",) or (agent_ok and (path_change == ("delete",) or not isinstance(path_change[-1], str) or not path_change[-1]))
    else:
        named = agent_ok
    return case.calls if named else main


def test_wrong_types_in_every_payload_field(home, tmp_path):
    prefill_log(home)
    keep_open = db.connect()  # another reader, so the hook's close is not the last (no checkpoint per case)

    def check(args):
        check_payload_case(home, tmp_path, *args)

    run_cases(2_000, check, fuzzed_payloads())
    keep_open.close()


def test_budget_decisions_under_hostile_payloads(home, tmp_path):
    """With budgets configured the hook may print a decision; it still exits 0, prints only
    the agent's decision format, and loses nothing."""
    (tmp_path / "config.toml").write_text(
        '[[budgets]]\nid = "tiny"\nscope = "global"\nperiod = "daily"\nlimit = 0.000001\naction = "block"\n'
        '[[budgets]]\nid = "sess"\nscope = "session"\nperiod = "session"\nlimit = 1000\nwarn_at = [0.000001]\naction = "warn"\n'
    )
    keep_open = db.connect()

    def check(args):
        check_payload_case(home, tmp_path, *args, with_budgets=True)

    run_cases(400, check, fuzzed_payloads(with_budgets=True))
    keep_open.close()


# ------------------------------------------------------------ transcript lines -----


def mutate_at_random_path(obj, rng, value):
    """Set one randomly chosen field (any depth) of a JSON object to `value`."""
    node = obj
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return obj
        key = rng.choice(keys)
        child = node[key]
        if isinstance(child, (dict, list)) and child and rng.random() < 0.6:
            node = child
            continue
        node[key] = value
        return obj


@st.composite
def hostile_line(draw, tag: str):
    """One line that is not a clean call: returns bytes (newline-terminated)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    usage = valid_usage(rng)
    base = json.loads(assistant(f"msg_h{tag}", request_id=f"req_h{tag}", input_tokens=usage["input_tokens"],
                                content=[tool_use("Read", "toolu_h", file_path="/etc/x")]))
    kind = draw(st.sampled_from(["truncated", "nul", "non-utf8", "nested", "null", "wrong-type", "counts", "garbage",
                                 "user", "cost-state", "synthetic", "empty"]))
    if kind == "truncated":
        raw = json.dumps(base).encode()
        return raw[: draw(st.integers(0, len(raw) - 1))] + b"\n"
    if kind == "nul":
        raw = json.dumps(base).encode()
        cut = draw(st.integers(1, len(raw) - 1))
        return raw[:cut] + b"\x00" * draw(st.integers(1, 500)) + b"\n"
    if kind == "non-utf8":
        raw = json.dumps(base).encode()
        at = draw(st.integers(0, len(raw)))
        bad = [b"\xff", b"\xc3\x28", b"\x80\x80", b"\xf8\x88\x80\x80\x80"] + ([b"\xed\xa0\x80"] if ONCE_LOST_DATA and SURROGATE_BYTES else [])
        return raw[:at] + draw(st.sampled_from(bad)) + raw[at:] + b"\n"
    if kind == "nested":
        depth = draw(st.integers(1, 250)) if not ONCE_LOST_DATA else draw(st.integers(1, 50_000))
        mutate_at_random_path(base, rng, "__NEST__")
        return json.dumps(base).replace('"__NEST__"', nested(depth, draw(st.sampled_from(["list", "dict"])))).encode() + b"\n"
    if kind == "null":
        return json.dumps(mutate_at_random_path(base, rng, None)).encode() + b"\n"
    if kind == "wrong-type":
        return json.dumps(mutate_at_random_path(base, rng, draw(json_values))).encode() + b"\n"
    if kind == "counts":
        u = base["message"]["usage"]
        for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            if draw(st.booleans()):
                u[name] = draw(counts)
        if draw(st.booleans()):
            u["cache_creation"] = {"ephemeral_5m_input_tokens": draw(counts), "ephemeral_1h_input_tokens": draw(counts)}
        if draw(st.booleans()):
            u["server_tool_use"] = {"web_search_requests": draw(counts)}
        return json.dumps(base).encode() + b"\n"
    if kind == "garbage":
        return draw(st.binary(max_size=200)).replace(b"\n", b" ") + draw(st.sampled_from([b"", b'"assistant"', b'"user"<command-name>', b'"cost-state"'])) + b"\n"
    if kind == "user":
        content = draw(st.one_of(json_values, st.just("<command-name>/x</command-name>")))
        return json.dumps({"type": "user", "message": {"role": "user", "content": content}, "isMeta": draw(json_values)}).encode() + b"\n"
    if kind == "cost-state":
        return json.dumps({"type": "cost-state", "sessionId": draw(json_values), "totalCostUSD": draw(counts)}).encode() + b"\n"
    if kind == "synthetic":
        base["message"]["model"] = "<synthetic>"
        base["message"]["usage"]["speed"] = None
        return json.dumps(base).encode() + b"\n"
    return draw(st.sampled_from([b"\n", b" \n", b"\x00\n", b"{}\n", b"[]\n", b"null\n"]))


@st.composite
def transcripts(draw):
    """Valid calls (each streamed over 1-3 lines, some NUL-padded as after a crash) with
    hostile lines in between. Returns (lines, expected calls)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    tag = f"{next(TAGS):010d}"  # fresh keys for every case (many share one database), fixed width
    lines, expected = [], {}
    for i in range(draw(st.integers(0, 6))):
        usage = valid_usage(rng)
        key_id = f"{tag}_{i}"
        call = [line.encode() for line in streamed(key_id, usage, rng)]
        if draw(st.integers(0, 4)) == 0:  # Claude Code after a crash: NULs before the next line
            j = rng.randrange(len(call))
            call[j] = b"\x00" * draw(st.integers(1, 300)) + call[j]
        expected[f"msg_v{key_id}:req_v{key_id}"] = usage
        lines.extend(call)
    for j in range(draw(st.integers(0, 8))):
        lines.insert(draw(st.integers(0, len(lines))), draw(hostile_line(f"{tag}_{j}")))
    return lines, expected


TAGS = itertools.count(1)


def check_sane(record: dict) -> None:
    for name in (*TOKENS, "web_search_requests"):
        value = record.get(name)
        assert value is None or (isinstance(value, int) and 0 <= value < MAX_COUNT), (name, value)


def test_hostile_transcript_lines_parse():

    def check(args):
        lines, expected = args
        result = claude.parse_lines(lines, claude.FileContext("/p/fuzz-session.jsonl", session_id="fuzz-session"), claude.ReadState())
        got = {k: {c: result.calls[k][c] for c in TOKENS} for k in expected if k in result.calls}
        assert got == expected
        for record in result.calls.values():
            check_sane(record)

    run_cases(4_500, check, transcripts())


def test_hostile_transcript_files_ingest(home, tmp_path):
    conn = db.connect()
    price = pricer()
    numbers = itertools.count(1)

    def check(args, partial_tail):
        ran = next(numbers)
        lines, expected = args
        path = tmp_path / f"ingest-{ran}" / "fuzz-session.jsonl"
        path.parent.mkdir()
        body = b"".join(lines)
        tail = b""
        if partial_tail:  # one more valid call, its last line not yet finished
            usage = valid_usage(random.Random(ran))
            tail = "".join(streamed(f"tail{ran}", usage, random.Random(ran))).encode()
            expected_tail = {f"msg_vtail{ran}:req_vtail{ran}": usage}
        path.write_bytes(body + tail[:-7])
        result = ingest.ingest_file(conn, str(path), price=price)
        assert stored(expected) == expected
        if partial_tail:
            assert result.pending >= 7
            with open(path, "ab") as f:
                f.write(tail[-7:])
            ingest.ingest_file(conn, str(path), price=price)
            assert stored(expected_tail) == expected_tail
        again = ingest.ingest_file(conn, str(path), price=price)
        assert again.bytes_read == 0 and again.changed == 0

    run_cases(1_000, check, transcripts(), st.booleans())
    bad = db_rows(f"SELECT key FROM requests WHERE {' OR '.join(f'{c} < 0 OR {c} >= {MAX_COUNT}' for c in TOKENS)}")
    assert bad == []
    assert db_rows("PRAGMA integrity_check") == [{"integrity_check": "ok"}]


# -------------------------------------------------------------- real processes ------


def test_hook_process_contract(home, tmp_path):
    """300 real `costhook hook` processes: stdin from the same generators (raw bytes and
    fuzzed payloads of every event). Exit 0, stdout and stderr empty, the log bounded."""
    prefill_log(home)
    env = {**os.environ}

    def check(arg):
        if isinstance(arg, bytes):
            data, want = arg, None
        else:
            event, agent, changes, seed = arg
            rng = random.Random(seed)
            c = Case(tmp_path, rng, calls=rng.randint(0, 3))
            data = json.dumps(apply_changes(event_payload(event, c, agent), changes)).encode()
            core = all(changes[n] == ("keep",) for n in CORE)
            want = c.calls if core and event in INGESTING else None
        proc = subprocess.run([COSTHOOK, "hook"], input=data, capture_output=True, env=env, timeout=60)
        assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b"", proc
        wait_for_background(env)  # an event that decides nothing records in the background
        if want is not None:
            assert stored(want) == want
        assert_log_bounded(home)

    run_cases(300, check, st.one_of(stdin_cases, fuzzed_payloads()))


def test_concurrent_failures_keep_the_log_bounded(home):
    """16 hooks at a time failing on bad stdin, right across the rotation size."""
    prefill_log(home)
    env = {**os.environ}

    def fail(n):
        for _ in range(n):
            proc = subprocess.run([COSTHOOK, "hook"], input=b"not json " + b"x" * 100, capture_output=True, env=env, timeout=60)
            assert proc.returncode == 0 and proc.stdout == b""

    threads = [threading.Thread(target=fail, args=(6,)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_log_bounded(home)
    assert (home / "errors.log.1").exists()


# -------------------------------------------------------------- big and bad lines ----


def test_a_50_mb_line_is_skipped_and_the_calls_around_it_are_kept(home, tmp_path):
    """A 50 MB line (a giant tool result with "assistant" in it, and a giant assistant line
    that is cut off) between valid calls: the hook defers the >16 MB backlog to its
    detached catch-up process, which records every valid call; import agrees."""
    rng = random.Random(5)
    session = "big-line"
    path = tmp_path / "claude" / "projects" / "-p" / f"{session}.jsonl"
    path.parent.mkdir(parents=True)
    calls = {}
    with open(path, "w") as f:
        for i in range(3):
            usage = valid_usage(rng)
            f.write("".join(streamed(f"big{i}", usage, rng, session)))
            calls[f"msg_vbig{i}:req_vbig{i}"] = usage
            if i == 0:
                f.write(user([{"type": "tool_result", "tool_use_id": "t", "content": '"assistant" ' + "z" * (50 << 20)}], session_id=session))
            if i == 1:
                f.write(assistant("msg_cut", session_id=session)[:-200] + "q" * (50 << 20) + "\n")
    assert path.stat().st_size > 100 << 20
    proc = subprocess.run([COSTHOOK, "hook"], capture_output=True, timeout=60, input=json.dumps(
        {"session_id": session, "transcript_path": str(path), "hook_event_name": "PostToolUse", "tool_name": "Bash",
         "tool_use_id": "toolu_big"}).encode())
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
    wait_for_background()
    import time

    deadline = time.monotonic() + 60
    while stored(calls) != calls and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored(calls) == calls
    assert db_rows("SELECT count(*) AS n FROM requests") == [{"n": 3}]
    result = ingest.ingest_file(db.connect(), str(path))
    assert result.bytes_read == 0  # the catch-up got to the end of the file


# ------------------------------------------------------- regressions (once lost data) ----


def poisoned_transcript(tmp_path, poison: str) -> tuple[Path, dict]:
    """Valid calls before and after one hostile line."""
    rng = random.Random(1)
    path = tmp_path / "claude" / "projects" / "-p" / "poison.jsonl"
    path.parent.mkdir(parents=True)
    calls, text = {}, ""
    for i in range(4):
        usage = valid_usage(rng)
        text += "".join(streamed(f"p{i}", usage, rng, "poison"))
        calls[f"msg_vp{i}:req_vp{i}"] = usage
        if i == 1:
            text += poison
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path, calls


def hook_then_import(path: Path) -> tuple[dict, subprocess.CompletedProcess]:
    payload = {"session_id": "poison", "transcript_path": str(path), "hook_event_name": "Stop"}
    proc = subprocess.run([COSTHOOK, "hook"], input=json.dumps(payload).encode(), capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == b""
    wait_for_background()
    imported = subprocess.run([COSTHOOK, "import", "--claude-dir", str(path.parents[2]), "-q"], capture_output=True, timeout=60)
    return proc, imported


def test_a_deeply_nested_line_does_not_block_the_transcript(home, tmp_path):
    poison = '{"type":"assistant","message":{"content":' + nested(100_000) + "}}\n"
    path, calls = poisoned_transcript(tmp_path, poison)
    _, imported = hook_then_import(path)
    assert stored(calls) == calls
    assert imported.returncode == 0


@pytest.mark.parametrize("spelling", ["escaped", "raw-bytes"])
def test_a_lone_surrogate_in_a_transcript_field_does_not_block_the_transcript(home, tmp_path, spelling):
    line = assistant("msg_bad", request_id="req_bad", session_id="poison")
    poison = line.replace('"cwd": "/work/proj"', '"cwd": "\\udc80"' if spelling == "escaped" else '"cwd": "\udc80"')
    path, calls = poisoned_transcript(tmp_path, poison)
    if spelling == "raw-bytes":
        data = path.read_bytes()
        path.write_bytes(data.replace("\udc80".encode("utf-8", "surrogatepass"), b"\xed\xb2\x80"))
        assert b"\xed\xb2\x80" in path.read_bytes()
    else:
        assert b"\\udc80" in path.read_bytes()
    _, imported = hook_then_import(path)
    assert stored(calls) == calls
    assert imported.returncode == 0


@pytest.mark.parametrize("field", ["message.id", "requestId"])
@pytest.mark.parametrize("spelling", ["escaped", "raw-bytes"])
def test_a_lone_surrogate_in_a_call_id_does_not_block_the_transcript(home, tmp_path, spelling, field):
    line = assistant("msg_bad", request_id="req_bad", session_id="poison")
    old = '"id": "msg_bad"' if field == "message.id" else '"requestId": "req_bad"'
    new = old.replace('"msg_bad"', '"msg_bad\\udc80"').replace('"req_bad"', '"req_bad\\udc80"')
    poison = line.replace(old, new if spelling == "escaped" else new.replace("\\udc80", "\udc80"))
    assert poison != line
    path, calls = poisoned_transcript(tmp_path, poison)
    if spelling == "raw-bytes":
        path.write_bytes(path.read_bytes().replace("\udc80".encode("utf-8", "surrogatepass"), b"\xed\xb2\x80"))
        assert b"\xed\xb2\x80" in path.read_bytes()
    _, imported = hook_then_import(path)
    assert stored(calls) == calls
    assert imported.returncode == 0


@pytest.mark.parametrize("event,field", [("SessionStart", "cwd"), ("SessionStart", "source"), ("SessionEnd", "reason")])
def test_a_lone_surrogate_in_a_payload_field_does_not_stop_the_ingest(home, tmp_path, event, field):
    path, calls = poisoned_transcript(tmp_path, "")
    payload = {"hook_event_name": event, "session_id": "poison", "transcript_path": str(path), field: "PLACEHOLDER"}
    data = json.dumps(payload).replace("PLACEHOLDER", "\\udc80").encode()
    proc = subprocess.run([COSTHOOK, "hook"], input=data, capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == b""
    wait_for_background()
    assert stored(calls) == calls
