"""Render the example dashboard and take a screenshot of it, as a reader would see it.

    python scripts/render_dashboard.py [--out examples/dashboard] [--no-screenshot]

1. imports examples/claude into a scratch database (with examples/dashboard/config.toml:
   a time zone and two budgets), fires the budgets' alerts as the hooks would;
2. writes the note with `costhook dashboard` logic into OUT/Cost dashboard.md, as of
   2026-11-19 18:00 UTC (the example transcripts' last day);
3. renders it to HTML the way Obsidian shows it (properties, callouts, Mermaid charts)
   with markdown-it and Mermaid, offline, from .cache/render/node_modules
   (`npm install --prefix .cache/render mermaid@11 markdown-it@14`, done on first use);
4. takes a headless Chromium screenshot: OUT/screenshot.png.

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
  body { background:var(--bg); color:var(--fg); font:15px/1.55 "Inter","DejaVu Sans",system-ui,sans-serif; margin:0; }
  main { max-width: 960px; margin: 0 auto; padding: 28px 40px 60px; }
  h1 { font-size: 30px; margin: 8px 0 4px; } h2 { font-size: 21px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
  p em, p > em { color: var(--muted); }
  table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
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
  props = `<div class="props"><div class="title">Properties</div><table>${rows.join("")}</table></div>`;
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
mermaid.initialize({startOnLoad: false, theme: "default",
  xyChart: {width: 860, height: 300}, themeVariables: {xyChart: {plotColorPalette: "#7c5cff"}}});
mermaid.run({querySelector: "pre.mermaid"}).then(() => { document.title = "rendered"; });
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


def screenshot(html: Path, png: Path, height: int = 4600) -> None:
    browser = chromium()
    if browser is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="costhook-chromium-")
    try:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                        f"--user-data-dir={profile}", "--virtual-time-budget=8000", f"--screenshot={png}",
                        f"--window-size=1000,{height}", html.as_uri()],
                       check=True, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "examples" / "dashboard")
    parser.add_argument("--no-screenshot", action="store_true")
    parser.add_argument("--height", type=int, help="window height in pixels (default: from the note's length)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    note = build_note(out)
    print(f"wrote {note}")
    if args.no_screenshot:
        return 0
    ensure_assets()
    html = Path(tempfile.mkdtemp(prefix="costhook-render-")) / "dashboard.html"
    html.write_text(html_for(note), encoding="utf-8")
    text = note.read_text(encoding="utf-8")
    height = args.height or 18 * text.count("\n") + 40 * text.count("## ") + 420 * text.count("```mermaid") + 400
    screenshot(html, out / "screenshot.png", height)
    print(f"wrote {out / 'screenshot.png'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
