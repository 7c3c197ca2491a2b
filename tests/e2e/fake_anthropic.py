#!/usr/bin/env python3
"""A fake Anthropic Messages API, good enough to drive the real Claude Code CLI.

Standard library only, so it runs under any python3 (it is started as a
subprocess, possibly inside a private network namespace). It binds 127.0.0.1
only.

Routes
  POST /v1/messages               streaming (SSE) or plain JSON, per `stream`
  POST /v1/messages/count_tokens  {"input_tokens": N}
  GET  /v1/models, /v1/models/ID  a one-model list / the model
  CONNECT, absolute-URI requests  refused with 403 and logged as kind "proxy":
                                  point HTTPS_PROXY/HTTP_PROXY here and every
                                  attempt to reach another host shows up
  anything else                   logged as kind "unknown", 404

The conversation is a script, chosen from the request body alone (never from a
request counter, so extra side calls cannot shift it):

* the *agent* is "sub" when a user text block holds SUBAGENT_MARKER (the
  prompt the main agent hands to the Agent tool), else "main";
* the *turn* is the number of tool_result blocks anywhere in the conversation
  (Claude Code 2.1.330 may append role "system" messages after them, so
  looking only at the last message would loop);
* turn < tool turns for that agent -> text + one tool_use (stop_reason
  tool_use). The main agent calls FAKE_TOOL (Bash, Agent or Skill); a sub-agent
  always calls Bash (it is offered the Agent tool too);
* otherwise -> final text (stop_reason end_turn);
* a request without tools gets a short "aux" answer; every request past
  FAKE_MAX_REQUESTS gets a plain end_turn "cap" answer, so a script bug cannot
  loop forever.

Every reply carries fixed usage numbers that depend only on (agent, kind,
turn); `usage_for()` is the single source of truth and tests import it.

Knobs (environment of this process)
  FAKE_TOOL            Bash (default), Agent or Skill: what the main agent calls
  FAKE_SKILL           the skill the Skill tool is asked to run
  FAKE_TOOL_TURNS      tool turns of the main agent (default 1)
  FAKE_SUB_TOOL_TURNS  Bash turns inside a sub-agent (default 1)
  FAKE_TOOL_COMMAND    the Bash command (default "echo hi")
  FAKE_AGENT_MODEL     model alias passed to the Agent tool (default haiku;
                       empty = let the CLI choose)
  FAKE_AGENT_BACKGROUND  run_in_background for the Agent tool: 0 (default),
                       1, or "unset" (omit it; 2.1.330 then runs it in the
                       background and the main agent answers twice)
  FAKE_MODEL           model id echoed in replies (default: request's model)
  FAKE_CACHE_SPLIT     "split" (default): usage.cache_creation splits writes
                       into 5m and 1h parts; "5m": all 5m; "none": no
                       cache_creation object (legacy shape, all 5m)
  FAKE_MAX_REQUESTS    request cap (default 30)
  FAKE_FINAL_TEXT      final text of the main agent
  FAKE_ITERATIONS      comma list of "compaction", "advisor": the main
                       agent's first tool turn reports usage.iterations (in
                       message_delta, as the API does): a compaction pass
                       (ITERATION_COMPACTION), the message sampling (equal to
                       the top level) and an advisor sub-inference
                       (ITERATION_ADVISOR) at FAKE_ADVISOR_MODEL; the top level
                       stays the message sampling alone
  FAKE_ADVISOR_MODEL   the advisor iteration's model (default claude-opus-4-6)

Each request is appended as one JSON line to --log: n, kind, method, path,
model, stream, tools offered, whether the last user message holds
tool_results, the tool_result count, agent, turn, reply kind, and what was
sent back (message id, request-id header, usage, tool_use ids/names).

    python3 fake_anthropic.py --port 0 --port-file PORT --log requests.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SUBAGENT_MARKER = "[costhook-e2e-subagent]"
DEFAULT_FINAL_TEXT = "costhook e2e: all done"
SUB_FINAL_TEXT = "sub-agent finished"

# (input, cache_creation_5m, cache_creation_1h, cache_read, output) per turn.
# Tool turn k (0-based) of an agent adds k to input/output and 1000*k to
# cache_read so repeated turns stay distinct.
_BASE = {
    ("main", "tool"): (1234, 2045, 300, 3456, 78),
    ("main", "final"): (111, 122, 100, 4567, 33),
    ("sub", "tool"): (2020, 3000, 30, 4040, 55),
    ("sub", "final"): (202, 280, 23, 5050, 44),
    ("main", "aux"): (50, 0, 0, 0, 5),
    ("sub", "aux"): (50, 0, 0, 0, 5),
    ("main", "cap"): (10, 0, 0, 0, 1),
    ("sub", "cap"): (10, 0, 0, 0, 1),
}


# (input, cache_creation, cache_read, output) of the extra samplings FAKE_ITERATIONS adds.
ITERATION_COMPACTION = (180000, 0, 0, 3500)  # the API docs' compaction example
ITERATION_ADVISOR = (30000, 0, 0, 1600)
ADVISOR_MODEL = "claude-opus-4-6"


def usage_for(agent: str, kind: str, turn: int = 0, split: str = "split", iterations: str = "",
              advisor_model: str = ADVISOR_MODEL) -> dict:
    """The usage object the fake returns for one reply (final values)."""
    inp, c5, c1, cr, out = _BASE[(agent, kind)]
    if kind == "tool":
        inp, cr, out = inp + turn, cr + 1000 * turn, out + turn
    if split != "split":  # everything is a 5-minute write
        c5, c1 = c5 + c1, 0
    u = {
        "input_tokens": inp,
        "cache_creation_input_tokens": c5 + c1,
        "cache_read_input_tokens": cr,
        "output_tokens": out,
    }
    if split != "none":
        u["cache_creation"] = {"ephemeral_5m_input_tokens": c5,
                               "ephemeral_1h_input_tokens": c1}
    u["service_tier"] = "standard"
    wanted = {w.strip() for w in iterations.split(",") if w.strip()}
    if wanted and (agent, kind, turn) == ("main", "tool", 0):
        message = {"type": "message", **{k: v for k, v in u.items() if k != "service_tier"}}
        its = []
        if "compaction" in wanted:
            its.append(_iteration("compaction", ITERATION_COMPACTION))
        its.append(message)
        if "advisor" in wanted:
            its.append(dict(_iteration("advisor_message", ITERATION_ADVISOR), model=advisor_model))
        u["iterations"] = its
    return u


def _iteration(kind: str, counts: tuple) -> dict:
    inp, cache_creation, cache_read, out = counts
    return {"type": kind, "input_tokens": inp, "cache_creation_input_tokens": cache_creation,
            "cache_read_input_tokens": cache_read, "output_tokens": out}


class Config:
    def __init__(self, env=os.environ):
        self.tool = env.get("FAKE_TOOL", "Bash")
        self.tool_turns = int(env.get("FAKE_TOOL_TURNS", "1"))
        self.sub_tool_turns = int(env.get("FAKE_SUB_TOOL_TURNS", "1"))
        self.command = env.get("FAKE_TOOL_COMMAND", "echo hi")
        self.skill = env.get("FAKE_SKILL", "")
        self.agent_model = env.get("FAKE_AGENT_MODEL", "haiku")
        self.agent_background = env.get("FAKE_AGENT_BACKGROUND", "0")
        self.model = env.get("FAKE_MODEL", "")
        self.split = env.get("FAKE_CACHE_SPLIT", "split")
        self.max_requests = int(env.get("FAKE_MAX_REQUESTS", "30"))
        self.final_text = env.get("FAKE_FINAL_TEXT", DEFAULT_FINAL_TEXT)
        self.iterations = env.get("FAKE_ITERATIONS", "")
        self.advisor_model = env.get("FAKE_ADVISOR_MODEL", ADVISOR_MODEL)


CFG = Config()
_lock = threading.Lock()
_state = {"n": 0, "ids": 0}
RUN_TAG = os.urandom(3).hex()  # keeps ids unique across server runs
LOG_PATH: str | None = None


def _next(key: str) -> int:
    with _lock:
        _state[key] += 1
        return _state[key]


def _log(rec: dict) -> None:
    rec["ts"] = round(time.time(), 3)
    line = json.dumps(rec, sort_keys=True)
    with _lock:
        if LOG_PATH:
            with open(LOG_PATH, "a", encoding="utf-8") as f:
                f.write(line + "\n")


# ----------------------------------------------------------- the script ----
def _blocks(content) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in (content or []) if isinstance(b, dict)]


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in _blocks(content) if b.get("type") == "text")


def analyse(body: dict) -> dict:
    msgs = [m for m in (body.get("messages") or []) if isinstance(m, dict)]
    user_msgs = [m for m in msgs if m.get("role") == "user"]
    results = [b for m in user_msgs for b in _blocks(m.get("content"))
               if b.get("type") == "tool_result"]
    last_user = user_msgs[-1] if user_msgs else {}
    user_text = " ".join(_text_of(m.get("content")) for m in user_msgs)
    return {
        "model": body.get("model"),
        "stream": bool(body.get("stream")),
        "tools": [t.get("name") for t in (body.get("tools") or []) if isinstance(t, dict)],
        "roles": [m.get("role") for m in msgs],
        "last_user_has_tool_result": any(
            b.get("type") == "tool_result" for b in _blocks(last_user.get("content"))),
        "tool_results": len(results),
        "tool_result_errors": sum(1 for b in results if b.get("is_error")),
        "agent": "sub" if SUBAGENT_MARKER in user_text else "main",
    }


def plan(info: dict, n: int) -> tuple[str, int, list[dict], str]:
    """(kind, turn, content blocks, stop_reason) for a request."""
    agent, turn = info["agent"], info["tool_results"]
    if n > CFG.max_requests:
        return "cap", turn, [{"type": "text", "text": "fake server: request cap reached"}], "end_turn"
    if not info["tools"]:
        return "aux", turn, [{"type": "text", "text": "ok"}], "end_turn"
    turns = CFG.tool_turns if agent == "main" else CFG.sub_tool_turns
    if turn >= turns:
        text = CFG.final_text if agent == "main" else SUB_FINAL_TEXT
        return "final", turn, [{"type": "text", "text": text}], "end_turn"
    tool = CFG.tool if agent == "main" else "Bash"
    if tool not in info["tools"]:
        tool = "Bash"
    if tool == "Agent":
        tool_input = {"description": "Run a command in a sub-agent",
                      "prompt": f"{SUBAGENT_MARKER} Run the shell command: {CFG.command}",
                      "subagent_type": "general-purpose"}
        if CFG.agent_model:
            tool_input["model"] = CFG.agent_model
        if CFG.agent_background in ("0", "1"):  # 2.1.330 defaults to background
            tool_input["run_in_background"] = CFG.agent_background == "1"
    elif tool == "Skill":
        tool_input = {"skill": CFG.skill}
    else:
        tool_input = {"command": CFG.command, "description": f"{agent} turn {turn}"}
    tool_id = f"toolu_e2e{RUN_TAG}{agent}{turn}x{_next('ids'):03d}"
    return "tool", turn, [
        {"type": "text", "text": f"Running {tool} (turn {turn})."},
        {"type": "tool_use", "id": tool_id, "name": tool, "input": tool_input},
    ], "tool_use"


# -------------------------------------------------------------- handler ----
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "costhook-fake-anthropic/1"

    def log_message(self, fmt, *args):
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _json(self, status: int, obj, request_id: str | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if request_id:
            self.send_header("request-id", request_id)
        self.end_headers()
        self.wfile.write(data)

    def _headers_summary(self) -> dict:
        keep = ("host", "user-agent", "anthropic-version", "anthropic-beta",
                "x-claude-code-session-id")
        return {k.lower(): v for k, v in self.headers.items() if k.lower() in keep}

    def _is_proxy_request(self) -> bool:
        """An absolute URI: the client used us as an HTTP proxy. Allowed only
        when it targets loopback (then the path is served normally)."""
        if not self.path.startswith(("http://", "https://")):
            return False
        rest = self.path.split("://", 1)[1]
        host = rest.split("/", 1)[0].rsplit(":", 1)[0]
        if host in ("127.0.0.1", "localhost", "[::1]"):
            self.path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
            return False
        return True

    def _refuse_proxy(self, method: str) -> None:
        _log({"n": _next("n"), "kind": "proxy", "method": method, "path": self.path,
              "headers": self._headers_summary()})
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _not_found(self, method: str) -> None:
        _log({"n": _next("n"), "kind": "unknown", "method": method, "path": self.path,
              "headers": self._headers_summary()})
        self._json(404, {"type": "error", "error": {
            "type": "not_found_error", "message": f"fake: no route {method} {self.path}"}})

    def do_CONNECT(self):
        self._refuse_proxy("CONNECT")

    def do_HEAD(self):
        if self._is_proxy_request():
            return self._refuse_proxy("HEAD")
        self._not_found("HEAD")

    def do_GET(self):
        if self._is_proxy_request():
            return self._refuse_proxy("GET")
        path = self.path.split("?", 1)[0]
        if path == "/health":
            return self._json(200, {"ok": True})
        if path == "/v1/models" or path.startswith("/v1/models/"):
            mid = CFG.model or (path[len("/v1/models/"):] if path != "/v1/models"
                                else "claude-sonnet-4-5-20250929")
            model = {"type": "model", "id": mid, "display_name": mid,
                     "created_at": "2025-09-29T00:00:00Z"}
            _log({"n": _next("n"), "kind": "models", "method": "GET", "path": self.path})
            if path == "/v1/models":
                return self._json(200, {"data": [model], "has_more": False,
                                        "first_id": mid, "last_id": mid})
            return self._json(200, model)
        self._not_found("GET")

    def do_POST(self):
        if self._is_proxy_request():
            self._body()
            return self._refuse_proxy("POST")
        raw = self._body()
        path = self.path.split("?", 1)[0]
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or path not in ("/v1/messages",
                                                      "/v1/messages/count_tokens"):
            return self._not_found("POST")
        n = _next("n")
        info = analyse(body)
        if path == "/v1/messages/count_tokens":
            tokens = max(1, len(raw) // 4)
            _log({"n": n, "kind": "count_tokens", "method": "POST", "path": self.path,
                  **info, "input_tokens": tokens})
            return self._json(200, {"input_tokens": tokens})

        kind, turn, blocks, stop = plan(info, n)
        usage = usage_for(info["agent"], kind, turn, CFG.split, CFG.iterations, CFG.advisor_model)
        model = CFG.model or body.get("model") or "claude-sonnet-4-5-20250929"
        msg_id = f"msg_e2e{RUN_TAG}{n:03d}{info['agent']}{kind}{turn}"
        request_id = f"req_e2e{RUN_TAG}{n:03d}"
        _log({"n": n, "kind": "messages", "method": "POST", "path": self.path,
              "headers": self._headers_summary(), **info,
              "reply": {"kind": kind, "turn": turn, "model": model, "id": msg_id,
                        "request_id": request_id, "stop_reason": stop, "usage": usage,
                        "tool_uses": [{"id": b["id"], "name": b["name"]}
                                      for b in blocks if b["type"] == "tool_use"]}})
        if info["stream"]:
            return self._stream(msg_id, request_id, model, blocks, stop, usage)
        self._json(200, {"id": msg_id, "type": "message", "role": "assistant",
                         "model": model, "content": blocks, "stop_reason": stop,
                         "stop_sequence": None, "usage": usage}, request_id)

    def _stream(self, msg_id, request_id, model, blocks, stop, usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", request_id)
        self.end_headers()

        def event(name: str, data: dict) -> None:
            chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()

        # As the real API: message_start carries input and cache counts and a
        # placeholder output count; message_delta carries the final counts.
        start_usage = {k: v for k, v in usage.items() if k != "iterations"}
        start_usage["output_tokens"] = 1
        event("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": start_usage}})
        event("ping", {"type": "ping"})
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                event("content_block_start", {"type": "content_block_start", "index": i,
                                              "content_block": {"type": "text", "text": ""}})
                text = block["text"]
                for piece in (text[: len(text) // 2], text[len(text) // 2:]):
                    if piece:
                        event("content_block_delta", {
                            "type": "content_block_delta", "index": i,
                            "delta": {"type": "text_delta", "text": piece}})
            else:
                event("content_block_start", {
                    "type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": block["id"],
                                      "name": block["name"], "input": {}}})
                js = json.dumps(block["input"])
                for piece in (js[: len(js) // 2], js[len(js) // 2:]):
                    event("content_block_delta", {
                        "type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": piece}})
            event("content_block_stop", {"type": "content_block_stop", "index": i})
        event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens",
                                            "cache_read_input_tokens", "output_tokens", "iterations")
                      if k in usage}})
        event("message_stop", {"type": "message_stop"})
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None) -> int:
    global LOG_PATH
    ap = argparse.ArgumentParser(description="fake Anthropic Messages API (127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--log", help="append one JSON line per request here")
    ap.add_argument("--max-seconds", type=float, default=600,
                    help="exit after this long no matter what (default 600)")
    args = ap.parse_args(argv)
    LOG_PATH = args.log
    server = Server(("127.0.0.1", args.port), Handler)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(server.server_address[1]))
        os.replace(tmp, args.port_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watchdog = threading.Timer(args.max_seconds, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    try:
        server.serve_forever(poll_interval=0.1)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
