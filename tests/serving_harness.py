"""A small harness that runs the serving engine without catalog or files: a fake linear
step timer, a router, and in-memory records. Used by the engine property tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from clustersim.perf.load import BatchLoad
from clustersim.serving.batcher import Batcher
from clustersim.serving.clock import ArrivalFeed, arrival_timeout
from clustersim.serving.engine import Engine
from clustersim.serving.step_log import span_columns
from clustersim.serving.kv_cache import KVCache
from clustersim.serving.request import Request, RequestSpec, Status
from clustersim.serving.cluster import Cluster
from clustersim.serving.router import Router


@dataclass(frozen=True)
class LinearTimer:
    """step_s = base + per_token x tokens + per_kv x kv_read_tokens + per_pair x attn_pairs;
    flops = attn_pairs, bytes = kv_read_tokens (decode_run: the same ops per step)."""

    base_s: float = 0.01
    per_token_s: float = 1e-4
    per_kv_s: float = 1e-6
    per_pair_s: float = 1e-9

    peak_flops_s: float = 1e6
    peak_bytes_s: float = 1e8

    def step(self, load: BatchLoad):
        s = (self.base_s + self.per_token_s * load.num_tokens + self.per_kv_s * load.kv_read_tokens
             + self.per_pair_s * load.attn_pairs)
        return (s, float(load.attn_pairs), float(load.kv_read_tokens))

    def decode_run(self, load: BatchLoad, num_steps: int):
        grown = np.arange(num_steps, dtype=np.int64) * load.num_seqs
        kv = load.kv_read_tokens + grown
        pairs = load.attn_pairs + grown
        s = self.base_s + self.per_token_s * load.num_tokens + self.per_kv_s * kv + self.per_pair_s * pairs
        return (s, pairs, kv.astype(float))


@dataclass
class Outcome:
    requests: list[Request] = field(default_factory=list)
    steps: dict[str, list] = field(default_factory=dict)
    rejected: list[Request] = field(default_factory=list)
    down: list[tuple[int, float, float]] = field(default_factory=list)

    def step_column(self, name: str) -> np.ndarray:
        parts = self.steps.get(name, [])
        return np.concatenate(parts) if parts else np.empty(0)


def run_serving(
    specs: list[RequestSpec],
    *,
    num_replicas: int = 1,
    num_blocks: int = 1000,
    block_size: int = 16,
    max_num_batched_tokens: int = 512,
    max_num_seqs: int = 64,
    fast_forward: bool = True,
    policy: str = "least_outstanding_tokens",
    timer: LinearTimer = LinearTimer(),
    horizon_s: float | None = None,
    faults: list[tuple[float, int, float]] = (),
    max_retries: int = 2,
) -> Outcome:
    """Serve `specs`; `faults` are (time_s, replica, down_s): the replica fails at time_s and
    is restored down_s later. Records land in the Outcome (finished and failed in
    `requests`, rejected in `rejected`), with down intervals in `outcome.down`."""
    env = simpy.Environment()
    outcome = Outcome()

    def on_steps(replica_id, span, num_done):
        for key, value in span_columns(replica_id, span, num_done).items():
            outcome.steps.setdefault(key, []).append(np.asarray(value))

    def on_record(request: Request):
        (outcome.rejected if request.status == Status.REJECTED else outcome.requests).append(request)

    cluster = Cluster(env, Router(policy, num_replicas), max_tokens=num_blocks * block_size,
                      max_context=10**9, on_record=on_record, max_retries=max_retries)
    cluster.attach([
        Engine(env, i, Batcher(KVCache(num_blocks, block_size), max_num_batched_tokens, max_num_seqs), timer,
               cluster.finished, on_steps, fast_forward=fast_forward, on_evicted=cluster.evicted)
        for i in range(num_replicas)
    ])

    def fault(time_s: float, replica: int, down_s: float):
        yield arrival_timeout(env, time_s)
        if cluster.engines[replica].down:
            return
        cluster.fail(replica)
        yield arrival_timeout(env, down_s)
        cluster.restore(replica)
        outcome.down.append((replica, time_s, time_s + down_s))

    ArrivalFeed(env, specs, cluster.arrive)
    for time_s, replica, down_s in faults:
        env.process(fault(time_s, replica, down_s))
    env.run(until=horizon_s)
    if horizon_s is not None:
        for engine in cluster.engines:
            engine.finalize(horizon_s)
        for request in cluster.unfinished():
            request.status = Status.UNFINISHED
            outcome.requests.append(request)
    return outcome
