"""The `failures:` section resolved against the placed deployment, once, at the boundary.

`build()` (so `simulate` and `clustersim validate` alike) calls `resolve_failures` before any
run directory is touched, whether or not failures are enabled and whether or not faults are
sampled: class overrides become `FailureClass`es (an unknown class, a negative MTTF, a
distribution we do not draw are refused), every scripted component is looked up among the
deployment's components, and a scripted fault at or after `run.max_sim_s` is refused (the
run would end before it and it would silently never happen). Errors are ScenarioErrors
prefixed with the scenario file, naming the field, the value and what is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from clustersim.errors import ScenarioError, SpecError
from clustersim.failures.blast import BlastModel, ReplicaBlast, normalize_component
from clustersim.failures.config import FailuresConfig
from clustersim.failures.schedule import Fault, scripted_faults
from clustersim.failures.spec import FailureClass, load_failure_classes

Blast = BlastModel | ReplicaBlast


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """A checked `failures:` section: its classes, its scripted faults and the blast model of
    the deployment (None when failures are off and nothing is scripted)."""

    config: FailuresConfig
    classes: Mapping[str, FailureClass]
    scripted: tuple[Fault, ...]
    blast: Blast | None = field(default=None, compare=False)


def component_examples(class_of: Mapping[str, str]) -> str:
    """One component id per failure class, to show what a valid id looks like.

    >>> component_examples({"a|b": "nvlink", "g0": "chip", "g1": "chip"})
    "chip 'g0', nvlink 'a|b'"
    """
    first: dict[str, str] = {}
    for component, cls in class_of.items():
        first.setdefault(cls, component)
    return ", ".join(f"{cls} {first[cls]!r}" for cls in sorted(first))


def resolve_failures(
    config: FailuresConfig, make_blast: Callable[[], Blast], max_sim_s: float | None, where: str = "scenario"
) -> FailurePlan:
    """Check `config` (see the module docstring); `make_blast` is called only when needed."""
    try:
        classes = load_failure_classes(config.classes, where=f"{where}: failures.classes")
    except SpecError as exc:
        raise ScenarioError(str(exc)) from None
    if not config.enabled and not config.scripted:
        return FailurePlan(config, classes, ())
    blast = make_blast()
    class_of = blast.class_of()
    entries = []
    for k, s in enumerate(config.scripted):
        component = normalize_component(s.component)
        if component not in class_of:
            raise ScenarioError(
                f"{where}: failures.scripted[{k}].component={s.component!r}: no such component in this deployment; "
                f"valid ids look like {component_examples(class_of)}"
            )
        if max_sim_s is not None and s.at_s >= max_sim_s:
            raise ScenarioError(
                f"{where}: failures.scripted[{k}]: at_s={s.at_s:g} ({s.component!r}) is not before run.max_sim_s="
                f"{max_sim_s:g}, so the fault would never happen; use at_s < {max_sim_s:g} or raise run.max_sim_s"
            )
        entries.append((s.at_s, component, s.duration_s))
    scripted = scripted_faults(entries, class_of, where=f"{where}: failures.scripted")
    return FailurePlan(config, classes, tuple(scripted), blast)
