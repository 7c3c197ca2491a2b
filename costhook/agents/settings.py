"""Edit an agent's JSON settings file: merged, backed up, atomic.

The installers (agents/claude/install.py, agents/openclaw/install.py) compute the new
settings as data; this module reads the file (a symlink's target), renders and diffs the
change, refuses a file it cannot write before touching anything, backs the old bytes up
next to it (0600), and replaces it atomically (temp file + os.replace, mode and owner
kept). A file changed by someone else between reading and writing is read again.

Standard library only.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from costhook.errors import InstallError

EXECUTABLE = "costhook"
RETRIES = 3  # reads of a file that keeps changing under us before giving up


@dataclass
class InstallResult:
    """What an install or uninstall did (or would do), for the CLI to print."""

    path: Path
    changed: bool
    diff: str
    backup: Path | None
    message: str
    leftovers: tuple[str, ...] = ()  # after an uninstall: entries that still run costhook


def costhook_executable() -> Path:
    """Absolute path of the `costhook` console script that should run the hooks.

    Prefer the one running now (argv[0]), then the one beside this interpreter (same
    install as this code), then PATH; symlinks resolved. So the command is the same
    however costhook was reached (install.sh runs the venv's script, a user the
    `~/.local/bin/costhook` link to it, or `python -m costhook`), and re-installing
    changes nothing: no rewrite, no backup.
    """
    candidates: list[str] = []
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and is_costhook_name(os.path.basename(argv0)):
        candidates.append(os.path.abspath(argv0))
    bin_dir = os.path.dirname(sys.executable) if sys.executable else ""
    if bin_dir:
        candidates.append(os.path.join(bin_dir, EXECUTABLE))
    found = shutil.which(EXECUTABLE)
    if found:
        candidates.append(os.path.abspath(found))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Path(os.path.realpath(candidate))
    raise InstallError(
        "could not find the installed `costhook` executable (looked at the running "
        "command, beside this Python and on PATH); install costhook first with ./install.sh"
    )


def hook_launcher() -> str:
    """The start of a hook command, shell-quoted: `<python> -IS <package>/__main__.py`, the
    install's interpreter beside its console script running costhook's entry file with no
    `site` and isolated (no PYTHON* variables, no script or working directory on the path:
    __main__ puts only the package's own folder there). Pip's console script imports `re`
    (and so `enum`) before costhook runs, and `site` reads the venv: together ~33 million
    instructions of a hook's ~99 (callgrind), paid by every hook process (issue 14). Where
    no interpreter sits beside the script (a `pip install --user`), the script itself."""
    exe = costhook_executable()
    python = exe.parent / "python"
    entry = installed_entry(python) if os.access(python, os.X_OK) else None
    if entry:
        return f"{shlex.quote(str(python))} -IS {shlex.quote(entry)}"
    return shlex.quote(str(exe))


def gate_launcher() -> str:
    """The start of a gate's command: `/bin/sh <package>/agents/gate.sh <launcher>`, which
    answers at once while costhook's clearance holds and runs the launcher otherwise
    (agents/clearance.py); the launcher alone where the install has no entry file or the
    system no /bin/sh."""
    from costhook.agents.clearance import gate_script

    launcher = hook_launcher()
    words = shlex.split(launcher)
    script = gate_script(words[2]) if is_launcher(words) and os.access("/bin/sh", os.X_OK) else None
    return f"/bin/sh {shlex.quote(script)} {launcher}" if script else launcher


def gate_words(words: list[str]) -> int:
    """2 for `/bin/sh <…/costhook/agents/gate.sh>`, gate_launcher's prefix; else 0."""
    return 2 if (len(words) >= 2 and os.path.basename(words[0]) == "sh"
                 and words[1].replace("\\", "/").endswith("/costhook/agents/gate.sh")) else 0


_entries: dict = {}


def installed_entry(python: Path) -> str | None:
    """`<package>/__main__.py` of the costhook that `python` imports (asked in isolated mode:
    not the code running now, which `python -m costhook` in a checkout takes from the
    working directory), or None when it has none. Asked once per interpreter and process."""
    if str(python) not in _entries:
        _entries[str(python)] = ask_entry(python)
    return _entries[str(python)]


def ask_entry(python: Path) -> str | None:
    import subprocess

    try:
        out = subprocess.run([str(python), "-I", "-c", "import costhook.__main__ as m; print(m.__file__)"],
                             capture_output=True, text=True, timeout=60, cwd="/", stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    entry = out.stdout.strip()
    return entry if out.returncode == 0 and os.path.isabs(entry) and os.path.isfile(entry) else None


def is_launcher(words: list[str]) -> bool:
    """`<…/python*> -IS <…/costhook/__main__.py>`: hook_launcher's own form."""
    return (len(words) == 3 and os.path.basename(words[0]).startswith("python") and words[1] == "-IS"
            and words[2].replace("\\", "/").endswith("/costhook/__main__.py"))


def is_costhook_name(name: str) -> bool:
    """A file name of costhook's console script."""
    return name in (EXECUTABLE, EXECUTABLE + ".exe")


_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_PREFIX_WORDS = ("exec", "command", "env", "nohup", "setsid")
# costhook's executable followed by one of its agent subcommands, anywhere in a command line
# (also inside `sh -c '...'`): what uninstall must not leave behind unannounced.
_MENTION = re.compile(r"costhook(?:\.exe|/__main__\.py)?[\"']?\s+[\"']?(?:hook|statusline)\b")


def runs_costhook(command: object, subcommand: str, agent: str | None = None) -> bool:
    """True for a shell command whose first command is costhook's executable (any
    directory, quoted or not) with just `subcommand` (a hook maybe `--background`, maybe
    started by `setsid -f`; with `agent`, also `--agent AGENT`, in either order), whatever
    shell decoration follows
    (`2>/dev/null`, `|| true`, `; other`) and whatever environment assignments or
    `exec`/`env` precede it: an entry costhook wrote, maybe edited since. More arguments
    (`hook --agent openclaw` when `agent` is not openclaw) or more commands
    (`&& notify-send`) make it someone else's command (uninstall reports it, see
    mentions_costhook)."""
    if not isinstance(command, str):
        return False
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:
        return False
    start = 0
    while start < len(words) and (_ASSIGNMENT.match(words[start]) or words[start] in _PREFIX_WORDS
                                  or (words[start] == "-f" and start and words[start - 1] == "setsid")):
        start += 1
    start += gate_words(words[start:])
    if is_launcher(words[start : start + 3]):
        start += 2  # as if the entry file were the executable
    elif not (len(words) >= start + 2 and is_costhook_name(os.path.basename(words[start]))):
        return False
    if words[start + 1 : start + 2] != [subcommand]:
        return False
    rest = words[start + 2 :]
    if subcommand == "hook":
        background = False
        for _ in range(2):
            if rest[:1] == ["--background"] and not background:
                rest, background = rest[1:], True
            elif agent is not None and rest[:2] == ["--agent", agent]:
                rest, agent = rest[2:], None
        if agent is not None:
            return False  # without `--agent AGENT` it is not that agent's hook
    return _only_decoration(rest)


def _only_decoration(rest: list[str]) -> bool:
    """True when these words only redirect output, background the command or ignore its
    status (`2>/dev/null`, `>>log 2>&1`, `&`, `|| true`, `; exit 0`): nothing else runs."""
    i = 0
    while i < len(rest):
        word = rest[i]
        if word.isdigit() and i + 1 < len(rest) and rest[i + 1][:1] in "<>":
            i += 1  # `2>/dev/null` lexes as 2, >, /dev/null
        elif word[:1] in "<>" and set(word) <= set("<>&"):
            i += 2  # the operator and its target
        elif word == "&" and i == len(rest) - 1:
            i += 1
        elif word in ("||", ";") and rest[i + 1 : i + 2] in (["true"], [":"], ["exit"]):
            i += 2
            if rest[i : i + 1] and rest[i].isdigit() and rest[i - 1] == "exit":
                i += 1
        else:
            return False
    return True


def mentions_costhook(command: object) -> bool:
    """True for any command line that runs `costhook hook` or `costhook statusline` somewhere
    (a wrapper script's `sh -c`, after `&&`): left alone by uninstall, but reported."""
    return isinstance(command, str) and _MENTION.search(command) is not None


def json_object(parent: dict, key: str, create: bool, problem: str) -> dict | None:
    """`parent[key]` as a JSON object: None when missing (or null), a new empty one with
    `create`; anything else is the user's to fix, so InstallError(`problem`)."""
    value = parent.get(key)
    if value is None:
        if not create:
            return None
        value = parent[key] = {}
    if not isinstance(value, dict):
        raise InstallError(f"{problem}; fix it by hand, then re-run")
    return value


@dataclass
class Snapshot:
    """A settings file as read: what a write must still find there to replace it."""

    path: Path  # the settings path as given (maybe a symlink)
    target: Path  # the file actually written (symlink resolved)
    raw: bytes | None  # None: the file does not exist
    data: dict


def write_target(path: Path) -> Path:
    """The file a write to `path` replaces: a symlink's target, so the link stays."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


MAX_SETTINGS_BYTES = 16 << 20  # no agent's settings file comes near this


def read_bounded(path) -> bytes:
    """The regular file `path` (paths.open_regular: never a FIFO or a device), at most
    MAX_SETTINGS_BYTES; InstallError when it is not a regular file or is larger."""
    from costhook.paths import NotRegularFile, read_regular

    try:
        raw = read_regular(path, MAX_SETTINGS_BYTES + 1)
    except NotRegularFile:
        raise InstallError(f"{path} is not a regular file") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise  # the callers say these their own way ("missing" is an empty settings file)
    except OSError as error:
        # A loop of symlinks, a file where a folder of the path should be, an I/O error:
        # one line, not a traceback.
        raise InstallError(f"cannot read {path}: {error.strerror or error}; costhook changed nothing") from None
    if len(raw) > MAX_SETTINGS_BYTES:
        raise InstallError(f"{path} is larger than {MAX_SETTINGS_BYTES >> 20} MB: not a settings file")
    return raw


def read_settings(path: Path) -> Snapshot:
    """The file at `path` as a JSON object ({} when missing or blank); InstallError when
    it is not UTF-8 JSON holding an object, or cannot be read."""
    target = write_target(path)
    try:
        raw = read_bounded(target)
    except FileNotFoundError:
        return Snapshot(path, target, None, {})
    except IsADirectoryError:
        raise InstallError(f"{path} is a directory, not a settings file") from None
    except PermissionError:
        raise InstallError(f"cannot read {path}: permission denied") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InstallError(f"{path} is not UTF-8 text; fix it by hand, then re-run") from None
    if not text.strip():
        return Snapshot(path, target, raw, {})
    try:
        data = parse_json(text)
    except json.JSONDecodeError as error:
        raise InstallError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column "
            f"{error.colno}); costhook changed nothing. Fix the file, then re-run."
        ) from None
    except NotPlainJSON as error:
        raise InstallError(f"{path} {error}; costhook changed nothing. Fix the file, then re-run.") from None
    if not isinstance(data, dict):
        raise InstallError(
            f"{path} holds a JSON {type(data).__name__}, not an object; costhook changed nothing"
        )
    return Snapshot(path, target, raw, data)


class NotPlainJSON(ValueError):
    """JSON that Python parses but could not write back as it was: a number too large for a
    double (`1e999`), the non-JSON words NaN/Infinity, a lone surrogate escape (`"\\ud800"`)."""


def _exact_float(text: str) -> float:
    """A JSON number with a fraction or exponent, as a float that writes back to the same
    value; NotPlainJSON for one a double cannot hold (`1e999`, or more digits than it keeps)."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")) or Decimal(repr(value)) != Decimal(text):
        raise NotPlainJSON(f"holds the number {text[:40]}, which costhook could not write back exactly")
    return value


def _constant(word: str):
    raise NotPlainJSON(f"holds {word}, which is not JSON")


def _unique_keys(pairs: list) -> dict:
    """A JSON object as a dict; NotPlainJSON for a key written twice (json.loads keeps the
    last: writing that back would drop the other from the user's file)."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise NotPlainJSON(f"holds the key {json.dumps(twice[:40])} twice in one object, which costhook could not write back as it is")
    return data


def parse_json(text: str):
    """json.loads, but NotPlainJSON for what `render` could not write back unchanged as
    valid JSON: plain json.loads reads `1e999` as inf (written back as the bare word
    Infinity), accepts NaN and Infinity, and turns `"\\ud800"` into a string UTF-8 cannot hold. It
    also keeps only the last of a key written twice."""
    try:
        data = json.loads(text, parse_float=_exact_float, parse_constant=_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise NotPlainJSON("is nested too deeply to edit") from None
    except NotPlainJSON:
        raise
    except ValueError as error:  # e.g. an integer longer than Python converts (4,300 digits)
        raise NotPlainJSON(f"holds a value costhook could not read back exactly ({error})") from None
    if "\\u" in text:  # decoded UTF-8 holds no surrogates: only an escape can make one
        try:
            _check_strings(data)
        except RecursionError:
            raise NotPlainJSON("is nested too deeply to edit") from None
    return data


def _check_strings(value) -> None:
    """NotPlainJSON for a key or string anywhere in `value` that is not valid Unicode text."""
    if isinstance(value, dict):
        parts = [part for item in value.items() for part in item]
    elif isinstance(value, list):
        parts = value
    else:
        return
    for part in parts:
        if isinstance(part, str):
            try:
                part.encode("utf-8")
            except UnicodeEncodeError:
                raise NotPlainJSON(
                    f"holds a lone surrogate escape ({json.dumps(part[:40])}), which is not a character"
                ) from None
        else:
            _check_strings(part)


def render(data: dict, path: Path | None = None) -> str:
    """Settings as written back: two-space indents, non-ASCII kept, a final newline.
    InstallError (before anything is written) for data that would not be valid UTF-8 JSON."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        text.encode("utf-8")
    except ValueError as error:  # inf/nan, or UnicodeEncodeError (a lone surrogate)
        where = f"{path} " if path is not None else "the settings "
        raise InstallError(f"{where}cannot be written back as valid JSON ({error}); costhook changed nothing") from None
    return text


def diff_text(snapshot: Snapshot, new_text: str) -> str:
    """A unified diff from the file as read to `new_text` (from /dev/null for a new file)."""
    old = snapshot.raw.decode("utf-8-sig", "replace") if snapshot.raw is not None else ""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=str(snapshot.path) if snapshot.raw is not None else "/dev/null",
        tofile=str(snapshot.path),
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def check_writable(snapshot: Snapshot) -> None:
    """InstallError, before anything is written, when the file or its directory is not writable."""
    target = snapshot.target
    # Another user's settings (root, or sudo keeping HOME, on someone else's): the hooks
    # would run their agent on our costhook, the backup and a new file would be ours, which
    # their agent cannot read. (Root may own the folder: /tmp, a system-wide folder.)
    me = os.geteuid()
    if snapshot.raw is not None:
        owner = target.stat().st_uid
    else:
        owner = target.parent.stat().st_uid if target.parent.is_dir() else me
        owner = me if owner == 0 else owner
    if owner != me:
        raise InstallError(
            f"{snapshot.path} belongs to another user (uid {owner}); costhook changed nothing. "
            "Run costhook install as that user."
        )
    if snapshot.raw is not None:
        mode = target.stat().st_mode
        # The mode bits matter even for root, who os.access() would let through.
        if not os.access(target, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise InstallError(
                f"{snapshot.path} is read-only; costhook changed nothing. "
                f"Make it writable (chmod u+w {shlex.quote(str(target))}) and re-run."
            )
    directory = _existing_parent(target.parent)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InstallError(f"cannot write in {directory}: permission denied; costhook changed nothing")


def _existing_parent(directory: Path) -> Path:
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def _make_private_dirs(directory: Path) -> None:
    """Create missing directories as 0700 (only those we create)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)


def backup_file(snapshot: Snapshot) -> Path:
    """Copy the bytes as read to `<name>.costhook-backup-<UTC stamp>[-n]` beside it (0600, never overwriting)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = f"{snapshot.path.name}.costhook-backup-{stamp}"
    for attempt in range(100):
        name = base if attempt == 0 else f"{base}-{attempt}"
        backup = snapshot.path.parent / name
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(snapshot.raw or b"")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(backup, 0o600)
        return backup
    raise InstallError(f"could not create a backup next to {snapshot.path}")


def _current_bytes(target: Path) -> bytes | None:
    try:
        return read_bounded(target)
    except FileNotFoundError:
        return None


def atomic_write(snapshot: Snapshot, text: str) -> None:
    """Atomically replace the target file, keeping its mode (0600 for a new file)."""
    target = snapshot.target
    _make_private_dirs(target.parent)
    if snapshot.raw is not None:
        st = target.stat()
        mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
    else:
        mode, owner = 0o600, None
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".costhook-tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        if owner is not None and hasattr(os, "chown"):
            try:
                os.chown(temp, *owner)
            except OSError:
                pass
        if _current_bytes(target) != snapshot.raw:
            raise Changed()
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


class Changed(Exception):
    """The file changed under us between reading and writing; start over."""


def write_with_backup(snapshot: Snapshot, text: str) -> Path | None:
    """Back up the file (if it exists), then replace it with `text`; the backup (None for a
    new file). A failed write takes its backup with it: InstallError, or Changed when the
    file changed since it was read (read it again and retry)."""
    check_writable(snapshot)
    backup = backup_file(snapshot) if snapshot.raw is not None else None
    try:
        atomic_write(snapshot, text)
    except (Changed, OSError, ValueError) as error:  # ValueError: text UTF-8 cannot hold
        if backup is not None:
            backup.unlink()
        if isinstance(error, Changed):
            raise
        raise InstallError(f"could not write {snapshot.path}: {error}; costhook changed nothing") from None
    return backup


def apply(path: Path, transform, dry_run: bool, verb: str, nothing: str, done) -> InstallResult:
    """Change the settings file at `path` to `transform(its data)`: `nothing` when that
    changes nothing, the diff on a dry run, else write it with a backup and say
    `done(verb, path, backup, new_data)`."""
    for _ in range(RETRIES):
        snapshot = read_settings(path)
        new_data = transform(snapshot.data)
        if new_data == snapshot.data:
            return InstallResult(path, False, "", None, nothing)
        text = render(new_data, path)
        diff = diff_text(snapshot, text)
        if dry_run:
            return InstallResult(path, False, diff, None, f"Dry run: would {verb} costhook in {path}.")
        try:
            backup = write_with_backup(snapshot, text)
        except Changed:
            continue
        return InstallResult(path, True, diff, backup, done(verb, path, backup, new_data))
    raise InstallError(f"{path} kept changing while costhook was updating it; try again")
