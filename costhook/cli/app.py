"""The `costhook` command line (click): the group and its commands, each loaded when asked
for (click's "lazily loading subcommands"), so a command imports only what it needs.

`costhook hook`, `costhook statusline` and plain `costhook report …` lines never come
here on the hot path (see __main__.py); their click commands give help and errors.
"""

import click

COMMANDS = {  # name → "module:click command"; a new command is one line here
    "hook": "costhook.cli.setup:hook",
    "statusline": "costhook.cli.setup:statusline",
    "install": "costhook.cli.setup:install",
    "uninstall": "costhook.cli.setup:uninstall",
    "import": "costhook.cli.setup:import_",
    "doctor": "costhook.cli.setup:doctor",
    "report": "costhook.cli.report:report",
    "budget": "costhook.cli.budget:budget",
    "summary": "costhook.cli.views:summary",
    "top": "costhook.cli.views:top",
    "tree": "costhook.cli.views:tree",
    "tools": "costhook.cli.views:tools",
    "cache": "costhook.cli.views:cache",
    "anomalies": "costhook.cli.views:anomalies",
    "whatif": "costhook.cli.views:whatif",
    "idle": "costhook.cli.views:idle",
    "efficiency": "costhook.cli.views:efficiency",
    "blocks": "costhook.cli.views:blocks",
    "trends": "costhook.cli.views:trends",
    "dashboard": "costhook.cli.views:dashboard",
    "cron": "costhook.cli.cron:cron",
    "reprice": "costhook.cli.prices:reprice",
    "prices": "costhook.cli.prices:prices",
    "sync": "costhook.cli.sync:sync",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def invoke(self, ctx):
        import sqlite3

        try:
            return super().invoke(ctx)
        except sqlite3.DatabaseError as exc:
            # A database that opened (header and schema whole) can still fail on a damaged
            # page mid-command: one line and the advice, as when it cannot be opened at all
            # (open_store), for every command at once rather than in each.
            from costhook.cli.common import store_error
            from costhook.errors import StoreError

            raise store_error(StoreError(f"cannot use the database: {exc}"), midway=True) from exc

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[name].partition(":")
        return getattr(__import__(module, fromlist=[attribute]), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="costhook", prog_name="costhook")
def cli():
    """Exact cost tracking and budgets for Claude Code and OpenClaw, from their hooks."""
