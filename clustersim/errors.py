"""Errors raised at the input boundary. Each names the place, the field, the value and
what would be valid, so the CLI can print it as one line and exit non-zero."""


class ClusterSimError(ValueError):
    """Base of every input error clustersim reports to a user (never a traceback)."""


class SpecError(ClusterSimError):
    """A chip, model, system or topology spec is malformed or unknown."""


class ScenarioError(ClusterSimError):
    """A scenario file or CLI option has a bad value."""


class TraceError(ClusterSimError):
    """A request trace file has a malformed row or column."""


class PlacementError(ClusterSimError):
    """A replica's parallel groups do not fit on, or overlap in, the topology."""
