"""Find privacy markers in what costhook wrote: the privacy tests' one scanner."""

import sqlite3
from pathlib import Path


def encodings(marker: str) -> dict:
    """The forms a marker can take in what costhook writes: as it is, and as hex (text a
    cursor once kept of a transcript's first bytes was stored as hex, where a plain search
    never saw the prompt it held)."""
    raw = marker.encode()
    return {"": raw, " (hex)": raw.hex().encode(), " (HEX)": raw.hex().upper().encode()}


def markers_in(folder: Path, markers: dict) -> list[str]:
    """Every marker (name -> text) found under `folder`: in any file's raw bytes, and in each
    database's content as SQLite sees it (in case a page is compressed or spread), also
    hex-encoded."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path.relative_to(folder)}: {name}{form}" for name, marker in markers.items()
                      for form, encoded in encodings(marker).items() if encoded in data]
    for db in folder.rglob("*.db"):
        conn = sqlite3.connect(db)
        dump = "\n".join(conn.iterdump())
        conn.close()
        found += [f"{db.name} (dump): {name}{form}" for name, marker in markers.items()
                  for form, encoded in encodings(marker).items() if encoded.decode() in dump]
    return found
