"""How costhook writes numbers and tables for people: one home for each format.

Money has one format (`usd`, the money rule) wherever it is shown. Standard library only,
and of costhook only the usage words: the statusline and the hooks use it.
"""

from costhook.usage import NANO

SPARK = "▁▂▃▄▅▆▇█"
BAR_WIDTH = 20


# ------------------------------------------------------------------- money --------

# The one money rule, for every view, the statusline, budgets, alerts and the dashboard:
# from $1 up, dollars and cents (`$1,234.56`, `$100.60`: never `$101` beside `$98.83`);
# below $1, up to four decimals, at least two (`$0.0236`, `$0.45`: never `$0.02` for
# $0.0236); below $0.0001, `<$0.0001`; zero is `$0.00`. Rounded half-up from integer
# nano-USD, so the same amount reads the same everywhere.


def usd(nano: int | None, none: str = "–") -> str:
    """Nano-USD by the money rule; `none` for None (unpriced, unknown)."""
    if nano is None:
        return none
    nano = int(nano)
    if nano == 0:
        return "$0.00"
    sign, nano = ("-" if nano < 0 else ""), abs(nano)
    ten_thousandths = (nano + 50_000) // 100_000
    if ten_thousandths >= 10_000:  # $0.99995 and up: dollars and cents
        cents = (nano + 5_000_000) // 10_000_000
        return f"{sign}${cents // 100:,}.{cents % 100:02d}"
    if ten_thousandths == 0:
        return f"{sign}<$0.0001"
    digits = f"{ten_thousandths:04d}"
    return f"{sign}$0.{digits[:2]}{digits[2:].rstrip('0')}"


def money(value: float | None) -> str:
    """Dollars (a float, as views return them) by the money rule; `–` for None."""
    return usd(None if value is None else round(value * NANO))


def money_nano(nano: int | None) -> str:
    """Nano-USD by the money rule; `unknown` for None (a cron run with no cost known)."""
    return usd(nano, none="unknown")


def money_change(nano: int, *, signed: bool = False) -> str:
    """Nano-USD by the money rule; with `signed`, a change: `+$0.0042`, `-$1.20`, `$0.00`."""
    sign = ("+" if nano > 0 else "-" if nano < 0 else "") if signed else ("-" if nano < 0 else "")
    return sign + usd(abs(nano))


def no_spend(label: str, cli: str | None = None) -> str:
    """The one line every view and the dashboard show for a period with no spend:
    `No spend this week (2026-W47).`, `No spend in the last 7 days.`, `No spend recorded.`;
    of one agent CLI: `No codex spend recorded.`"""
    what = f"No {term_text(cli)} spend" if cli else "No spend"
    if label == "all time":
        return f"{what} recorded."
    return f"{what} {'in the ' + label if label.startswith('last ') and label[5:6].isdigit() else label}."



# ------------------------------------------------------------------- numbers ------


def percent(share: float | None) -> str:
    """A share as a percentage: `42%`, `7.5%` below 10; `–` for None."""
    if share is None:
        return "–"
    return f"{share * 100:.0f}%" if abs(share) >= 0.1 else f"{share * 100:.1f}%"


def tokens(value: int) -> str:
    """A token count in budget messages: `950`, `1.2K`, `12.5K`, `1.2M`, `3B`."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(value) >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(value)


def tokens_short(value: int) -> str:
    """A count in three digits at most (the statusline): `950`, `1.2K`, `32K`, `456K`, `1.2M`."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(value) >= size:
            scaled = value / size
            return (f"{scaled:.1f}".rstrip("0").rstrip(".") if abs(scaled) < 10 else f"{scaled:.0f}") + suffix
    return str(value)


def age(seconds: float) -> str:
    """How long ago, in its largest whole unit: `42 s`, `3 min`, `2 h`, `5 d`."""
    seconds = max(0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def run_line(run: dict) -> str:
    """A cron run in one line: `Took 74 s · 12,400 tokens · $0.04` (cost unknown: `cost unknown`).
    Part of the run's data (its `line`), so here rather than beside the cron command."""
    parts = []
    if run.get("duration_ms") is not None:
        seconds = run["duration_ms"] / 1000
        parts.append(f"Took {seconds:.0f} s" if seconds >= 10 else f"Took {seconds:.1f} s")
    total = run.get("total_tokens") or 0
    parts.append(f"{total:,} tokens" + (" (run log)" if run.get("tokens_source") == "run log" else ""))
    if run.get("cost_nanousd") is None:
        parts.append("cost unknown" + (" (transcript pruned)" if run.get("transcript_missing") else ""))
    else:
        parts.append(money_nano(run["cost_nanousd"])
                     + (f" (+{run['unpriced_requests']} unpriced)" if run.get("unpriced_requests") else ""))
    if run.get("anomaly") and run.get("ratio"):
        parts.append(f"{run['ratio']:.1f}× its average")
    return " · ".join(parts)


# ------------------------------------------------------------------- pictures -----


def sparkline(values, zero: str = " ") -> str:
    """One character per value, scaled to the largest: None is a space, and so is a value
    at or below 0 unless `zero` says otherwise (cron runs draw a free run as ▁); all
    zeros draw ▁."""
    top = max((v for v in values if v is not None), default=None)
    if top is None:
        return " " * len(values)
    if top <= 0:
        return "".join(" " if v is None else SPARK[0] for v in values)
    return "".join(" " if v is None else (SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] if v > 0 else zero)
                   for v in values)


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    """A Unicode progress bar that renders in any font: █ filled, ░ empty (capped at full)."""
    if fraction is None:
        return ""
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


# ------------------------------------------------------------------- escaping -----
# One rule per output: text from outside (project folders, skill names, sub-agent types,
# session and model ids, cron job and tool names) goes through md_text/md_code in markdown,
# csv_cell in CSV and term_text on a terminal; JSON output is escaped by json itself.
# Ordinary names come out unchanged.

# C0 controls, DEL, C1 controls, the bidirectional marks and overrides that reorder what is
# shown, and the invisible characters that hide text or make two names look alike: the
# zero-width space, word joiner and invisible operators, the BOM, the Mongolian vowel
# separator, the line and paragraph separators (line breaks to some renderers) and the tag
# characters (invisible ASCII look-alikes). Not the zero-width (non-)joiners U+200C/U+200D:
# Persian, Indic scripts and emoji sequences need them in ordinary names.
# Patterns as text: `re` compiles (and caches) one on first use, so the statusline, which
# escapes nothing, never pays for compiling them.
_CONTROL = ("[\x00-\x1f\x7f-\x9f\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069"
            "\ufeff\U000e0000-\U000e007f]")
_MD_SPECIAL = r"[\\`\[\]|<>$%#]"
_MD_ENTITY = {"<": "&lt;", ">": "&gt;"}
_MD_NOT_CODE = r"[`|<>\\]"
_MD_CELL = r"\\.|[|\r\n]"
CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _visible(match) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def term_text(value) -> str:
    """Outside text on a terminal: every control character (ESC, BEL, DEL, CR, LF, C1, bidi
    overrides) and invisible character (zero-width space, BOM, tag characters: _CONTROL)
    shown as a visible escape such as `\\x1b` or `\\u200b`, so a name cannot move the cursor,
    retitle the window, clear the screen, break a table row or pass for another name."""
    import re  # here: a hook formats money with this module and must not pay for `re`

    return re.sub(_CONTROL, _visible, str(value))


def md_text(value) -> str:
    """Outside text in markdown, in a table cell, a list item or a sentence: `|`, backslash,
    backticks, brackets (links, wikilinks, embeds), `$` (math), `%` (Obsidian comments) and `#`
    (Obsidian tags: a name would file the note under the user's own tags) are backslash-escaped; `<` and `>` become entities (no HTML tag, no `<!--` comment, no
    autolink); line breaks become spaces and other control characters visible escapes."""
    import re  # here: a hook formats money with this module and must not pay for `re`

    text = str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    text = re.sub(_MD_SPECIAL, lambda m: _MD_ENTITY.get(m[0]) or "\\" + m[0], text)
    return re.sub(_CONTROL, _visible, text)


def md_code(value) -> str:
    """Outside text as an inline code span (`` `name` ``); text a code span should not hold
    (a backtick, `|`, `<`, `>`, a backslash, a control character, nothing at all) is written
    with md_text instead."""
    import re  # here: a hook formats money with this module and must not pay for `re`

    text = str(value)
    if not text or re.search(_MD_NOT_CODE, text) or re.search(_CONTROL, text):
        return md_text(text)
    return f"`{text}`"


def csv_cell(value):
    """One CSV cell: numbers as they are; text starting with `=`, `+`, `-`, `@`, a tab or a
    CR gets a leading `'` (the OWASP rule against spreadsheet formulas), and control
    characters are shown as visible escapes (term_text), since CSV is read on terminals too."""
    if not isinstance(value, str):
        return value
    text = term_text(value)
    return "'" + text if value.startswith(CSV_TRIGGERS) else text


# ------------------------------------------------------------------- tables -------


def grid(rows: list, right: set = frozenset()) -> str:
    """A plain-text table for the terminal: the first row is the header, a rule under it;
    `right` holds the indexes of right-aligned columns. Every cell goes through term_text."""
    rows = [[term_text(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])])


def md_cell(value) -> str:
    """Any value as one markdown table cell: a `|` or a line break would break the row.
    Backslash pairs are left as they are (md_text's escapes are already safe in a cell)."""
    import re  # here: a hook formats money with this module and must not pay for `re`

    return re.sub(_MD_CELL, lambda m: m[0] if len(m[0]) == 2 else ("\\|" if m[0] == "|" else " "), str(value))


def md_table(header: list, rows: list, align: str | None = None) -> str:
    """A markdown table; `align` has one letter a column: l, r or c (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[c] for c in align) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
