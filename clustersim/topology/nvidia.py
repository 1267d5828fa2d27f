"""NVIDIA systems: NVL72 racks and HGX 8-GPU servers, joined by a rail-optimized fat-tree.

Inside a rack/server every GPU has a link to every NVSwitch chip (the NVLink planes); GPUs
are endpoints and never relay traffic (`chips_forward=False`). An NVL72 rack also has 9
`switch_tray` nodes, each holding its 2 NVSwitch chips by one-way `contains` edges (graph.py):
no route can cross them. HGX NVSwitch chips sit on the baseboard: no tray nodes. Compute
trays (hosts) are the GPUs' `tray` attribute, not nodes (graph.py says why); NVSwitch chips
keep a `tray` attribute too. Scale-out: each GPU has its own NIC, NIC i
of every domain sits on rail i (mod num_rails); each rail's NICs fill leaf switches
`leaf_down_ports` at a time, and every leaf has one uplink to each spine. Oversubscription o
means `leaf_down_ports / o` uplinks (= spines).
"""

from __future__ import annotations

import math

import networkx as nx

from clustersim.topology import figures as fig
from clustersim.topology.graph import add_contains, add_hosts, add_link, check_choice, check_int, check_positive, new_graph

HGX_SYSTEMS = {
    # gpu: (switch chips, per-GPU NVLink bw/dir, default NIC Gb/s); systems.csv rows HGX/DGX H100/H200/B200/B300
    "h100": (4, 18 * fig.NVLINK4_LINK_BW_BYTES_S, 400),
    "h200": (4, 18 * fig.NVLINK4_LINK_BW_BYTES_S, 400),
    "b200": (2, 18 * fig.NVLINK5_LINK_BW_BYTES_S, 400),
    "b300": (2, 18 * fig.NVLINK5_LINK_BW_BYTES_S, 800),
}
"""H100's 18 links split 5/4/4/5 over its 4 NVSwitch3 chips; we spread them evenly (4.5 each),
which keeps every plane equal so equal-split ECMP is exact for the total."""

NVL72_NIC = {"gb200": 400, "gb300": 800}
"""Default NIC Gb/s per GPU: ConnectX-7 400 (GB200), ConnectX-8 800 (GB300); systems.csv."""
NIC_BW_BYTES_S = {400: fig.NIC_400G_BW_BYTES_S, 800: fig.NIC_800G_BW_BYTES_S}
"""The NIC speeds a builder accepts (`nic_gbit_s`, Gb/s per GPU as vendors quote it)."""
SWITCH_CHIPS_PER_TRAY = 2
"""NVL72: 9 NVLink switch trays x 2 NVLink5 switch chips (systems.csv GB200/GB300 NVL72 rows)."""


def _check_fabric(where: str, num_rails: object, leaf_down_ports: object, oversubscription: object, nic_gbit_s: object) -> None:
    check_int(where, "num_rails", num_rails, 1)
    check_int(where, "leaf_down_ports", leaf_down_ports, 1)
    check_positive(where, "oversubscription", oversubscription)
    check_choice(where, "nic_gbit_s", nic_gbit_s, NIC_BW_BYTES_S)


def _add_nvswitch_domain(
    g: nx.DiGraph, prefix: str, domain: int, num_gpus: int, num_switches: int, gpu_bw_bytes_s: float,
    gpus_per_tray: int,
) -> list[str]:
    """Add `num_gpus` GPUs each linked to all `num_switches` switch chips; return the GPUs.
    A GPU's `tray` is its host: 4 GPUs per NVL72 compute tray, 8 per HGX server."""
    per_link = gpu_bw_bytes_s / num_switches
    switches = [f"{prefix}.sw{j}" for j in range(num_switches)]
    for j, sw in enumerate(switches):
        g.add_node(sw, kind="nvswitch", domain=domain, tray=j // SWITCH_CHIPS_PER_TRAY, nvls=True)
    gpus = [f"{prefix}.g{i}" for i in range(num_gpus)]
    for i, gpu in enumerate(gpus):
        g.add_node(gpu, kind="chip", domain=domain, local=i, tray=i // gpus_per_tray)
        for sw in switches:
            add_link(g, gpu, sw, per_link, fig.NVLINK_LATENCY_S, "nvlink")
    return gpus


def add_rail_fabric(
    g: nx.DiGraph,
    domains: list[list[str]],
    nic_bw_bytes_s: float,
    num_rails: int,
    leaf_down_ports: int = 32,
    oversubscription: float = 1.0,
) -> None:
    """Give every chip a NIC and join the NICs by a two-tier rail-optimized fat-tree.

    Rail of a chip = its index inside its domain mod `num_rails`. Each leaf takes up to
    `leaf_down_ports` NICs of one rail and has round(leaf_down_ports / oversubscription)
    uplinks, one to each spine, each as fast as a NIC port.
    """
    where = "rail fabric"
    check_positive(where, "nic_bw_bytes_s", nic_bw_bytes_s)
    check_positive(where, "oversubscription", oversubscription)
    check_int(where, "num_rails", num_rails, 1)
    check_int(where, "leaf_down_ports", leaf_down_ports, 1)
    num_spines = max(1, round(leaf_down_ports / oversubscription))
    spines = [f"spine{k}" for k in range(num_spines)]
    for sp in spines:
        g.add_node(sp, kind="spine")
    for rail in range(num_rails):
        nics = []
        for dom in domains:
            for i, chip in enumerate(dom):
                if i % num_rails == rail:
                    nic = f"{chip}.nic"
                    g.add_node(nic, kind="nic", domain=g.nodes[chip].get("domain", 0), rail=rail)
                    add_link(g, chip, nic, nic_bw_bytes_s, fig.SCALEOUT_LATENCY_S / 2, "pcie")
                    nics.append(nic)
        for l in range(math.ceil(len(nics) / leaf_down_ports)):
            leaf = f"rail{rail}.leaf{l}"
            g.add_node(leaf, kind="leaf", rail=rail)
            for nic in nics[l * leaf_down_ports : (l + 1) * leaf_down_ports]:
                add_link(g, nic, leaf, nic_bw_bytes_s, fig.SCALEOUT_LATENCY_S, "net")
            for sp in spines:
                add_link(g, leaf, sp, nic_bw_bytes_s, fig.SCALEOUT_LATENCY_S, "net")


def nvl72(
    version: str = "gb200",
    num_racks: int = 1,
    num_rails: int = 4,
    leaf_down_ports: int = 32,
    oversubscription: float = 1.0,
    nic_gbit_s: int | None = None,
) -> nx.DiGraph:
    """GB200/GB300 NVL72 racks: 72 GPUs x 18 NVLink5 links (50 GB/s/dir each), one to each of
    18 NVSwitch chips (9 `switch_tray` nodes x 2), so 900 GB/s/dir per GPU; with num_racks > 1
    the racks are joined by a rail fabric, one NIC per GPU of `nic_gbit_s` (400 or 800 Gb/s;
    default 400 GB200, 800 GB300). The rail of a GPU is its position in the compute tray (4
    rails): our ASSUMPTION, NVIDIA's GB200 SuperPOD rail count is not in shared/data.

    >>> g = nvl72(); sum(1 for _, k in g.nodes(data="kind") if k == "chip"), g.out_degree("r0.g0")
    (72, 18)
    """
    where = "nvl72"
    check_choice(where, "version", version, NVL72_NIC)
    check_int(where, "num_racks", num_racks, 1)
    nic_gbit_s = NVL72_NIC[version] if nic_gbit_s is None else nic_gbit_s
    _check_fabric(where, num_rails, leaf_down_ports, oversubscription, nic_gbit_s)
    params = dict(version=version, num_racks=num_racks, num_rails=num_rails,
                  leaf_down_ports=leaf_down_ports, oversubscription=oversubscription, nic_gbit_s=nic_gbit_s)
    g = new_graph(f"{version}-nvl72x{num_racks}", "nvl72", params, fig.GPU_STEP_LATENCY_S, False)
    gpu_bw = fig.NVLINKS_PER_GPU * fig.NVLINK5_LINK_BW_BYTES_S
    racks = [_add_nvswitch_domain(g, f"r{r}", r, 72, 18, gpu_bw, 4) for r in range(num_racks)]
    for r in range(num_racks):
        _add_switch_trays(g, f"r{r}", r, 18)
    if num_racks > 1:
        add_rail_fabric(g, racks, NIC_BW_BYTES_S[nic_gbit_s], num_rails, leaf_down_ports, oversubscription)
    add_hosts(g)
    return g


def _add_switch_trays(g: nx.DiGraph, prefix: str, domain: int, num_switches: int) -> None:
    """One `switch_tray` node per SWITCH_CHIPS_PER_TRAY switch chips, holding them by
    `contains` edges (not links: routing never enters a tray)."""
    for t in range(num_switches // SWITCH_CHIPS_PER_TRAY):
        tray = f"{prefix}.tray{t}"
        g.add_node(tray, kind="switch_tray", domain=domain, tray=t)
        for j in range(t * SWITCH_CHIPS_PER_TRAY, (t + 1) * SWITCH_CHIPS_PER_TRAY):
            add_contains(g, tray, f"{prefix}.sw{j}")


def hgx(
    gpu: str = "h100",
    num_servers: int = 2,
    num_rails: int = 8,
    leaf_down_ports: int = 32,
    oversubscription: float = 1.0,
    nic_gbit_s: int | None = None,
) -> nx.DiGraph:
    """HGX 8-GPU servers (NVSwitch inside: 450 GB/s/dir per GPU on H100/H200, 900 on
    B200/B300) on a two-tier rail-optimized fat-tree, one NIC per GPU of `nic_gbit_s` (400 or
    800 Gb/s; default: ConnectX-7 400, ConnectX-8 800 on B300). `oversubscription` o: each
    leaf has leaf_down_ports / o uplinks.

    >>> g = hgx("h100", num_servers=2); sum(1 for _, k in g.nodes(data="kind") if k == "chip")
    16
    """
    where = "hgx"
    check_choice(where, "gpu", gpu, HGX_SYSTEMS)
    check_int(where, "num_servers", num_servers, 1)
    num_switches, gpu_bw, default_nic = HGX_SYSTEMS[gpu]
    nic_gbit_s = default_nic if nic_gbit_s is None else nic_gbit_s
    _check_fabric(where, num_rails, leaf_down_ports, oversubscription, nic_gbit_s)
    check_int(where, "num_rails", num_rails, 1, 8)
    params = dict(gpu=gpu, num_servers=num_servers, num_rails=num_rails,
                  leaf_down_ports=leaf_down_ports, oversubscription=oversubscription, nic_gbit_s=nic_gbit_s)
    g = new_graph(f"hgx-{gpu}-{num_servers}x8", "hgx", params, fig.GPU_STEP_LATENCY_S, False)
    servers = [_add_nvswitch_domain(g, f"s{s}", s, 8, num_switches, gpu_bw, 8) for s in range(num_servers)]
    if num_servers > 1:
        add_rail_fabric(g, servers, NIC_BW_BYTES_S[nic_gbit_s], num_rails, leaf_down_ports, oversubscription)
    add_hosts(g)
    return g
