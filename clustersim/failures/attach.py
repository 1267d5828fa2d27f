"""Wiring of failures into one run: sample the schedule, start the injector, write events.arrow.

The simulate module calls, after building its engines and before running:

    hooks = attach_failures(run, scenario.failures, out_dir)

and, once the env has run and requests.arrow is closed:

    summary["failures"] = hooks.finish(out_dir / "requests.arrow", horizon_s=run.env.now)

(`hooks.abort()` on an exception; attach_failures returns None when failures are off).
The topology and placements come from `run.built.graph` / `run.built.placements`; without a
topology, chips are grouped by replica only (a chip fault downs its replica).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import pyarrow as pa

from clustersim.failures.blast import BlastModel, ReplicaBlast, normalize_component
from clustersim.failures.config import FailuresConfig
from clustersim.failures.injector import FailureInjector
from clustersim.failures.records import EVENTS, failure_summary
from clustersim.failures.schedule import Fault, sample_faults, scripted_faults
from clustersim.failures.spec import load_failure_classes
from clustersim.records import ArrowWriter
from clustersim.topology.placement import ReplicaPlacement


def reload_time_s(weight_bytes_per_chip: float, reload_bw_bytes_s: float, engine_init_s: float) -> float:
    """Seconds before a repaired replica serves: weights over the reload path, then engine init.

    >>> reload_time_s(17.5e9, 0.875e9, 30.0)  # Llama 2 70B bf16 over TP8 at the s6 rate
    50.0
    """
    return weight_bytes_per_chip / reload_bw_bytes_s + engine_init_s


def fault_schedule(
    config: FailuresConfig, blast: BlastModel | ReplicaBlast, seed_rng: Any, horizon_s: float | None
) -> list[Fault]:
    """Sampled faults up to horizon_s (when config.random and a horizon is known) plus scripted ones."""
    class_of = blast.class_of()
    scripted = scripted_faults(
        [(s.at_s, normalize_component(s.component), s.duration_s) for s in config.scripted], class_of
    )
    if not config.random or not horizon_s:
        return sorted(scripted, key=lambda f: (f.time_s, f.component))
    classes = load_failure_classes(config.classes)
    return sample_faults(seed_rng, blast.components(), classes, horizon_s, scripted)


@dataclasses.dataclass
class FailureHooks:
    """What a run holds while failures are on: the injector, the events writer, the faults."""

    injector: FailureInjector
    events_out: ArrowWriter
    faults: list[Fault]
    engines: list[Any]

    def finish(self, requests_path: str | Path, horizon_s: float) -> dict[str, Any]:
        """Close events.arrow and return summary["failures"] (see records.failure_summary)."""
        stats = self.events_out.close()
        with pa.memory_map(str(self.events_out.path)) as src:
            events = pa.ipc.open_file(src).read_all()
        with pa.memory_map(str(requests_path)) as src:
            requests = pa.ipc.open_file(src).read_all()
        lost = sum(e.num_lost_tokens for e in self.engines)
        out = failure_summary(events, requests, len(self.engines), horizon_s, lost)
        out["file"] = {"events.arrow": {"rows": stats.num_rows, "bytes": stats.num_bytes}}
        return out

    def abort(self) -> None:
        self.events_out.abort()


def timer_swapper(run: Any) -> Any:
    """degrade(r, graph, comm) that swaps engine r's timer for one whose perf model uses
    `comm` (a GraphComm on the degraded graph), and puts the original back on (r, None, None)."""
    from clustersim.serving.timing import PerfTimer

    healthy: dict[int, Any] = {}

    def degrade(r: int, graph: nx.DiGraph | None, comm: Any) -> None:
        engine = run.engines[r]
        if graph is None or comm is None:
            if r in healthy:
                engine.timer = healthy.pop(r)
            return
        healthy.setdefault(r, engine.timer)
        replica = dataclasses.replace(run.built.replica_perf(r), comm=comm)
        engine.timer = PerfTimer(replica)

    return degrade


def attach_failures(
    run: Any,
    config: FailuresConfig,
    out_dir: str | Path,
    graph: nx.DiGraph | None = None,
    placements: Sequence[ReplicaPlacement] | None = None,
    degrade: Any = None,
) -> FailureHooks | None:
    """Start failure injection on a built `_Run` (env, cluster, engines, built, source);
    None when config.enabled is false. graph/placements default to run.built's; `degrade`
    defaults to `timer_swapper(run)`."""
    if not config.enabled:
        return None
    from clustersim.perf import weight_bytes
    from clustersim.simulate import rng_for

    scenario = run.built.scenario
    replica = run.built.replica
    num_replicas = len(run.engines)
    graph = graph if graph is not None else getattr(run.built, "graph", None)
    placements = placements if placements is not None else (getattr(run.built, "placements", None) or None)
    if graph is not None and placements is not None:
        blast: BlastModel | ReplicaBlast = BlastModel(graph, placements)
    else:
        blast = ReplicaBlast(num_replicas, replica.num_chips)
    horizon_s = config.horizon_s or scenario.run.max_sim_s or run.source.expected_span_s()
    faults = fault_schedule(config, blast, rng_for(scenario.seed, "failures"), horizon_s)
    run.cluster.max_retries = config.max_retries
    per_chip_bytes = weight_bytes(run.built.model, replica.weight_dtype) / replica.num_chips
    reload_s = reload_time_s(per_chip_bytes, config.reload_bw_bytes_s, config.engine_init_s)
    meta = {"scenario": scenario.name, "seed": str(scenario.seed), "num_faults": str(len(faults))}
    events_out = ArrowWriter(Path(out_dir) / "events.arrow", EVENTS, metadata=meta)
    injector = FailureInjector(
        run.env,
        run.cluster,
        faults,
        blast.effect,
        lambda r: reload_s,
        lambda row: events_out.append(**row),
        degrade if degrade is not None else timer_swapper(run),
        reinit_s=config.engine_init_s,
        reconfig_s=config.reconfig_s,
        num_spare_cubes=blast.num_spare_cubes,
    )
    return FailureHooks(injector, events_out, faults, run.engines)
