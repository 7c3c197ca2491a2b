"""Reading the user's config file (TOML) on the hook's hot path.

The file is validated by the pydantic models in `config_model.py`, which are slow to
import. So the validated result is cached as JSON next to the database, keyed by the
file's size and mtime: the hook pays for pydantic only on the first call after an edit.
"""

import os
import stat

from costhook import jsontext
from costhook import paths

MAX_CONFIG_BYTES = 4 << 20  # a config (or its cache) larger than this is not one


def load(path=None) -> dict:
    """The validated config as plain data; `{}` when there is no config file (or an empty
    one). A file `$COSTHOOK_CONFIG` names must exist: ConfigError when it does not."""
    named = path is None and paths.config_named()
    path = os.fspath(path) if path else paths.config_file()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if named:
            raise missing(path) from None
        return {}
    except OSError as exc:
        raise config_error(f"{path}: cannot read config ({exc.strerror})") from None
    problem = paths.insecurity(os.path.realpath(path), kind="config")
    if problem:
        raise config_error(problem)
    if st.st_size == 0 and stat.S_ISREG(st.st_mode):
        return {}  # nothing to validate (and no pydantic to import)
    # The file's identity, ctime included (nobody can set it), so a cache written for
    # another file, or for this one before it changed, never stands in for it.
    stamp = [os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    cache = cache_file()
    if paths.insecurity(cache, kind="config cache"):
        return validate(path)  # a cache others could write is never read (nor written)
    cached = cached_entry(cache, stamp)
    if cached is not None:
        if "error" in cached:  # a broken file is not re-validated until it changes
            error = config_error(str(cached["error"]))
            error.known = True  # reported when it was found; a hook need not log it again
            raise error
        return cached["config"]
    from costhook.errors import ConfigError

    try:
        config = validate(path)
    except ConfigError as exc:
        _write_cache(cache, {"stamp": stamp, "error": str(exc), "last_valid": last_valid()})
        raise
    _write_cache(cache, {"stamp": stamp, "config": config})
    return config


def missing(path: str) -> Exception:
    """ConfigError for the file `$COSTHOOK_CONFIG` names, which does not exist: budgets the
    user believes in would silently be off. Remembered in the cache (when costhook's folder
    exists) like a broken file, so a hook logs it once, not on every call."""
    error = config_error(f"COSTHOOK_CONFIG names {path}, which does not exist; create it, or unset "
                         "COSTHOOK_CONFIG to use the default config file")
    stamp = ["missing", os.path.abspath(path)]
    cache = cache_file()
    if paths.insecurity(cache, kind="config cache"):
        return error
    if cached_entry(cache, stamp) is not None:
        error.known = True
    else:
        _write_cache(cache, {"stamp": stamp, "error": str(error), "last_valid": last_valid()})
    return error


def last_valid() -> dict | None:
    """The config as it was the last time the file validated (from the cache), or None.

    A typo in the file must not switch every budget off: the hook keeps deciding with the
    budgets it last knew, while the CLI reports the error."""
    cache = cache_file()
    cached = read_cache(cache) if not paths.insecurity(cache, kind="config cache") else None
    found = cached and cached.get("config", cached.get("last_valid"))
    return found if isinstance(found, dict) else None


def cache_file() -> str:
    """The validated config, cached as JSON next to the database."""
    return os.path.join(paths.home_dir(), "config.cache.json")


def read_cache(cache: str) -> dict | None:
    """The cache's content (a regular file, bounded), or None."""
    try:
        cached = jsontext.loads(paths.read_regular(cache, MAX_CONFIG_BYTES))
    except (OSError, ValueError):
        return None
    return cached if isinstance(cached, dict) else None


def cached_entry(cache: str, stamp: list) -> dict | None:
    """The cache's entry when it was written for this very file (`stamp`), else None."""
    cached = read_cache(cache)
    if cached and cached.get("stamp") == stamp and ("error" in cached or "config" in cached):
        return cached
    return None


def config_error(message: str) -> Exception:
    """errors.ConfigError, its module imported only when there is an error (the hook and
    the statusline pay for every module they load)."""
    from costhook.errors import ConfigError

    return ConfigError(message)


def validate(path) -> dict:
    """Parse and validate the file with the pydantic models (the slow path)."""
    import tomllib

    try:
        data = paths.read_regular(path, MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise config_error(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MB, not a config file")
        raw = tomllib.loads(data.decode("utf-8"))
    except paths.NotRegularFile:
        raise config_error(f"{path}: not a regular file") from None
    except OSError as exc:
        raise config_error(f"{path}: cannot read config ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise config_error(f"{path}: not valid TOML: {exc}") from None
    paths.enable_site()  # pydantic lives in site-packages
    from costhook.config.model import validate_data

    return validate_data(raw, source=str(path))


def _write_cache(cache: str, data: dict) -> None:
    """Only into costhook's existing folder: reading the config (`costhook report` before
    anything was recorded) creates nothing; the hooks make the folder with the database."""
    if not os.path.isdir(os.path.dirname(cache)):
        return
    try:
        tmp = f"{cache}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(jsontext.dumps(data))
        os.replace(tmp, cache)
    except OSError:
        pass  # the cache is an optimisation only
