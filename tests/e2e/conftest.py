"""Fixtures for the end-to-end tests with the real Claude Code CLI.

Every test that uses `claude_bin` runs once per version in harness.claude_versions()
(the oldest supported, 2.1.330, and the newest tested), its id naming the version:
`test_x[cc2.1.330]`. Each CLI (npm `@anthropic-ai/claude-code@<version>`, a ~400 MB
native binary) is installed once per cache dir; see harness.claude_binary(). A version
that cannot be had (no npm, no registry) skips its tests with the reason; the others run.
"""

from __future__ import annotations

import time

import pytest

from . import harness

_STATUS: dict[str, dict] = {}  # version -> path, reason, seconds


def _version_id(version: str) -> str:
    return f"cc{version}"


@pytest.fixture(scope="session", params=harness.claude_versions(), ids=_version_id)
def claude_bin(request):
    """Path of the Claude Code binary of this run's version, or skip its e2e tests."""
    version = request.param
    if version not in _STATUS:
        t0 = time.monotonic()
        path, reason = harness.claude_binary(version)
        reported = harness.claude_version(path) if path else None
        _STATUS[version] = dict(path=path, reason=reason, seconds=time.monotonic() - t0,
                                reported=(reported or version).split()[0])
    status = _STATUS[version]
    if status["path"] is None:
        pytest.skip(f"e2e: Claude Code {version} unavailable: {status['reason']} "
                    f"(install it with `python tests/e2e/harness.py --install`)")
    return status["path"]


@pytest.fixture(scope="session")
def claude_cli_version(claude_bin) -> str:
    """The version `claude_bin` reports, e.g. "2.1.332"."""
    for status in _STATUS.values():
        if status["path"] == claude_bin:
            return status["reported"]
    raise AssertionError(f"{claude_bin} was not set up by the claude_bin fixture")


@pytest.fixture(scope="session")
def costhook_exe():
    exe = harness.costhook_exe()
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run `{exe.parent / 'pip'} install -e .` first")
    return exe


def pytest_terminal_summary(terminalreporter):
    if not _STATUS:
        return
    netns = " ".join(harness.netns_prefix()) or "unavailable: proxy guard only"
    for version, status in _STATUS.items():
        if status["path"] is None:
            line = f"SKIPPED, Claude Code {version} unavailable: {status['reason']}"
        else:
            line = (f"Claude Code {status['reported']} at {status['path']} "
                    f"(ready in {status['seconds']:.1f} s); network namespace: {netns}")
        terminalreporter.write_line(f"e2e: {line}")
