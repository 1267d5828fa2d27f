"""Chip and model literals for the perf tests, figures copied from the sourced data files
(so hand-arithmetic tests need no catalog). Units converted to SI here."""

from hypothesis import strategies as st

from clustersim.catalog.specs import ChipSpec, ModelSpec
from clustersim.perf.load import BatchLoad
from clustersim.perf.efficiency import Efficiency

# /work/shared/data/hardware.csv, row "H100 SXM": 80 GB (vendor decimal GB), 3.35 TB/s,
# 989 / 1979 dense bf16 / fp8 TFLOPS, 450 GB/s NVLink unidirectional, domain 8.
H100 = ChipSpec(
    name="H100", vendor="NVIDIA", family="nvidia-hopper", hbm_bytes=80e9, hbm_bw_bytes_s=3.35e12,
    bf16_flops_s=989e12, fp8_flops_s=1979e12, fp4_flops_s=0.0, scaleup_bw_bytes_s=450e9,
    scaleup_domain=8, scaleout_bw_bytes_s=50e9, tdp_w=700.0, price_usd=27500.0, source="hardware.csv",
)
# /work/shared/data/hardware.csv, row "H200 SXM": 141 GB, 4.8 TB/s, same compute and NVLink as H100.
H200 = ChipSpec(
    name="H200", vendor="NVIDIA", family="nvidia-hopper", hbm_bytes=141e9, hbm_bw_bytes_s=4.8e12,
    bf16_flops_s=989e12, fp8_flops_s=1979e12, fp4_flops_s=0.0, scaleup_bw_bytes_s=450e9,
    scaleup_domain=8, scaleout_bw_bytes_s=50e9, tdp_w=700.0, price_usd=35000.0, source="hardware.csv",
)

# /work/shared/data/models/llama-3.1-70b.json: 80 layers, hidden 8192, 64 heads, 8 KV heads,
# head_dim 8192/64 = 128, FFN 28672, vocab 128256, untied.
LLAMA_70B = ModelSpec(
    name="llama-3.1-70b", num_layers=80, hidden_size=8192, num_heads=64, num_kv_heads=8, head_dim=128,
    intermediate_size=28672, vocab_size=128256, attention="gqa", max_context=131072, source="llama-3.1-70b.json",
)
# /work/shared/data/models/llama-3.1-8b.json: 32 layers, hidden 4096, 32 heads, 8 KV heads, FFN 14336.
LLAMA_8B = ModelSpec(
    name="llama-3.1-8b", num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=8, head_dim=128,
    intermediate_size=14336, vocab_size=128256, attention="gqa", max_context=131072, source="llama-3.1-8b.json",
)
# /work/shared/data/models/deepseek-v3.json: 61 layers, hidden 7168, 128 heads, MLA q_lora 1536,
# kv_lora 512, rope 64, nope 128, v 128; 256 routed experts of 2048, top-8, 1 shared, first 3 dense
# (FFN 18432); vocab 129280; fp8 weights (quantization_config).
DEEPSEEK_V3 = ModelSpec(
    name="deepseek-v3", num_layers=61, hidden_size=7168, num_heads=128, num_kv_heads=128, head_dim=192,
    intermediate_size=18432, vocab_size=129280, attention="mla", max_context=163840, source="deepseek-v3.json",
    weight_dtype="fp8", kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64, qk_nope_head_dim=128,
    v_head_dim=128, num_experts=256, num_experts_per_tok=8, moe_intermediate_size=2048, num_shared_experts=1,
    num_dense_layers=3,
)
# /work/shared/data/models/gpt-oss-120b.json: 36 layers alternating sliding (window 128) / full,
# hidden 2880, 64 heads, 8 KV heads, head_dim 64, 128 experts of 2880, top-4, mxfp4 experts.
GPT_OSS_120B = ModelSpec(
    name="gpt-oss-120b", num_layers=36, hidden_size=2880, num_heads=64, num_kv_heads=8, head_dim=64,
    intermediate_size=2880, vocab_size=201088, attention="gqa", max_context=131072, source="gpt-oss-120b.json",
    weight_dtype="fp4", num_experts=128, num_experts_per_tok=4, moe_intermediate_size=2880,
    sliding_window=128, num_sliding_layers=18,
)

# Round test factors, so the hand arithmetic does not move when efficiency.yaml is refitted.
TEST_EFF = Efficiency(
    family="nvidia-hopper", compute=0.5, memory=0.8, attention_compute=0.4, comm_bw=0.8,
    step_overhead_s=1e-3, layer_overhead_s=1e-5, comm_latency_s=1e-6,
)


@st.composite
def decode_loads(draw):
    """A hypothesis strategy: a decode-only BatchLoad (num_seqs sequences, one token each)."""
    num_seqs = draw(st.integers(1, 512))
    extra = draw(st.integers(0, 10**7))
    return BatchLoad(num_tokens=num_seqs, num_seqs=num_seqs, num_sampled=num_seqs,
                     attn_pairs=float(num_seqs + extra + draw(st.integers(0, 1000))),
                     kv_read_tokens=num_seqs + extra)
