"""What every end-to-end harness needs to run a real agent CLI offline: the CLI installed
once from the npm registry into the repo's cache, a private network namespace with only
loopback up, and a poll with a deadline.

Standard library only, and importable as a top-level module: the harnesses also run as
scripts inside the namespace (`python3 <harness>.py --inner JOB`), where this folder is
the first entry of sys.path.

Environment knobs
  COSTHOOK_E2E_NO_INSTALL=1  never run npm; a CLI not installed yet is skipped
  COSTHOOK_E2E_NETNS=0       do not use `unshare -n`
"""

from __future__ import annotations

import fcntl
import functools
import os
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path


def npm_install(base: Path, packages: list, find, *, timeout: float, scripts: bool = False):
    """(what `find(base)` returns, "") once `packages` are installed under the npm prefix
    `base`, else (None, why not). npm runs the first time only, under a lock file (parallel
    test workers install once); `scripts=False` skips install scripts (the native binaries
    come as optional dependencies). Few fetch retries: without a registry npm fails in
    ~10 s instead of minutes."""
    found = find(base)
    if found:
        return found, ""
    if os.environ.get("COSTHOOK_E2E_NO_INSTALL") == "1":
        return None, f"{' '.join(packages)} not installed in {base} (npm install disabled)"
    npm = shutil.which("npm")
    if not npm:
        return None, f"npm not found: cannot install {' '.join(packages)} from the npm registry"
    base.mkdir(parents=True, exist_ok=True)
    with open(base.parent / f".{base.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = find(base)
        if found:
            return found, ""
        cmd = [npm, "install", "--prefix", str(base), "--no-audit", "--no-fund", "--loglevel=error",
               *([] if scripts else ["--ignore-scripts"]), "--fetch-retries=1", "--fetch-timeout=60000", *packages]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None, f"`{shlex.join(cmd)}` timed out after {timeout:.0f} s"
        if p.returncode != 0:
            tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-5:])
            return None, f"`{shlex.join(cmd)}` failed (registry unavailable?): rc={p.returncode}: {tail}"
        found = find(base)
    return (found, "") if found else (None, f"npm installed {' '.join(packages)} into {base}, but it does not run")


@functools.cache
def netns_prefix() -> tuple[str, ...]:
    """The `unshare` command that gives a private network namespace with a working
    loopback, or () where there is none (then the harnesses' proxy guard alone)."""
    if os.environ.get("COSTHOOK_E2E_NETNS", "1") == "0" or not shutil.which("unshare"):
        return ()
    for prefix in (("unshare", "-n"), ("unshare", "-rn")):
        try:
            p = subprocess.run([*prefix, sys.executable, str(Path(__file__).resolve()), "--loopback"],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if p.returncode == 0:
            return prefix
    return ()


def loopback_up() -> None:
    """`ip link set lo up` without iproute2 (SIOCGIFFLAGS / SIOCSIFFLAGS), then prove it:
    in a fresh namespace loopback is down; elsewhere it is up already."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        socket.create_connection(s.getsockname(), timeout=5).close()


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.1):
    """Poll `predicate()` until it returns something truthy (returned) or the timeout
    passes (then the last value is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


if __name__ == "__main__":
    if sys.argv[1:] == ["--loopback"]:
        loopback_up()
        sys.exit(0)
    print("usage: offline.py --loopback", file=sys.stderr)
    sys.exit(2)
