"""The catalog: shipped chip and model files load, carry sources, convert units right,
agree with the Hugging Face configs they came from, and reject bad files by field name."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.catalog import DTYPE_BYTES, Catalog, ChipSpec, ModelSpec, load_catalog, model_from_hf_config
from clustersim.catalog.chip_file import FAMILIES, chip_from_mapping
from clustersim.catalog.loader import DATA_DIR, name_key
from clustersim.catalog.model_file import model_from_mapping
from clustersim.catalog.units import UNITS
from clustersim.errors import SpecError

CHIP_DIR = DATA_DIR / "chips"
MODEL_DIR = DATA_DIR / "models"
NUMERIC_CHIP_FIELDS = (
    "hbm", "hbm_bw", "bf16_dense", "fp8_dense", "fp4_dense",
    "scaleup_bw", "scaleup_domain", "scaleout_bw", "tdp", "price",
)
REQUIRED_CHIP_FIELDS = tuple(f for f in NUMERIC_CHIP_FIELDS if f not in ("fp8_dense", "fp4_dense"))
SHIPPED_CHIPS = {
    "A100", "H100", "H200", "H800", "B200", "B300", "GB200", "GB300", "MI300X", "MI325X", "MI355X",
    "TPU v4", "TPU v5e", "TPU v5p", "TPU v6e", "TPU v7", "Trainium1", "Trainium2", "Trainium3", "Inferentia2",
    "GH200", "GH200-96GB", "H20", "RTX PRO 6000", "L40S", "L4",
}
SHIPPED_MODELS = {
    "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-3.3-70b", "llama-3-8b", "llama-2-7b",
    "llama-2-13b", "llama-2-70b", "codellama-13b", "mistral-7b-v0.2", "mixtral-8x7b", "qwen3-32b",
    "qwen3-235b-a22b", "deepseek-v3", "deepseek-r1", "gpt-oss-120b",
    "gpt-oss-20b", "mixtral-8x22b", "qwen3-30b-a3b", "llama-4-scout-17b-16e", "llama-4-maverick-17b-128e", "llama-3.2-1b",
}
HF_CONFIG_OF = {"deepseek-r1": "deepseek-v3"}  # R1 shares V3's architecture and config values


def _shared_models_dir() -> Path | None:
    """shared/data/models beside the checkout (CI) or at /work/shared (dev box), if present."""
    for base in (Path(__file__).parents[2] / "shared", Path("/work/shared")):
        if (base / "data" / "models").is_dir():
            return base / "data" / "models"
    return None


# ---------------------------------------------------------------- shipped data


def test_every_shipped_chip_loads_with_sane_values():
    catalog = load_catalog()
    assert set(catalog.chips) == SHIPPED_CHIPS
    for chip in catalog.chips.values():
        assert chip.family in FAMILIES
        assert chip.hbm_bytes > 1e9 and chip.hbm_bw_bytes_s > 1e11 and chip.bf16_flops_s > 1e13
        assert chip.scaleup_domain >= 1
        # a narrower dtype is never slower than a wider one, when it is accelerated at all
        assert chip.fp8_flops_s == 0 or chip.fp8_flops_s >= chip.bf16_flops_s
        assert chip.fp4_flops_s == 0 or chip.fp4_flops_s >= chip.fp8_flops_s


def test_every_numeric_chip_field_carries_a_source():
    files = sorted(CHIP_DIR.glob("*.yaml"))
    assert len(files) == len(SHIPPED_CHIPS)
    for path in files:
        data = yaml.safe_load(path.read_text())
        for field in REQUIRED_CHIP_FIELDS:
            assert field in data, f"{path.name}: {field} missing"
        for field in NUMERIC_CHIP_FIELDS:
            if field in data:
                source = data[field].get("source")
                assert isinstance(source, str) and len(source.strip()) > 5, f"{path.name}: {field} has no source"
                if data[field]["value"] == 0:  # an unknown or absent figure must say why
                    assert field in ("fp8_dense", "fp4_dense") or data[field].get("note"), f"{path.name}: {field}"


def test_h100_unit_conversion_by_hand():
    h100 = load_catalog().chip("H100")
    assert h100.hbm_bytes == pytest.approx(80e9)  # 80 GB x 1e9
    assert h100.hbm_bw_bytes_s == pytest.approx(3.35e12)  # 3.35 TB/s x 1e12
    assert h100.bf16_flops_s == pytest.approx(9.89e14)  # 989 TFLOPS x 1e12
    assert h100.fp8_flops_s == pytest.approx(1.979e15)
    assert h100.scaleup_bw_bytes_s == pytest.approx(450e9)  # 900 GB/s bidirectional / 2
    assert h100.scaleout_bw_bytes_s == pytest.approx(50e9)  # 400 Gb/s / 8 bits
    assert h100.tdp_w == 700 and h100.scaleup_domain == 8


def test_binary_units_and_fallback_dtype():
    catalog = load_catalog()
    assert catalog.chip("TPU v5e").hbm_bytes == 16 * 2**30  # 16 GiB
    assert catalog.chip("Inferentia2").hbm_bw_bytes_s == pytest.approx(820 * 2**30)  # 820 GiB/s
    a100 = catalog.chip("A100")
    assert a100.peak_flops_s("fp8") == a100.bf16_flops_s == pytest.approx(312e12)  # no FP8 on Ampere


def test_every_shipped_model_loads():
    catalog = load_catalog()
    assert set(catalog.models) == SHIPPED_MODELS
    for model in catalog.models.values():
        assert model.weight_dtype in DTYPE_BYTES
        assert "config.json" in model.source


def test_released_weight_dtypes_and_special_shapes():
    catalog = load_catalog()
    assert catalog.model("deepseek-v3").weight_dtype == "fp8"
    assert catalog.model("DeepSeek-R1").weight_dtype == "fp8"
    assert catalog.model("gpt-oss-120b").weight_dtype == "fp4"
    assert catalog.model("llama-3.1-70b").weight_dtype == "bf16"
    oss = catalog.model("gpt-oss-120b")
    assert (oss.sliding_window, oss.num_sliding_layers, oss.num_layers) == (128, 18, 36)
    mixtral = catalog.model("mixtral-8x7b")
    assert mixtral.moe_intermediate_size == mixtral.intermediate_size == 14336
    v3 = catalog.model("deepseek-v3")
    assert (v3.attention, v3.kv_lora_rank, v3.qk_rope_head_dim, v3.num_dense_layers) == ("mla", 512, 64, 3)
    assert v3.num_moe_layers == 58  # 61 layers - 3 dense


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_model_yaml_agrees_with_hf_config(name):
    models_dir = _shared_models_dir()
    if models_dir is None:
        pytest.skip("shared/data/models not present beside the checkout")
    config = models_dir / f"{HF_CONFIG_OF.get(name, name)}.json"
    if not config.is_file():
        pytest.skip(f"no {config.name} in shared/data/models (the model file cites its own config copy)")
    from_yaml = load_catalog().model(name)
    from_hf = model_from_hf_config(config, name=name)
    same_shape = dataclasses.replace(from_hf, source=from_yaml.source, aliases=from_yaml.aliases)
    assert same_shape == from_yaml


# ---------------------------------------------------------------- parameter counts


def total_params(m: ModelSpec) -> float:
    """Weights of the main model (no MTP head; biases and norms ignored, < 0.1%).

    embeddings: V*h, doubled when the LM head is untied.
    attention per layer, GQA/MHA: q and o are h*H*d each, k and v are h*Hkv*d each.
    attention per layer, MLA: q = h*q_lora + q_lora*H*(nope+rope); kv down = h*(kv_lora+rope);
      kv up = kv_lora*H*(nope+v); o = H*v*h.
    FFN (SwiGLU): 3*h*I per dense layer; per MoE layer 3*h*I_moe per routed and shared
      expert, plus the router h*E.
    """
    h = m.hidden_size
    embed = m.vocab_size * h * (1 if m.tie_word_embeddings else 2)
    if m.attention == "mla":
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        q = h * m.q_lora_rank + m.q_lora_rank * m.num_heads * qk if m.q_lora_rank else h * m.num_heads * qk
        kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank * m.num_heads * (m.qk_nope_head_dim + m.v_head_dim)
        attn = q + kv + m.num_heads * m.v_head_dim * h
    else:
        attn = 2 * h * m.num_heads * m.head_dim + 2 * h * m.num_kv_heads * m.head_dim
    dense_ffn = 3 * h * m.intermediate_size
    if m.is_moe:
        moe_ffn = 3 * h * m.moe_intermediate_size * (m.num_experts + m.num_shared_experts) + h * m.num_experts
        ffn = m.num_dense_layers * dense_ffn + m.num_moe_layers * moe_ffn
    else:
        ffn = m.num_layers * dense_ffn
    return embed + m.num_layers * attn + ffn


@pytest.mark.parametrize(
    ("name", "published", "rel"),
    [
        ("llama-3.1-70b", 70.6e9, 0.02),
        ("llama-3.1-8b", 8.0e9, 0.02),
        ("deepseek-v3", 671e9, 0.03),
        ("mixtral-8x7b", 46.7e9, 0.02),
        ("qwen3-235b-a22b", 235e9, 0.02),
        ("llama-3.1-405b", 405e9, 0.02),
    ],
)
def test_param_count_matches_published_size(name, published, rel):
    assert total_params(load_catalog().model(name)) == pytest.approx(published, rel=rel)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("H100", "H100"),
        ("h100 sxm", "H100"),
        ("H100_SXM5", "H100"),
        ("tpu-v5e", "TPU v5e"),
        ("Trillium", "TPU v6e"),
        ("ironwood", "TPU v7"),
        ("trn2", "Trainium2"),
    ],
)
def test_chip_names_forgive_case_and_separators(query, canonical):
    assert load_catalog().chip(query).name == canonical


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("Llama-3.1-70B", "llama-3.1-70b"),
        ("LLAMA_3_1_70B", "llama-3.1-70b"),
        ("meta-llama/Llama-3.1-70B-Instruct", "llama-3.1-70b"),
        ("DeepSeek-R1", "deepseek-r1"),
        ("Qwen/Qwen3-235B-A22B", "qwen3-235b-a22b"),
    ],
)
def test_model_names_forgive_case_separators_and_aliases(query, canonical):
    assert load_catalog().model(query).name == canonical


def test_unknown_name_lists_known_ones():
    with pytest.raises(SpecError, match=r"unknown chip 'H1000'; known chips: A100, B200, B300"):
        load_catalog().chip("H1000")
    with pytest.raises(SpecError, match=r"unknown model 'gpt-5'; known models: .*deepseek-v3"):
        load_catalog().model("gpt-5")


def test_name_key_ignores_case_spaces_dashes_underscores_dots():
    assert name_key("TPU v5e") == name_key("tpu-v5e") == name_key("TPU_V5E") == "tpuv5e"
    assert name_key("Llama-3.1-70B") == "llama3170b"


def test_shipped_catalog_is_cached_and_frozen():
    catalog = load_catalog()
    assert load_catalog() is catalog
    with pytest.raises(TypeError):
        catalog.chips["X"] = catalog.chip("H100")  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.chips = {}  # type: ignore[misc]
    clone = pickle.loads(pickle.dumps(catalog))  # sweeps ship catalogs to worker processes
    assert clone == catalog and clone.chip("H100") == catalog.chip("H100")


# ---------------------------------------------------------------- user directories


def _h100_data() -> dict:
    return yaml.safe_load((CHIP_DIR / "h100.yaml").read_text())


def _write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _tiny_hf_config() -> dict:
    return {
        "model_type": "llama", "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 8,
        "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1000,
        "max_position_embeddings": 2048, "torch_dtype": "bfloat16",
    }


def test_user_dir_adds_a_chip_and_an_hf_model(tmp_path):
    chip = _h100_data() | {"name": "X9", "aliases": ["X9 Turbo"]}
    chip["hbm"] = {"value": 96, "unit": "GiB", "source": "https://example.com/x9"}
    _write_yaml(tmp_path / "chips" / "x9.yaml", chip)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny-llama.json").write_text(json.dumps(_tiny_hf_config()))

    catalog = load_catalog([tmp_path])
    assert catalog.chip("x9 turbo").hbm_bytes == 96 * 2**30
    tiny = catalog.model("tiny-llama")
    assert (tiny.num_layers, tiny.head_dim, tiny.attention) == (4, 32, "gqa")  # 256 / 8 heads
    assert tiny.source.endswith("tiny-llama.json")
    assert "H100" in catalog.chips and "llama-3.1-70b" in catalog.models  # shipped ones stay
    assert "X9" not in load_catalog().chips  # the shared cached catalog is untouched


def test_top_level_files_are_detected_and_later_dirs_override(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _write_yaml(first / "fast-h100.yaml", _h100_data() | {"name": "h100", "aliases": []})
    model = {
        "name": "toy", "source": "hand-written", "num_layers": 2, "hidden_size": 64, "num_heads": 4,
        "num_kv_heads": 4, "head_dim": 16, "intermediate_size": 128, "vocab_size": 100,
        "attention": "mha", "max_context": 512,
    }
    _write_yaml(first / "toy.yaml", model)
    (first / "toy-hf.json").write_text(json.dumps(_tiny_hf_config()))
    _write_yaml(second / "toy.yaml", model | {"num_layers": 3})

    catalog = load_catalog([first, second])
    assert catalog.chip("H100").name == "h100"  # replaced the shipped H100 (same name up to case)
    assert [n for n in catalog.chips if name_key(n) == "h100"] == ["h100"]
    assert catalog.model("toy").num_layers == 3  # the later directory wins
    assert catalog.model("toy-hf").num_layers == 4


def test_missing_extra_dir_and_duplicate_names_are_errors(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_catalog([tmp_path / "nope"])
    _write_yaml(tmp_path / "chips" / "one.yaml", _h100_data() | {"name": "Dup"})
    _write_yaml(tmp_path / "chips" / "two.yaml", _h100_data() | {"name": "dup"})
    with pytest.raises(SpecError, match="also defined in"):
        load_catalog([tmp_path])


def test_malformed_yaml_names_the_file(tmp_path):
    bad = tmp_path / "chips" / "broken.yaml"
    bad.parent.mkdir()
    bad.write_text("name: [unclosed\nhbm: {value: 1")
    with pytest.raises(SpecError, match=r"broken\.yaml: not valid YAML"):
        load_catalog([tmp_path])


def test_top_level_file_of_unknown_kind_is_an_error(tmp_path):
    _write_yaml(tmp_path / "what.yaml", {"colour": "blue"})
    with pytest.raises(SpecError, match=r"what\.yaml: neither a chip file"):
        load_catalog([tmp_path])


# ---------------------------------------------------------------- bad values


def _break(data: dict, field: str, how: str, number: float, junk: str) -> dict:
    broken = copy.deepcopy(data)
    if how == "negative":
        broken[field]["value"] = -number
    elif how == "string":
        broken[field]["value"] = junk
    elif how == "missing":
        if field in REQUIRED_CHIP_FIELDS:
            del broken[field]
        else:
            del broken[field]["value"]
    elif how == "unknown_unit":
        broken[field]["unit"] = junk
    return broken


@settings(max_examples=80, deadline=None)
@given(
    field=st.sampled_from(NUMERIC_CHIP_FIELDS),
    how=st.sampled_from(["negative", "string", "missing", "unknown_unit"]),
    number=st.floats(min_value=1e-6, max_value=1e9),
    junk=st.text(min_size=1, max_size=8).filter(lambda s: s not in UNITS),
)
def test_bad_chip_values_raise_naming_the_field(field, how, number, junk):
    data = _h100_data()
    data.setdefault("fp4_dense", {"value": 0, "unit": "TFLOPS", "source": "test"})
    with pytest.raises(SpecError) as err:
        chip_from_mapping(_break(data, field, how, number, junk), "chips/bad.yaml")
    assert "chips/bad.yaml" in str(err.value)
    assert field in str(err.value)


@settings(max_examples=40, deadline=None)
@given(
    field=st.sampled_from(["num_layers", "hidden_size", "num_heads", "vocab_size", "max_context"]),
    bad=st.one_of(st.integers(max_value=0), st.text(max_size=5), st.floats(allow_nan=False), st.none()),
)
def test_bad_model_values_raise_naming_the_field(field, bad):
    data = yaml.safe_load((MODEL_DIR / "llama-3.1-8b.yaml").read_text())
    data[field] = bad
    with pytest.raises(SpecError, match=rf"models/bad\.yaml: {field}="):
        model_from_mapping(data, "models/bad.yaml")


def test_chip_figure_without_source_or_with_bad_direction_is_rejected():
    data = _h100_data()
    del data["tdp"]["source"]
    with pytest.raises(SpecError, match=r"tdp\.source=None"):
        chip_from_mapping(data, "x.yaml")
    data = _h100_data()
    data["scaleup_bw"]["direction"] = "both"
    with pytest.raises(SpecError, match=r"scaleup_bw\.direction='both', must be one of unidirectional, bidirectional"):
        chip_from_mapping(data, "x.yaml")
    data = _h100_data() | {"family": "nvidia-hoper"}
    with pytest.raises(SpecError, match=r"family='nvidia-hoper', must be one of"):
        chip_from_mapping(data, "x.yaml")


def test_inconsistent_model_is_rejected():
    data = yaml.safe_load((MODEL_DIR / "llama-3.1-8b.yaml").read_text())
    with pytest.raises(SpecError, match=r"num_kv_heads=5, must divide num_heads=32"):
        model_from_mapping(data | {"num_kv_heads": 5}, "m.yaml")
    with pytest.raises(SpecError, match=r"weight_dtype='fp6'"):
        model_from_mapping(data | {"weight_dtype": "fp6"}, "m.yaml")
    with pytest.raises(SpecError, match=r"unknown field 'num_layer'"):
        model_from_mapping(data | {"num_layer": 3}, "m.yaml")


# ---------------------------------------------------------------- HF config reader


def test_hf_config_missing_key_names_file_and_key(tmp_path):
    config = _tiny_hf_config()
    del config["vocab_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(SpecError, match=r"config\.json: missing key 'vocab_size'; expected an integer >= 1"):
        model_from_hf_config(path, name="x")


def test_hf_config_reads_moe_mla_and_quantization():
    config = {
        "num_hidden_layers": 4, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 1024,
        "vocab_size": 1000, "max_position_embeddings": 4096, "kv_lora_rank": 64, "q_lora_rank": 96,
        "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32, "n_routed_experts": 16,
        "num_experts_per_tok": 2, "moe_intermediate_size": 128, "n_shared_experts": 1,
        "first_k_dense_replace": 1, "quantization_config": {"quant_method": "fp8"},
    }
    spec = model_from_hf_config(config, name="mini-v3", source="unit test")
    assert (spec.attention, spec.head_dim, spec.num_kv_heads) == ("mla", 48, 8)  # 32 nope + 16 rope
    assert (spec.num_experts, spec.num_dense_layers, spec.num_moe_layers) == (16, 1, 3)
    assert spec.weight_dtype == "fp8" and spec.source == "unit test"
    mixtral_like = _tiny_hf_config() | {"num_local_experts": 4, "num_experts_per_tok": 2}
    assert model_from_hf_config(mixtral_like, name="m").moe_intermediate_size == 512  # = intermediate_size
    with pytest.raises(SpecError, match=r"quant_method='gguf'"):
        model_from_hf_config(config | {"quantization_config": {"quant_method": "gguf"}}, name="x")


MLA_CONFIG = {
    "num_hidden_layers": 4, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 1024,
    "vocab_size": 1000, "max_position_embeddings": 4096, "kv_lora_rank": 64, "q_lora_rank": 96,
    "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32, "n_routed_experts": 16,
    "num_experts_per_tok": 2, "moe_intermediate_size": 128, "n_shared_experts": 1,
}


@pytest.mark.parametrize("dropped, named", [
    ("kv_lora_rank", r"MLA key\(s\) q_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim but no 'kv_lora_rank'"),
    ("n_routed_experts", r"MoE key\(s\) num_experts_per_tok, moe_intermediate_size, n_shared_experts but no expert count; "
                         r"add one of n_routed_experts, num_local_experts, num_experts"),
])
def test_hf_config_with_half_an_architecture_is_refused(tmp_path, dropped, named):
    # A DeepSeek-style config missing the key that switches MLA (or MoE) on must not load as
    # plain MHA (or a dense model): that would simulate a different, much larger KV cache.
    config = {k: v for k, v in MLA_CONFIG.items() if k != dropped}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(SpecError, match=rf"config\.json: has {named}"):
        model_from_hf_config(path, name="x")


@settings(max_examples=30, deadline=None)
@given(mla=st.lists(st.sampled_from(["q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"]), unique=True),
       moe=st.lists(st.sampled_from(["num_experts_per_tok", "moe_intermediate_size", "n_shared_experts"]), unique=True))
def test_hf_config_feature_keys_need_their_switch(mla, moe):
    # any non-empty subset of MLA keys without kv_lora_rank, or of MoE keys without an expert count, is an error;
    # the same keys set to null (as HF writes unset options) are ignored
    config = _tiny_hf_config() | {key: 8 for key in mla + moe}
    if not mla and not moe:
        assert model_from_hf_config(config, name="x").attention in ("mha", "gqa")
    else:
        with pytest.raises(SpecError, match="kv_lora_rank" if mla else "expert count"):
            model_from_hf_config(config, name="x")
    nulls = _tiny_hf_config() | {key: None for key in mla + moe}
    assert not model_from_hf_config(nulls, name="x").is_moe


def test_every_shared_hf_config_loads():
    models_dir = _shared_models_dir()
    if models_dir is None:
        pytest.skip("shared/data/models not present beside the checkout")
    configs = sorted(models_dir.glob("*.json"))
    assert configs
    for path in configs:
        spec = model_from_hf_config(path, name=path.stem)
        raw = json.loads(path.read_text())
        assert (spec.attention == "mla") == ("kv_lora_rank" in raw)
        assert spec.is_moe == any(raw.get(k) for k in ("n_routed_experts", "num_local_experts", "num_experts"))


def test_public_api_types():
    catalog = load_catalog()
    assert isinstance(catalog, Catalog)
    assert all(isinstance(c, ChipSpec) for c in catalog.chips.values())


@pytest.mark.parametrize(("published", "model"), [
    ("llama2-70b-99.9", "llama-2-70b"),  # MLPerf benchmark name with its accuracy target
    ("Llama-2-70b-chat-hf", "llama-2-70b"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
    ("nvidia/Llama-3.3-70B-Instruct-FP4", "llama-3.3-70b"),  # a quantized checkpoint: same architecture
    ("Meta-Llama-3.1-70B-Instruct", "llama-3.1-70b"),
    ("Qwen3-235B-A22B-FP8", "qwen3-235b-a22b"),
    ("mistral-7b-v0.2", "mistral-7b-v0.2"),  # an exact name keeps its release tag
])
def test_published_model_names_resolve(published, model):
    assert load_catalog().model(published).name == model


def test_other_releases_stay_unknown():
    with pytest.raises(SpecError, match="unknown model 'Mistral-7B-Instruct-v0.3'"):
        load_catalog().model("Mistral-7B-Instruct-v0.3")  # another vocabulary: not v0.2
