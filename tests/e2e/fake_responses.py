"""A fake OpenAI Responses API for the real Codex CLI, offline (standard library only).

Serves `POST …/responses` as a server-sent event stream, the shape Codex 0.171.0 reads
(`response.created`, `response.output_item.added/.done`, text or function-call deltas,
`response.completed` with `usage`). Anything else is refused with a 404 and logged, so a
test can prove nothing else was asked for.

What it answers is steered by words in the last user message of the request's `input`:

    TOOLS:<k>    k shell calls (`exec_command`, `{"cmd": "echo costhook"}`), one per
                 response, then a final text
    SPAWN        (the `collaboration` tools offered: --enable multi_agent_v2) spawn a
                 sub-agent, wait for it, then a final text; SPAWN[task] gives the
                 sub-agent that task (its own words, e.g. SPAWN[TOOLS:2]), else "say hi"
    ESCALATE     (with TOOLS) the shell call asks to run outside the sandbox: with
                 --approve-for-me, Codex's guardian sub-agent reviews it, billed
    BIGPROMPT    report a prompt above OpenAI's 272k long-context threshold
    NOUSAGE      answer without `usage` (Codex then records nothing for it)
    OBEY         once a tool call was refused by a PreToolUse hook, answer a final text
                 (a model that does what costhook's refusal asks); without it the
                 steps above go on whatever the tool outputs say
    otherwise    a short text

Usage of the n-th response of this server process (distinct per call, and checkable):

    input_tokens = 3000 + 37 n      (300000 + 37 n with BIGPROMPT; includes cached, as OpenAI's API)
    cached_tokens = 1024 + 11 n
    output_tokens = 50 + 3 n        (includes reasoning, as OpenAI's API)
    reasoning_tokens = 7 + n

Response ids are `resp_<tag>_<n>` with a random tag per process, so a resumed session
(a new server) never repeats an id. Each served request appends one JSON line to the log:
{seq, kind, response_id, usage, call_id, tool, prompt_cache_key, model, service_tier}.

    python3 fake_responses.py --port-file PORT --log requests.jsonl [--service-tier flex]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHELL_COMMAND = "echo costhook"


def usage_of(n: int, big: bool = False) -> dict:
    prompt = (300_000 if big else 3000) + 37 * n
    output = 50 + 3 * n
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 1024 + 11 * n},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 7 + n},
        "total_tokens": prompt + output,
    }


def text_of(item: dict) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def is_task(item: dict) -> bool:
    """A sub-agent's task: the parent's message, as Codex hands it to the child."""
    return item.get("type") == "agent_message" and "NEW_TASK" in json.dumps(item.get("content"))


def task_of(item: dict) -> str:
    parts = item.get("content") if isinstance(item.get("content"), list) else []
    return "".join(str(p.get("text") or p.get("encrypted_content") or "") for p in parts if isinstance(p, dict))


def offered(body: dict) -> set:
    return {tool.get("name") or tool.get("type") for tool in body.get("tools") or [] if isinstance(tool, dict)}


def plan(body: dict) -> tuple[str, dict]:
    """(kind, what) to answer this request with: ("call", {name, arguments, namespace?})
    or ("text", {text})."""
    items = [item for item in body.get("input") or [] if isinstance(item, dict)]
    last = max((i for i, item in enumerate(items) if item.get("role") == "user" or is_task(item)), default=-1)
    prompt = (task_of(items[last]) if is_task(items[last]) else text_of(items[last])) if last >= 0 else ""
    answered = sum(1 for item in items[last + 1:] if item.get("type") == "function_call_output")
    if "SPAWN" in prompt and "collaboration" in offered(body):
        child = re.search(r"SPAWN\[([^\]]*)\]", prompt)
        steps = [("spawn_agent", {"task_name": "helper", "fork_turns": "none",
                                  "message": child.group(1) if child else "say hi"}),
                 ("wait_agent", {"timeout_ms": 20000})]
        if answered < len(steps):
            name, arguments = steps[answered]
            return "call", {"name": name, "namespace": "collaboration", "arguments": json.dumps(arguments)}
        return "text", {"text": "The helper is done."}
    refused = [item for item in items[last + 1:] if item.get("type") == "function_call_output"
               and "blocked by PreToolUse hook" in json.dumps(item.get("output"))]
    if "OBEY" in prompt and refused:  # a model that does what costhook's refusal asks: stop
        return "text", {"text": "The budget is spent, so I stop here."}
    wanted = re.search(r"TOOLS:(\d+)", prompt)
    if wanted and answered < int(wanted.group(1)):
        arguments = {"cmd": SHELL_COMMAND}
        if "ESCALATE" in prompt:  # an approval request: the auto-reviewer (--approve-for-me) judges it
            arguments.update(sandbox_permissions="require_escalated", justification="the fake asks to leave the sandbox")
        return "call", {"name": "exec_command", "arguments": json.dumps(arguments)}
    return "text", {"text": f"Done after {answered} tool call(s)." if wanted else "Hello from the fake API."}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, log_path: str, service_tier: str | None = None):
        super().__init__(address, Handler)
        self.log_path, self.service_tier = log_path, service_tier
        self.lock, self.seq, self.tag = threading.Lock(), 0, os.urandom(3).hex()

    def record(self, entry: dict) -> None:
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    def next(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, *args):
        pass

    def refuse(self, size: int = 0) -> None:
        self.server.record({"kind": "refused", "method": self.command, "path": self.path, "bytes": size})
        data = b'{"error": {"message": "not served here"}}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    do_GET = do_PUT = do_DELETE = do_CONNECT = refuse

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.split("?")[0].rstrip("/").endswith("/responses"):
            return self.refuse(len(raw))
        body = json.loads(raw or b"{}")
        n = self.server.next()
        kind, what = plan(body)
        prompt = json.dumps(body.get("input") or [])
        usage = None if "NOUSAGE" in prompt else usage_of(n, "BIGPROMPT" in prompt)
        response_id = f"resp_{self.server.tag}_{n}"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {"id": response_id, "object": "response", "model": body.get("model"), "status": "in_progress",
                "output": []}
        if self.server.service_tier:
            base["service_tier"] = self.server.service_tier
        self.event("response.created", response=base)
        if kind == "call":
            item = {"type": "function_call", "id": f"fc_{self.server.tag}_{n}", "call_id": f"call_{self.server.tag}_{n}",
                    "name": what["name"], "arguments": what["arguments"], "status": "completed"}
            if "namespace" in what:
                item["namespace"] = what["namespace"]
            self.event("response.output_item.added", output_index=0, item={**item, "arguments": "", "status": "in_progress"})
            self.event("response.function_call_arguments.delta", output_index=0, item_id=item["id"], delta=what["arguments"])
            self.event("response.function_call_arguments.done", output_index=0, item_id=item["id"], arguments=what["arguments"])
        else:
            item = {"type": "message", "id": f"msg_{self.server.tag}_{n}", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": what["text"], "annotations": []}]}
            self.event("response.output_item.added", output_index=0, item={**item, "content": [], "status": "in_progress"})
            self.event("response.content_part.added", output_index=0, item_id=item["id"], content_index=0,
                       part={"type": "output_text", "text": ""})
            self.event("response.output_text.delta", output_index=0, item_id=item["id"], content_index=0, delta=what["text"])
            self.event("response.output_text.done", output_index=0, item_id=item["id"], content_index=0, text=what["text"])
        self.event("response.output_item.done", output_index=0, item=item)
        done = {**base, "status": "completed", "output": [item]}
        if usage is not None:
            done["usage"] = usage
        self.event("response.completed", response=done)
        self.server.record({"seq": n, "kind": kind, "response_id": response_id, "usage": usage, "model": body.get("model"),
                            "call_id": item.get("call_id"), "tool": item.get("name"),
                            "prompt_cache_key": body.get("prompt_cache_key"), "service_tier": body.get("service_tier")})

    def event(self, name: str, **fields) -> None:
        self.wfile.write(f"event: {name}\ndata: {json.dumps({'type': name, **fields})}\n\n".encode())
        self.wfile.flush()


def serve(log_path: str, service_tier: str | None = None) -> Server:
    """A server on 127.0.0.1 (a free port: `server.server_address[1]`), serving in a thread."""
    server = Server(("127.0.0.1", 0), log_path, service_tier)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--service-tier")
    args = parser.parse_args()
    server = Server(("127.0.0.1", 0), args.log, args.service_tier)
    with open(args.port_file, "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
