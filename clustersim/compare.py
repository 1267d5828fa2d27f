"""Layout comparisons: one base scenario, several deployments, one table.

A comparison file has `base:` (scenario fields shared by every layout) and `layouts:`
(name -> fields that override the base, usually deployment and topology). Each layout runs
as its own scenario into OUT/<name> (through the resumable sweep), and the table puts the
planner's figures side by side: throughput per chip, latency percentiles, SLO attainment,
$ per million tokens and tokens per MW.
"""

from __future__ import annotations

import copy
import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from clustersim.errors import ScenarioError
from clustersim.records import write_json_atomic
from clustersim.scenario import Scenario, parse_scenario, read_yaml, resolve_paths
from clustersim.sizing import Sized, size_to_slo
from clustersim.sweep import SweepResult, run_sweep

DEFAULT_COMPARISON = Path(__file__).parent / "scenarios" / "compare.yaml"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_comparison(path: str | Path, seed: int | None = None) -> tuple[str, list[tuple[str, Scenario]]]:
    """Parse a comparison file into (name, [(run name, scenario), ...]).

    An optional `grid:` maps dotted scenario fields to lists of values (for example
    `workload.rate_per_s: [2, 4, 8]`); every layout then runs at every point of the grid's
    cartesian product, named `<layout>@<field>=<value>,...`: a sweep.
    """
    path = Path(path)
    data = read_yaml(path, "comparison")
    if not isinstance(data, dict) or not isinstance(data.get("layouts"), dict) or not data["layouts"]:
        raise ScenarioError(f"{path}: needs `layouts:` mapping each layout name to scenario fields (and optional `base:`)")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ScenarioError(f"{path}: base must be a mapping of scenario fields")
    unknown = set(data) - {"name", "base", "layouts", "grid"}
    if unknown:
        raise ScenarioError(f"{path}: unknown top-level field(s) {sorted(unknown)}; valid: name, base, layouts, grid")
    points = _grid_points(data.get("grid") or {}, path)
    runs = []
    for layout, fields in data["layouts"].items():
        if not isinstance(fields, dict):
            raise ScenarioError(f"{path}: layouts.{layout} must be a mapping of scenario fields")
        for label, override in points:
            merged = resolve_paths(_merge(_merge(base, fields), override), path.parent)
            name = f"{layout}@{label}" if label else str(layout)
            merged.setdefault("name", name)
            if seed is not None:
                merged["seed"] = seed
            runs.append((name, parse_scenario(merged, where=f"{path}: layouts.{layout}{' at ' + label if label else ''}")))
    return str(data.get("name", path.stem)), runs


def _grid_points(grid: Any, path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every point of the grid as (label, nested scenario override); [("", {})] for no grid."""
    if not isinstance(grid, dict):
        raise ScenarioError(f"{path}: grid must map dotted scenario fields to lists of values")
    for field, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ScenarioError(f"{path}: grid.{field}={values!r}, must be a non-empty list of values")
    fields = list(grid)
    points = []
    for combo in itertools.product(*(grid[f] for f in fields)):
        override: dict[str, Any] = {}
        for field, value in zip(fields, combo):
            node = override
            *parents, leaf = str(field).split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        label = ",".join(f"{f.split('.')[-1]}={v}" for f, v in zip(fields, combo))
        points.append((label, override))
    return points


def comparison_rows(results: list[SweepResult]) -> list[dict[str, Any]]:
    """The table's rows: one per layout, the figures a planner compares."""
    rows = []
    for r in results:
        s = r.summary
        lat, thr, cost, dep = s.get("latency", {}), s.get("throughput", {}), s.get("cost") or {}, s.get("deployment", {})
        rows.append({
            "layout": r.name,
            "chips": dep.get("num_chips"),
            "chip": dep.get("chip"),
            "output_tokens_s_per_chip": thr.get("output_tokens_s_per_chip"),
            "ttft_p50_ms": _ms((lat.get("ttft_s") or {}).get("p50")),
            "ttft_p99_ms": _ms((lat.get("ttft_s") or {}).get("p99")),
            "tpot_p50_ms": _ms((lat.get("tpot_s") or {}).get("p50")),
            "tpot_p99_ms": _ms((lat.get("tpot_s") or {}).get("p99")),
            "slo_attainment": (s.get("slo") or {}).get("attainment"),
            "mean_batch": (s.get("steps") or {}).get("mean_num_seqs_time_weighted"),
            "pricing": cost.get("mode"),
            "usd_per_mtok_output": cost.get("usd_per_mtok_output"),
            "usd_per_mtok_blended": cost.get("usd_per_mtok_blended"),
            "tokens_s_per_mw": cost.get("tokens_s_per_mw"),
            "run_dir": str(r.out_dir),
            "reused": r.reused,
        })
    return rows


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1e3


def run_comparison(
    path: str | Path,
    out_dir: str | Path,
    seed: int | None = None,
    workers: int | None = None,
    size_to: float | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Run (or resume) a comparison and write OUT/comparison.json; returns (name, rows).

    With `size_to` (an SLO attainment such as 0.99), each layout is first sized: the fewest
    replicas that meet the SLO at the base load (clustersim.sizing), and its row is that run.
    """
    name, runs = load_comparison(path, seed)
    if size_to is None:
        rows = comparison_rows(run_sweep(runs, out_dir, workers))
    else:
        jobs = [(layout, scenario, Path(out_dir), size_to) for layout, scenario in runs]
        with ProcessPoolExecutor(max_workers=workers or min(len(jobs), os.cpu_count() or 1)) as pool:
            sized = list(pool.map(_size_one, jobs))
        rows = comparison_rows([s.result for s in sized])
        for row, (layout, _), s in zip(rows, runs, sized):
            row.update({"layout": layout, "replicas": s.num_replicas, "meets_slo": s.meets, "sizing": s.note})
    write_json_atomic(Path(out_dir) / "comparison.json", {"name": name, "size_to": size_to, "rows": rows})
    return name, rows


def _size_one(job: tuple[str, Scenario, Path, float]) -> Sized:
    layout, scenario, out_dir, target = job
    return size_to_slo(layout, scenario, out_dir, target)
