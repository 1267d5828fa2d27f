"""Evaluate measurement rows: map, simulate each distinct setup once, compare, summarize.

Rows sharing a setup (same system, lengths, mode and load; different metric) share one
simulation. Every row comes back, simulated or skipped with its reason: nothing is dropped.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from clustersim.catalog import Catalog
from clustersim.errors import ClusterSimError
from clustersim.fidelity.mapping import Mapped, Setup, hardware_group, map_row
from clustersim.fidelity.rows import Row
from clustersim.fidelity.runner import Outcome, run_setup
from clustersim.perf.efficiency import Efficiency, resolve

GROUPS = ("NVIDIA", "AMD", "TPU", "Neuron")


@dataclass(frozen=True, slots=True)
class RowResult:
    """One row's verdict: predicted value and signed % error, or why it was skipped."""

    row: Row
    group: str
    setup: Setup | None
    predicted: float | None
    error_pct: float | None
    status: str  # "ok" | "skipped"
    reason: str = ""


def signed_error_pct(predicted: float, measured: float) -> float:
    """100 x (predicted - measured) / measured.

    >>> signed_error_pct(110.0, 100.0), signed_error_pct(50.0, 200.0)
    (10.0, -75.0)
    """
    return 100.0 * (predicted - measured) / measured


def _outcome_safe(setup: Setup, catalog: Catalog, eff: Efficiency) -> Outcome | str:
    try:
        return run_setup(setup, catalog, eff)
    except (ClusterSimError, ValueError, ZeroDivisionError) as exc:
        return f"simulation failed: {exc}"


def _run_one(args: tuple[Setup, Catalog, Efficiency]) -> Outcome | str:
    return _outcome_safe(*args)


def simulate_setups(setups: Sequence[Setup], catalog: Catalog, table: dict[str, Efficiency],
                    workers: int = 1) -> dict[Setup, Outcome | str]:
    """Outcome (or failure reason) of each distinct setup, in parallel when workers > 1."""
    unique = list(dict.fromkeys(setups))
    jobs = [(s, catalog, resolve(table, s.family, s.stack)) for s in unique]
    if workers > 1 and len(jobs) > 1:
        # longest first keeps the pool busy to the end
        order = sorted(range(len(jobs)), key=lambda i: -_cost_hint(unique[i]))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_run_one, [jobs[i] for i in order], chunksize=1))
        return {unique[i]: results[k] for k, i in enumerate(order)}
    return {s: _run_one(job) for s, job in zip(unique, jobs)}


def _cost_hint(setup: Setup) -> float:
    factor = {"server": 8.0, "offline": 4.0}.get(setup.mode, 1.0)
    return factor * setup.osl


def map_rows(rows: Sequence[Row], catalog: Catalog, table: dict[str, Efficiency]) -> list[Mapped]:
    return [map_row(row, catalog, table) for row in rows]


def _metric_value(outcome: Outcome, row: Row, setup: Setup) -> float | None:
    metrics = outcome.metrics
    if row.metric in metrics:
        return metrics[row.metric]
    if row.metric == "input_tok_s_per_chip" and "output_tok_s_per_chip" in metrics:
        return metrics["output_tok_s_per_chip"] * setup.isl / setup.osl
    return None


def compare(mapped: Sequence[Mapped], outcomes: dict[Setup, Outcome | str], catalog: Catalog) -> list[RowResult]:
    """RowResults in input order from mapped rows and their setups' outcomes."""
    results = []
    for item in mapped:
        row, setup = item.row, item.setup
        group = hardware_group(setup.family) if setup else _group_of_name(row.chip, catalog)
        if setup is None:
            results.append(RowResult(row, group, None, None, None, "skipped", item.reason))
            continue
        outcome = outcomes[setup]
        if isinstance(outcome, str):
            results.append(RowResult(row, group, setup, None, None, "skipped", outcome))
            continue
        value = _metric_value(outcome, row, setup)
        if value is None or not math.isfinite(value) or value <= 0:
            reason = f"mode {row.mode} does not yield metric {row.metric}" if value is None else f"predicted {value!r}"
            results.append(RowResult(row, group, setup, None, None, "skipped", reason))
            continue
        results.append(RowResult(row, group, setup, value, signed_error_pct(value, row.value), "ok", outcome.note))
    return results


def _group_of_name(chip: str, catalog: Catalog) -> str:
    try:
        return hardware_group(catalog.chip(chip).family)
    except ClusterSimError:
        return "other"


def evaluate(rows: Sequence[Row], catalog: Catalog, table: dict[str, Efficiency], workers: int = 1) -> list[RowResult]:
    """Map, simulate and compare every row (see module docstring)."""
    mapped = map_rows(rows, catalog, table)
    outcomes = simulate_setups([m.setup for m in mapped if m.setup is not None], catalog, table, workers)
    return compare(mapped, outcomes, catalog)


@dataclass(frozen=True, slots=True)
class GroupStats:
    group: str
    num_rows: int
    num_simulated: int
    median_abs_error_pct: float | None


def median_abs_error(results: Sequence[RowResult], keep: Callable[[RowResult], bool] = lambda r: True) -> float | None:
    """Median of |error_pct| over simulated results that `keep` accepts; None if none."""
    errors = [abs(r.error_pct) for r in results if r.error_pct is not None and keep(r)]
    return statistics.median(errors) if errors else None


def group_stats(results: Sequence[RowResult]) -> list[GroupStats]:
    """Per hardware family (those present, in GROUPS order, then others) and overall."""
    present = [g for g in GROUPS if any(r.group == g for r in results)]
    present += sorted({r.group for r in results} - set(GROUPS))
    stats = []
    for group in present:
        members = [r for r in results if r.group == group]
        stats.append(GroupStats(group, len(members), sum(r.status == "ok" for r in members), median_abs_error(members)))
    stats.append(GroupStats("overall", len(results), sum(r.status == "ok" for r in results), median_abs_error(results)))
    return stats
