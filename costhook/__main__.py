"""Console entry point.

`costhook hook` runs on every tool call inside the agent and `costhook statusline` on
every conversation update, so both are dispatched here, before click (or anything heavy)
is imported. So is a plain `costhook report …` (report_command.py): it hands anything
else (help, errors) back to click. Every other command goes through click.
"""

import os
import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "hook":
        from costhook.hook import main as hook_main

        sys.exit(hook_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "statusline":
        from costhook.statusline import main as statusline_main

        exit_at_once(statusline_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        from costhook.report_command import fast

        status = fast(sys.argv[2:])
        if status is not None:
            exit_at_once(status)
    from costhook.cli import cli

    cli()


def exit_at_once(code: int) -> None:
    """Exit without tearing the interpreter down. Freeing every loaded module costs the
    statusline and the report ~5 ms that the user waits for, and a one-shot process whose files are
    closed has nothing else to clean up: only its output needs flushing."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
