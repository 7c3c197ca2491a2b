"""JSON Lines transcripts, as both agents write them: one event per line, appended.

Standard library only, and no `json` or `re` on the hook's path (costhook.jsontext says
why): an import may switch to a faster parser (use_fast_parser).
"""

import os

from costhook import jsontext

_parsers = (jsontext.loads,)


def use_fast_parser() -> None:
    """Parse lines with pydantic-core's JSON parser (jiter, ~2x json.loads) first.

    For `costhook import`, never the hook (importing it costs ~70 ms). Anything it does
    not accept (lone surrogates, deep nesting, NUL padding, ...) still goes to jsontext.loads
    (json.loads' own C scanner), so rows are the same either way: where both accept a line, they read it alike."""
    global _parsers
    try:
        from pydantic_core import from_json
    except ImportError:
        return
    _parsers = (from_json, jsontext.loads)


def load_line(raw: bytes):
    """jsontext.loads that tolerates NUL padding and reports anything else as None.

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
            return jsontext.loads(stripped)
        except (ValueError, RecursionError):
            pass
    return None


MAX_LINE = 64 << 20  # a longer line is skipped unread (see LineReader)
TAIL_BYTES = 4096  # the bytes before a cursor's offset that a cursor's mark hashes


def line_batches(f, batch_bytes: int):
    """The complete lines from `f`'s position on (without their newline), as (lines, nbytes)
    batches of about `batch_bytes`. A partial last line, still being written, is left for
    the next read. (LineReader without its skipped-line counts.)"""
    for lines, nbytes, _ in LineReader(f, batch_bytes):
        yield lines, nbytes


class LineReader:
    """Iterate (lines, nbytes, skipped) over the complete lines from `f`'s position on, in
    batches of about `batch_bytes`; nbytes is how far the batch moves the offset.

    Read in blocks and split (a third of the cost of iterating the file). A partial last
    line, still being written, is left for the next read, unless it is already longer than
    `max_line`: then it is dropped (counted in `skipped`, the caller's malformed), never
    buffered further, and the rest of it is skipped up to its newline, even in a later
    read: a resumed offset whose byte before (`before`, the bytes just before it) is not a
    newline is inside such a line. No line Claude Code or OpenClaw writes that carries a
    call comes near 64 MB (one response is at most a few hundred thousand tokens); only a
    runaway tool result or a file that is not a transcript does.

    `tail` is the last TAIL_BYTES before the offset reached (what `mark` hashes). With
    `complete` (an archive, not a file being written) a last line without a newline is
    a line too."""

    def __init__(self, f, batch_bytes: int, *, before: bytes = b"", max_line: int = MAX_LINE, complete: bool = False):
        self.f, self.batch_bytes, self.max_line, self.complete = f, batch_bytes, max_line, complete
        self.tail = before[-TAIL_BYTES:]
        self.skipping = bool(before) and not before.endswith(b"\n")

    def _keep(self, data: bytes) -> None:
        self.tail = (self.tail + data[-TAIL_BYTES:])[-TAIL_BYTES:]

    def __iter__(self):
        for data, nbytes, skipped in self.blocks():
            lines = data.split(b"\n")
            if not lines[-1]:
                lines.pop()  # the empty string after the last newline
            yield lines, nbytes, skipped

    def blocks(self):
        """(data, nbytes, skipped) as __iter__ gives (lines, ...), the lines left joined as
        they are in the file, each with its newline (a `complete` last line without): a
        reader that looks for a few markers in the whole block (transcript.parse_block)
        splits out only the lines holding one."""
        f, limit = self.f, self.max_line
        parts, held = [], 0  # an unfinished line longer than a block spans several reads
        while True:
            block = f.read(self.batch_bytes)
            if not block:
                if self.complete and parts:
                    data = b"".join(parts)
                    self._keep(data)
                    yield data, len(data), 0
                return
            moved = skipped = 0
            if self.skipping:  # inside an over-long line: find its end, keep nothing
                newline = block.find(b"\n")
                if newline < 0:
                    self._keep(block)
                    yield b"", len(block), 0
                    continue
                self.skipping = False
                moved = newline + 1
                self._keep(block[:moved])
                block = block[moved:]
            end = block.rfind(b"\n") + 1
            if not end:
                if block:
                    parts.append(block)
                    held += len(block)
                if held > limit:
                    for part in parts:
                        self._keep(part)
                    moved, skipped, parts, held = moved + held, 1, [], 0
                    self.skipping = True
                if moved:
                    yield b"", moved, skipped
                continue
            data = b"".join((*parts, block[:end])) if parts else block[:end]
            self._keep(data)
            kept = data
            if len(data) > limit:  # (rare: only then is the block split here)
                lines = data.split(b"\n")
                lines.pop()
                short = [line for line in lines if len(line) <= limit]
                skipped = len(lines) - len(short)
                kept = b"".join(line + b"\n" for line in short) if skipped else data
            parts = [block[end:]] if end < len(block) else []
            held = len(parts[0]) if parts else 0
            yield kept, moved + len(data), skipped


def bytes_before(f, offset: int) -> bytes:
    """The last TAIL_BYTES (fewer near the start) of `f` before `offset`: one small read."""
    size = min(TAIL_BYTES, offset)
    return os.pread(f.fileno(), size, offset - size) if size else b""


def resumable(cursor, st) -> bool:
    """Whether a stored byte-offset cursor may still hold for the file `st` (an os.stat_result)
    describes: the same inode, not shrunk below the offset. Each source then checks the
    file's beginning against the cursor's `head` in its own way."""
    return bool(cursor) and cursor.get("inode") == st.st_ino and (cursor.get("offset") or 0) <= st.st_size
