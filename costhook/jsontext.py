"""JSON text in and out for the hot path, through CPython's own C codec (`_json`).

The `json` package imports `re`, and `re` imports `enum`: together about 30 million
instructions, as many as starting the interpreter (callgrind, Python 3.11), paid by every
hook process before it reads its event — the largest single part of a hook (issue 14).
`_json` is the C scanner and encoder that `json` itself runs on, so what these functions
accept and write is what `json.loads` / `json.dumps` accept and write, with the same
defaults. Only malformed text loads `json` (the C scanner needs `json.decoder` to raise
its error): it pays for `re`, well-formed text does not.
"""

import _json

WHITESPACE = " \t\n\r"


class DecodeContext:
    """What the C scanner reads from a JSONDecoder: json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo = None


SCAN = _json.make_scanner(DecodeContext())


def loads(text: str | bytes | bytearray):
    """`json.loads(text)`; bytes are UTF-8 (a UTF-8 BOM allowed, as json.loads allows it on
    bytes). Raises ValueError (json.JSONDecodeError is one) for anything that is not one
    JSON document, RecursionError for one nested too deep (as json.loads)."""
    if not isinstance(text, str):
        text = bytes(text)
        text = text.decode("utf-8-sig" if text.startswith(b"\xef\xbb\xbf") else "utf-8", "surrogatepass")
    elif text.startswith("\ufeff"):
        raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig)")
    start = len(text) - len(text.lstrip(WHITESPACE))
    try:
        value, end = SCAN(text, start)
    except StopIteration as stop:
        raise ValueError(f"Expecting value: char {stop.value}") from None
    except SystemError:
        # Malformed text: the 3.11 scanner raises its JSONDecodeError only when json.decoder
        # is already loaded (else this SystemError). json says what is wrong, as json.loads would.
        import json

        return json.loads(text)
    if end != len(text) and text[end:].strip(WHITESPACE):
        raise ValueError(f"Extra data: char {end}")
    return value


def not_serialisable(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value, *, ensure_ascii: bool = True, separators: tuple[str, str] = (", ", ": "),
          sort_keys: bool = False) -> str:
    """`json.dumps(value, ensure_ascii=..., separators=..., sort_keys=...)`."""
    encode_string = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    item_separator, key_separator = separators
    encoder = _json.make_encoder({}, not_serialisable, encode_string, None, key_separator, item_separator,
                                 sort_keys, False, True)
    return "".join(encoder(value, 0))


def size(value) -> int | None:
    """Bytes of `value` as UTF-8 JSON (a tool's input or output: the only thing about it a
    hook keeps), or None for None or what JSON cannot hold."""
    if value is None:
        return None
    try:
        return len(dumps(value, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return None
