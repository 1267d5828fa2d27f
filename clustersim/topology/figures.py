"""Link figures the topology builders use, each with its source (see shared/data).

All bandwidths are UNIDIRECTIONAL bytes/s per physical link (vendor "bidirectional" figures
halved); latencies are seconds per link traversal. Where the public record is thin the
constant says so: link latencies in particular are first-order estimates, not measurements.
"""

from __future__ import annotations

GB = 1e9

# --- NVIDIA -------------------------------------------------------------------------------
NVLINK4_LINK_BW_BYTES_S = 25 * GB
"""H100/H200: 18 NVLink4 links x 25 GB/s/dir = 450 GB/s/dir per GPU (systems.csv, nvidia.com/hgx)."""
NVLINK5_LINK_BW_BYTES_S = 50 * GB
"""B200/GB200/GB300: 18 NVLink5 links x 50 GB/s/dir = 900 GB/s/dir per GPU (systems.csv)."""
NVLINKS_PER_GPU = 18
NIC_400G_BW_BYTES_S = 400e9 / 8
"""ConnectX-7 400 Gb/s per GPU (H100/H200/B200/GB200 rows of systems.csv)."""
NIC_800G_BW_BYTES_S = 800e9 / 8
"""ConnectX-8 800 Gb/s per GPU (B300/GB300 rows of systems.csv)."""
NVLINK_LATENCY_S = 0.25e-6
"""ESTIMATE: one GPU<->NVSwitch link traversal; NVIDIA publishes no per-hop figure."""
SCALEOUT_LATENCY_S = 0.6e-6
"""ESTIMATE: one NIC/switch hop of an InfiniBand/Ethernet fabric (switch port-to-port ~0.3-0.6 us)."""
NVLS_REDUCTION_EFFICIENCY = 0.57
"""Fraction of the link-limited NVLS (in-switch reduction) rate that NCCL reaches: the switches'
reduction throughput, not the links, bounds it. Mean of two published nccl-tests all_reduce
measurements against this model's link-limited figure: 8 x H100 NVLS peak busbw ~480 GB/s vs 787
(0.61; sjeaugey, github.com/NVIDIA/nccl-tests/issues/212) and 8 x GB200 over MNNVL 811 GB/s vs
1,573 (0.52; lixueduan.com/posts/ai/13-gb200-mnnvl-nccl-test, a third-party measurement)."""
GPU_STEP_LATENCY_S = 0.5e-6
"""ESTIMATE: software/launch cost of one collective step on a GPU (NCCL-like), per step."""

# --- Google TPU (ICI) ----------------------------------------------------------------------
TPU_LINK_BW_BYTES_S = {
    "v5e": 4.5e10,  # jax-ml scaling-book tpus.md (doc: 400 GBps bidir per chip / 4 links / 2 = 50)
    "v6e": 9.0e10,  # scaling-book; doc 800 GBps bidir per chip / 4 / 2 = 100
    "v5p": 9.0e10,  # scaling-book; doc 1200 GBps bidir per chip / 6 / 2 = 100
    "v7": 1.0e11,  # DERIVED, UNCERTAIN: doc 1.2 TBps bidir per chip / 6 links / 2
}
TPU_POD_SHAPES = {"v5e": (16, 16), "v6e": (16, 16), "v5p": (16, 20, 28), "v7": (16, 24, 24)}
"""Full pods: 256 chips 16x16; v5p 8,960 = 16x20x28 (systems.csv); v7 9,216 chips = 144
cubes, shape 16x24x24 is our ASSUMPTION (Google gives the count, not a shape)."""
ICI_LATENCY_S = 1.0e-6
"""ESTIMATE: one ICI hop (scaling-book: 'on the order of a microsecond' per hop)."""
TPU_STEP_LATENCY_S = 1.0e-6
"""ESTIMATE: per collective step software cost on TPU."""
OCS_LATENCY_S = 0.1e-6
"""ESTIMATE: optical circuit switch adds fibre length, no packet processing."""

# --- AWS Trainium2 -------------------------------------------------------------------------
TRN2_INTRA_LINK_BW_BYTES_S = 128 * GB
"""DERIVED, UNCERTAIN: 1024 GB/s/chip intra-instance NeuronLink-v3 / 2 (assumed bidir) / 4 links
(trn2-arch.rst; systems.csv)."""
TRN2_INTER_LINK_BW_BYTES_S = 64 * GB
"""DERIVED, UNCERTAIN: 256 GB/s/chip inter-instance / 2 / 2 ring neighbours (trn2-arch.rst)."""
TRN2_EFA_BW_BYTES_S = 200e9 / 8
"""EFAv3 3.2 Tb/s per 16-chip instance = 200 Gb/s per chip (trn2-arch.rst)."""
NEURONLINK_LATENCY_S = 1.0e-6
"""ESTIMATE: AWS publishes no NeuronLink hop latency."""
