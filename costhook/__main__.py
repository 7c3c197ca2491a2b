"""Console entry point.

`costhook hook` runs on every tool call inside the agent and `costhook statusline` on
every conversation update, so both are dispatched here, before click (or anything heavy)
is imported. So is a plain `costhook report …` (report_command.py): it hands anything
else (help, errors) back to click. Every other command goes through click.
"""

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "hook":
        from costhook.hook import main as hook_main

        sys.exit(hook_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "statusline":
        from costhook.statusline import main as statusline_main

        sys.exit(statusline_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        from costhook.report_command import fast

        status = fast(sys.argv[2:])
        if status is not None:
            sys.exit(status)
    from costhook.cli import cli

    cli()


if __name__ == "__main__":
    main()
