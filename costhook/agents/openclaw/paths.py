"""Where OpenClaw keeps its state, and what an `--openclaw-dir` holds.

A state dir is `$OPENCLAW_STATE_DIR`, else `$OPENCLAW_HOME/.openclaw`, else `~/.openclaw`
(profiles: `~/.openclaw-<name>`). Inside it: `agents/<id>/agent/openclaw-agent.sqlite`
(their_db.py), `agents/<id>/sessions/` (files.py), `state/openclaw.sqlite` and the legacy
`cron/` (cron history). Standard library only (the hook finds an agent's store here).
"""

from __future__ import annotations

import os

from costhook.agents.openclaw.files import is_transcript_file


def default_state_dirs() -> list[str]:
    """$OPENCLAW_STATE_DIR, else $OPENCLAW_HOME/.openclaw, else ~/.openclaw; plus ~/.openclaw-*
    profiles. Only those that exist."""
    found = []
    explicit = os.environ.get("OPENCLAW_STATE_DIR", "").strip()
    if explicit:
        found.append(os.path.expanduser(explicit))
    else:
        home = os.environ.get("OPENCLAW_HOME", "").strip() or os.path.expanduser("~")
        found.append(os.path.join(os.path.expanduser(home), ".openclaw"))
        try:
            for name in sorted(os.listdir(os.path.expanduser(home))):
                if name.startswith(".openclaw-"):
                    found.append(os.path.join(os.path.expanduser(home), name))
        except OSError:
            pass
    out = []
    for folder in found:
        real = os.path.realpath(folder)
        if os.path.isdir(folder) and real not in [os.path.realpath(o) for o in out]:
            out.append(folder)
    return out


def state_dir() -> str:
    """The state dir a hook process runs under (same rules as OpenClaw, profiles aside)."""
    explicit = os.environ.get("OPENCLAW_STATE_DIR", "").strip()
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("OPENCLAW_HOME", "").strip() or os.path.expanduser("~")
    return os.path.join(os.path.expanduser(home), ".openclaw")


def agent_db_path(state: str, agent_id: str) -> str:
    """The SQLite store of one agent under a state dir."""
    return os.path.join(state, "agents", agent_id, "agent", "openclaw-agent.sqlite")


# Never searched for transcripts: caches, plugins, the agents' own work.
SKIP_DIRS = ("cold", "tmp", "media", "cache", "node_modules", "extensions", "plugin-skills", "runs", "workspace", ".git")


def discover(folder: str) -> dict:
    """What an `--openclaw-dir` holds: agent stores, transcript files (with their
    sessions.json index), the state database, legacy cron dirs.

    A state dir (it has `agents/`) is searched only where OpenClaw keeps sessions:
    `agents/<id>/agent/openclaw-agent.sqlite`, `agents/<id>/sessions/` (with archives and
    doctor's import archive) and the very old top-level `sessions/` — never the workspace.
    Any other directory (an `agents/<id>` dir, a folder of exported transcripts) is walked."""
    found = {"agent_dbs": [], "files": [], "state_dbs": [], "cron_dirs": []}
    folder = os.path.abspath(folder)
    if os.path.isfile(os.path.join(folder, "state", "openclaw.sqlite")):
        found["state_dbs"].append(os.path.join(folder, "state", "openclaw.sqlite"))
    if os.path.isdir(os.path.join(folder, "cron")):
        found["cron_dirs"].append(os.path.join(folder, "cron"))
    agents = os.path.join(folder, "agents")
    if os.path.isdir(agents):
        roots = [os.path.join(folder, "sessions")]
        for agent in sorted(os.listdir(agents)):
            roots += [os.path.join(agents, agent, "agent"), os.path.join(agents, agent, "sessions")]
            roots += sorted(os.path.join(agents, agent, d) for d in _listdir(os.path.join(agents, agent)) if d.startswith("sessions-"))
    else:
        roots = [folder]
    for top in roots:
        for root, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            if os.path.relpath(root, top).count(os.sep) >= 3:
                dirs[:] = []
            if "openclaw-agent.sqlite" in files:
                found["agent_dbs"].append(os.path.join(root, "openclaw-agent.sqlite"))
            for name in sorted(files):
                if is_transcript_file(name):
                    found["files"].append(os.path.join(root, name))
    return found


def _listdir(path: str) -> list:
    try:
        return os.listdir(path)
    except OSError:
        return []
