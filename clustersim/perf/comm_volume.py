"""What a step sends over the interconnect, as collective calls (kind, bytes, group, count).

The same figures the step-time model charges for communication (step_time._Constants), in a
form the link trace can route: per step of T tokens, `count` collectives of `kind` over the
first `group_size` chips of the replica, each of `num_bytes` per rank.

Under DEP (attention data-parallel, replica.attn_dp = tp = ep) there is no all-reduce: per
MoE layer an all-to-all dispatch and combine over the ep ranks, each rank sending its T/ep
tokens x top_k x hidden x 2 bytes; a pipeline hand-off carries one rank's T/attn_dp tokens.
"""

from __future__ import annotations

from clustersim.perf.replica import ReplicaPerf
from clustersim.perf.step_time import _constants


def comm_calls(replica: ReplicaPerf, num_tokens: int) -> tuple[tuple[str, float, int, int], ...]:
    """Collectives of one step of num_tokens tokens: ((kind, num_bytes, group_size, count), ...).

    >>> from clustersim.catalog import load_catalog
    >>> cat = load_catalog()
    >>> r = ReplicaPerf(cat.chip("H100"), cat.model("llama-3.1-8b"), tp=2)
    >>> comm_calls(r, 10)  # 2 all-reduces per layer x 32 layers of 10 x 4096 x 2 bytes
    (('all_reduce', 81920.0, 2, 64),)
    >>> dep = ReplicaPerf(cat.chip("H200"), cat.model("deepseek-v3"), tp=8, ep=8, attn_dp=8)
    >>> comm_calls(dep, 16)  # 2 x 58 MoE layers; per rank 16/8 tokens x top-8 x 7168 x 2 bytes
    (('all_to_all', 229376.0, 8, 116),)
    """
    c = _constants(replica)
    calls = []
    if c.num_all_reduces:
        calls.append(("all_reduce", num_tokens * c.all_reduce_bytes_per_token, c.tp, c.num_all_reduces))
    if c.num_all_to_alls:
        calls.append(("all_to_all", num_tokens * c.all_to_all_bytes_per_token, c.ep, c.num_all_to_alls))
    if c.num_sends:
        calls.append(("send", num_tokens * c.send_bytes_per_token, 2, c.num_sends))
    return tuple(calls)
