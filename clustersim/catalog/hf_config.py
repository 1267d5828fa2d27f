"""Hugging Face `config.json` -> ModelSpec, so a user can add a model by dropping its config.

Reads the keys the llama, mistral, mixtral, qwen2/qwen3, qwen3_moe, deepseek_v2/v3 and
gpt_oss configs use. Conventions, chosen to match how those models run:

- MLA (a config with `kv_lora_rank`): head_dim = qk_nope_head_dim + qk_rope_head_dim, the
  per-head width of q and k; num_kv_heads = num_heads (every head gets its own k and v
  once the latent is expanded).
- A config must say what it is: MLA keys (`q_lora_rank`, `qk_rope_head_dim`, ...) without
  `kv_lora_rank`, or MoE keys (`num_experts_per_tok`, `moe_intermediate_size`, ...) without
  an expert count, are errors, not a silent MHA or dense model (a truncated or hand-edited
  config would otherwise simulate the wrong architecture).
- MoE expert FFN width: `moe_intermediate_size`, else `intermediate_size` (Mixtral and
  gpt-oss size their experts with intermediate_size).
- Dense FFN layers in an MoE model are counted (first_k_dense_replace, mlp_only_layers,
  decoder_sparse_step, moe_layer_freq); ModelSpec treats them as the first ones.
- weight_dtype: quantization_config.quant_method (fp8 -> fp8, mxfp4 -> fp4, bits for
  awq/gptq) wins over torch_dtype; a config with neither is bf16.
- Sliding window: `layer_types` counts "sliding_attention" layers; without it, a set
  `sliding_window` applies to every layer (Mistral v0.1), unless `use_sliding_window`
  is false (Qwen), where layers from max_window_layers on would slide.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from clustersim.catalog.model_file import check_model
from clustersim.catalog.specs import ModelSpec
from clustersim.errors import SpecError

_TORCH_DTYPES: Final = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float8_e4m3fn": "fp8"}
_QUANT_METHODS: Final = {"fp8": "fp8", "mxfp4": "fp4", "fbgemm_fp8": "fp8", "compressed-tensors": ""}
_BITS_DTYPES: Final = {4: "int4", 8: "int8"}


def model_from_hf_config(config: Mapping[str, Any] | str | Path, name: str, source: str = "") -> ModelSpec:
    """A ModelSpec from a Hugging Face config (a parsed mapping or a path to config.json).

    `source` records provenance (defaults to the path, or "Hugging Face config" for a
    mapping); errors name it, the key and what was expected.

    >>> cfg = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
    ...        "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100,
    ...        "max_position_embeddings": 512}
    >>> spec = model_from_hf_config(cfg, "tiny")
    >>> spec.head_dim, spec.attention, spec.weight_dtype
    (16, 'gqa', 'bf16')
    """
    if isinstance(config, (str, Path)):
        path = Path(config)
        source = source or str(path)
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SpecError(f"{path}: cannot read as JSON ({exc}); expected a Hugging Face config.json") from exc
    source = source or "Hugging Face config"
    if not isinstance(config, Mapping):
        raise SpecError(f"{source}: top level is {type(config).__name__}, expected a JSON object (config.json)")
    cfg = _Config(config, source)
    _check_complete(cfg)

    num_layers = cfg.int("num_hidden_layers")
    hidden = cfg.int("hidden_size")
    num_heads = cfg.int("num_attention_heads")
    is_mla = cfg.get("kv_lora_rank") is not None
    mla = {}
    if is_mla:
        mla = {
            "kv_lora_rank": cfg.int("kv_lora_rank"),
            "q_lora_rank": cfg.int("q_lora_rank", default=0, least=0),
            "qk_rope_head_dim": cfg.int("qk_rope_head_dim"),
            "qk_nope_head_dim": cfg.int("qk_nope_head_dim"),
            "v_head_dim": cfg.int("v_head_dim"),
        }
        num_kv_heads = num_heads
        head_dim = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]
        attention = "mla"
    else:
        num_kv_heads = cfg.int("num_key_value_heads", default=num_heads)
        if hidden % num_heads and cfg.get("head_dim") is None:
            raise SpecError(
                f"{source}: head_dim missing and hidden_size={hidden} is not divisible by "
                f"num_attention_heads={num_heads}; add head_dim"
            )
        head_dim = cfg.int("head_dim", default=hidden // num_heads)
        attention = "mha" if num_kv_heads == num_heads else "gqa"

    num_experts = cfg.int_any(("n_routed_experts", "num_local_experts", "num_experts"), default=0, least=0)
    moe: dict[str, int] = {}
    if num_experts:
        moe = {
            "num_experts": num_experts,
            "num_experts_per_tok": cfg.int_any(("num_experts_per_tok", "experts_per_token")),
            "moe_intermediate_size": cfg.int_any(("moe_intermediate_size", "intermediate_size")),
            "num_shared_experts": cfg.int("n_shared_experts", default=0, least=0),
            "num_dense_layers": _num_dense_layers(cfg, num_layers),
        }
    sliding_window, num_sliding = _sliding(cfg, num_layers)

    tie = cfg.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise SpecError(f"{source}: tie_word_embeddings={tie!r}, expected true or false")
    spec = ModelSpec(
        name=name,
        num_layers=num_layers,
        hidden_size=hidden,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        intermediate_size=cfg.int("intermediate_size"),
        vocab_size=cfg.int("vocab_size"),
        attention=attention,
        max_context=cfg.int("max_position_embeddings"),
        source=source,
        weight_dtype=_weight_dtype(cfg),
        sliding_window=sliding_window,
        num_sliding_layers=num_sliding,
        tie_word_embeddings=tie,
        **mla,
        **moe,
    )
    check_model(spec, source)
    return spec


MLA_KEYS: Final = ("q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
"""Keys only a multi-head latent attention config has; they need `kv_lora_rank`."""
MOE_KEYS: Final = ("num_experts_per_tok", "experts_per_token", "moe_intermediate_size", "n_shared_experts")
"""Keys only a mixture-of-experts config has; they need an expert count (EXPERT_COUNT_KEYS)."""
EXPERT_COUNT_KEYS: Final = ("n_routed_experts", "num_local_experts", "num_experts")


def _check_complete(cfg: _Config) -> None:
    """Refuse a config whose MLA or MoE keys lack the key that switches the feature on."""
    mla = [key for key in MLA_KEYS if cfg.get(key) is not None]
    if mla and cfg.get("kv_lora_rank") is None:
        raise SpecError(
            f"{cfg.source}: has MLA key(s) {', '.join(mla)} but no 'kv_lora_rank'; add kv_lora_rank "
            f"(an integer >= 1: the latent KV width) for multi-head latent attention, or remove {', '.join(mla)}"
        )
    moe = [key for key in MOE_KEYS if cfg.get(key) is not None]
    if moe and not any(cfg.get(key) is not None for key in EXPERT_COUNT_KEYS):
        raise SpecError(
            f"{cfg.source}: has MoE key(s) {', '.join(moe)} but no expert count; add one of "
            f"{', '.join(EXPERT_COUNT_KEYS)} (an integer: routed experts per MoE layer, 0 for a dense model), "
            f"or remove {', '.join(moe)}"
        )


class _Config:
    """A config mapping plus its source, with typed getters that raise naming the key."""

    __slots__ = ("data", "source")

    def __init__(self, data: Mapping[str, Any], source: str) -> None:
        self.data = data
        self.source = source

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key, default)
        return default if value is None else value

    def int(self, key: str, default: int | None = None, least: int = 1) -> int:
        value = self.get(key, default)
        if value is None:
            raise SpecError(f"{self.source}: missing key {key!r}; expected an integer >= {least}")
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SpecError(f"{self.source}: {key}={value!r}, expected an integer >= {least}")
        return value

    def int_any(self, keys: tuple[str, ...], default: int | None = None, least: int = 1) -> int:
        """The first of `keys` present (configs of different families spell one idea differently)."""
        for key in keys:
            if self.get(key) is not None:
                return self.int(key, least=least)
        if default is not None:
            return default
        raise SpecError(f"{self.source}: missing key {' | '.join(repr(k) for k in keys)}; expected an integer >= {least}")


def _num_dense_layers(cfg: _Config, num_layers: int) -> int:
    """How many layers of an MoE model use the dense FFN."""
    first_k = cfg.int("first_k_dense_replace", default=0, least=0)
    freq = cfg.int("moe_layer_freq", default=1)
    step = cfg.int("decoder_sparse_step", default=1)
    only_dense = cfg.get("mlp_only_layers", [])
    if not isinstance(only_dense, list):
        raise SpecError(f"{cfg.source}: mlp_only_layers={only_dense!r}, expected a list of layer indices")
    dense = 0
    for layer in range(num_layers):
        is_moe = layer >= first_k and (layer - first_k) % freq == 0 and (layer + 1) % step == 0
        dense += layer in only_dense or not is_moe
    return dense


def _sliding(cfg: _Config, num_layers: int) -> tuple[int, int]:
    """(sliding_window, num_sliding_layers); (0, 0) when every layer attends fully."""
    window = cfg.get("sliding_window")
    if window is None or window == 0:
        return 0, 0
    window = cfg.int("sliding_window")
    layer_types = cfg.get("layer_types")
    if layer_types is not None:
        if not isinstance(layer_types, list) or len(layer_types) != num_layers:
            raise SpecError(
                f"{cfg.source}: layer_types has {len(layer_types) if isinstance(layer_types, list) else layer_types!r} "
                f"entries, expected a list of num_hidden_layers={num_layers}"
            )
        num_sliding = sum(kind == "sliding_attention" for kind in layer_types)
    elif cfg.get("use_sliding_window", True) is False:
        num_sliding = 0
    elif cfg.get("max_window_layers") is not None and "use_sliding_window" in cfg.data:
        num_sliding = max(num_layers - cfg.int("max_window_layers", least=0), 0)
    else:
        num_sliding = num_layers
    return (window, num_sliding) if num_sliding else (0, 0)


def _weight_dtype(cfg: _Config) -> str:
    """Storage dtype of the released weights (quantization wins over torch_dtype)."""
    quant = cfg.get("quantization_config")
    if quant is not None:
        if not isinstance(quant, Mapping):
            raise SpecError(f"{cfg.source}: quantization_config={quant!r}, expected a JSON object")
        method = quant.get("quant_method")
        if method in _QUANT_METHODS and _QUANT_METHODS[method]:
            return _QUANT_METHODS[method]
        bits = quant.get("bits")
        if bits in _BITS_DTYPES:
            return _BITS_DTYPES[bits]
        raise SpecError(
            f"{cfg.source}: quantization_config.quant_method={method!r} (bits={bits!r}) is not understood; "
            f"expected one of {', '.join(m for m, d in _QUANT_METHODS.items() if d)} or bits 4/8"
        )
    dtype = cfg.get("torch_dtype", cfg.get("dtype", "bfloat16"))
    if dtype not in _TORCH_DTYPES:
        raise SpecError(f"{cfg.source}: torch_dtype={dtype!r}, expected one of {', '.join(_TORCH_DTYPES)}")
    return _TORCH_DTYPES[dtype]
