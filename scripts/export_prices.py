"""Export costhook's bundled price table from the genai-prices package.

    python scripts/export_prices.py [--output costhook/pricing/data/prices.json] [--date YYYY-MM-DD]

costhook's hook must not import genai-prices (pydantic, a 1.6 MB data module) on every
tool call, so the export flattens the providers we care about into a compact JSON file
that `costhook/pricing/prices.py` reads with the standard library alone. The export itself
lives in `costhook/pricing/export.py`, shared with `costhook prices update` (which writes
the same table into the costhook home instead).
"""

import argparse
import datetime
import json
import sys
from importlib.metadata import version  # noqa: F401  (tests compare the installed version)
from pathlib import Path

from costhook.pricing.export import ExportError, dumps, export, to_pico  # noqa: F401

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "costhook" / "pricing" / "data" / "prices.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--date", default=datetime.date.today().isoformat(), help="export date to record (default: today)"
    )
    args = parser.parse_args(argv)
    try:
        table = export(args.date)
    except ExportError as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 1
    text = dumps(table)
    assert json.loads(text) == table
    args.output.write_text(text)
    count = sum(len(p["models"]) for p in table["providers"])
    print(f"wrote {args.output} ({len(text):,} bytes, {count} models)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
