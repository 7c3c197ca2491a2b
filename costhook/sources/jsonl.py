"""JSON Lines transcripts, as both agents write them: one event per line, appended.

Standard library only, and nothing but json: this runs inside the hook.
"""

import json


def load_line(raw: bytes):
    """json.loads that tolerates NUL padding and reports anything else as None."""
    try:
        return json.loads(raw)
    except ValueError:
        pass
    stripped = raw.strip(b"\x00 \t\r\n")
    if stripped and stripped != raw:
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return None
