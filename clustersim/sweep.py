"""Sweeps: many scenarios, one run directory each, a local process pool, resumable.

A run whose directory already holds a manifest.json for the same resolved scenario is
reused, not rerun, so an interrupted sweep resumes where it stopped (manifest.json is
written last: its presence means the run completed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clustersim.scenario import Scenario


@dataclass(frozen=True, slots=True)
class SweepResult:
    name: str
    out_dir: Path
    summary: dict[str, Any]
    reused: bool


def _complete(out_dir: Path, scenario: Scenario) -> dict[str, Any] | None:
    """The summary of a finished earlier run of exactly this scenario, if there is one."""
    manifest_path, summary_path = out_dir / "manifest.json", out_dir / "summary.json"
    if not (manifest_path.is_file() and summary_path.is_file()):
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("scenario") != scenario.model_dump(mode="json"):
            return None
        return json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return None


def _run_one(args: tuple[str, Scenario, Path]) -> SweepResult:
    from clustersim.simulate import simulate

    name, scenario, out_dir = args
    result = simulate(scenario, out_dir, where=name)
    return SweepResult(name, out_dir, result.summary, reused=False)


def run_sweep(runs: Sequence[tuple[str, Scenario]], out_dir: str | Path, workers: int | None = None) -> list[SweepResult]:
    """Run every (name, scenario) into out_dir/name, reusing completed runs; results in input order."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, SweepResult] = {}
    todo = []
    for name, scenario in runs:
        summary = _complete(root / name, scenario)
        if summary is not None:
            results[name] = SweepResult(name, root / name, summary, reused=True)
        else:
            todo.append((name, scenario, root / name))
    workers = workers or min(len(todo), os.cpu_count() or 1) or 1
    if workers <= 1 or len(todo) <= 1:
        for item in todo:
            results[item[0]] = _run_one(item)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(_run_one, todo):
                results[result.name] = result
    return [results[name] for name, _ in runs]
