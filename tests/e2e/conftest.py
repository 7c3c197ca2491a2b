"""Fixtures for the end-to-end tests with the real Claude Code CLI.

The CLI (npm `@anthropic-ai/claude-code@2.1.330`, a ~380 MB native binary) is
installed once per cache dir; see harness.claude_binary(). When it cannot be
had (no npm, no registry) every e2e test is skipped with the reason.
"""

from __future__ import annotations

import time

import pytest

from . import harness

_STATUS: dict = {}


@pytest.fixture(scope="session")
def claude_bin():
    """Path of the pinned Claude Code binary, or skip the e2e tests."""
    if "path" not in _STATUS:
        t0 = time.monotonic()
        path, reason = harness.claude_binary()
        _STATUS.update(path=path, reason=reason, seconds=time.monotonic() - t0,
                       netns=" ".join(harness.netns_prefix()) or "unavailable: proxy guard only")
    if _STATUS["path"] is None:
        pytest.skip(f"e2e: Claude Code {harness.CLAUDE_VERSION} unavailable: {_STATUS['reason']} "
                    f"(install it with `python tests/e2e/harness.py --install`)")
    return _STATUS["path"]


@pytest.fixture(scope="session")
def costhook_exe():
    exe = harness.costhook_exe()
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run `{exe.parent / 'pip'} install -e .` first")
    return exe


def pytest_terminal_summary(terminalreporter):
    if not _STATUS:
        return
    if _STATUS["path"] is None:
        line = f"SKIPPED, Claude Code {harness.CLAUDE_VERSION} unavailable: {_STATUS['reason']}"
    else:
        line = (f"Claude Code {harness.CLAUDE_VERSION} at {_STATUS['path']} "
                f"(ready in {_STATUS['seconds']:.1f} s); network namespace: {_STATUS['netns']}")
    terminalreporter.write_line(f"e2e: {line}")
