"""Failure classes as data: time to failure, time to repair and spares per kind of part.

Defaults live in data/components.yaml (each number with its source or marked ASSUMPTION);
a scenario overrides any field of any class. The YAML speaks hours for MTTF/MTTR (what
reliability papers quote); `FailureClass` holds seconds only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clustersim.errors import SpecError

DATA_FILE = Path(__file__).with_name("data") / "components.yaml"
CLASS_NAMES = (
    "chip", "hbm", "host", "nvswitch", "nvlink", "ici_link", "optic", "nic", "leaf", "spine", "ocs", "rack_power",
)
DISTRIBUTIONS = ("exponential", "weibull")
_FIELDS = ("distribution", "weibull_shape", "mttf_h", "mttr_h", "num_spares", "swap_s", "source")
HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class FailureClass:
    """One kind of part: how its time to failure is drawn and how it is fixed."""

    name: str
    distribution: str  # exponential | weibull
    mttf_s: float  # mean time to failure of one component
    mttr_s: float  # repair in place, no spare
    num_spares: int  # spares on site for the whole class (consumed, not restocked)
    swap_s: float  # fix time when a spare is used
    weibull_shape: float = 1.0  # k; 1 = exponential
    source: str = ""

    @property
    def weibull_scale_s(self) -> float:
        """Weibull scale lambda with mean mttf_s: lambda = mttf / Gamma(1 + 1/k).

        >>> FailureClass("x", "weibull", 100.0, 1.0, 0, 1.0, weibull_shape=1.0).weibull_scale_s
        100.0
        """
        return self.mttf_s / math.gamma(1.0 + 1.0 / self.weibull_shape)

    @property
    def availability(self) -> float:
        """Steady-state fraction of time one component is up with no spares: MTTF / (MTTF + MTTR).

        >>> FailureClass("x", "exponential", 90.0, 10.0, 0, 1.0).availability
        0.9
        """
        return self.mttf_s / (self.mttf_s + self.mttr_s)


def _number(where: str, field: str, value: Any, low: float, strict: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        raise SpecError(f"{where}: {field}={value!r}, must be a finite number {'>' if strict else '>='} {low:g}")
    return float(value)


def failure_class(name: str, fields: Mapping[str, Any], where: str = "failure class") -> FailureClass:
    """Validate one class's YAML fields (hours) into a FailureClass (seconds).

    >>> c = failure_class("chip", {"distribution": "exponential", "mttf_h": 10, "mttr_h": 1, "num_spares": 0, "swap_s": 60})
    >>> c.mttf_s, c.mttr_s, c.swap_s
    (36000.0, 3600.0, 60.0)
    """
    here = f"{where} {name}"
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise SpecError(f"{here}: unknown field {unknown[0]!r}; valid fields: {', '.join(_FIELDS)}")
    for required in ("distribution", "mttf_h", "mttr_h"):
        if required not in fields:
            raise SpecError(f"{here}: {required} is missing; valid fields: {', '.join(_FIELDS)}")
    dist = fields["distribution"]
    if dist not in DISTRIBUTIONS:
        raise SpecError(f"{here}: distribution={dist!r}, must be one of {', '.join(DISTRIBUTIONS)}")
    shape = _number(here, "weibull_shape", fields.get("weibull_shape", 1.0), 0.0, strict=True)
    if dist == "exponential" and shape != 1.0:
        raise SpecError(f"{here}: weibull_shape={shape!r} with distribution='exponential'; use distribution: weibull")
    spares = fields.get("num_spares", 0)
    if isinstance(spares, bool) or not isinstance(spares, int) or spares < 0:
        raise SpecError(f"{here}: num_spares={spares!r}, must be an integer >= 0")
    return FailureClass(
        name=name,
        distribution=dist,
        mttf_s=_number(here, "mttf_h", fields["mttf_h"], 0.0, strict=True) * HOUR_S,
        mttr_s=_number(here, "mttr_h", fields["mttr_h"], 0.0, strict=False) * HOUR_S,
        num_spares=spares,
        swap_s=_number(here, "swap_s", fields.get("swap_s", 0.0), 0.0, strict=False),
        weibull_shape=shape,
        source=str(fields.get("source", "")),
    )


def default_class_fields(path: Path = DATA_FILE) -> dict[str, dict[str, Any]]:
    """The raw default fields per class, as in the YAML file."""
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: top level must be a mapping of class name to fields")
    return {str(k): dict(v) for k, v in doc.items()}


def load_failure_classes(
    overrides: Mapping[str, Mapping[str, Any]] | None = None, path: Path = DATA_FILE, where: str = "failures.classes"
) -> dict[str, FailureClass]:
    """Default classes with per-class field overrides applied (e.g. {"chip": {"mttf_h": 5e4}}).

    >>> load_failure_classes({"chip": {"mttr_h": 2}})["chip"].mttr_s
    7200.0
    """
    base = default_class_fields(path)
    for name, fields in (overrides or {}).items():
        if name not in base:
            raise SpecError(f"{where}: class {name!r} is unknown; valid classes: {', '.join(base)}")
        if not isinstance(fields, Mapping):
            raise SpecError(f"{where}.{name}={fields!r}, must be a mapping of fields ({', '.join(_FIELDS)})")
        base[name] = {**base[name], **fields}
        if fields.get("distribution") == "exponential" and "weibull_shape" not in fields:
            base[name].pop("weibull_shape", None)
    return {name: failure_class(name, fields, where) for name, fields in base.items()}
