"""Names from outside (project folders, skills, sub-agent types, session, model, tool and
cron job names) reach the note, CSV, markdown and the terminal escaped: one rule per
output, in costhook/text.py (docs/reliability.md, "Escaping: one rule per output").

Each case runs the real thing: calls written with costhook's own writers, `costhook`
subprocesses (on a pseudo-terminal where click would otherwise strip escapes), and the real
dashboard write over a note that holds the user's text."""

import csv
import io
import json
import os
import pty
import re
import subprocess

import pytest
from conftest import COSTHOOK
from test_analytics import NOW, OPUS, SONNET, UTC, call
from test_openclaw_views import NIGHTLY, history  # noqa: F401  (the fixture)

from costhook.dashboard import note as dashboard
from costhook.pricing import prices
from costhook.store import db, writes

MARKER = "<!-- costhook:begin tools -->"
IMG = '<img src="https://evil.example/x.png">'
FORMULA = '=HYPERLINK("https://evil.example","click")'
TITLE = "\x1b]0;pwned\x07"  # OSC: retitle the terminal window
CLEAR = "\x1b[2J"  # CSI: clear the screen
PIPE = "a|b|c"


def record(key, *, project="/p/alpha", skill=None, agent_type=None, agent_id=None, model=SONNET, session="s1-0000-aaaa",
           tools=(), ts="2026-11-20T09:00:00.000Z"):
    row = call(key, session, ts, model, inp=1000, out=1000, project=project, tools=tools, agent_id=agent_id,
               agent_type=agent_type)
    row["skill"] = skill
    return row


def store(rows) -> None:
    conn = db.connect()
    with db.transaction(conn):
        writes.merge_requests(conn, {r["key"]: dict(r) for r in rows}, prices.pricer(prices.load_table()))
    conn.close()


def run(*args) -> str:
    proc = subprocess.run([COSTHOOK, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def run_on_tty(*args, check=True) -> str:
    """`costhook ARGS` with its output on a pseudo-terminal, as a person sees it (click
    strips nothing there)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([COSTHOOK, *args], stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "200"})
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    status = proc.wait(timeout=60)
    assert status == 0 or not check, b"".join(chunks)
    return b"".join(chunks).decode("utf-8", "replace")


def no_controls(text: str) -> bool:
    """Nothing a terminal acts on, other than the line breaks of the output itself."""
    return not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", text)


def columns(line: str) -> int:
    """The cells of a markdown table row as GitHub/Obsidian split it (`\\x` is one unit)."""
    return re.sub(r"\\.", "", line).count("|") - 1


# ------------------------------------------------------------------ the note --------


@pytest.fixture
def vault(tmp_path):
    (tmp_path / "vault").mkdir()
    return tmp_path / "vault"


def write_note(vault):
    from costhook.config import load as config

    conn = db.connect()
    try:
        return dashboard.write(conn, config.load(), vault, now=NOW, tz=UTC)
    finally:
        conn.close()


def test_a_marker_in_a_project_name_does_not_delete_the_users_text(home, vault):
    store([record("a1", project="/p/" + MARKER), record("a2", project="/p/beta", tools=["Read"])])
    path = write_note(vault)
    text = path.read_text()
    mine = "\n\nMy notes between the blocks: keep them.\n\n"
    end = dashboard.END.format("leaderboards")
    text = text.replace(end, end + mine, 1)
    path.write_text(text)
    write_note(vault)
    again = path.read_text()
    assert "My notes between the blocks: keep them." in again
    assert again.count(MARKER) == 1  # the block's own; the name is written as text, never as a comment
    assert again.count(dashboard.BEGIN.format("tools")) == 1


def test_marker_text_of_the_users_own_is_left_alone(home, vault):
    """Markers count only as whole lines in begin/end pairs: the user may quote one."""
    store([record("a1"), record("a2", tools=["Read"])])
    path = write_note(vault)
    quoted = f"I quote `{MARKER}` here, and an end without a begin:\n\n{dashboard.END.format('cache')}\n"
    text = path.read_text()
    text = text.replace(dashboard.BEGIN.format("summary"), quoted + "\n" + dashboard.BEGIN.format("summary"), 1)
    text += "\nMy closing words.\n"
    path.write_text(text)
    write_note(vault)
    again = path.read_text()
    assert quoted in again and again.endswith("My closing words.\n")
    assert again.splitlines().count(dashboard.BEGIN.format("tools")) == 1


def test_html_links_and_embeds_in_names_stay_text_in_the_note(home, vault):
    store([record("a1", project="/p/" + IMG, skill=IMG, agent_type=IMG, agent_id="ag1", tools=["Read"]),
           record("a2", project="/p/[[secret]]", skill="![[secret.md]]", agent_type="[x](https://evil.example)",
                  agent_id="ag2", model=OPUS, tools=["mcp__" + IMG + "__do", "`Bash`"]),
           record("a3", session="`x|y`<img", skill="plain"),
           ])
    text = write_note(vault).read_text()
    assert "<img" not in text and "[[secret" not in text
    assert not re.search(r"(?<!\\)\]\(https://evil", text)  # `\](` is text, `](` a link
    assert "&lt;img src=\"https://evil.example/x.png\"&gt;" in text  # still readable
    for table in re.findall(r"((?:^\|.*\n)+)", text, re.M):
        widths = {columns(line) for line in table.splitlines()}
        assert len(widths) == 1, table


# ------------------------------------------------------------------ report ----------


def test_csv_cells_are_not_formulas(home):
    store([record("a1", skill=FORMULA), record("a2", skill="-1+2"), record("a3", skill="@SUM(A1)"),
           record("a4", skill="plain")])
    rows = list(csv.reader(io.StringIO(run("report", "--by", "skill", "--format", "csv"))))
    keys = [r[0] for r in rows[1:-1]]
    assert "'" + FORMULA in keys and "'-1+2" in keys and "'@SUM(A1)" in keys and "plain" in keys
    assert not any(k.startswith(("=", "+", "-", "@")) for k in keys)
    assert all(re.fullmatch(r"-?[0-9.]+", c) for r in rows[1:] for c in r[1:])  # numbers stay numbers


def test_a_pipe_in_a_key_does_not_add_markdown_columns(home):
    store([record("a1", project="/p/" + PIPE), record("a2", model="model|x`y<b>")])
    for by in ("project", "model"):
        out = run("report", "--by", by, "--format", "markdown")
        table = [line for line in out.splitlines() if line.startswith("|")]
        assert len({columns(line) for line in table}) == 1, out
        assert "<b>" not in out


@pytest.mark.parametrize("args", [
    ("report", "--by", "skill"), ("report", "--by", "project"), ("report", "--by", "agent"),
    ("top", "--by", "skill", "--period", "all", "--now", "2026-11-20T12:00:00Z"),
    ("top", "--by", "project", "--period", "all", "--now", "2026-11-20T12:00:00Z"),
    ("top", "--by", "session", "--period", "all", "--now", "2026-11-20T12:00:00Z"),
    ("tools", "--period", "all", "--now", "2026-11-20T12:00:00Z"),
    ("tree", "s1-0000-aaaa"),
    ("report", "--by", "model", "--format", "csv"),
    ("report", "--by", "model", "--format", "markdown"),
    ("doctor",),
], ids=lambda a: " ".join(a[:3]))
def test_terminal_escapes_are_shown_not_obeyed(home, args):
    hostile = TITLE + CLEAR + "\x9b31m\x7f"
    store([record("a1", project="/p/" + hostile, skill=hostile, agent_type=hostile, agent_id="ag1",
                  tools=["mcp__" + hostile + "__do", hostile]),
           record("a2", skill="plain", model="unpriced-" + hostile),
           record("a3", session="s1-0000-aaaa" + hostile)])
    out = run_on_tty(*args, check=args[0] != "doctor")  # doctor exits 1: no hooks installed here
    assert no_controls(out), repr(out)
    assert "\\x1b" in out and "pwned" in out, repr(out)  # shown, as a visible escape


# ------------------------------------------------------------------ cron, budgets -----


def test_cron_job_names_on_the_terminal(home, history):  # noqa: F811
    jobs = history / "cron" / "jobs.json"
    data = json.loads(jobs.read_text())
    data["jobs"][0]["name"] = "Nightly " + TITLE + CLEAR
    jobs.write_text(json.dumps(data))
    run("import", "--openclaw-dir", str(history))
    for args in (("cron", "--tz", "UTC"), ("cron", NIGHTLY, "--tz", "UTC")):
        out = run_on_tty(*args)
        assert no_controls(out) and "Nightly \\x1b]0;pwned\\x07" in out, repr(out)


def test_budget_names_on_the_terminal(home, tmp_path):
    (tmp_path / "config.toml").write_text(
        '[[budgets]]\nid = "evil\\u001b]0;pwned\\u0007"\nscope = "skill:x\\u001b[2J"\nperiod = "daily"\nlimit = 1\n')
    store([record("a1", skill="x" + CLEAR)])
    for args in (("budget", "list"), ("budget", "status")):
        out = run_on_tty(*args)
        assert no_controls(out) and "\\x1b]0;pwned\\x07" in out, repr(out)


# ------------------------------------------------------------------ invisible characters -----

# Characters that show nothing yet change what a name is: two projects that read the same,
# a tool name carrying hidden ASCII (tag characters), a BOM, a line separator.
INVISIBLE = "pay\u200bpal\u2060\ufeff\u180e\u2028\u2029\u061c\U000e0041\U000e0042"
ORDINARY = "café 👨\u200d👩\u200d👧 می\u200cخواهم"  # joiners shape ordinary names: kept


def invisible(text: str) -> list:
    return re.findall("[\u061c\u180e\u200b\u2028\u2029\u2060-\u2064\ufeff\U000e0000-\U000e007f]", text)


def test_invisible_characters_are_shown_not_hidden(home, vault):
    store([record("a1", project="/p/" + INVISIBLE, skill=INVISIBLE, tools=[INVISIBLE]),
           record("a2", project="/p/" + ORDINARY, model="unpriced-" + INVISIBLE)])
    outputs = {" ".join(args): run_on_tty(*args) for args in (
        ("report", "--by", "project"), ("report", "--by", "skill", "--format", "csv"),
        ("report", "--by", "project", "--format", "markdown"),
        ("tools", "--period", "all", "--now", "2026-11-20T12:00:00Z"))}
    outputs["note"] = write_note(vault).read_text()
    for name, out in outputs.items():
        assert not invisible(out), (name, out)
        assert "pay\\u200bpal" in out, (name, out)  # shown, as a visible escape
    assert ORDINARY in outputs["report --by project"] and ORDINARY in outputs["note"]


def raw_hostile(text: str) -> list:
    """What JSON may hold only as a `\\u` escape on a terminal: DEL, C1, bidi, invisible."""
    return re.findall("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text) + invisible(text)


@pytest.mark.parametrize("args", [
    ("top", "--by", "session", "--period", "all"), ("top", "--by", "skill", "--period", "all"),
    ("tree", "s1-0000-aaaa"), ("tools", "--period", "all"), ("whatif", "--by", "skill"),
    ("summary",), ("report", "--by", "skill"), ("budget", "list"),
], ids=lambda a: " ".join(a[:3]))
def test_json_holds_hostile_names_as_escapes(home, args):
    """JSON keeps every name exactly, and a terminal it is printed on still sees no C1
    control, bidi override or invisible character (json escapes only C0 by itself)."""
    hostile = "x\x9b31m\x7f\u202eevil" + INVISIBLE
    store([record("a1", project="/p/" + hostile, skill=hostile, session="s1-0000-aaaa" + hostile, model=OPUS),
           record("a2", skill="plain")])
    out = run(*args, "--format", "json", *(() if args[0] in ("report", "budget") else ("--now", "2026-11-20T12:00:00Z")))
    assert not raw_hostile(out), out
    if args[:3] == ("top", "--by", "skill"):
        assert hostile in [r["key"] for r in json.loads(out)["rows"]]


def test_cron_json_holds_hostile_names_as_escapes(home, history):  # noqa: F811
    jobs = history / "cron" / "jobs.json"
    data = json.loads(jobs.read_text())
    data["jobs"][0]["name"] = "Nightly \x9b2J\u202e" + INVISIBLE
    jobs.write_text(json.dumps(data))
    run("import", "--openclaw-dir", str(history))
    out = run("cron", "--tz", "UTC", "--format", "json")
    assert not raw_hostile(out), out
    assert data["jobs"][0]["name"] in [c["job_name"] for c in json.loads(out)["crons"]]


@pytest.mark.parametrize("args", [("tree", "s1-"), ("report", "--session", "s1-"), ("tools", "--session", "s1-")],
                         ids=lambda a: " ".join(a))
def test_an_ambiguous_session_prefix_names_the_sessions_escaped(home, args):
    """The usage error lists the sessions a prefix matches: their ids come from transcripts."""
    store([record("a1", session="s1-aaaa" + TITLE + CLEAR), record("a2", session="s1-bbbb\u202e")])
    out = run_on_tty(*args, check=False)
    assert "several sessions" in out and no_controls(out) and "\u202e" not in out, repr(out)
    assert "s1-aaaa\\x1b]0;pwned\\x07" in out, repr(out)


def test_a_hash_in_a_name_adds_no_tag_to_the_vault(home, vault):
    """Obsidian reads `#word` after a space as a tag, anywhere in the note: a name would file
    the dashboard under the user's own tags (#todo, #urgent) and into their tag queries."""
    store([record("a1", project="/p/#todo", agent_type="#urgent x", agent_id="ag1", tools=["#mcp"]),
           record("a2", project="/p/beta", model="#unpriced")])
    text = write_note(vault).read_text()
    body = text.split("\n---\n", 1)[1]
    assert not re.search(r"(?:^|\s)#(?:todo|urgent|mcp|unpriced)", body), body
    assert "\\#todo" in body  # still readable: `\#` shows as `#`
