"""A fake OpenAI-compatible API (`POST /v1/chat/completions`) for the OpenClaw e2e tests.

Standard library only; binds 127.0.0.1 only. The reply is chosen from the last real
user message of the request (OpenClaw appends an internal-context user message after
the user's own; that one is skipped):

    a tool result follows that message      -> a final text answer          (USAGE["final"])
    it contains USE_TOOL and `exec` is offered -> one `exec` tool call       (USAGE["tool"])
    it contains SPAWN_CHILD                 -> `sessions_spawn` through the Tool Search bridge
                                               (`tool_call {id: sessions_spawn}`)     (USAGE["tool"])
    it mentions a heartbeat                 -> "HEARTBEAT_OK"               (USAGE["heartbeat"])
    anything else                           -> a short greeting             (USAGE["plain"])

Each branch returns its own fixed usage, so a test can tell exactly which calls were
billed and compare token counts with what costhook recorded. Every request is appended
to the --log file as one JSON line: path, branch, the usage returned, the model asked for
(never the prompt). Anything else (other paths, proxy-style absolute URLs) is logged as
"unknown" and refused, so a test can prove nothing tried to leave the machine.

    python fake_openai.py --port 0 --port-file PORT --log requests.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOOL_NAME = "exec"
TOOL_ARGS = {"command": "echo costhook-e2e-tool"}

# OpenAI usage objects. OpenClaw stores input = prompt - cached, cacheRead = cached.
USAGE = {
    "tool": {"prompt_tokens": 1500, "completion_tokens": 48, "total_tokens": 1548,
             "prompt_tokens_details": {"cached_tokens": 1024}},
    "final": {"prompt_tokens": 1700, "completion_tokens": 21, "total_tokens": 1721,
              "prompt_tokens_details": {"cached_tokens": 1536}},
    "heartbeat": {"prompt_tokens": 640, "completion_tokens": 5, "total_tokens": 645,
                  "prompt_tokens_details": {"cached_tokens": 512}},
    "plain": {"prompt_tokens": 800, "completion_tokens": 9, "total_tokens": 809,
              "prompt_tokens_details": {"cached_tokens": 0}},
}
TEXT = {"final": "The tool ran. Done.", "heartbeat": "HEARTBEAT_OK", "plain": "Hello from the fake model."}


def openclaw_usage(branch: str) -> dict:
    """The usage OpenClaw records for a branch: input (uncached), output, cacheRead, cacheWrite."""
    u = USAGE[branch]
    cached = u["prompt_tokens_details"]["cached_tokens"]
    return {"input": u["prompt_tokens"] - cached, "output": u["completion_tokens"], "cacheRead": cached, "cacheWrite": 0}


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _internal(message: dict) -> bool:
    return _text(message).lstrip().startswith("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT")


def choose(body: dict) -> str:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    offered = {(t.get("function") or {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    users = [i for i, m in enumerate(messages) if m.get("role") == "user" and not _internal(m)]
    if not users:
        return "plain"
    last = users[-1]
    if any(m.get("role") == "tool" for m in messages[last + 1 :]):
        return "final"
    prompt = _text(messages[last])
    if "USE_TOOL" in prompt and TOOL_NAME in offered:
        return "tool"
    if "SPAWN_CHILD" in prompt and ("tool_call" in offered or "sessions_spawn" in offered):
        return "spawn"
    if "heartbeat" in prompt.lower():
        return "heartbeat"
    return "plain"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, fmt, *args):  # quiet; the JSONL log is the record
        pass

    def _log(self, entry: dict) -> None:
        entry.update(t=time.time(), path=self.path, method=self.command)
        with self.server.lock:
            self.server.count += 1
            entry["n"] = self.server.count
            with open(self.server.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def _send_json(self, code: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self) -> None:
        self._log({"kind": "unknown", "host": self.headers.get("Host")})
        self._send_json(404, {"error": {"message": "fake-openai: not served here", "type": "not_found"}})

    def do_GET(self):
        if self.path.startswith("/v1/models"):
            self._log({"kind": "models"})
            return self._send_json(200, {"object": "list", "data": [{"id": self.server.model, "object": "model"}]})
        self._refuse()

    def do_CONNECT(self):
        self._refuse()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self.path.startswith("/v1/chat/completions"):
            return self._refuse()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        branch = choose(body)
        usage = USAGE["tool" if branch == "spawn" else branch]
        self._log({"kind": "chat", "branch": branch, "model": body.get("model"), "stream": bool(body.get("stream")),
                   "usage": usage, "tools_offered": len(body.get("tools") or [])})
        reply_id = "chatcmpl-" + uuid.uuid4().hex[:20]
        created = int(time.time())
        model = body.get("model") or self.server.model
        if branch in ("tool", "spawn"):
            name, args = TOOL_NAME, TOOL_ARGS
            if branch == "spawn":
                spawn_args = {"task": "Child task: reply briefly.", "label": "e2e-child"}
                offered = {(t.get("function") or {}).get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
                name, args = ("sessions_spawn", spawn_args) if "sessions_spawn" in offered else (
                    "tool_call", {"id": "sessions_spawn", "args": spawn_args})
            call = {"id": "call_" + uuid.uuid4().hex[:16], "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)}}
            message, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": TEXT[branch]}, "stop"
        if not body.get("stream"):
            return self._send_json(200, {"id": reply_id, "object": "chat.completion", "created": created, "model": model,
                                         "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                         "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        head = {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": model}

        def chunk(choices, **extra):
            self.wfile.write(b"data: " + json.dumps({**head, "choices": choices, **extra}).encode() + b"\n\n")
            self.wfile.flush()

        if branch in ("tool", "spawn"):
            call = message["tool_calls"][0]
            chunk([{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}]},
                "finish_reason": None}])
            chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": call["function"]["arguments"]}}]},
                    "finish_reason": None}])
        else:
            chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            chunk([{"index": 0, "delta": {"content": message["content"]}, "finish_reason": None}])
        chunk([{"index": 0, "delta": {}, "finish_reason": finish}])
        chunk([], usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def serve(port: int, log_path: str, port_file: str | None, model: str = "fake-model", max_seconds: float = 0):
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.count = 0
    server.log_path = log_path
    server.model = model
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        import os

        os.replace(port_file + ".tmp", port_file)
    if max_seconds:
        threading.Timer(max_seconds, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--log", required=True)
    parser.add_argument("--max-seconds", type=float, default=0, help="stop serving after this long (0: never)")
    args = parser.parse_args()
    try:
        serve(args.port, args.log, args.port_file, max_seconds=args.max_seconds)
    except KeyboardInterrupt:
        sys.exit(0)
