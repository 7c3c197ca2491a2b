"""When the vault dashboard is due for a SessionEnd refresh.

Standard library only: the SessionEnd hook asks this (one stat) before handing the refresh
to a detached process, which asks again under the dashboard's lock.
"""

import os
import time

from costhook import paths

MIN_INTERVAL_SECONDS = 60


def stamp_file() -> str:
    """Its modification time is the time of the last refresh."""
    return os.path.join(paths.home_dir(), "dashboard.stamp")


def due(settings: dict, now_ts: float | None = None) -> bool:
    """Configured, and the last refresh older than `min_interval_seconds`?"""
    if not settings.get("refresh_on_session_end") or not settings.get("vault"):
        return False
    try:
        age = (now_ts or time.time()) - os.stat(stamp_file()).st_mtime
    except OSError:
        return True
    return age >= float(settings.get("min_interval_seconds", MIN_INTERVAL_SECONDS))
