"""Model YAML files -> ModelSpec, and the consistency checks every ModelSpec must pass.

A model file names ModelSpec's fields directly (they are dimensionless counts, so no
units) plus one top-level `source:` that covers every architectural number in it
(the Hugging Face repo and where its config.json was copied from).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Final

from clustersim.catalog.chip_file import aliases_of, check_top_level
from clustersim.catalog.specs import DTYPE_BYTES, ModelSpec
from clustersim.errors import SpecError

ATTENTION_KINDS: Final = ("mha", "gqa", "mla")

_REQUIRED_INTS: Final = (
    "num_layers",
    "hidden_size",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_context",
)
_SPEC_FIELDS: Final = {f.name: f for f in fields(ModelSpec)}
_OPTIONAL_INTS: Final = tuple(
    name for name, f in _SPEC_FIELDS.items() if f.type == "int" and name not in _REQUIRED_INTS
)
_TOP_KEYS: Final = frozenset(_SPEC_FIELDS) | {"note"}

MODEL_KEYS: Final = frozenset({"num_layers", "hidden_size", "num_heads"})
"""Keys whose presence marks a YAML mapping as a model file (see loader.detect_kind)."""


def model_from_mapping(data: Mapping[str, Any], where: str) -> ModelSpec:
    """Build and check a ModelSpec from a parsed model file; `where` prefixes errors."""
    check_top_level(data, _TOP_KEYS, "model", where)
    for key in ("name", "source", "attention"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"{where}: {key}={value!r}, must be a non-empty string")
    ints = {key: _int(data, key, where, required=True) for key in _REQUIRED_INTS}
    ints |= {key: _int(data, key, where, required=False) for key in _OPTIONAL_INTS if key in data}
    tie = data.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise SpecError(f"{where}: tie_word_embeddings={tie!r}, must be true or false")
    spec = ModelSpec(
        name=data["name"],
        attention=data["attention"],
        source=data["source"],
        weight_dtype=data.get("weight_dtype", "bf16"),
        tie_word_embeddings=tie,
        aliases=aliases_of(data, where),
        **ints,
    )
    check_model(spec, where)
    return spec


def _int(data: Mapping[str, Any], key: str, where: str, *, required: bool) -> int:
    if key not in data:
        raise SpecError(f"{where}: missing field {key!r}; expected an integer >= 1")
    value = data[key]
    least = 1 if required else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SpecError(f"{where}: {key}={value!r}, must be an integer >= {least}")
    return value


def check_model(spec: ModelSpec, where: str) -> None:
    """Raise SpecError if the spec's fields contradict each other (shared by YAML and HF paths).

    >>> m = ModelSpec("m", 2, 64, 4, 3, 16, 128, 100, "gqa", 512, "test")
    >>> check_model(m, "m.yaml")
    Traceback (most recent call last):
    ...
    clustersim.errors.SpecError: m.yaml: num_kv_heads=3, must divide num_heads=4 (1, 2, 4)
    """
    if spec.attention not in ATTENTION_KINDS:
        raise SpecError(f"{where}: attention={spec.attention!r}, must be one of {', '.join(ATTENTION_KINDS)}")
    if spec.weight_dtype not in DTYPE_BYTES:
        raise SpecError(f"{where}: weight_dtype={spec.weight_dtype!r}, must be one of {', '.join(DTYPE_BYTES)}")
    if spec.num_heads % spec.num_kv_heads:
        divisors = ", ".join(str(d) for d in range(1, spec.num_heads + 1) if spec.num_heads % d == 0)
        raise SpecError(
            f"{where}: num_kv_heads={spec.num_kv_heads}, must divide num_heads={spec.num_heads} ({divisors})"
        )
    if spec.attention == "mha" and spec.num_kv_heads != spec.num_heads:
        raise SpecError(f"{where}: attention='mha' needs num_kv_heads == num_heads={spec.num_heads}, got {spec.num_kv_heads}")
    if spec.attention == "mla":
        for key in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
            if getattr(spec, key) < 1:
                raise SpecError(f"{where}: {key}={getattr(spec, key)}, attention='mla' needs it >= 1")
    if spec.num_experts:
        if not 1 <= spec.num_experts_per_tok <= spec.num_experts:
            raise SpecError(
                f"{where}: num_experts_per_tok={spec.num_experts_per_tok}, must be in 1..num_experts={spec.num_experts}"
            )
        if spec.moe_intermediate_size < 1:
            raise SpecError(f"{where}: moe_intermediate_size={spec.moe_intermediate_size}, an MoE model needs it >= 1")
        if spec.num_dense_layers >= spec.num_layers:
            raise SpecError(
                f"{where}: num_dense_layers={spec.num_dense_layers}, must be < num_layers={spec.num_layers}"
            )
    elif spec.num_experts_per_tok or spec.num_shared_experts or spec.num_dense_layers:
        raise SpecError(
            f"{where}: num_experts=0 (dense model) but num_experts_per_tok={spec.num_experts_per_tok}, "
            f"num_shared_experts={spec.num_shared_experts}, num_dense_layers={spec.num_dense_layers}; set num_experts or drop them"
        )
    if spec.num_sliding_layers > spec.num_layers:
        raise SpecError(
            f"{where}: num_sliding_layers={spec.num_sliding_layers}, must be <= num_layers={spec.num_layers}"
        )
    if (spec.num_sliding_layers > 0) != (spec.sliding_window > 0):
        raise SpecError(
            f"{where}: sliding_window={spec.sliding_window} with num_sliding_layers={spec.num_sliding_layers}; "
            "set both (>= 1) or neither"
        )
