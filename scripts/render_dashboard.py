"""Render the example dashboard and take a screenshot of it, as a reader would see it.

    python scripts/render_dashboard.py [--out examples/dashboard] [--no-screenshot]

1. imports examples/claude into a scratch database (with examples/dashboard/config.toml:
   a time zone and two budgets), fires the budgets' alerts as the hooks would;
2. writes the note with `costhook dashboard` logic into OUT/Cost dashboard.md, as of
   2026-11-19 18:00 UTC (the example transcripts' last day);
3. renders it to HTML the way Obsidian shows it (properties, callouts, Mermaid charts)
   with markdown-it and Mermaid, offline, from .cache/render/node_modules
   (`npm install --prefix .cache/render mermaid@11 markdown-it@14`, done on first use);
4. takes a headless Chromium screenshot: OUT/screenshot.png; with --check also OUT/dom.html
   (the page after Mermaid ran, with the measured chart bars, axis labels and table rows)
   and OUT/chart.png (the daily chart alone), which tests/test_dashboard.py looks at.

Needs Chromium (`apt-get install chromium`) and npm for step 3-4; steps 1-2 need neither.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / ".cache" / "render" / "node_modules"
NOW = datetime(2026, 11, 19, 18, 0, tzinfo=timezone.utc)
NOTE = "Cost dashboard.md"


def build_note(out: Path, now: datetime = NOW) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="costhook-example-"))
    os.environ["COSTHOOK_HOME"] = str(scratch)
    os.environ["COSTHOOK_DB"] = str(scratch / "costhook.db")
    config = out / "config.toml"  # else the example's (a COSTHOOK_CONFIG naming no file is an error)
    os.environ["COSTHOOK_CONFIG"] = str(config if config.exists() else ROOT / "examples" / "dashboard" / "config.toml")
    from costhook.pricing.prices import pricer
    from costhook import budgets, timeframe
    from costhook.config import load as config
    from costhook.dashboard import note as dashboard
    from costhook.agents.claude import importer
    from costhook.agents.claude import ingest
    from costhook.pricing import prices as pricing
    from costhook.views import report as reports
    from costhook.store import db

    cfg = config.load()
    conn = db.connect()
    table = pricing.load_table(cfg.get("prices"))
    importer.import_claude(conn, [ROOT / "examples" / "claude"], price=pricer(table))
    tz = timeframe.local_zone(cfg.get("timezone"))
    latest = conn.execute("SELECT session_id FROM requests ORDER BY timestamp DESC LIMIT 1").fetchone()[0]
    budgets.check(conn, cfg.get("budgets", []), budgets.Context(session_id=latest), now=now, tz=tz)  # alerts, as the hooks fire them
    (out / NOTE).unlink(missing_ok=True)
    path = dashboard.write(conn, cfg, out, NOTE, now=now, tz=tz, table=table)
    shutil.rmtree(scratch, ignore_errors=True)
    return path


def ensure_assets() -> None:
    if (ASSETS / "mermaid" / "dist" / "mermaid.min.js").exists() and (ASSETS / "markdown-it" / "dist" / "markdown-it.min.js").exists():
        return
    subprocess.run(["npm", "install", "--prefix", str(ASSETS.parent), "--no-audit", "--no-fund", "mermaid@11", "markdown-it@14"],
                   check=True)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Cost dashboard</title>
<style>
  :root { --bg:#ffffff; --fg:#222326; --muted:#6b6f76; --line:#e3e5e8; --accent:#7c5cff; --code:#f4f4f6; }
  body { background:var(--bg); color:var(--fg); font:16px/1.5 "Inter","DejaVu Sans",system-ui,sans-serif; margin:0; }
  main { max-width: 700px; margin: 0 auto; padding: 28px 40px 60px; }  /* Obsidian's readable line length */
  h1 { font-size: 30px; margin: 8px 0 4px; } h2 { font-size: 21px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
  p em, p > em { color: var(--muted); }
  table { border-collapse: collapse; margin: 8px 0 12px; }
  th, td { border: 1px solid var(--line); padding: 4px 10px; } th { background: #f7f7f9; text-align: left; }
  code { background: var(--code); border-radius: 4px; padding: 1px 4px; font: 13px "DejaVu Sans Mono", monospace; }
  td code { background: none; padding: 0; color: var(--accent); letter-spacing: -1px; }
  .props { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin: 0 0 18px; font-size: 13px; }
  .props .title { color: var(--muted); font-weight: 600; margin-bottom: 4px; }
  .props table { margin: 0; border: none; } .props td { border: none; padding: 1px 12px 1px 0; }
  .props td:first-child { color: var(--muted); }
  .callout { border-radius: 8px; padding: 10px 14px; margin: 10px 0; border-left: 4px solid; }
  .callout p { margin: 2px 0; } .callout .ct { font-weight: 650; }
  .callout-info { background: #eef4ff; border-color: #3b82f6; } .callout-info .ct { color: #1d4ed8; }
  .callout-warning { background: #fff6e8; border-color: #f59e0b; } .callout-warning .ct { color: #b45309; }
  .callout-note { background: #f3f0ff; border-color: var(--accent); }
  pre.mermaid { background: none; text-align: center; } ul { padding-left: 22px; }
</style></head>
<body><main id="note"></main>
<script>%(markdown_it)s</script>
<script>%(mermaid)s</script>
<script>
const source = %(source)s;
const md = window.markdownit({html: true});
let text = source, props = "";
if (text.startsWith("---\\n")) {
  const end = text.indexOf("\\n---", 4);
  const rows = text.slice(4, end).split("\\n").filter(l => /^[A-Za-z_]+:/.test(l)).map(l => {
    const i = l.indexOf(":"); return `<tr><td>${l.slice(0, i)}</td><td>${l.slice(i + 1).trim() || "costhook"}</td></tr>`; });
  props = `<div class="props"><div class="title">Properties</div><table class="props-table">${rows.join("")}</table></div>`;
  text = text.slice(text.indexOf("\\n", end + 4) + 1);
}
const defaultFence = md.renderer.rules.fence;
md.renderer.rules.fence = (tokens, idx, opts, env, self) => tokens[idx].info.trim() === "mermaid"
  ? `<pre class="mermaid">${md.utils.escapeHtml(tokens[idx].content)}</pre>` : defaultFence(tokens, idx, opts, env, self);
document.getElementById("note").innerHTML = props + md.render(text);
for (const quote of document.querySelectorAll("blockquote")) {   // Obsidian callouts: > [!type] title
  const first = quote.querySelector("p");
  const m = first && first.innerHTML.match(/^\\[!(\\w+)\\][-+]?\\s*([^\\n]*)/);
  if (!m) continue;
  const div = document.createElement("div");
  div.className = "callout callout-" + m[1].toLowerCase();
  first.innerHTML = `<span class="ct">${m[2] || m[1]}</span>` + first.innerHTML.slice(m[0].length);
  div.innerHTML = quote.innerHTML; quote.replaceWith(div);
}
// As Obsidian's default light theme draws charts: Mermaid's "default" theme, nothing else;
// whatever the chart looks like beyond that, its own %%{init}%% line must say.
mermaid.initialize({startOnLoad: false, theme: "default"});
mermaid.run({querySelector: "pre.mermaid"}).then(() => {
  // What the test checks, measured in the page: the chart's bars and axis labels, and
  // every table row's height against a one-line row's.
  const box = e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const chart = document.querySelector("pre.mermaid svg");
  const geometry = {
    bars: chart ? [...chart.querySelectorAll("g.bar-plot-0 rect")].map(r => ({...box(r), fill: r.getAttribute("fill")})) : [],
    covers: chart ? [...chart.querySelectorAll("g.bar-plot-1 rect")].map(r => ({...box(r), fill: r.getAttribute("fill")})) : [],
    x_labels: chart ? [...chart.querySelectorAll("g.bottom-axis g.label text")].map(t => t.textContent) : [],
    chart: chart ? box(chart) : null,
    rows: [...document.querySelectorAll("table:not(.props-table) tr")].map(tr => ({text: tr.textContent.trim().slice(0, 60), h: tr.getBoundingClientRect().height})),
    line_height: (() => { const t = document.createElement("table"); t.innerHTML = "<tr><td>x</td></tr>";
      document.getElementById("note").append(t); const h = t.querySelector("tr").getBoundingClientRect().height; t.remove(); return h; })(),
  };
  const out = document.createElement("script");
  out.type = "application/json"; out.id = "geometry"; out.textContent = JSON.stringify(geometry);
  document.body.append(out);
  if (location.hash.startsWith("#only=")) {   // one section alone at the top, for a small screenshot
    const wanted = decodeURIComponent(location.hash.slice(6));
    for (const h2 of document.querySelectorAll("#note h2")) if (h2.textContent === wanted) {
      const keep = [h2]; for (let n = h2.nextElementSibling; n && n.tagName !== "H2"; n = n.nextElementSibling) keep.push(n);
      document.getElementById("note").replaceChildren(...keep);
    }
  }
  document.title = "rendered";
});
</script></body></html>
"""


def html_for(note: Path) -> str:
    return PAGE % {
        "markdown_it": (ASSETS / "markdown-it" / "dist" / "markdown-it.min.js").read_text(),
        "mermaid": (ASSETS / "mermaid" / "dist" / "mermaid.min.js").read_text(),
        "source": json.dumps(note.read_text(encoding="utf-8")).replace("</", "<\\/"),
    }


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                  "--virtual-time-budget=8000")


def run_chromium(url: str, *args: str) -> str:
    """One headless Chromium run on a fresh profile; its standard output."""
    browser = chromium()
    if browser is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="costhook-chromium-")
    try:
        proc = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                              check=True, capture_output=True, text=True, timeout=120)
        return proc.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(html: Path, png: Path, height: int = 4600, only: str | None = None) -> None:
    """A PNG of the page, 1000 px wide; with `only` (a section's heading), that section alone."""
    url = html.as_uri() + (f"#only={quote(only)}" if only else "")
    run_chromium(url, f"--screenshot={png}", f"--window-size=1000,{height}")


def rendered_dom(html: Path) -> str:
    """The page after markdown-it and Mermaid ran: its HTML, with the measured geometry."""
    return run_chromium(html.as_uri(), "--dump-dom", "--window-size=1000,4000")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "dashboard")
    parser.add_argument("--no-screenshot", action="store_true")
    parser.add_argument("--height", type=int, help="window height in pixels (default: from the note's length)")
    parser.add_argument("--note", type=Path, help="render this note instead of building the example one")
    parser.add_argument("--check", action="store_true",
                        help="also write OUT/dom.html (the rendered page) and OUT/chart.png (the daily chart alone)")
    parser.add_argument("--install-assets", action="store_true", help="only install the npm render assets, then exit")
    args = parser.parse_args(argv)
    if args.install_assets:
        ensure_assets()
        return 0
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    note = args.note.resolve() if args.note else build_note(out)
    print(f"wrote {note}")
    if args.no_screenshot:
        return 0
    ensure_assets()
    with tempfile.TemporaryDirectory(prefix="costhook-render-") as folder:
        html = Path(folder) / "dashboard.html"
        html.write_text(html_for(note), encoding="utf-8")
        text = note.read_text(encoding="utf-8")
        height = args.height or 18 * text.count("\n") + 40 * text.count("## ") + 420 * text.count("```mermaid") + 400
        screenshot(html, out / "screenshot.png", height)
        print(f"wrote {out / 'screenshot.png'}")
        if args.check:
            (out / "dom.html").write_text(rendered_dom(html), encoding="utf-8")
            screenshot(html, out / "chart.png", 600, only="Daily spend, last 30 days")
            print(f"wrote {out / 'dom.html'} and {out / 'chart.png'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
