"""costhook.jsontext reads and writes JSON exactly as the json package does (it runs on
json's own C codec, without importing json, re or enum: see its docstring)."""

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costhook import jsontext

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=30)


def same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@settings(max_examples=400, deadline=None)
@given(values, st.booleans(), st.sampled_from([(", ", ": "), (",", ":")]), st.booleans())
def test_dumps_writes_what_json_writes(value, ensure_ascii, separators, sort_keys):
    expected = json.dumps(value, ensure_ascii=ensure_ascii, separators=separators, sort_keys=sort_keys)
    assert jsontext.dumps(value, ensure_ascii=ensure_ascii, separators=separators, sort_keys=sort_keys) == expected


@settings(max_examples=400, deadline=None)
@given(values, st.sampled_from(["", " ", "\n", " \t\r\n"]))
def test_loads_reads_what_json_reads(value, space):
    text = space + json.dumps(value, ensure_ascii=False) + space
    assert same(jsontext.loads(text), json.loads(text))
    assert same(jsontext.loads(text.encode("utf-8", "surrogatepass")), json.loads(text.encode("utf-8", "surrogatepass")))


def outcome(parse, text):
    try:
        return "ok", json.dumps(parse(text), sort_keys=True)
    except RecursionError:
        return "deep", None
    except ValueError:
        return "invalid", None


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet='{}[]",:0123456789.eE+-truefalsnl \t\n\\u\x00\x1f\ud800é', max_size=40))
def test_malformed_text_is_refused_alike(text):
    """Anything json refuses, jsontext refuses with a ValueError; anything it accepts reads the same."""
    assert outcome(jsontext.loads, text) == outcome(json.loads, text)


@pytest.mark.parametrize("text", [
    "", " ", "nul", "[1,]", '{"a": 1', '{"a": "\x01"}', "1 2", '"\\ud800"', "NaN", "-Infinity", "1e400",
    '{"a": 1}\n', "\ufeff{}", '"\\uZZZZ"', "[" * 100_000, "0123", "-", "1.", "tru",
])
def test_edge_cases_match_json(text):
    got, want = outcome(jsontext.loads, text), outcome(json.loads, text)
    assert got == want or (math.isnan(jsontext.loads(text)) and math.isnan(json.loads(text)))


def test_bytes_with_a_bom_and_bad_utf8():
    assert jsontext.loads(b'\xef\xbb\xbf{"a": 1}') == json.loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    for bad in (b'"\xff"', b'{"a": "\xc3"}'):
        with pytest.raises(ValueError):
            json.loads(bad)
        with pytest.raises(ValueError):
            jsontext.loads(bad)


def test_it_loads_neither_json_nor_re():
    code = ("import sys; from costhook import jsontext; jsontext.loads('{\"a\": [1, 2.5, \"x\"]}'); "
            "jsontext.dumps({'a': [1, 2.5, 'é']}, ensure_ascii=False); print(sorted({'json', 're', 'enum'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
