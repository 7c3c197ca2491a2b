"""Every command and option has help, and the README names it (as sqlite-utils'
test_docs.py does): a command nobody can discover is a command nobody uses."""

import re
from pathlib import Path

import click
import pytest

from costhook.cli.app import COMMANDS, cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def all_commands():
    """(path, command) for every command and sub-command, e.g. ("budget set", <Command>)."""
    ctx = click.Context(cli)
    found = []

    def walk(path, command):
        found.append((path, command))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                walk(f"{path} {name}", command.get_command(ctx, name))

    for name in COMMANDS:
        walk(name, cli.get_command(ctx, name))
    return found


COMMAND_LIST = all_commands()


def test_every_name_in_the_table_is_a_click_command():
    assert sorted(COMMANDS) == cli.list_commands(click.Context(cli))
    for path, command in COMMAND_LIST:
        assert isinstance(command, click.Command), path
        assert command.name == path.split()[-1], f"{path} is registered as {command.name!r}"


@pytest.mark.parametrize("path,command", COMMAND_LIST, ids=[p for p, _ in COMMAND_LIST])
def test_command_has_help_and_is_in_the_readme(path, command):
    assert (command.help or "").strip(), f"`costhook {path}` has no help"
    assert re.search(rf"costhook {re.escape(path)}\b", README), f"README never shows `costhook {path}`"


OPTIONS = [(path, option) for path, command in COMMAND_LIST for option in command.params
           if isinstance(option, click.Option)]


@pytest.mark.parametrize("path,option", OPTIONS, ids=[f"{p} {o.opts[0]}" for p, o in OPTIONS])
def test_option_has_help_and_is_in_the_readme(path, option):
    assert (option.help or "").strip(), f"`costhook {path} {option.opts[0]}` has no help"
    assert any(re.search(rf"{re.escape(flag)}\b", README) for flag in option.opts), \
        f"README never mentions {' / '.join(option.opts)} (`costhook {path}`)"


USER_GUIDE_SECTIONS = ("Install", "What you get", "Budgets", "Statusline", "Views", "Dashboard",
                       "OpenClaw", "Prices", "Configuration", "Commands", "Your data and privacy",
                       "Supported versions", "FAQ")


def test_readme_is_a_users_guide():
    """A user reads it in ten minutes (at most 2,500 words of prose, ~250 a minute, and a
    glance at each example); contributor material lives in docs/."""
    sections = re.findall(r"^## (.+)$", README, flags=re.M)
    assert [s for s in sections if s in USER_GUIDE_SECTIONS] == list(USER_GUIDE_SECTIONS)
    assert not {"Performance", "Reliability", "Development", "Layout"} & set(sections)
    prose = re.sub(r"```.*?```", "", README, flags=re.S)  # examples are looked at, not read
    assert len(prose.split()) <= 2500, f"{len(prose.split())} words of prose"
    assert "./install.sh --test" in README.split("## What you get")[0]  # the check, next to install


def test_every_relative_link_in_the_docs_resolves():
    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
