"""A faster reader of assistant lines for `costhook import` (never the hook): msgspec
decodes only the fields transcript.py reads, skipping the rest of the line unbuilt.

A line it cannot take as expected (not JSON msgspec accepts, or a field of another shape:
`message` not an object, a content block not an object, a tool input not an object, ...)
returns None, and transcript.py reads it with the standard parser as the hook does; where
both read a line, they give the same values, so the rows do not depend on the reader.
"""

from typing import Any

import msgspec


class _Input(msgspec.Struct):
    skill: Any = None
    command: Any = None
    subagent_type: Any = None  # a Task/Agent call's (transcript._note_spawn)


class _Block(msgspec.Struct):
    type: Any = None
    name: Any = None
    id: Any = None
    input: _Input | None = None


class _Message(msgspec.Struct):
    id: Any = None
    model: Any = None
    usage: Any = None
    content: list[_Block] | None = None


class _Line(msgspec.Struct):
    type: Any = None
    message: _Message | None = None
    requestId: Any = None
    sessionId: Any = None
    agentId: Any = None
    isSidechain: Any = None
    cwd: Any = None
    gitBranch: Any = None
    timestamp: Any = None
    entrypoint: Any = None


_decode = msgspec.json.Decoder(_Line).decode
_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError)


def assistant_line(raw: bytes) -> dict | None:
    """The line as transcript._assistant_line reads it (a dict holding only the fields it
    uses), or None: read it the standard way."""
    try:
        line = _decode(raw)
    except _ERRORS:
        return None
    if line.type != "assistant":
        return None  # (a user line that mentions "assistant": the standard path handles it)
    m = line.message
    message = None
    if m is not None:
        content = None
        if m.content is not None:
            content = [{"type": b.type, "name": b.name, "id": b.id,
                        "input": None if b.input is None else {"skill": b.input.skill, "command": b.input.command,
                                                               "subagent_type": b.input.subagent_type}}
                       for b in m.content]
        message = {"id": m.id, "model": m.model, "usage": m.usage, "content": content}
    return {"type": line.type, "message": message, "requestId": line.requestId, "sessionId": line.sessionId,
            "agentId": line.agentId, "isSidechain": line.isSidechain, "cwd": line.cwd, "gitBranch": line.gitBranch,
            "timestamp": line.timestamp, "entrypoint": line.entrypoint}
