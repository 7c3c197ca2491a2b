"""`costhook sync`: share calls with your other machines through a sync folder."""

import sqlite3

import click

from costhook.cli.common import db_option, emit, load_config, open_store, price_table
from costhook.text import term_text


@click.command()
@click.option("--watch", is_flag=True, help="Keep syncing with the team server every [team] min_interval_seconds "
              "(for a systemd or launchd unit).")
@click.option("--dry-run", is_flag=True, help="Say what would be pushed to the team server; send and change nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress, only the summary.")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="The sync folder's summary for people, or JSON for programs.")
def sync(watch, dry_run, quiet, db_path, fmt):
    """Share calls beyond this machine: export and import through the [team] folder, push to
    and pull from the team server ([team] url), whichever is configured (both: the folder first)."""
    from costhook.cli.team import server_sync
    from costhook.sync import folder
    from costhook.team import link

    cfg = load_config()
    with_folder, with_server = folder.settings(cfg) is not None, link.settings(cfg) is not None
    if not with_folder and not with_server:
        raise click.ClickException("nothing to sync with: under [team] in the config, add `folder = \"~/Sync/costhook\"` "
                                   "(a folder Syncthing, Dropbox or iCloud keeps in step) or `url = ...` (a team "
                                   "server; or COSTHOOK_TEAM_URL): see docs/team.md")
    if with_folder and not dry_run:
        folder_sync(cfg, db_path, fmt)
    if with_server:
        server_sync(cfg, watch, dry_run, quiet, db_path)
    elif watch or dry_run:
        raise click.UsageError("--watch and --dry-run are for a team server ([team] url)")


def folder_sync(cfg: dict, db_path, fmt: str) -> None:
    """The sync folder's part: this machine's new calls out, the other machines' in (idempotent)."""
    from costhook.pricing import prices
    from costhook.sync import folder

    conn = open_store(db_path, create=True)
    try:
        summary = folder.sync(conn, cfg, prices.pricer(price_table(cfg)))
    except folder.SyncError as exc:
        raise click.ClickException(str(exc))
    except sqlite3.Error as exc:  # busy past the timeout, a full disk: what was committed stays, run it again
        raise click.ClickException(f"sync stopped: database: {exc}; what it wrote stays, run `costhook sync` again")
    emit(fmt, summary, render)


def render(summary: dict) -> str:
    out = [term_text(f"sync folder {summary['folder']} (this machine: {summary['machine']}, "
                     f"user: {summary['user']})")]
    sent = summary["exported"]
    if sent["segments"]:
        again = f" ({sent['updated']:,} updated)" if sent["updated"] else ""
        out.append(f"exported {count(sent['calls'], 'call')}{again} in {count(sent['segments'], 'segment')}")
    else:
        out.append("exported nothing: no new calls")
    got = summary["imported"]
    if got["segments"]:
        out.append(term_text(f"imported {count(got['segments'], 'segment')} from {', '.join(got['machines'])}: "
                             f"{count(got['calls'], 'call')}, {count(got['changed'], 'row')} new or updated"))
        if summary["machine"] in got["machines"]:
            out.append(term_text(f"(segments in {summary['machine']}/ that this database did not write: an earlier "
                                 f"database of this machine, or another machine also named {summary['machine']!r})"))
    else:
        out.append("imported nothing new")
    if summary["duplicates"]:
        copies = "1 copy" if summary["duplicates"] == 1 else f"{summary['duplicates']} copies"
        out.append(f"{copies} of segments already imported, skipped")
    for item in summary["skipped"]:
        out.append(term_text(f"skipped {item['path']}: {item['reason']}"))
    return "\n".join(out)


def count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("s" if n != 1 else "")
