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
        """Choose this step's requests and allocate their KV blocks; None if nothing can run.

        The step's BatchLoad is summed in the same pass (see perf.load for the terms): this
        is the simulator's innermost loop, so KV allocation is inlined here too.
        """
        budget = self.max_num_batched_tokens
        kv = self.kv
        block_size = kv.block_size
        scheduled: list[tuple[Request, int]] = []
        sums = [0, 0, 0, 0, 0.0]  # num_tokens, num_prefill, num_sampled, kv_read, pairs
        num_preempted = 0
        running = self.running
        index = 0
        while index < len(running) and budget > 0:
            request = running[index]
            cached = request.num_computed_tokens
            known = request.spec.num_prompt_tokens + request.num_generated
            num_new = min(known - cached, budget)
            extra = -(-(cached + num_new) // block_size) - request.num_kv_blocks
            if extra <= 0 or extra <= kv.num_total_blocks - kv.num_used_blocks:
                if extra > 0:
                    request.num_kv_blocks += extra
                    kv.num_used_blocks += extra
                scheduled.append((request, num_new))
                _add_load(sums, request, cached, num_new, known)
                budget -= num_new
                index += 1
                continue
            victim = running.pop()
            self._preempt(victim)
            num_preempted += 1
            if victim is request:
                break
        if num_preempted == 0:
            waiting = self.waiting
            while waiting and budget > 0 and len(running) < self.max_num_seqs:
                request = waiting[0]
                cached = request.num_computed_tokens
                known = request.spec.num_prompt_tokens + request.num_generated
                num_new = min(known - cached, budget)
                if not kv.allocate(request, cached + num_new):
                    break
                waiting.popleft()
                running.append(request)
                scheduled.append((request, num_new))
                _add_load(sums, request, cached, num_new, known)
                budget -= num_new
        if not scheduled:
            return None
        num_tokens, num_prefill, num_sampled, kv_read, pairs = sums
        load = BatchLoad(num_tokens, num_prefill, len(scheduled), num_sampled, pairs, kv_read)
        return StepPlan(scheduled, load, num_preempted, num_tokens - num_prefill)

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

    def decode_span(self, plan: StepPlan, max_steps: int, with_kv_used: bool = True) -> tuple[int, np.ndarray | None]:
        """(k, kv_used) for the span that this pure-decode plan starts: it repeats for k steps
        (step 0 being this plan); kv_used[j] is the KV blocks in use during step j, given only
        when `with_kv_used` (the step records want it). k = 1 when the plan will not repeat.

        The plan repeats while no request finishes, no new KV block request fails and
        nothing can be admitted (free blocks only shrink during decode, so a head that
        could not be admitted now cannot be later). Step j of the span (j >= 1) needs a
        new block for request i iff (c_i + j) % block_size == 0, c_i being its computed
        count before the span; over steps 1..k-1 that is (c_i + k - 1) // b - c_i // b blocks.
        """
        running = self.running
        if not plan.is_pure_decode or len(plan.scheduled) != len(running) or max_steps <= 1:
            return 1, None
        kv = self.kv
        budget_left = self.max_num_batched_tokens - plan.load.num_tokens
        if self.waiting and len(running) < self.max_num_seqs and budget_left > 0:
            head = self.waiting[0]
            num_new = min(head.num_tokens - head.num_computed_tokens, budget_left)
            if kv.extra_blocks(head, head.num_computed_tokens + num_new) <= kv.num_free_blocks:
                return 1, None  # admissible (plan_step only skips it after a preemption): no span
        limit = max_steps
        for r in running:
            left = r.spec.num_output_tokens - r.num_generated
            if left < limit:
                limit = left
        if limit <= 1:
            return 1, None
        block_size = kv.block_size
        free = kv.num_total_blocks - kv.num_used_blocks
        needed = 0
        for r in running:
            c = r.num_computed_tokens
            needed += (c + limit - 1) // block_size - c // block_size
        if needed <= free and not with_kv_used:
            return limit, None
        computed = np.fromiter((r.num_computed_tokens for r in running), dtype=np.int64, count=len(running))
        phases = np.bincount((-computed) % block_size, minlength=block_size)
        increments = phases[np.arange(limit) % block_size]
        increments[0] = 0  # step 0 is already allocated
        used = kv.num_used_blocks + np.cumsum(increments)
        over = np.flatnonzero(used > kv.num_total_blocks)
        num_steps = int(over[0]) if over.size else limit
        if num_steps < 2:
            return 1, None
        return num_steps, used[:num_steps] if with_kv_used else None

    def commit_span(self, num_steps: int, end_s: float) -> list[Request]:
        """Apply num_steps steps of a steady decode span (the first already allocated)."""
        finished: list[Request] = []
        kv = self.kv
        block_size = kv.block_size
        for request in self.running:
            request.num_computed_tokens += num_steps
            request.num_generated += num_steps
            extra = -(-request.num_computed_tokens // block_size) - request.num_kv_blocks
            if extra > 0:  # decode_span guaranteed these blocks
                request.num_kv_blocks += extra
                kv.num_used_blocks += extra
            if request.num_generated >= request.spec.num_output_tokens:
                request.finish_s = end_s
                finished.append(request)
        assert kv.num_used_blocks <= kv.num_total_blocks, "decode_span guaranteed these blocks"
        if finished:
            self._retire(finished)
        return finished


def _add_load(sums: list, request: Request, cached: int, num_new: int, known: int) -> None:
    """Add one request's terms to a step's running sums (see perf.load for the formulas)."""
    sums[0] += num_new
    if num_new > 1 or cached < request.spec.num_prompt_tokens:
        sums[1] += num_new  # prompt chunks and recomputation after preemption
    if cached + num_new == known:
        sums[2] += 1
    sums[3] += cached + num_new
    sums[4] += num_new * cached + num_new * (num_new + 1) / 2
