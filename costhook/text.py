"""How costhook writes numbers and tables for people: one home for each format.

Standard library only and no imports: the statusline uses it.
"""


def grid(rows: list, right: set = frozenset()) -> str:
    """A plain-text table: the first row is the header, a rule under it; `right` holds
    the indexes of right-aligned columns."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])])
