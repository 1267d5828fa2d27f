"""Power-capped planning: how many systems a facility's power budget holds, and what the
whole facility delivers and costs at a target load.

A facility is sized by provisioned power, not average draw: each system is budgeted at
every chip's maximum plus its fixed draw, times PUE (what the utility feed and cooling
must carry). At a target load (fraction of the measured per-system throughput) chips draw
idle + dynamic x activity x load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from clustersim.cost.model import SECONDS_PER_YEAR, capital_recovery_factor, chip_power_w, usd_per_mtok
from clustersim.cost.systems import CostPlan, SystemCost, check_power_budget


@dataclass(frozen=True, slots=True)
class FacilityPlan:
    """A facility filled with one system type."""

    system: str
    mode: str
    power_mw: float
    pue: float
    num_systems: int
    num_chips: int
    provisioned_it_w: float
    it_power_w_at_load: float
    facility_power_w_at_load: float
    target_load: float
    tokens_s: float
    usd_per_hour: float
    usd_per_mtok: float | None
    tokens_s_per_mw: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_facility(
    power_mw: float,
    system: SystemCost,
    tokens_s_per_system: float,
    *,
    pue: float | None = None,
    electricity_usd_per_kwh: float = 0.08,
    mode: str | None = None,
    target_load: float = 1.0,
    activity: float = 1.0,
) -> FacilityPlan:
    """Fill `power_mw` of facility power with `system`s and cost the result.

    num_systems = floor(power_mw x 1e6 / PUE / peak IT W per system); throughput =
    num_systems x tokens_s_per_system x target_load; `activity` is the time-averaged chip
    activity at the measured throughput (it scales with the load). Dollars per hour: capex
    mode = systems x (capex x CRF + opex) per hour + facility kW x $/kWh; rental = chips x rate.
    A budget that is not finite and > 0, or too small for one system, raises ScenarioError.

    >>> from clustersim.cost.systems import load_systems
    >>> h = load_systems()[0]["hgx-h200"]  # peak (8 x 700 + 4600) W = 10.2 kW, x PUE 1.3 = 13.26 kW
    >>> p = plan_facility(1.0, h, tokens_s_per_system=10_000)
    >>> p.num_systems, p.num_chips, p.tokens_s  # floor(1e6 / 13,260) = 75
    (75, 600, 750000.0)
    """
    if not 0 < target_load <= 1:
        raise ValueError(f"plan_facility: target_load={target_load}, must be in (0, 1]")
    peak = system.peak_it_w
    if peak is None or peak <= 0:
        raise ValueError(f"plan_facility: system {system.name} has no chip_max_w/fixed_w; set cost.overrides")
    pue = system.pue if pue is None else pue
    mode = mode or system.default_mode
    num_systems = check_power_budget(power_mw, system, pue, "plan_facility: power_mw")
    chip_w = chip_power_w(system.chip_idle_w or 0.0, system.chip_max_w or 0.0, min(1.0, activity * target_load))
    it_w = num_systems * (system.num_chips * chip_w + (system.fixed_w or 0.0))
    facility_w = it_w * pue
    tokens_s = num_systems * tokens_s_per_system * target_load
    if mode == "rental":
        usd_per_hour = num_systems * system.num_chips * (system.rental_usd_per_chip_hour or 0.0)
    else:
        yearly = (system.capex_usd or 0.0) * capital_recovery_factor(system.cost_of_capital, system.lifetime_years)
        yearly += system.opex_usd_per_year
        usd_per_hour = num_systems * yearly * 3600.0 / SECONDS_PER_YEAR + facility_w / 1000.0 * electricity_usd_per_kwh
    return FacilityPlan(
        system=system.name, mode=mode, power_mw=power_mw, pue=pue, num_systems=num_systems,
        num_chips=num_systems * system.num_chips, provisioned_it_w=num_systems * peak,
        it_power_w_at_load=it_w, facility_power_w_at_load=facility_w, target_load=target_load,
        tokens_s=tokens_s, usd_per_hour=usd_per_hour, usd_per_mtok=usd_per_mtok(usd_per_hour / 3600.0, tokens_s),
        tokens_s_per_mw=tokens_s / power_mw,
    )


def plan_from_cost_summary(cost: dict[str, Any], plan: CostPlan, power_mw: float, target_load: float = 1.0) -> FacilityPlan:
    """Scale a run's measured throughput and activity (summary["cost"]) to a facility."""
    tokens_s_per_system = cost["tokens_s_per_chip"] * plan.system.num_chips
    activity = (cost.get("busy_fraction") or 0.0) * (cost.get("activity_mean_when_busy") or 0.0)
    return plan_facility(
        power_mw, plan.system, tokens_s_per_system, pue=plan.pue, electricity_usd_per_kwh=plan.electricity_usd_per_kwh,
        mode=plan.mode, target_load=target_load, activity=activity,
    )
