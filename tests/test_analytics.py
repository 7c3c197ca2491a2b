"""Analytics views against a hand-computed fixture (real bundled prices, UTC, a fixed now).

Prices (USD per million tokens: input / output / 5 min write / 1 h write / cache read):
opus-4-5 5 / 25 / 6.25 / 10 / 0.50 · sonnet-4-5 3 / 15 / 3.75 / 6 / 0.30 · haiku-4-5 1 / 5 / 1.25 / 2 / 0.10.

Now is Fri 2026-11-20 12:00 UTC. The calls (costs worked out by hand):

S1 /p/alpha opus, today:   a1 09:00 in 1000 out 2000 w5 100000         [Read]  $0.68
                           a2 09:01 in 1000 out 2000 w5 20000 r 100000 [Edit]  $0.23
                           a3 09:02 in 1000 out 2000 r 120000          []      $0.115
   sub-agent ag1 Explore, haiku: b1 09:01:30 in 1000 out 1000 w5 10000 [Grep]  $0.0185
                                 b2 09:01:40 in 1000 out 100 r 10000   []      $0.0025   S1 = $1.046
S2 /p/beta sonnet, yesterday: c1 10:00 in 2000 out 100 w5 50000 []             $0.195    (idle; write never read)
S3 /p/alpha sonnet, 11-18:  d1 08:00 in 1000 out 1000 w1 10000 [Bash, mcp__github__create_issue] $0.078
                           d2 08:10 in 1000 out 500 r 10000 []                 $0.0135   S3 = $0.0915
H10..H17 /p/gamma sonnet, 11-10..11-17 at 11:00: out 6000 []                   $0.09 each
O1 /p/gamma sonnet, 2026-10-15: out 10000 []                                   $0.15
"""

import json
import subprocess
from datetime import datetime, timezone

import pytest
from conftest import COSTHOOK

from costhook.pricing.prices import pricer
from costhook import timeframe
from costhook.views import activity, anomalies, cache, calls, spend
from costhook.pricing import prices as pricing
from costhook.views import report as reports
from costhook.store import db, writes

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
UTC = timeframe.local_zone("UTC")
OPUS, SONNET, HAIKU = "claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
S1, S2, S3 = "s1-0000-aaaa", "s2-0000-bbbb", "s3-0000-cccc"


def call(key, session, ts, model, *, inp=0, out=0, w5=0, w1=0, read=0, tools=(), project="/p/alpha", agent_id=None,
         agent_type=None, branch="main"):
    return {
        "key": key, "agent": "claude", "message_id": key, "request_id": None, "session_id": session,
        "parent_session_id": session if agent_id else None, "agent_id": agent_id, "agent_type": agent_type,
        "is_sidechain": int(agent_id is not None), "project": project, "git_branch": branch, "timestamp": ts,
        "model": model, "input_tokens": inp, "output_tokens": out, "cache_write_5m_tokens": w5,
        "cache_write_1h_tokens": w1, "cache_read_tokens": read, "web_search_requests": 0, "tools": list(tools),
    }


CALLS = [
    call("a1", S1, "2026-11-20T09:00:00.000Z", OPUS, inp=1000, out=2000, w5=100000, tools=["Read"]),
    call("a2", S1, "2026-11-20T09:01:00.000Z", OPUS, inp=1000, out=2000, w5=20000, read=100000, tools=["Edit"]),
    call("a3", S1, "2026-11-20T09:02:00.000Z", OPUS, inp=1000, out=2000, read=120000),
    call("b1", S1, "2026-11-20T09:01:30.000Z", HAIKU, inp=1000, out=1000, w5=10000, tools=["Grep"], agent_id="ag1", agent_type="Explore"),
    call("b2", S1, "2026-11-20T09:01:40.000Z", HAIKU, inp=1000, out=100, read=10000, agent_id="ag1", agent_type="Explore"),
    call("c1", S2, "2026-11-19T10:00:00.000Z", SONNET, inp=2000, out=100, w5=50000, project="/p/beta"),
    call("d1", S3, "2026-11-18T08:00:00.000Z", SONNET, inp=1000, out=1000, w1=10000, tools=["Bash", "mcp__github__create_issue"], branch="feat"),
    call("d2", S3, "2026-11-18T08:10:00.000Z", SONNET, inp=1000, out=500, read=10000, branch="feat"),
    *[call(f"h{d}", f"h{d}-session", f"2026-11-{d}T11:00:00.000Z", SONNET, out=6000, project="/p/gamma") for d in range(10, 18)],
    call("o1", "o1-session", "2026-10-15T11:00:00.000Z", SONNET, out=10000, project="/p/gamma"),
]


def populate(conn) -> None:
    price = pricer(pricing.load_table())
    with db.transaction(conn):
        writes.merge_requests(conn, {c["key"]: dict(c) for c in CALLS}, price)


@pytest.fixture
def conn(home):
    c = db.connect()
    populate(c)
    return c


def test_fixture_costs_are_the_hand_computed_ones(conn):
    cost = {r["key"]: r["cost_nanousd"] for r in conn.execute("SELECT key, cost_nanousd FROM requests")}
    assert cost["a1"] == 680_000_000 and cost["a2"] == 230_000_000 and cost["a3"] == 115_000_000
    assert cost["b1"] == 18_500_000 and cost["b2"] == 2_500_000
    assert cost["c1"] == 195_000_000 and cost["d1"] == 78_000_000 and cost["d2"] == 13_500_000
    assert cost["h10"] == 90_000_000 and cost["o1"] == 150_000_000


def test_summary(conn):
    s = spend.summary(conn, NOW, UTC)
    p = s["periods"]
    assert p["today"]["cost_usd"] == 1.046 and p["today"]["requests"] == 5
    assert p["yesterday"]["cost_usd"] == 0.195
    assert p["week"]["cost_usd"] == 1.5125  # Mon 16th: H16 H17 S3 S2 S1
    assert p["month"]["cost_usd"] == 2.0525  # 8 x 0.09 + 0.0915 + 0.195 + 1.046
    assert p["last_month"]["cost_usd"] == 0.15
    # Last 7 days (13th 12:00 on): H14..H17, S3, S2, S1 = $1.6925 -> $0.241785714/day; 10.5 days left.
    assert s["projection"]["last_7_days_usd"] == 1.6925
    assert s["projection"]["daily_average_usd"] == 0.241785714
    assert s["projection"]["projected_month_usd"] == 4.591249997  # 2.0525 + 0.241785714 x 10.5
    assert s["projection"]["message"] == "on track for $4.59 this month"
    assert s["burn_rate"]["today_usd_per_hour"] == 0.087166667  # $1.046 over 12 hours


def test_leaderboards(conn):
    week = timeframe.period("7d", NOW, UTC)
    top = spend.top(conn, "session", week, limit=3)
    assert [r["key"] for r in top["rows"]] == [S1, S2, S3]
    assert [r["cost_usd"] for r in top["rows"]] == [1.046, 0.195, 0.0915]
    assert top["rows"][0]["share"] == round(1.046 / 1.6925, 6)
    assert top["rows"][0]["project"] == "/p/alpha" and top["rows"][0]["models"] == [OPUS, HAIKU]
    assert top["others"] == {"count": 4, "cost_usd": 0.36, "share": round(0.36 / 1.6925, 6)}
    projects = spend.top(conn, "project", week, limit=5)
    assert [(r["name"], r["cost_usd"]) for r in projects["rows"]] == [("alpha", 1.1375), ("gamma", 0.36), ("beta", 0.195)]
    agents = spend.top(conn, "agent", week)
    assert [(r["key"], r["cost_usd"]) for r in agents["rows"]] == [("(main)", 1.6715), ("Explore", 0.021)]
    branches = spend.top(conn, "branch", week)
    assert [(r["key"], r["cost_usd"]) for r in branches["rows"]] == [("alpha:main", 1.046), ("gamma:main", 0.36),
                                                                       ("beta:main", 0.195), ("alpha:feat", 0.0915)]
    tools = spend.top(conn, "tool", week, limit=2)
    assert [(r["key"], r["cost_usd"]) for r in tools["rows"]] == [("(reasoning/answer)", 0.686), ("Read", 0.68)]


def test_subagent_tree(conn):
    t = activity.tree(conn, S1)
    assert t["cost_usd"] == 1.046 and t["share"] == 1.0 and t["requests"] == 5
    main, explore = t["children"]
    assert (main["kind"], main["cost_usd"], main["share"], main["requests"]) == ("main", 1.025, round(1.025 / 1.046, 6), 3)
    assert (explore["label"], explore["id"], explore["cost_usd"], explore["share"]) == ("Explore", "ag1", 0.021, round(0.021 / 1.046, 6))


def test_tree_follows_child_sessions(conn):
    with db.transaction(conn):
        writes.upsert_session(conn, S3, parent_session_id=S1)
    t = activity.tree(conn, S1)
    assert t["cost_usd"] == 1.1375
    child = [c for c in t["children"] if c["kind"] == "session"][0]
    assert child["id"] == S3 and child["cost_usd"] == 0.0915 and child["share"] == round(0.0915 / 1.1375, 6)


def test_cost_by_tool(conn):
    data = activity.by_tool(conn, timeframe.period("7d", NOW, UTC))
    rows = {r["tool"]: r["cost_usd"] for r in data["rows"]}
    # d1's $0.078 is split between Bash and the MCP tool; no-tool calls are reasoning/answer.
    assert rows == {"(reasoning/answer)": 0.686, "Read": 0.68, "Edit": 0.23, "Bash": 0.039,
                    "mcp__github__create_issue": 0.039, "Grep": 0.0185}
    assert sum(rows.values()) == pytest.approx(1.6925)
    assert data["mcp_servers"] == [{"server": "github", "cost_usd": 0.039, "share": round(0.039 / 1.6925, 6), "tools": 1}]
    one = activity.by_tool(conn, timeframe.period("7d", NOW, UTC), session_id=S3)
    assert {r["tool"]: r["share"] for r in one["rows"]} == {"Bash": round(0.039 / 0.0915, 6),
                                                           "mcp__github__create_issue": round(0.039 / 0.0915, 6),
                                                           "(reasoning/answer)": round(0.0135 / 0.0915, 6)}


def test_cache_efficiency(conn):
    c = cache.cache_efficiency(conn, timeframe.period("7d", NOW, UTC), NOW)
    t = c["totals"]
    assert t["hit_ratio"] == round(240000 / 439000, 6)
    # Reads priced at input instead: opus 220k x $4.50, haiku 10k x $0.90, sonnet 10k x $2.70 per million.
    assert t["saved_usd"] == 1.026  # 0.99 + 0.009 + 0.027
    assert t["cache_write_cost_usd"] == 1.01  # opus 120k x 6.25 + haiku 10k x 1.25 + sonnet 50k x 3.75 + 10k x 6 (1 h)
    # Only c1's 50k write was never read (no call followed it); d1's 1 h write was read 10 min later.
    assert t["never_read_write_tokens"] == 50000 and t["never_read_write_cost_usd"] == 0.1875
    assert t["never_read_write_share"] == round(50000 / 190000, 6)
    by_model = {r["model"]: r["saved_usd"] for r in c["by_model"]}
    assert by_model == {OPUS: 0.99, SONNET: 0.027, HAIKU: 0.009}


def test_cache_write_still_alive_is_not_judged(conn):
    c = cache.cache_efficiency(conn, timeframe.period("7d", NOW, UTC), datetime(2026, 11, 19, 10, 3, tzinfo=timezone.utc))
    assert c["totals"]["pending_write_tokens"] == 50000  # c1 wrote 3 minutes ago: may still be read


def test_cache_write_not_read_by_the_next_call(home):
    conn = db.connect()
    price = pricer(pricing.load_table())
    with db.transaction(conn):
        writes.merge_requests(conn, {c["key"]: c for c in [
            call("x1", "sx", "2026-11-20T09:00:00.000Z", SONNET, inp=10, w5=40000),
            call("x2", "sx", "2026-11-20T09:20:00.000Z", SONNET, inp=10, w5=40000),  # 20 min later: expired, written again
            call("x3", "sx", "2026-11-20T09:21:00.000Z", SONNET, inp=10, read=40000),
        ]}, price)
    t = cache.cache_efficiency(conn, timeframe.period("7d", NOW, UTC), NOW)["totals"]
    assert t["never_read_write_tokens"] == 40000 and t["never_read_write_cost_usd"] == 0.15


def test_anomalies(conn):
    found = anomalies.anomalies(conn, NOW, UTC, days=30)["anomalies"]
    got = [(x["kind"], x["key"], x["cost_usd"], x["baseline_usd"], x["ratio"]) for x in found]
    assert got == [
        # Today (so far) against 13th..19th: (5 x 0.09 + 0.0915 + 0.195) / 7 = 0.105214286
        ("session", S1, 1.046, 0.105214286, 9.94),
        ("day", "2026-11-20", 1.046, 0.105214286, 9.94),
        # S2 against the 7 sessions started in the 7 days before it: (6 x 0.09 + 0.0915) / 7
        ("session", S2, 0.195, 0.090214286, 2.16),
        ("day", "2026-11-19", 0.195, 0.090214286, 2.16),
    ]
    assert found[1]["partial"] is True and found[0]["baseline_count"] == 7


def test_whatif(conn):
    w = cache.whatif(conn, timeframe.period("7d", NOW, UTC), NOW, by=("project",))
    rows = [(r["name"], r["from_model"], r["to_model"], r["actual_usd"], r["whatif_usd"], r["savings_usd"]) for r in w["rows"]]
    assert rows == [
        # S1 main thread at Sonnet prices: 3k x 3 + 6k x 15 + 120k x 3.75 + 220k x 0.30 per million = $0.615
        ("alpha", OPUS, "claude-sonnet-4-5", 1.025, 0.615, 0.41),
        ("gamma", SONNET, "claude-haiku-4-5", 0.36, 0.12, 0.24),
        ("beta", SONNET, "claude-haiku-4-5", 0.195, 0.065, 0.13),
        ("alpha", SONNET, "claude-haiku-4-5", 0.0915, 0.0305, 0.061),
    ]
    explicit = cache.whatif(conn, timeframe.period("7d", NOW, UTC), NOW, by=("agent",), to_model="claude-opus-4-5", only="Explore")
    assert [(r["key"], r["actual_usd"], r["whatif_usd"]) for r in explicit["rows"]] == [("Explore", 0.021, 0.105)]
    with pytest.raises(ValueError):
        cache.whatif(conn, timeframe.period("7d", NOW, UTC), NOW, to_model="no-such-model")


def test_whatif_keeps_long_context_tiers(home):
    conn = db.connect()
    with db.transaction(conn):
        writes.merge_requests(conn, {"big": call("big", "sb", "2026-11-20T09:00:00.000Z", OPUS, inp=300000, out=1000)},
                             pricer(pricing.load_table()))
    w = cache.whatif(conn, timeframe.period("7d", NOW, UTC), NOW, by=("project",))
    # Sonnet 4.5 above 200k prompt tokens: $6 input, $22.50 output per million.
    assert w["rows"][0]["whatif_usd"] == 1.8225  # 300k x 6 + 1k x 22.5


def test_idle_and_efficiency(conn):
    week = timeframe.period("7d", NOW, UTC)
    i = activity.idle(conn, week)
    # Idle: the Explore turn of S1 (Grep, then a 100-token answer) and S2's one short answer.
    assert i["idle_cost_usd"] == 0.216 and i["idle_share"] == round(0.216 / 1.6925, 6)
    assert (i["turns"], i["idle_turns"], i["sessions"], i["idle_sessions"]) == (8, 2, 7, 1)
    assert i["top_idle_sessions"][0]["session_id"] == S2
    e = activity.efficiency(conn, week, limit=0)
    assert e["actions"] == 3 and e["actions_per_usd"] == round(3 / 1.6925, 3)
    grades = {r["session_id"]: (r["actions"], r["actions_per_usd"], r["grade"]) for r in e["sessions"]}
    assert grades[S3] == (2, round(2 / 0.0915, 3), "A")
    assert grades[S1] == (1, round(1 / 1.046, 3), "A")
    assert grades[S2] == (0, 0.0, "C")
    assert e["grades"] == {"A": 2, "B": 0, "C": 5}


def test_side_effect_tools():
    assert calls.is_side_effect("Edit") and calls.is_side_effect("Bash") and calls.is_side_effect("mcp__slack__post_message")
    assert not calls.is_side_effect("Read") and not calls.is_side_effect("mcp__github__get_issue")
    assert calls.tool_actions('["Edit", "Read", "mcp__linear__create_issue"]') == 2


def test_blocks(conn):
    b = activity.blocks(conn, NOW, timeframe.period("7d", NOW, UTC))["blocks"]
    assert [x["start"][:16] for x in b] == ["2026-11-14T11:00", "2026-11-15T11:00", "2026-11-16T11:00", "2026-11-17T11:00",
                                             "2026-11-18T08:00", "2026-11-19T10:00", "2026-11-20T09:00"]
    active = b[-1]
    assert active["active"] and active["cost_usd"] == 1.046 and active["minutes_left"] == 120
    assert active["burn_rate_usd_per_hour"] == round(1.046 / 3, 9)
    assert active["projected_cost_usd"] == pytest.approx(1.046 + 2 * 1.046 / 3, abs=1e-9)
    assert not any(x["active"] for x in b[:-1])


def test_blocks_split_on_gaps(home):
    conn = db.connect()
    with db.transaction(conn):
        writes.merge_requests(conn, {c["key"]: c for c in [
            call("g1", "sg", "2026-11-20T00:10:00.000Z", SONNET, out=1000),
            call("g2", "sg", "2026-11-20T04:50:00.000Z", SONNET, out=1000),  # same window (starts 00:00)
            call("g3", "sg", "2026-11-20T05:05:00.000Z", SONNET, out=1000),  # past 05:00: a new window at 05:00
        ]}, pricer(pricing.load_table()))
    b = activity.blocks(conn, NOW, timeframe.period("7d", NOW, UTC))["blocks"]
    assert [(x["start"][11:16], x["requests"]) for x in b] == [("00:00", 2), ("05:00", 1)]


def test_trends(conn):
    t = spend.trends(conn, NOW, UTC, days=14)
    costs = {r["day"]: r["cost_usd"] for r in t["rows"]}
    assert costs["2026-11-20"] == 1.046 and costs["2026-11-18"] == 0.0915 and costs["2026-11-09"] == 0.0
    assert t["last_7_days_usd"] == 1.6925  # 14th..20th: 4 x 0.09 + 0.0915 + 0.195 + 1.046
    assert t["previous_7_days_usd"] == 0.36  # 7th..13th: H10..H13
    # 7th-9th nothing (blank), $0.09-0.195 days are 1/8 of the $1.046 peak (rounded), today the peak.
    assert t["sparkline"] == "   " + "▂" * 10 + "█"


def test_report_by_message_and_hour(conn):
    data = reports.report(conn, "message", filters={"session_id": S1})
    assert [r["key"] for r in data["rows"]] == ["a1", "a2", "b1", "b2", "a3"]
    a2 = data["rows"][1]
    assert a2["cost_by_type_usd"] == {"input": 0.005, "output": 0.05, "cache_write": 0.125, "cache_read": 0.05, "web_search": 0.0}
    assert a2["cache_hit_ratio"] == round(100000 / 121000, 6) and a2["cost_usd"] == 0.23
    assert data["totals"]["cost_usd"] == 1.046 and data["group_by"] == "message"
    hours = reports.report(conn, "hour", win=timeframe.period("today", NOW, UTC).window(), tz=timeframe.local_zone("Asia/Kolkata"))
    assert [(r["key"], r["cost_usd"]) for r in hours["rows"]] == [("2026-11-20T14", 1.046)]  # 09:00 UTC = 14:30 IST


def cli(*args):
    proc = subprocess.run([COSTHOOK, *args, "--now", "2026-11-20T12:00:00Z", "--tz", "UTC", "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_cli_views_print_the_same_numbers(conn):
    assert cli("summary")["periods"]["today"]["cost_usd"] == 1.046
    top = cli("top", "--by", "project", "--period", "7d", "--limit", "1")
    assert top["rows"][0]["name"] == "alpha" and top["rows"][0]["cost_usd"] == 1.1375 and top["others"]["count"] == 2
    assert cli("tree")["id"] == S1
    assert cli("tools", "--session", S3)["total"]["cost_usd"] == 0.0915
    assert cli("cache")["totals"]["never_read_write_cost_usd"] == 0.1875
    assert len(cli("anomalies")["anomalies"]) == 4
    assert cli("whatif", "--days", "7")["rows"][0]["savings_usd"] == 0.41
    assert cli("idle")["idle_cost_usd"] == 0.216
    assert cli("efficiency")["grades"] == {"A": 2, "B": 0, "C": 5}
    assert cli("blocks", "--active")["blocks"][0]["cost_usd"] == 1.046
    assert cli("trends", "--days", "7")["total_usd"] == 1.6925
    proc = subprocess.run([COSTHOOK, "report", "--by", "message", "--session", S2, "--format", "json"], capture_output=True, text=True)
    assert json.loads(proc.stdout)["rows"][0]["cost_by_type_usd"]["cache_write"] == 0.1875
    table = subprocess.run([COSTHOOK, "trends", "--days", "3", "--now", "2026-11-20T12:00:00Z", "--tz", "UTC"],
                           capture_output=True, text=True).stdout
    assert "2026-11-18 ▂▂█ 2026-11-20" in table


def test_cli_rejects_bad_arguments(conn):
    proc = subprocess.run([COSTHOOK, "top", "--period", "fortnight"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown period" in proc.stderr
    proc = subprocess.run([COSTHOOK, "report", "--by", "message"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--session" in proc.stderr
    proc = subprocess.run([COSTHOOK, "whatif", "--to", "nope-9"], capture_output=True, text=True)
    assert proc.returncode == 2 and "no price" in proc.stderr


@pytest.mark.parametrize("view", ["tools", "cache"])
def test_a_session_with_no_calls_reads_like_an_empty_period(conn, view):
    """`--session` names one session, not a period: none recorded is said, not a traceback."""
    proc = subprocess.run([COSTHOOK, view, "--session", "nope"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "No spend for session nope."
