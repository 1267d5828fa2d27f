"""Weights, active parameters, KV bytes and KV capacity against hand arithmetic."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.catalog.specs import DTYPE_BYTES
from clustersim.errors import SpecError
from clustersim.perf import (
    ReplicaPerf,
    active_param_count,
    kv_bytes_for_context,
    kv_bytes_per_token,
    kv_capacity_tokens,
    kv_replication,
    param_count,
    weight_bytes,
)
from perf_specs import DEEPSEEK_V3, GPT_OSS_120B, H100, H200, LLAMA_8B, LLAMA_70B, TEST_EFF

GIB = 2**30


def llama_params(num_layers, h, heads, kv_heads, head_dim, ffn, vocab):
    """Hand count of a Llama: embedding + lm_head + L x (q,o + k,v + 3 FFN mats + 2 norms) + final norm."""
    per_layer = 2 * h * heads * head_dim + 2 * h * kv_heads * head_dim + 3 * h * ffn + 2 * h
    return 2 * vocab * h + num_layers * per_layer + h


def test_llama_8b_param_count_matches_published_8_03b():
    expected = llama_params(32, 4096, 32, 8, 128, 14336, 128256)
    assert expected == 8_030_261_248  # Hugging Face model card: 8.03B parameters
    assert param_count(LLAMA_8B) == expected
    assert weight_bytes(LLAMA_8B, "bf16") == 2 * expected


def test_llama_70b_params_and_active():
    expected = llama_params(80, 8192, 64, 8, 128, 28672, 128256)
    assert param_count(LLAMA_70B) == expected
    assert expected == pytest.approx(70.6e9, rel=1e-3)  # model card: 70.6B
    # active = all but the embedding table (a lookup)
    assert active_param_count(LLAMA_70B) == expected - 128256 * 8192
    assert weight_bytes(LLAMA_70B, "fp8") == pytest.approx(expected + 2 * 128256 * 8192 + 80 * 2 * 8192 + 8192)
    # fp8: linear layers 1 byte; embedding, lm_head, norms kept in bf16 (2 bytes), i.e. +1 byte each


def test_deepseek_v3_total_and_active_parameters():
    h, num_layers, heads, vocab = 7168, 61, 128, 129280
    attn = (h * 1536 + 1536 * heads * (128 + 64)  # q_a, q_b
            + h * (512 + 64) + 512 * heads * (128 + 128)  # kv_a (latent + rope key), kv_b
            + heads * 128 * h)  # o
    norms = num_layers * (2 * h + 1536 + 512) + h
    expert = 3 * h * 2048
    dense_ffn = 3 * 3 * h * 18432
    moe_layers = 61 - 3
    total = 2 * vocab * h + norms + num_layers * attn + dense_ffn + moe_layers * (h * 256 + 257 * expert)
    assert param_count(DEEPSEEK_V3) == total
    assert total == pytest.approx(671e9, rel=5e-3)  # paper: 671B (without the 14B MTP module)
    active = vocab * h + norms + num_layers * attn + dense_ffn + moe_layers * (h * 256 + (8 + 1) * expert)
    assert active_param_count(DEEPSEEK_V3) == active
    assert active == pytest.approx(37e9, rel=0.03)  # paper: 37B activated


def test_gpt_oss_fp4_keeps_attention_embeddings_in_bf16():
    h, num_layers, vocab = 2880, 36, 201088
    attn = 2 * h * 64 * 64 + 2 * h * 8 * 64
    experts = num_layers * 128 * 3 * h * 2880
    norms = num_layers * 2 * h + h
    router = num_layers * h * 128
    assert param_count(GPT_OSS_120B) == 2 * vocab * h + num_layers * attn + experts + norms + router
    assert param_count(GPT_OSS_120B) == pytest.approx(116.8e9, rel=2e-3)  # model card: 117B (116.8B)
    expected_bytes = 0.5 * experts + 2 * (2 * vocab * h + num_layers * attn + norms + router)
    assert weight_bytes(GPT_OSS_120B, "fp4") == expected_bytes
    assert active_param_count(GPT_OSS_120B) == pytest.approx(5.1e9, rel=0.02)  # model card: 5.1B active


def test_kv_bytes_per_token_gqa_and_mla():
    assert kv_bytes_per_token(LLAMA_70B, "bf16") == 2 * 80 * 8 * 128 * 2  # 327,680 B
    assert kv_bytes_per_token(LLAMA_8B, "fp8") == 2 * 32 * 8 * 128 * 1
    assert kv_bytes_per_token(DEEPSEEK_V3, "bf16") == 61 * (512 + 64) * 2
    assert kv_bytes_per_token(DEEPSEEK_V3, "fp8") == 61 * (512 + 64) * 1


def test_sliding_window_layers_keep_at_most_the_window():
    per_layer = 2 * 8 * 64 * 2
    assert kv_bytes_for_context(GPT_OSS_120B, "bf16", 100) == 36 * 100 * per_layer
    assert kv_bytes_for_context(GPT_OSS_120B, "bf16", 4096) == (18 * 4096 + 18 * 128) * per_layer
    assert kv_bytes_for_context(LLAMA_8B, "bf16", 4096) == 4096 * kv_bytes_per_token(LLAMA_8B, "bf16")


def test_kv_replication_when_tp_exceeds_kv_heads():
    assert kv_replication(LLAMA_70B, 8) == 1.0
    assert kv_replication(LLAMA_70B, 16) == 2.0  # 8 KV heads on 16 ranks: each head twice
    assert kv_replication(LLAMA_70B, 32) == 4.0
    assert kv_replication(DEEPSEEK_V3, 8) == 8.0  # MLA latent is whole on every TP rank


def test_llama_70b_does_not_fit_one_h100():
    replica = ReplicaPerf(H100, LLAMA_70B, efficiency=TEST_EFF)
    # 80e9 x 0.9 = 72e9 usable < 141e9 of bf16 weights
    assert kv_capacity_tokens(replica) <= 0


def test_llama_70b_kv_capacity_on_tp8_h200():
    replica = ReplicaPerf(H200, LLAMA_70B, tp=8, efficiency=TEST_EFF)
    weights = 2 * llama_params(80, 8192, 64, 8, 128, 28672, 128256)
    free = 8 * 141e9 * 0.9 - weights - 8 * GIB
    expected = math.floor(free / (2 * 80 * 8 * 128 * 2))
    assert kv_capacity_tokens(replica) == expected
    assert 2_600_000 < expected < 2_700_000  # about 2.6M tokens: ~1,290 sequences of 2k
    assert kv_capacity_tokens(replica, reserve_fraction=0.1, activation_reserve_bytes=0.0) == math.floor(
        (8 * 141e9 * 0.9 - weights) / 327680
    )


def test_replicated_kv_heads_cut_capacity():
    # 16-way TP of 70B: KV heads stored twice, so each token costs 2 x 327,680 B
    replica = ReplicaPerf(H100, LLAMA_70B, tp=16, efficiency=TEST_EFF)
    weights = 2 * llama_params(80, 8192, 64, 8, 128, 28672, 128256)
    free = 16 * 80e9 * 0.9 - weights - 16 * GIB
    assert kv_capacity_tokens(replica) == math.floor(free / (2 * 327680))


def test_unknown_dtype_is_a_spec_error():
    with pytest.raises(SpecError, match="dtype='fp6'"):
        weight_bytes(LLAMA_8B, "fp6")


@settings(max_examples=100, deadline=None)
@given(
    hbm_gb=st.floats(1, 400),
    more_gb=st.floats(0, 100),
    tp=st.sampled_from([1, 2, 4, 8]),
    dtype=st.sampled_from(["bf16", "fp8", "fp4"]),
)
def test_capacity_grows_with_hbm(hbm_gb, more_gb, tp, dtype):
    from dataclasses import replace

    small = ReplicaPerf(replace(H100, hbm_bytes=hbm_gb * 1e9), LLAMA_8B, tp=tp, weight_dtype=dtype, efficiency=TEST_EFF)
    large = ReplicaPerf(replace(H100, hbm_bytes=(hbm_gb + more_gb) * 1e9), LLAMA_8B, tp=tp, weight_dtype=dtype,
                        efficiency=TEST_EFF)
    assert kv_capacity_tokens(large) >= kv_capacity_tokens(small)


@settings(max_examples=50, deadline=None)
@given(model=st.sampled_from([LLAMA_8B, LLAMA_70B, DEEPSEEK_V3, GPT_OSS_120B]))
def test_weight_bytes_shrink_with_narrower_dtypes(model):
    by_dtype = [weight_bytes(model, d) for d in ("fp32", "bf16", "fp8", "fp4")]
    assert by_dtype == sorted(by_dtype, reverse=True)
    assert weight_bytes(model, "bf16") == DTYPE_BYTES["bf16"] * param_count(model)
