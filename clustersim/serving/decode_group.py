"""The steady decoders of one replica, advanced together in O(1) instead of one by one.

Most of a busy replica's running requests decode: every step each computes one token's KV
and samples the next token, so their counts move in lock-step. A `DecodeGroup` keeps them
lazily. A member stores its counts as of the group clock `base` it last caught up at
(`Request.lazy_base`); its true counts are the stored ones plus `clock - base`. A step of
every member is `clock += 1`, and the step's load is summed from running totals: the sum of
members' computed tokens, a histogram of those counts modulo the KV block size (who needs a
new block at which step), and a heap of the clock at which each member finishes.

The stored fields are brought up to date (`catch_up`) before anyone else reads them: when a
member finishes, when the batcher needs per-request scheduling (preemption, a budget that
binds), and when the engine evicts or the records read what a replica holds.
"""

from __future__ import annotations

import heapq

from clustersim.serving.request import Request

NOT_LAZY = -1
"""`Request.lazy_base` of a request whose stored counts are its true counts."""


class DecodeGroup:
    """Running requests that each compute one token per step (computed == tokens - 1).

    With c_i a member's true computed tokens: `num_members`, `sum_computed()` = sum of c_i,
    and `crossings(lo, hi)` = sum of floor((c_i + hi) / bs) - floor((c_i + lo) / bs), from
    which the batcher gets every KV block count it needs.
    """

    __slots__ = ("block_size", "clock", "num_members", "_key_sum", "_hist", "_finish_heap", "_next_seq")

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.clock = 0  # decode steps the whole group has taken
        self.num_members = 0
        self._key_sum = 0  # sum of keys; a member's key c_i - clock never changes
        self._hist = [0] * block_size  # members by key modulo block_size
        self._finish_heap: list[tuple[int, int, Request]] = []  # (clock at its last token, seq, member)
        self._next_seq = 0

    def add(self, request: Request) -> None:
        """Take in a request whose stored counts are current (it is not lazy yet)."""
        key = request.num_computed_tokens - self.clock
        request.lazy_base = self.clock
        self.num_members += 1
        self._key_sum += key
        self._hist[key % self.block_size] += 1
        done_at = self.clock + request.spec.num_output_tokens - request.num_generated
        heapq.heappush(self._finish_heap, (done_at, self._next_seq, request))
        self._next_seq += 1

    def catch_up(self, request: Request, in_flight: int = 0) -> None:
        """Bring a member's stored counts to the group clock; its KV blocks hold its computed
        tokens plus `in_flight` (1 while a planned step has allocated the next token)."""
        moved = self.clock - request.lazy_base
        request.lazy_base = self.clock
        request.num_computed_tokens += moved
        request.num_generated += moved
        request.num_kv_blocks = -(-(request.num_computed_tokens + in_flight) // self.block_size)

    def release_all(self, in_flight: int = 0) -> list[Request]:
        """Catch every member up, make it plain again and empty the group (the heap's order,
        not the batch's: callers that need the batch's order keep it themselves)."""
        members = [entry[2] for entry in self._finish_heap]
        for request in members:
            self.catch_up(request, in_flight)
            request.lazy_base = NOT_LAZY
        self.num_members = 0
        self._key_sum = 0
        self._hist = [0] * self.block_size
        self._finish_heap = []
        return members

    def sync(self, in_flight: int = 0) -> None:
        """Catch every member up and keep it lazy (its key does not change)."""
        for entry in self._finish_heap:
            self.catch_up(entry[2], in_flight)

    def steps_to_next_finish(self) -> int:
        """Steps until the first member samples its last token (members must exist)."""
        return self._finish_heap[0][0] - self.clock

    def pop_finished(self) -> list[Request]:
        """Remove the members whose last token is sampled by now, caught up and plain."""
        heap = self._finish_heap
        done: list[Request] = []
        while heap and heap[0][0] <= self.clock:
            request = heapq.heappop(heap)[2]
            self.catch_up(request)
            key = request.num_computed_tokens - self.clock
            self.num_members -= 1
            self._key_sum -= key
            self._hist[key % self.block_size] -= 1
            request.lazy_base = NOT_LAZY
            done.append(request)
        return done

    def num_starting_block(self) -> int:
        """Members whose next token starts a new KV block (c_i % bs == 0): crossings(-1, 0)."""
        return self._hist[-self.clock % self.block_size]

    def sum_computed(self) -> int:
        """Sum of the members' true computed tokens."""
        return self._key_sum + self.num_members * self.clock

    def crossings(self, lo: int, hi: int) -> int:
        """Sum over members of floor((c_i + hi) / bs) - floor((c_i + lo) / bs), lo <= hi: the
        block boundaries each member's token count crosses going from c_i + lo to c_i + hi.

        With c_i + lo = bs t + s, a member crosses (hi - lo) // bs boundaries, plus one more
        when s >= bs - (hi - lo) % bs; s runs over that window of residues only.
        """
        bs = self.block_size
        span = hi - lo
        total = (span // bs) * self.num_members
        shift = lo + self.clock  # c_i + lo = key_i + shift
        hist = self._hist
        for s in range(bs - span % bs, bs):
            total += hist[(s - shift) % bs]
        return total

    def histogram(self) -> tuple[int, ...]:
        """Members by key % bs: with `clock`, when each starts a new block (batcher.KVPhases)."""
        return tuple(self._hist)
