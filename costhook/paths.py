"""Where costhook keeps its files, and how it creates them privately.

Everything here is standard library only: the hook imports it on every call.
"""

import os
from pathlib import Path


def home() -> Path:
    """`$COSTHOOK_HOME`, else `$XDG_DATA_HOME/costhook`, else `~/.local/share/costhook`."""
    explicit = os.environ.get("COSTHOOK_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "costhook"


def db_path(override: str | os.PathLike | None = None) -> Path:
    """`--db`, else `$COSTHOOK_DB`, else `<home>/costhook.db`."""
    if override:
        return Path(override).expanduser()
    explicit = os.environ.get("COSTHOOK_DB")
    if explicit:
        return Path(explicit).expanduser()
    return home() / "costhook.db"


def config_path() -> Path:
    """`$COSTHOOK_CONFIG`, else `$XDG_CONFIG_HOME/costhook/config.toml` (default `~/.config`)."""
    explicit = os.environ.get("COSTHOOK_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "costhook" / "config.toml"


def errors_log() -> Path:
    return home() / "errors.log"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700; tighten it if we just made it."""
    if not path.is_dir():
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def touch_private(path: Path) -> Path:
    """Create `path` as 0600 if it does not exist (never following a symlink)."""
    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    return path
