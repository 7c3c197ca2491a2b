// costhook for OpenClaw: forwards usage metadata to `costhook hook --agent openclaw`
// and gates tool calls and runs on costhook's budget decision.
//
// Privacy: only metadata leaves this file - token counts, reported cost, model, ids,
// tool names, durations and sizes. Prompts, message text, tool arguments and tool
// output are never sent to costhook.
//
// Never in OpenClaw's way: the gates (before_tool_call, before_agent_run) wait at most
// gateTimeoutMs (3 s) and let the tool or run go on if costhook is slow, missing or
// fails. OpenClaw fails CLOSED when a gate handler throws or exceeds its own 15 s budget,
// so every handler here catches everything and resolves to undefined unless costhook
// said "block". Nothing else holds the turn: each session's records (its model calls,
// tool calls, start) are held here and handed over with the session's next gate — which
// records them before it decides, so the call that asked for a tool is counted without
// waiting for a separate recording process — or with its `agent_end` / `session_end`, or
// after HOLD_MS on their own. Everything goes to one resident costhook (`--serve`, see
// Resident) when it is ready: the gates as requests it answers first, the rest posted
// (nobody waits; it records them when no gate is waiting). It runs in a session of its
// own and drains what is in its pipe after this process exits, so a one-shot CLI or a
// Gateway that stops right after agent_end loses nothing. Until it is ready (or when it
// fails) a gate runs a costhook process of its own, and agent_end / session_end start
// costhook detached (a session of its own, not waited for, not killed).
//
// Bounded: records go to costhook in batches (at most MAX_HELD per session); what does not
// ride with a gate, agent_end or session_end goes through a lane of at most MAX_RECORDING
// costhook processes at once (MAX_GATING more for the gates, which never wait behind
// records), each started on a later turn of the event loop, one per turn, at most
// MAX_QUEUED waiting; beyond that the oldest per-message record is dropped and counted
// (the next payload says how many): `agent_end` carries the run's messages again, and
// `costhook import` reads them from OpenClaw's own store.

import { spawn } from "node:child_process";
import fs from "node:fs";

const PLUGIN_ID = "costhook";
const DEFAULT_COMMAND = ["costhook", "hook", "--agent", "openclaw"];
const DEFAULT_GATE_TIMEOUT_MS = 3000;
const DEFAULT_OBSERVE_TIMEOUT_MS = 20000;
const MAX_STDOUT = 64 * 1024;
const MAX_TRACKED = 512;
const MAX_RECORDING = 4; // costhook processes recording at once
const MAX_GATING = 2; // and deciding a gate at once (a gate never waits behind records)
const MAX_QUEUED = 64; // records waiting for a slot; more drops the oldest droppable one
const DROPPABLE = new Set(["message", "after_tool_call"]); // agent_end carries them again
const HOLD_MS = 5000; // a session's records wait this long for its next gate or agent_end
const MAX_HELD = 256; // records held per session; more go on their own at once
const MAX_DETACHED = 8; // detached costhook processes alive at once; more wait in the records lane
const ACK_TOKENS = ["HEARTBEAT_OK", "NO_REPLY"];
const ACK_MAX_EXTRA = 300;

function str(value, limit = 1000) {
  return typeof value === "string" && value ? value.slice(0, limit) : undefined;
}

function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function jsonBytes(value) {
  if (value === undefined) return undefined;
  try {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text === undefined ? undefined : Buffer.byteLength(text);
  } catch {
    return undefined;
  }
}

function remember(map, key, value) {
  if (!key) return;
  map.delete(key);
  map.set(key, value);
  while (map.size > MAX_TRACKED) map.delete(map.keys().next().value);
}

// --- message metadata (no text leaves this function) -----------------------------

function textOf(content) {
  if (typeof content === "string") return content.slice(0, 4096);
  if (!Array.isArray(content)) return "";
  return content
    .filter((b) => b && b.type === "text" && typeof b.text === "string")
    .map((b) => b.text)
    .join("\n")
    .slice(0, 4096);
}

function isAckText(text) {
  const s = (text || "").trim();
  if (!s || ACK_TOKENS.includes(s)) return true;
  for (const token of ACK_TOKENS) {
    if (s.startsWith(token) && s.slice(token.length).trim().length <= ACK_MAX_EXTRA) return true;
    if (s.endsWith(token) && s.slice(0, -token.length).trim().length <= ACK_MAX_EXTRA) return true;
  }
  return false;
}

function toolSummary(content) {
  const tools = [];
  let ackTools = true;
  for (const block of Array.isArray(content) ? content : []) {
    if (!block || !["toolCall", "tool_use", "toolUse"].includes(block.type)) continue;
    let name = block.name;
    const args = block.arguments ?? block.input;
    if (name === "tool_call" && args && typeof args.id === "string" && args.id) name = args.id;
    if (typeof name !== "string" || !name) continue;
    if (!tools.includes(name)) tools.push(name.slice(0, 200));
    if (!(name === "heartbeat_respond" && args && args.notify !== true)) ackTools = false;
  }
  return { tools, ack: ackTools && isAckText(textOf(content)) };
}

function slimUsage(usage) {
  if (!usage || typeof usage !== "object") return undefined;
  const out = {};
  for (const k of ["input", "output", "cacheRead", "cacheWrite", "totalTokens"]) {
    if (num(usage[k]) !== undefined) out[k] = usage[k];
  }
  if (usage.cost && typeof usage.cost === "object") {
    out.cost = {};
    for (const k of ["input", "output", "cacheRead", "cacheWrite", "total"]) {
      if (num(usage.cost[k]) !== undefined) out.cost[k] = usage.cost[k];
    }
  }
  return out;
}

function slimAssistant(message) {
  if (!message || message.role !== "assistant" || !message.usage) return undefined;
  const { tools, ack } = toolSummary(message.content);
  const runId = message.__openclaw && typeof message.__openclaw === "object" ? str(message.__openclaw.runId, 300) : undefined;
  return {
    role: "assistant",
    provider: str(message.provider, 200),
    model: str(message.model, 300),
    api: str(message.api, 100),
    usage: slimUsage(message.usage),
    stopReason: str(message.stopReason, 40),
    timestamp: num(message.timestamp),
    responseId: str(message.responseId, 300),
    runId,
    tools,
    ack,
  };
}

// --- talking to costhook ----------------------------------------------------------

function runCosthook(command, payload, timeoutMs) {
  // Resolves to costhook's stdout ("" on any failure); never rejects.
  return new Promise((resolve) => {
    let done = false;
    let out = "";
    let child;
    const finish = (value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(value);
    };
    const timer = setTimeout(() => {
      try {
        child?.kill("SIGKILL");
      } catch {}
      finish("");
    }, Math.max(1, timeoutMs));
    try {
      child = spawn(command[0], command.slice(1), { stdio: ["pipe", "pipe", "ignore"], windowsHide: true });
      child.on("error", () => finish(""));
      child.stdout.on("data", (chunk) => {
        if (out.length < MAX_STDOUT) out += chunk.toString("utf8");
      });
      child.stdout.on("error", () => {});
      child.on("close", () => finish(out));
      child.stdin.on("error", () => {});
      child.stdin.end(JSON.stringify(payload));
    } catch {
      finish("");
    }
  });
}

// A bounded number of costhook processes at once: jobs wait in a queue and start on a
// later turn of the event loop (spawning forks synchronously: never many in one turn).
class Lane {
  constructor(command, limit, maxQueued) {
    this.command = command;
    this.limit = limit;
    this.maxQueued = maxQueued;
    this.running = 0;
    this.queue = [];
    this.dropped = 0; // records dropped since the last payload that reported them
    this.scheduled = false;
  }

  // Resolves to costhook's stdout, or "" when it failed, timed out or was dropped; never
  // later than `deadline` (Date.now() ms), which counts the wait in the queue too.
  run(payload, deadline, droppable = false) {
    return new Promise((resolve) => {
      if (this.queue.length >= this.maxQueued) {
        const index = this.queue.findIndex((job) => job.droppable);
        if (index >= 0) {
          this.drop(this.queue.splice(index, 1)[0]);
        } else if (droppable || this.queue.length >= 4 * this.maxQueued) {
          this.dropped += 1;
          resolve("");
          return;
        }
      }
      const job = { payload, droppable, resolve };
      job.timer = setTimeout(() => {
        const index = this.queue.indexOf(job);
        if (index >= 0) this.drop(this.queue.splice(index, 1)[0]); // its time ran out in the queue
      }, Math.max(1, deadline - Date.now()));
      job.timer.unref?.();
      job.deadline = deadline;
      this.queue.push(job);
      this.schedule();
    });
  }

  drop(job) {
    clearTimeout(job.timer);
    this.dropped += 1;
    job.resolve("");
  }

  schedule() {
    if (this.scheduled || !this.queue.length || this.running >= this.limit) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.next();
    });
  }

  next() {
    while (this.queue.length && this.running < this.limit) {
      const job = this.queue.shift();
      clearTimeout(job.timer);
      const left = job.deadline - Date.now();
      if (left < 50) {
        this.dropped += 1;
        job.resolve(""); // its time ran out in the queue
        continue;
      }
      if (this.dropped) {
        job.payload.dropped = this.dropped;
        this.dropped = 0;
      }
      this.running += 1;
      runCosthook(this.command, job.payload, left).then((out) => {
        this.running -= 1;
        job.resolve(out);
        this.schedule();
      });
      break; // one spawn per turn of the event loop
    }
    this.schedule();
  }
}

// Start costhook in a session of its own and do not wait for it: it outlives this process
// (a one-shot CLI, a Gateway shutting down). The payload is written before this returns
// (into the pipe's buffer), nothing keeps the event loop alive, and it is never killed:
// costhook bounds its own work. `onExit` runs when it ends, if this process is still there.
function runDetached(command, payload, onExit) {
  try {
    const child = spawn(command[0], command.slice(1), { stdio: ["pipe", "ignore", "ignore"], detached: true, windowsHide: true });
    child.on("error", () => {});
    child.on("exit", () => onExit());
    child.stdin.on("error", () => {});
    child.stdin.end(JSON.stringify(payload));
    child.unref();
    child.stdin.unref?.();
    return true;
  } catch {
    return false;
  }
}

// One long-lived `costhook hook … --serve` for every event: no interpreter start and no
// imports per event, no fork of this (large) process per turn. Never needed: when it is
// absent, slow, broken or gone, a gate runs one costhook process as before (and agent_end
// a detached one). It is started detached (a session of its own: a signal to this
// process's group does not stop it mid-record) and ends with its stdin: once this process
// exits, or IDLE_MS after the last event, or when it was slow, it records what it has
// read and exits. It says `{"serve": 1}` when ready; until then nothing is sent to it.
const RESIDENT_IDLE_MS = 300000;
const RESIDENT_HELLO_MS = 10000;
const RESIDENT_RETRY_MS = 60000; // after a failure, per-process gates for this long
const RESIDENT_DRAIN_MS = 600000; // a resident let go that is still there this long after is stuck: killed

class Resident {
  constructor(command) {
    this.command = command;
    this.child = undefined;
    this.ready = false;
    this.waiting = new Map(); // id -> resolve
    this.nextId = 1;
    this.buffer = "";
    this.brokenUntil = 0;
    this.idle = undefined;
  }

  start() {
    if (this.child || Date.now() < this.brokenUntil) return;
    try {
      const child = spawn(this.command[0], [...this.command.slice(1), "--serve"], {
        stdio: ["pipe", "pipe", "ignore"],
        detached: true,
        windowsHide: true,
      });
      this.child = child;
      child.on("error", () => this.fail(child));
      child.on("exit", () => this.fail(child, false));
      child.stdin.on("error", () => this.fail(child));
      child.stdout.on("error", () => this.fail(child));
      child.stdout.on("data", (chunk) => this.read(child, chunk));
      child.unref();
      child.stdout.unref?.();
      child.stdin.unref?.();
      this.ready = false;
      this.buffer = "";
      this.touch();
      const hello = setTimeout(() => {
        if (this.child === child && !this.ready) this.fail(child);
      }, RESIDENT_HELLO_MS);
      hello.unref?.();
    } catch {
      this.fail(this.child);
    }
  }

  touch() {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stop(), RESIDENT_IDLE_MS);
    this.idle.unref?.();
  }

  // Let it go: it records what it has read, then exits (its stdin is closed).
  stop() {
    const child = this.child;
    this.child = undefined;
    this.ready = false;
    clearTimeout(this.idle);
    try {
      child?.stdin.end();
    } catch {}
    if (child && child.exitCode === null && child.signalCode === null) {
      const stuck = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {}
      }, RESIDENT_DRAIN_MS);
      stuck.unref?.();
      child.on("exit", () => clearTimeout(stuck));
    }
    for (const resolve of this.waiting.values()) resolve(undefined);
    this.waiting.clear();
  }

  // Broken or slow: never again behind it (for RESIDENT_RETRY_MS). One that never said it
  // was ready holds nothing of ours and is killed; a ready one may hold posted records.
  fail(child, broken = true) {
    if (child && child !== this.child) return;
    if (broken || !this.ready) this.brokenUntil = Date.now() + RESIDENT_RETRY_MS;
    if (!this.ready) {
      try {
        child?.kill("SIGKILL");
      } catch {}
    }
    this.stop();
  }

  read(child, chunk) {
    if (child !== this.child) return;
    this.buffer += chunk.toString("utf8");
    if (this.buffer.length > MAX_STDOUT) return this.fail(child);
    let nl;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      let reply;
      try {
        reply = JSON.parse(line);
      } catch {
        return this.fail(child);
      }
      if (!this.ready) {
        if (!reply || reply.serve !== 1) return this.fail(child);
        this.ready = true;
        continue;
      }
      const resolve = reply && this.waiting.get(reply.id);
      if (!resolve) continue;
      this.waiting.delete(reply.id);
      resolve(reply.answer && typeof reply.answer === "object" ? JSON.stringify(reply.answer) : "");
    }
  }

  // Hand it an event and wait for nothing (it is recorded when no gate waits); false
  // when it is not ready: then the caller sends it another way. The line is in the pipe
  // when this returns (a write to an idle pipe is immediate), so it survives our exit.
  post(payload) {
    const child = this.child;
    if (!child || !this.ready) return false;
    this.touch();
    try {
      child.stdin.write(JSON.stringify({ payload }) + "\n");
      return true;
    } catch {
      this.fail(child);
      return false;
    }
  }

  // costhook's answer as text ("" for none), or undefined when the resident could not
  // answer in time: then the caller asks a costhook process instead.
  ask(payload, timeoutMs) {
    this.start();
    const child = this.child;
    if (!child || !this.ready) return Promise.resolve(undefined);
    this.touch();
    return new Promise((resolve) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        if (this.waiting.delete(id)) {
          resolve(undefined);
          this.fail(child); // stuck: never again behind it
        }
      }, Math.max(1, timeoutMs));
      this.waiting.set(id, (value) => {
        clearTimeout(timer);
        resolve(value);
      });
      try {
        child.stdin.write(JSON.stringify({ id, payload }) + "\n");
      } catch {
        this.fail(child);
      }
    });
  }
}

// costhook's clearance (costhook/agents/clearance.py; the same file and rules as the
// Claude Code and Codex shell gate, costhook/agents/gate.sh): after recording, costhook
// writes down how many gates may let the agent go on without asking — while no budget
// threshold can be crossed within that many calls — and removes it with any write that
// moves spend. A gate that takes a ticket here answers at once: no round trip to the
// resident, whose recording of the gate's records and decision then runs posted, behind
// the turn. Anything unusual (no clearance, another database, config or TZ than the one it
// was computed for, a path with `~`, a file or folder not the user's own regular one, an
// odd line) means: ask costhook, which decides in full.
class Clearance {
  constructor(env) {
    const tilde = [env.COSTHOOK_HOME, env.XDG_DATA_HOME, env.COSTHOOK_DB, env.COSTHOOK_CONFIG, env.XDG_CONFIG_HOME]
      .some((v) => typeof v === "string" && v.startsWith("~"));
    // As gate.sh spells them (a spelling Python would not write only fails to match)
    const home = env.COSTHOOK_HOME || `${env.XDG_DATA_HOME || `${env.HOME}/.local/share`}/costhook`;
    const configDir = env.XDG_CONFIG_HOME || `${env.HOME}/.config`;
    this.usable = !tilde && !!env.HOME && typeof process.geteuid === "function";
    this.db = env.COSTHOOK_DB || `${home}/costhook.db`;
    this.config = env.COSTHOOK_CONFIG || `${configDir}/costhook/config.toml`;
    this.tz = env.TZ || "";
    this.dir = `${home}/gate`;
  }

  // Whether this gate may go on without asking: one ticket taken (a byte appended to
  // used.<generation>, an atomic append shared with every other gate), within the count.
  take() {
    if (!this.usable) return false;
    const c = fs.constants;
    let fd, cfd;
    try {
      const uid = process.geteuid();
      const dir = fs.lstatSync(this.dir);
      if (!dir.isDirectory() || dir.uid !== uid) return false;
      // Opened, then judged by what was opened: never a symlink, and a FIFO put there
      // opens at once (O_NONBLOCK) and is refused: nothing here may block the Gateway.
      cfd = fs.openSync(`${this.dir}/clearance`, c.O_RDONLY | c.O_NOFOLLOW | c.O_NONBLOCK);
      const st = fs.fstatSync(cfd, { bigint: true });
      if (!st.isFile() || Number(st.uid) !== uid || st.size > 65536n) return false;
      const text = Buffer.alloc(Number(st.size));
      fs.readSync(cfd, text, 0, text.length, 0);
      const [head, forDb, forConfig, forTz] = text.toString("utf8").split("\n");
      const [tickets, generation, extra] = (head || "").split(" ");
      if (extra !== undefined || !/^[0-9]+$/.test(tickets || "") || !/^[0-9a-f]+$/.test(generation || "")) return false;
      if (forDb !== this.db || forConfig !== this.config || forTz !== this.tz) return false;
      let config;
      try {
        config = fs.statSync(this.config, { bigint: true });
      } catch {}
      // edited since, or in the same tick of a coarse file clock: costhook decides (as gate.sh)
      if (config && config.mtimeNs >= st.mtimeNs) return false;
      fd = fs.openSync(`${this.dir}/used.${generation}`, c.O_WRONLY | c.O_APPEND | c.O_CREAT | c.O_NOFOLLOW | c.O_NONBLOCK, 0o600);
      const used = fs.fstatSync(fd);
      if (!used.isFile() || used.uid !== uid) return false;
      fs.writeSync(fd, ".");
      return fs.fstatSync(fd).size <= Number(tickets);
    } catch {
      return false;
    } finally {
      for (const open of [fd, cfd]) {
        try {
          if (open !== undefined) fs.closeSync(open);
        } catch {}
      }
    }
  }
}

// One resident per command for the whole process: the Gateway registers the plugin more
// than once (the instance that sees a run's gates is not the one that sees session_start
// or session_end), and each instance with a resident of its own would start one more
// Python, or none at all where no run begins (then every such event took a process).
// Shared through globalThis, not module state: an instance may come from another load of
// this file. The key names the protocol, so a reloaded newer plugin never talks to an old one.
const RESIDENTS = Symbol.for("costhook.openclaw.residents");

function sharedResident(command) {
  const all = (globalThis[RESIDENTS] ||= new Map());
  const key = "serve/2 " + JSON.stringify(command);
  if (!all.has(key)) all.set(key, new Resident(command));
  return all.get(key);
}

function lastJson(text) {
  const lines = (text || "").trim().split("\n").filter((l) => l.trim());
  if (!lines.length) return undefined;
  try {
    const value = JSON.parse(lines[lines.length - 1]);
    return value && typeof value === "object" ? value : undefined;
  } catch {
    return undefined;
  }
}

// --- the plugin -------------------------------------------------------------------

function register(api) {
  const cfg = (api && api.pluginConfig) || {};
  const command =
    Array.isArray(cfg.command) && cfg.command.length && cfg.command.every((p) => typeof p === "string" && p)
      ? cfg.command
      : DEFAULT_COMMAND;
  const gateTimeoutMs = Number.isInteger(cfg.gateTimeoutMs) ? Math.min(Math.max(cfg.gateTimeoutMs, 100), 10000) : DEFAULT_GATE_TIMEOUT_MS;
  const observeTimeoutMs = Number.isInteger(cfg.observeTimeoutMs)
    ? Math.min(Math.max(cfg.observeTimeoutMs, 1000), 120000)
    : DEFAULT_OBSERVE_TIMEOUT_MS;

  const runs = new Map(); // runId -> {jobId, trigger}
  const sessions = new Map(); // sessionKey -> what the agent hooks told us about the session
  const parents = new Map(); // child sessionKey -> {parentSessionKey, parentSessionId, label}
  const held = new Map(); // sessionKey -> {records: [payload], timer}: not yet handed to costhook
  let detachedAlive = 0;
  const records = new Lane(command, MAX_RECORDING, MAX_QUEUED);
  const gates = new Lane(command, MAX_GATING, MAX_QUEUED);
  const resident = sharedResident(command);
  const clearance = new Clearance(process.env);

  let stateDir = str(process.env.OPENCLAW_STATE_DIR, 4096);
  if (!stateDir) {
    import("openclaw/plugin-sdk/state-paths")
      .then((m) => {
        try {
          stateDir = str(m.resolveStateDir(), 4096) || stateDir;
        } catch {}
      })
      .catch(() => {});
  }

  function context(ctx) {
    ctx = ctx || {};
    const key = str(ctx.sessionKey) || str(ctx.childSessionKey);
    const known = (key && sessions.get(key)) || {};
    const run = (ctx.runId && runs.get(ctx.runId)) || {};
    const parent = (key && parents.get(key)) || {};
    return {
      agentId: str(ctx.agentId, 200) || known.agentId,
      sessionKey: key,
      sessionId: str(ctx.sessionId, 300) || known.sessionId,
      runId: str(ctx.runId, 300) || known.runId,
      jobId: str(ctx.jobId, 300) || run.jobId || known.jobId,
      trigger: str(ctx.trigger, 40) || run.trigger || known.trigger,
      workspaceDir: str(ctx.workspaceDir, 4096) || known.workspaceDir,
      toolName: str(ctx.toolName, 200),
      toolCallId: str(ctx.toolCallId, 300),
      parentSessionKey: parent.parentSessionKey,
      parentSessionId: parent.parentSessionId,
      label: parent.label,
      stateDir,
    };
  }

  function note(ctx) {
    // Remember what agent hooks know (jobId only reaches the early ones) for later hooks.
    // A run is about to start: the resident gets ready for its gates.
    resident.start();
    if (!ctx) return;
    const key = str(ctx.sessionKey);
    if (ctx.runId && (ctx.jobId || ctx.trigger)) {
      const run = runs.get(ctx.runId) || {};
      remember(runs, ctx.runId, { jobId: str(ctx.jobId, 300) || run.jobId, trigger: str(ctx.trigger, 40) || run.trigger });
    }
    if (key) {
      const known = sessions.get(key) || {};
      remember(sessions, key, {
        agentId: str(ctx.agentId, 200) || known.agentId,
        sessionId: str(ctx.sessionId, 300) || known.sessionId,
        runId: str(ctx.runId, 300) || known.runId,
        jobId: str(ctx.jobId, 300) || (ctx.runId && runs.get(ctx.runId)?.jobId) || known.jobId,
        trigger: str(ctx.trigger, 40) || known.trigger,
        workspaceDir: str(ctx.workspaceDir, 4096) || known.workspaceDir,
      });
    }
  }

  function payloadOf(hook, event, ctx) {
    return { hook, hook_event_name: hook, plugin: PLUGIN_ID, ctx: context(ctx), event: event || {} };
  }

  function send(lane, hook, event, ctx, timeoutMs = observeTimeoutMs) {
    return lane.run(payloadOf(hook, event, ctx), Date.now() + timeoutMs, DROPPABLE.has(hook));
  }

  function observe(hook, event, ctx, timeoutMs) {
    // Fire-and-forget (rare events: cron changes): to the resident, else through the
    // bounded records lane. Never rejects.
    if (resident.post(payloadOf(hook, event, ctx))) return Promise.resolve(undefined);
    return send(records, hook, event, ctx, timeoutMs).then(() => undefined, () => undefined);
  }

  function hold(hook, event, ctx) {
    // Keep the record (its context as of now) for the session's next gate or agent_end.
    const key = str(ctx?.sessionKey);
    if (!key) return observe(hook, event, ctx);
    let entry = held.get(key);
    if (!entry) {
      entry = { records: [] };
      remember(held, key, entry);
      entry.timer = setTimeout(() => release(key, entry), HOLD_MS);
      entry.timer.unref?.();
    }
    entry.records.push(payloadOf(hook, event, ctx));
    if (entry.records.length >= MAX_HELD) release(key, entry);
    return undefined;
  }

  function take(key) {
    const entry = key && held.get(key);
    if (!entry) return [];
    held.delete(key);
    clearTimeout(entry.timer);
    return entry.records;
  }

  function release(key, entry) {
    // Records that waited long enough (or too many): on their own, through the lane.
    if (held.get(key) === entry) held.delete(key);
    clearTimeout(entry.timer);
    const batch = entry.records.splice(0);
    if (batch.length) {
      const payload = { hook: "records", hook_event_name: "records", plugin: PLUGIN_ID, ctx: batch[0].ctx, event: {}, records: batch };
      if (!resident.post(payload)) records.run(payload, Date.now() + observeTimeoutMs).then(() => undefined, () => undefined);
    }
  }

  function detached(hook, event, ctx) {
    // The session's held records and this event, to a costhook that nobody waits for:
    // the resident (posted), else one started detached.
    const payload = payloadOf(hook, event, ctx);
    const batch = take(payload.ctx.sessionKey);
    if (batch.length) payload.records = batch;
    if (records.dropped) {
      payload.dropped = records.dropped;
      records.dropped = 0;
    }
    if (resident.post(payload)) return undefined;
    if (detachedAlive < MAX_DETACHED && runDetached(command, payload, () => (detachedAlive -= 1))) {
      detachedAlive += 1;
      return undefined;
    }
    records.run(payload, Date.now() + observeTimeoutMs).then(() => undefined, () => undefined);
    return undefined;
  }

  async function gate(hook, event, ctx) {
    // The session's held records ride with the gate: costhook records them, then decides.
    // The resident answers first; if it cannot, a costhook process of its own.
    const started = Date.now();
    const payload = payloadOf(hook, event, ctx);
    const batch = take(payload.ctx.sessionKey);
    if (batch.length) payload.records = batch;
    // Cleared: go on now; the resident records and decides behind the turn (never when it
    // is not ready: then nothing would take the records).
    if (resident.ready && clearance.take() && resident.post(payload)) return undefined;
    const answer = await resident.ask(payload, Math.floor(gateTimeoutMs / 2));
    if (answer !== undefined) return lastJson(answer);
    const left = gateTimeoutMs - (Date.now() - started);
    if (left < 50) return undefined;
    return lastJson(await gates.run(payload, Date.now() + left));
  }

  function on(hook, handler, opts) {
    try {
      api.on(
        hook,
        (event, ctx) => {
          try {
            const value = handler(event || {}, ctx || {});
            if (value && typeof value.then === "function") return value.then((v) => v, () => undefined);
            return value;
          } catch {
            return undefined;
          }
        },
        opts,
      );
    } catch {}
  }

  // Early agent hooks: only remember the run's context (jobId is set only here).
  for (const hook of ["before_agent_reply", "before_model_resolve"]) {
    on(hook, (event, ctx) => {
      note(ctx);
      return undefined;
    });
  }

  on(
    "before_agent_run",
    async (event, ctx) => {
      note(ctx);
      const decision = await gate("before_agent_run", {}, ctx);
      if (decision && decision.outcome === "block") {
        return {
          outcome: "block",
          reason: str(decision.reason, 200) || "costhook-budget",
          message: str(decision.message, 2000) || "costhook: budget exhausted",
          category: str(decision.category, 100) || "cost_limit",
        };
      }
      return undefined;
    },
    { timeoutMs: gateTimeoutMs + 2000 },
  );

  on(
    "before_tool_call",
    async (event, ctx) => {
      const decision = await gate("before_tool_call", { toolName: str(event.toolName, 200), toolCallId: str(event.toolCallId, 300) }, ctx);
      if (decision && decision.block === true) {
        return { block: true, blockReason: str(decision.blockReason, 2000) || "costhook: budget exhausted" };
      }
      return undefined;
    },
    { timeoutMs: gateTimeoutMs + 2000 },
  );

  // Synchronous hook: each assistant message with usage is one billed model call.
  on("before_message_write", (event, ctx) => {
    const message = slimAssistant(event.message);
    if (message) hold("message", { message }, { ...ctx, agentId: ctx.agentId || event.agentId, sessionKey: ctx.sessionKey || event.sessionKey });
    return undefined;
  });

  on("after_tool_call", (event, ctx) => {
    hold("after_tool_call", {
      toolName: str(event.toolName, 200),
      toolCallId: str(event.toolCallId, 300),
      durationMs: num(event.durationMs),
      error: event.error ? true : undefined,
      paramsBytes: jsonBytes(event.params),
      resultBytes: jsonBytes(event.result),
    }, ctx);
    return undefined;
  });

  on("agent_end", (event, ctx) => {
    note(ctx);
    const runId = str(ctx.runId, 300) || str(event.runId, 300);
    // `messages` can hold the whole session; keep this run's (in memory they carry no runId yet).
    const messages = (Array.isArray(event.messages) ? event.messages : [])
      .filter((m) => m && m.role === "assistant" && m.usage)
      .filter((m) => !m.__openclaw?.runId || m.__openclaw.runId === runId)
      .map(slimAssistant)
      .filter(Boolean);
    return detached("agent_end", { success: event.success === true, durationMs: num(event.durationMs), messages }, { ...ctx, runId });
  });

  on("session_start", (event, ctx) => {
    // OpenClaw fires it after the run's first gate, often after agent_end: held, it would
    // wait 5 s for a process of its own. The warm resident takes it at once instead.
    const sessionEvent = { sessionId: str(event.sessionId, 300), sessionKey: str(event.sessionKey), resumedFrom: str(event.resumedFrom, 300) };
    const sessionCtx = { ...ctx, sessionKey: ctx.sessionKey || event.sessionKey, sessionId: ctx.sessionId || event.sessionId };
    if (!resident.post(payloadOf("session_start", sessionEvent, sessionCtx))) hold("session_start", sessionEvent, sessionCtx);
    return undefined;
  });

  on("session_end", (event, ctx) => {
    return detached(
      "session_end",
      {
        sessionId: str(event.sessionId, 300),
        sessionKey: str(event.sessionKey),
        reason: str(event.reason, 40),
        sessionFile: str(event.sessionFile, 4096),
        transcriptArchived: event.transcriptArchived === true,
        durationMs: num(event.durationMs),
      },
      { ...ctx, sessionKey: ctx.sessionKey || event.sessionKey, sessionId: ctx.sessionId || event.sessionId },
    );
  });

  on("gateway_stop", () => {
    // Held records of sessions that will see no gate, agent_end or session_end any more.
    for (const [key, entry] of [...held]) {
      held.delete(key);
      clearTimeout(entry.timer);
      if (entry.records.length) {
        const payload = { hook: "records", hook_event_name: "records", plugin: PLUGIN_ID, ctx: entry.records[0].ctx, event: {}, records: entry.records };
        if (resident.post(payload)) continue;
        if (detachedAlive < 4 * MAX_DETACHED && runDetached(command, payload, () => (detachedAlive -= 1))) detachedAlive += 1;
      }
    }
    return undefined;
  });

  on("subagent_spawned", (event, ctx) => {
    const child = str(event.childSessionKey) || str(ctx.childSessionKey);
    const parentKey = str(ctx.requesterSessionKey);
    if (child) {
      remember(parents, child, {
        parentSessionKey: parentKey,
        parentSessionId: parentKey ? sessions.get(parentKey)?.sessionId : undefined,
        label: str(event.label, 200),
      });
    }
    return undefined;
  });

  on("cron_changed", (event, ctx) => {
    const action = str(event.action, 40);
    if (!["added", "updated", "removed", "finished"].includes(action)) return undefined;
    const job = event.job && typeof event.job === "object" ? event.job : undefined;
    const slimJob = job && {
      id: str(job.id, 300),
      name: str(job.name, 200),
      agentId: str(job.agentId, 200),
      enabled: typeof job.enabled === "boolean" ? job.enabled : undefined,
      sessionTarget: str(job.sessionTarget, 40),
      schedule: job.schedule && typeof job.schedule === "object"
        ? { kind: str(job.schedule.kind, 40), expr: str(job.schedule.expr, 200), everyMs: num(job.schedule.everyMs) }
        : undefined,
      payload: job.payload && typeof job.payload === "object" ? { kind: str(job.payload.kind, 40) } : undefined,
    };
    const usage = event.usage && typeof event.usage === "object" ? event.usage : undefined;
    observe("cron_changed", {
      action,
      jobId: str(event.jobId, 300),
      agentId: str(event.agentId, 200),
      sessionTarget: str(event.sessionTarget, 40),
      runAtMs: num(event.runAtMs),
      durationMs: num(event.durationMs),
      status: str(event.status, 40),
      completionStatus: str(event.completionStatus, 40),
      error: str(event.error, 300),
      sessionId: str(event.sessionId, 300),
      sessionKey: str(event.sessionKey),
      runId: str(event.runId, 300),
      model: str(event.model, 300),
      provider: str(event.provider, 200),
      usage: usage && {
        input_tokens: num(usage.input_tokens),
        output_tokens: num(usage.output_tokens),
        cache_read_tokens: num(usage.cache_read_tokens),
        cache_write_tokens: num(usage.cache_write_tokens),
        total_tokens: num(usage.total_tokens),
      },
      job: slimJob,
    }, { ...ctx, agentId: str(event.agentId, 200) || ctx.agentId });
    return undefined;
  });
}

export default {
  id: PLUGIN_ID,
  name: "costhook",
  description: "Exact per-call cost capture and inline budgets (tools and runs) for OpenClaw.",
  register(api) {
    try {
      register(api);
    } catch {}
  },
};
