"""Changing the config file from the CLI (`costhook budget set/remove`), keeping the
user's comments and layout (tomlkit), atomically and under a lock so two edits never
interleave. Never used by the hook."""

import os
from pathlib import Path

import tomlkit
from filelock import FileLock

from costhook import paths
from costhook.config.load import MAX_CONFIG_BYTES
from costhook.config.model import validate_data
from costhook.errors import ConfigError


def edit(mutate, path: Path | None = None) -> dict:
    """Apply `mutate(document)` to the config file and write it back if it still validates.

    Returns the validated config. Raises ConfigError (nothing written) when the result is invalid.
    """
    path = path or paths.config_path()
    paths.ensure_private_dir(path.parent)
    lock = FileLock(str(path) + ".lock", mode=0o600)
    try:
        lock.acquire()
    except OSError as exc:
        raise ConfigError(f"{path}.lock: cannot lock the config ({exc.strerror or exc})") from None
    try:
        try:
            text = paths.read_regular(path, MAX_CONFIG_BYTES + 1).decode("utf-8")
        except FileNotFoundError:
            text = ""
        except paths.NotRegularFile:
            raise ConfigError(f"{path}: not a regular file") from None
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MB, not a config file")
        try:
            document = tomlkit.parse(text)
        except tomlkit.exceptions.ParseError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        mutate(document)
        validated = validate_data(document.unwrap(), source=str(path))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tomlkit.dumps(document))
        os.replace(tmp, path)  # (the gates trust a clearance only while it is newer than this file)
    finally:
        lock.release()
    return validated


def set_budget(budget: dict, path: Path | None = None) -> dict | None:
    """Add a budget, or replace the one with the same id. Returns the replaced entry when it
    was for another scope or period (the caller says so: never a silent swap), else None."""
    replaced = []

    def mutate(document):
        budgets = document.get("budgets")
        if budgets is None:
            budgets = tomlkit.aot()
            document["budgets"] = budgets
        entry = tomlkit.table()
        for key, value in budget.items():
            entry[key] = value
        for index, existing in enumerate(budgets):
            if _effective_id(existing) == budget["id"]:
                if (_scope(existing.get("scope")), str(existing.get("period"))) != (budget["scope"], budget["period"]):
                    replaced.append(existing.unwrap())
                budgets[index] = entry
                return
        budgets.append(entry)

    edit(mutate, path)
    return replaced[0] if replaced else None


def remove_budget(budget_id: str, path: Path | None = None) -> dict:
    def mutate(document):
        budgets = document.get("budgets") or []
        keep = [b for b in budgets if _effective_id(b) != budget_id]
        if len(keep) == len(budgets):
            raise KeyError(budget_id)
        while len(budgets):
            budgets.pop()
        for b in keep:
            budgets.append(b)
        if not budgets:
            del document["budgets"]

    return edit(mutate, path)


def _effective_id(entry) -> str:
    from costhook.config.model import budget_id

    value = entry.get("id")
    return str(value) if value else budget_id(str(entry.get("period")), _scope(entry.get("scope")))


def _scope(value) -> str:
    kind, _, target = str(value).partition(":")
    return f"{kind}:{target.strip()}" if target else kind
