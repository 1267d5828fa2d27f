"""Efficiency factors of the step-time model, per chip family, loaded from data.

A chip's vendor peak is never reached; how far short it falls depends on its architecture
and software stack, so factors are shared by a `ChipSpec.family` (efficiency.yaml, with a
`why` per value and a `fitted` date once calibration has fitted them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from clustersim.catalog.specs import ChipSpec
from clustersim.errors import SpecError

DEFAULT_PATH = Path(__file__).with_name("efficiency.yaml")
_FRACTIONS = ("compute", "memory", "attention_compute", "comm_bw")
_TIMES = ("step_overhead_s", "layer_overhead_s", "comm_latency_s")
_OPTIONAL = ("gemm_half_rows", "kv_bucket_min_tokens")


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Achieved fractions of peak (0, 1] and fixed overheads (s) for one chip family.

    compute: GEMMs vs dense peak; memory: weight/KV streaming vs HBM bandwidth;
    attention_compute: attention kernels vs bf16 peak; comm_bw: collectives vs scale-up link
    bandwidth; step_overhead_s: per step; layer_overhead_s: per layer per step;
    comm_latency_s: alpha of one collective step.
    """

    family: str
    compute: float
    memory: float
    attention_compute: float
    comm_bw: float
    step_overhead_s: float
    layer_overhead_s: float
    comm_latency_s: float
    fitted: str = "prior"
    gemm_half_rows: float = 0.0  # GEMM rows at which half the `compute` rate is reached (0: no penalty)
    kv_bucket_min_tokens: float = 0.0
    """Static-shape attention (compiled buckets): each query attends over its sequence's context
    rounded up to a power of two, at least this many keys (0: exact context, no buckets)."""


def _factor(where: str, entry: dict[str, Any], name: str, is_fraction: bool) -> float:
    raw = entry.get(name)
    if not isinstance(raw, dict) or "value" not in raw or not str(raw.get("why", "")).strip():
        raise SpecError(f"{where}.{name}={raw!r}, must be a mapping with 'value' and a non-empty 'why'")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{where}.{name}.value={value!r}, must be a number")
    if is_fraction and not 0.0 < value <= 1.0:
        raise SpecError(f"{where}.{name}.value={value}, must be in (0, 1]")
    if not is_fraction and value < 0.0:
        raise SpecError(f"{where}.{name}.value={value}, must be >= 0 seconds")
    return float(value)


def parse_efficiency_table(data: Any, source: str = "efficiency.yaml") -> dict[str, Efficiency]:
    """Validate the YAML document `data` and build one `Efficiency` per family."""
    families = data.get("families") if isinstance(data, dict) else None
    if not isinstance(families, dict) or not families:
        raise SpecError(f"{source}: families={families!r}, must be a non-empty mapping of family -> factors")
    table: dict[str, Efficiency] = {}
    for family, entry in families.items():
        where = f"{source}: families.{family}"
        if not isinstance(entry, dict):
            raise SpecError(f"{where}={entry!r}, must be a mapping of factors")
        fractions = {n: _factor(where, entry, n, is_fraction=True) for n in _FRACTIONS}
        times = {n: _factor(where, entry, n, is_fraction=False) for n in _TIMES}
        optional = {n: _factor(where, entry, n, is_fraction=False) for n in _OPTIONAL if n in entry}
        fitted = str(entry.get("fitted", "prior"))
        table[str(family)] = Efficiency(family=str(family), fitted=fitted, **fractions, **times, **optional)
    return table


@lru_cache(maxsize=8)
def load_efficiency_table(path: Path = DEFAULT_PATH) -> dict[str, Efficiency]:
    """The efficiency table in `path` (the packaged priors by default), read once and cached.

    Callers must not mutate the returned dict.
    """
    with open(path, encoding="utf-8") as f:
        return parse_efficiency_table(yaml.safe_load(f), source=path.name)


def efficiency_for(chip: ChipSpec, table: dict[str, Efficiency] | None = None) -> Efficiency:
    """The efficiency factors of `chip`'s family; SpecError naming the valid families if unknown."""
    table = load_efficiency_table() if table is None else table
    try:
        return table[chip.family]
    except KeyError:
        valid = ", ".join(sorted(table))
        message = f"chip {chip.name!r}: family={chip.family!r} has no efficiency factors; valid: {valid}"
        raise SpecError(message) from None
