"""Cost and power figures of systems, loaded from `data/systems.yaml` into frozen specs.

A system is what is bought or rented as one unit: an 8-GPU HGX server, a 72-GPU NVL72
rack, a 16-chip trn2 instance, a TPU host. Each figure carries its kind (vendor,
estimate, derived, assumption), source and date; `SystemCost.assumptions` lists the
figures that are modelling choices so a summary can flag them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from clustersim.catalog import ChipSpec
from clustersim.cost.config import CostConfig
from clustersim.errors import ScenarioError, SpecError

DATA_FILE = Path(__file__).parent / "data" / "systems.yaml"

FIGURES: tuple[str, ...] = (
    "capex_chips_usd",
    "capex_hosts_usd",
    "capex_switches_usd",
    "capex_network_usd",
    "capex_rack_usd",
    "lifetime_years",
    "cost_of_capital",
    "chip_max_w",
    "chip_idle_w",
    "fixed_w",
    "opex_usd_per_year",
    "pue",
    "rental_usd_per_chip_hour",
)
CAPEX_PARTS: tuple[str, ...] = FIGURES[:5]
KINDS = ("vendor", "estimate", "derived", "assumption", "override")


@dataclass(frozen=True, slots=True)
class SystemCost:
    """One purchasable/rentable system; money per whole system, power per chip except
    `fixed_w` (hosts, switches, fans: drawn whenever the system is on). None = unknown."""

    name: str
    chip: str
    num_chips: int
    default_mode: str
    capex_chips_usd: float | None
    capex_hosts_usd: float | None
    capex_switches_usd: float | None
    capex_network_usd: float | None
    capex_rack_usd: float | None
    lifetime_years: float
    cost_of_capital: float
    chip_max_w: float | None
    chip_idle_w: float | None
    fixed_w: float | None
    opex_usd_per_year: float
    pue: float
    rental_usd_per_chip_hour: float | None
    sources: tuple[tuple[str, str, str, str], ...] = ()  # (figure, kind, source, date)
    description: str = ""

    @property
    def capex_usd(self) -> float | None:
        """Purchase price of one system, all parts; None if any part is unknown."""
        parts = [getattr(self, name) for name in CAPEX_PARTS]
        return None if any(p is None for p in parts) else float(sum(parts))

    @property
    def peak_it_w(self) -> float | None:
        """IT power of one system with every chip at its maximum draw."""
        if self.chip_max_w is None or self.fixed_w is None:
            return None
        return self.num_chips * self.chip_max_w + self.fixed_w

    @property
    def assumptions(self) -> tuple[str, ...]:
        """Figures that are assumptions or user overrides, not sourced values."""
        return tuple(f for f, kind, _, _ in self.sources if kind in ("assumption", "override"))


def _figure(entry: dict[str, Any], name: str, where: str) -> tuple[Any, tuple[str, str, str, str]]:
    item = entry.get(name)
    if not isinstance(item, dict) or "value" not in item:
        raise SpecError(f"{where}: {name} must be a mapping {{value, kind, source, date}}, got {item!r}")
    kind = str(item.get("kind", ""))
    if kind not in KINDS:
        raise SpecError(f"{where}: {name}.kind={kind!r}, must be one of {', '.join(KINDS)}")
    for key in ("source", "date"):
        if not item.get(key):
            raise SpecError(f"{where}: {name}.{key} is missing (every default needs a source and a date)")
    value = item["value"]
    if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
        raise SpecError(f"{where}: {name}.value={value!r}, must be a number >= 0 or null")
    return (None if value is None else float(value)), (name, kind, str(item["source"]), str(item["date"]))


def _parse_system(name: str, entry: Any, where: str) -> SystemCost:
    where = f"{where}: {name}"
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: must be a mapping of figures")
    values: dict[str, Any] = {}
    sources = []
    for figure in FIGURES:
        values[figure], source = _figure(entry, figure, where)
        sources.append(source)
    for required in ("lifetime_years", "cost_of_capital", "opex_usd_per_year", "pue"):
        if values[required] is None:
            raise SpecError(f"{where}: {required} must be a number, got null")
    mode = entry.get("default_mode")
    if mode not in ("capex", "rental"):
        raise SpecError(f"{where}: default_mode={mode!r}, must be capex or rental")
    num_chips = entry.get("num_chips")
    if not isinstance(num_chips, int) or num_chips < 1:
        raise SpecError(f"{where}: num_chips={num_chips!r}, must be an integer >= 1")
    return SystemCost(
        name=name, chip=str(entry.get("chip", "")), num_chips=num_chips, default_mode=mode,
        sources=tuple(sources), description=str(entry.get("description", "")), **values,
    )


@cache
def load_systems(path: Path = DATA_FILE) -> tuple[dict[str, SystemCost], dict[str, str]]:
    """All systems of a data file, and the chip -> default system map."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise SpecError(f"{path}: top level must be a mapping of systems")
    chip_map = data.pop("chip_systems", {}) or {}
    systems = {name: _parse_system(name, entry, str(path)) for name, entry in data.items()}
    for chip, system in chip_map.items():
        if system not in systems:
            raise SpecError(f"{path}: chip_systems[{chip!r}]={system!r}, not a system of the file")
    return systems, dict(chip_map)


def generic_system(chip: ChipSpec) -> SystemCost:
    """A stand-in for a chip with no system entry: an 8-chip (or scale-up-domain) server
    priced from the catalog's chip figures plus the HGX H100 host/network/rack shares.
    Unknown catalog figures (0 in the chip YAML) stay unknown."""
    base, _ = load_systems()
    hgx = base["hgx-h100"]
    n = max(1, min(8, chip.scaleup_domain))
    per = n / hgx.num_chips
    price = chip.price_usd * n if chip.price_usd > 0 else None
    rest = (hgx.capex_hosts_usd or 0) * per
    network = None if price is None else (price + rest) / 7
    tdp = chip.tdp_w if chip.tdp_w > 0 else None
    note = f"generic: catalog chip figures for {chip.name} + HGX H100 host shares"
    sources = tuple((f, "assumption" if f not in ("capex_chips_usd", "chip_max_w") else "estimate", note, "2026-05") for f in FIGURES)
    return replace(
        hgx, name=f"generic-{chip.name}", chip=chip.name, num_chips=n, capex_chips_usd=price,
        capex_hosts_usd=rest, capex_network_usd=network, capex_rack_usd=(hgx.capex_rack_usd or 0) * per,
        chip_max_w=tdp, chip_idle_w=None if tdp is None else 0.2 * tdp, fixed_w=(hgx.fixed_w or 0) * per,
        opex_usd_per_year=0.03 * (price + rest) if price is not None else 0.0,
        rental_usd_per_chip_hour=None, sources=sources, description=note,
    )


def check_named_system(cfg: CostConfig) -> None:
    """Raise ValueError (pydantic turns it into a field error) when cfg.system is unknown or
    lacks the figures of the chosen mode after overrides."""
    systems, _ = load_systems()
    if cfg.system not in systems:
        raise ValueError(f"cost.system={cfg.system!r}: unknown; valid: auto, {', '.join(sorted(systems))}")
    try:
        resolve_system(cfg, _placeholder_chip(systems[cfg.system]), where="cost")
    except ScenarioError as exc:
        raise ValueError(str(exc).removeprefix("cost: ")) from None


def _placeholder_chip(system: SystemCost) -> ChipSpec:
    return ChipSpec(system.chip, "", "", 0, 0, 0, 0, 0, 0, system.num_chips, 0, 0, 0, "")


@dataclass(frozen=True, slots=True)
class CostPlan:
    """A system with the scenario's overrides applied, and how the run is billed."""

    system: SystemCost
    mode: str  # capex | rental
    pue: float
    electricity_usd_per_kwh: float


def asked_for(cfg: CostConfig) -> bool:
    """Whether the scenario asked for cost figures explicitly (then a missing system is an
    error; with all defaults, a chip without figures only makes cost unavailable)."""
    return bool(cfg.system != "auto" or cfg.mode != "auto" or cfg.facility_power_mw is not None
                or cfg.overrides.model_dump(exclude_none=True))


def check_cost(cfg: CostConfig, chip: ChipSpec, chips_per_replica: int, where: str) -> None:
    """Resolve the cost section before a run (errors name the field), so a bad one never
    costs a simulation or a half-written run directory."""
    if not cfg.enabled:
        return
    try:
        resolve_system(cfg, chip, chips_per_replica, where)
    except ScenarioError:
        if asked_for(cfg):
            raise


def resolve_system(cfg: CostConfig, chip: ChipSpec, chips_per_replica: int = 1, where: str = "scenario") -> CostPlan:
    """Pick the system (by name, or from the chip), apply overrides, choose the mode, and
    check that mode has its figures; errors name the `cost.` field and the fix."""
    systems, chip_map = load_systems()
    if cfg.system != "auto":
        if cfg.system not in systems:
            raise ScenarioError(f"{where}: cost.system={cfg.system!r}: unknown; valid: auto, {', '.join(sorted(systems))}")
        system = systems[cfg.system]
        if system.chip != chip.name:
            same_chip = sorted(n for n, s in systems.items() if s.chip == chip.name)
            raise ScenarioError(
                f"{where}: cost.system={cfg.system!r} holds {system.chip} chips but deployment.chip={chip.name!r}; "
                f"valid for {chip.name}: auto" + "".join(f", {n}" for n in same_chip)
                + " (or auto with cost.overrides for a chip without a system entry)"
            )
    elif chip.name in chip_map:
        system = systems[chip_map[chip.name]]
        if system.name == "trn2-server" and chips_per_replica > system.num_chips:
            system = systems["trn2-ultraserver"]
    else:
        system = generic_system(chip)
    changed = {k: v for k, v in cfg.overrides.model_dump().items() if v is not None}
    if changed:
        sources = tuple(
            (f, "override", "scenario cost.overrides", "scenario") if f in changed else (f, k, s, d)
            for f, k, s, d in system.sources
        )
        system = replace(system, **changed, sources=sources)
    mode = system.default_mode if cfg.mode == "auto" else cfg.mode
    if mode == "rental" and system.rental_usd_per_chip_hour is None:
        raise ScenarioError(
            f"{where}: cost.mode=rental but system {system.name} has no rental price; "
            "set cost.overrides.rental_usd_per_chip_hour or use cost.mode: capex"
        )
    if mode == "capex":
        missing = [f for f in (*CAPEX_PARTS, "chip_max_w", "chip_idle_w", "fixed_w") if getattr(system, f) is None]
        if missing:
            raise ScenarioError(
                f"{where}: cost.mode=capex but system {system.name} has no {', '.join(missing)} "
                f"(unknown: {system.description or 'not sold'}); set cost.overrides.{missing[0]} and the others, "
                "or use cost.mode: rental"
            )
    if system.chip_idle_w is not None and system.chip_max_w is not None and system.chip_idle_w > system.chip_max_w:
        raise ScenarioError(
            f"{where}: cost.overrides: chip_idle_w={system.chip_idle_w} exceeds chip_max_w={system.chip_max_w} for {system.name}"
        )
    pue = cfg.pue if cfg.pue is not None else system.pue
    if cfg.facility_power_mw is not None and system.peak_it_w:
        check_power_budget(cfg.facility_power_mw, system, pue, f"{where}: cost.facility_power_mw")
    return CostPlan(system, mode, pue, cfg.electricity_usd_per_kwh)


def systems_in_budget(power_mw: float, system: SystemCost, pue: float) -> int:
    """How many systems a facility of `power_mw` holds when each is provisioned at its peak
    IT power times PUE: floor(power_mw x 1e6 / (PUE x peak IT W)).

    >>> h = load_systems()[0]["hgx-h200"]  # (8 x 700 + 4600) W = 10.2 kW peak, x PUE 1.3 = 13.26 kW
    >>> systems_in_budget(1.0, h, 1.3), systems_in_budget(0.013, h, 1.3)
    (75, 0)
    """
    peak = system.peak_it_w
    if peak is None or peak <= 0:
        raise ValueError(f"systems_in_budget: system {system.name} has no chip_max_w/fixed_w")
    return math.floor(power_mw * 1e6 / pue / peak + 1e-9)


def check_power_budget(power_mw: object, system: SystemCost, pue: float, field: str) -> int:
    """The number of systems `power_mw` holds; ScenarioError naming `field` when the value is
    not a finite number > 0 or is too small for one system (the message gives the minimum)."""
    if not isinstance(power_mw, (int, float)) or isinstance(power_mw, bool) or not 0 < power_mw < math.inf:
        raise ScenarioError(f"{field}={power_mw!r}, must be a finite number of MW > 0")
    num = systems_in_budget(float(power_mw), system, pue)
    if num < 1:
        need_mw = (system.peak_it_w or 0.0) * pue / 1e6
        raise ScenarioError(
            f"{field}={power_mw:g} holds no {system.name} system: one needs {need_mw:.6g} MW "
            f"(peak IT {(system.peak_it_w or 0.0) / 1e3:,.2f} kW x PUE {pue:g}); give at least {need_mw:.6g}"
        )
    return num
