"""Models added for benchmark coverage (gpt-oss-20b, Mixtral-8x22B, Qwen3-30B-A3B, Llama 4
Scout/Maverick, Llama-3.2-1B): they load by name and alias, their parameter counts match the
publishers' figures, and their MoE / attention fields say what their config.json says."""

from __future__ import annotations

import pytest

from clustersim.catalog import ModelSpec, load_catalog
from clustersim.perf.memory import active_param_count, param_count

NEW_MODELS = (
    "gpt-oss-20b", "mixtral-8x22b", "qwen3-30b-a3b",
    "llama-4-scout-17b-16e", "llama-4-maverick-17b-128e", "llama-3.2-1b",
)

# Published totals / active-per-token counts. "embed" says whether the publisher's active
# figure counts the input embedding table (a lookup, which active_param_count leaves out):
# OpenAI's does not, Mistral's, Qwen's and Meta's do (their "active" = total minus idle experts).
PUBLISHED = {
    # OpenAI gpt-oss model card (openai.com/index/gpt-oss-model-card, table 1): 20.9B total, 3.6B active
    "gpt-oss-20b": {"total": 20.9e9, "active": 3.6e9, "embed": False},
    # Mistral AI, "Cheaper, Better, Faster, Stronger" (mistral.ai/news/mixtral-8x22b): 39B active of 141B
    "mixtral-8x22b": {"total": 141e9, "active": 39e9, "embed": True},
    # huggingface.co/Qwen/Qwen3-30B-A3B model card: 30.5B in total and 3.3B activated
    "qwen3-30b-a3b": {"total": 30.5e9, "active": 3.3e9, "embed": True},
    # huggingface.co/meta-llama/Llama-4-Scout-17B-16E model card: 17B activated, 109B total.
    # 109B includes the ~1.9B vision encoder and projector, which the catalog does not model:
    # the text model is 107.8B, 1.1% under, inside the 3% bound.
    "llama-4-scout-17b-16e": {"total": 109e9, "active": 17e9, "embed": True},
    # huggingface.co/meta-llama/Llama-4-Maverick-17B-128E model card: 17B activated, 400B total
    "llama-4-maverick-17b-128e": {"total": 400e9, "active": 17e9, "embed": True},
    # huggingface.co/meta-llama/Llama-3.2-1B model card: 1.23B parameters (embedding tied to lm_head)
    "llama-3.2-1b": {"total": 1.23e9, "active": None, "embed": True},
}


def _model(name: str) -> ModelSpec:
    return load_catalog().model(name)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_new_model_loads_with_config_provenance(name):
    model = _model(name)
    assert model.name == name
    assert "config.json" in model.source and "huggingface.co/" in model.source
    assert " @ " in model.source  # the public copy is pinned to a commit


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("openai/gpt-oss-20b", "gpt-oss-20b"),
        ("mistralai/Mixtral-8x22B-Instruct-v0.1", "mixtral-8x22b"),
        ("Qwen/Qwen3-30B-A3B", "qwen3-30b-a3b"),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama-4-scout-17b-16e"),
        ("Llama-4-Maverick-17B-128E-Instruct-FP8", "llama-4-maverick-17b-128e"),
        ("meta-llama/Llama-3.2-1B-Instruct", "llama-3.2-1b"),
    ],
)
def test_new_model_found_by_hf_repo_name(alias, name):
    assert _model(alias).name == name


@pytest.mark.parametrize("name", NEW_MODELS)
def test_total_params_within_3pct_of_published(name):
    assert param_count(_model(name)) == pytest.approx(PUBLISHED[name]["total"], rel=0.03)


@pytest.mark.parametrize("name", [n for n in NEW_MODELS if PUBLISHED[n]["active"]])
def test_active_params_within_3pct_of_published(name):
    model = _model(name)
    embedding = model.vocab_size * model.hidden_size if PUBLISHED[name]["embed"] else 0
    assert active_param_count(model) + embedding == pytest.approx(PUBLISHED[name]["active"], rel=0.03)


def test_mixtral_8x22b_params_by_hand():
    """h=6144, 56 layers, 48 q / 8 kv heads of 128, 8 experts of FFN 16384, vocab 32000, untied.
    attention/layer = 2*h*48*128 + 2*h*8*128 = 88,080,384; experts/layer = 8*3*h*16384 = 2,415,919,104;
    router/layer = 8*h = 49,152; embeddings = 2*32000*h = 393,216,000;
    total = 393,216,000 + 56*(88,080,384 + 2,415,919,104 + 49,152) = 140,619,939,840 (+ norms)."""
    assert param_count(_model("mixtral-8x22b")) == pytest.approx(140_619_939_840, rel=1e-4)


def test_llama_3_2_1b_ties_embeddings():
    """Tied: 128256*2048 = 262,668,288 stored once. Layers: 16*(2*2048*32*64 + 2*2048*8*64
    + 3*2048*8192) = 16*(8,388,608 + 2,097,152 + 50,331,648) = 973,078,528. Sum 1,235,746,816."""
    model = _model("llama-3.2-1b")
    assert model.tie_word_embeddings and not model.is_moe
    assert param_count(model) == pytest.approx(1_235_746_816, rel=1e-4)


@pytest.mark.parametrize(
    ("name", "experts", "top_k", "expert_ffn", "shared", "dense_layers"),
    [
        ("gpt-oss-20b", 32, 4, 2880, 0, 0),
        ("mixtral-8x22b", 8, 2, 16384, 0, 0),
        ("qwen3-30b-a3b", 128, 8, 768, 0, 0),
        ("llama-4-scout-17b-16e", 16, 1, 8192, 1, 0),
        ("llama-4-maverick-17b-128e", 128, 1, 8192, 1, 24),  # interleave_moe_layer_step 2
    ],
)
def test_moe_fields(name, experts, top_k, expert_ffn, shared, dense_layers):
    m = _model(name)
    assert m.is_moe
    got = (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size, m.num_shared_experts, m.num_dense_layers)
    assert got == (experts, top_k, expert_ffn, shared, dense_layers)
    assert m.num_moe_layers == m.num_layers - dense_layers


@pytest.mark.parametrize(
    ("name", "window", "num_sliding", "dtype"),
    [
        ("gpt-oss-20b", 128, 12, "fp4"),  # layer_types alternate sliding/full over 24 layers; MXFP4 experts
        ("llama-4-scout-17b-16e", 8192, 36, "bf16"),  # chunked attention on 3 of 4 layers (approximated)
        ("llama-4-maverick-17b-128e", 8192, 36, "bf16"),
        ("mixtral-8x22b", 0, 0, "bf16"),
        ("qwen3-30b-a3b", 0, 0, "bf16"),
        ("llama-3.2-1b", 0, 0, "bf16"),
    ],
)
def test_attention_window_and_weight_dtype(name, window, num_sliding, dtype):
    m = _model(name)
    assert (m.sliding_window, m.num_sliding_layers, m.weight_dtype) == (window, num_sliding, dtype)


def test_llama4_dense_ffn_is_intermediate_size_mlp():
    """Maverick's 24 dense layers use intermediate_size_mlp 16384, twice the expert width 8192."""
    m = _model("llama-4-maverick-17b-128e")
    assert (m.intermediate_size, m.moe_intermediate_size) == (16384, 8192)
