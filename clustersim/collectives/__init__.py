"""Collectives on the topology graph: routing, link load, algorithm choice, cost.

Pure functions: a graph, a group of chips and a message size in; seconds, bytes per
directed link and the algorithm out. `GraphComm` packages them as the perf model's CommModel.
"""

from clustersim.collectives.comm import GraphComm
from clustersim.collectives.cost import (
    CollectiveCost,
    all_gather,
    all_reduce,
    all_to_all,
    bus_bandwidth_bytes_s,
    collective,
    reduce_scatter,
    send,
)
from clustersim.collectives.routing import PartitionError, Router

__all__ = [
    "CollectiveCost", "GraphComm", "PartitionError", "Router", "all_gather", "all_reduce",
    "all_to_all", "bus_bandwidth_bytes_s", "collective", "reduce_scatter", "send",
]
