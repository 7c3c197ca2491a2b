"""The vault dashboard: its numbers (the fixture of test_analytics, worked out by hand there),
regeneration that keeps the user's text, atomic writes under a lock, the SessionEnd refresh,
and (when Chromium and the render assets are present) the rendered page."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import COSTHOOK, acme_transcript, payload, run_hook
from test_analytics import NOW, S1, UTC, populate

from costhook.dashboard import note as dashboard
from costhook import paths
from costhook.store import db

ROOT = Path(__file__).parent.parent
CONFIG = """timezone = "UTC"

[[budgets]]
scope = "global"
period = "daily"
limit = 1
action = "warn"

[[budgets]]
scope = "global"
period = "monthly"
limit = 10
"""


@pytest.fixture
def conn(home, tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    c = db.connect()
    populate(c)
    return c


@pytest.fixture
def vault(tmp_path):
    v = tmp_path / "vault"
    (v / "notes").mkdir(parents=True)
    (v / "notes" / "mine.md").write_text("my own note\n")
    return v


def write(conn, vault, now=NOW, **kw):
    from costhook.config import load as config

    return dashboard.write(conn, config.load(), vault, now=now, tz=UTC, **kw)


def properties(text: str) -> dict:
    front = text.split("---\n")[1]
    return dict(line.split(": ", 1) for line in front.splitlines() if ": " in line and not line.startswith(" "))


def block(text: str, name: str) -> str:
    return re.search(rf"<!-- costhook:begin {name} -->\n(.*?)<!-- costhook:end {name} -->", text, re.S).group(1)


def test_note_numbers(conn, vault):
    path = write(conn, vault)
    assert path == vault / "costhook" / "Cost dashboard.md"
    text = path.read_text()
    props = properties(text)
    assert props["costhook_updated"] == "2026-11-20T12:00:00+00:00"
    assert props["cost_today_usd"] == "1.046" and props["cost_yesterday_usd"] == "0.195"
    assert props["cost_week_usd"] == "1.5125" and props["cost_month_usd"] == "2.0525" and props["cost_last_month_usd"] == "0.15"
    assert props["projected_month_usd"] == "4.591249997" and props["burn_rate_usd_per_hour"] == "0.087166667"
    # Daily $1 budget: $1.046 spent -> over; monthly $10: $2.05 -> ok.
    assert props["budget_status"] == "over" and props["budgets_over"] == "1" and props["budgets_warning"] == "0"
    assert props["anomalies_30d"] == "4"
    assert props["cache_hit_ratio_7d"] == str(round(240000 / 439000, 6)) and props["idle_share_7d"] == str(round(0.216 / 1.6925, 6))

    summary = block(text, "summary")
    assert "| Today (Fri 20 Nov) | **$1.05** | 5 |" in summary
    assert "| Last month | $0.15 | 1 |" in summary
    assert "On track for **$4.59** this month" in summary and "**$0.0872/hour**" in summary

    budgets = block(text, "budgets")
    assert "| `daily-global` | `██████████` 105% | $1.05 / $1.00 | $2.09 | over |" in budgets
    # Projections are linear in the period: daily 1.046 x 24/12 h = 2.092; monthly 2.0525 x 30/19.5 days = 3.158.
    assert "| `monthly-global` | `██░░░░░░░░` 21% | $2.05 / $10.00 | $3.16 | ok |" in budgets

    daily = block(text, "daily")
    bars = re.search(r"bar \[(.*)\]", daily).group(1).split(", ")
    assert len(bars) == 30 and bars[-3:] == ["0.0915", "0.195", "1.046"] and bars[-11] == "0.09"  # H10 on the 10th
    # The calendar week of Mon 16th: H16, H17, S3 ($0.0915), S2, S1 (today); Sat and Sun still to come.
    assert "| 16 Nov | $0.09 | $0.09 | $0.0915 | $0.195 | $1.05 |  |  | **$1.51** |" in daily

    boards = block(text, "leaderboards")
    assert f"| `{S1[:8]}` | alpha | Fri 20 Nov 09:00 | $1.05 | 62% |" in boards
    assert "| alpha | $1.14 | 67% | 7 |" in boards  # S1 (5 calls) + S3 (2) and "| Explore | $0.02 | 1.2% | 2 |" in boards

    tree = block(text, "subagents")
    assert f"**Session `{S1[:8]}`** (alpha) — $1.05, 5 calls" in tree
    assert "- main thread — $1.03 (98%) · 3 calls" in tree and "- **Explore** `ag1` — $0.021 (2.0%) · 2 calls" in tree

    tools = block(text, "tools")
    assert "| (reasoning/answer) | $0.686 | 41% | 8 |" in tools and "| `Read` | $0.68 | 40% | 1 |" in tools
    assert "MCP servers: **github** $0.039 (2.3%)" in tools

    cache = block(text, "cache")
    assert "Hit ratio **55%** · saved **$1.03** by cache reads · $1.01 spent on cache writes, of which **$0.1875** (26% of written tokens) never read." in cache

    anomalies = block(text, "anomalies")
    assert anomalies.count("> [!warning]") == 4
    assert f"> [!warning] Session `{S1[:8]}` started Fri 20 Nov 09:00 cost $1.05" in anomalies
    assert "> [!warning] **2026-11-20** (so far) cost $1.05\n> 9.9× the 7-day average of its kind ($0.1052, 7 days)." in anomalies

    idle = block(text, "idle")
    assert idle.startswith("## Idle cost, last 7 days\n\n**$0.216** (13% of $1.69) went to 2 of 8 turns that changed nothing; 1 of 7 sessions")
    assert "| `s2-0000-` | beta |" in idle

    assert "Sessions graded: **A** 2 · **B** 0 · **C** 5." in block(text, "efficiency")

    whatif = block(text, "whatif")
    assert "| project **alpha** | opus-4-5 → sonnet-4-5 | $1.03 | **$0.41** (40%) |" in whatif
    assert "| sub-agent **" not in whatif  # Explore runs on Haiku already: nothing cheaper to compare
    assert block(text, "cron").strip() == "" and block(text, "unpriced").strip() == ""


def test_regeneration_keeps_the_users_text(conn, vault):
    path = write(conn, vault)
    text = path.read_text()
    text = text.replace("tags:\n  - costhook", "tags:\n  - costhook\n  - money\nmood: calm")
    text = text.replace("<!-- costhook:end summary -->", "<!-- costhook:end summary -->\n\nMY NOTE: check the opus usage.")
    text = text.replace("## Budgets", "## Budgets\n\nthis line is inside a block and goes away")
    text += "\nA footer of my own.\n"
    path.write_text(text)
    later = NOW.replace(hour=23)
    write(conn, vault, now=later)
    again = path.read_text()
    props = properties(again)
    assert props["costhook_updated"] == "2026-11-20T23:00:00+00:00" and props["mood"] == "calm"
    assert "  - money" in again and again.count("costhook_updated") == 1
    assert "MY NOTE: check the opus usage." in again and again.rstrip().endswith("A footer of my own.")
    assert "this line is inside a block" not in again
    assert again.count("<!-- costhook:begin summary -->") == 1 and again.count("<!-- costhook:end whatif -->") == 1
    assert again.index("MY NOTE") < again.index("<!-- costhook:begin budgets -->")


def test_a_missing_block_comes_back_after_its_neighbour(conn, vault):
    path = write(conn, vault)
    text = path.read_text()
    start, end = text.index("<!-- costhook:begin cache -->"), text.index("<!-- costhook:end cache -->") + len("<!-- costhook:end cache -->")
    path.write_text(text[:start] + "(I deleted the cache section)" + text[end:])
    write(conn, vault)
    again = path.read_text()
    assert again.count("<!-- costhook:begin cache -->") == 1
    assert again.index("<!-- costhook:end tools -->") < again.index("<!-- costhook:begin cache -->") < again.index("(I deleted")


def test_written_atomically_and_nothing_else_touched(conn, vault):
    before = sorted(p.relative_to(vault) for p in vault.rglob("*"))
    path = write(conn, vault)
    after = sorted(p.relative_to(vault) for p in vault.rglob("*"))
    assert set(after) - set(before) == {Path("costhook"), Path("costhook/Cost dashboard.md")}
    assert (vault / "notes" / "mine.md").read_text() == "my own note\n"
    inode = path.stat().st_ino
    write(conn, vault)
    assert path.stat().st_ino != inode  # replaced by a rename, never rewritten in place
    assert not [p for p in vault.rglob("*") if "costhook-tmp" in p.name]


def test_waits_for_the_lock(conn, vault):
    from filelock import FileLock

    paths.ensure_private_dir(paths.home())
    with FileLock(str(dashboard.lock_path())):
        with pytest.raises(dashboard.DashboardError, match="another costhook"):
            write(conn, vault, lock_timeout=0.2)


def test_bad_note_paths(conn, vault):
    for note in ("../outside.md", "/abs/olute.md", "notes/x.txt"):
        with pytest.raises(dashboard.DashboardError):
            dashboard.write(conn, {}, vault, note, now=NOW, tz=UTC)
    with pytest.raises(dashboard.DashboardError, match="not a directory"):
        dashboard.write(conn, {}, vault / "nope", now=NOW, tz=UTC)


def test_cli(conn, vault, tmp_path):
    proc = subprocess.run([COSTHOOK, "dashboard", "--vault", str(vault), "--note", "Costs.md", "--now", "2026-11-20T12:00:00Z"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {vault / 'Costs.md'}"
    assert "cost_today_usd: 1.046" in (vault / "Costs.md").read_text()
    proc = subprocess.run([COSTHOOK, "dashboard"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no vault" in proc.stderr
    with open(tmp_path / "config.toml", "a") as f:
        f.write(f'\n[dashboard]\nvault = "{vault}"\nnote = "From config.md"\n')
    proc = subprocess.run([COSTHOOK, "dashboard", "--now", "2026-11-20T12:00:00Z"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (vault / "From config.md").exists()


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_refreshed_at_session_end_throttled(home, tmp_path, claude_dir, vault):
    with open(tmp_path / "config.toml", "w") as f:
        f.write(f'[dashboard]\nvault = "{vault}"\nrefresh_on_session_end = true\nmin_interval_seconds = 3600\n')
    transcript = str(acme_transcript(claude_dir))
    note = vault / "costhook" / "Cost dashboard.md"
    started = time.monotonic()
    proc = run_hook(payload("SessionEnd", transcript_path=transcript))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b""
    assert elapsed < 1.5  # the note is written by a detached process, not by the hook
    assert wait_for(note.exists), "the detached refresh did not write the note"
    assert wait_for(lambda: "cost_month_usd" in note.read_text())
    first = note.stat().st_mtime_ns
    run_hook(payload("SessionEnd", transcript_path=transcript))  # within the interval: no second refresh
    time.sleep(2)
    assert note.stat().st_mtime_ns == first
    assert not (home / "errors.log").exists() or "dashboard" not in (home / "errors.log").read_text()


def test_not_refreshed_unless_configured(home, tmp_path, claude_dir, vault):
    with open(tmp_path / "config.toml", "w") as f:
        f.write(f'[dashboard]\nvault = "{vault}"\n')
    run_hook(payload("SessionEnd", transcript_path=str(acme_transcript(claude_dir))))
    time.sleep(1.5)
    assert not (vault / "costhook").exists()


def test_session_ids_are_their_shortest_unique_prefix(conn, vault):
    """Tables show a session by the fewest characters (8 at least) no other session starts
    with; the CLI takes that prefix back."""
    from costhook.pricing import prices as pricing
    from costhook.pricing.prices import pricer
    from costhook.store import writes
    from test_analytics import SONNET, call

    twin = "s1-0000-aaZZ"  # shares 10 characters with S1, long before the dashboard's windows
    with db.transaction(conn):
        writes.merge_requests(conn, {"z1": call("z1", twin, "2026-09-01T10:00:00.000Z", SONNET, out=10)},
                              pricer(pricing.load_table()))
    text = write(conn, vault).read_text()
    assert f"| `{S1[:11]}` | alpha |" in block(text, "leaderboards")
    assert f"**Session `{S1[:11]}`**" in block(text, "subagents")
    assert "| `s2-0000-` | beta |" in block(text, "idle")  # no other session starts with s2-0000-
    proc = subprocess.run([COSTHOOK, "tree", S1[:11], "--format", "json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f'"id": "{S1}"' in proc.stdout


def test_chart_source(conn, vault):
    """The daily chart as markdown: its own colours, month names on the axis, exact values,
    and a second series that covers the strip Mermaid draws under a bar of 0."""
    from costhook.dashboard import sections

    daily = block(write(conn, vault).read_text(), "daily")
    init = re.search(r"^%%\{init: (.*)\}%%$", daily, re.M)
    assert init, "the chart must carry its own theme"
    settings = json.loads(init.group(1))
    assert settings["theme"] == "base"
    assert settings["themeVariables"]["xyChart"]["plotColorPalette"] == f"{sections.CHART_BAR}, {sections.CHART_BACKGROUND}"
    labels = json.loads("[" + re.search(r"x-axis \[(.*)\]", daily).group(1) + "]")
    assert labels[:3] == ["Oct", "23", "24"] and labels[9:12] == ["31", "Nov", "2"]  # 2026-10-22 .. 2026-11-20
    series = re.findall(r"^    bar \[(.*)\]$", daily, re.M)
    assert len(series) == 2 and set(series[1].split(", ")) == {"0"}
    assert series[0].split(", ")[-3:] == ["0.0915", "0.195", "1.046"] and series[0].split(", ")[0] == "0"
    # February: 30 days show the 1st-28th and then the 1st again; Mermaid would merge equal labels.
    feb = sections._day_labels([f"2027-02-{d:02d}" for d in range(1, 29)] + ["2027-03-01", "2027-03-02"])
    assert feb[0] == "Feb" and feb[28] == "Mar" and len(set(feb)) == 30 and feb[29].rstrip("\u200b") == "2"


def test_this_year_all_time_and_spend_per_model_by_month(conn, vault):
    """What a reader looks for first: the year's and all-time spend, and where the money went
    month by month. Oct: o1 (Sonnet, 10,000 output tokens = $0.15). Nov: Sonnet c1 $0.195 + S3
    $0.0915 + H10..H17 8 x $0.09 = $1.0065; Opus S1 main thread $1.025; Haiku S1's Explore $0.021."""
    from costhook.views import spend
    from test_analytics import HAIKU

    text = write(conn, vault).read_text()
    props = properties(text)
    assert props["cost_year_usd"] == "2.2025" and props["cost_all_time_usd"] == "2.2025"
    summary = block(text, "summary")
    assert "| This year (2026) | $2.20 | 17 |" in summary and "| All time | **$2.20** | 17 |" in summary
    models = block(text, "models")
    assert models.startswith("## Spend per model, last 6 months\n")  # from October, the first month with spend
    assert "| Month | sonnet-4-5 | opus-4-5 | haiku-4-5 | Total |" in models
    assert "| Oct 2026 | $0.15 | · | · | **$0.15** |" in models
    assert "| Nov 2026 | $1.01 | $1.03 | $0.021 | **$2.05** |" in models
    assert "Sep 2026" not in models
    two = spend.models_by_month(conn, NOW, UTC, top_models=2)
    assert two["models"] == ["claude-sonnet-4-5-20250929", "claude-opus-4-5-20251101"] and HAIKU not in two["rows"][1]["models"]
    assert [r["other_usd"] for r in two["rows"]] == [0.0, 0.021] and [r["total_usd"] for r in two["rows"]] == [0.15, 2.0525]


def test_empty_sections_read_like_the_cli(home, vault):
    """On a database without calls every section says what the CLI's view of the same
    period says when it is empty, in the same words."""

    def cli(*args):
        proc = subprocess.run([COSTHOOK, *args, "--now", "2026-11-20T12:00:00Z"] if args[0] != "budget" else [COSTHOOK, *args],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().split("\n")[0]

    c = db.connect()
    text = write(c, vault).read_text()
    body = {name: block(text, name).split("\n\n", 1)[1].strip() for name in
            ("budgets", "daily", "models", "leaderboards", "subagents", "tools", "cache", "anomalies", "idle", "efficiency", "whatif")}
    week = cli("top", "--period", "7d")
    assert week == "No spend in the last 7 days."
    for name in ("leaderboards", "subagents", "tools", "cache", "idle", "efficiency", "whatif"):
        assert body[name] == week, name
    assert body["daily"] == cli("top", "--period", "30d") == "No spend in the last 30 days."
    assert body["models"] == "No spend in the last 6 months."
    assert body["anomalies"] == cli("anomalies") == "No anomalies in the last 30 days."
    assert body["budgets"].replace("`", "") == cli("budget", "list") + "."
    assert "| This year (2026) | $0.00 | 0 |" in block(text, "summary") and "| All time | **$0.00** | 0 |" in block(text, "summary")


def _render_skip_reason() -> str | None:
    if shutil.which("chromium") is None:
        return "no chromium on PATH (.ci/run installs Debian's chromium with apt-get when it can)"
    if not (ROOT / ".cache" / "render" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js").exists():
        return "no .cache/render (python scripts/render_dashboard.py --install-assets: npm mermaid@11 markdown-it@14)"
    return None


def png_pixels(path: Path) -> tuple[int, int, list]:
    """A non-interlaced 8-bit RGB/RGBA PNG (what Chromium writes) as (width, height, rows of RGB tuples)."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0
    step = 4 if colour == 6 else 3
    raw, stride, rows, previous = zlib.decompress(idat), width * step, [], bytearray(width * step)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], (previous[i - step] if i >= step else 0)
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append([tuple(line[x * step:x * step + 3]) for x in range(width)])
        previous = line
    return width, height, rows


@pytest.mark.skipif(_render_skip_reason() is not None, reason=_render_skip_reason() or "")
def test_rendered_page(tmp_path):
    """The example dashboard as Obsidian's default light theme draws it (Mermaid's default
    theme, a 700 px note), looked at: the chart's bars in its own colour, one bar per day
    with spend and none for a $0 day, month names under the axis, no table row on two lines."""
    from costhook.dashboard import sections

    out = tmp_path / "rendered"
    out.mkdir()
    shutil.copy(ROOT / "examples" / "dashboard" / "config.toml", out / "config.toml")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_dashboard.py"), "--out", str(out), "--check",
                           "--height", "1200"], capture_output=True, text=True, timeout=300, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert (out / "screenshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = (out / "dom.html").read_text()
    geometry = json.loads(re.search(r'<script type="application/json" id="geometry">(.*?)</script>', dom, re.S).group(1))
    note = (out / "Cost dashboard.md").read_text()
    costs = [float(v) for v in re.search(r"^    bar \[(.*)\]$", note, re.M).group(1).split(", ")]
    assert len(costs) == 30 and costs.count(0) == 28  # the example: spend on its last two days only

    # What Mermaid drew: 30 bars in the chart's colour, month names among the axis labels.
    assert [b["fill"] for b in geometry["bars"]] == [sections.CHART_BAR] * 30
    assert {"Oct", "Nov"} <= set(geometry["x_labels"]) and len(geometry["x_labels"]) == 30
    # No table row wraps: each is one line high.
    tall = [r for r in geometry["rows"] if r["h"] > 1.4 * geometry["line_height"]]
    assert not tall, f"table rows on more than one line: {tall}"

    # The picture of the chart alone: columns holding the bar colour are exactly the days with spend.
    width, height, rows = png_pixels(out / "chart.png")
    colour = tuple(int(sections.CHART_BAR[i:i + 2], 16) for i in (1, 3, 5))
    columns = sorted({x for row in rows for x, rgb in enumerate(row) if rgb == colour})
    runs = []
    for x in columns:
        if runs and x == runs[-1][1] + 1:
            runs[-1][1] = x
        else:
            runs.append([x, x])
    assert len(runs) == sum(1 for c in costs if c > 0), f"bars seen at columns {runs}"
    tallest = max(sum(1 for row in rows if row[x] == colour) for x in columns)
    assert tallest > 100  # the $1.57 day on a $2 axis


# ------------------------------------------------------------ hostile vault paths ----


def dashboard_cli(vault, *args, timeout=60):
    return subprocess.run([COSTHOOK, "dashboard", "--vault", str(vault), "--now", "2026-11-20T12:00:00Z", *args],
                          capture_output=True, text=True, timeout=timeout)


def refused(proc, *needles):
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_a_symlink_planted_as_the_note_is_neither_read_nor_replaced(conn, vault, tmp_path):
    """Read, its target's text was kept as 'the user's text' and written into the note, which
    a syncing vault then carries off the machine."""
    secret = tmp_path / "id_secret"
    secret.write_text("PRIVATE KEY MATERIAL\n")
    (vault / "costhook").mkdir()
    link = vault / "costhook" / "Cost dashboard.md"
    link.symlink_to(secret)
    refused(dashboard_cli(vault), "is a symlink")
    assert link.is_symlink() and os.readlink(link) == str(secret)
    assert secret.read_text() == "PRIVATE KEY MATERIAL\n"
    assert not [p for p in vault.rglob("*") if p.is_file() and not p.is_symlink() and "PRIVATE" in p.read_text()]


def test_a_fifo_as_the_note_is_refused_at_once(conn, vault):
    (vault / "costhook").mkdir()
    os.mkfifo(vault / "costhook" / "Cost dashboard.md")
    refused(dashboard_cli(vault, timeout=20), "not a regular file")  # it waited for a writer for ever


@pytest.mark.parametrize("folder", ["costhook", "."])
def test_a_folder_others_can_write_to_is_refused(conn, vault, folder):
    """Another user could plant a symlink at the note or its temporary file there."""
    (vault / folder).mkdir(exist_ok=True)
    os.chmod(vault / folder, 0o777)
    refused(dashboard_cli(vault, *(("--note", "Costs.md") if folder == "." else ())), "writable by others")
    assert not [p for p in vault.rglob("*.md") if p.name != "mine.md"]


def test_a_symlink_at_the_temporary_name_is_not_followed(conn, vault, tmp_path):
    """A stale link where the note's temporary file goes (its name is predictable)."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o600)
    (vault / "costhook").mkdir()
    (vault / "costhook" / f".Cost dashboard.md.{os.getpid()}.costhook-tmp").symlink_to(victim)
    path = write(conn, vault)
    assert victim.read_text() == "precious\n" and victim.stat().st_mode & 0o777 == 0o600
    assert not path.is_symlink() and "cost_today_usd" in path.read_text()


def test_a_vault_that_is_a_symlink_of_the_users_is_written(conn, vault, tmp_path):
    (tmp_path / "Obsidian").symlink_to(vault)
    proc = dashboard_cli(tmp_path / "Obsidian")
    assert proc.returncode == 0, proc.stderr
    assert "cost_today_usd" in (vault / "costhook" / "Cost dashboard.md").read_text()
