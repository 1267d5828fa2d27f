"""Run the `clustersim` command line in-process and capture its exit code and output."""

from __future__ import annotations

import sys

from clustersim.cli import main


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `clustersim *argv`."""
    old = sys.argv
    sys.argv = ["clustersim", *argv]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err
