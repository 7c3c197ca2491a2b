"""Reading the user's config file (TOML) on the hook's hot path.

The file is validated by the pydantic models in `config_model.py`, which are slow to
import. So the validated result is cached as JSON next to the database, keyed by the
file's size and mtime: the hook pays for pydantic only on the first call after an edit.
"""

import json
import os

from costhook import paths
from costhook.errors import ConfigError



def load(path=None) -> dict:
    """The validated config as plain data; `{}` when there is no config file."""
    path = os.fspath(path) if path else paths.config_file()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    stamp = [os.path.realpath(path), st.st_size, st.st_mtime_ns]
    cache = os.path.join(paths.home_dir(), "config.cache.json")
    try:
        with open(cache, "rb") as f:
            cached = json.loads(f.read())
        if cached.get("stamp") == stamp:
            if "error" in cached:  # a broken file is not re-validated until it changes
                raise ConfigError(cached["error"])
            return cached["config"]
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise
    try:
        config = validate(path)
    except ConfigError as exc:
        _write_cache(cache, {"stamp": stamp, "error": str(exc)})
        raise
    _write_cache(cache, {"stamp": stamp, "config": config})
    return config


def validate(path) -> dict:
    """Parse and validate the file with the pydantic models (the slow path)."""
    import tomllib

    try:
        with open(path, encoding="utf-8") as f:
            raw = tomllib.loads(f.read())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    from costhook.config.model import validate_data

    return validate_data(raw, source=str(path))


def _write_cache(cache: str, data: dict) -> None:
    try:
        paths.ensure_private_dir(os.path.dirname(cache))
        tmp = f"{cache}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, cache)
    except OSError:
        pass  # the cache is an optimisation only
