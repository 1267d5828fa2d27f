"""Wiring of failures into one run: sample the schedule, start the injector, write events.arrow.

The simulate module calls, after building its engines and before running:

    hooks = attach_failures(run, scenario.failures, out_dir)

and, once the env has run and requests.arrow is closed:

    summary["failures"] = hooks.finish(out_dir / "requests.arrow", horizon_s=run.env.now)

(`hooks.abort()` on an exception; attach_failures returns None when failures are off).
`hooks.history` holds each replica's perf model over time (degraded, restored, out) for
links.arrow. The section was checked by build() (`run.built.failure_plan`); the topology
and placements come from `run.built.graph` / `run.built.placements`; without a topology,
chips are grouped by replica only (a chip fault downs its replica).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import pyarrow as pa

from clustersim.failures.blast import BlastModel, ReplicaBlast
from clustersim.failures.config import FailuresConfig
from clustersim.failures.injector import FailureInjector
from clustersim.failures.plan import FailurePlan, resolve_failures
from clustersim.failures.records import EVENTS, effective_capacity, failure_summary
from clustersim.failures.schedule import Fault, sample_faults
from clustersim.records import ArrowWriter
from clustersim.records.links import PerfHistory
from clustersim.topology.placement import ReplicaPlacement


def reload_time_s(weight_bytes_per_chip: float, reload_bw_bytes_s: float, engine_init_s: float) -> float:
    """Seconds before a repaired replica serves: weights over the reload path, then engine init.

    >>> reload_time_s(17.5e9, 0.875e9, 30.0)  # Llama 2 70B bf16 over TP8 at the s6 rate
    50.0
    """
    return weight_bytes_per_chip / reload_bw_bytes_s + engine_init_s


def fault_schedule(plan: FailurePlan, seed_rng: Any, horizon_s: float | None) -> list[Fault]:
    """Sampled faults up to horizon_s (when config.random and a horizon is known) plus the
    plan's scripted ones."""
    assert plan.blast is not None, "a plan with failures enabled has its blast model"
    if not plan.config.random or not horizon_s:
        return sorted(plan.scripted, key=lambda f: (f.time_s, f.component))
    return sample_faults(seed_rng, plan.blast.components(), plan.classes, horizon_s, plan.scripted)


@dataclasses.dataclass
class FailureHooks:
    """What a run holds while failures are on: the injector, the events writer, the faults."""

    injector: FailureInjector
    events_out: ArrowWriter
    faults: list[Fault]
    engines: list[Any]
    history: PerfHistory | None = None

    def finish(self, requests_path: str | Path, horizon_s: float) -> dict[str, Any]:
        """Close events.arrow and return summary["failures"] (see records.failure_summary)."""
        stats = self.events_out.close()
        with pa.OSFile(str(self.events_out.path)) as src:
            events = pa.ipc.open_file(src).read_all()
        lost = sum(e.num_lost_tokens for e in self.engines)
        out = failure_summary(events, Path(requests_path), len(self.engines), horizon_s, lost)
        if self.history is not None:
            out["mean_effective_capacity"] = effective_capacity(self.history, horizon_s)
        out["file"] = {"events.arrow": {"rows": stats.num_rows, "bytes": stats.num_bytes}}
        return out

    def abort(self) -> None:
        self.events_out.abort()


class PerfSwitch:
    """The injector's `degrade` and `on_service` hooks for a run: swaps engine r's timer for one
    whose perf model uses `comm` (a GraphComm on the degraded graph), puts the original back on
    (r, None, None), and records every change, and every time a replica goes out or comes back,
    in `history` (time = the run's clock)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.healthy: dict[int, Any] = {}
        self.history = PerfHistory([run.built.replica_perf(r) for r in range(len(run.engines))])

    def degrade(self, r: int, graph: nx.DiGraph | None, comm: Any) -> None:
        from clustersim.serving.timing import PerfTimer

        engine = self.run.engines[r]
        if graph is None or comm is None:
            if r in self.healthy:
                engine.timer = self.healthy.pop(r)
        else:
            self.healthy.setdefault(r, engine.timer)
            engine.timer = PerfTimer(dataclasses.replace(self.run.built.replica_perf(r), comm=comm))
        if not engine.down:
            self.history.record(r, self.run.env.now, engine.timer.replica)

    def on_service(self, r: int, serving: bool) -> None:
        perf = self.run.engines[r].timer.replica if serving else None
        self.history.record(r, self.run.env.now, perf)


def timer_swapper(run: Any) -> Any:
    """The `degrade` hook of a fresh PerfSwitch (timers swapped, no history kept by the caller)."""
    return PerfSwitch(run).degrade


def attach_failures(
    run: Any,
    config: FailuresConfig,
    out_dir: str | Path,
    graph: nx.DiGraph | None = None,
    placements: Sequence[ReplicaPlacement] | None = None,
    degrade: Any = None,
) -> FailureHooks | None:
    """Start failure injection on a built `_Run` (env, cluster, engines, built, source);
    None when config.enabled is false. The checked plan comes from run.built.failure_plan
    when `config` is the one build() checked (else it is checked here); graph/placements
    default to run.built's; `degrade` defaults to a PerfSwitch's, whose history the hooks keep."""
    if not config.enabled:
        return None
    from clustersim.perf import weight_bytes
    from clustersim.simulate import rng_for

    scenario = run.built.scenario
    replica = run.built.replica
    num_replicas = len(run.engines)
    plan = getattr(run.built, "failure_plan", None)
    if plan is None or plan.config != config or plan.blast is None or graph is not None or placements is not None:
        graph = graph if graph is not None else getattr(run.built, "graph", None)
        placements = placements if placements is not None else (getattr(run.built, "placements", None) or None)
        if graph is not None and placements is not None:
            blast: BlastModel | ReplicaBlast = BlastModel(graph, placements)
        else:
            blast = ReplicaBlast(num_replicas, replica.num_chips)
        plan = resolve_failures(config, lambda: blast, scenario.run.max_sim_s, scenario.name)
    blast = plan.blast
    horizon_s = config.horizon_s or scenario.run.max_sim_s or run.source.expected_span_s()
    faults = fault_schedule(plan, rng_for(scenario.seed, "failures"), horizon_s)
    run.cluster.max_retries = config.max_retries
    per_chip_bytes = weight_bytes(run.built.model, replica.weight_dtype) / replica.num_chips
    reload_s = reload_time_s(per_chip_bytes, config.reload_bw_bytes_s, config.engine_init_s)
    meta = {"scenario": scenario.name, "seed": str(scenario.seed), "num_faults": str(len(faults))}
    events_out = ArrowWriter(Path(out_dir) / "events.arrow", EVENTS, metadata=meta)
    switch = PerfSwitch(run) if degrade is None else None
    injector = FailureInjector(
        run.env,
        run.cluster,
        faults,
        blast.effect,
        lambda r: reload_s,
        lambda row: events_out.append(**row),
        degrade if switch is None else switch.degrade,
        reinit_s=config.engine_init_s,
        reconfig_s=config.reconfig_s,
        num_spare_cubes=blast.num_spare_cubes,
        on_service=None if switch is None else switch.on_service,
    )
    return FailureHooks(injector, events_out, faults, run.engines, None if switch is None else switch.history)
