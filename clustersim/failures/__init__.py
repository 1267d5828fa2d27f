"""Failures and recovery: component failure classes (data), fault schedules, blast radius on
the topology, the SimPy injector, events.arrow and the failure summary.

Layout: spec (classes from data/components.yaml), schedule (pure sampling), blast (pure
effect of dead components on a placed topology), injector (SimPy process), records
(EVENTS schema, failure_summary), config (scenario `failures:` section), plan (the section
checked against the deployment by build()), attach (wiring). See README.md in this folder.
"""

from clustersim.failures.blast import BlastModel, Effect, ReplicaBlast, blast_radius, components_of
from clustersim.failures.config import FailuresConfig, ScriptedFault
from clustersim.failures.injector import FailureInjector, start_failures
from clustersim.failures.plan import FailurePlan, resolve_failures
from clustersim.failures.records import EVENTS, failure_summary
from clustersim.failures.schedule import Fault, sample_faults, scripted_faults
from clustersim.failures.spec import FailureClass, load_failure_classes

__all__ = [
    "EVENTS", "BlastModel", "Effect", "FailureClass", "FailureInjector", "FailurePlan", "FailuresConfig", "Fault",
    "ReplicaBlast", "ScriptedFault", "blast_radius", "components_of", "failure_summary",
    "load_failure_classes", "resolve_failures", "sample_faults", "scripted_faults", "start_failures",
]
