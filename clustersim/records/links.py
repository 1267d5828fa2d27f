"""links.arrow: bytes moved over every interconnect link, per time bucket.

Built from steps.arrow after a run (streamed by record batch): each step of replica r with
T tokens issues the collectives `perf.comm_volume.comm_calls(replica_r, T)`; their per-link
bytes come from the replica's GraphComm (routed once per kind, size and algorithm). A step's
bytes land in the bucket where the step starts. Steps of one replica with the same token
count in one bucket are routed once and multiplied.

=============== ======= ===============================================================
column          type    meaning
=============== ======= ===============================================================
bucket_start_s  float64 start of the time bucket
bucket_s        float64 bucket length
src             string  link's sending node (topology node name)
dst             string  link's receiving node
kind            string  link kind (nvlink, ici, ocs, nic, leaf_spine, ...)
bytes           float64 bytes carried src -> dst in the bucket
utilization     float32 bytes / (bw_bytes_s x bucket_s)
=============== ======= ===============================================================
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import numpy as np
import pyarrow as pa

from clustersim.perf import ReplicaPerf
from clustersim.perf.comm_volume import comm_calls
from clustersim.records.writer import ArrowWriter, WriteStats

LINKS = pa.schema([
    pa.field("bucket_start_s", pa.float64()),
    pa.field("bucket_s", pa.float64()),
    pa.field("src", pa.string()),
    pa.field("dst", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("bytes", pa.float64()),
    pa.field("utilization", pa.float32()),
])


def step_link_bytes(replica: ReplicaPerf, num_tokens: int) -> dict[tuple[str, str], float]:
    """Bytes per directed link of one step of num_tokens tokens on a graph-placed replica."""
    comm = replica.comm
    if not hasattr(comm, "link_bytes"):
        return {}
    total: dict[tuple[str, str], float] = defaultdict(float)
    for kind, num_bytes, group_size, count in comm_calls(replica, num_tokens):
        for edge, value in comm.link_bytes(kind, num_bytes, group_size).items():
            total[edge] += value * count
    return total


def write_link_trace(
    path: Path, steps_path: Path, replicas: Sequence[ReplicaPerf], graph: nx.DiGraph, bucket_s: float
) -> WriteStats:
    """Stream steps.arrow into links.arrow (see the module docstring).

    steps.arrow is in commit order, so a bucket is complete once every later batch starts
    after it; buckets are held until then (a watermark one bucket behind the earliest start
    of the batch being read) and written in time order. A step committed very late (a
    multi-step span longer than the batch window) may add a second row for a bucket already
    written: sum `bytes` by (bucket_start_s, src, dst) to be safe.
    """
    per_tokens: dict[tuple[int, int], dict[tuple[str, str], float]] = {}
    held: dict[int, dict[tuple[str, str], float]] = {}
    with ArrowWriter(path, LINKS, metadata={"topology": str(graph.graph.get("name", ""))}) as writer:
        with pa.memory_map(str(steps_path)) as source:
            reader = pa.ipc.open_file(source)
            for index in range(reader.num_record_batches):
                batch = reader.get_batch(index)
                if batch.num_rows == 0:
                    continue
                starts = batch.column("start_s").to_numpy()
                replica_ids = batch.column("replica").to_numpy()
                tokens = (batch.column("num_prefill_tokens").to_numpy().astype(np.int64)
                          + batch.column("num_decode_tokens").to_numpy())
                buckets = np.floor(starts / bucket_s).astype(np.int64)
                for bucket, replica, num_tokens in zip(buckets.tolist(), replica_ids.tolist(), tokens.tolist()):
                    key = (replica, num_tokens)
                    if key not in per_tokens:
                        per_tokens[key] = step_link_bytes(replicas[replica], num_tokens)
                    acc = held.setdefault(bucket, defaultdict(float))
                    for edge, value in per_tokens[key].items():
                        acc[edge] += value
                watermark = int(buckets.min()) - 1
                for bucket in sorted(b for b in held if b < watermark):
                    _flush(writer, graph, bucket, bucket_s, held.pop(bucket))
        for bucket in sorted(held):
            _flush(writer, graph, bucket, bucket_s, held.pop(bucket))
    return writer.stats


def _flush(writer: ArrowWriter, graph: nx.DiGraph, bucket: int, bucket_s: float, acc: dict) -> None:
    if not acc:
        return
    edges = sorted(acc)
    moved = np.array([acc[e] for e in edges])
    bw = np.array([graph.edges[e]["bw_bytes_s"] for e in edges])
    writer.extend({
        "bucket_start_s": np.full(len(edges), bucket * bucket_s),
        "bucket_s": np.full(len(edges), bucket_s),
        "src": [str(u) for u, _ in edges],
        "dst": [str(v) for _, v in edges],
        "kind": [str(graph.edges[e].get("kind", "")) for e in edges],
        "bytes": moved,
        "utilization": (moved / (bw * bucket_s)).astype(np.float32),
    })
