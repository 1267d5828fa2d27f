"""One replica's engine on the SimPy clock: plan a step, wait its duration, commit, repeat.

Who runs is `Batcher.plan_step()`; how long is the `StepTimer` (a pure perf model bound
to the replica). Both are tested without SimPy; the engine only holds time, as callbacks
on scheduled SimPy events (no generator process: on a busy replica every arrival would
cost an Interrupt, an exception and a resume).

Fast-forward: when the batcher says a batch will then decode unchanged for k steps (its
plan is a decode step, or the step that ends the prefills of everyone it runs), the
engine computes all k durations at once and waits once. An arrival during the span cuts
it after the step in progress, so the records equal those of stepping one by one (tests
check this). Times are summed sequentially from the span start exactly as single steps
would be.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np
import simpy
from simpy.core import NORMAL, URGENT

from clustersim.perf.load import BatchLoad
from clustersim.perf.step_time import end_times
from clustersim.serving.batcher import NO_SPAN, Batcher, DecodeSpan, KVPhases, StepPlan
from clustersim.serving.clock import event_in
from clustersim.serving.request import Request


class StepTimer(Protocol):
    """How long steps take on one replica (a pure perf model behind a narrow interface)."""

    peak_flops_s: float  # the replica's, for utilization in the step records
    peak_bytes_s: float

    def step(self, load: BatchLoad) -> tuple[float, float, float]:
        """(step_s, flops, hbm_bytes) of one step."""
        ...

    def decode_run(self, load: BatchLoad, num_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arrays (step_s, flops, hbm_bytes) for num_steps decode steps starting at `load`,
        each equal to `step` on the successive loads."""
        ...

    # Optional fast paths (bitwise equal to the above; the engine falls back without them):
    #   step_s(load) -> float: step's step_s alone;
    #   decode_ends(load, num_steps, start_s) -> Sequence[float]: start_s plus decode_run's
    #   step_s added one by one (each step's end time);
    #   step_rows(num_tokens, num_seqs, num_sampled, attn_pairs, kv_read_tokens) -> arrays
    #   (step_s, flops, hbm_bytes), `step` of each row's load (the step log's bulk path).


@dataclass(slots=True)
class StepSpan:
    """One plan run for one or more identical decode steps: when each step ends, and (when
    step records are kept) what the step log needs to rebuild each step's row in bulk."""

    plan: StepPlan
    start_s: float
    ends_s: Sequence[float]  # a list, tuple or array
    tail: BatchLoad | None = None  # load of steps 1.. when step 0 (which ends prefills) differs
    # step records only:
    timer: StepTimer | None = None  # the replica's timer when the span was planned
    num_waiting: int = 0
    kv_total: int = 0
    kv_start: int = 0  # KV blocks in use during step 0
    kv_used: np.ndarray | None = None  # per step, when the batcher computed it (KV ran short)
    kv_phases: KVPhases | None = None  # else what rebuilds it (batcher.DecodeSpan)

    def first_and_rest(self) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
        """COUNT_COLUMNS of step 0 and of every later step (they differ when step 0 ended prefills)."""
        head, tail = self.plan, self.tail
        first = (head.load.num_seqs, head.load.num_prefill_tokens, head.num_decode_tokens, head.load.num_sampled)
        rest = first if tail is None else (tail.num_seqs, 0, tail.num_tokens, tail.num_sampled)
        return first, rest


def _decode_ends(timer: StepTimer, load: BatchLoad, num_steps: int, start_s: float) -> np.ndarray:
    """End times of a decode run from a timer without the decode_ends fast path."""
    return end_times(start_s, timer.decode_run(load, num_steps)[0])


def _num_ended_before(ends_s: Sequence[float], time_s: float) -> int:
    """Steps of a span that end strictly before time_s (ends_s ascending)."""
    if isinstance(ends_s, np.ndarray):
        return int(np.searchsorted(ends_s, time_s, side="left"))
    return bisect_left(ends_s, time_s)


COUNT_COLUMNS = ("num_seqs", "num_prefill_tokens", "num_decode_tokens", "num_sampled")
"""steps.arrow columns counted per step, in StepSpan.first_and_rest order."""

StepSink = Callable[[int, StepSpan, int], None]
"""Receives (replica_id, span, num_done): the first num_done steps of the span completed
(serving.step_log turns them into steps.arrow rows)."""


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
        on_evicted: Callable[[list[tuple[Request, bool]]], None] | None = None,
    ) -> None:
        self.env = env
        self.replica_id = replica_id
        self.batcher = batcher
        self.timer = timer  # a property: binds the timer's fast paths
        self.on_finish = on_finish
        self.on_steps = on_steps
        self.fast_forward = fast_forward
        self.max_span_steps = max_span_steps
        self.on_evicted = on_evicted
        self.num_steps = 0
        self.busy_s = 0.0
        self.down = False
        self.num_lost_tokens = 0  # computed tokens whose KV died with the replica (recomputed on retry)
        self._idle = True  # nothing to run; the next submit schedules a wake-up
        self._wake_pending = False
        self._awaiting_restore = False
        self._span: StepSpan | None = None  # a span an arrival may still cut
        self._pending: tuple[StepSpan, int] | None = None  # span being waited on, steps it will complete
        self._stepping = False  # waiting on a step (or span) end
        self._generation = 0  # the live end-of-span event carries this; older ones are stale
        self._clock = 0.0

    @property
    def timer(self) -> StepTimer:
        return self._timer

    @timer.setter
    def timer(self, timer: StepTimer) -> None:
        """Swap the step-time model (failures degrade a replica): its fast paths come with it,
        and a decode span under way ends after the step in progress, so the steps after the
        swap take the new times, as single stepping gives."""
        self._timer = timer
        self._step_s = getattr(timer, "step_s", None) or (lambda load: timer.step(load)[0])
        self._decode_ends = getattr(timer, "decode_ends", None) or partial(_decode_ends, timer)
        if getattr(self, "_span", None) is not None:
            self._cut_span_after_step_in_progress()

    # The engine is a small state machine driven by callbacks on scheduled SimPy events
    # (a generator process costs an Interrupt and a resume per arrival on a busy replica).
    # Priorities keep the tie rule of serving.clock: wake-ups, step ends and restores are
    # NORMAL, so every arrival at the same instant is admitted before the next plan; a
    # failure is URGENT, so a step ending at the failure instant is lost.

    def submit(self, request: Request) -> None:
        """Hand a request to this replica (called by the router at its arrival time)."""
        assert not self.down, "the router never sends work to a replica that is down"
        request.replica = self.replica_id
        self.batcher.admit(request)
        if self._idle:
            self._idle = False
            self._wake_later()
        elif self._span is not None:
            self._cut_span_after_step_in_progress()

    def fail(self) -> None:
        """The replica goes down now: the step in progress is lost, steps that ended before
        now are kept, and every request it held is handed to `on_evicted` (KV lost)."""
        if self.down:
            return
        self.down = True
        if self._stepping:
            self._call_in(0.0, self._on_failure_cut, URGENT)
        elif self._idle:
            self._idle = False
            self._wake_later()

    def restore(self) -> None:
        """The replica serves again (repair and weight reload are the caller's clock)."""
        if not self.down:
            return
        self.down = False
        if self._awaiting_restore:
            self._awaiting_restore = False
            self._call_in(0.0, self._on_wake)

    def _call_in(self, delay_s: float, callback: Callable[[simpy.Event], None], priority: int = NORMAL,
                 value: int = 0) -> None:
        event_in(self.env, delay_s, priority, value).callbacks.append(callback)

    def _wake_later(self) -> None:
        self._wake_pending = True
        self._call_in(0.0, self._on_wake)

    def _on_wake(self, _event: simpy.Event) -> None:
        self._wake_pending = False
        self._clock = self.env.now
        self._plan_next()

    def _plan_next(self) -> None:
        """At the end of the last step (or a wake-up): evict if down, idle if empty, else
        plan the next step or span and schedule its end."""
        if self.down:
            self._evict()
            self._awaiting_restore = True
            return
        if self.batcher.idle:
            self._idle = True
            return
        plan = self.batcher.plan_step()
        assert plan is not None, "router only routes requests that fit an empty replica"
        if self.fast_forward:
            shape = self.batcher.decode_span(plan, self.max_span_steps, self.on_steps is not None)
        else:
            shape = NO_SPAN
        span = self._make_span(plan, self._clock, shape)
        num_steps = len(span.ends_s)
        self._span = span if num_steps > 1 else None
        self._stepping = True
        self._end_after(span, num_steps)

    def _end_after(self, span: StepSpan, target: int) -> None:
        """(Re)schedule the wait to end after the span's first `target` steps."""
        self._pending = (span, target)
        self._generation += 1
        self._call_in(max(0.0, float(span.ends_s[target - 1]) - self.env.now), self._on_span_end,
                      value=self._generation)

    def _cut_span_after_step_in_progress(self) -> None:
        """An arrival during a span: finish the step in progress, then re-plan."""
        span, target = self._pending
        self._span = None
        cut = min(target, _num_ended_before(span.ends_s, self.env.now) + 1)
        if cut < target:
            self._end_after(span, cut)

    def _on_span_end(self, event: simpy.Event) -> None:
        if event._value != self._generation or not self._stepping:
            return  # superseded by a cut, a failure or the horizon
        span, target = self._pending
        self._stop_waiting()
        self._commit(span, target)
        self._plan_next()

    def _on_failure_cut(self, _event: simpy.Event) -> None:
        """Steps that ended strictly before the failure instant count, as with single stepping."""
        if self._pending is None:  # nothing in flight any more (e.g. the horizon closed it)
            self._plan_next()
            return
        span, target = self._pending
        self._stop_waiting()
        num_done = min(target, _num_ended_before(span.ends_s, self.env.now))
        if num_done:
            self._commit(span, num_done)
        self._plan_next()

    def _stop_waiting(self) -> None:
        self._generation += 1
        self._span = None
        self._pending = None
        self._stepping = False

    def _evict(self) -> None:
        """Drop every request this replica holds; their KV is lost with the replica. Each is
        handed to `on_evicted` with whether it had computed KV here (steps that ended before
        the failure are committed by now), so a request that only queued loses nothing."""
        evicted = []
        for request in self.batcher.drain():
            evicted.append((request, request.num_computed_tokens > 0))
            self.num_lost_tokens += request.num_computed_tokens
            request.num_computed_tokens = 0
        if evicted and self.on_evicted is not None:
            self.on_evicted(evicted)

    def _make_span(self, plan: StepPlan, start_s: float, shape: DecodeSpan) -> StepSpan:
        """The end time of the plan's one step, or of each step of its decode span; with step
        records, what the step log needs to rebuild every step's figures later, in bulk."""
        num_steps = shape.num_steps
        if num_steps == 1:
            ends: Sequence[float] = (start_s + self._step_s(plan.load),)
        elif shape.tail is None:
            ends = self._decode_ends(plan.load, num_steps, start_s)
        else:  # step 0 finishes prefills; the rest decode
            first_end_s = start_s + self._step_s(plan.load)
            rest = self._decode_ends(shape.tail, num_steps - 1, first_end_s)
            ends = [first_end_s, *rest] if isinstance(rest, list) else np.concatenate(((first_end_s,), rest))
        if self.on_steps is None:
            return StepSpan(plan, start_s, ends, shape.tail)
        kv = self.batcher.kv
        return StepSpan(plan, start_s, ends, shape.tail, self.timer, len(self.batcher.waiting), kv.num_total_blocks,
                        kv.num_used_blocks, shape.kv_used, shape.phases)

    def _commit(self, span: StepSpan, num_done: int) -> None:
        end_s = float(span.ends_s[num_done - 1])
        if num_done == 1:
            finished = self.batcher.commit(span.plan, end_s)
        elif span.tail is None:
            finished = self.batcher.commit_span(num_done, end_s)
        else:  # step 0 ended prefills (nobody finishes there: the span would be one step)
            self.batcher.commit(span.plan, float(span.ends_s[0]))
            finished = self.batcher.commit_span(num_done - 1, end_s)
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
        self._stop_waiting()
        num_done = min(target, _num_ended_before(span.ends_s, horizon_s))
        if num_done > 0:
            self._commit(span, num_done)
