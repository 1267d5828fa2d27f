"""Step time against hand arithmetic (formulas written out from the spec figures), and
hypothesis properties: monotone in load, above the roofline, faster chips never slower,
fast-forwarded decode runs bitwise equal to step-by-step costs."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.perf import (
    BatchLoad,
    ReplicaPerf,
    advance_decode,
    decode_run_costs,
    decode_run_ends,
    decode_run_s,
    kv_bytes_per_token,
    kv_replication,
    step_cost,
    step_cost_rows,
    step_time_s,
)
from clustersim.perf.step_time import DECODE_ENDS_LOOP_STEPS
from perf_specs import DEEPSEEK_V3, GPT_OSS_120B, H100, H200, LLAMA_8B, LLAMA_70B, TEST_EFF, decode_loads

REL = 1e-12


def decode_load(num_seqs: int, context: int) -> BatchLoad:
    """num_seqs sequences each with `context` cached tokens computing one more (n = 1)."""
    return BatchLoad(
        num_tokens=num_seqs, num_seqs=num_seqs, num_sampled=num_seqs,
        attn_pairs=float(num_seqs * (context + 1)), kv_read_tokens=num_seqs * (context + 1),
    )


def ring_all_reduce_s(num_bytes, n, bw, latency):
    return 2 * (n - 1) / n * num_bytes / bw + 2 * (n - 1) * latency


def test_llama_70b_decode_on_8xh200_tp8():
    replica = ReplicaPerf(H200, LLAMA_70B, tp=8, efficiency=TEST_EFF)
    num_seqs, context = 64, 2048
    cost = step_cost(replica, decode_load(num_seqs, context))

    h, layers, vocab = 8192, 80, 128256
    attn_params = layers * (2 * h * 64 * 128 + 2 * h * 8 * 128)
    ffn_params = layers * 3 * h * 28672
    norms = layers * 2 * h + h
    lm_head = vocab * h
    dense_flops = 2 * (attn_params + ffn_params) * num_seqs + 2 * lm_head * num_seqs
    dense_bytes = 2 * (attn_params + ffn_params + norms + lm_head)  # bf16, embedding table not read
    gemm_rate = 989e12 * 0.5 * 8  # bf16 peak x eff.compute x tp
    mem_rate = 4.8e12 * 0.8 * 8  # HBM bw x eff.memory x tp
    dense_s = max(dense_flops / gemm_rate, dense_bytes / mem_rate)
    assert dense_s == dense_bytes / mem_rate  # decode is memory-bound

    pairs = kv_read = num_seqs * (context + 1)
    attn_flops = 4 * 64 * 128 * pairs * layers
    attn_bytes = kv_read * (2 * layers * 8 * 128 * 2)  # 327,680 B of KV per token
    attn_s = max(attn_flops / (989e12 * 0.4 * 8), attn_bytes / mem_rate)

    # two all-reduces per layer of T x hidden x 2 bytes over 8 ranks at 0.8 x 450 GB/s
    comm_s = 2 * layers * ring_all_reduce_s(num_seqs * h * 2, 8, 450e9 * 0.8, 1e-6)
    overhead_s = 1e-3 + layers * 1e-5

    assert cost.step_s == pytest.approx(overhead_s + comm_s + dense_s + attn_s, rel=REL)
    assert cost.comm_s == pytest.approx(comm_s, rel=REL)
    assert cost.overhead_s == pytest.approx(overhead_s, rel=REL)
    assert cost.flops == pytest.approx(dense_flops + attn_flops, rel=REL)
    assert cost.hbm_bytes == pytest.approx(dense_bytes + attn_bytes, rel=REL)
    assert cost.hbm_util == pytest.approx((dense_bytes + attn_bytes) / (cost.step_s * 4.8e12 * 8), rel=REL)
    assert cost.compute_util == pytest.approx((dense_flops + attn_flops) / (cost.step_s * 989e12 * 8), rel=REL)


def test_llama_8b_prefill_2k_on_h100_is_compute_bound():
    replica = ReplicaPerf(H100, LLAMA_8B, efficiency=TEST_EFF)
    load = BatchLoad.of_request(num_new=2048, num_cached=0, is_prefill=True, samples=True)
    cost = step_cost(replica, load)

    h, layers, vocab = 4096, 32, 128256
    linear_params = layers * (2 * h * 32 * 128 + 2 * h * 8 * 128 + 3 * h * 14336)
    norms = layers * 2 * h + h
    dense_flops = 2 * linear_params * 2048 + 2 * vocab * h * 1  # lm_head for the one sampled row
    dense_bytes = 2 * (linear_params + norms + vocab * h)
    assert dense_flops / (989e12 * 0.5) > dense_bytes / (3.35e12 * 0.8)
    dense_s = dense_flops / (989e12 * 0.5)

    pairs = 2048 * 2049 / 2  # causal: sum of 1..2048
    attn_flops = 4 * 32 * 128 * pairs * layers
    attn_bytes = 2048 * (2 * layers * 8 * 128 * 2)
    attn_s = max(attn_flops / (989e12 * 0.4), attn_bytes / (3.35e12 * 0.8))
    overhead_s = 1e-3 + layers * 1e-5  # tp = 1: no communication

    assert cost.comm_s == 0.0
    assert cost.step_s == pytest.approx(overhead_s + dense_s + attn_s, rel=REL)
    assert cost.compute_util == pytest.approx((dense_flops + attn_flops) / (cost.step_s * 989e12), rel=REL)
    assert cost.compute_util > 0.4


def test_deepseek_v3_decode_on_8xh200_tp8_ep8():
    replica = ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8, efficiency=TEST_EFF)  # fp8 weights, bf16 KV
    num_seqs, context = 32, 4096
    cost = step_cost(replica, decode_load(num_seqs, context))

    h, layers, moe_layers, vocab, heads = 7168, 61, 58, 129280, 128
    attn = layers * (h * 1536 + 1536 * heads * 192 + h * 576 + 512 * heads * 256 + heads * 128 * h)
    norms = layers * (2 * h + 1536 + 512) + h
    dense_ffn = 3 * 3 * h * 18432
    expert = 3 * h * 2048
    shared = moe_layers * expert  # the shared expert is read and run every step
    router = moe_layers * h * 256
    lm_head = vocab * h
    dense_flops = 2 * (attn + dense_ffn + shared + router) * num_seqs + 2 * lm_head * num_seqs
    dense_bytes = 1 * (attn + dense_ffn + shared) + 2 * (norms + router + lm_head)  # fp8; bf16 kept
    mem_rate = 4.8e12 * 0.8 * 8
    dense_s = max(dense_flops / (1979e12 * 0.5 * 8), dense_bytes / mem_rate)

    touched = 256 * (1 - (1 - 8 / 256) ** num_seqs)  # distinct experts per MoE layer, uniform routing
    assert 220 > touched > 160
    moe_bytes = touched * moe_layers * expert * 1
    moe_flops = 2 * 8 * expert * moe_layers * num_seqs
    # the layer waits for the busiest of the 8 EP ranks (uniform routing, moe_balance):
    # rows: mean 32 x 8 / 8 = 32, sd = sqrt(32 x 8 x 1/8 x 7/8 x 248/255); experts: mean 32 p,
    # sd = sqrt(32 p (1 - p)) with p = touched / 256; busiest = mean + sd x E[max of 8 N(0,1)]
    e_max_8 = 1.4236003  # tabulated expected maximum of 8 standard normals
    rows_sd = (32 * 8 * (1 / 8) * (7 / 8) * 248 / 255) ** 0.5
    rows_factor = (32 + rows_sd * e_max_8) / 32
    p = touched / 256
    experts_factor = (32 * p + (32 * p * (1 - p)) ** 0.5 * e_max_8) / (32 * p)
    assert 1.2 < rows_factor < 1.25 and 1.15 < experts_factor < 1.2
    moe_s = max(moe_flops / (1979e12 * 0.5 * 8) * rows_factor, moe_bytes / mem_rate * experts_factor)

    pairs = kv_read = num_seqs * (context + 1)
    attn_flops = 2 * heads * (2 * 512 + 64) * pairs * layers  # absorbed MLA
    kv_per_token = 61 * (512 + 64) * 2
    assert kv_bytes_per_token(DEEPSEEK_V3, "bf16") == kv_per_token
    attn_bytes = kv_read * kv_per_token * 8  # latent replicated on all 8 TP ranks
    attn_s = max(attn_flops / (989e12 * 0.4 * 8), attn_bytes / mem_rate)

    bw, lat = 450e9 * 0.8, 1e-6
    all_reduces = (61 + 3) * ring_all_reduce_s(num_seqs * h * 2, 8, bw, lat)  # attention + 3 dense FFNs
    a2a_bytes = num_seqs * 8 * h * 2 / 8  # each rank: its T/ep tokens x top-8 x hidden x 2 B
    all_to_alls = 2 * moe_layers * (7 / 8 * a2a_bytes / bw + 7 * lat)  # dispatch + combine
    overhead_s = 1e-3 + layers * 1e-5

    expected = overhead_s + (all_reduces + all_to_alls) + (dense_s + moe_s) + attn_s
    assert cost.step_s == pytest.approx(expected, rel=1e-7)  # e_max_8 to 8 digits
    assert cost.hbm_bytes == pytest.approx(dense_bytes + moe_bytes + attn_bytes, rel=REL)
    assert cost.flops == pytest.approx(dense_flops + moe_flops + attn_flops, rel=REL)


def test_mla_prompt_pairs_run_the_expanded_form():
    """DeepSeek-V3 MLA: decode pairs cost the absorbed form, prompt pairs the expanded one
    (2 x 128 heads x (128 nope + 64 rope + 128 v) = 81,920 FLOPs per pair per layer, against
    2 x 128 x (2 x 512 + 64) = 278,528 absorbed)."""
    replica = ReplicaPerf(H200, DEEPSEEK_V3, tp=8, efficiency=TEST_EFF)
    absorbed, expanded = 2 * 128 * (2 * 512 + 64), 2 * 128 * (128 + 64 + 128)
    assert (absorbed, expanded) == (278528, 81920)
    base = step_cost(replica, BatchLoad(num_tokens=2048, num_prefill_tokens=2048, num_seqs=1, num_sampled=1,
                                        attn_pairs=0.0, kv_read_tokens=0))
    # a 2048-token prompt after 1000 cached tokens: pairs 2048 x 1000 + 2048 x 2049 / 2, keys read 3048
    pairs, kv_read = 2048 * 1000 + 2048 * 2049 / 2, 3048
    prompt = step_cost(replica, BatchLoad(num_tokens=2048, num_prefill_tokens=2048, num_seqs=1, num_sampled=1,
                                          attn_pairs=pairs, kv_read_tokens=kv_read))
    attn_flops = 61 * (absorbed * kv_read + expanded * (pairs - kv_read))
    assert prompt.flops - base.flops == pytest.approx(attn_flops, rel=1e-12)
    # far below the absorbed count the prompt used to be charged (3.4x)
    assert 61 * absorbed * pairs / attn_flops == pytest.approx(3.39, abs=0.01)
    # a decode step (one pair per key read) is all absorbed, as before
    decode = step_cost(replica, BatchLoad(num_tokens=64, num_seqs=64, num_sampled=64, attn_pairs=64 * 900.0,
                                          kv_read_tokens=64 * 900))
    no_attn = step_cost(replica, BatchLoad(num_tokens=64, num_seqs=64, num_sampled=64, attn_pairs=0.0, kv_read_tokens=0))
    assert decode.flops - no_attn.flops == pytest.approx(61 * absorbed * 64 * 900, rel=1e-12)


def test_experts_touched_saturate():
    replica = ReplicaPerf(H200, DEEPSEEK_V3, tp=8, efficiency=TEST_EFF)
    one = step_cost(replica, BatchLoad(num_tokens=1, num_seqs=1, num_sampled=0, attn_pairs=1.0, kv_read_tokens=1))
    many = step_cost(replica, BatchLoad(num_tokens=8192, num_seqs=1, num_sampled=0, attn_pairs=1.0,
                                        kv_read_tokens=1))
    expert_bytes = 3 * 7168 * 2048 * 58
    kv = 61 * 576 * 2 * 8
    non_expert = one.hbm_bytes - 8 * expert_bytes - kv  # one token touches exactly top-8 experts
    assert many.hbm_bytes == pytest.approx(non_expert + 256 * expert_bytes + kv, rel=1e-9)


def test_sliding_window_layers_read_at_most_the_window():
    replica = ReplicaPerf(H100, GPT_OSS_120B, efficiency=TEST_EFF)
    short = decode_load(64, 100)  # within the window: every layer reads all 101 tokens
    long = decode_load(64, 4095)
    per_layer = 2 * 8 * 64 * 2
    diff = step_cost(replica, long).hbm_bytes - step_cost(replica, short).hbm_bytes
    # full layers: 18 x 64 x (4096 - 101) more; sliding layers: 18 x (64 x 128 - 64 x 101) more
    assert diff == pytest.approx(per_layer * (18 * 64 * (4096 - 101) + 18 * 64 * (128 - 101)), rel=1e-9)


def test_pipeline_adds_stage_sends():
    replica = ReplicaPerf(H100, LLAMA_70B, tp=4, pp=2, efficiency=TEST_EFF)
    cost = step_cost(replica, decode_load(16, 1000))
    bw, lat = 450e9 * 0.8, 1e-6
    comm = 160 * ring_all_reduce_s(16 * 8192 * 2, 4, bw, lat) + (16 * 8192 * 2 / bw + lat)
    assert cost.comm_s == pytest.approx(comm, rel=REL)


def test_empty_step_costs_nothing():
    replica = ReplicaPerf(H100, LLAMA_8B)
    cost = step_cost(replica, BatchLoad())
    assert cost.step_s == cost.overhead_s == cost.flops == cost.hbm_bytes == 0.0
    assert step_time_s(replica, BatchLoad()) == 0.0
    assert decode_run_s(replica, BatchLoad(), 3).tolist() == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------- properties

REPLICAS = [
    ReplicaPerf(H100, LLAMA_8B),
    ReplicaPerf(H100, LLAMA_8B, tp=2, weight_dtype="fp8", kv_dtype="fp8"),
    ReplicaPerf(H200, LLAMA_70B, tp=8),
    ReplicaPerf(H100, LLAMA_70B, tp=4, pp=2),
    ReplicaPerf(H200, DEEPSEEK_V3, tp=8, ep=8),
    ReplicaPerf(H200, DEEPSEEK_V3, tp=8),
    ReplicaPerf(H100, GPT_OSS_120B),
    ReplicaPerf(H100, GPT_OSS_120B, tp=2, ep=2, kv_dtype="fp8"),
]


@st.composite
def loads(draw):
    num_seqs = draw(st.integers(1, 512))
    num_tokens = num_seqs + draw(st.integers(0, 8192))
    return BatchLoad(
        num_tokens=num_tokens,
        num_prefill_tokens=num_tokens - num_seqs,
        num_seqs=num_seqs,
        num_sampled=draw(st.integers(0, num_seqs)),
        attn_pairs=float(num_tokens + draw(st.integers(0, 10**10))),
        kv_read_tokens=num_tokens + draw(st.integers(0, 10**7)),
    )


@settings(max_examples=300, deadline=None)
@given(replica=st.sampled_from(REPLICAS), load=loads(), field=st.sampled_from(
    ["num_tokens", "kv_read_tokens", "attn_pairs"]), delta=st.integers(0, 10**6))
def test_step_time_monotone_in_load(replica, load, field, delta):
    more = replace(load, **{field: getattr(load, field) + delta})
    assert step_cost(replica, more).step_s >= step_cost(replica, load).step_s


@settings(max_examples=300, deadline=None)
@given(replica=st.sampled_from(REPLICAS), load=loads())
def test_never_below_roofline_and_utilization_at_most_one(replica, load):
    cost = step_cost(replica, load)
    chip, chips = replica.chip, replica.num_chips
    best_peak = max(chip.peak_flops_s(replica.weight_dtype), chip.peak_flops_s("bf16"))
    assert cost.step_s >= cost.hbm_bytes / (chip.hbm_bw_bytes_s * chips)
    assert cost.step_s >= cost.flops / (best_peak * chips)
    parts = max(cost.compute_s, cost.memory_s) + cost.comm_s + cost.overhead_s
    assert cost.step_s >= parts * (1 - 1e-12)  # the sum may be taken in another order
    assert 0.0 < cost.hbm_util <= 1.0 and 0.0 < cost.compute_util <= 1.0
    assert step_time_s(replica, load) == cost.step_s


@settings(max_examples=200, deadline=None)
@given(replica=st.sampled_from(REPLICAS[:4]), load=loads())
def test_dense_models_never_below_independent_roofline(replica, load):
    """Bounds from the spec alone: weights read (bar the embedding table, and the lm_head when
    nothing is sampled), KV read, 2 FLOPs per weight per row, 4 H d per pair per layer."""
    m, chip, chips = replica.model, replica.chip, replica.num_chips
    b = 2.0 if replica.weight_dtype == "bf16" else 1.0
    vh = m.vocab_size * m.hidden_size
    body = m.num_layers * (2 * m.hidden_size * (m.num_heads + m.num_kv_heads) * m.head_dim
                           + 3 * m.hidden_size * m.intermediate_size)
    weights_read = body * b + (2 * vh if load.num_sampled else 0)
    kv = load.kv_read_tokens * kv_bytes_per_token(m, replica.kv_dtype) * kv_replication(m, replica.tp)
    attn_flops = 4 * m.num_heads * m.head_dim * load.attn_pairs * m.num_layers
    flops = 2 * body * load.num_tokens + 2 * vh * load.num_sampled + attn_flops
    step = step_cost(replica, load).step_s
    assert step >= (weights_read + kv) / (chip.hbm_bw_bytes_s * chips) * (1 - 1e-12)
    assert step >= flops / (chip.peak_flops_s(replica.weight_dtype) * chips) * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(replica=st.sampled_from(REPLICAS), load=loads(), factor=st.floats(1.0, 10.0))
def test_faster_chip_never_slower(replica, load, factor):
    c = replica.chip
    fast_chip = replace(c, hbm_bw_bytes_s=c.hbm_bw_bytes_s * factor, bf16_flops_s=c.bf16_flops_s * factor,
                        fp8_flops_s=c.fp8_flops_s * factor, fp4_flops_s=c.fp4_flops_s * factor,
                        scaleup_bw_bytes_s=c.scaleup_bw_bytes_s * factor)
    fast = ReplicaPerf(fast_chip, replica.model, tp=replica.tp, ep=replica.ep, pp=replica.pp,
                       weight_dtype=replica.weight_dtype, kv_dtype=replica.kv_dtype)
    assert step_cost(fast, load).step_s <= step_cost(replica, load).step_s


@settings(max_examples=200, deadline=None)
@given(replica=st.sampled_from(REPLICAS), load=decode_loads(), num_steps=st.integers(1, 64))
def test_decode_run_equals_repeated_step_cost_bitwise(replica, load, num_steps):
    run = decode_run_costs(replica, load, num_steps)
    step_load = load
    for i in range(num_steps):
        cost = step_cost(replica, step_load)
        assert run.step_s[i] == cost.step_s
        assert run.flops[i] == cost.flops
        assert run.hbm_bytes[i] == cost.hbm_bytes
        assert step_load == advance_decode(load, i)
        # the engine grows each context by one token per step
        step_load = replace(step_load, attn_pairs=step_load.attn_pairs + step_load.num_seqs,
                            kv_read_tokens=step_load.kv_read_tokens + step_load.num_seqs)
    assert np.array_equal(decode_run_s(replica, load, num_steps), run.step_s)
    assert np.all(np.diff(run.step_s) >= 0)


@settings(max_examples=200, deadline=None)
@given(replica=st.sampled_from(REPLICAS), num_seqs=st.integers(1, 512), extra=st.integers(0, 10**7),
       num_steps=st.integers(1, 64))
def test_decode_durations_equal_full_costs_bitwise_on_engine_loads(replica, num_seqs, extra, num_steps):
    # the engine's decode loads score as many pairs as they read tokens (one query per sequence)
    context = num_seqs + extra
    load = BatchLoad(num_tokens=num_seqs, num_seqs=num_seqs, num_sampled=num_seqs, attn_pairs=float(context),
                     kv_read_tokens=context)
    assert np.array_equal(decode_run_s(replica, load, num_steps), decode_run_costs(replica, load, num_steps).step_s)


@settings(max_examples=200, deadline=None)
@given(replica=st.sampled_from(REPLICAS), num_seqs=st.integers(1, 512), extra=st.integers(0, 10**7),
       num_steps=st.integers(1, 2 * DECODE_ENDS_LOOP_STEPS), start_s=st.floats(0, 1e6))
def test_decode_end_times_add_step_times_one_by_one(replica, num_seqs, extra, num_steps, start_s):
    # short runs take a Python loop, long ones numpy: both must equal stepping one by one
    context = num_seqs + extra
    load = BatchLoad(num_tokens=num_seqs, num_seqs=num_seqs, num_sampled=num_seqs, attn_pairs=float(context),
                     kv_read_tokens=context)
    expected = []
    end_s = start_s
    for i in range(num_steps):
        end_s += step_cost(replica, advance_decode(load, i)).step_s
        expected.append(end_s)
    assert list(decode_run_ends(replica, load, num_steps, start_s)) == expected


@settings(max_examples=100, deadline=None)
@given(replica=st.sampled_from(REPLICAS + [ReplicaPerf(H100, LLAMA_8B, efficiency=replace(TEST_EFF, kv_bucket_min_tokens=128.0))]),
       rows=st.lists(loads(), min_size=1, max_size=12), idle=st.booleans())
def test_step_costs_of_many_rows_equal_step_cost_bitwise(replica, rows, idle):
    # the step records compute every row's figures in one vectorized pass at flush time
    if idle:
        rows = rows + [BatchLoad()]
    columns = [np.array([getattr(r, name) for r in rows]) for name in
               ("num_tokens", "num_seqs", "num_sampled", "attn_pairs", "kv_read_tokens")]
    step_s, flops, hbm_bytes = step_cost_rows(replica, *columns)
    for i, load in enumerate(rows):
        cost = step_cost(replica, load)
        assert (step_s[i], flops[i], hbm_bytes[i]) == (cost.step_s, cost.flops, cost.hbm_bytes)


def test_small_gemms_run_below_the_fitted_rate_by_hand():
    # Llama-8B prefill of M rows on one H100 with gemm_half_rows h: the linear layers run at
    # 989e12 x 0.5 x M / (M + h). At M = 2048 tokens and h = 128 that is 2048/2176 of the rate.
    h_rows = 128
    replica = ReplicaPerf(H100, LLAMA_8B, efficiency=replace(TEST_EFF, gemm_half_rows=h_rows))
    flat = ReplicaPerf(H100, LLAMA_8B, efficiency=TEST_EFF)
    for rows in (256, 2048):
        load = BatchLoad.of_request(num_new=rows, num_cached=0, is_prefill=True, samples=True)
        h, layers = 4096, 32
        linear_params = layers * (2 * h * 32 * 128 + 2 * h * 8 * 128 + 3 * h * 14336)
        dense_flops = 2 * linear_params * rows + 2 * 128256 * h
        slower_by = dense_flops / (989e12 * 0.5) * ((rows + h_rows) / rows - 1)
        assert step_cost(replica, load).step_s - step_cost(flat, load).step_s == pytest.approx(slower_by, rel=1e-9)


def test_small_gemm_penalty_leaves_memory_bound_decode_alone():
    # Batch-8 decode of Llama-8B on H100 stays weight-read bound even at 8 x (8 + 128)/8 rows' cost.
    replica = ReplicaPerf(H100, LLAMA_8B, efficiency=replace(TEST_EFF, gemm_half_rows=128))
    flat = ReplicaPerf(H100, LLAMA_8B, efficiency=TEST_EFF)
    load = decode_load(8, 1000)
    assert step_cost(replica, load).step_s == step_cost(flat, load).step_s
