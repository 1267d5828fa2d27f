"""Fidelity: simulate published measurements and say how wrong clustersim is, per family.

`clustersim fidelity FILE.csv` reads rows of the calibration schema (rows.py), maps each
to a clustersim setup (mapping.py documents every choice), simulates each distinct setup
once (runner.py), and reports the signed % error per row, the median absolute % error per
hardware family (NVIDIA, AMD, TPU, Neuron) and overall, coverage, and skipped rows with
reasons (evaluate.py, report.py). calibrate.py fits the per-family efficiency factors of
perf/efficiency.yaml on such rows and cross-validates the fit.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from clustersim.catalog import load_catalog
from clustersim.errors import ClusterSimError
from clustersim.fidelity.evaluate import GroupStats, RowResult, evaluate, group_stats, median_abs_error
from clustersim.fidelity.mapping import Mapped, Setup, map_row
from clustersim.fidelity.report import print_report, write_results_csv
from clustersim.fidelity.rows import Row, read_rows
from clustersim.perf.efficiency import load_stack_table

__all__ = [
    "GroupStats",
    "Mapped",
    "Row",
    "RowResult",
    "Setup",
    "default_workers",
    "evaluate",
    "group_stats",
    "map_row",
    "median_abs_error",
    "read_rows",
    "run_fidelity",
    "run_fidelity_cli",
    "write_results_csv",
]


def default_workers() -> int:
    """Worker processes for simulations: the CPUs this process may use (at most 8)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def run_fidelity(csv_path: Path, models: Path | None = None, workers: int | None = None) -> list[RowResult]:
    """Every row of `csv_path` evaluated with the packaged efficiency factors."""
    rows = read_rows(Path(csv_path))
    if models is not None and not Path(models).is_dir():
        raise ClusterSimError(f"--models {models}: not a directory")
    catalog = load_catalog([models] if models is not None else [])
    return evaluate(rows, catalog, load_stack_table(), workers or default_workers())


def run_fidelity_cli(csv_path: Path, result: Path | None, models: Path | None, console: Console) -> None:
    """The `clustersim fidelity` command: evaluate, print the tables, optionally write RESULT.csv."""
    results = run_fidelity(csv_path, models)
    print_report(results, console)
    if result is not None:
        write_results_csv(results, result)
        console.print(f"wrote {result}")
