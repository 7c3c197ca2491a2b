"""Builders for Claude Code 2.1.330-shaped transcript lines, for tests that need their own."""

import json


def assistant(
    message_id: str,
    *,
    request_id: str | None = "req_auto",
    session_id: str = "s-1",
    model: str = "claude-sonnet-4-5-20250929",
    input_tokens: int = 10,
    output_tokens: int = 20,
    cache_write: int = 0,
    cache_write_1h: int | None = None,
    cache_read: int = 0,
    content: list | None = None,
    timestamp: str = "2026-11-20T10:00:00.000Z",
    cwd: str = "/work/proj",
    agent_id: str | None = None,
    stop_reason: str | None = "end_turn",
    **extra,
) -> str:
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    if cache_write_1h is not None:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": cache_write - cache_write_1h,
            "ephemeral_1h_input_tokens": cache_write_1h,
        }
    line = {
        "parentUuid": None,
        "isSidechain": agent_id is not None,
        "type": "assistant",
        "message": {
            "model": model,
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": content if content is not None else [{"type": "text", "text": "ok"}],
            "stop_reason": stop_reason,
            "usage": usage,
        },
        "requestId": f"req_{message_id}" if request_id == "req_auto" else request_id,
        "uuid": f"u-{message_id}-{output_tokens}",
        "timestamp": timestamp,
        "cwd": cwd,
        "sessionId": session_id,
        "version": "2.1.330",
        "gitBranch": "main",
        "entrypoint": "cli",
    }
    if agent_id:
        line["agentId"] = agent_id
    line.update(extra)
    return json.dumps(line) + "\n"


def user(text, *, session_id: str = "s-1", timestamp: str = "2026-11-20T09:59:59.000Z", **extra) -> str:
    line = {
        "type": "user",
        "message": {"role": "user", "content": text},
        "timestamp": timestamp,
        "sessionId": session_id,
        "cwd": "/work/proj",
        "isSidechain": False,
    }
    line.update(extra)
    return json.dumps(line) + "\n"


def tool_use(name: str, tool_id: str = "toolu_1", **tool_input) -> dict:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}
