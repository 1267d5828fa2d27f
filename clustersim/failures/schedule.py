"""Fault schedules: when each component fails and how long it stays broken (pure, seeded).

Renewal model per component: a fresh part runs for a time drawn from its class
(exponential or Weibull with mean MTTF), fails, is fixed after `repair_s`, and the fixed part
is as good as new, so it draws again. Repair is deterministic: `swap_s` when the class has a
spare left (spares are consumed in failure-time order within the class and NOT restocked
during a run: an RMA cycle is longer than the runs we simulate), `mttr_s` otherwise.

Streams: each class draws from its own child of the seed sequence, keyed by a CRC of the
class name, so adding or changing one class never shifts another class's faults. Within a
class, first failures are drawn in the order components are given, later draws in the order
failures happen.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from clustersim.errors import ScenarioError
from clustersim.failures.spec import FailureClass


@dataclass(frozen=True, slots=True, order=True)
class Fault:
    """One failure: `component` (of `component_class`) dies at time_s and is fixed repair_s later."""

    time_s: float
    component: str
    component_class: str
    repair_s: float
    used_spare: bool = False
    scripted: bool = False

    @property
    def end_s(self) -> float:
        return self.time_s + self.repair_s


def _seed_sequence(rng: np.random.Generator | np.random.SeedSequence | int) -> np.random.SeedSequence:
    """The SeedSequence behind rng (a Generator built from one, a SeedSequence, or an int seed)."""
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.SeedSequence(int(rng))
    seq = getattr(rng.bit_generator, "seed_seq", None) or getattr(rng.bit_generator, "_seed_seq", None)
    if not isinstance(seq, np.random.SeedSequence):
        raise TypeError("sample_faults: rng must come from a SeedSequence (np.random.default_rng(SeedSequence(...)))")
    return seq


def class_rng(rng: np.random.Generator | np.random.SeedSequence | int, class_name: str) -> np.random.Generator:
    """The class's own generator: a child of rng's seed sequence keyed by crc32(class_name)."""
    seq = _seed_sequence(rng)
    child = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, zlib.crc32(class_name.encode())))
    return np.random.default_rng(child)


def draw_ttf_s(rng: np.random.Generator, spec: FailureClass, size: int | None = None) -> np.ndarray | float:
    """Times to failure of fresh parts of class `spec` (mean spec.mttf_s)."""
    if spec.distribution == "weibull":
        return spec.weibull_scale_s * rng.weibull(spec.weibull_shape, size)
    return rng.exponential(spec.mttf_s, size)


def _class_faults(rng: np.random.Generator, members: list[str], spec: FailureClass, horizon_s: float) -> list[Fault]:
    """Renewal faults of one class up to horizon_s, spares handed out in failure-time order."""
    first = np.atleast_1d(draw_ttf_s(rng, spec, len(members)))
    heap = [(float(t), i) for i, t in enumerate(first) if t < horizon_s]
    heapq.heapify(heap)
    spares = spec.num_spares
    out = []
    while heap:
        time_s, i = heapq.heappop(heap)
        used_spare = spares > 0
        spares -= used_spare
        repair_s = spec.swap_s if used_spare else spec.mttr_s
        out.append(Fault(time_s, members[i], spec.name, repair_s, used_spare))
        nxt = time_s + repair_s + float(draw_ttf_s(rng, spec))
        if nxt < horizon_s:
            heapq.heappush(heap, (nxt, i))
    return out


def sample_faults(
    rng: np.random.Generator | np.random.SeedSequence | int,
    components: Sequence[tuple[str, str]],
    classes: Mapping[str, FailureClass],
    horizon_s: float,
    scripted: Iterable[Fault] = (),
) -> list[Fault]:
    """Every fault in [0, horizon_s) of `components` ((id, class) pairs), plus `scripted`
    faults, sorted by (time_s, component). Same seed, same faults.

    >>> from clustersim.failures.spec import FailureClass
    >>> c = {"chip": FailureClass("chip", "exponential", 100.0, 5.0, 1, 1.0)}
    >>> f = sample_faults(7, [("a", "chip"), ("b", "chip")], c, 1000.0)
    >>> f == sample_faults(7, [("a", "chip"), ("b", "chip")], c, 1000.0), [x.repair_s for x in f[:2]]
    (True, [1.0, 5.0])
    """
    if not horizon_s >= 0:
        raise ScenarioError(f"failures: horizon_s={horizon_s!r}, must be a number >= 0")
    by_class: dict[str, list[str]] = {}
    for component, name in components:
        if name not in classes:
            raise ScenarioError(f"failures: component {component!r} class={name!r}, valid classes: {', '.join(classes)}")
        by_class.setdefault(name, []).append(component)
    faults: list[Fault] = list(scripted)
    for name in sorted(by_class):
        faults += _class_faults(class_rng(rng, name), by_class[name], classes[name], horizon_s)
    return sorted(faults, key=lambda f: (f.time_s, f.component))


def scripted_faults(
    entries: Iterable[tuple[float, str, float]], class_of: Mapping[str, str], where: str = "failures.scripted"
) -> list[Fault]:
    """Faults from (at_s, component, duration_s) entries; the class comes from `class_of`
    (component id -> class) and the component must exist there.

    >>> scripted_faults([(600.0, "a|b", 300.0)], {"a|b": "ici_link"})
    [Fault(time_s=600.0, component='a|b', component_class='ici_link', repair_s=300.0, used_spare=False, scripted=True)]
    """
    out = []
    for k, (at_s, component, duration_s) in enumerate(entries):
        if component not in class_of:
            known = sorted(class_of)
            sample = ", ".join(known[:6]) + (", ..." if len(known) > 6 else "")
            raise ScenarioError(f"{where}[{k}].component={component!r}: no such component; e.g. {sample}")
        if not at_s >= 0 or not duration_s >= 0:
            raise ScenarioError(f"{where}[{k}]: at_s={at_s!r}, duration_s={duration_s!r}, both must be >= 0")
        out.append(Fault(float(at_s), component, class_of[component], float(duration_s), scripted=True))
    return out
