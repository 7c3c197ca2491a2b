"""`costhook import --codex-dir`: every Codex rollout under the Codex homes, into costhook.

The very same incremental ingest as the hook (ingest.py), so an import and the hooks give
the same rows, and importing twice changes nothing (the cursors say nothing is new).
"""

import os
from pathlib import Path

from costhook.agents import jsonl
from costhook.agents.codex import ingest

ROLLOUT_DIRS = ("sessions", "archived_sessions")


class ImportSummary:
    def __init__(self):
        self.files = self.bytes_read = self.lines = self.calls = self.changed = self.malformed = 0


def default_codex_dirs() -> list[Path]:
    """`$CODEX_HOME`, else ~/.codex, if it holds rollouts."""
    home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex").expanduser()
    return [home] if any((home / name).is_dir() for name in ROLLOUT_DIRS) else []


def rollout_files(folders) -> list[tuple[str, int]]:
    """(path, size) of every `rollout-*.jsonl` under each folder's sessions/ and
    archived_sessions/ (or under the folder itself, if it has neither), oldest first."""
    found = {}
    for folder in folders:
        folder = Path(folder)
        roots = [folder / name for name in ROLLOUT_DIRS if (folder / name).is_dir()] or [folder]
        for root in roots:
            for parent, dirs, names in os.walk(root):
                dirs.sort()
                for name in names:
                    if name.startswith("rollout-") and name.endswith(".jsonl"):
                        path = os.path.join(parent, name)
                        try:
                            st = os.stat(path)
                        except OSError:
                            continue
                        found[path] = (st.st_mtime_ns, st.st_size)
    return [(path, size) for path, (_, size) in sorted(found.items(), key=lambda item: (item[1][0], item[0]))]


def import_codex(conn, folders, *, price, progress=None, files=None) -> ImportSummary:
    """Ingest every rollout under `folders`; `progress(nbytes)` after each file."""
    jsonl.use_fast_parser()
    summary = ImportSummary()
    for path, size in files if files is not None else rollout_files(folders):
        result = ingest.ingest_file(conn, path, price=price)
        summary.files += 1
        summary.bytes_read += result.bytes_read
        summary.lines += result.lines
        summary.calls += result.calls
        summary.changed += result.changed
        summary.malformed += result.malformed
        if progress:
            progress(size)
    return summary
