"""Cost, power and tokenomics: what a run costs per token, per request and per megawatt.

`systems` loads sourced cost/power figures of purchasable and rentable systems
(data/systems.yaml); `model` holds the pure arithmetic (annuity, power, energy price);
`trace` streams a run's steps into `cost.arrow` and the summary's `cost` section; `plan`
fills a power-capped facility with systems. The scenario's `cost:` section is `CostConfig`.
"""

from clustersim.cost.config import CostConfig, CostOverrides
from clustersim.cost.model import capex_usd_per_s, capital_recovery_factor, chip_power_w, energy_usd, system_hour_usd
from clustersim.cost.plan import FacilityPlan, plan_facility, plan_from_cost_summary
from clustersim.cost.schema import COST
from clustersim.cost.systems import CostPlan, SystemCost, load_systems, resolve_system
from clustersim.cost.trace import write_cost_trace

__all__ = [
    "COST",
    "CostConfig",
    "CostOverrides",
    "CostPlan",
    "FacilityPlan",
    "SystemCost",
    "capex_usd_per_s",
    "capital_recovery_factor",
    "chip_power_w",
    "energy_usd",
    "load_systems",
    "plan_facility",
    "plan_from_cost_summary",
    "resolve_system",
    "system_hour_usd",
    "write_cost_trace",
]
