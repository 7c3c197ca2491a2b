"""Cursor runs Claude Code's hooks too (its "third-party hooks", read from
~/.claude/settings.json), with its own input fields and its own transcript format
(~/.cursor/projects/<id>/agent-transcripts/…). costhook reads neither: in a Cursor session
its Claude hooks stay quiet and harmless (issue 13, item 7) — exit 0, no output, nothing
written, nothing logged (it is not an error)."""

import json
import os
import sqlite3

from conftest import run_hook

CONVERSATION = "5a0c1e62-2f1b-4b7e-9a51-0d7c2e3f4a5b"


def cursor_transcript(tmp_path):
    """A Cursor agent transcript: one JSON object per line, `role` and `message`, no `type`,
    no usage."""
    folder = tmp_path / ".cursor" / "projects" / "home-dev-acme" / "agent-transcripts" / CONVERSATION
    folder.mkdir(parents=True)
    path = folder / f"{CONVERSATION}.jsonl"
    lines = [
        {"role": "user", "message": {"content": [{"type": "text", "text": "<user_query>fix the bug</user_query>"}]}},
        {"role": "assistant", "message": {"content": [{"type": "text", "text": "Looking."},
                                                      {"type": "tool_use", "name": "Shell", "input": {"command": "ls"}}]}},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def cursor_payload(event: str, transcript, **extra) -> dict:
    return {"hook_event_name": event, "conversation_id": CONVERSATION, "generation_id": "gen-7f3e",
            "session_id": CONVERSATION, "model": "claude-4.5-sonnet", "cursor_version": "2.3.41",
            "workspace_roots": ["/home/dev/acme"], "user_email": None, "transcript_path": str(transcript),
            "cwd": "/home/dev/acme", **extra}


def stored_rows() -> dict:
    if not os.path.exists(os.environ["COSTHOOK_DB"]):
        return {}
    conn = sqlite3.connect(os.environ["COSTHOOK_DB"])
    try:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("requests", "sessions", "tool_calls", "cursors", "alerts")}
    finally:
        conn.close()


def test_claude_hooks_run_by_cursor_stay_quiet_and_write_nothing(home, tmp_path):
    transcript = cursor_transcript(tmp_path)
    # A spent blocking budget: a Claude Code session would be stopped; Cursor's calls are
    # not counted by costhook, so it is not costhook's to stop them either.
    (tmp_path / "config.toml").write_text('[[budgets]]\nscope = "global"\nperiod = "daily"\nlimit = "0.000000001"\n'
                                          'action = "block"\n')
    events = [
        cursor_payload("SessionStart", transcript, source="startup"),
        cursor_payload("UserPromptSubmit", transcript, prompt="fix the bug"),
        cursor_payload("PreToolUse", transcript, tool_name="Bash", tool_use_id="call_1", tool_input={"command": "ls"}),
        cursor_payload("PostToolUse", transcript, tool_name="Bash", tool_use_id="call_1", tool_input={"command": "ls"},
                       tool_response={"output": ""}),
        cursor_payload("Stop", transcript, status="completed", loop_count=0),
        cursor_payload("SessionEnd", transcript, reason="user_close"),
    ]
    for payload in events:
        proc = run_hook(payload)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b""), (payload["hook_event_name"], proc)
    assert not any(stored_rows().values()), stored_rows()
    assert not (home / "errors.log").exists()


def test_a_cursor_transcript_without_cursor_fields_is_still_not_read(home, tmp_path):
    """Recognised by the transcript too: Cursor's agent-transcripts/ folder, or a plain-text
    transcript (older Cursor), is no Claude Code transcript."""
    transcript = cursor_transcript(tmp_path)
    text = tmp_path / "legacy.txt"
    text.write_text("user:\n<user_query>hi</user_query>\n\nassistant:\nHello.\n")
    for path in (transcript, text):
        proc = run_hook({"hook_event_name": "PostToolUse", "session_id": CONVERSATION, "transcript_path": str(path),
                         "tool_name": "Bash", "tool_use_id": f"call_{path.suffix}"})
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert not any(stored_rows().values()), stored_rows()
    assert not (home / "errors.log").exists()
