"""The two rules every sighting of a call goes through: as_count and merge_call."""

import pytest

from costhook.usage import MAX_COUNT, as_count, merge_call, total_tokens


class Count(int):
    """An int subclass (not from JSON, but a count all the same)."""


@pytest.mark.parametrize(
    "value, expected",
    [
        (0, 0), (7, 7), (MAX_COUNT - 1, MAX_COUNT - 1), (MAX_COUNT, 0), (-1, 0),
        (True, 0), (False, 0), (Count(5), 5),
        (3.0, 3), (3.5, 0), (-2.0, 0), (float("nan"), 0), (float("inf"), 0), (1e12, 0),
        (None, 0), ("12", 0), ([1], 0), ({"n": 1}, 0),
    ],
)
def test_as_count_accepts_only_non_negative_whole_numbers(value, expected):
    assert as_count(value) == expected
    assert isinstance(as_count(value), int) and not isinstance(as_count(value), bool)


def sighting(**fields):
    base = {"key": "m1:r1", "input_tokens": 10, "output_tokens": 1, "cache_write_5m_tokens": 0,
            "cache_write_1h_tokens": 0, "cache_read_tokens": 100, "speed": None, "tools": [],
            "timestamp": "2026-11-18T09:00:02.000Z", "session_id": "s1", "is_sidechain": 0, "project": "/p"}
    return {**base, **fields}


def test_merge_takes_usage_from_the_largest_sighting_as_a_whole():
    old = sighting(output_tokens=5, speed="fast")
    new = sighting(output_tokens=50, speed=None)
    merged = merge_call(old, new)
    assert merged["output_tokens"] == 50 and merged["speed"] is None  # the usage fields travel together
    assert merge_call(new, old)["output_tokens"] == 50
    assert total_tokens(merged) == 160
    assert old["output_tokens"] == 5 and old["speed"] == "fast"  # inputs are not changed


def test_merge_keeps_earliest_time_and_accumulates_tools_in_order():
    old = sighting(timestamp="2026-11-18T09:00:05.000Z", tools=["Read"])
    new = sighting(timestamp="2026-11-18T09:00:02.000Z", tools=["Bash", "Read", "mcp__srv__tool"])
    merged = merge_call(old, new)
    assert merged["timestamp"] == "2026-11-18T09:00:02.000Z"
    assert merged["tools"] == ["Read", "Bash", "mcp__srv__tool"]
    assert old["tools"] == ["Read"]
    assert merge_call(sighting(timestamp=None), sighting(timestamp=None))["timestamp"] is None
    assert merge_call(sighting(timestamp=None), new)["timestamp"] == "2026-11-18T09:00:02.000Z"
    assert merge_call(new, sighting(timestamp=""))["timestamp"] == "2026-11-18T09:00:02.000Z"
    assert merge_call(sighting(tools='["Edit"]'), new)["tools"] == ["Edit", "Bash", "Read", "mcp__srv__tool"]


def test_merge_attribution_first_sighting_wins_unless_the_main_thread_copy_arrives():
    first = sighting(project="/first", git_branch=None)
    second = sighting(project="/second", git_branch="main", skill=None)
    merged = merge_call(first, second)
    assert merged["project"] == "/first"  # first sighting wins...
    assert merged["git_branch"] == "main"  # ...but gaps are filled
    replay = sighting(is_sidechain=1, session_id="side", project="/side")
    main = sighting(is_sidechain=0, session_id="s1", project="/main", agent_id=None)
    merged = merge_call(replay, main)
    assert (merged["session_id"], merged["project"], merged["is_sidechain"]) == ("s1", "/main", 0)
    assert merge_call(main, replay)["session_id"] == "s1"
