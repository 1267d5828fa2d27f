"""Topologies as networkx graphs: builders, files, summaries and placement.

Conventions (graph.py): a DiGraph, two directed edges per physical link with `bw_bytes_s`,
`latency_s`, `kind`; nodes typed by `kind`; chips carry `domain` and, on a torus, `coord`.
NVL72 switch trays are nodes holding their switch chips by one-way `contains` edges (never
routed); hosts and OCS are attributes/links, not nodes (graph.py and topologies/README.md).
"""

from clustersim.topology.nvidia import hgx, nvl72
from clustersim.topology.torus import tpu_slice, trn2

__all__ = ["hgx", "nvl72", "tpu_slice", "trn2"]
