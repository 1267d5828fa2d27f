"""Sizing: the fewest replicas of a layout that meet the SLO at the scenario's load.

The planner's question is rarely "how does this fixed cluster do" but "how much of each
layout do I need for this traffic and this latency target, and what does it cost then".
For one scenario the search runs the same traffic on n replicas, doubling n until the SLO
attainment (over all requests: rejected, failed and unfinished ones count as misses) reaches
the target, then bisecting down to the smallest n that meets it. It assumes more replicas
never hurt at equal load (a property the tests check). Every trial is a resumable sweep run
in OUT/<layout>/r<n>.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clustersim.errors import ScenarioError
from clustersim.scenario import Scenario
from clustersim.sweep import SweepResult, run_sweep


@dataclass(frozen=True, slots=True)
class Sized:
    """The smallest run meeting the target (or the largest tried, when none did)."""

    result: SweepResult
    num_replicas: int
    meets: bool
    note: str


def attainment(result: SweepResult) -> float:
    """SLO attainment over every request of the run (0 when nothing was measured)."""
    value = (result.summary.get("slo") or {}).get("attainment_all")
    return float(value) if value is not None else 0.0


def _with_replicas(scenario: Scenario, num_replicas: int) -> Scenario:
    deployment = scenario.deployment.model_copy(update={"num_replicas": num_replicas})
    return scenario.model_copy(update={"deployment": deployment})


def size_to_slo(name: str, scenario: Scenario, out_dir: str | Path, target: float, max_replicas: int = 512) -> Sized:
    """Smallest replica count meeting `target` attainment for `scenario`'s traffic."""
    root = Path(out_dir) / name
    tried: dict[int, SweepResult] = {}

    def run(n: int) -> SweepResult | None:
        if n not in tried:
            try:
                tried[n] = run_sweep([(f"r{n}", _with_replicas(scenario, n))], root, workers=1)[0]
            except ScenarioError:
                return None  # n replicas do not fit the topology
        return tried[n]

    good: int | None = None
    bad = 0
    n = scenario.deployment.num_replicas
    while n <= max_replicas:
        result = run(n)
        if result is None:
            break
        if attainment(result) >= target:
            good = n
            break
        bad, n = n, n * 2
    if good is None:
        largest = max(tried) if tried else None
        if largest is None:
            raise ScenarioError(f"{name}: deployment.num_replicas={scenario.deployment.num_replicas} does not fit its topology")
        return Sized(tried[largest], largest, False, f"SLO not met with up to {largest} replicas")
    while good - bad > 1:
        mid = (good + bad) // 2
        result = run(mid)
        if result is not None and attainment(result) >= target:
            good = mid
        else:
            bad = mid
    return Sized(tried[good], good, True, f"{good} replicas meet {target:.0%}")
