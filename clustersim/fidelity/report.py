"""Show and save fidelity results: the per-row table, per-family medians, skipped rows, CSV."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clustersim.fidelity.evaluate import RowResult, group_stats

RESULT_COLUMNS = ("predicted", "error_pct", "status", "reason")


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def rows_table(results: Sequence[RowResult]) -> Table:
    """Per simulated row: setup in brief, metric, measured, predicted, signed % error."""
    table = Table(title="predicted vs measured", show_lines=False)
    for column in ("id", "family", "system", "model", "mode", "metric", "measured", "predicted", "error %"):
        table.add_column(column, justify="right" if column in ("measured", "predicted", "error %") else "left")
    for r in results:
        if r.status != "ok" or r.setup is None:
            continue
        s = r.setup
        system = f"{s.num_chips}x{s.chip} tp{s.tp}" + (f" ep{s.ep}" if s.ep > 1 else "")
        load = f" {r.row.load:g}" if r.row.load is not None else ""
        color = "green" if abs(r.error_pct or 0) <= 15 else ("yellow" if abs(r.error_pct or 0) <= 40 else "red")
        table.add_row(r.row.id, r.group, system, s.model, f"{r.row.mode}{load}", r.row.metric, _fmt(r.row.value),
                      _fmt(r.predicted), f"[{color}]{r.error_pct:+.1f}[/{color}]")
    return table


def summary_table(results: Sequence[RowResult], cv: dict[str, float | None] | None = None) -> Table:
    """Median absolute % error and coverage per hardware family and overall (CV column if given)."""
    table = Table(title="median absolute error per family")
    table.add_column("family")
    table.add_column("median |error| %", justify="right")
    if cv is not None:
        table.add_column("cross-validated %", justify="right")
    table.add_column("coverage", justify="right")
    for g in group_stats(results):
        median = "n/a" if g.median_abs_error_pct is None else f"{g.median_abs_error_pct:.1f}"
        cells = [g.group, median]
        if cv is not None:
            value = cv.get(g.group)
            cells.append("n/a" if value is None else f"{value:.1f}")
        cells.append(f"{g.num_simulated}/{g.num_rows}")
        table.add_row(*cells)
    return table


def skipped_table(results: Sequence[RowResult]) -> Table | None:
    skipped = [r for r in results if r.status != "ok"]
    if not skipped:
        return None
    table = Table(title=f"skipped rows ({len(skipped)})")
    table.add_column("id")
    table.add_column("chip")
    table.add_column("model")
    table.add_column("reason")
    for r in skipped:
        table.add_row(r.row.id, r.row.chip, r.row.model, r.reason)
    return table


def print_report(results: Sequence[RowResult], console: Console, cv: dict[str, float | None] | None = None) -> None:
    console.print(rows_table(results))
    console.print(summary_table(results, cv))
    skipped = skipped_table(results)
    if skipped is not None:
        console.print(skipped)


def write_results_csv(results: Sequence[RowResult], path: Path,
                      extra: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """Every input row with predicted, error_pct, status and reason columns, written atomically
    (a temporary file in the same folder, then renamed over `path`); `extra` adds columns by
    row id (e.g. cross-validated predictions; blank for rows it lacks)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for r in results:
        for key, _ in r.row.fields:
            if key not in columns:
                columns.append(key)
    columns += [c for c in RESULT_COLUMNS if c not in columns]
    columns += [c for c in dict.fromkeys(k for cols in (extra or {}).values() for k in cols) if c not in columns]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for r in results:
                record = dict(r.row.fields)
                record["predicted"] = "" if r.predicted is None else f"{r.predicted:.6g}"
                record["error_pct"] = "" if r.error_pct is None else f"{r.error_pct:.2f}"
                record["status"] = r.status
                record["reason"] = r.reason
                record.update((extra or {}).get(r.row.id, {}))
                writer.writerow(record)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
