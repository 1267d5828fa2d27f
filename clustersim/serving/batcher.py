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

Running requests that decode steadily are kept in a `DecodeGroup` (serving.decode_group):
their counts advance together by a clock, and a step's load, its new KV blocks and the next
finish come from the group's running sums, so a busy replica's plan does not walk its batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from clustersim.perf.load import BatchLoad
from clustersim.serving.decode_group import DecodeGroup
from clustersim.serving.kv_cache import KVCache
from clustersim.serving.request import Request


@dataclass(slots=True)
class StepPlan:
    """Who runs in one step and how many new tokens each computes: `scheduled` one by one,
    plus every member of the replica's DecodeGroup when num_grouped > 0."""

    scheduled: list[tuple[Request, int]]
    load: BatchLoad
    num_preempted: int
    num_decode_tokens: int
    num_grouped: int = 0  # DecodeGroup members decoding one token each, besides `scheduled`

    @property
    def is_pure_decode(self) -> bool:
        return self.num_preempted == 0 and self.load.num_tokens == self.num_decode_tokens


@dataclass(frozen=True, slots=True)
class KVPhases:
    """When the requests of a decode span start new KV blocks: steps j >= 1 with j % bs == p
    add phases()[p] blocks. Kept as the group's histogram and clock plus the other requests'
    b_i (see Batcher.decode_span), so a span costs no arrays; the step log expands it."""

    hist: tuple[int, ...]  # DecodeGroup members by key % bs (empty without members)
    clock: int
    bases: tuple[int, ...]
    block_size: int

    def kv_used(self, kv_start: int, num_steps: int) -> np.ndarray:
        """KV blocks in use during each of num_steps steps, kv_start during step 0."""
        increments = self.phases()[np.arange(num_steps) % self.block_size]
        increments[0] = 0  # step 0 is already allocated
        return kv_start + np.cumsum(increments)

    def phases(self) -> np.ndarray:
        return phase_matrix((self,))[0]


def phase_matrix(phases: Sequence[KVPhases]) -> np.ndarray:
    """KVPhases.phases() of many spans (one block size) at once, one row each: a member with
    key k (c_i = k + clock) starts a block at steps j = -(k + clock) mod bs; request b_i at
    j = -b_i mod bs."""
    bs = phases[0].block_size
    hists = np.array([p.hist or (0,) * bs for p in phases], dtype=np.int64)
    clocks = np.array([p.clock for p in phases], dtype=np.int64)
    matrix = np.take_along_axis(hists, (-np.arange(bs)[None, :] - clocks[:, None]) % bs, axis=1)
    owners = np.fromiter(chain.from_iterable([i] * len(p.bases) for i, p in enumerate(phases)), dtype=np.int64)
    bases = np.fromiter(chain.from_iterable(p.bases for p in phases), dtype=np.int64, count=len(owners))
    np.add.at(matrix, (owners, (-bases) % bs), 1)
    return matrix


@dataclass(slots=True)
class DecodeSpan:
    """A plan's step followed by identical decode steps: num_steps in all (1 = no span);
    kv_used[j] = KV blocks in use during step j, computed when blocks run short and asked
    for, else `phases` rebuilds it (when asked for); `tail` is the load of step 1 when step
    0 differs from the decode steps (it finished prefills), else None (steps 1.. are step
    0's load advanced, see perf.advance_decode)."""

    num_steps: int
    kv_used: np.ndarray | None = None
    tail: BatchLoad | None = None
    phases: KVPhases | None = None


NO_SPAN = DecodeSpan(1)


@dataclass(slots=True)
class Batcher:
    """Waiting queue, running batch and KV blocks of one replica.

    `running` is the batch in priority (admission) order. Its steady decoders live in a
    `DecodeGroup` and are stepped together; the rest (prefills, recomputation) are
    `_plain`, in batch order, and scheduled one by one. While the whole batch fits the
    step's token budget and free KV blocks, a plan costs O(plain requests + admissions);
    otherwise (preemption, a binding budget) the group is dissolved and every request is
    scheduled one by one, exactly as before grouping. Group members' stored counts are
    stale: `sync()` brings them up to date for readers outside the batcher.
    """

    kv: KVCache
    max_num_batched_tokens: int
    max_num_seqs: int
    waiting: deque[Request] = field(default_factory=deque)
    running: list[Request] = field(default_factory=list)
    group_decoders: bool = True  # False: schedule every request one by one (the reference)
    group: DecodeGroup = field(init=False)
    _plain: list[Request] = field(init=False)
    _in_flight: int = field(init=False, default=0)  # 1 while a plan has allocated the group's next token

    def __post_init__(self) -> None:
        self.group = DecodeGroup(self.kv.block_size)
        self._plain = [r for r in self.running]

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def admit(self, request: Request) -> None:
        """Queue a request (it is scheduled by a later plan_step)."""
        self.waiting.append(request)

    def sync(self) -> None:
        """Bring every running request's stored counts up to date (for outside readers)."""
        self.group.sync(self._in_flight)

    def drain(self) -> list[Request]:
        """Remove every request held (batch, then queue), counts current, KV blocks freed."""
        self.group.release_all(self._in_flight)
        held = [*self.running, *self.waiting]
        self.running = []
        self._plain = []
        self.waiting.clear()
        self._in_flight = 0
        for request in held:
            self.kv.free(request)
        return held

    def plan_step(self) -> StepPlan | None:
        """Choose this step's requests and allocate their KV blocks; None if nothing can run."""
        if self.group.num_members:
            plan = self._plan_grouped()
            if plan is not None:
                return plan
            self.group.release_all()
        return self._plan_each()

    def _plan_grouped(self) -> StepPlan | None:
        """The plan when every running request gets all it asks for: the group decodes one
        token each (its sums, not its members), plain requests run to their known tokens,
        then admissions. None if the budget or the free blocks would bind (plan each)."""
        group = self.group
        kv = self.kv
        num_grouped = group.num_members
        budget = self.max_num_batched_tokens - num_grouped
        group_extra = group.num_starting_block()
        extra = group_extra
        scheduled: list[tuple[Request, int]] = []
        for request in self._plain:
            cached = request.num_computed_tokens
            num_new = request.spec.num_prompt_tokens + request.num_generated - cached
            budget -= num_new
            extra += kv.extra_blocks(request, cached + num_new)
            scheduled.append((request, num_new))
        if budget < 0 or extra > kv.num_total_blocks - kv.num_used_blocks:
            return None
        read = group.sum_computed() + num_grouped  # each member reads c + 1 tokens, pairs c + 1
        sums = [num_grouped, 0, num_grouped, read, float(read)]
        for request, num_new in scheduled:
            cached = request.num_computed_tokens
            kv.allocate(request, cached + num_new)
            _add_load(sums, request, cached, num_new, cached + num_new)
        kv.num_used_blocks += group_extra
        self._in_flight = 1
        num_admitted = len(scheduled)
        self._admit_waiting(scheduled, sums, budget)
        self._plain.extend(request for request, _ in scheduled[num_admitted:])
        num_tokens, num_prefill, num_sampled, kv_read, pairs = sums
        load = BatchLoad(num_tokens, num_prefill, num_grouped + len(scheduled), num_sampled, pairs, kv_read)
        return StepPlan(scheduled, load, 0, num_tokens - num_prefill, num_grouped)

    def _plan_each(self) -> StepPlan | None:
        """Schedule every request one by one (no group members): the vLLM loop, with the
        step's BatchLoad summed in the same pass (see perf.load for the terms) and KV
        allocation inlined."""
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
            self._admit_waiting(scheduled, sums, budget)
        self._plain = list(running)
        if not scheduled:
            return None
        num_tokens, num_prefill, num_sampled, kv_read, pairs = sums
        load = BatchLoad(num_tokens, num_prefill, len(scheduled), num_sampled, pairs, kv_read)
        return StepPlan(scheduled, load, num_preempted, num_tokens - num_prefill)

    def _admit_waiting(self, scheduled: list[tuple[Request, int]], sums: list, budget: int) -> None:
        """Admit queue heads in order while budget, blocks and max_num_seqs allow."""
        waiting = self.waiting
        running = self.running
        kv = self.kv
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

    def _preempt(self, request: Request) -> None:
        self.kv.free(request)
        request.num_computed_tokens = 0
        request.num_preemptions += 1
        self.waiting.appendleft(request)

    def commit(self, plan: StepPlan, end_s: float) -> list[Request]:
        """Apply a finished step: advance computed counts, sample tokens, retire finished
        requests; requests that now decode steadily join the group."""
        group = self.group
        finished: list[Request] = []
        if plan.num_grouped:
            group.clock += 1
            self._in_flight = 0
            finished = group.pop_finished()
        joined = False
        for request, num_new in plan.scheduled:
            request.num_computed_tokens += num_new
            if request.num_computed_tokens == request.num_tokens:
                request.num_generated += 1
                if request.num_generated == 1:
                    request.first_token_s = end_s
                if request.done:
                    finished.append(request)
                elif self.group_decoders:
                    group.add(request)
                    joined = True
        if joined:
            self._plain = [r for r in self._plain if r.lazy_base < 0]
        return self._retire(finished, end_s) if finished else finished

    def _retire(self, finished: list[Request], end_s: float) -> list[Request]:
        """Free the finished requests' blocks and drop them from the batch; returns them in
        batch order."""
        for request in finished:
            request.finish_s = end_s
            self.kv.free(request)
        if len(finished) == 1:
            _remove(self.running, finished[0])
            if self._plain:
                _remove(self._plain, finished[0])
            return finished
        done = {id(r) for r in finished}
        ordered = [r for r in self.running if id(r) in done]
        self.running = [r for r in self.running if id(r) not in done]
        if self._plain:
            self._plain = [r for r in self._plain if id(r) not in done]
        return ordered

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
        Group members have n_i = 1, so b_i = c_i: their terms come from the group's sums.
        """
        num_seqs = len(self.running)
        scheduled = plan.scheduled
        group = self.group
        if (plan.num_preempted or len(scheduled) + plan.num_grouped != num_seqs
                or plan.load.num_sampled != num_seqs or max_steps <= 1):
            return NO_SPAN
        kv = self.kv
        budget_left = self.max_num_batched_tokens - num_seqs  # a decode step's budget
        if self.waiting and num_seqs < self.max_num_seqs and budget_left > 0:
            head = self.waiting[0]
            num_new = min(head.num_tokens - head.num_computed_tokens, budget_left)
            if kv.extra_blocks(head, head.num_computed_tokens + num_new) <= kv.num_free_blocks:
                return NO_SPAN  # admissible at step 1 (or only skipped after a preemption): no span
        limit = max_steps
        if plan.num_grouped:
            limit = min(limit, group.steps_to_next_finish())
        for r, _ in scheduled:
            left = r.spec.num_output_tokens - r.num_generated
            if left < limit:
                limit = left
        if limit <= 1:
            return NO_SPAN
        bases = [r.num_computed_tokens + n - 1 for r, n in scheduled]
        block_size = kv.block_size
        num_steps, kv_used, phases = limit, None, None
        kv_short = self._blocks_needed(bases, plan.num_grouped, limit) > kv.num_free_blocks
        if kv_short or with_kv_used:
            phases = KVPhases(group.histogram() if plan.num_grouped else (), group.clock, tuple(bases), block_size)
        if kv_short:
            used = phases.kv_used(kv.num_used_blocks, limit)
            over = np.flatnonzero(used > kv.num_total_blocks)
            num_steps = int(over[0]) if over.size else limit
            if num_steps < 2:
                return NO_SPAN
            kv_used, phases = (used[:num_steps] if with_kv_used else None), None
        if plan.is_pure_decode:
            return DecodeSpan(num_steps, kv_used, None, phases)
        sum_bases = sum(bases) + (group.sum_computed() if plan.num_grouped else 0)
        return DecodeSpan(num_steps, kv_used, _decode_load(num_seqs, sum_bases), phases)

    def _blocks_needed(self, bases: list[int], num_grouped: int, limit: int) -> int:
        """New KV blocks steps 1..limit-1 of a span need: sum of (b + limit - 1) // bs - b // bs,
        or a bound when even that fits (each request needs at most ceil((limit - 1) / bs))."""
        block_size = self.kv.block_size
        most = -(-(limit - 1) // block_size) * (len(bases) + num_grouped)
        if most <= self.kv.num_free_blocks:
            return most
        needed = self.group.crossings(0, limit - 1) if num_grouped else 0
        for b in bases:
            needed += (b + limit - 1) // block_size - b // block_size
        return needed

    def commit_span(self, num_steps: int, end_s: float) -> list[Request]:
        """Apply num_steps steps of a steady decode span: of the plan's pure decode step and
        the steps after it (its blocks allocated by the plan), or of the decode steps after a
        step that ended prefills (none allocated yet). Every running request decodes."""
        group = self.group
        kv = self.kv
        finished: list[Request] = []
        if group.num_members:
            kv.num_used_blocks += group.crossings(self._in_flight - 1, num_steps - 1)
            group.clock += num_steps
            self._in_flight = 0
            finished = group.pop_finished()
        plain = self._plain
        if plain:
            block_size = kv.block_size
            for request in plain:
                request.num_computed_tokens += num_steps
                request.num_generated += num_steps
                extra = -(-request.num_computed_tokens // block_size) - request.num_kv_blocks
                if extra > 0:  # decode_span guaranteed these blocks
                    request.num_kv_blocks += extra
                    kv.num_used_blocks += extra
                if request.num_generated >= request.spec.num_output_tokens:
                    finished.append(request)
                elif self.group_decoders:
                    group.add(request)
            self._plain = [r for r in plain if r.lazy_base < 0 and not r.done]
        assert kv.num_used_blocks <= kv.num_total_blocks, "decode_span guaranteed these blocks"
        return self._retire(finished, end_s) if finished else finished


def _decode_load(num_seqs: int, sum_bases: int) -> BatchLoad:
    """The load of a decode step for num_seqs requests holding b_i + 1 computed tokens each
    (sum of b_i given): each reads b_i + 2 tokens and scores b_i + 2 pairs, as plan_step
    sums them (exact integers, so the float sum equals plan_step's bitwise)."""
    read = sum_bases + 2 * num_seqs
    return BatchLoad(num_seqs, 0, num_seqs, num_seqs, float(read), read)


def _remove(requests: list[Request], request: Request) -> None:
    """Remove one request by identity, if there (list.remove would compare dataclass fields)."""
    for index, other in enumerate(requests):
        if other is request:
            del requests[index]
            return


def _add_load(sums: list, request: Request, cached: int, num_new: int, known: int) -> None:
    """Add one request's terms to a step's running sums (see perf.load for the formulas)."""
    sums[0] += num_new
    if num_new > 1 or cached < request.spec.num_prompt_tokens:
        sums[1] += num_new  # prompt chunks and recomputation after preemption
    if cached + num_new == known:
        sums[2] += 1
    sums[3] += cached + num_new
    sums[4] += num_new * cached + num_new * (num_new + 1) / 2
