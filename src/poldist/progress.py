"""Progress bars that stay readable in a terminal and in a log file."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress(total: int, desc: str, initial: int = 0, unit: str = "it", **kw: Any) -> tqdm:
    """A tqdm bar: live in a terminal; in a log (not a tty), one line every 30 s."""
    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        initial=initial,
        unit=unit,
        mininterval=0.5 if tty else 30.0,
        dynamic_ncols=True,
        **kw,
    )
