"""An offline row with a stated prompt count is a burst sent to a server: it runs exactly
those requests with the server's default limits, not an offline engine's."""

from __future__ import annotations

from clustersim.fidelity.mapping import Setup
from clustersim.fidelity.runner import (
    OFFLINE_MAX_BATCHED_TOKENS,
    OFFLINE_MAX_NUM_SEQS,
    ONLINE_MAX_BATCHED_TOKENS,
    ONLINE_MAX_NUM_SEQS,
    fixed_schedule,
)


def _offline(**extra) -> Setup:
    fields = dict(chip="TPU v6e", model="llama-3.1-8b", family="google-tpu", num_chips=4, tp=4, ep=1, num_replicas=1,
                  num_heads=32, weight_dtype="bf16", kv_dtype="bf16", mode="offline", load=None, isl=224, osl=133,
                  ttft_limit_s=None, tpot_limit_s=None)
    return Setup(**(fields | extra))


def test_stated_burst_uses_the_server_defaults_and_its_own_count():
    # 1000 prompts on 2 replicas: 500 each, the online batch limit and token budget
    assert fixed_schedule(_offline(num_requests=1000, num_replicas=2), capacity=10**6) == \
        (500, ONLINE_MAX_NUM_SEQS, ONLINE_MAX_BATCHED_TOKENS)
    # a limit the source states still wins
    assert fixed_schedule(_offline(num_requests=1000, max_num_seqs=64), capacity=10**6)[1] == 64


def test_plain_offline_row_keeps_the_offline_engine_limits():
    num, max_seqs, max_tokens = fixed_schedule(_offline(), capacity=10**6)
    assert (max_seqs, max_tokens) == (OFFLINE_MAX_NUM_SEQS, OFFLINE_MAX_BATCHED_TOKENS)
    assert num > 1000  # a run long enough to reach the steady state, not a stated burst
