"""Tables as text: plain text for the terminal, Markdown for RESULTS.md.

A leaf module (it imports nothing from poldist), so the command line, the zoo and the paper
harness (:mod:`poldist.experiments`) can all print tables without importing each other.
"""

from __future__ import annotations

from typing import Any


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table; floats get 2 decimals."""
    cells = [
        [f"{c:,.2f}" if isinstance(c, float) else f"{c:,}" if isinstance(c, int) else str(c) for c in row]
        for row in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of already formatted cells."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
