"""`clustersim plan`: run a scenario, then scale its measured throughput to a power-capped
facility. Kept out of `plan` so the pure planning functions never import the simulator."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from rich.table import Table

from clustersim.cost.plan import FacilityPlan, plan_from_cost_summary
from clustersim.cost.systems import check_power_budget, resolve_system
from clustersim.errors import ScenarioError


def plan_scenario(scenario_path: Path, power_mw: float, target_load: float = 1.0, out_dir: Path | None = None) -> tuple[dict[str, Any], FacilityPlan]:
    """Simulate the scenario (into out_dir, or a temporary directory) and plan a facility
    of `power_mw` filled with its system at `target_load` of the measured throughput."""
    from clustersim.build import build
    from clustersim.scenario import load_scenario
    from clustersim.simulate import simulate

    if not 0 < power_mw < math.inf:
        raise ScenarioError(f"--power-mw={power_mw}, must be a finite number of MW > 0")
    if not 0 < target_load <= 1:
        raise ScenarioError(f"--target-load={target_load}, must be in (0, 1]")
    scenario = load_scenario(scenario_path)
    built = build(scenario, str(scenario_path))
    plan = resolve_system(scenario.cost, built.chip, built.replica.num_chips, str(scenario_path))
    if plan.system.peak_it_w is None:
        raise ScenarioError(f"{scenario_path}: cost: system {plan.system.name} has no power figures; set cost.overrides.chip_max_w, chip_idle_w, fixed_w")
    check_power_budget(power_mw, plan.system, plan.pue, "--power-mw")  # before the (long) simulation
    with tempfile.TemporaryDirectory(prefix="clustersim-plan-") as tmp:
        result = simulate(scenario, out_dir or Path(tmp), where=str(scenario_path))
    cost = result.summary["cost"]
    if not cost.get("available") or not cost.get("tokens_s_per_chip"):
        raise ScenarioError(f"{scenario_path}: the run produced no cost figures ({cost.get('reason', 'no tokens')})")
    return cost, plan_from_cost_summary(cost, plan, power_mw, target_load)


def plan_table(cost: dict[str, Any], facility: FacilityPlan) -> Table:
    """The facility plan as a two-column table."""
    table = Table(title=f"facility plan: {facility.power_mw:g} MW of {facility.system} ({facility.mode})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("systems / chips", f"{facility.num_systems:,} / {facility.num_chips:,}"),
        ("PUE", f"{facility.pue:.2f}"),
        ("provisioned IT power", f"{facility.provisioned_it_w / 1e6:,.2f} MW"),
        ("facility power at load", f"{facility.facility_power_w_at_load / 1e6:,.2f} MW"),
        ("target load", f"{facility.target_load:.0%}"),
        ("tokens/s (in + out)", f"{facility.tokens_s:,.0f}"),
        ("tokens/s per MW", f"{facility.tokens_s_per_mw:,.0f}"),
        ("$ per hour", f"{facility.usd_per_hour:,.0f}"),
        ("$ per M tokens (blended)", "n/a" if facility.usd_per_mtok is None else f"{facility.usd_per_mtok:,.4f}"),
        ("measured: tokens/s per chip", f"{cost['tokens_s_per_chip']:,.1f}"),
        ("measured: $ per M output tokens", "n/a" if cost.get("usd_per_mtok_output") is None else f"{cost['usd_per_mtok_output']:,.4f}"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table
