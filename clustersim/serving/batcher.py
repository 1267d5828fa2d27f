"""Continuous batching for one replica, clock-free (the engine owns time).

The vLLM v1 idea: no prefill or decode phase. Each request has `num_tokens` (prompt plus
generated) and `num_computed_tokens`; a step lets the second catch up under a token
budget. A long prompt is split over steps (chunked prefill); a request whose computed
count reaches num_tokens samples one new token in that step.

Priority is admission order (FCFS). When the KV cache cannot hold a running request's
next tokens, the lowest-priority running request is preempted: its blocks are freed, its
computed count resets to 0 (it will recompute prompt + generated tokens) and it goes to
the front of the waiting queue. New requests are admitted only in steps without
preemption, and only while blocks, budget and `max_num_seqs` allow.

A steady decode batch (every running request generating one token, nothing admissible)
repeats identically until a request finishes or KV blocks run out; `decode_span` says
for how many steps, so the engine can advance them at once with identical results.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from clustersim.perf.load import BatchLoad
from clustersim.serving.kv_cache import KVCache
from clustersim.serving.request import Request


@dataclass(slots=True)
class StepPlan:
    """Who runs in one step and how many new tokens each computes."""

    scheduled: list[tuple[Request, int]]
    load: BatchLoad
    num_preempted: int
    num_decode_tokens: int

    @property
    def is_pure_decode(self) -> bool:
        return self.num_preempted == 0 and self.load.num_tokens == self.num_decode_tokens


@dataclass(slots=True)
class Batcher:
    """Waiting queue, running batch and KV blocks of one replica."""

    kv: KVCache
    max_num_batched_tokens: int
    max_num_seqs: int
    waiting: deque[Request] = field(default_factory=deque)
    running: list[Request] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def admit(self, request: Request) -> None:
        """Queue a request (it is scheduled by a later plan_step)."""
        self.waiting.append(request)

    def plan_step(self) -> StepPlan | None:
        """Choose this step's requests and allocate their KV blocks; None if nothing can run."""
        budget = self.max_num_batched_tokens
        scheduled: list[tuple[Request, int]] = []
        num_preempted = 0
        index = 0
        while index < len(self.running) and budget > 0:
            request = self.running[index]
            num_new = min(request.num_tokens - request.num_computed_tokens, budget)
            if self.kv.allocate(request, request.num_computed_tokens + num_new):
                scheduled.append((request, num_new))
                budget -= num_new
                index += 1
                continue
            victim = self.running.pop()
            self._preempt(victim)
            num_preempted += 1
            if victim is request:
                break
        if num_preempted == 0:
            while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
                request = self.waiting[0]
                num_new = min(request.num_tokens - request.num_computed_tokens, budget)
                if not self.kv.allocate(request, request.num_computed_tokens + num_new):
                    break
                self.waiting.popleft()
                self.running.append(request)
                scheduled.append((request, num_new))
                budget -= num_new
        if not scheduled:
            return None
        return _plan_of(scheduled, num_preempted)

    def _preempt(self, request: Request) -> None:
        self.kv.free(request)
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        self.waiting.appendleft(request)

    def commit(self, plan: StepPlan, end_s: float) -> list[Request]:
        """Apply a finished step: advance computed counts, sample tokens, retire finished requests."""
        finished: list[Request] = []
        for request, num_new in plan.scheduled:
            request.num_computed_tokens += num_new
            if request.num_computed_tokens == request.num_tokens:
                request.num_generated += 1
                if request.num_generated == 1:
                    request.first_token_s = end_s
                if request.done:
                    request.finish_s = end_s
                    finished.append(request)
        if finished:
            self._retire(finished)
        return finished

    def _retire(self, finished: list[Request]) -> None:
        for request in finished:
            self.kv.free(request)
        done = {id(r) for r in finished}
        self.running = [r for r in self.running if id(r) not in done]

    def decode_span(self, plan: StepPlan, max_steps: int) -> np.ndarray | None:
        """KV blocks in use during each step of the span that this pure-decode plan starts
        (length k >= 2, step 0 being this plan), or None when the plan will not repeat.

        The plan repeats while no request finishes, no new KV block request fails and
        nothing can be admitted (free blocks only shrink during decode, so a head that
        could not be admitted now cannot be later). Step j of the span (j >= 1) needs a
        new block for request i iff (c_i + j) % block_size == 0, c_i being its computed
        count before the span.
        """
        if not plan.is_pure_decode or len(plan.scheduled) != len(self.running) or max_steps <= 1:
            return None
        budget_left = self.max_num_batched_tokens - plan.load.num_tokens
        if self.waiting and len(self.running) < self.max_num_seqs and budget_left > 0:
            head = self.waiting[0]
            num_new = min(head.num_tokens - head.num_computed_tokens, budget_left)
            if self.kv.extra_blocks(head, head.num_computed_tokens + num_new) <= self.kv.num_free_blocks:
                return None  # admissible (plan_step only skips it after a preemption): no span
        limit = min(min(r.spec.num_output_tokens - r.num_generated for r in self.running), max_steps)
        if limit <= 1:
            return None
        block_size = self.kv.block_size
        computed = np.fromiter((r.num_computed_tokens for r in self.running), dtype=np.int64, count=len(self.running))
        phases = np.bincount((-computed) % block_size, minlength=block_size)
        increments = phases[np.arange(limit) % block_size]
        increments[0] = 0  # step 0 is already allocated
        used = self.kv.num_used_blocks + np.cumsum(increments)
        over = np.flatnonzero(used > self.kv.num_total_blocks)
        num_steps = int(over[0]) if over.size else limit
        return used[:num_steps] if num_steps >= 2 else None

    def commit_span(self, num_steps: int, end_s: float) -> list[Request]:
        """Apply num_steps steps of a steady decode span (the first already allocated)."""
        finished: list[Request] = []
        for request in self.running:
            request.num_computed_tokens += num_steps
            request.num_generated += num_steps
            ok = self.kv.allocate(request, request.num_computed_tokens)
            assert ok, "decode_span guaranteed these blocks"
            if request.done:
                request.finish_s = end_s
                finished.append(request)
        if finished:
            self._retire(finished)
        return finished


def _plan_of(scheduled: list[tuple[Request, int]], num_preempted: int) -> StepPlan:
    """Sum the per-request loads of a step (see perf.load for the formulas)."""
    num_tokens = num_prefill = num_sampled = kv_read = 0
    pairs = 0.0
    for request, num_new in scheduled:
        cached = request.num_computed_tokens
        num_tokens += num_new
        if num_new > 1 or cached < request.spec.num_prompt_tokens:
            num_prefill += num_new  # prompt chunks and recomputation after preemption
        if cached + num_new == request.num_tokens:
            num_sampled += 1
        pairs += num_new * cached + num_new * (num_new + 1) / 2
        kv_read += cached + num_new
    load = BatchLoad(
        num_tokens=num_tokens,
        num_prefill_tokens=num_prefill,
        num_seqs=len(scheduled),
        num_sampled=num_sampled,
        attn_pairs=pairs,
        kv_read_tokens=kv_read,
    )
    return StepPlan(scheduled, load, num_preempted, num_tokens - num_prefill)
