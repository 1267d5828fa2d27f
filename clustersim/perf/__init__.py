"""Pure performance models of one replica: weights and KV memory, step time, collectives.

No SimPy, no I/O beyond reading the packaged efficiency table once, no randomness.
"""

from clustersim.perf.comm import AlphaBetaComm, CommModel, HierarchicalComm
from clustersim.perf.efficiency import Efficiency, efficiency_for, load_efficiency_table
from clustersim.perf.load import BatchLoad
from clustersim.perf.memory import (
    ParamGroups,
    WeightBytes,
    active_param_count,
    kv_bytes_for_context,
    kv_bytes_per_layer_token,
    kv_bytes_per_token,
    kv_capacity_tokens,
    kv_capacity_tokens_per_rank,
    kv_replication,
    param_count,
    param_groups,
    replica_kv_bytes_per_token,
    replica_weight_bytes,
    weight_breakdown,
    weight_bytes,
    weight_bytes_per_chip,
)
from clustersim.perf.replica import ReplicaPerf
from clustersim.perf.step_time import (
    DecodeRunCosts,
    StepCost,
    advance_decode,
    decode_run_costs,
    decode_run_ends,
    decode_run_s,
    step_cost,
    step_cost_rows,
    step_time_s,
)

__all__ = [
    "AlphaBetaComm",
    "BatchLoad",
    "CommModel",
    "HierarchicalComm",
    "DecodeRunCosts",
    "Efficiency",
    "ParamGroups",
    "ReplicaPerf",
    "StepCost",
    "WeightBytes",
    "active_param_count",
    "advance_decode",
    "decode_run_costs",
    "decode_run_ends",
    "decode_run_s",
    "efficiency_for",
    "kv_bytes_for_context",
    "kv_bytes_per_layer_token",
    "kv_bytes_per_token",
    "kv_capacity_tokens",
    "kv_capacity_tokens_per_rank",
    "kv_replication",
    "load_efficiency_table",
    "param_count",
    "param_groups",
    "replica_kv_bytes_per_token",
    "replica_weight_bytes",
    "step_cost",
    "step_cost_rows",
    "step_time_s",
    "weight_breakdown",
    "weight_bytes",
    "weight_bytes_per_chip",
]
