"""Deterministic generator of Claude Code 2.1.330-shaped data for costhook's benchmarks.

    python -m tests.benchmarks.generate tree OUT_DIR --calls 80000 [--seed 1]
    python -m tests.benchmarks.generate transcript OUT_FILE --mb 50 [--seed 1]
    python -m tests.benchmarks.generate db OUT_DB --rows 1000000 [--seed 1]

`tree` writes OUT_DIR/projects/<encoded-cwd>/<session>.jsonl plus sub-agent files
(<session>/subagents/agent-<id>.jsonl and .meta.json), as Claude Code 2.1.330 does
(with --no-meta, as 2.0.x did: no .meta.json, the spawning tool is `Task`, and only the
parent's call names the sub-agent's type):
every API call streamed over 1-4 lines sharing message.id/requestId with a growing
output_tokens, 5m/1h cache writes, cache reads, web searches, tool calls and their
results, the big non-usage lines (attachments, api-request-blob/-shape, tool results of
5-100 KB), a few `<synthetic>` and malformed/truncated lines, a cost-state line per
session, timestamps spread over ~60 days. About 9 KB per call.

Each command prints the totals it wrote as JSON (billed calls; token sums by UTC day of
a call's first line, by model and, for `tree`, by agent type, "(main)" for the main
thread; with --cost, nano-USD per call priced by costhook.pricing summed into each
group); `tree` also writes them to OUT_DIR/expected.json
(outside projects/, so no reader takes it for a transcript). The same seed gives the
same bytes.

`db` builds a costhook database with synthetic `requests` rows: schema via
costhook.store.db.connect(), rows via one executemany in one transaction.
"""

import argparse
import importlib
import importlib.util
import json
import math
import os
import random
import re
import sys
import time
from pathlib import Path

VERSION = "2.1.330"
MODELS = (
    ("claude-opus-4-5-20251101", 30),
    ("claude-sonnet-4-5-20250929", 30),
    ("claude-haiku-4-5-20251001", 10),
    ("claude-opus-4-6", 15),
    ("claude-sonnet-5", 15),
)
HAIKU = "claude-haiku-4-5-20251001"
START_MS = 1_788_220_800_000  # 2026-09-01T00:00:00Z
SPAN_DAYS = 60
DAY_MS = 86_400_000
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")
TOOL_WEIGHTS = (("Bash", 32), ("Read", 30), ("Edit", 18), ("Grep", 16), ("mcp__github__create_issue", 2))
AGENT_TYPES = ("Explore", "general-purpose", "Plan")
PROJECT_NAMES = (
    "acme-api", "acme-web", "billing", "infra", "data-pipeline", "mobile-app", "docs", "search",
    "auth-service", "ml-experiments", "cli-tools", "dashboard", "payments", "notifications",
    "scheduler", "gateway", "analytics", "design-system", "etl", "crawler", "chat", "inventory",
    "reports", "sandbox", "monorepo", "legacy-app", "bigctx", "website", "ops-scripts", "sdk",
)
WORDS = (
    "const let return await async function import from export default if else for while try "
    "catch throw new class extends interface type string number boolean null undefined true "
    "false req res body params query orders refunds users db insert update select where schema "
    "validate parse error status json test expect describe it mock config env logger handler "
    "route middleware items total price customer invoice retry timeout cache key value map"
).split()

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def iso(ms: int) -> str:
    seconds, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milli:03d}Z"


def day_of(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


def encode_cwd(cwd: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


# ------------------------------------------------------------------ expected totals --


class Totals:
    """What was written: billed calls and their token sums, by UTC day and by model."""

    def __init__(self):
        self.calls = 0
        self.web_search_requests = 0
        self.by_day = {}  # day -> [requests, input, output, 5m, 1h, read]
        self.by_model = {}
        self.by_agent = {}  # agent type ("(main)": the main thread) -> the same sums
        self.price = None  # (model, counts..., speed, geo, timestamp) -> nano-USD, with --cost
        self.cost = {}  # group name -> nano-USD, "total" and "agent:<type>"
        self.synthetic = 0  # `<synthetic>` zero-usage lines (not billed calls)
        self.truncated = 0  # malformed assistant lines (mid-file, newline-terminated)
        self.partial_tails = 0  # files ending in a partial line without newline
        self.nul_lines = 0
        self.sessions = 0
        self.subagent_files = 0
        self.files = 0
        self.lines = 0
        self.bytes = 0

    def add(self, ms, model, inp, out, w5, w1, read, web, agent_type="(main)", speed=None, geo=None):
        self.calls += 1
        self.web_search_requests += web
        if self.price is not None:
            cost = self.price(model, inp, out, w5, w1, read, web, speed, geo, iso(ms))
            for key in ("total", f"agent:{agent_type}"):
                self.cost[key] = self.cost.get(key, 0) + cost
        for table, key in ((self.by_day, day_of(ms)), (self.by_model, model), (self.by_agent, agent_type)):
            row = table.get(key)
            if row is None:
                row = table[key] = [0, 0, 0, 0, 0, 0]
            row[0] += 1
            row[1] += inp
            row[2] += out
            row[3] += w5
            row[4] += w1
            row[5] += read

    @staticmethod
    def _rows(table):
        return {k: dict(zip(("requests",) + TOKEN_KEYS, v)) for k, v in sorted(table.items())}

    def to_json(self) -> dict:
        totals = [0] * 6
        for row in self.by_day.values():
            totals = [a + b for a, b in zip(totals, row)]
        return {
            "calls": self.calls,
            "totals": {**dict(zip(("requests",) + TOKEN_KEYS, totals)), "web_search_requests": self.web_search_requests},
            "by_day": self._rows(self.by_day),
            "by_model": self._rows(self.by_model),
            "by_agent": self._rows(self.by_agent),
            **({"cost_nanousd": dict(sorted(self.cost.items()))} if self.price is not None else {}),
            "synthetic_lines": self.synthetic,
            "truncated_lines": self.truncated,
            "partial_tail_files": self.partial_tails,
            "nul_lines": self.nul_lines,
            "sessions": self.sessions,
            "subagent_files": self.subagent_files,
            "files": self.files,
            "lines": self.lines,
            "bytes": self.bytes,
        }


# ------------------------------------------------------------------ writing ---------


class Sink:
    """A transcript file written through a 1 MB buffer."""

    def __init__(self, path, mode="wb"):
        self.path = str(path)
        self.f = open(path, mode, buffering=1 << 20)
        self.lines = 0
        self.bytes = 0
        self.calls = []  # the lines of the last calls written (Thread.call), for a resumed session to copy

    def line(self, obj) -> bytes:
        data = (_dumps(obj) + "\n").encode()
        self.f.write(data)
        self.lines += 1
        self.bytes += len(data)
        return data

    def raw(self, data: bytes) -> None:
        self.f.write(data)
        self.lines += 1
        self.bytes += len(data)

    def close(self, totals: Totals | None = None):
        self.f.close()
        if totals is not None:
            totals.files += 1
            totals.lines += self.lines
            totals.bytes += self.bytes


class Gen:
    """Random source plus shared text pool and counters; one per generated tree/file."""

    def __init__(self, seed: int, meta: bool = True):
        self.rng = random.Random(seed)
        self.meta = meta  # write agent-<id>.meta.json (2.1.330) or not (2.0.x)
        self.spawn_tool = "Agent" if meta else "Task"
        self.totals = Totals()
        self.counter = 0
        self.pool = self._pool(1 << 18)
        self.half = len(self.pool) // 2

    def _pool(self, size: int) -> str:
        rng, lines, n = self.rng, [], 0
        while n < size:
            indent = "  " * rng.randint(0, 4)
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12)))
            r = rng.random()
            if r < 0.2:
                line = f'{indent}{words}("{rng.choice(WORDS)}");'
            elif r < 0.3:
                line = f"{indent}// {words} \u2014 ok \u2713"
            elif r < 0.35:
                line = f"{indent}path = 'C:\\{rng.choice(WORDS)}\\{rng.choice(WORDS)}'"
            elif r < 0.4:
                line = f"{indent}\t{words}"
            else:
                line = f"{indent}{words} {{"
            lines.append(line)
            n += len(line) + 1
        text = "\n".join(lines)
        return text + "\n" + text

    def text(self, n: int) -> str:
        n = max(1, min(int(n), self.half))
        start = self.rng.randrange(self.half)
        return self.pool[start : start + n]

    def logu(self, lo: float, hi: float) -> int:
        return int(lo * (hi / lo) ** self.rng.random())

    def hexid(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    def model(self) -> str:
        return self.rng.choices([m for m, _ in MODELS], [w for _, w in MODELS])[0]


class Thread:
    """One transcript file: a main session or a sub-agent, written line by line."""

    def __init__(self, gen: Gen, sink: Sink, *, session_id, cwd, branch, model, clock, agent_id=None, policy="5m",
                 agent_type="(main)"):
        self.g = gen
        self.rng = gen.rng
        self.sink = sink
        self.session_id = session_id
        self.cwd = cwd
        self.branch = branch
        self.model = model
        self.clock = clock
        self.agent_id = agent_id
        self.agent_type = agent_type
        self.spawns = {}  # tool_use id of an Agent/Task call -> the subagent_type it asked for
        self.policy = policy  # 5m | 1h | mixed
        self.parent = None
        self.prompt_id = None
        self.context = 0  # tokens in the cached prefix
        self.fresh = 0  # tokens added since the last call (prompt, tool results, output)
        self.last_call = None
        self.pending_blob = None
        self.request_ref = None
        self.speed = "fast" if model == "claude-opus-4-6" and self.rng.random() < 0.1 else "standard"
        self.geo = self.rng.choices(("global", "us", "not_available", ""), (70, 10, 10, 10))[0]
        self.model_usage = {}  # for cost-state lines

    # -- envelope -----------------------------------------------------------------

    def _head(self, kind: str) -> dict:
        line = {"parentUuid": self.parent, "isSidechain": self.agent_id is not None}
        if self.agent_id:
            line["agentId"] = self.agent_id
        if kind == "user" and self.prompt_id:
            line["promptId"] = self.prompt_id
        return line

    def _tail(self, line: dict, uuid: str) -> dict:
        line["userType"] = "external"
        line["entrypoint"] = "cli"
        line["cwd"] = self.cwd
        line["sessionId"] = self.session_id
        line["version"] = VERSION
        line["gitBranch"] = self.branch
        self.parent = uuid
        return line

    def tick(self, lo_ms: int, hi_ms: int) -> int:
        self.clock += self.rng.randint(lo_ms, hi_ms)
        return self.clock

    # -- non-usage lines --------------------------------------------------------------

    def meta(self, obj: dict) -> None:
        self.sink.line(obj)

    def attachment(self, payload: dict, rendered: str | None = None) -> None:
        uuid = self.g.uuid()
        line = self._head("attachment")
        line.update(attachment=payload, type="attachment", uuid=uuid, timestamp=iso(self.tick(0, 30)))
        if rendered is not None:
            line["rendered"] = [{"content": f"<system-reminder>\n{rendered}\n</system-reminder>"}]
            line["renderedRole"] = "system"
        self.sink.line(self._tail(line, uuid))

    def big_attachment(self, lo=5_000, hi=100_000) -> None:
        size = self.g.logu(lo, hi)
        kind = self.rng.random()
        if kind < 0.4:
            text = self.g.text(size)
            self.attachment({"type": "prompt_snapshot", "systemPrompt": [text[: size // 2], text[size // 2 :]]})
        elif kind < 0.7:
            path = f"{self.cwd}/src/{self.rng.choice(WORDS)}/{self.rng.choice(WORDS)}.ts"
            text = self.g.text(size // 2)
            self.attachment({"type": "file", "filename": path, "content": {"type": "text", "file": {"filePath": path, "content": text}}}, rendered=text)
        else:
            text = self.g.text(size // 2)
            self.attachment({"type": "skill_listing", "content": text, "skillCount": self.rng.randint(5, 60)}, rendered=text)

    def api_request_shape(self) -> None:
        size = self.g.logu(30_000, 90_000)
        text = self.g.text(size)
        self.meta({
            "type": "api-request-shape", "sessionId": self.session_id, "shapeHash": self.g.hexid(256),
            "timestamp": iso(self.clock), "version": VERSION,
            "shape": {"system": [{"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK."}, {"type": "text", "text": text}],
                      "tools": [{"name": n, "description": self.g.text(300)} for n, _ in TOOL_WEIGHTS]},
        })

    def session_start(self, prompt: str) -> None:
        self.meta({"type": "queue-operation", "operation": "enqueue", "timestamp": iso(self.clock), "sessionId": self.session_id, "content": prompt[:200]})
        self.meta({"type": "queue-operation", "operation": "dequeue", "timestamp": iso(self.clock), "sessionId": self.session_id})
        self.user_prompt(prompt, start=True)

    def user_prompt(self, text: str, start: bool = False) -> None:
        self.prompt_id = self.g.uuid()
        uuid = self.g.uuid()
        line = self._head("user")
        line.update(type="user", message={"role": "user", "content": text}, uuid=uuid, timestamp=iso(self.tick(50, 400)),
                    permissionMode="default", promptSource="user")
        self.sink.line(self._tail(line, uuid))
        self.fresh += len(text) // 4 + 20
        if start:
            self.attachment({"type": "environment", "snapshot": {"workingDirectory": self.cwd, "isWorktree": False, "isGitRepo": True, "platform": "linux", "shell": "bash"}}, rendered="# Environment\n" + self.g.text(600))
            self.attachment({"type": "model", "identity": {"modelId": self.model}, "text": f"You are powered by the model {self.model}."})
            self.attachment({"type": "deferred_tools_delta", "addedNames": ["WebFetch", "WebSearch", "TaskCreate"], "removedNames": []})
            self.attachment({"type": "agent_listing_delta", "addedTypes": list(AGENT_TYPES), "addedLines": [self.g.text(300) for _ in AGENT_TYPES]})
            self.big_attachment(8_000, 16_000)
            self.big_attachment(20_000, 110_000)
            self.api_request_shape()
        else:
            if self.rng.random() < 0.2:
                self.big_attachment()
        self.attachment({"type": "date", "date": day_of(self.clock)}, rendered=f"Today's date is {day_of(self.clock)}.")
        self.attachment({"type": "total_tokens_reminder", "text": f"<total_tokens>{self.rng.randint(1, 15_000_000)} tokens left</total_tokens>"})

    def command_prompt(self, name: str) -> None:
        self.user_prompt(f"<command-message>{name}</command-message>\n<command-name>/{name}</command-name>\n<command-args></command-args>")

    def turn_end(self, duration_ms: int) -> None:
        uuid = self.g.uuid()
        line = self._head("system")
        if self.rng.random() < 0.5:
            line.update(type="system", subtype="stop_hook_summary", hookCount=1,
                        hookInfos=[{"command": "costhook hook", "durationMs": self.rng.randint(20, 90)}], hookErrors=[],
                        preventedContinuation=False, stopReason="", hasOutput=False, level="suggestion")
        else:
            line.update(type="system", subtype="turn_duration", durationMs=duration_ms, isMeta=False)
        line.update(timestamp=iso(self.tick(5, 60)), uuid=uuid)
        self.sink.line(self._tail(line, uuid))
        self.meta({"type": "last-prompt", "lastPrompt": "\u2026", "leafUuid": uuid, "sessionId": self.session_id})

    def cost_state(self, start_ms: int) -> None:
        total = sum(u["costUSD"] for u in self.model_usage.values())
        self.meta({
            "type": "cost-state", "sessionId": self.session_id, "totalCostUSD": round(total, 8),
            "totalAPIDuration": self.rng.randint(1000, 10**7), "totalAPIDurationWithoutRetries": self.rng.randint(1000, 10**7),
            "totalToolDuration": self.rng.randint(100, 10**6), "totalLinesAdded": self.rng.randint(0, 5000),
            "totalLinesRemoved": self.rng.randint(0, 3000), "totalDuration": self.clock - start_ms, "startTime": start_ms,
            "modelUsage": self.model_usage, "hasUnknownModelCost": False,
        })

    # -- API calls ---------------------------------------------------------------------

    def _usage(self, web: int):
        rng = self.rng
        gap = (self.clock - self.last_call) if self.last_call is not None else None
        ttl = 3_600_000 if self.policy == "1h" else 300_000
        if gap is None:
            write = rng.randint(14_000, 26_000) if self.agent_id is None else rng.randint(4_000, 9_000)
            read = 0
        elif gap > ttl:  # cache expired: the whole prefix is written again
            write = self.context + self.fresh + rng.randint(50, 800)
            read = 0
        else:
            write = self.fresh + rng.randint(50, 800)
            read = self.context
        if self.policy == "5m":
            w1 = 0
        elif self.policy == "1h":
            w1 = write
        else:
            w1 = rng.choice((0, write, write // 3))
        inp = rng.randint(1, 12) if rng.random() < 0.9 else rng.randint(50, 4_000)
        out = min(32_000, max(1, int(rng.lognormvariate(5.5, 1.0))))
        self.context = read + write
        self.fresh = out
        if self.context > 170_000:  # auto-compaction
            self.context = rng.randint(20_000, 40_000)
        return inp, out, write - w1, w1, read, web

    def _blocks(self, tools, web: int, out: int):
        rng, g = self.rng, self.g
        blocks, uses = [], []
        thinking = 0
        if rng.random() < 0.4:
            thinking = min(out, rng.randint(10, 2_000))
            blocks.append({"type": "thinking", "thinking": "", "signature": g.hexid(4 * rng.randint(50, 400))})
        if web:
            tid = f"srvtoolu_01{g.hexid(88)}"
            blocks.append({"type": "server_tool_use", "id": tid, "name": "web_search", "input": {"query": " ".join(rng.choice(WORDS) for _ in range(4))}})
            blocks.append({"type": "web_search_tool_result", "tool_use_id": tid, "content": [
                {"type": "web_search_result", "title": g.text(60), "url": f"https://example.com/{rng.choice(WORDS)}/{i}",
                 "encrypted_content": g.hexid(4 * rng.randint(300, 1_500)), "page_age": None} for i in range(rng.randint(2, 5))]})
        if not tools or rng.random() < 0.6:
            blocks.append({"type": "text", "text": g.text(g.logu(20, 900))})
        for name in tools:
            tid = f"toolu_01{g.hexid(88)}"
            args = self._tool_input(name)
            if name == "Agent":
                self.spawns[tid] = args["subagent_type"]
                name = g.spawn_tool
            blocks.append({"type": "tool_use", "id": tid, "name": name, "input": args})
            uses.append((tid, name))
        while len(blocks) > 4:
            blocks.pop(0)
        return blocks, uses, thinking

    def _tool_input(self, name: str) -> dict:
        rng, g = self.rng, self.g
        path = f"{self.cwd}/src/{rng.choice(WORDS)}/{rng.choice(WORDS)}.ts"
        if name == "Bash":
            return {"command": f"npm test -- {rng.choice(WORDS)}", "description": "Run the tests"}
        if name == "Read":
            return {"file_path": path}
        if name == "Edit":
            return {"file_path": path, "old_string": g.text(g.logu(20, 600)), "new_string": g.text(g.logu(20, 900)), "replace_all": False}
        if name == "Grep":
            return {"pattern": rng.choice(WORDS) + "\\(", "path": f"{self.cwd}/src", "output_mode": "content", "-n": True}
        if name == "Agent":
            return {"description": "Find handlers", "prompt": g.text(g.logu(200, 1_500)), "subagent_type": rng.choice(AGENT_TYPES)}
        return {"owner": "acme", "repo": self.cwd.rsplit("/", 1)[-1], "title": g.text(60), "body": g.text(g.logu(200, 2_000))}

    def call(self, tools=(), web: int = 0, api_request: bool = True, max_lines: int = 4):
        """One billed API call: api-request (+ blob), then 1-4 streamed assistant lines."""
        rng, g = self.rng, self.g
        if api_request:
            if self.pending_blob is not None:
                self.meta({"type": "api-request-blob", "sessionId": self.session_id, "hash": g.hexid(256),
                           "message": {"role": "user", "content": self.pending_blob}})
                self.pending_blob = None
            self.request_ref = g.uuid()
            self.meta({"type": "api-request", "sessionId": self.session_id, "id": self.request_ref, "timestamp": iso(self.tick(5, 200)),
                       "version": VERSION, "querySource": "repl_main_thread" if self.agent_id is None else "agent:custom",
                       "shapeHash": g.hexid(256), "params": {"model": self.model, "max_tokens": 32_000,
                       "thinking": {"budget_tokens": 31_999, "type": "enabled"}}, "keep": rng.randint(0, 200),
                       "tail": [g.hexid(256)], "cacheControl": [{"path": ["system", 0], "value": {"type": "ephemeral"}}]})
        first = self.tick(800, 9_000)
        if first % DAY_MS > DAY_MS - 5_000:  # keep a call's lines on one UTC day
            first = self.clock = first + 6_000
        inp, out, w5, w1, read, web_n = self._usage(web)
        blocks, uses, thinking = self._blocks(tools, web, out)
        blocks = blocks[-max_lines:]
        n = len(blocks)
        n_id = g.next_id()
        message_id = f"msg_01{n_id:08d}{g.hexid(56)}"
        request_id = f"req_011C{n_id:08d}{g.hexid(40)}"
        stop = "tool_use" if uses else "end_turn"
        tool_line = None
        written = []
        for i, block in enumerate(blocks):
            final = i == n - 1
            partial = out if final else max(1, out * (i + 1) // (n + 1))
            usage = {
                "input_tokens": inp, "cache_creation_input_tokens": w5 + w1, "cache_read_input_tokens": read,
                "output_tokens": partial, "output_tokens_details": {"thinking_tokens": min(thinking, partial)},
                "server_tool_use": {"web_search_requests": web_n, "web_fetch_requests": 0}, "service_tier": "standard",
                "cache_creation": {"ephemeral_1h_input_tokens": w1, "ephemeral_5m_input_tokens": w5},
                "inference_geo": self.geo, "iterations": [], "speed": self.speed, "fallback_credit": None,
            }
            uuid = g.uuid()
            line = self._head("assistant")
            line.update(
                message={"id": message_id, "type": "message", "role": "assistant", "model": self.model, "content": [block],
                         "stop_reason": stop if final else None, "stop_sequence": None, "usage": usage, "stop_details": None},
                apiBlockIndex=i, requestId=request_id, requestRef=self.request_ref, requestedModel=self.model,
                promptCacheRequested="1h" if self.policy == "1h" else "5m", type="assistant", uuid=uuid,
                timestamp=iso(first if i == 0 else self.tick(1, 400)), perTurnEffort=None, madeBy="model",
            )
            if block["type"] == "tool_use":
                tool_line = uuid
            written.append(self.sink.line(self._tail(line, uuid)))
        self.sink.calls = [*self.sink.calls[-(REPLAY_CALLS - 1):], written]
        self.last_call = first
        self.g.totals.add(first, self.model, inp, out, w5, w1, read, web_n, self.agent_type, self.speed, self.geo or None)
        mu = self.model_usage.setdefault(self.model, {
            "inputTokens": 0, "outputTokens": 0, "thinkingTokens": 0, "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0,
            "cacheCreationEphemeral5mInputTokens": 0, "cacheCreationEphemeral1hInputTokens": 0, "webSearchRequests": 0, "costUSD": 0.0})
        mu["inputTokens"] += inp
        mu["outputTokens"] += out
        mu["cacheReadInputTokens"] += read
        mu["cacheCreationInputTokens"] += w5 + w1
        mu["cacheCreationEphemeral5mInputTokens"] += w5
        mu["cacheCreationEphemeral1hInputTokens"] += w1
        mu["webSearchRequests"] += web_n
        mu["costUSD"] = round(mu["costUSD"] + (inp * 3 + out * 15 + w5 * 3.75 + w1 * 6 + read * 0.3) / 1e6, 8)
        return [(tid, name, tool_line) for tid, name in uses]

    def synthetic(self) -> None:
        uuid = self.g.uuid()
        line = self._head("assistant")
        line.update(
            message={"id": self.g.uuid(), "container": None, "model": "<synthetic>", "role": "assistant", "stop_reason": "stop_sequence",
                     "stop_sequence": "", "type": "message",
                     "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                               "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0}, "service_tier": None,
                               "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                               "inference_geo": None, "iterations": None, "speed": None},
                     "content": [{"type": "text", "text": "No response requested."}], "context_management": None},
            type="assistant", uuid=uuid, timestamp=iso(self.tick(10, 500)), isApiErrorMessage=False,
        )
        self.sink.line(self._tail(line, uuid))
        self.g.totals.synthetic += 1

    def phantom_line(self) -> bytes:
        """A complete assistant line for a call that is never counted (to be truncated)."""
        line = self._head("assistant")
        line.update(message={"id": f"msg_01phantom{self.g.hexid(64)}", "type": "message", "role": "assistant", "model": self.model,
                             "content": [{"type": "text", "text": self.g.text(400)}], "stop_reason": "end_turn",
                             "usage": {"input_tokens": 999, "cache_creation_input_tokens": 999, "cache_read_input_tokens": 999, "output_tokens": 999,
                                       "service_tier": "standard", "speed": "standard"}},
                    requestId=f"req_011Cphantom{self.g.hexid(48)}", type="assistant", uuid=self.g.uuid(), timestamp=iso(self.clock))
        line.update(userType="external", entrypoint="cli", cwd=self.cwd, sessionId=self.session_id, version=VERSION, gitBranch=self.branch)
        return _dumps(line).encode()

    def truncated(self, tail: bool = False) -> None:
        """A line cut short (a crash mid-write). Mid-file it still ends with a newline; a
        partial last line of a file has none."""
        data = self.phantom_line()
        cut = self.rng.randint(data.index(b'"role":"assistant"') + 20, len(data) - 20)
        if tail:
            self.sink.f.write(data[:cut])
            self.sink.bytes += cut
            self.g.totals.partial_tails += 1
        else:
            self.sink.raw(data[:cut] + b"\n")
            self.g.totals.truncated += 1

    def nul_padded(self) -> None:
        """NUL padding before a (non-usage) line, as left by a crash on some file systems."""
        data = b"\x00" * self.rng.randint(16, 4096) + _dumps({"type": "last-prompt", "lastPrompt": "\u2026", "leafUuid": self.parent, "sessionId": self.session_id}).encode() + b"\n"
        self.sink.raw(data)
        self.g.totals.nul_lines += 1

    def tool_result(self, tool_use_id: str, name: str, source_uuid: str | None, sub_summary: str | None = None,
                    agent_id: str | None = None) -> None:
        rng, g = self.rng, self.g
        big = rng.random() < 0.01
        path = f"{self.cwd}/src/{rng.choice(WORDS)}.ts"
        if name == "Bash":
            text = g.text(g.logu(5_000, 100_000) if big else g.logu(40, 1_500))
            content, extra = text, {"stdout": text, "stderr": "", "interrupted": False, "isImage": False, "noOutputExpected": False}
        elif name == "Read":
            text = g.text(g.logu(5_000, 100_000) if big else g.logu(200, 3_500))
            content = text
            extra = {"type": "text", "file": {"filePath": path, "content": text, "numLines": text.count("\n") + 1, "startLine": 1, "totalLines": text.count("\n") + 1}}
        elif name == "Edit":
            original = g.text(g.logu(5_000, 60_000) if big else g.logu(200, 3_000))
            content = f"The file {path} has been updated successfully."
            extra = {"filePath": path, "oldString": g.text(80), "newString": g.text(120), "originalFile": original,
                     "structuredPatch": [{"oldStart": 2, "oldLines": 1, "newStart": 2, "newLines": 2, "lines": [g.text(60), g.text(60)]}],
                     "userModified": False, "replaceAll": False}
        elif name == "Grep":
            text = g.text(g.logu(5_000, 60_000) if big else g.logu(60, 2_000))
            content = text
            extra = {"mode": "content", "numFiles": rng.randint(1, 40), "filenames": [], "content": text, "numLines": text.count("\n") + 1}
        elif name in ("Agent", "Task"):
            text = sub_summary or g.text(g.logu(500, 4_000))
            content = [{"type": "text", "text": text}]
            extra = {"status": "completed", "agentId": agent_id or "a" + self.g.hexid(64), "content": content, "totalTokens": rng.randint(5_000, 90_000),
                     "totalToolUseCount": rng.randint(1, 40), "totalDurationMs": rng.randint(5_000, 300_000)}
        else:
            text = json.dumps({"number": rng.randint(1, 9_000), "title": g.text(60), "body": g.text(g.logu(200, 2_000)), "state": "open"})
            content = [{"type": "text", "text": text}]
            extra = content
        uuid = g.uuid()
        line = self._head("user")
        line.update(type="user", message={"role": "user", "content": [{"tool_use_id": tool_use_id, "type": "tool_result", "content": content, "is_error": False}]},
                    uuid=uuid, timestamp=iso(self.tick(30, 20_000)), toolUseResult=extra, sandboxed=False, sourceToolAssistantUUID=source_uuid)
        data = self.sink.line(self._tail(line, uuid))
        self.fresh += len(data) // 8
        self.pending_blob = [{"tool_use_id": tool_use_id, "type": "tool_result", "content": content, "is_error": False}]
        if name == "Bash" and rng.random() < 0.3:
            self.meta({"type": "progress", "data": {"type": "hook_progress", "hookEvent": "PostToolUse", "hookName": "PostToolUse:Bash"},
                       "toolUseID": tool_use_id, "parentToolUseID": tool_use_id, "uuid": g.uuid(), "timestamp": iso(self.clock),
                       "sessionId": self.session_id})


# ------------------------------------------------------------------ sessions --------


def pick_tools(rng) -> list:
    names = [n for n, _ in TOOL_WEIGHTS]
    weights = [w for _, w in TOOL_WEIGHTS]
    first = rng.choices(names, weights)[0]
    if rng.random() < 0.1:
        second = rng.choices(names, weights)[0]
        if second != first:
            return [first, second]
    return [first]


def run_thread(t: Thread, n_calls: int, *, agent_at: dict | None = None, spawn=None, extras: bool = True) -> None:
    """`n_calls` billed calls in turns; calls listed in `agent_at` spawn a sub-agent via `spawn`."""
    rng = t.rng
    agent_at = agent_at or {}
    turn_start = t.clock
    for i in range(n_calls):
        last = i == n_calls - 1
        web = 0
        if i in agent_at:
            tools = ["Agent"]  # (written as t.g.spawn_tool)
        elif last or rng.random() < 0.12:
            tools = []
            if t.agent_id is None and rng.random() < 0.05:
                web = rng.randint(1, 3)
        else:
            tools = pick_tools(rng)
        uses = t.call(tools, web=web)
        if extras and rng.random() < 1 / 1500:
            t.synthetic()
        if extras and rng.random() < 1 / 3000:
            t.truncated()
        for tool_use_id, name, source in uses:
            summary = agent_id = None
            if name == t.g.spawn_tool and spawn is not None:
                summary, agent_id = spawn(agent_at[i], tool_use_id)
            t.tool_result(tool_use_id, name, source, summary, agent_id)
        if not uses:
            t.turn_end(t.clock - turn_start)
            if not last:
                t.clock += rng.choice((rng.randint(5_000, 120_000), rng.randint(120_000, 3_600_000), rng.randint(3_600_000, 14_400_000)))
                turn_start = t.clock
                if rng.random() < 0.05:
                    t.command_prompt(rng.choice(("review", "test", "commit")))
                else:
                    t.user_prompt(t.g.text(t.g.logu(20, 1_500)))


def write_session(gen: Gen, projects: Path, cwd: str, n_calls: int, start_ms: int, *, force: bool = False, last: bool = False,
                  replay: list | None = None) -> tuple[list, int]:
    """One session file (and its sub-agents' files); returns the lines of its last calls and
    when it ended.
    `replay`: such lines of an earlier session, copied at the start as a resumed session's
    transcript carries them (same message.id and requestId: one call seen twice)."""
    rng = gen.rng
    sid = gen.uuid()
    folder = projects / encode_cwd(cwd)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sid}.jsonl"
    sink = Sink(path)
    model = gen.model()
    policy = rng.choices(("5m", "1h", "mixed"), (60, 30, 10))[0]
    branch = rng.choice(("main", "main", "dev", f"feature/{rng.choice(WORDS)}"))
    t = Thread(gen, sink, session_id=sid, cwd=cwd, branch=branch, model=model, clock=start_ms, policy=policy)
    gen.totals.sessions += 1

    budgets = []
    if n_calls >= 12 and (force or rng.random() < 0.35):
        for _ in range(rng.randint(1, 3)):
            budgets.append(rng.randint(4, max(4, min(80, n_calls // 4))))
        while budgets and sum(budgets) > n_calls - 6:
            budgets.pop()
    main_calls = n_calls - sum(budgets)
    positions = sorted(rng.sample(range(1, main_calls - 1), len(budgets))) if budgets else []
    agent_at = dict(zip(positions, budgets))

    def spawn(m_calls: int, tool_use_id: str) -> str:
        agent_id = "a" + gen.hexid(64)
        sub_dir = folder / sid / "subagents"
        sub_dir.mkdir(parents=True, exist_ok=True)
        sub_model = HAIKU if rng.random() < 0.6 else model
        agent_type = t.spawns.pop(tool_use_id)  # what the parent's call asked for
        if gen.meta:
            (sub_dir / f"agent-{agent_id}.meta.json").write_text(json.dumps({"agentType": agent_type, "spawnDepth": 1, "model": sub_model}))
        sub_sink = Sink(sub_dir / f"agent-{agent_id}.jsonl")
        sub = Thread(gen, sub_sink, session_id=sid, cwd=cwd, branch=branch, model=sub_model, clock=t.clock + rng.randint(200, 2_000),
                     agent_id=agent_id, policy="5m", agent_type=agent_type)
        sub.user_prompt(gen.text(gen.logu(200, 1_500)))
        run_thread(sub, m_calls, extras=False)
        sub_sink.close(gen.totals)
        os.utime(sub_dir / f"agent-{agent_id}.jsonl", ns=(sub.clock * 1_000_000,) * 2)
        gen.totals.subagent_files += 1
        t.clock = sub.clock + rng.randint(200, 2_000)
        return gen.text(gen.logu(500, 4_000)), agent_id

    t.session_start(gen.text(gen.logu(20, 1_500)))
    for data in (line for call in replay or () for line in call):
        sink.raw(data)
    if force and main_calls > 1:  # the first session has one of every rare thing
        t.call([], web=2)
        t.turn_end(1_000)
        t.synthetic()
        t.truncated()
        t.nul_padded()
        t.user_prompt(gen.text(200))
        main_calls -= 1
        agent_at = {i - 1: m for i, m in agent_at.items()}
    run_thread(t, main_calls, agent_at=agent_at, spawn=spawn)
    if rng.random() < 0.01:
        t.nul_padded()
    t.cost_state(start_ms)
    if last or rng.random() < 0.03:
        t.truncated(tail=True)
    sink.close(gen.totals)
    os.utime(path, ns=(t.clock * 1_000_000,) * 2)
    return sink.calls, t.clock


def session_sizes(rng, calls: int, median: int = 80) -> list:
    sizes, remaining = [], calls
    while remaining > 0:
        n = int(min(3_000, max(3, rng.lognormvariate(math.log(median), 1.0))))
        n = min(n, remaining)
        if remaining - n < 3:
            n = remaining
        sizes.append(n)
        remaining -= n
    return sizes


REPLAY_CALLS = 8  # calls a resumed session copies from the one it resumes


def generate_tree(out_dir, calls: int, seed: int = 1, *, meta: bool = True, cost: bool = False, days: int = SPAN_DAYS,
                  session_calls: int = 80, replays: float = 0.0) -> dict:
    """A Claude config dir with `calls` billed calls under out_dir/projects; returns the totals.
    `meta=False`: Claude Code 2.0.x's layout (see the module doc). `cost`: price every call
    with costhook's price table, into the totals' cost_nanousd. `days`: sessions start in the
    first `days` - 2 days (at least one) from 2026-09-01.

    `session_calls`: the median calls per session (smaller: more, smaller files).
    `replays`: the share of calls seen twice, as resumed sessions that begin with a copy of
    the last REPLAY_CALLS calls of an earlier one (billed once; ccusage dedups them too)."""
    out = Path(out_dir)
    projects = out / "projects"
    projects.mkdir(parents=True, exist_ok=True)
    gen = Gen(seed, meta=meta)
    if cost:
        gen.totals.price = _costhook_price()
    rng = gen.rng
    n_projects = max(3, min(len(PROJECT_NAMES), calls // 3_000))
    cwds = [f"/home/dev/{name}" for name in PROJECT_NAMES[:n_projects]]
    weights = [1 / (k + 1) for k in range(n_projects)]
    sizes = session_sizes(rng, calls, session_calls)
    done = replayed = 0
    previous, ended = None, 0
    for index, n in enumerate(sizes):
        cwd = rng.choices(cwds, weights)[0]
        start = START_MS + rng.randrange(max(1, days - 2) * DAY_MS)
        replay = previous if previous and replayed < replays * done else None
        if replay:  # resumed after the session it copies ended, so an import reads it later
            start = max(start, ended + 60_000)
            replayed += len(replay)
        previous, ended = write_session(gen, projects, cwd, n, start, force=index == 0, last=index == len(sizes) - 1, replay=replay)
        done += n
    expected = gen.totals.to_json()
    expected.update(generator="tests.benchmarks.generate", seed=seed, requested_calls=calls, replayed_calls=replayed)
    (out / "expected.json").write_text(json.dumps(expected, indent=1))
    return expected


def _costhook_price():
    from costhook.pricing.prices import price_call

    def price(model, inp, out, w5, w1, read, web, speed, geo, timestamp) -> int:
        return price_call(model, input_tokens=inp, output_tokens=out, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
                          cache_read_tokens=read, web_search_requests=web, speed=speed, inference_geo=geo, timestamp=timestamp)

    return price


# ------------------------------------------------------------------ one big file ----


class Transcript:
    """One long main-thread session, written once to a size, then grown call by call."""

    def __init__(self, path, seed: int = 1, cwd: str = "/home/dev/bench"):
        self.path = Path(path)
        self.gen = Gen(seed)
        stem = self.path.name[:-6] if self.path.name.endswith(".jsonl") else None
        self.session_id = stem or self.gen.uuid()
        self.cwd = cwd
        self.thread = None

    def write(self, mb: float) -> dict:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sink = Sink(self.path)
        t = self.thread = Thread(self.gen, sink, session_id=self.session_id, cwd=self.cwd, branch="main",
                                 model="claude-opus-4-5-20251101", clock=START_MS + DAY_MS, policy="1h")
        start = t.clock
        t.session_start("Benchmark session")
        target = int(mb * 1_000_000)
        while sink.bytes < target:
            run_thread(t, 20)
            t.user_prompt(self.gen.text(self.gen.logu(20, 1_500)))
        t.cost_state(start)
        sink.close(self.gen.totals)
        return self.expected()

    def append_call(self) -> int:
        """Append one API call as Claude Code writes it between two PostToolUse hooks: its
        text and tool_use lines (same message.id/requestId, output growing) and the tool
        result. Returns the bytes appended."""
        t = self.thread
        t.sink = Sink(self.path, "ab")
        uses = t.call(["Bash"], api_request=False, max_lines=2)
        for tool_use_id, name, source in uses:
            t.tool_result(tool_use_id, name, source)
        t.sink.close(self.gen.totals)
        return t.sink.bytes

    def expected(self) -> dict:
        data = self.gen.totals.to_json()
        data["session_id"] = self.session_id
        return data


def generate_transcript(out_file, mb: float, seed: int = 1) -> dict:
    return Transcript(out_file, seed).write(mb)


# ------------------------------------------------------------------ database --------

DB_COLUMNS = (
    "key", "agent", "message_id", "request_id", "session_id", "parent_session_id", "agent_id", "agent_type",
    "is_sidechain", "project", "git_branch", "timestamp", "model", "input_tokens", "output_tokens",
    "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "web_search_requests", "speed",
    "inference_geo", "service_tier", "cost_nanousd", "cost_source", "tools", "entrypoint", "source_path",
)
# nano-USD per token, roughly: input, output, 5m write, 1h write, read
DB_RATES = {
    "claude-opus-4-5-20251101": (5_000, 25_000, 6_250, 10_000, 500),
    "claude-sonnet-4-5-20250929": (3_000, 15_000, 3_750, 6_000, 300),
    "claude-haiku-4-5-20251001": (1_000, 5_000, 1_250, 2_000, 100),
    "claude-opus-4-6": (5_000, 25_000, 6_250, 10_000, 500),
    "claude-sonnet-5": (3_000, 15_000, 3_750, 6_000, 300),
}


def _in_background(rows, chunk_size: int = 10_000):
    """Iterate `rows` built by a second thread: sqlite3 releases the GIL while it writes,
    so building the next rows overlaps with inserting these."""
    import queue
    import threading

    chunks = queue.Queue(maxsize=8)
    failure = []

    def produce():
        try:
            chunk = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= chunk_size:
                    chunks.put(chunk)
                    chunk = []
            chunks.put(chunk)
        except BaseException as exc:  # handed to the consumer
            failure.append(exc)
        finally:
            chunks.put(None)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    while (chunk := chunks.get()) is not None:
        yield from chunk
    worker.join()
    if failure:
        raise failure[0]


def generate_db(out_db, rows: int, seed: int = 1) -> dict:
    """A costhook database with `rows` synthetic calls over 90 days; returns the totals.

    The schema comes from costhook.store.db.connect(); the rows go in with one executemany in
    one transaction (secondary indexes dropped for the load and rebuilt after it, which is
    several times faster than maintaining them row by row); derived tables (the `spend`
    rollup, if this costhook has one) are rebuilt with costhook's own function.
    """
    out_db = Path(out_db).resolve()
    if out_db.exists():
        raise SystemExit(f"{out_db} exists; refusing to overwrite it")
    os.environ["COSTHOOK_DB"] = str(out_db)
    from costhook.store import db, rollup

    conn = db.connect(out_db)
    rng = random.Random(seed)
    rand, bits = rng.random, rng.getrandbits
    models = [m for m, _ in MODELS]
    cum_weights = []
    for _, w in MODELS:
        cum_weights.append((cum_weights[-1] if cum_weights else 0) + w)
    by_day, by_model = {}, {}
    sessions = []
    cost_total = 0
    step = 90 * DAY_MS / max(rows, 1)
    tool_sets = ('["Bash"]', '["Read"]', '["Edit"]', '["Grep"]', "[]", '["Read","Grep"]', '["Agent"]', '["mcp__github__create_issue"]')
    day_names = {}

    def produce():
        nonlocal cost_total
        session = project = model = path = rates = None
        left = 0
        for i in range(rows):
            ms = START_MS + int(i * step + rand() * step)
            d, rem = divmod(ms, DAY_MS)
            day = day_names.get(d)
            if day is None:
                day = day_names[d] = day_of(ms)
            secs, milli = divmod(rem, 1000)
            hours, secs = divmod(secs, 3600)
            minutes, secs = divmod(secs, 60)
            stamp = f"{day}T{hours:02d}:{minutes:02d}:{secs:02d}.{milli:03d}Z"
            if left <= 0:
                h = f"{bits(128):032x}"
                session = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"
                project = f"/home/dev/{PROJECT_NAMES[min(int(rng.paretovariate(1.2)) - 1, len(PROJECT_NAMES) - 1)]}"
                model = rng.choices(models, cum_weights=cum_weights)[0]
                rates = DB_RATES[model]
                path = f"/home/dev/.claude/projects/{encode_cwd(project)}/{session}.jsonl"
                sessions.append((session, "claude", project, "main", stamp, "startup", "cli", 1, model, path))
                left = 20 + int(rand() * 380)
            left -= 1
            inp = 1 + int(rand() * 12) if rand() < 0.9 else 50 + int(rand() * 4_000)
            out = 1 + int(rand() * 3_000)
            write = int(rand() * 8_000)
            w1 = write if rand() < 0.3 else 0
            w5 = write - w1
            read = int(rand() * 170_000)
            cost = (inp * rates[0] + out * rates[1] + w5 * rates[2] + w1 * rates[3] + read * rates[4]) // 1000
            cost_total += cost
            for table, key in ((by_day, day), (by_model, model)):
                row = table.get(key)
                if row is None:
                    row = table[key] = [0, 0, 0, 0, 0, 0]
                row[0] += 1
                row[1] += inp
                row[2] += out
                row[3] += w5
                row[4] += w1
                row[5] += read
            mid = f"msg_01{i:08x}{bits(56):014x}"  # ascending: the primary key index is appended to
            rid = f"req_011C{bits(72):018x}"
            yield (
                f"{mid}:{rid}", "claude", mid, rid, session, None, None, None, 0, project, "main", stamp, model,
                inp, out, w5, w1, read, 0, "standard", "global", "standard", cost, "computed",
                tool_sets[i % len(tool_sets)], "cli", path,
            )

    sql = f"INSERT INTO requests ({', '.join(DB_COLUMNS)}) VALUES ({', '.join('?' * len(DB_COLUMNS))})"
    indexes = [row[0] for row in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests' AND sql IS NOT NULL")]
    conn.execute("PRAGMA cache_size = -1200000")
    conn.execute("PRAGMA journal_mode = OFF")  # bulk load; back to WAL below, as costhook keeps it
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA temp_store = MEMORY")
    phases = {}
    clock = time.monotonic()

    def phase(name):
        nonlocal clock
        now = time.monotonic()
        phases[name] = round(now - clock, 2)
        clock = now

    with db.transaction(conn):
        for name, in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'requests' AND sql IS NOT NULL").fetchall():
            conn.execute(f'DROP INDEX "{name}"')
        conn.executemany(sql, _in_background(produce()))
        phase("insert_s")
        for index_sql in indexes:
            conn.execute(index_sql)
        phase("indexes_s")
        conn.executemany(
            "INSERT OR IGNORE INTO sessions (session_id, agent, project, git_branch, started_at, source, entrypoint, interactive, model, transcript_path)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            sessions,
        )
        if hasattr(rollup, "rebuild_spend"):
            rollup.rebuild_spend(conn)
        if hasattr(rollup, "rebuild_prices"):  # (the schema is current: no migration fills it)
            rollup.rebuild_prices(conn)
        if importlib.util.find_spec("costhook.store.links"):  # each call's thread links (a checkout that keeps them)
            importlib.import_module("costhook.store.links").rebuild(conn)
        phase("derived_s")
    conn.execute("PRAGMA journal_mode = WAL")
    phase("commit_s")
    conn.close()
    totals = Totals()
    totals.by_day, totals.by_model, totals.calls = by_day, by_model, rows
    expected = totals.to_json()
    expected["totals"]["cost_nanousd"] = cost_total
    for key in ("synthetic_lines", "by_agent", "truncated_lines", "partial_tail_files", "nul_lines", "subagent_files", "files", "lines", "bytes"):
        expected.pop(key, None)
    expected["sessions"] = len(sessions)
    expected["rows"] = rows
    expected["phases"] = phases
    return expected


# ------------------------------------------------------------------ CLI -------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.generate", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tree", help="a Claude config dir (projects/...) with N billed calls")
    p.add_argument("out_dir")
    p.add_argument("--calls", type=int, default=80_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--days", type=int, default=SPAN_DAYS, help="the span sessions start in (days)")
    p.add_argument("--no-meta", action="store_true", help="Claude Code 2.0.x: no agent-*.meta.json, the tool is Task")
    p.add_argument("--cost", action="store_true", help="ground-truth cost per agent type, priced by costhook")
    p.add_argument("--session-calls", type=int, default=80, help="median calls per session (15: ~4,000 files for 84,000 calls)")
    p.add_argument("--replays", type=float, default=0.0, help="share of calls a resumed session copies (0.015: 1.5%%)")
    p = sub.add_parser("transcript", help="one big session file")
    p.add_argument("out_file")
    p.add_argument("--mb", type=float, default=50)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("db", help="a costhook database with N synthetic rows")
    p.add_argument("out_db")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.command == "tree":
        expected = generate_tree(args.out_dir, args.calls, args.seed, meta=not args.no_meta, cost=args.cost, days=args.days,
                                 session_calls=args.session_calls, replays=args.replays)
    elif args.command == "transcript":
        expected = generate_transcript(args.out_file, args.mb, args.seed)
    else:
        expected = generate_db(args.out_db, args.rows, args.seed)
    expected["generated_in_s"] = round(time.monotonic() - started, 2)
    json.dump(expected, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
