"""Find privacy markers in what costhook wrote: the privacy tests' one scanner."""

import sqlite3
from pathlib import Path


def markers_in(folder: Path, markers: dict) -> list[str]:
    """Every marker (name -> text) found under `folder`: in any file's raw bytes, and in each
    database's content as SQLite sees it (in case a page is compressed or spread)."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path.relative_to(folder)}: {name}" for name, marker in markers.items() if marker.encode() in data]
    for db in folder.rglob("*.db"):
        conn = sqlite3.connect(db)
        dump = "\n".join(conn.iterdump())
        conn.close()
        found += [f"{db.name} (dump): {name}" for name, marker in markers.items() if marker in dump]
    return found
