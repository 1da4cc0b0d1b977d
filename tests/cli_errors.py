"""Shared by the CLI tests: a command that must fail with exit code 2 and one line on stderr."""

from __future__ import annotations

from poldist.cli import main


def one_line_error(capsys, argv: list[str]) -> str:
    """Run ``poldist argv``; assert exit code 2 and a single ``poldist: error:`` line; return it."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("poldist: error: "), err
    return err
