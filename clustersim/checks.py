"""The input checks a run makes before it touches its run directory, callable on their own.

`clustersim validate` must refuse exactly what `clustersim run` refuses: the schema
(scenario.parse_scenario), the physics against the catalog (build.build), and the request
source, whose construction reads every trace row (serving.sources.make_source, which runs
TraceReplay.check for a replay and loads the file for `lengths.kind: trace`). Errors from
the trace readers name the trace file and line; here they also get the scenario file and
the field that named the trace, e.g. `s.yaml: workload.path='t.csv' line 3: ...`.
"""

from __future__ import annotations

from clustersim.build import Built, build
from clustersim.errors import ClusterSimError, ScenarioError
from clustersim.scenario import Scenario
from clustersim.serving.sources import RequestSource, make_source


def check_inputs(scenario: Scenario, where: str = "scenario") -> Built:
    """Build the scenario and its request source as a run would, writing nothing; returns
    the built deployment. Any bad input is a ScenarioError naming `where` and the field."""
    built = build(scenario, where)
    check_source(scenario, where)
    return built


def check_source(scenario: Scenario, where: str = "scenario") -> RequestSource:
    """The scenario's request source, built with the run's generators (every trace row parsed)."""
    from clustersim.simulate import rng_for  # simulate imports the serving engine; keep this module light

    try:
        return make_source(scenario, rng_for(scenario.seed, "workload"), rng_for(scenario.seed, "lengths"))
    except ClusterSimError as exc:
        raise source_error(exc, scenario, where) from None


def source_field(scenario: Scenario) -> tuple[str, str | None]:
    """The scenario field whose file the request source reads, and that file (None: none).

    >>> from clustersim.scenario import parse_scenario
    >>> source_field(parse_scenario({"workload": {"kind": "trace", "path": "t.csv"}}))
    ('workload.path', 't.csv')
    >>> source_field(parse_scenario({}))
    ('workload', None)
    """
    workload = scenario.workload
    if workload.kind == "trace":
        return "workload.path", workload.path
    if workload.lengths.kind == "trace":
        return "workload.lengths.path", workload.lengths.path
    return "workload", None


def source_error(exc: ClusterSimError, scenario: Scenario, where: str) -> ScenarioError:
    """A request-source error as one line naming the scenario file, the field and its value.

    >>> from clustersim.errors import TraceError
    >>> from clustersim.scenario import parse_scenario
    >>> scenario = parse_scenario({"workload": {"kind": "trace", "path": "t.csv"}})
    >>> str(source_error(TraceError("t.csv line 3: x='a', must be an integer"), scenario, "s.yaml"))
    "s.yaml: workload.path='t.csv' line 3: x='a', must be an integer"
    """
    message = " ".join(str(exc).split()) or type(exc).__name__
    if message.startswith(f"{where}: "):  # already placed
        return ScenarioError(message)
    field, path = source_field(scenario)
    if path is not None and message.startswith(path):
        return ScenarioError(f"{where}: {field}={path!r}{message[len(path):]}")
    if path is not None:
        return ScenarioError(f"{where}: {field}={path!r}: {message}")
    return ScenarioError(f"{where}: {field}: {message}")
