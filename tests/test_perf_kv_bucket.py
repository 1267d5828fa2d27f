"""Static-shape attention buckets (efficiency.kv_bucket_min_tokens), Neuron logical-core
layouts (fidelity.mapping.deployed_model) and the collective-latency fit parameter."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.catalog import load_catalog
from clustersim.fidelity.calibrate import (
    COMM_LATENCY_HI_S,
    COMM_LATENCY_LO_S,
    factors_from,
    num_params,
)
from clustersim.fidelity.mapping import deployed_model, map_row
from clustersim.fidelity.rows import Row
from clustersim.perf import ReplicaPerf, decode_run_costs, step_cost
from clustersim.perf.efficiency import load_efficiency_table
from clustersim.perf.load import BatchLoad
from clustersim.perf.step_time import advance_decode, pow2_bucket, pow2_buckets
from perf_specs import H100, LLAMA_8B, TEST_EFF, decode_loads

BUCKET_EFF = replace(TEST_EFF, kv_bucket_min_tokens=128.0)


def decode_load(num_seqs: int, context: int) -> BatchLoad:
    """num_seqs sequences, each with `context` cached tokens, decoding one token."""
    return BatchLoad(num_tokens=num_seqs, num_seqs=num_seqs, num_sampled=num_seqs,
                     attn_pairs=float(num_seqs * (context + 1)), kv_read_tokens=num_seqs * (context + 1))


def test_pow2_bucket_by_hand() -> None:
    # smallest power of two >= context, never below the minimum
    assert pow2_bucket(1.0, 128.0) == 128.0
    assert pow2_bucket(128.0, 128.0) == 128.0
    assert pow2_bucket(128.5, 128.0) == 256.0
    assert pow2_bucket(4097.0, 128.0) == 8192.0
    assert pow2_bucket(8192.0, 128.0) == 8192.0


@settings(max_examples=300, deadline=None)
@given(context=st.floats(min_value=1.0, max_value=2.0**40, allow_nan=False))
def test_pow2_buckets_match_scalar_and_bound_context(context: float) -> None:
    scalar = pow2_bucket(context, 128.0)
    assert pow2_buckets(np.array([context]), 128.0)[0] == scalar
    assert context <= scalar and (scalar == 128.0 or scalar < 2 * context)


def test_bucketed_decode_reads_and_scores_the_whole_bucket_by_hand() -> None:
    # Llama-3.1-8B on one H100, 4 sequences at 300 cached tokens: context 301 -> bucket 512.
    # KV bytes per token = 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 131072;
    # attention FLOPs per query-key pair = 4 x 32 heads x 128 x 32 layers = 524288.
    plain = ReplicaPerf(H100, LLAMA_8B, efficiency=TEST_EFF)
    bucketed = ReplicaPerf(H100, LLAMA_8B, efficiency=BUCKET_EFF)
    load = decode_load(4, 300)
    a, b = step_cost(plain, load), step_cost(bucketed, load)
    assert b.hbm_bytes - a.hbm_bytes == pytest.approx(131072 * 4 * (512 - 301), rel=1e-12)
    assert b.flops - a.flops == pytest.approx(524288 * 4 * (512 - 301), rel=1e-12)
    # memory-bound decode: the extra bytes cost their streaming time at 0.8 x 3.35 TB/s
    assert b.step_s - a.step_s == pytest.approx(131072 * 4 * (512 - 301) / (0.8 * 3.35e12), rel=1e-9)


def test_bucketed_prefill_pads_the_prompt_under_the_causal_mask() -> None:
    # a 1000-token prompt runs padded to the 1024 bucket: causal pairs 1000 x 1001 / 2 scaled
    # by (1024 / 1000)^2; its KV read is 1024 entries instead of 1000
    plain = ReplicaPerf(H100, LLAMA_8B, efficiency=TEST_EFF)
    bucketed = ReplicaPerf(H100, LLAMA_8B, efficiency=BUCKET_EFF)
    load = BatchLoad.of_request(1000, 0, True, True)
    diff = step_cost(bucketed, load).flops - step_cost(plain, load).flops
    causal = 1000 * 1001 / 2
    assert diff == pytest.approx(524288 * causal * ((1024 / 1000) ** 2 - 1), rel=1e-9)
    # a power-of-two prompt fills its bucket exactly: nothing changes
    exact = BatchLoad.of_request(1024, 0, True, True)
    assert step_cost(bucketed, exact).flops == step_cost(plain, exact).flops


def test_buckets_off_by_default_in_gpu_families() -> None:
    table = load_efficiency_table()
    assert table["nvidia-hopper"].kv_bucket_min_tokens == 0.0
    assert table["aws-neuron"].kv_bucket_min_tokens == 128.0


@settings(max_examples=150, deadline=None)
@given(load=decode_loads(), num_steps=st.integers(1, 300))
def test_bucketed_decode_run_equals_repeated_step_cost_bitwise(load: BatchLoad, num_steps: int) -> None:
    replica = ReplicaPerf(H100, LLAMA_8B, efficiency=BUCKET_EFF)
    run = decode_run_costs(replica, load, num_steps)
    for i in range(num_steps):
        cost = step_cost(replica, advance_decode(load, i))
        assert run.step_s[i] == cost.step_s and run.flops[i] == cost.flops and run.hbm_bytes[i] == cost.hbm_bytes
    assert np.all(np.diff(run.step_s) >= 0)


def test_deployed_model_over_neuron_cores() -> None:
    # Llama-3-8B with TP24 (24 NeuronCores): 32 heads pad to 48; each core needs a whole KV
    # head, so the 8 KV heads are stored ceil(8/24) x 24 = 24 times
    model = load_catalog().model("llama-3-8b")
    laid = deployed_model(model, 24)
    assert (laid.num_heads, laid.num_kv_heads) == (48, 24)
    # 40-head MHA on 32 cores: 64 heads, 64 KV heads (the padded heads carry K/V too)
    mha = load_catalog().model("llama-2-13b")
    assert (deployed_model(mha, 32).num_heads, deployed_model(mha, 32).num_kv_heads) == (64, 64)
    # dividing layouts change nothing
    assert deployed_model(model, 8) == model


def test_neuron_row_maps_to_core_layout() -> None:
    catalog, table = load_catalog(), load_efficiency_table()
    row = Row(id="N", chip="Inferentia2", num_chips=12, model="llama-3-8b", precision="bf16", isl=128.0, osl=128.0,
              mode="batch", load=1.0, ttft_limit_s=None, tpot_limit_s=None, parallelism="TP24",
              metric="tpot_p50_ms", value=7.0, fields=(), line=2)
    setup = map_row(row, catalog, table).setup
    assert setup is not None and setup.tp == 12 and setup.num_heads == 48 and setup.num_kv_heads == 24


def test_comm_latency_fitted_only_with_many_setups_and_bounded() -> None:
    assert [num_params(n) for n in (1, 2, 4, 31, 32, 66)] == [1, 2, 3, 3, 4, 4]
    prior = load_efficiency_table()["aws-neuron"]
    three = factors_from(prior, [0.0, 0.0, -6.0])
    assert three.comm_latency_s == prior.comm_latency_s
    for z in (-60.0, 60.0, np.log(1.5e-6)):
        eff = factors_from(prior, [0.0, 0.0, -6.0, float(z)])
        assert COMM_LATENCY_LO_S <= eff.comm_latency_s <= COMM_LATENCY_HI_S
    assert factors_from(prior, [0.0, 0.0, -6.0, float(np.log(1.5e-6))]).comm_latency_s == pytest.approx(1.5e-6)
