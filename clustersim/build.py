"""From a validated Scenario to the specs and pure models a run needs.

Cross-field physics is checked here, against the catalog, with errors that name the
scenario field: an unknown chip or model, a TP degree that does not divide the attention
heads, a parallel layout larger than the chip's scale-up domain, a model that does not
fit in the replica's HBM, a `failures:` section that names an unknown class or component
(failures.plan), all before a run directory is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import networkx as nx

from clustersim.catalog import Catalog, ChipSpec, ModelSpec, load_catalog, model_from_hf_config
from clustersim.collectives import GraphComm, PartitionError, Router
from clustersim.cost.systems import check_cost
from clustersim.errors import PlacementError, ScenarioError, SpecError
from clustersim.failures.blast import BlastModel, ReplicaBlast
from clustersim.failures.plan import FailurePlan, resolve_failures
from clustersim.perf import ReplicaPerf, kv_bytes_per_token, kv_capacity_tokens, weight_bytes
from clustersim.perf.efficiency import Efficiency, load_stack_table, resolve, stacks_of
from clustersim.scenario import Scenario
from clustersim.topology.files import load_topology
from clustersim.topology.placement import ReplicaPlacement, place_replicas


@dataclass(frozen=True, slots=True)
class Built:
    """Everything static about a run: specs, the replica's perf model and its KV capacity.

    With a topology, `replicas` holds one ReplicaPerf per replica whose communication is
    routed on the graph at its placed chips (`placements`); without one, every replica
    shares `replica` and its alpha-beta communication.
    """

    scenario: Scenario
    chip: ChipSpec
    model: ModelSpec
    replica: ReplicaPerf
    kv_capacity_tokens: int
    num_kv_blocks: int
    replicas: tuple[ReplicaPerf, ...] = ()
    graph: nx.DiGraph | None = None
    placements: tuple[ReplicaPlacement, ...] = ()
    failure_plan: FailurePlan | None = None

    def replica_perf(self, index: int) -> ReplicaPerf:
        return self.replicas[index] if self.replicas else self.replica

    @property
    def num_chips(self) -> int:
        return self.replica.num_chips * self.scenario.deployment.num_replicas


def _stack_efficiency(chip: ChipSpec, stack: str, where: str) -> Efficiency | None:
    """The efficiency factors of `stack` on the chip's family (None: the family's own, chosen
    by ReplicaPerf); a stack without its own entry for that family is an error, not a silent
    fallback."""
    if not stack:
        return None
    table = load_stack_table()
    valid = stacks_of(table, chip.family)
    if stack not in valid:
        choices = "'' (the family's factors)" + "".join(f", {s!r}" for s in valid)
        raise ScenarioError(
            f"{where}: engine.stack={stack!r} has no efficiency entry for {chip.name} (family {chip.family}); "
            f"valid: {choices} (stack entries live in clustersim/perf/efficiency.yaml, stacks:)"
        )
    return resolve(table, chip.family, stack)


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
    attn_tp = dep.tp // dep.attn_dp if dep.tp % dep.attn_dp == 0 else dep.tp  # attention's own TP degree
    if model.num_heads % attn_tp:
        raise ScenarioError(
            f"{where}: deployment.tp={dep.tp}, must divide num_heads={model.num_heads} of {model.name} "
            f"({_divisors(model.num_heads)}), or use attention data parallelism (attn_dp = tp = ep, MoE models)"
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
    if dep.attn_dp > 1 and (not model.is_moe or dep.attn_dp != dep.tp or dep.ep != dep.tp):
        raise ScenarioError(
            f"{where}: deployment.attn_dp={dep.attn_dp} with tp={dep.tp}, ep={dep.ep} on {model.name}: attention "
            "data parallelism (DEP) needs a mixture-of-experts model and attn_dp = tp = ep; use attn_dp: 1 for plain TP"
        )
    replica = ReplicaPerf(
        chip=chip,
        model=model,
        tp=dep.tp,
        ep=dep.ep,
        pp=dep.pp,
        weight_dtype=dep.weight_dtype or model.weight_dtype,
        kv_dtype=dep.kv_dtype,
        attn_dp=dep.attn_dp,
        efficiency=_stack_efficiency(chip, scenario.engine.stack, where),
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
    built = Built(scenario, chip, model, replica, capacity, capacity // block_size)
    if scenario.topology is not None:
        built = _place(built, where)
    check_cost(scenario.cost, chip, replica.num_chips, where)
    plan = resolve_failures(scenario.failures, lambda: blast_model(built), scenario.run.max_sim_s, where)
    return replace(built, failure_plan=plan)


def blast_model(built: Built) -> BlastModel | ReplicaBlast:
    """The blast model of the deployment: on its placed topology, else chips grouped by replica."""
    if built.graph is not None and built.placements:
        return BlastModel(built.graph, built.placements)
    return ReplicaBlast(built.scenario.deployment.num_replicas, built.replica.num_chips)


TOPOLOGY_CHIPS = {
    ("nvl72", "gb200"): "GB200", ("nvl72", "gb300"): "GB300",
    ("hgx", "h100"): "H100", ("hgx", "h200"): "H200", ("hgx", "b200"): "B200", ("hgx", "b300"): "B300",
    ("tpu_slice", "v5e"): "TPU v5e", ("tpu_slice", "v6e"): "TPU v6e", ("tpu_slice", "v5p"): "TPU v5p", ("tpu_slice", "v7"): "TPU v7",
    ("trn2", None): "Trainium2",
}
"""Which catalog chip each topology builder's graph is made of."""


def topology_chip(graph: nx.DiGraph) -> str | None:
    """The catalog chip name of a topology graph, from its builder and parameters."""
    builder = graph.graph.get("builder")
    params = graph.graph.get("params", {})
    variant = params.get("version") or params.get("gpu")
    return TOPOLOGY_CHIPS.get((builder, variant)) or TOPOLOGY_CHIPS.get((builder, None))


def _place(built: Built, where: str) -> Built:
    """Load the topology, place the replicas on it, route each replica's collectives."""
    scenario = built.scenario
    topo = scenario.topology
    assert topo is not None
    dep = scenario.deployment
    try:
        graph = load_topology(topo.name)
    except SpecError as exc:
        raise ScenarioError(f"{where}: topology.name={topo.name!r}: {exc}") from None
    graph_chip = topology_chip(graph)
    if graph_chip is not None and load_catalog(scenario.catalog_dirs).chip(graph_chip).name != built.chip.name:
        raise ScenarioError(
            f"{where}: deployment.chip={dep.chip!r}, but topology {topo.name!r} is built of {graph_chip}; "
            f"use deployment.chip: {graph_chip!r} or a topology of {built.chip.name} chips"
        )
    try:
        placements = place_replicas(graph, dep.num_replicas, dep.tp, dep.ep, dep.pp, policy=topo.policy, within=topo.within)
    except PlacementError as exc:
        raise ScenarioError(f"{where}: deployment.num_replicas={dep.num_replicas} x tp={dep.tp} on topology {topo.name!r}: {exc}") from None
    replicas = []
    router = Router(graph)  # one route cache for every replica: their groups share switches and links
    for placement in placements:
        try:
            comm = GraphComm.build(graph, placement.chips, placement.stage_size,
                                   group_sizes=_group_sizes(dep.tp, dep.ep, placement), router=router)
        except PartitionError as exc:
            raise ScenarioError(f"{where}: topology {topo.name!r}: replica {placement.index} cannot reach its chips: {exc}") from None
        replicas.append(replace(built.replica, comm=comm))
    return replace(built, replicas=tuple(replicas), graph=graph, placements=tuple(placements))


def _group_sizes(tp: int, ep: int, placement: ReplicaPlacement) -> list[int]:
    """The group sizes the step model asks about: TP all-reduce and EP all-to-all."""
    return sorted({s for s in (tp, ep) if s > 1} | {2}) if len(placement.chips) > 1 else [1]
