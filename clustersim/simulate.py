"""One run: build the replicas, feed the workload through the router, stream the records.

Wiring only. How long a step takes is the perf model's business; who runs in a step is the
batcher's; this module connects the SimPy processes and the Arrow writers, and writes the
run directory: requests.arrow and steps.arrow as the run goes, then summary.json, then
manifest.json last (a run directory without a manifest is incomplete).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import simpy

import clustersim
from clustersim.build import Built, build
from clustersim.checks import check_source
from clustersim.errors import ScenarioError
from clustersim.cost import write_cost_trace
from clustersim.failures.attach import FailureHooks, attach_failures
from clustersim.records import REQUESTS, STEPS, ArrowWriter, WriteStats, request_values, summarize, write_json_atomic
from clustersim.records.links import write_link_trace
from clustersim.scenario import Scenario
from clustersim.serving.batcher import Batcher
from clustersim.serving.clock import ArrivalFeed
from clustersim.serving.engine import Engine
from clustersim.serving.kv_cache import KVCache
from clustersim.serving.request import Request, Status
from clustersim.serving.cluster import Cluster
from clustersim.serving.router import Router
from clustersim.serving.sources import RequestSource
from clustersim.serving.step_log import StepLog
from clustersim.serving.timing import PerfTimer

SPAWN_KEYS = {"workload": 0, "lengths": 1, "router": 2, "failures": 3}
"""Fixed child-stream keys of the run's SeedSequence: adding a component never shifts another's stream."""


@dataclass(frozen=True, slots=True)
class RunResult:
    out_dir: Path
    summary: dict[str, Any]
    num_requests: int
    num_steps: int
    wall_s: float


def rng_for(seed: int, component: str) -> np.random.Generator:
    """The component's own generator, from the run seed and a fixed spawn key."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPAWN_KEYS[component],)))


class _Run:
    """State of one simulation: engines, router, source, writers."""

    def __init__(self, built: Built, source: RequestSource, out_dir: Path) -> None:
        scenario = built.scenario
        self.built = built
        self.env = simpy.Environment()
        self.source = source
        meta = {"scenario": scenario.name, "seed": str(scenario.seed), "clustersim_version": clustersim.__version__}
        self.requests_out = ArrowWriter(out_dir / "requests.arrow", REQUESTS, batch_rows=8192, metadata=meta)
        self.steps_out = ArrowWriter(out_dir / "steps.arrow", STEPS, metadata=meta) if scenario.run.record_steps else None
        self.step_log = StepLog(self.steps_out) if self.steps_out is not None else None
        self.cluster = Cluster(
            self.env,
            Router(scenario.router.policy, scenario.deployment.num_replicas),
            max_tokens=min(built.kv_capacity_tokens, built.num_kv_blocks * scenario.engine.block_size),
            max_context=built.model.max_context,
            on_record=self._record,
        )
        self.engines = [
            Engine(
                self.env,
                replica_id,
                Batcher(
                    KVCache(built.num_kv_blocks, scenario.engine.block_size),
                    max_num_batched_tokens=scenario.engine.max_num_batched_tokens,
                    max_num_seqs=scenario.engine.max_num_seqs,
                ),
                PerfTimer(built.replica_perf(replica_id)),
                on_finish=self.cluster.finished,
                on_steps=self.step_log,
                fast_forward=scenario.engine.fast_forward,
                on_evicted=self.cluster.evicted,
            )
            for replica_id in range(scenario.deployment.num_replicas)
        ]
        self.cluster.attach(self.engines)
        self.num_recorded = 0

    def start(self) -> None:
        ArrivalFeed(self.env, self.source.initial(), self.cluster.arrive)

    def _record(self, request: Request) -> None:
        """The one terminal record of a request; a closed-loop client then sends its next."""
        self.requests_out.append_values(request_values(request))
        self.num_recorded += 1
        if request.status is not Status.UNFINISHED:
            spec = self.source.next_after(request.spec, self.env.now)
            if spec is not None:
                ArrivalFeed(self.env, (spec,), self.cluster.arrive)

    def finish(self, horizon_s: float | None) -> None:
        """Close the books: spans cut at the horizon, unfinished requests recorded."""
        if horizon_s is not None:
            for engine in self.engines:
                engine.finalize(horizon_s)
        for request in self.cluster.unfinished():
            request.status = Status.UNFINISHED
            self._record(request)


ProgressFn = Callable[[float, float], None]


def simulate(scenario: Scenario, out_dir: str | Path, progress: ProgressFn | None = None, where: str = "scenario") -> RunResult:
    """Run a scenario and write its run directory; returns the summary."""
    wall_start = time.perf_counter()
    built = build(scenario, where)
    out = Path(out_dir)
    # inputs (trace files included) are read before the run directory is touched
    source = check_source(scenario, where)
    _prepare_out_dir(out)
    run = _Run(built, source, out)
    hooks = attach_failures(run, scenario.failures, out)
    try:
        run.start()
        horizon = scenario.run.max_sim_s
        _advance(run.env, horizon, run.source.expected_span_s(), progress)
        run.finish(horizon)
        req_stats = run.requests_out.close()
        if run.step_log is not None:
            run.step_log.flush()
        step_stats = run.steps_out.close() if run.steps_out is not None else None
    except BaseException:
        if hooks is not None:
            hooks.abort()
        run.requests_out.abort()
        if run.steps_out is not None:
            run.steps_out.abort()
        raise
    summary, files = _write_summaries(run, out, where, req_stats, step_stats, hooks)
    num_steps = sum(e.num_steps for e in run.engines)
    wall_s = time.perf_counter() - wall_start
    manifest = {
        "clustersim_version": clustersim.__version__,
        "python": platform.python_version(),
        "seed": scenario.seed,
        "scenario": scenario.model_dump(mode="json"),
        "files": files,
        "num_engine_steps": num_steps,
        "wall_s": wall_s,
    }
    write_json_atomic(out / "manifest.json", manifest)
    return RunResult(out, summary, req_stats.num_rows, num_steps, wall_s)


def _write_summaries(run: _Run, out: Path, where: str, req_stats: WriteStats, step_stats: WriteStats | None,
                     hooks: FailureHooks | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """From the closed record files: links.arrow, cost.arrow, events.arrow, then summary.json.
    Returns the summary and the manifest's file list."""
    built, scenario = run.built, run.built.scenario
    files: dict[str, Any] = {"requests.arrow": _stats(req_stats)}
    if step_stats is not None:
        files["steps.arrow"] = _stats(step_stats)
    summary = summarize(
        out / "requests.arrow",
        out / "steps.arrow" if step_stats is not None else None,
        num_chips=built.num_chips,
        slo_ttft_s=scenario.slo.ttft_s,
        slo_tpot_s=scenario.slo.tpot_s,
    )
    summary["deployment"] = {
        "chip": built.chip.name,
        "model": built.model.name,
        "num_replicas": scenario.deployment.num_replicas,
        "chips_per_replica": built.replica.num_chips,
        "num_chips": built.num_chips,
        "kv_capacity_tokens_per_replica": built.kv_capacity_tokens,
        "weight_dtype": built.replica.weight_dtype,
        "kv_dtype": built.replica.kv_dtype,
    }
    summary["simulated_s"] = run.env.now
    if hooks is not None:
        summary["failures"] = hooks.finish(out / "requests.arrow", horizon_s=run.env.now)
        files.update(summary["failures"].get("file") or {})
    if built.graph is not None and step_stats is not None and scenario.topology is not None:
        history = hooks.history if hooks is not None else None  # GraphComms changed by failures, over time
        link_stats = write_link_trace(out / "links.arrow", out / "steps.arrow", built.replicas, built.graph,
                                      scenario.topology.link_bucket_s, history, scenario.topology.link_detail)
        files["links.arrow"] = _stats(link_stats)
        summary["deployment"]["topology"] = scenario.topology.name
        summary["deployment"]["placement"] = [list(p.chips) for p in built.placements[:8]]
    summary["cost"] = write_cost_trace(out, built, scenario.cost, end_s=run.env.now, busy_s=[e.busy_s for e in run.engines], where=where)
    if summary["cost"].get("file"):
        files["cost.arrow"] = summary["cost"]["file"]
    write_json_atomic(out / "summary.json", summary)
    files["summary.json"] = {}
    return summary, files


def _stats(stats: WriteStats) -> dict[str, int]:
    return {"rows": stats.num_rows, "bytes": stats.num_bytes}


RUN_FILES = ("manifest.json", "summary.json", "requests.arrow", "steps.arrow", "links.arrow", "cost.arrow", "events.arrow")
"""Files a run may write; the manifest is listed first because it is removed first."""


def _prepare_out_dir(out: Path) -> None:
    """Create the run directory; an old manifest goes first so a half-rewritten run never looks whole."""
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"--out {out}: exists and is not a directory; name a new or existing directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:  # a rerun never leaves an earlier run's files beside its own
            (out / name).unlink(missing_ok=True)
    except OSError as exc:  # a parent that is a file, no permission, read-only disk
        raise ScenarioError(f"--out {out}: cannot create the run directory ({exc.strerror or exc}); name a writable directory") from None


def _advance(env: simpy.Environment, horizon_s: float | None, expected_s: float, progress: ProgressFn | None) -> None:
    """Run to the horizon (or until no event is left), reporting simulated time."""
    if progress is None:
        env.run(until=horizon_s)
        return
    target = horizon_s if horizon_s is not None else max(expected_s, 1e-9)
    num_chunks = 100
    for index in range(1, num_chunks + 1):
        until = target * index / num_chunks
        if env.peek() == math.inf:
            break
        if until > env.now:
            env.run(until=until)
        progress(env.now, target)
    if horizon_s is None:
        env.run()
    progress(env.now, max(env.now, target))
