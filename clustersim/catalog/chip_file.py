"""Chip YAML files -> ChipSpec: check every figure, then convert it to SI once.

A chip file holds one accelerator. Each figure is a small mapping that carries its own
provenance, so a reader can audit any number without leaving the file:

    hbm_bw: {value: 3.35, unit: TB/s, source: "https://...", note: "optional"}

Link bandwidths also say `direction: unidirectional | bidirectional`; a bidirectional
figure is halved here, because ChipSpec stores bytes/s per direction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from clustersim.catalog.specs import ChipSpec
from clustersim.catalog.units import BYTES, BYTES_S, COUNT, FLOPS, UNITS, USD, WATTS, to_si, units_of
from clustersim.errors import SpecError

FAMILIES: Final = (
    "nvidia-ampere",
    "nvidia-ada",
    "nvidia-hopper",
    "nvidia-blackwell",
    "amd-cdna3",
    "amd-cdna4",
    "google-tpu",
    "aws-neuron",
)
"""Chip families the efficiency factors know (perf/efficiency.yaml is keyed by these)."""

DIRECTIONS: Final = ("unidirectional", "bidirectional")


@dataclass(frozen=True, slots=True)
class _Field:
    """How one figure of a chip file is read: its dimension, whether it may be left
    out (then 0), and the smallest value allowed (0 means 'not accelerated / unknown')."""

    key: str
    dimension: str
    required: bool = True
    positive: bool = False
    has_direction: bool = False


_FIELDS: Final = (
    _Field("hbm", BYTES, positive=True),
    _Field("hbm_bw", BYTES_S, positive=True),
    _Field("bf16_dense", FLOPS, positive=True),
    _Field("fp8_dense", FLOPS, required=False),
    _Field("fp4_dense", FLOPS, required=False),
    _Field("scaleup_bw", BYTES_S, has_direction=True),
    _Field("scaleup_domain", COUNT, positive=True),
    _Field("scaleout_bw", BYTES_S, has_direction=True),
    _Field("tdp", WATTS),
    _Field("price", USD),
)
_QUANTITY_KEYS: Final = frozenset({"value", "unit", "source", "note", "direction"})
_TOP_KEYS: Final = frozenset({"name", "vendor", "family", "aliases", "note", "source"}) | {
    f.key for f in _FIELDS
}

CHIP_KEYS: Final = frozenset(f.key for f in _FIELDS)
"""Keys whose presence marks a YAML mapping as a chip file (see loader.detect_kind)."""


def check_top_level(data: Any, valid: frozenset[str], what: str, where: str) -> None:
    """A spec file's top level is a mapping whose keys are all in `valid` (SpecError if not).

    >>> check_top_level({"name": "x", "hbm_gb": 1}, frozenset({"name"}), "chip", "f.yaml")
    Traceback (most recent call last):
    clustersim.errors.SpecError: f.yaml: unknown field 'hbm_gb'; valid fields: name
    """
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: top level is {type(data).__name__}, must be a mapping of {what} fields")
    unknown = sorted(set(data) - valid)
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r}; valid fields: {', '.join(sorted(valid))}")


def chip_from_mapping(data: Mapping[str, Any], where: str) -> ChipSpec:
    """Build a ChipSpec from a parsed chip file; `where` (the file path) prefixes errors."""
    check_top_level(data, _TOP_KEYS, "chip", where)
    name = _text(data, "name", where)
    vendor = _text(data, "vendor", where)
    family = _text(data, "family", where)
    if family not in FAMILIES:
        raise SpecError(f"{where}: family={family!r}, must be one of {', '.join(FAMILIES)}")
    values = {f.key: _quantity(data, f, where) for f in _FIELDS}
    domain = values["scaleup_domain"]
    if domain != int(domain):
        raise SpecError(f"{where}: scaleup_domain.value={domain!r}, must be a whole number of chips >= 1")
    return ChipSpec(
        name=name,
        vendor=vendor,
        family=family,
        hbm_bytes=values["hbm"],
        hbm_bw_bytes_s=values["hbm_bw"],
        bf16_flops_s=values["bf16_dense"],
        fp8_flops_s=values["fp8_dense"],
        fp4_flops_s=values["fp4_dense"],
        scaleup_bw_bytes_s=values["scaleup_bw"],
        scaleup_domain=int(domain),
        scaleout_bw_bytes_s=values["scaleout_bw"],
        tdp_w=values["tdp"],
        price_usd=values["price"],
        source=where,
        aliases=aliases_of(data, where),
    )


def aliases_of(data: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """The optional `aliases` list as a tuple of non-empty strings."""
    raw = data.get("aliases", [])
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, list) or not all(isinstance(a, str) and a.strip() for a in raw):
        raise SpecError(f"{where}: aliases={raw!r}, must be a list of non-empty strings")
    return tuple(raw)


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: {key}={value!r}, must be a non-empty string")
    return value


def _quantity(data: Mapping[str, Any], field: _Field, where: str) -> float:
    """One figure in SI. Checks shape, source, unit, sign and direction, naming the field."""
    key = field.key
    if key not in data:
        if field.required:
            raise SpecError(f"{where}: missing field {key!r}; expected {{value: ..., {_unit_hint(field)}source: ...}}")
        return 0.0
    raw = data[key]
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: {key}={raw!r}, must be a mapping {{value: ..., {_unit_hint(field)}source: ...}}")
    extra = sorted(set(raw) - _QUANTITY_KEYS)
    if extra:
        raise SpecError(f"{where}: {key}.{extra[0]} is not a valid key; valid: {', '.join(sorted(_QUANTITY_KEYS))}")
    value = raw.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{where}: {key}.value={value!r}, must be a finite number")
    least = "> 0" if field.positive else ">= 0"
    if value < 0 or (field.positive and value == 0):
        raise SpecError(f"{where}: {key}.value={value!r}, must be {least}")
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise SpecError(f"{where}: {key}.source={source!r}, every figure needs a non-empty source")
    if field.dimension == COUNT:
        if "unit" in raw:
            raise SpecError(f"{where}: {key}.unit={raw['unit']!r}, a count takes no unit")
        return float(value)
    unit = raw.get("unit")
    if unit not in UNITS or UNITS[unit][0] != field.dimension:
        valid = ", ".join(units_of(field.dimension))
        raise SpecError(f"{where}: {key}.unit={unit!r}, must be one of {valid}")
    si = to_si(value, unit)
    if field.has_direction:
        direction = raw.get("direction")
        if direction not in DIRECTIONS:
            raise SpecError(f"{where}: {key}.direction={direction!r}, must be one of {', '.join(DIRECTIONS)}")
        if direction == "bidirectional":
            si /= 2
    return si


def _unit_hint(field: _Field) -> str:
    if field.dimension == COUNT:
        return ""
    hint = f"unit: {units_of(field.dimension)[0]}, "
    return hint + "direction: unidirectional, " if field.has_direction else hint
