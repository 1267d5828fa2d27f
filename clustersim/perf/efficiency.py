"""Efficiency factors of the step-time model, per chip family, loaded from data.

A chip's vendor peak is never reached; how far short it falls depends on its architecture
and software stack, so factors are shared by a `ChipSpec.family` (efficiency.yaml, with a
`why` per value and a `fitted` date once calibration has fitted them).

Where the sources show a serving stack (engine) running a family systematically faster or
slower than the family's other measurements (a 2025 PyTorch/XLA vLLM on TPU ran 4-6x below
today's vLLM TPU), efficiency.yaml's top-level `stacks:` section holds entries keyed
`family/stack` that override only the factors they list; everything else is the family's
(`load_stack_table`, `resolve`). Scenarios use the family factors.
"""

from __future__ import annotations

import dataclasses
import re
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
_OPTIONAL = ("gemm_half_rows", "kv_bucket_min_tokens", "context_overhead_s")
_OPTIONAL_FRACTIONS = ("expert_compute",)


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
    stack: str = ""
    """Serving stack these factors are for ("": the family's own factors)."""
    context_overhead_s: float = 0.0
    """Fixed cost of a step that encodes prompts, on top of step_overhead_s (0: none): engines
    that run prompts through a separate compiled context-encoding graph (Neuron) pay it once
    per such step, whatever the model's size."""
    expert_compute: float = 1.0
    """Routed-expert (grouped) GEMMs run at this fraction of the `compute` rate (1: like dense
    GEMMs): per-expert tiles, token permutation and routing kernels cost what one large dense
    GEMM of the same FLOPs does not."""


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
    """Validate the YAML document `data` and build one `Efficiency` per family (the `stacks:`
    section is validated too, and returned by `parse_stack_table`)."""
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
        optional |= {n: _factor(where, entry, n, is_fraction=True) for n in _OPTIONAL_FRACTIONS if n in entry}
        fitted = str(entry.get("fitted", "prior"))
        table[str(family)] = Efficiency(family=str(family), fitted=fitted, **fractions, **times, **optional)
    parse_stack_table(data, table, source)
    return table


_STACK_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
OPTIONAL_FACTORS = (*_OPTIONAL, *_OPTIONAL_FRACTIONS)
"""Factors an entry may leave out (the Efficiency default applies)."""
FACTOR_NAMES = (*_FRACTIONS, *_TIMES, *OPTIONAL_FACTORS)


def stack_key(family: str, stack: str) -> str:
    """The table key of a family's stack entry ("" stack: the family itself).

    >>> stack_key("google-tpu", "jetstream"), stack_key("google-tpu", "")
    ('google-tpu/jetstream', 'google-tpu')
    """
    return f"{family}/{stack}" if stack else family


def parse_stack_table(data: Any, families: dict[str, Efficiency], source: str = "efficiency.yaml") -> dict[str, Efficiency]:
    """Validate the optional top-level `stacks:` mapping of the YAML document `data` and build
    one `Efficiency` per `family/stack` key: the family's factors with the listed ones replaced."""
    stacks = data.get("stacks") if isinstance(data, dict) else None
    if stacks is None:
        return {}
    if not isinstance(stacks, dict):
        raise SpecError(f"{source}: stacks={stacks!r}, must be a mapping of family/stack -> factors")
    table: dict[str, Efficiency] = {}
    for key, entry in stacks.items():
        where = f"{source}: stacks.{key}"
        family, _, stack = str(key).partition("/")
        if family not in families:
            raise SpecError(f"{where}: family={family!r} has no efficiency factors; valid: {', '.join(sorted(families))}")
        if not _STACK_NAME.fullmatch(stack):
            raise SpecError(f"{where}: stack={stack!r}, must be lowercase letters, digits, '.' or '-' after 'family/'")
        if not isinstance(entry, dict):
            raise SpecError(f"{where}={entry!r}, must be a mapping of factors")
        if not str(entry.get("why", "")).strip():
            raise SpecError(f"{where}.why={entry.get('why')!r}, must say which sources run this stack and why it differs")
        unknown = sorted(set(entry) - {"why", "fitted", *FACTOR_NAMES})
        if unknown:
            raise SpecError(f"{where}: unknown field(s) {unknown}; valid: why, fitted, {', '.join(FACTOR_NAMES)}")
        overrides = {n: _factor(where, entry, n, is_fraction=n in _FRACTIONS or n in _OPTIONAL_FRACTIONS)
                     for n in FACTOR_NAMES if n in entry}
        if not overrides:
            raise SpecError(f"{where}: lists no factor; an entry must override at least one of {', '.join(FACTOR_NAMES)}")
        fitted = str(entry.get("fitted", "prior"))
        table[stack_key(family, stack)] = dataclasses.replace(families[family], stack=stack, fitted=fitted, **overrides)
    return table


@lru_cache(maxsize=8)
def load_stack_table(path: Path = DEFAULT_PATH) -> dict[str, Efficiency]:
    """The family factors and every stack entry of `path` in one dict (family keys and
    `family/stack` keys, see `stack_key`), read once and cached. Callers must not mutate it."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    families = parse_efficiency_table(data, source=path.name)
    return {**families, **parse_stack_table(data, families, source=path.name)}


def resolve(table: dict[str, Efficiency], family: str, stack: str = "") -> Efficiency | None:
    """The factors for `stack` on `family`: its own entry if `table` has one, else the
    family's (None when the family is unknown).

    >>> fam = Efficiency("f", 0.5, 0.8, 0.4, 0.8, 1e-3, 1e-5, 1e-6)
    >>> tab = {"f": fam, "f/x": dataclasses.replace(fam, compute=0.2, stack="x")}
    >>> resolve(tab, "f", "x").compute, resolve(tab, "f", "y").compute, resolve(tab, "f").stack, resolve(tab, "g")
    (0.2, 0.5, '', None)
    """
    return table.get(stack_key(family, stack)) if stack and stack_key(family, stack) in table else table.get(family)


def stacks_of(table: dict[str, Efficiency], family: str) -> list[str]:
    """The stacks with their own entry for `family` in `table`, sorted.

    >>> fam = Efficiency("f", 0.5, 0.8, 0.4, 0.8, 1e-3, 1e-5, 1e-6)
    >>> stacks_of({"f": fam, "f/b": fam, "f/a": fam, "g/c": fam}, "f")
    ['a', 'b']
    """
    return sorted(k.partition("/")[2] for k in table if k.startswith(family + "/"))


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
