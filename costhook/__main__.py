"""Console entry point: the front door.

`costhook hook` runs on every tool call inside the agent and `costhook statusline` on
every conversation update, so both are dispatched here, before click (or anything heavy)
is imported; so are the hook's detached jobs. So is a plain `costhook report …`
(cli/report_fast.py): it hands anything else (help, errors) back to click. Every other
command goes through click (cli/app.py).
"""

import os
import sys

if __name__ == "__main__" and not __package__:
    # Started as a file by a hook command (`python -IS …/costhook/__main__.py hook`: no
    # site, nothing of the working directory on the path, see agents/settings.hook_launcher):
    # the package is imported from the folder that holds it, and only from there.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command == "hook":
        sys.exit(hook(sys.argv[2:], own_process=True))
    if command == "statusline":
        from costhook.agents.claude.statusline import main as statusline_main

        exit_at_once(statusline_main(sys.argv[2:]))
    if command == "report":
        from costhook.cli.report_fast import fast

        status = fast(sys.argv[2:])
        if status is not None:
            exit_at_once(status)
    from costhook.cli.app import cli

    cli()


def hook(argv: list[str], own_process: bool = False) -> int:
    """`costhook hook [--agent NAME] [--background] | --JOB [ARGS]`: always 0 (fail-open, see
    agents.runtime). Only a process started for the hook (`own_process`) may fork its work
    into the background and exit: called from other code, the hook never ends its caller."""
    from costhook.agents import runtime

    runtime.MAY_DETACH = own_process

    for flag, job in DETACHED_JOBS.items():
        if flag in argv:
            return runtime.run_job(flag[2:], lambda: job(argv[argv.index(flag) + 1 :]))
    if own_process and "--serve" not in argv:
        # One event, a short-lived process that makes few reference cycles: the cyclic
        # collector only burns ~5 % of a hook's instructions walking what its imports made.
        import gc

        gc.disable()
    agent = argv[argv.index("--agent") + 1] if "--agent" in argv[:-1] else "claude"
    if "--serve" in argv and own_process:
        return runtime.serve(agent)
    return runtime.run_hook(agent, background="--background" in argv)


# Detached jobs: `costhook hook --JOB [ARGS]`, started by a hook (agents.runtime.spawn_detached)
# for work too long for the agent's critical path.


def catch_up_job(transcripts: list) -> None:
    """Claude transcripts whose backlog was too big for the hook itself."""
    from costhook.agents.claude.hook import catch_up

    catch_up(transcripts)


def dashboard_job(_args: list) -> None:
    """The vault dashboard after a session (when due; dashboard.note.refresh asks again)."""
    from costhook.agents import runtime
    from costhook.dashboard import note

    note.refresh(runtime.user_config())


def upgrade_job(_args: list) -> None:
    """Schema steps too long for a hook: opening the database migrates it."""
    from costhook.store import db

    db.connect().close()


def notify_job(_args: list) -> None:
    """Fired budget alerts to the configured webhooks and apprise targets."""
    from costhook import notify
    from costhook.agents import runtime

    notify.send_pending(runtime.open_db(), runtime.user_config().get("notify") or [])


def sync_job(_args: list) -> None:
    """After a session, when due (asked again here; the stamp is touched first, so sessions
    ending together start one): the sync folder, then the team ledger (push, pull). A
    failure is one line in errors.log."""
    from costhook import paths
    from costhook.agents import runtime

    cfg = runtime.user_config()
    if not runtime.sync_due(cfg):
        return
    stamp = paths.sync_stamp_file()
    paths.touch_private(stamp)
    os.utime(stamp, follow_symlinks=False)  # a planted symlink's target keeps its time
    team = cfg.get("team") or {}
    if team.get("folder"):
        from costhook.sync import folder

        folder.sync(runtime.open_db(), cfg, runtime.pricer())
    if os.environ.get("COSTHOOK_TEAM_URL") or team.get("url"):
        from costhook.cli.team import background_sync

        background_sync(cfg)


DETACHED_JOBS = {"--catch-up": catch_up_job, "--dashboard": dashboard_job, "--upgrade": upgrade_job, "--notify": notify_job,
                 "--sync": sync_job}


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
