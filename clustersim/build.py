"""From a validated Scenario to the specs and pure models a run needs.

Cross-field physics is checked here, against the catalog, with errors that name the
scenario field: an unknown chip or model, a TP degree that does not divide the attention
heads, a parallel layout larger than the chip's scale-up domain, a model that does not
fit in the replica's HBM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clustersim.catalog import Catalog, ChipSpec, ModelSpec, load_catalog, model_from_hf_config
from clustersim.errors import ScenarioError, SpecError
from clustersim.perf import ReplicaPerf, kv_bytes_per_token, kv_capacity_tokens, weight_bytes
from clustersim.scenario import Scenario


@dataclass(frozen=True, slots=True)
class Built:
    """Everything static about a run: specs, the replica's perf model and its KV capacity."""

    scenario: Scenario
    chip: ChipSpec
    model: ModelSpec
    replica: ReplicaPerf
    kv_capacity_tokens: int
    num_kv_blocks: int

    @property
    def num_chips(self) -> int:
        return self.replica.num_chips * self.scenario.deployment.num_replicas


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


def _model(catalog: Catalog, name: str) -> ModelSpec:
    """A catalog model by name, or a Hugging Face config.json given by path."""
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        return model_from_hf_config(path, name=path.parent.name if path.name == "config.json" else path.stem, source=str(path))
    return catalog.model(name)


def build(scenario: Scenario, where: str = "scenario") -> Built:
    """Resolve specs and check the deployment is physically possible."""
    try:
        catalog = load_catalog(scenario.catalog_dirs)
    except SpecError as exc:
        raise ScenarioError(f"{where}: catalog_dirs: {exc}") from None
    try:
        chip = catalog.chip(scenario.deployment.chip)
    except SpecError as exc:
        raise ScenarioError(f"{where}: deployment.chip={scenario.deployment.chip!r}: {exc}") from None
    try:
        model = _model(catalog, scenario.model)
    except SpecError as exc:
        raise ScenarioError(f"{where}: model={scenario.model!r}: {exc}") from None
    dep = scenario.deployment
    if model.num_heads % dep.tp:
        raise ScenarioError(
            f"{where}: deployment.tp={dep.tp}, must divide num_heads={model.num_heads} of {model.name} "
            f"({_divisors(model.num_heads)})"
        )
    if dep.tp * dep.pp > chip.scaleup_domain:
        raise ScenarioError(
            f"{where}: deployment.tp x pp = {dep.tp * dep.pp} chips, more than the {chip.name} scale-up "
            f"domain of {chip.scaleup_domain}; use a smaller tp/pp or more replicas"
        )
    if dep.ep > 1 and not model.is_moe:
        raise ScenarioError(f"{where}: deployment.ep={dep.ep}, but {model.name} is not a mixture-of-experts model; use ep: 1")
    if dep.ep > dep.tp * dep.pp:
        raise ScenarioError(f"{where}: deployment.ep={dep.ep}, must be <= tp x pp = {dep.tp * dep.pp} (experts spread over the replica's chips)")
    if model.is_moe and model.num_experts % dep.ep:
        raise ScenarioError(f"{where}: deployment.ep={dep.ep}, must divide num_experts={model.num_experts} ({_divisors(model.num_experts)})")
    if model.num_layers % dep.pp:
        raise ScenarioError(f"{where}: deployment.pp={dep.pp}, must divide num_layers={model.num_layers} ({_divisors(model.num_layers)})")
    replica = ReplicaPerf(
        chip=chip,
        model=model,
        tp=dep.tp,
        ep=dep.ep,
        pp=dep.pp,
        weight_dtype=dep.weight_dtype or model.weight_dtype,
        kv_dtype=dep.kv_dtype,
    )
    capacity = kv_capacity_tokens(replica, reserve_fraction=scenario.engine.kv_reserve_fraction)
    block_size = scenario.engine.block_size
    if capacity < block_size:
        need = weight_bytes(model, replica.weight_dtype) / 1e9
        have = chip.hbm_bytes * replica.num_chips * (1 - scenario.engine.kv_reserve_fraction) / 1e9
        raise ScenarioError(
            f"{where}: deployment: {model.name} in {replica.weight_dtype} needs {need:.1f} GB of weights plus KV "
            f"({kv_bytes_per_token(model, dep.kv_dtype) / 1e3:.1f} kB/token) but tp x pp = {replica.num_chips} x "
            f"{chip.name} leaves {have:.1f} GB usable; raise deployment.tp or pp, use a smaller weight_dtype, "
            "or lower engine.kv_reserve_fraction"
        )
    return Built(scenario, chip, model, replica, capacity, capacity // block_size)
