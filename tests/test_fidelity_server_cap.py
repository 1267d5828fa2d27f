"""The server search's steady batch cap: the largest batch whose steady mixed step (b decodes
plus the prompts of the b/osl requests that replace finished ones) fits the TPOT limit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.catalog import load_catalog
from clustersim.fidelity.mapping import Setup
from clustersim.fidelity.runner import SERVER_MAX_NUM_SEQS, _decode_load, steady_batch_cap
from clustersim.perf import ReplicaPerf, step_time_s
from clustersim.perf.load import BatchLoad

CATALOG = load_catalog()
REPLICA = ReplicaPerf(CATALOG.chips["H100"], CATALOG.models["llama-3.1-8b"], weight_dtype="fp8", kv_dtype="fp8")


def _setup(isl: int, osl: int, tpot_limit_s: float | None) -> Setup:
    return Setup(chip="H100", model="llama-3.1-8b", family="nvidia-hopper", num_chips=1, tp=1, ep=1, num_replicas=1,
                 num_heads=32, weight_dtype="fp8", kv_dtype="fp8", mode="server", load=None, isl=isl, osl=osl,
                 ttft_limit_s=2.0, tpot_limit_s=tpot_limit_s)


def _mixed_step_s(b: int, isl: int, osl: int) -> float:
    # written out again here: b decodes at context isl + osl/2, plus one prompt chunk of b x isl / osl tokens
    decode = _decode_load(b, isl + osl // 2)
    new = max(1, round(b * isl / osl))
    pairs = new * (new + 1) / 2
    load = BatchLoad(num_tokens=b + new, num_prefill_tokens=new, num_seqs=b + 1, num_sampled=b,
                     attn_pairs=decode.attn_pairs + pairs, kv_read_tokens=decode.kv_read_tokens + new)
    return step_time_s(REPLICA, load)


@settings(max_examples=40, deadline=None)
@given(isl=st.integers(64, 4000), osl=st.integers(16, 2000), tpot_ms=st.floats(5, 400))
def test_cap_is_the_largest_batch_whose_mixed_step_fits(isl, osl, tpot_ms):
    limit = tpot_ms / 1e3
    capacity = 10**6
    cap = steady_batch_cap(REPLICA, _setup(isl, osl, limit), capacity)
    most = min(SERVER_MAX_NUM_SEQS, capacity // (isl + osl))
    assert 1 <= cap <= most
    if _mixed_step_s(1, isl, osl) <= limit:
        assert _mixed_step_s(cap, isl, osl) <= limit
    if cap < most:
        assert _mixed_step_s(cap + 1, isl, osl) > limit


def test_no_tpot_limit_means_no_cap_below_the_kv_bound():
    assert steady_batch_cap(REPLICA, _setup(1000, 200, None), 10**6) == min(SERVER_MAX_NUM_SEQS, 10**6 // 1200)


def test_server_search_tries_the_cap_except_on_tensorrt_llm(monkeypatch):
    import dataclasses

    from clustersim.fidelity import runner

    tried: list[int] = []

    def fake_search(replica, capacity, setup, max_seqs):
        tried.append(max_seqs)
        return float(max_seqs), f"cap {max_seqs}"

    monkeypatch.setattr(runner, "_server_search", fake_search)
    setup = _setup(1000, 200, 0.05)
    cap = steady_batch_cap(REPLICA, setup, 10**6)
    assert cap < SERVER_MAX_NUM_SEQS
    # vLLM-style servers: both searches, the higher rate wins
    assert runner._server(REPLICA, 10**6, dataclasses.replace(setup, stack="vllm")) == f"cap {SERVER_MAX_NUM_SEQS}"
    assert tried == [cap, SERVER_MAX_NUM_SEQS]
    tried.clear()
    runner._server(REPLICA, 10**6, dataclasses.replace(setup, stack="tensorrt-llm"))
    assert tried == [SERVER_MAX_NUM_SEQS]
    tried.clear()
    runner._server(REPLICA, 10**6, dataclasses.replace(setup, stack="vllm", max_num_seqs=48))
    assert tried == [48]  # a stated limit is the only one


def test_capacity_estimate_is_the_steady_mixed_step_rate():
    # a full batch finishes batch/osl requests per steady mixed step (prompts share its weight reads)
    from clustersim.fidelity.runner import capacity_rate_per_s

    setup = _setup(600, 150, 0.2)
    batch = min(SERVER_MAX_NUM_SEQS, 10**6 // 750)
    assert capacity_rate_per_s(REPLICA, setup, 10**6, SERVER_MAX_NUM_SEQS) == (batch / 150) / _mixed_step_s(batch, 600, 150)


def test_server_search_is_not_capped_by_a_low_estimate(monkeypatch):
    """The capacity estimate only opens the bracket: with it 8x too low the search widens the
    bracket until a trial fails and ends at the same rate (within its resolution)."""
    from clustersim.fidelity import runner

    calls: list[float] = []
    true_max = 37.0  # requests/s this fake server sustains

    def fake_open_loop(replica, capacity, setup, rate, num, max_seqs):
        calls.append(rate)
        done = [object()] * num
        return done if rate <= true_max else done[:-1]  # over the limit: a request never finishes

    monkeypatch.setattr(runner, "_open_loop", fake_open_loop)
    monkeypatch.setattr(runner, "_arrays", lambda done: (np.zeros(3), np.zeros(3), np.zeros(3), None))
    monkeypatch.setattr(runner, "_latency_metrics", lambda done: {"ttft_p99_ms": 1.0, "tpot_p99_ms": 1.0})
    monkeypatch.setattr(runner, "stable", lambda *a: True)
    monkeypatch.setattr(runner, "steady_output_tokens_s", lambda done: float("inf"))
    monkeypatch.setattr(runner, "_with_throughput", lambda done, setup, served: {"output_tok_s_total": served})
    setup = _setup(600, 150, 0.2)
    for estimate in (true_max / 8, true_max * 3):
        calls.clear()
        monkeypatch.setattr(runner, "capacity_rate_per_s", lambda *a, e=estimate: e)
        served, _ = runner._server_search(REPLICA, 10**6, setup, SERVER_MAX_NUM_SEQS)
        rate = served / setup.osl
        assert true_max * 0.99 <= rate <= true_max, (estimate, rate)
        assert max(calls) > true_max  # a failing trial bounds the search from above
