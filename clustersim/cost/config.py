"""The `cost:` section of a scenario: which system the chips are bought (or rented) in, and
every figure of it that the user wants to change.

Defaults come from `clustersim/cost/data/systems.yaml` (each with a source and a date);
`overrides` replaces single figures, `electricity_usd_per_kwh` and `pue` the site's.
Validation here is about shape and ranges; `clustersim.cost.systems.resolve_system` checks
the system name and that the chosen mode has the figures it needs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # finite: an infinite budget or bucket is a typo

DEFAULT_ELECTRICITY_USD_PER_KWH = 0.08
"""US hyperscale/colo default: EIA Electric Power Monthly Table 5.6.A, industrial ~8-9 c/kWh
(2025-04); costs.md section 3 suggests $0.08 (range 0.05-0.12)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostOverrides(_Strict):
    """Any figure of a system (see systems.yaml for meanings); None keeps the default.
    Capex figures are per system, power figures per chip except `fixed_w` (per system)."""

    num_chips: Annotated[int, Field(gt=0)] | None = None
    capex_chips_usd: NonNegative | None = None
    capex_hosts_usd: NonNegative | None = None
    capex_switches_usd: NonNegative | None = None
    capex_network_usd: NonNegative | None = None
    capex_rack_usd: NonNegative | None = None
    lifetime_years: Positive | None = None
    cost_of_capital: Annotated[float, Field(ge=0, le=1)] | None = None
    chip_max_w: NonNegative | None = None
    chip_idle_w: NonNegative | None = None
    fixed_w: NonNegative | None = None
    opex_usd_per_year: NonNegative | None = None
    rental_usd_per_chip_hour: NonNegative | None = None


class CostConfig(_Strict):
    """How a run is costed.

    mode: capex (buy: amortized capex + power + opex), rental ($ per chip-hour; power is
    in the rate, energy is still reported) or auto (the system's default: rental for
    TPUs and Trainium, capex otherwise). system: a name in systems.yaml or auto (from the
    deployment's chip). whole_systems: bill every chip of the systems the replicas occupy
    (an 8-chip replica on an NVL72 pays for the rack; unused chips count as idle
    capacity); false bills the deployed chips only, a pro-rata share of each system.
    utilization: what drives dynamic power per busy step: max (of compute_util and
    hbm_util, the roofline's binding resource), compute (compute_util only) or busy (1
    whenever a step runs). bucket_s: width of the cost.arrow time buckets.
    facility_power_mw: when given, the summary also plans a facility of that size.
    """

    enabled: bool = True
    mode: Literal["auto", "capex", "rental"] = "auto"
    system: str = "auto"
    overrides: CostOverrides = CostOverrides()
    electricity_usd_per_kwh: NonNegative = DEFAULT_ELECTRICITY_USD_PER_KWH
    pue: Annotated[float, Field(ge=1)] | None = None  # None: the system's default
    bucket_s: Positive = 60.0
    utilization: Literal["max", "compute", "busy"] = "max"
    whole_systems: bool = False
    facility_power_mw: Positive | None = None
    target_load: Annotated[float, Field(gt=0, le=1)] = 1.0  # facility plan: fraction of measured throughput

    @model_validator(mode="after")
    def _check_system(self) -> "CostConfig":
        """A named system must exist and have what its mode needs (auto is checked per chip at run time)."""
        if self.system == "auto":
            return self
        from clustersim.cost.systems import check_named_system  # systems imports this module

        check_named_system(self)
        return self
