"""JSON Lines transcripts, as both agents write them: one event per line, appended.

Standard library only, and nothing but json (and re, which json loads anyway) on the
hook's path: an import may switch to a faster parser (use_fast_parser).
"""

import json
import re

_parsers = (json.loads,)


def use_fast_parser() -> None:
    """Parse lines with pydantic-core's JSON parser (jiter, ~2x json.loads) first.

    For `costhook import`, never the hook (importing it costs ~70 ms). Anything it does
    not accept (lone surrogates, deep nesting, NUL padding, ...) still goes to json.loads,
    so rows are the same either way: where both accept a line, they read it alike."""
    global _parsers
    try:
        from pydantic_core import from_json
    except ImportError:
        return
    _parsers = (from_json, json.loads)


def load_line(raw: bytes):
    """json.loads that tolerates NUL padding and reports anything else as None.

    RecursionError too: a line nested deeper than Python's recursion limit is malformed,
    and it must not stop the lines after it from being read."""
    for parse in _parsers:
        try:
            return parse(raw)
        except (ValueError, RecursionError):
            pass
    stripped = raw.strip(b"\x00 \t\r\n")
    if stripped and stripped != raw:
        try:
            return json.loads(stripped)
        except (ValueError, RecursionError):
            pass
    return None


def line_batches(f, batch_bytes: int):
    """The complete lines from `f`'s position on (without their newline), as (lines, nbytes)
    batches of about `batch_bytes`. A partial last line, still being written, is left for
    the next read. (Read in blocks and split: a third of the cost of iterating the file.)"""
    parts = []  # a line longer than a block spans several reads
    while True:
        block = f.read(batch_bytes)
        if not block:
            return
        end = block.rfind(b"\n") + 1
        if not end:
            parts.append(block)
            continue
        lines = b"".join((*parts, block[:end])).split(b"\n") if parts else block[:end].split(b"\n")
        lines.pop()  # the empty string after the last newline
        nbytes = sum(len(part) for part in parts) + end
        parts = [block[end:]] if end < len(block) else []
        yield lines, nbytes


_UTC_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)


def utc_timestamp(value) -> str | None:
    """An ISO 8601 date-time (any offset; none means UTC) as UTC with milliseconds, the one
    form calls are stored and compared in ("2026-11-18T09:00:04.120Z", what Claude Code and
    OpenClaw write, is returned as is); None for anything else, so no odd text (a lone
    surrogate, other digits, a 3-digit year) reaches the price lookup as a date."""
    if not isinstance(value, str) or not 19 <= len(value) <= 40 or value[4:5] != "-" or value[10:11] != "T":
        return None
    if _UTC_MILLIS.fullmatch(value):
        return value
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return text if _UTC_MILLIS.fullmatch(text) else None


def resumable(cursor, st) -> bool:
    """Whether a stored byte-offset cursor may still hold for the file `st` (an os.stat_result)
    describes: the same inode, not shrunk below the offset. Each source then checks the
    file's beginning against the cursor's `head` in its own way."""
    return bool(cursor) and cursor.get("inode") == st.st_ino and (cursor.get("offset") or 0) <= st.st_size
