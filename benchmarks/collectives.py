"""Collective times and bus bandwidth on each ready topology, next to published figures.

Run: python benchmarks/collectives.py   (about a minute; hgx-b200-64x8-2to1 shows what 2:1 oversubscription does to all-to-all)

Groups of 8/64/72/256/4096 chips are placed as a TP group would be (a box on a torus,
consecutive GPUs on a switch fabric, spanning domains when the group is bigger than one).
Bus bandwidth follows nccl-tests: algbw x 2(n-1)/n for all-reduce, x (n-1)/n for
all-to-all. Published figures carry their source; where none was found we print n/a.
The model is line rate (no protocol overhead), so it should sit above measured NCCL numbers
(~80% of NVLink line rate per the NCCL maintainers) except where the hardware has a limit we
do not model (NVSwitch reduction throughput caps NVLS).
"""

from __future__ import annotations

import time

from clustersim.collectives import Router, bus_bandwidth_bytes_s, collective
from clustersim.errors import PlacementError
from clustersim.topology.files import load_topology
from clustersim.topology.graph import chips
from clustersim.topology.placement import place_replicas

MESSAGE_BYTES = 1 << 30
SIZES = (8, 64, 72, 256, 4096)
TOPOLOGIES = ("gb200-nvl72", "gb200-nvl72x4", "hgx-h100-32x8", "hgx-b200-64x8-2to1", "tpu-v5e-16x16", "tpu-v6e-16x16",
              "tpu-v5p-16x16x16", "tpu-v7-8x8x8", "trn2-ultraserver-64", "trn2-ultraserver-64x4")

PUBLISHED = {
    # (topology, kind, group size): (busbw bytes/s per chip, source)
    ("hgx-h100-32x8", "all_reduce", 8): (
        480e9, "NCCL NVLS peak busbw ~480 GB/s (algbw ~275), ring ~370: sjeaugey in github.com/NVIDIA/nccl-tests/issues/212"),
    ("gb200-nvl72", "all_reduce", 8): (
        811e9, "nccl-tests all_reduce busbw 811 GB/s, 8 GB200 GPUs on 2 compute trays over MNNVL (NVLink5): "
        "lixueduan.com/posts/ai/13-gb200-mnnvl-nccl-test (third-party measurement)"),
    ("tpu-v5e-16x16", "all_reduce", 256): (
        51.2e12 / 256 * 2 * 255 / 256,
        "Google 'all-reduce bandwidth per pod' 51.2 TB/s / 256 chips, read as algbw x 256 (our reading): docs.cloud.google.com/tpu/docs/v5e"),
    ("tpu-v6e-16x16", "all_reduce", 256): (
        102.4e12 / 256 * 2 * 255 / 256,
        "Google 'all-reduce bandwidth per pod' 102.4 TB/s / 256 chips, read as algbw x 256 (our reading): docs.cloud.google.com/tpu/docs/v6e"),
}


def group_of(graph, n: int) -> list[str] | None:
    """The chips a TP group of n would get, or None if the topology is too small."""
    if n > len(chips(graph)):
        return None
    try:
        return list(place_replicas(graph, 1, tp=n)[0].chips)
    except PlacementError:
        return list(place_replicas(graph, 1, tp=n, within="any")[0].chips)


def report(name: str) -> list[str]:
    graph = load_topology(name)
    router = Router(graph)
    rows = []
    for n in SIZES:
        group = group_of(graph, n)
        if group is None:
            continue
        for kind in ("all_reduce", "all_to_all"):
            t0 = time.perf_counter()
            cost = collective(router, kind, group, MESSAGE_BYTES)
            wall = time.perf_counter() - t0
            busbw = bus_bandwidth_bytes_s(kind, MESSAGE_BYTES, n, cost.time_s)
            pub = PUBLISHED.get((name, kind, n))
            pub_text = f"{pub[0] / 1e9:8.1f}  {pub[1]}" if pub else "     n/a"
            rows.append(f"{name:22s} {kind:11s} {n:5d} {cost.algorithm:17s} {cost.time_s * 1e3:9.3f} "
                        f"{busbw / 1e9:9.1f} {wall:6.2f}s  {pub_text}")
    return rows


def largest_graph() -> str:
    t0 = time.perf_counter()
    graph = load_topology("tpu-v7-pod")
    built = time.perf_counter() - t0
    group = chips(graph)
    t1 = time.perf_counter()
    ar = collective(graph, "all_reduce", group, MESSAGE_BYTES, algorithm="torus_rings")
    a2a = collective(graph, "all_to_all", group, MESSAGE_BYTES)
    routed = time.perf_counter() - t1
    return (f"largest graph tpu-v7-pod: {len(group)} chips, {graph.number_of_edges()} directed links; "
            f"build {built:.2f} s, route all-reduce + all-to-all over all chips {routed:.2f} s "
            f"(all-reduce {ar.time_s * 1e3:.2f} ms, all-to-all {a2a.time_s * 1e3:.2f} ms for 1 GiB)")


def main() -> None:
    start = time.perf_counter()
    print(f"message {MESSAGE_BYTES / 2**30:g} GiB; busbw in GB/s per chip (nccl-tests definition)")
    print(f"{'topology':22s} {'kind':11s} {'chips':>5s} {'algorithm':17s} {'time ms':>9s} {'busbw':>9s} {'route':>7s}  published busbw, source")
    for name in TOPOLOGIES:
        for row in report(name):
            print(row)
    print("published NVL72 NCCL all-reduce busbw: only an 8-GPU (2-tray) figure was found; 72-GPU: n/a")
    print(largest_graph())
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
