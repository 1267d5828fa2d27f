"""One replica's engine as a SimPy process: plan a step, wait its duration, commit, repeat.

Who runs is `Batcher.plan_step()`; how long is the `StepTimer` (a pure perf model bound
to the replica). Both are tested without SimPy; this process only holds time.

Fast-forward: when the batcher says a pure-decode batch will repeat unchanged for k
steps, the engine computes all k durations at once and waits once. An arrival during the
span interrupts it; the step in progress completes and the span is cut there, so the
records equal those of stepping one by one (tests check this). Times are summed
sequentially from the span start exactly as single steps would be.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import simpy

from clustersim.perf.load import BatchLoad
from clustersim.serving.batcher import Batcher, StepPlan
from clustersim.serving.request import Request


class StepTimer(Protocol):
    """How long steps take on one replica (a pure perf model behind a narrow interface)."""

    def step(self, load: BatchLoad) -> tuple[float, float, float, float, float]:
        """(step_s, flops, hbm_bytes, compute_util, hbm_util) of one step."""
        ...

    def decode_run(self, load: BatchLoad, num_steps: int) -> tuple[np.ndarray, ...]:
        """Arrays (step_s, flops, hbm_bytes, compute_util, hbm_util) for num_steps decode
        steps starting at `load`, each equal to `step` on the successive loads."""
        ...


@dataclass(slots=True)
class StepSpan:
    """One plan run for one or more identical decode steps, with each step's figures."""

    plan: StepPlan
    start_s: float
    ends_s: np.ndarray
    costs: tuple[np.ndarray, ...]  # step_s, flops, hbm_bytes, compute_util, hbm_util per step
    kv_used: np.ndarray | None  # None when no step records are kept
    num_waiting: int
    kv_total: int


StepSink = Callable[[int, StepSpan, int], None]
"""Receives (replica_id, span, num_done): the first num_done steps of the span completed."""


def span_columns(replica_id: int, span: StepSpan, num_done: int) -> dict[str, np.ndarray]:
    """The steps.arrow columns of a span's first num_done steps."""
    load = span.plan.load
    step_s, flops, hbm_bytes, compute_util, hbm_util = (c[:num_done] for c in span.costs)
    return {
        "start_s": np.concatenate(([span.start_s], span.ends_s[: num_done - 1])),
        "replica": np.full(num_done, replica_id, dtype=np.int32),
        "step_s": step_s,
        "num_seqs": np.full(num_done, load.num_seqs, dtype=np.int32),
        "num_prefill_tokens": np.full(num_done, load.num_prefill_tokens, dtype=np.int32),
        "num_decode_tokens": np.full(num_done, span.plan.num_decode_tokens, dtype=np.int32),
        "flops": flops,
        "hbm_bytes": hbm_bytes,
        "compute_util": compute_util.astype(np.float32),
        "hbm_util": hbm_util.astype(np.float32),
        "kv_blocks_used": span.kv_used[:num_done].astype(np.int32),
        "kv_blocks_total": np.full(num_done, span.kv_total, dtype=np.int32),
        "num_waiting": np.full(num_done, span.num_waiting, dtype=np.int32),
        "num_sampled": np.full(num_done, load.num_sampled, dtype=np.int32),
    }


class Engine:
    """A replica serving requests: owns its Batcher and its SimPy process."""

    def __init__(
        self,
        env: simpy.Environment,
        replica_id: int,
        batcher: Batcher,
        timer: StepTimer,
        on_finish: Callable[[Request], None],
        on_steps: StepSink | None = None,
        fast_forward: bool = True,
        max_span_steps: int = 2048,
        on_evicted: Callable[[list[Request]], None] | None = None,
    ) -> None:
        self.env = env
        self.replica_id = replica_id
        self.batcher = batcher
        self.timer = timer
        self.on_finish = on_finish
        self.on_steps = on_steps
        self.fast_forward = fast_forward
        self.max_span_steps = max_span_steps
        self.on_evicted = on_evicted
        self.num_steps = 0
        self.busy_s = 0.0
        self.down = False
        self.num_lost_tokens = 0  # computed tokens whose KV died with the replica (recomputed on retry)
        self._wake: simpy.Event | None = None
        self._restored: simpy.Event | None = None
        self._span: StepSpan | None = None  # a span an arrival may still cut
        self._pending: tuple[StepSpan, int] | None = None  # span being waited on, steps it will complete
        self._stepping = False  # waiting on a step (or span) timeout
        self._clock = 0.0
        self.process = env.process(self._run())

    def submit(self, request: Request) -> None:
        """Hand a request to this replica (called by the router at its arrival time)."""
        assert not self.down, "the router never sends work to a replica that is down"
        request.replica = self.replica_id
        self.batcher.admit(request)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()
        elif self._span is not None:
            self.process.interrupt("arrival")

    def fail(self) -> None:
        """The replica goes down now: the step in progress is lost, steps that ended before
        now are kept, and every request it held is handed to `on_evicted` (KV lost)."""
        if self.down:
            return
        self.down = True
        if self._stepping:
            self.process.interrupt("failure")
        elif self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def restore(self) -> None:
        """The replica serves again (repair and weight reload are the caller's clock)."""
        if not self.down:
            return
        self.down = False
        if self._restored is not None and not self._restored.triggered:
            self._restored.succeed()

    def _run(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        while True:
            if self.down:
                self._evict()
                self._restored = env.event()
                yield self._restored
                self._restored = None
                self._clock = env.now
                continue
            if self.batcher.idle:
                self._wake = env.event()
                yield self._wake
                self._wake = None
                self._clock = env.now
                continue  # re-check: the wake-up may be a failure
            start_s = self._clock  # the end of our last step, or the wake-up instant
            plan = self.batcher.plan_step()
            assert plan is not None, "router only routes requests that fit an empty replica"
            if self.fast_forward:
                num_steps, kv_used = self.batcher.decode_span(plan, self.max_span_steps, self.on_steps is not None)
            else:
                num_steps, kv_used = 1, None
            span = self._make_span(plan, start_s, num_steps, kv_used)
            num_done = yield from self._wait_for(span)
            if num_done:
                self._commit(span, num_done)

    def _wait_for(self, span: StepSpan) -> Generator[simpy.Event, Any, int]:
        """Wait for the span's steps; returns how many completed. An arrival cuts the span
        after the step in progress; a failure loses the step in progress (steps that ended
        strictly before the failure instant count, as with single stepping)."""
        env = self.env
        num_steps = len(span.ends_s)
        target = num_steps
        self._span = span if num_steps > 1 else None
        self._stepping = True
        try:
            while True:
                self._pending = (span, target)
                try:
                    yield env.timeout(max(0.0, float(span.ends_s[target - 1]) - env.now))
                    return target
                except simpy.Interrupt as interrupt:
                    if interrupt.cause == "failure":
                        return int(np.searchsorted(span.ends_s[:target], env.now, side="left"))
                    self._span = None  # arrival: finish the step in progress, then re-plan
                    target = min(target, int(np.searchsorted(span.ends_s, env.now, side="left")) + 1)
        finally:
            self._span = None
            self._pending = None
            self._stepping = False

    def _evict(self) -> None:
        """Drop every request this replica holds; their KV is lost with the replica."""
        evicted = [*self.batcher.running, *self.batcher.waiting]
        self.batcher.running = []
        self.batcher.waiting.clear()
        for request in evicted:
            self.batcher.kv.free(request)
            self.num_lost_tokens += request.num_computed_tokens
            request.num_computed_tokens = 0
        if evicted and self.on_evicted is not None:
            self.on_evicted(evicted)

    def _make_span(self, plan: StepPlan, start_s: float, num_steps: int, kv_used: np.ndarray | None) -> StepSpan:
        """Durations, costs and KV use of the plan's one step, or of its whole decode span
        (kv_used is None when no step records are kept)."""
        kv = self.batcher.kv
        if num_steps == 1:
            values = np.array(self.timer.step(plan.load))
            costs = (values[0:1], values[1:2], values[2:3], values[3:4], values[4:5])
            kv_used = np.array([kv.num_used_blocks]) if self.on_steps is not None else None
            ends = np.array([start_s + values[0]])
        else:
            costs = self.timer.decode_run(plan.load, num_steps)
            ends = np.cumsum(np.concatenate(([start_s], costs[0])))[1:]
        return StepSpan(plan, start_s, ends, costs, kv_used, len(self.batcher.waiting), kv.num_total_blocks)

    def _commit(self, span: StepSpan, num_done: int) -> None:
        end_s = float(span.ends_s[num_done - 1])
        if num_done == 1:
            finished = self.batcher.commit(span.plan, end_s)
        else:
            finished = self.batcher.commit_span(num_done, end_s)
        self._clock = end_s
        self.num_steps += num_done
        self.busy_s += end_s - span.start_s
        if self.on_steps is not None:
            self.on_steps(self.replica_id, span, num_done)
        for request in finished:
            self.on_finish(request)

    def finalize(self, horizon_s: float) -> None:
        """At a horizon, commit the steps in flight that ended strictly before it (exactly
        what single stepping would have committed); the step in progress is not done."""
        if self._pending is None:
            return
        span, target = self._pending
        self._pending = self._span = None
        num_done = min(target, int(np.searchsorted(span.ends_s, horizon_s, side="left")))
        if num_done > 0:
            self._commit(span, num_done)
