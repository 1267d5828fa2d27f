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


@dataclass(frozen=True, slots=True)
class DecodeSpan:
    """A plan's step followed by identical decode steps: num_steps in all (1 = no span);
    kv_used[j] = KV blocks in use during step j (only when asked for); `tail` is the load
    of step 1 when step 0 differs from the decode steps (it finished prefills), else None
    (steps 1.. are step 0's load advanced, see perf.advance_decode)."""

    num_steps: int
    kv_used: np.ndarray | None = None
    tail: BatchLoad | None = None


NO_SPAN = DecodeSpan(1)


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

    def decode_span(self, plan: StepPlan, max_steps: int, with_kv_used: bool = True) -> DecodeSpan:
        """How many steps the batch this plan starts will run unchanged (see `DecodeSpan`).

        A plan starts a span when, after its step, every request it runs decodes one token per
        step: it preempts nothing, runs every running request, and each of them samples at the
        end of the step (a pure decode step, or the last chunk of a prefill). The batch then
        repeats while no request finishes, no new KV block request fails and nothing can be
        admitted (free blocks only shrink during decode, so a head that could not be admitted
        at step 1 cannot be later). With b_i = c_i + n_i - 1 (c_i computed before the span,
        n_i tokens in step 0), step j >= 1 needs a new block for request i iff
        (b_i + j) % block_size == 0: over steps 1..k-1, (b_i + k - 1) // bs - b_i // bs blocks.
        """
        running = self.running
        scheduled = plan.scheduled
        num_seqs = len(running)
        if (plan.num_preempted or len(scheduled) != num_seqs or plan.load.num_sampled != num_seqs
                or max_steps <= 1):
            return NO_SPAN
        kv = self.kv
        budget_left = self.max_num_batched_tokens - num_seqs  # a decode step's budget
        if self.waiting and num_seqs < self.max_num_seqs and budget_left > 0:
            head = self.waiting[0]
            num_new = min(head.num_tokens - head.num_computed_tokens, budget_left)
            if kv.extra_blocks(head, head.num_computed_tokens + num_new) <= kv.num_free_blocks:
                return NO_SPAN  # admissible at step 1 (or only skipped after a preemption): no span
        limit = max_steps
        for r in running:
            left = r.spec.num_output_tokens - r.num_generated
            if left < limit:
                limit = left
        if limit <= 1:
            return NO_SPAN
        pure = plan.is_pure_decode
        bases = [r.num_computed_tokens + n - 1 for r, n in scheduled]  # scheduled order is running order
        block_size = kv.block_size
        needed = 0
        for b in bases:
            needed += (b + limit - 1) // block_size - b // block_size
        num_steps, kv_used = limit, None
        if needed > kv.num_total_blocks - kv.num_used_blocks or with_kv_used:
            phases = np.bincount((-np.array(bases, dtype=np.int64)) % block_size, minlength=block_size)
            increments = phases[np.arange(limit) % block_size]
            increments[0] = 0  # step 0 is already allocated
            used = kv.num_used_blocks + np.cumsum(increments)
            over = np.flatnonzero(used > kv.num_total_blocks)
            num_steps = int(over[0]) if over.size else limit
            if num_steps < 2:
                return NO_SPAN
            kv_used = used[:num_steps] if with_kv_used else None
        return DecodeSpan(num_steps, kv_used, None if pure else _decode_load(bases))

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


def _decode_load(bases: list[int]) -> BatchLoad:
    """The load of a decode step for requests holding b_i + 1 computed tokens each, summed
    term by term exactly as plan_step would (so records are bitwise equal)."""
    pairs = 0.0
    kv_read = 0
    for b in bases:
        cached = b + 1
        pairs += cached + 1.0  # n*c + n*(n+1)/2 with n = 1
        kv_read += cached + 1
    num = len(bases)
    return BatchLoad(num, 0, num, num, pairs, kv_read)


def _add_load(sums: list, request: Request, cached: int, num_new: int, known: int) -> None:
    """Add one request's terms to a step's running sums (see perf.load for the formulas)."""
    sums[0] += num_new
    if num_new > 1 or cached < request.spec.num_prompt_tokens:
        sums[1] += num_new  # prompt chunks and recomputation after preemption
    if cached + num_new == known:
        sums[2] += 1
    sums[3] += cached + num_new
    sums[4] += num_new * cached + num_new * (num_new + 1) / 2
