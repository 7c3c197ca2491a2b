"""Install and remove costhook's OpenClaw plugin.

`install_openclaw()`:
  1. copies the plugin (hooks/openclaw: manifest, package.json, index.js) to
     `$COSTHOOK_HOME/openclaw-plugin/`, a stable place that does not move with the checkout;
  2. merges into OpenClaw's config (`$OPENCLAW_CONFIG_PATH`, else `<state dir>/openclaw.json`):
        plugins.load.paths            += that directory
        plugins.entries.costhook      = {enabled: true,
                                         hooks: {allowConversationAccess: true},
                                         config: {command: [<abs costhook>, "hook", "--agent", "openclaw"]}}
        plugins.allow                 += "costhook"   (only when an allow-list exists)
     `allowConversationAccess` is what lets a non-bundled plugin see `agent_end` (the run's
     usage) and gate `before_agent_run`.
Everything else in the config is kept. A config that is plain JSON (what OpenClaw itself
writes) is edited in place: backup first, atomic replace, mode kept. A hand-written JSON5
config (comments, trailing commas) is changed through OpenClaw's own CLI
(`openclaw config patch --stdin`), which validates the change and keeps its own `.bak`;
note that OpenClaw 2026.9.6 then rewrites the file as plain JSON, comments dropped, as it
does for every CLI change (set $COSTHOOK_OPENCLAW_CLI to e.g. "node /path/openclaw.mjs"
when `openclaw` is not on PATH). Running install twice changes
nothing; `uninstall_openclaw()` removes exactly what install added (the plugin directory
too) and leaves costhook's data alone. A running Gateway picks the change up by itself
(hybrid config reload); otherwise restart it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from costhook import paths
from costhook.agents import settings
from costhook.agents.settings import InstallResult
from costhook.errors import InstallError

PLUGIN_ID = "costhook"
PLUGIN_FILES = ("openclaw.plugin.json", "package.json", "index.js")
CLI_TIMEOUT = 120


# -- locations -----------------------------------------------------------------


def state_dir() -> Path:
    from costhook.agents.openclaw.paths import state_dir as resolve

    return Path(resolve())


def config_path() -> Path:
    explicit = os.environ.get("OPENCLAW_CONFIG_PATH", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    return state_dir() / "openclaw.json"


def plugin_source() -> Path:
    """The plugin's files: $COSTHOOK_OPENCLAW_PLUGIN, the checkout's hooks/openclaw (source
    and editable installs), or the copy shipped in the package as
    costhook/agents/openclaw/plugin (regular installs; see pyproject's package-dir)."""
    candidates = []
    explicit = os.environ.get("COSTHOOK_OPENCLAW_PLUGIN", "").strip()
    if explicit:
        candidates.append(Path(explicit).expanduser())
    here = Path(__file__).resolve().parent
    candidates.append(here.parents[2] / "hooks" / "openclaw")
    candidates.append(here / "plugin")
    for folder in candidates:
        if all((folder / name).is_file() for name in PLUGIN_FILES):
            return folder
    raise InstallError(
        "could not find costhook's OpenClaw plugin (hooks/openclaw in the costhook checkout); "
        "set COSTHOOK_OPENCLAW_PLUGIN=<checkout>/hooks/openclaw and re-run"
    )


def plugin_dir() -> Path:
    return paths.home() / "openclaw-plugin"


def hook_argv() -> list[str]:
    return [str(settings.costhook_executable()), "hook", "--agent", "openclaw"]


# -- the change, as data ---------------------------------------------------------


def _is_costhook_plugin_dir(path: str) -> bool:
    """A load path of costhook's plugin: its directory (`~` expanded, trailing slash or
    not) or a file in it (`.../openclaw-plugin/index.js`), by the manifest's id when the
    files are there, else by the directory's name."""
    folder = os.path.normpath(os.path.expanduser(path))
    if os.path.isfile(folder) or os.path.basename(folder) in PLUGIN_FILES:
        folder = os.path.dirname(folder)
    try:
        manifest = json.loads(paths.read_regular(os.path.join(folder, "openclaw.plugin.json"), 65536))
    except (OSError, ValueError):
        return os.path.basename(folder) == "openclaw-plugin"
    return isinstance(manifest, dict) and manifest.get("id") == PLUGIN_ID


def leftovers(config: dict) -> list[str]:
    """What in the config still loads or runs costhook after an uninstall: a plugin entry
    (under any id) whose command is costhook's hook, the costhook entry itself."""
    plugins = config.get("plugins") if isinstance(config.get("plugins"), dict) else {}
    entries = plugins.get("entries") if isinstance(plugins.get("entries"), dict) else {}
    found = []
    for plugin_id, entry in entries.items():
        plugin_config = entry.get("config") if isinstance(entry, dict) else None
        command = plugin_config.get("command") if isinstance(plugin_config, dict) else None
        runs = (isinstance(command, list) and len(command) >= 2 and all(isinstance(w, str) for w in command)
                and settings.is_costhook_name(os.path.basename(command[0])) and command[1] == "hook")
        if plugin_id == PLUGIN_ID or runs or settings.mentions_costhook(command):
            found.append(f"plugins.entries.{plugin_id}: {json.dumps(command)}")
    return found


def _plugins(config: dict, create: bool) -> dict | None:
    return settings.json_object(config, "plugins", create, '"plugins" in the OpenClaw config is not an object')


def _load_paths(plugins: dict) -> list:
    load = plugins.get("load")
    if load is None:
        return []
    if not isinstance(load, dict) or not isinstance(load.get("paths", []), list):
        raise InstallError('"plugins.load.paths" in the OpenClaw config is not a list; fix it by hand, then re-run')
    return list(load.get("paths", []))


def desired_paths(current: list, folder: str) -> list:
    """Our directory once, other costhook plugin directories (older installs) gone."""
    kept = [p for p in current if not (isinstance(p, str) and p != folder and _is_costhook_plugin_dir(p))]
    return kept if folder in kept else kept + [folder]


def merge_install(config: dict, folder: str, command: list) -> dict:
    config = json.loads(json.dumps(config))
    plugins = _plugins(config, create=True)
    new_paths = desired_paths(_load_paths(plugins), folder)
    plugins.setdefault("load", {})["paths"] = new_paths
    entries = plugins.setdefault("entries", {})
    if not isinstance(entries, dict):
        raise InstallError('"plugins.entries" in the OpenClaw config is not an object; fix it by hand, then re-run')
    entry = entries.get(PLUGIN_ID)
    entry = dict(entry) if isinstance(entry, dict) else {}
    entry["enabled"] = True
    hooks = entry.get("hooks") if isinstance(entry.get("hooks"), dict) else {}
    entry["hooks"] = {**hooks, "allowConversationAccess": True}
    plugin_config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    entry["config"] = {**plugin_config, "command": list(command)}
    entries[PLUGIN_ID] = entry
    allow = plugins.get("allow")
    # Only a non-empty list restricts what OpenClaw loads: an empty one allows every plugin,
    # and costhook appended to it would have made it allow costhook alone.
    if isinstance(allow, list) and allow and PLUGIN_ID not in allow:
        plugins["allow"] = allow + [PLUGIN_ID]
    return config


def merge_uninstall(config: dict) -> dict:
    config = json.loads(json.dumps(config))
    plugins = _plugins(config, create=False)
    if plugins is None:
        return config
    current = _load_paths(plugins)
    kept = [p for p in current if not (isinstance(p, str) and _is_costhook_plugin_dir(p))]
    if kept != current:
        plugins["load"]["paths"] = kept
        if not kept and set(plugins["load"]) == {"paths"}:
            del plugins["load"]
    entries = plugins.get("entries")
    if isinstance(entries, dict) and PLUGIN_ID in entries:
        del entries[PLUGIN_ID]
        if not entries:
            del plugins["entries"]
    allow = plugins.get("allow")
    if isinstance(allow, list) and PLUGIN_ID in allow:
        plugins["allow"] = [a for a in allow if a != PLUGIN_ID]
    if not plugins:
        del config["plugins"]
    return config


def warnings(config: dict) -> list[str]:
    plugins = config.get("plugins") if isinstance(config.get("plugins"), dict) else {}
    notes = []
    if plugins.get("enabled") is False:
        notes.append("plugins.enabled is false in the OpenClaw config: no plugin (costhook's included) will load")
    deny = plugins.get("deny")
    if isinstance(deny, list) and PLUGIN_ID in deny:
        notes.append('plugins.deny lists "costhook": OpenClaw will not load it until that is removed')
    return notes


# -- applying it -----------------------------------------------------------------


def _read_json(path: Path) -> tuple[bytes | None, dict | None]:
    """(raw bytes, parsed config) — parsed is None when the file is not plain JSON (JSON5)."""
    try:
        raw = settings.read_bounded(path)
    except FileNotFoundError:
        return None, {}
    except IsADirectoryError:
        raise InstallError(f"{path} is a directory, not OpenClaw's config file") from None
    except PermissionError:
        raise InstallError(f"cannot read {path}: permission denied") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # decoded with U+FFFD for it, the user's bytes would be written back changed
        raise InstallError(f"{path} is not UTF-8 text; costhook changed nothing. Fix it by hand, then re-run.") from None
    if not text.strip():
        return raw, {}
    try:
        data = settings.parse_json(text)
    except ValueError:  # JSON5, or JSON that json.dumps could not write back as it was: OpenClaw's CLI edits it
        return raw, None
    if not isinstance(data, dict):
        raise InstallError(f"{path} holds a JSON {type(data).__name__}, not an object; costhook changed nothing")
    return raw, data


def _readonly_reason() -> str | None:
    if os.environ.get("OPENCLAW_CONFIG_READONLY") == "1" or os.environ.get("OPENCLAW_NIX_MODE") == "1":
        return "OpenClaw's config is externally managed (OPENCLAW_CONFIG_READONLY / OPENCLAW_NIX_MODE)"
    return None


def _copy_plugin(dry_run: bool) -> tuple[Path, bool]:
    """Copy the plugin files into plugin_dir(); (dir, whether anything changed)."""
    source, target = plugin_source(), plugin_dir()
    # The Gateway runs this folder's index.js as the user: a folder (or one above it) that
    # another user owns or may write would let them replace it with their own code.
    problem = paths.insecurity(target, kind="costhook's OpenClaw plugin folder")
    if problem:
        raise InstallError(f"{problem}; costhook changed nothing")
    if source.resolve() == target.resolve():
        return target, False
    changed = False
    for name in PLUGIN_FILES:
        data = (source / name).read_bytes()
        try:
            same = paths.read_regular(target / name, len(data) + 1) == data
        except OSError:
            same = False
        if same:
            continue
        changed = True
        if dry_run:
            continue
        paths.ensure_private_dir(target)
        temp = target / f".{name}.costhook-tmp"
        temp.write_bytes(data)
        os.chmod(temp, 0o644)
        os.replace(temp, target / name)
    return target, changed


def openclaw_cli() -> list[str] | None:
    """How to run OpenClaw's CLI: $COSTHOOK_OPENCLAW_CLI (a command line), else `openclaw` on PATH."""
    explicit = os.environ.get("COSTHOOK_OPENCLAW_CLI", "").strip()
    if explicit:
        return shlex.split(explicit)
    found = shutil.which("openclaw")
    return [found] if found else None


def _cli(args: list[str], stdin: str | None = None) -> str:
    cli = openclaw_cli()
    if cli is None:
        raise InstallError(
            "the OpenClaw config is JSON5 (comments, trailing commas, NaN/Infinity, a key written twice, or a number or "
            "escape costhook could not write back exactly) and the `openclaw` command was not found to "
            "edit it; costhook changed nothing")
    try:
        proc = subprocess.run([*cli, *args], input=stdin, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        raise InstallError(f"`openclaw {' '.join(args)}` failed: {exc}") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise InstallError(f"`openclaw {' '.join(args)}` failed (rc={proc.returncode}): {tail}")
    return proc.stdout


def _cli_get(path: str):
    """`openclaw config get PATH --json`, or None. OpenClaw exits 1 for a path that is valid
    but unset ("the runtime default applies"): that is the first install's usual case
    (no plugins.load.paths, no plugins.allow), not a failure. If OpenClaw cannot read its
    config at all, `config patch` fails next and says why."""
    try:
        return json.loads(_cli(["config", "get", path, "--json"]).strip() or "null")
    except (InstallError, ValueError):
        return None


def _patch_via_cli(config_file: Path, install: bool, folder: str, command: list, dry_run: bool) -> InstallResult:
    """JSON5 config: ask OpenClaw's CLI for the current load paths, then `config patch`."""
    current = _cli_get("plugins.load.paths")
    current = current if isinstance(current, list) else []
    if install:
        patch = {"plugins": {"load": {"paths": desired_paths(current, folder)}, "entries": {PLUGIN_ID: {
            "enabled": True, "hooks": {"allowConversationAccess": True}, "config": {"command": command}}}}}
    else:
        kept = [p for p in current if not (isinstance(p, str) and _is_costhook_plugin_dir(p))]
        patch = {"plugins": {"load": {"paths": kept}, "entries": {PLUGIN_ID: None}}}
    # The allowlist as merge_install / merge_uninstall change it (a patch replaces a list
    # whole): a non-empty one without costhook would keep OpenClaw from loading the plugin.
    allow = _cli_get("plugins.allow")
    if isinstance(allow, list) and allow and install and PLUGIN_ID not in allow:
        patch["plugins"]["allow"] = allow + [PLUGIN_ID]
    elif isinstance(allow, list) and not install and PLUGIN_ID in allow:
        patch["plugins"]["allow"] = [a for a in allow if a != PLUGIN_ID]
    text = json.dumps(patch, indent=2)
    if dry_run:
        return InstallResult(config_file, False, text + "\n", None, f"Dry run: would apply this patch with `openclaw config patch` to {config_file}.")
    _cli(["config", "patch", "--stdin"], stdin=text)
    verb = "Installed costhook's OpenClaw plugin" if install else "Removed costhook's OpenClaw plugin"
    return InstallResult(config_file, True, text + "\n", None, f"{verb} via `openclaw config patch` ({config_file}).")


def _apply(install: bool, dry_run: bool) -> InstallResult:
    config_file = config_path()
    folder, command = None, None
    if install:
        folder_path, copied = _copy_plugin(dry_run)
        folder, command = str(folder_path), hook_argv()
    else:
        copied = False
    reason = _readonly_reason()
    for _ in range(settings.RETRIES):
        raw, data = _read_json(config_file)
        if data is None:
            if reason:
                raise InstallError(f"{reason}; costhook changed nothing")
            result = _patch_via_cli(config_file, install, folder, command, dry_run)
            break
        new = merge_install(data, folder, command) if install else merge_uninstall(data)
        notes = warnings(new) if install else []
        if new == data:
            what = "installed and enabled" if install else "not installed"
            message = f"costhook's OpenClaw plugin is already {what} in {config_file}; nothing changed."
            if install and copied:
                message = f"Updated costhook's OpenClaw plugin files in {folder}; {config_file} already had it."
            result = InstallResult(config_file, copied and not dry_run, "", None, "\n".join([message, *notes]))
            break
        if reason:
            raise InstallError(f"{reason}; costhook changed nothing. Apply this yourself:\n" + json.dumps(new.get("plugins", {}), indent=2))
        text = settings.render(new, config_file)
        snapshot = settings.Snapshot(config_file, settings.write_target(config_file), raw, data)
        diff = settings.diff_text(snapshot, text)
        if dry_run:
            result = InstallResult(config_file, False, diff, None, f"Dry run: would {'install' if install else 'remove'} costhook's OpenClaw plugin in {config_file}.")
            break
        try:
            backup = settings.write_with_backup(snapshot, text)
        except settings.Changed:
            continue
        verb = (f"Installed and enabled costhook's OpenClaw plugin ({folder}) in {config_file}"
                if install else f"Removed costhook's OpenClaw plugin from {config_file}")
        lines = [verb + "." + (f" Backup: {backup}" if backup else "")]
        if install:
            lines.append("A running Gateway reloads the config by itself; otherwise start or restart it.")
        result = InstallResult(config_file, True, diff, backup, "\n".join(lines + notes))
        break
    else:
        raise InstallError(f"{config_file} kept changing while costhook was updating it; try again")
    if not install and not dry_run:
        _remove_plugin_dir()
    if not install:
        _report_leftovers(result, config_file, dry_run)
    return result


def _report_leftovers(result: InstallResult, config_file: Path, dry_run: bool) -> None:
    """Never claim a removal the config contradicts: what still runs costhook is named."""
    _, data = _read_json(config_file)
    if data is None:
        return  # JSON5: changed by OpenClaw's CLI, which validated the patch
    left = leftovers(merge_uninstall(data) if dry_run else data)
    if not left:
        return
    result.leftovers = tuple(left)
    head = result.message.splitlines()[0] if dry_run else (
        f"Removed some of costhook's OpenClaw plugin from {config_file}." + (f" Backup: {result.backup}" if result.backup else "")
        if result.changed else f"costhook removed nothing from {config_file}.")
    result.message = head + (f"\nStill running costhook in {config_file} (not costhook's own entry, so costhook left "
                             "it; edit it by hand):\n" + "\n".join(f"  {line}" for line in left))


def _remove_plugin_dir() -> None:
    folder = plugin_dir()
    for name in PLUGIN_FILES:
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass


def install_openclaw(dry_run: bool = False) -> InstallResult:
    """Install (or update) and enable costhook's OpenClaw plugin. Idempotent."""
    return _apply(True, dry_run)


def uninstall_openclaw(dry_run: bool = False) -> InstallResult:
    """Remove costhook's OpenClaw plugin from OpenClaw's config (and its copied files)."""
    return _apply(False, dry_run)
