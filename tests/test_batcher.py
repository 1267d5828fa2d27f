"""The batcher's decode group against the reference: scheduling every request one by one.

Grouping steady decoders is a speed device only: a batcher with it must plan the same
loads, spans, finishes, preemptions and KV blocks as one without it, step after step,
whatever the budget, the KV pressure and the way the engine cuts its spans.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.serving.batcher import Batcher
from clustersim.serving.decode_group import DecodeGroup
from clustersim.serving.kv_cache import KVCache
from clustersim.serving.request import Request, RequestSpec


def _state(request: Request) -> tuple[int, int, int, int]:
    return (request.num_computed_tokens, request.num_generated, request.num_kv_blocks, request.num_preemptions)


def _advance(batcher: Batcher, plan, shape, num_done: int) -> list[int]:
    """Commit the first num_done steps of a plan's span, as the engine does."""
    if num_done == 1:
        finished = batcher.commit(plan, 1.0)
    elif shape.tail is None:
        finished = batcher.commit_span(num_done, 1.0)
    else:
        batcher.commit(plan, 0.5)
        finished = batcher.commit_span(num_done - 1, 1.0)
    return [r.request_id for r in finished]


@settings(max_examples=600, deadline=None)
@given(
    block_size=st.sampled_from([1, 2, 4, 16]),
    num_blocks=st.integers(8, 80),
    budget=st.integers(4, 96),
    max_num_seqs=st.integers(1, 12),
    lengths=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 30)), min_size=1, max_size=14),
    cuts=st.lists(st.integers(0, 1000), min_size=1, max_size=40),
    arrivals=st.lists(st.integers(0, 3), min_size=1, max_size=40),
    with_kv_used=st.booleans(),
)
def test_grouped_batcher_plans_exactly_like_one_by_one(block_size, num_blocks, budget, max_num_seqs, lengths,
                                                        cuts, arrivals, with_kv_used):
    specs = [RequestSpec(i, 0.0, p, o) for i, (p, o) in enumerate(lengths)
             if -(-(p + o) // block_size) <= num_blocks]  # the router only sends requests that fit
    grouped = Batcher(KVCache(num_blocks, block_size), budget, max_num_seqs)
    plain = Batcher(KVCache(num_blocks, block_size), budget, max_num_seqs, group_decoders=False)
    batchers = (grouped, plain)
    mine = [{s.request_id: Request(s) for s in specs} for _ in batchers]
    queue = list(specs)
    finished: list[list[int]] = [[], []]
    for turn in range(400):
        for _ in range(arrivals[turn % len(arrivals)] if queue else 0):
            spec = queue.pop(0)
            for b, requests in zip(batchers, mine):
                b.admit(requests[spec.request_id])
            if not queue:
                break
        if grouped.idle and plain.idle:
            if not queue:
                break
            continue
        plans = [b.plan_step() for b in batchers]
        assert (plans[0] is None) == (plans[1] is None)
        if plans[0] is None:
            break
        assert plans[0].load == plans[1].load
        assert plans[0].num_preempted == plans[1].num_preempted
        shapes = [b.decode_span(p, 64, with_kv_used) for b, p in zip(batchers, plans)]
        assert shapes[0].num_steps == shapes[1].num_steps
        assert shapes[0].tail == shapes[1].tail
        if with_kv_used and shapes[0].num_steps > 1:  # computed (blocks ran short) or rebuilt from phases
            used = [s.kv_used if s.kv_used is not None else s.phases.kv_used(b.kv.num_used_blocks, s.num_steps)
                    for s, b in zip(shapes, batchers)]
            assert used[0].tolist() == used[1].tolist()
        num_done = 1 + cuts[turn % len(cuts)] % shapes[0].num_steps
        for i, (b, plan, shape) in enumerate(zip(batchers, plans, shapes)):
            finished[i] += _advance(b, plan, shape, num_done)
        assert grouped.kv.num_used_blocks == plain.kv.num_used_blocks <= num_blocks
        grouped.sync()
        for request_id, request in mine[0].items():
            assert _state(request) == _state(mine[1][request_id])
        assert [r.request_id for r in grouped.running] == [r.request_id for r in plain.running]
        assert [r.request_id for r in grouped.waiting] == [r.request_id for r in plain.waiting]
    assert finished[0] == finished[1]
    held = [[(r.request_id, _state(r)) for r in b.drain()] for b in batchers]
    assert held[0] == held[1]
    assert grouped.kv.num_used_blocks == plain.kv.num_used_blocks == 0


def test_group_counts_blocks_by_hand():
    """Members at 16 and 31 computed tokens, block size 16: the next token of the first
    starts block 2 (16 = one full block); advancing both by 17 tokens crosses blocks at
    17..33 -> the first crosses 32 (floor(33/16) - floor(16/16) = 1), the second 32 and 48
    (floor(48/16) - floor(31/16) = 3 - 1 = 2)."""
    group = DecodeGroup(16)
    for i, computed in enumerate((16, 31)):
        request = Request(RequestSpec(i, 0.0, computed, 100), num_computed_tokens=computed, num_generated=1)
        group.add(request)
    assert group.crossings(-1, 0) == 1  # (16-1)//16 -> 16//16: only the first starts a block
    assert group.crossings(0, 17) == 1 + 2
    assert group.sum_computed() == 47
    group.clock += 3
    assert group.sum_computed() == 47 + 2 * 3
    assert group.steps_to_next_finish() == 99 - 3
