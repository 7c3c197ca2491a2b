"""OpenClaw cron jobs and their run history → `cron_jobs` and `cron_runs` rows.

Cron jobs and their run history live in `<state>/state/openclaw.sqlite` (tables
`cron_jobs`, `task_runs`; read by their_db.ingest_state_db), formerly
`<state>/cron/jobs.json` and `<state>/cron/runs/<jobId>.jsonl` (read here). The live hook
sees the same entries in `cron_changed`. Every source builds its rows with the functions
below, so a run has one id (`<jobId>@<runAtMs>`) however it was learnt; store/writes.py
writes them. A job's name is also learnt from a cron prompt (`[cron:<id> <name>]`).

Standard library only (the hook uses it).
"""

from __future__ import annotations

import json
import os

from costhook import timeframe
from costhook.agents.jsonl import load_line
from costhook.agents.openclaw.events import AGENT, Stats, classify_key, clip, cron_run_key, iso_from_ms
from costhook.paths import read_regular
from costhook.store import writes
from costhook.store.db import transaction
from costhook.usage import as_count


def cron_run_id(entry: dict) -> str | None:
    """Stable id of one cron run across sources (run log line, task_runs row, cron_changed
    hook): `<jobId>@<runAtMs>`; else OpenClaw's own runId."""
    job = clip(entry.get("jobId"), 300)
    run_at = entry.get("runAtMs")
    if job and isinstance(run_at, (int, float)) and not isinstance(run_at, bool):
        return f"{job}@{int(run_at)}"
    own = clip(entry.get("runId"), 300)
    if own:
        return own
    ts = entry.get("ts")
    if job and isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return f"{job}@ts{int(ts)}"
    return None


def cron_run_row(entry: dict, *, host_agent=None, job_name=None, is_heartbeat=None) -> dict | None:
    """A CronRunLogEntry (run log line, task_runs detail, cron_changed `finished`) → a
    `cron_runs` row. Usage is the run total OpenClaw logged (snake_case, no cost)."""
    if not isinstance(entry, dict) or entry.get("action", "finished") != "finished":
        return None
    run_id = cron_run_id(entry)
    job = clip(entry.get("jobId"), 300)
    if not run_id or not job:
        return None
    usage = entry.get("usage") if isinstance(entry.get("usage"), dict) else None
    key = clip(entry.get("sessionKey"))
    session_id = clip(entry.get("sessionId"), 300)
    started = iso_from_ms(entry.get("runAtMs")) or iso_from_ms(entry.get("ts"))
    duration = entry.get("durationMs")
    row = {
        "run_id": run_id,
        "agent": AGENT,
        "host_agent": clip(entry.get("agentId"), 200) or classify_key(key)["host_agent"] or host_agent,
        "job_id": job,
        "job_name": clip(entry.get("jobName"), 200) or job_name,
        "session_id": session_id,
        "session_key": cron_run_key(key, session_id),
        "status": clip(entry.get("status"), 40),
        "completion_status": clip(entry.get("completionStatus"), 40),
        "started_at": started,
        "duration_ms": int(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool) and duration >= 0 else None,
        "model": clip(entry.get("model"), 300),
        "provider": clip(entry.get("provider"), 200),
        "input_tokens": as_count(usage.get("input_tokens")) if usage else None,
        "output_tokens": as_count(usage.get("output_tokens")) if usage else None,
        "cache_read_tokens": as_count(usage.get("cache_read_tokens")) if usage else None,
        "cache_write_tokens": as_count(usage.get("cache_write_tokens")) if usage else None,
        "total_tokens": as_count(usage.get("total_tokens")) if usage else None,
        "is_heartbeat": is_heartbeat,
        "cron_run_id": clip(entry.get("runId"), 300),
        "error": clip(entry.get("error"), 300),
        "session_target": clip(entry.get("sessionTarget"), 40),
    }
    return row


def cron_job_row(job: dict, host_agent=None) -> dict | None:
    """A cron job definition (state DB job_json, jobs.json entry, cron_changed `job`)."""
    if not isinstance(job, dict):
        return None
    job_id = clip(job.get("id") or job.get("jobId"), 300)
    if not job_id:
        return None
    payload = job.get("payload") if isinstance(job.get("payload"), dict) else {}
    schedule = job.get("schedule") if isinstance(job.get("schedule"), dict) else {}
    if schedule.get("kind") == "cron":
        when = f"cron {schedule.get('expr')}"
    elif schedule.get("kind") == "every":
        when = f"every {schedule.get('everyMs')} ms"
    elif schedule.get("kind"):
        when = str(schedule.get("kind"))
    else:
        when = None
    enabled = job.get("enabled")
    return {
        "job_id": job_id,
        "agent": AGENT,
        "host_agent": clip(job.get("agentId"), 200) or host_agent,
        "name": clip(job.get("name"), 200),
        "kind": clip(payload.get("kind"), 40) or clip(job.get("payloadKind"), 40),
        "session_target": clip(job.get("sessionTarget"), 40),
        "schedule": clip(when, 200),
        "enabled": None if enabled is None else int(bool(enabled)),
        "updated_at": timeframe.now_iso(),
    }


def save_job(conn, job: dict, host_agent=None, only_fill: bool = False) -> None:
    """Record a cron job definition (see cron_job_row); `only_fill` sets only what is still
    unknown (a name learnt from a prompt must not overwrite the job's own). Inside a transaction."""
    row = cron_job_row(job, host_agent)
    if row is not None:
        writes.record_cron_job(conn, row, only_fill=only_fill)


def remember_cron_names(conn, names: dict, host_agent) -> None:
    """Job names learnt from cron prompts (ParseResult.cron_names). Inside a transaction."""
    for job_id, name in names.items():
        save_job(conn, {"id": job_id, "name": name, "agentId": host_agent}, only_fill=True)


def job_is_heartbeat(job: dict | None) -> int | None:
    """1 for a heartbeat job (payload kind, or OpenClaw's `heartbeat-` name), 0 for another, None unknown."""
    if not isinstance(job, dict):
        return None
    payload = job.get("payload") if isinstance(job.get("payload"), dict) else {}
    kind = payload.get("kind") or job.get("kind")
    name = job.get("name") or ""
    return int(kind == "heartbeat" or (isinstance(name, str) and name.startswith("heartbeat-")))


def ingest_cron_files(conn, cron_dir: str) -> Stats:
    """Legacy `cron/jobs.json` and `cron/runs/<jobId>.jsonl` (also as `*.migrated`)."""
    stats = Stats()
    jobs = {}
    for name in ("jobs.json", "jobs.json.migrated"):
        try:
            data = json.loads(read_regular(os.path.join(cron_dir, name), 64 << 20))
        except (OSError, ValueError):
            continue
        items = data.get("jobs") if isinstance(data, dict) else data
        for job in items if isinstance(items, list) else []:
            if isinstance(job, dict) and isinstance(job.get("id"), str):
                jobs[job["id"]] = job
    runs_dir = os.path.join(cron_dir, "runs")
    try:
        names = sorted(os.listdir(runs_dir))
    except OSError:
        names = []
    rows = []
    for name in names:
        if not (name.endswith(".jsonl") or name.endswith(".jsonl.migrated")):
            continue
        path = os.path.join(runs_dir, name)
        try:
            lines = read_regular(path, 256 << 20).splitlines()
        except OSError:
            continue
        stats.files += 1
        for line in lines:
            entry = load_line(line)
            if not isinstance(entry, dict):
                stats.malformed += bool(line.strip())
                continue
            entry.setdefault("jobId", name.split(".jsonl")[0])
            job = jobs.get(entry.get("jobId"))
            row = cron_run_row(entry, job_name=(job or {}).get("name"), is_heartbeat=job_is_heartbeat(job))
            if row:
                rows.append(row)
    with transaction(conn):
        for job in jobs.values():
            save_job(conn, job)
        for row in rows:
            writes.record_cron_run(conn, row)
    stats.cron_runs = len(rows)
    return stats
