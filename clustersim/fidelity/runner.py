"""Simulate one `Setup` and measure what the calibration rows measure.

One replica is simulated with its share of the load (offered rate / num_replicas, requests
/ num_replicas): replicas share nothing, and the router spreads load evenly; system
throughput is the replica's times num_replicas. The same serving core as `clustersim run`
does the work (Batcher, KVCache, Engine with fast-forward, PerfTimer); this module only
wires it without record files, and with the efficiency factors under test passed in, so a
calibration fit can vary them.

Per mode (see mapping.Setup):
- offline: every request waiting at t=0; max_num_seqs OFFLINE_MAX_NUM_SEQS, budget
  OFFLINE_MAX_BATCHED_TOKENS (max-throughput benchmarks run large batches). Requests per
  replica: max(4 x the batch that fits, OFFLINE_NUM_REQUESTS / replicas), so TTFT of the
  queued requests matches a vLLM benchmark of 1,000 prompts at infinite rate. A row whose
  source states its prompt count ("1000 prompts", request rate inf) is a finite burst:
  exactly those requests, not staggered, throughput = output tokens / makespan (as
  benchmark_serving and JetStream's offline script report it, drain included).
- batch: `load` requests at t=0 as one static batch (max_num_seqs = load, budget = the
  whole batch's prompts: one context-encoding step, as Neuron runs it).
- concurrency: closed loop, `load` clients, the stated number of prompts (else 4 x load
  requests, at least 32), max_num_seqs ONLINE_MAX_NUM_SEQS, budget ONLINE_MAX_BATCHED_TOKENS
  (also qps).
- Engine limits the row's source states (max-num-seqs, max-num-batched-tokens: see
  mapping.stated_limits) replace these defaults in the offline, concurrency, qps and server
  modes.
- qps: Poisson at load / replicas per replica, OPEN_LOOP_NUM_REQUESTS requests.
- server: the highest Poisson rate whose p99 TTFT and p99 TPOT meet the row's limits and
  whose queue does not grow over the run (`stable`), by bisection in log-rate between 1/96
  and 1.5 x a perf-model capacity estimate, doubled while a trial there passes
  (SERVER_ITERATIONS halvings: 0.2% in rate, as finely as submitters tune their QPS);
  SERVER_NUM_REQUESTS per trial, max_num_seqs
  SERVER_MAX_NUM_SEQS (MLPerf submissions batch large, limited by the TPOT bound). Except on
  TensorRT-LLM, the search is also run with the batch capped where a steady mixed step fits
  the TPOT limit (`steady_batch_cap`: vLLM-style max_num_seqs tuning, bursts queue and TTFT
  absorbs them) and the higher rate wins. Throughput is min(rate x osl, the completions'
  steady rate); latencies are those at that rate.
- prefill / decode (one phase alone, saturated): the perf model's step time directly, not an
  event simulation, since a saturated single phase is one repeated step: prefill runs
  budget/isl whole prompts per step; decode runs the largest batch that fits (KV for
  isl + osl tokens per sequence, at most OFFLINE_MAX_NUM_SEQS) at mean context isl + osl/2.
  Under DEP these limits are per attention-DP rank (each rank schedules its own sequences,
  SGLang --enable-dp-attention, TensorRT-LLM enable_attention_dp), so the replica's are
  attn_dp times larger; the event-simulated modes keep replica-wide limits (see
  clustersim/fidelity/README.md).

Throughput of a simulated run is the steady-state completion rate: output tokens of the
requests finishing between the 25th and 75th percentile of finish times over that span
(ramp-up and drain excluded), falling back to tokens / makespan for tiny runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import simpy

from clustersim.catalog import Catalog
from clustersim.fidelity.mapping import KV_RESERVE_FRACTION, Setup
from clustersim.perf import ReplicaPerf, kv_capacity_tokens, step_time_s
from clustersim.perf.efficiency import Efficiency
from clustersim.perf.load import BatchLoad
from clustersim.serving.batcher import Batcher
from clustersim.serving.clock import ArrivalFeed
from clustersim.serving.engine import Engine, StepSink
from clustersim.serving.kv_cache import KVCache
from clustersim.serving.request import Request, RequestSpec, Status
from clustersim.serving.timing import PerfTimer
from clustersim.serving.workload import ClosedLoopSource, FixedLengths, poisson_arrivals

BLOCK_SIZE = 16
OFFLINE_MAX_NUM_SEQS = 1024
OFFLINE_MAX_BATCHED_TOKENS = 16384
ONLINE_MAX_NUM_SEQS = 256
ONLINE_MAX_BATCHED_TOKENS = 8192
OFFLINE_NUM_REQUESTS = 1000
OPEN_LOOP_NUM_REQUESTS = 300
SERVER_NUM_REQUESTS = 600
SERVER_MAX_REQUESTS = 6000
SERVER_LIFETIMES = 4.0
"""A server trial's arrivals span at least this many request lifetimes (ttft limit + osl x
tpot limit), within [SERVER_NUM_REQUESTS, SERVER_MAX_REQUESTS] requests: shorter runs end
before the batch fills, so an overloaded rate looks fine."""
SERVER_MAX_NUM_SEQS = 1024
SERVER_ITERATIONS = 11
SERVER_BRACKET_DOUBLINGS = 4
"""Times the search's upper bracket (1.5 x `capacity_rate_per_s`) doubles while a trial there still
meets the limits."""
SEED = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """Predicted metrics of one setup (row metric name -> value, in the row's units)."""

    metrics: dict[str, float]
    note: str = ""


def make_replica(setup: Setup, catalog: Catalog, eff: Efficiency) -> tuple[ReplicaPerf, int]:
    """The replica's perf model and its KV capacity in tokens."""
    chip = catalog.chip(setup.chip)
    model = catalog.model(setup.model)
    num_kv_heads = setup.num_kv_heads or model.num_kv_heads
    if model.num_heads != setup.num_heads or model.num_kv_heads != num_kv_heads:
        import dataclasses

        model = dataclasses.replace(model, num_heads=setup.num_heads, num_kv_heads=num_kv_heads)
    replica = ReplicaPerf(chip=chip, model=model, tp=setup.tp, ep=setup.ep,
                          weight_dtype=setup.weight_dtype, kv_dtype=setup.kv_dtype, efficiency=eff,
                          attn_dp=setup.attn_dp)
    return replica, kv_capacity_tokens(replica, reserve_fraction=KV_RESERVE_FRACTION)


def _serve(replica: ReplicaPerf, capacity: int, max_seqs: int, max_tokens: int,
           specs: Iterable[RequestSpec], closed: ClosedLoopSource | None = None,
           max_sim_s: float | None = None, timer: object | None = None,
           on_steps: StepSink | None = None) -> list[Request]:
    """Run one replica's engine over `specs` (plus a closed loop's follow-ups); finished
    requests. `on_steps` receives every committed step span (calibrate records schedules)."""
    env = simpy.Environment()
    finished: list[Request] = []
    batcher = Batcher(KVCache(capacity // BLOCK_SIZE, BLOCK_SIZE), max_num_batched_tokens=max_tokens, max_num_seqs=max_seqs)

    def arrive(spec: RequestSpec) -> None:
        engine.submit(Request(spec))

    def on_finish(request: Request) -> None:
        request.status = Status.FINISHED
        finished.append(request)
        if closed is not None:
            nxt = closed.next_request(request.spec.client_id, env.now)
            if nxt is not None:
                ArrivalFeed(env, (nxt,), arrive)

    engine = Engine(env, 0, batcher, timer or PerfTimer(replica), on_finish=on_finish, on_steps=on_steps)  # type: ignore[arg-type]
    ArrivalFeed(env, specs, arrive)
    env.run(until=max_sim_s)
    return finished


def _fixed(n: int, isl: int, osl: int, arrivals: np.ndarray | None = None) -> list[RequestSpec]:
    times = np.zeros(n) if arrivals is None else arrivals
    return [RequestSpec(i, float(times[i]), isl, osl) for i in range(n)]


def _arrays(requests: list[Request]) -> tuple[np.ndarray, ...]:
    """(arrival_s, first_token_s, finish_s, num_output_tokens) of finished requests."""
    return (
        np.array([r.spec.arrival_s for r in requests]),
        np.array([r.first_token_s for r in requests]),
        np.array([r.finish_s for r in requests]),
        np.array([r.spec.num_output_tokens for r in requests], dtype=float),
    )


def latency_metrics(arrival: np.ndarray, first: np.ndarray, finish: np.ndarray, num_out: np.ndarray) -> dict[str, float]:
    """TTFT p50/p99/mean, TPOT p50/p99 (per request: (finish - first token) / (outputs - 1))
    and the token-weighted mean inter-token latency, in ms."""
    ttft = first - arrival
    multi = num_out > 1
    tpot = (finish[multi] - first[multi]) / (num_out[multi] - 1)
    out = {
        "ttft_p50_ms": float(np.percentile(ttft, 50)) * 1e3,
        "ttft_p99_ms": float(np.percentile(ttft, 99)) * 1e3,
        "ttft_mean_ms": float(ttft.mean()) * 1e3,
    }
    if tpot.size:
        out["tpot_p50_ms"] = float(np.percentile(tpot, 50)) * 1e3
        out["tpot_p99_ms"] = float(np.percentile(tpot, 99)) * 1e3
        out["itl_mean_ms"] = float((finish[multi] - first[multi]).sum() / (num_out[multi] - 1).sum()) * 1e3
    return out


def _latency_metrics(requests: list[Request]) -> dict[str, float]:
    return latency_metrics(*_arrays(requests))


STEADY_MIN_REQUESTS = 8
"""Fewer finished requests than this have no steady window: all of them count."""


def _steady_bounds(n: int) -> tuple[int, int]:
    """Positions [lo, hi) in finish order of the steady window: the middle half of n requests."""
    return n // 4, (3 * n) // 4


def steady_rate(finish_s: np.ndarray, num_out: np.ndarray) -> float:
    """Output tokens/s of requests finishing between the 25th and 75th percentile finish
    times (ramp and drain excluded); tokens / makespan when that span is empty.

    >>> steady_rate(np.arange(1.0, 9.0), np.full(8, 10.0))
    10.0
    """
    finish = np.sort(finish_s)
    tokens = float(num_out.sum())
    n = len(finish)
    lo, hi = _steady_bounds(n)
    if n >= STEADY_MIN_REQUESTS and finish[hi - 1] > finish[lo - 1]:
        return (hi - lo) * (tokens / n) / float(finish[hi - 1] - finish[lo - 1])
    return tokens / float(finish[-1]) if n and finish[-1] > 0 else 0.0


def window_token_rate(arrival: np.ndarray, first: np.ndarray, finish: np.ndarray, num_out: np.ndarray,
                      start_s: float, end_s: float) -> float:
    """Output tokens/s generated in [start_s, end_s): each request's first token at first_token_s,
    the other num_out - 1 spread evenly up to finish_s (decode steps are near-uniform).

    >>> window_token_rate(np.zeros(1), np.array([1.0]), np.array([11.0]), np.array([11.0]), 0.0, 6.0)
    1.0
    """
    span = end_s - start_s
    if not span > 0:
        return 0.0
    first_in = ((first >= start_s) & (first < end_s)).sum()
    decode = np.maximum(finish - first, 0.0)
    overlap = np.clip(np.minimum(finish, end_s) - np.maximum(first, start_s), 0.0, None)
    share = np.divide(overlap, decode, out=np.zeros_like(decode), where=decode > 0)
    return float(first_in + (share * (num_out - 1)).sum()) / span


def steady_output_tokens_s(requests: list[Request]) -> float:
    """`steady_rate` of finished requests."""
    _, _, finish, num_out = _arrays(requests)
    return steady_rate(finish, num_out)


def _throughput_metrics(setup: Setup, tokens_s: float) -> dict[str, float]:
    """The system's output tokens/s, in all and per chip, from one replica's `tokens_s`."""
    total = tokens_s * setup.num_replicas
    return {"output_tok_s_total": total, "output_tok_s_per_chip": total / setup.num_chips}


def _with_throughput(requests: list[Request], setup: Setup, tokens_s: float) -> dict[str, float]:
    metrics = _latency_metrics(requests) if requests else {}
    return metrics | _throughput_metrics(setup, tokens_s)


def _max_batch(setup: Setup, capacity: int, max_seqs: int) -> int:
    return max(1, min(max_seqs, capacity // (setup.isl + setup.osl)))


def _decode_load(num_seqs: int, context: int) -> BatchLoad:
    return BatchLoad(num_tokens=num_seqs, num_seqs=num_seqs, num_sampled=num_seqs,
                     attn_pairs=float(num_seqs * (context + 1)), kv_read_tokens=num_seqs * (context + 1))


def capacity_rate_per_s(replica: ReplicaPerf, setup: Setup, capacity: int, max_seqs: int) -> float:
    """Requests/s one replica sustains with its batch full: each steady mixed step finishes
    batch/osl requests and prefills as many new prompts (`steady_step_s`), so prompts share
    the step's weight reads with the decodes (the server search's first upper bracket)."""
    batch = _max_batch(setup, capacity, max_seqs)
    return batch / setup.osl / steady_step_s(replica, setup, batch)


def steady_step_s(replica: ReplicaPerf, setup: Setup, batch: int) -> float:
    """One steady mixed step of a full continuous batch: `batch` decodes at mean context plus
    the prompts of the batch/osl requests that replace the finished ones (at least one token)."""
    decode = _decode_load(batch, setup.isl + setup.osl // 2)
    new = max(1, round(batch * setup.isl / setup.osl))
    prompt = BatchLoad.of_request(new, 0, True, False)
    mixed = BatchLoad(decode.num_tokens + prompt.num_tokens, prompt.num_prefill_tokens,
                      decode.num_seqs + 1, decode.num_sampled, decode.attn_pairs + prompt.attn_pairs,
                      decode.kv_read_tokens + prompt.kv_read_tokens)
    return step_time_s(replica, mixed)


def engine_limits(setup: Setup, max_num_seqs: int, max_num_batched_tokens: int) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) of a run: the engine settings the row's source
    states (mapping.stated_limits), else the mode's defaults given here.

    >>> from clustersim.fidelity.mapping import Setup
    >>> s = Setup("c", "m", "f", 1, 1, 1, 1, 8, "bf16", "bf16", "qps", 1.0, 10, 10, None, None, max_num_batched_tokens=512)
    >>> engine_limits(s, 256, 8192)
    (256, 512)
    """
    return (setup.max_num_seqs or max_num_seqs, setup.max_num_batched_tokens or max_num_batched_tokens)


def steady_batch_cap(replica: ReplicaPerf, setup: Setup, capacity: int) -> int:
    """The largest running batch whose steady mixed step fits the TPOT limit: b decodes at
    mean context plus the prompts of the b/osl requests that replace the finished ones each
    step. A submitter caps the batch there (TensorRT-LLM max_batch_size, vLLM max_num_seqs),
    so arrival bursts wait in the queue (TTFT) instead of stretching every step (TPOT)."""
    most = _max_batch(setup, capacity, SERVER_MAX_NUM_SEQS)
    if not setup.tpot_limit_s:
        return most
    lo, hi = 1, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if steady_step_s(replica, setup, mid) <= setup.tpot_limit_s:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _open_loop(replica: ReplicaPerf, capacity: int, setup: Setup, rate_per_s: float, num: int,
               max_seqs: int = ONLINE_MAX_NUM_SEQS) -> list[Request]:
    rng = np.random.default_rng(SEED)
    arrivals = poisson_arrivals(rng, rate_per_s, num_requests=num)
    horizon = float(arrivals[-1]) * 3 + 600.0
    max_seqs, max_tokens = engine_limits(setup, max_seqs, ONLINE_MAX_BATCHED_TOKENS)
    return _serve(replica, capacity, max_seqs, max_tokens,
                  _fixed(num, setup.isl, setup.osl, arrivals), max_sim_s=horizon)


def stable(arrival: np.ndarray, first: np.ndarray, ttft_limit_s: float) -> bool:
    """False when the queue grows over the run: the mean TTFT of the last quarter of arrivals
    exceeds the second quarter's by more than a fifth of the TTFT limit (an overloaded
    server fails MLPerf's long runs even if a short run's p99 still passes).

    >>> t = np.arange(8.0)
    >>> stable(t, t + 0.1, 2.0), stable(t, t + 0.1 + t, 2.0)
    (True, False)
    """
    order = np.argsort(arrival)
    ttft = (first - arrival)[order]
    n = len(ttft)
    q = max(1, n // 4)
    return float(ttft[-q:].mean() - ttft[q:2 * q].mean()) <= 0.2 * ttft_limit_s


def _server(replica: ReplicaPerf, capacity: int, setup: Setup) -> Outcome:
    """The highest rate meeting both p99 limits, over the batch caps a submitter tunes: none
    (SERVER_MAX_NUM_SEQS; the batch grows until TPOT binds) and the steady cap
    (`steady_batch_cap`: bursts queue, TTFT absorbs them). A stated batch limit is the only
    one; TensorRT-LLM runs uncapped: its MLPerf servers report TTFT p99 far under the limits
    (120-440 ms against 450-2,000 ms) where the vLLM-based ones sit near them (1.5-1.96 s of
    2 s), the mark of a tuned max_num_seqs with requests queueing (clustersim/fidelity/README.md (12))."""
    if setup.max_num_seqs:
        caps = [setup.max_num_seqs]
    elif setup.stack == "tensorrt-llm":
        caps = [SERVER_MAX_NUM_SEQS]
    else:
        caps = sorted({SERVER_MAX_NUM_SEQS, steady_batch_cap(replica, setup, capacity)})
    outcomes = [_server_search(replica, capacity, setup, cap) for cap in caps]
    return max(outcomes, key=lambda pair: pair[0])[1]


def _server_search(replica: ReplicaPerf, capacity: int, setup: Setup, max_seqs: int) -> tuple[float, Outcome]:
    """(served output tokens/s, outcome) of the rate search with one batch cap."""
    ttft_lim = setup.ttft_limit_s or math.inf
    tpot_lim = setup.tpot_limit_s or math.inf
    hi = capacity_rate_per_s(replica, setup, capacity, max_seqs) * 1.5
    lo = hi / 96
    best: tuple[float, list[Request]] | None = None

    lifetime_s = min(ttft_lim, 60.0) + setup.osl * min(tpot_lim, 1.0)

    def meets(rate: float) -> tuple[bool, list[Request]]:
        num = int(min(SERVER_MAX_REQUESTS, max(SERVER_NUM_REQUESTS, rate * SERVER_LIFETIMES * lifetime_s)))
        done = _open_loop(replica, capacity, setup, rate, num, max_seqs)
        if len(done) < num:
            return False, done
        arrival, first, _, _ = _arrays(done)
        m = _latency_metrics(done)
        ok = m["ttft_p99_ms"] / 1e3 <= ttft_lim and m.get("tpot_p99_ms", 0.0) / 1e3 <= tpot_lim
        ok = ok and stable(arrival, first, min(ttft_lim, 10.0))
        return ok, done

    ok, done = meets(lo)
    if not ok:
        return 0.0, Outcome(_with_throughput(done, setup, lo * setup.osl), "limits missed even at the lowest rate tried")
    best = (lo, done)
    for _ in range(SERVER_BRACKET_DOUBLINGS):  # the estimate is a bracket, not a bound: widen it until it fails
        ok, done = meets(hi)
        if not ok:
            break
        lo, best, hi = hi, (hi, done), 2.0 * hi
    for _ in range(SERVER_ITERATIONS):
        mid = math.sqrt(lo * hi)
        ok, done = meets(mid)
        if ok:
            lo, best = mid, (mid, done)
        else:
            hi = mid
    rate, done = best
    # what the trial completed at steady state, never more than was offered: a short trial can
    # pass the latency limits while completions still lag arrivals (the batch is still growing)
    served = min(rate * setup.osl, steady_output_tokens_s(done))
    return served, Outcome(_with_throughput(done, setup, served),
                           f"rate {rate * setup.num_replicas:.3g} req/s, batch cap {max_seqs}")


def fixed_schedule(setup: Setup, capacity: int) -> tuple[int, int, int]:
    """(requests, max_num_seqs, max_num_batched_tokens) of a batch or offline setup: all
    requests wait at t=0, so who runs in each step does not depend on step times."""
    if setup.mode == "batch":
        num = max(1, round(setup.load or 1))
        return num, num, max(num * setup.isl, 1)
    if setup.num_requests:  # a stated burst sent to a server: its requests, the server's defaults
        max_seqs, max_tokens = engine_limits(setup, ONLINE_MAX_NUM_SEQS, ONLINE_MAX_BATCHED_TOKENS)
        return math.ceil(setup.num_requests / setup.num_replicas), max_seqs, max_tokens
    max_seqs, max_tokens = engine_limits(setup, OFFLINE_MAX_NUM_SEQS, OFFLINE_MAX_BATCHED_TOKENS)
    batch = _max_batch(setup, capacity, max_seqs)
    num = max(4 * batch, math.ceil(OFFLINE_NUM_REQUESTS / setup.num_replicas))
    return num, max_seqs, max_tokens


def offline_specs(setup: Setup, capacity: int, num: int, max_seqs: int) -> list[RequestSpec]:
    """The requests of a batch or offline run: all at t=0; an offline run measured at steady
    state has its first wave staggered (`_staggered`), a stated burst runs as stated."""
    specs = _fixed(num, setup.isl, setup.osl)
    if setup.mode == "offline" and not setup.num_requests:
        specs = _staggered(specs, _max_batch(setup, capacity, max_seqs))
    return specs


def _staggered(specs: list[RequestSpec], batch: int) -> list[RequestSpec]:
    """The first `batch` requests end at evenly spread points of their output (request j of
    the first wave after ceil(osl (j + 1) / batch) tokens), so the replacements that follow
    run desynchronized, as in a continuous batcher's steady state, not in lock-step waves."""
    out = list(specs)
    for j in range(min(batch, len(out))):
        s = out[j]
        out[j] = RequestSpec(s.request_id, s.arrival_s, s.num_prompt_tokens,
                             max(1, math.ceil(s.num_output_tokens * (j + 1) / batch)), s.client_id)
    return out


def fixed_schedule_metrics(setup: Setup, arrival: np.ndarray, first: np.ndarray, finish: np.ndarray,
                           num_out: np.ndarray) -> dict[str, float]:
    """Metrics of a batch or stated offline burst (throughput over the makespan: what a
    benchmark of N prompts at once reports, drain included) or offline (steady rate) run."""
    metrics = latency_metrics(arrival, first, finish, num_out)
    if setup.mode == "batch" or setup.num_requests:
        tokens_s = float(num_out.sum() / finish.max())
    else:  # tokens generated between the first and third quartile of finish times
        lo, hi = np.percentile(finish, [25, 75])
        tokens_s = window_token_rate(arrival, first, finish, num_out, float(lo), float(hi)) if hi > lo else steady_rate(finish, num_out)
    return metrics | _throughput_metrics(setup, tokens_s)


def closed_loop(setup: Setup) -> ClosedLoopSource:
    """One replica's share of a concurrency row: load / replicas clients with no think time,
    all starting at t=0, fixed lengths, the requests the source states it sent (shared
    evenly by the replicas), else 4 x clients (at least 32). Followers arrive
    exactly when their predecessor finishes, i.e. at a step end, and join the plan after the
    step that starts there (serving.engine cuts a span after the step in progress), so who
    runs in each step never depends on step durations: a fit can re-time the recorded steps
    (tests/test_fidelity_schedule.py checks it)."""
    clients = max(1, round((setup.load or 1) / setup.num_replicas))
    num = math.ceil(setup.num_requests / setup.num_replicas) if setup.num_requests else max(32, 4 * clients)
    return ClosedLoopSource(np.random.default_rng(SEED), clients, FixedLengths(setup.isl, setup.osl), num)


def closed_loop_specs(setup: Setup, loop: ClosedLoopSource) -> list[RequestSpec]:
    """The t=0 requests of a concurrency run: all at once, except for a stable-window
    measurement (`Setup.steady_window`: perf_analyzer / genai-perf / AIPerf), whose first wave
    is staggered (`_staggered`): it sees clients whose requests end at spread times, not
    fixed-length clients that stay in lock-step waves forever."""
    specs = loop.first_requests()
    return _staggered(specs, loop.num_clients) if setup.steady_window else specs


def steady_mask(finish_s: np.ndarray) -> np.ndarray:
    """The requests `steady_rate` counts: those finishing between the 25th and 75th percentile
    finish times (all of them for fewer than STEADY_MIN_REQUESTS).

    >>> steady_mask(np.array([8.0, 1, 2, 3, 4, 5, 6, 7])).nonzero()[0].tolist()
    [3, 4, 5, 6]
    """
    n = len(finish_s)
    if n < STEADY_MIN_REQUESTS:
        return np.ones(n, dtype=bool)
    lo, hi = _steady_bounds(n)
    keep = np.zeros(n, dtype=bool)
    keep[np.argsort(finish_s, kind="stable")[lo:hi]] = True
    return keep


def concurrency_metrics(setup: Setup, arrival: np.ndarray, first: np.ndarray, finish: np.ndarray,
                        num_out: np.ndarray) -> dict[str, float]:
    """Latency metrics and the throughput of a closed-loop run. Throughput: output tokens /
    makespan when the source states how many prompts the benchmark sent (what `vllm bench
    serve` reports: ramp and drain included; one wave of 320 prompts at concurrency 320 is all
    ramp and drain), else the steady completion rate (`steady_rate`). Latencies: over every
    request, except for a stable-window tool (`Setup.steady_window`): over the requests
    `steady_mask` keeps."""
    if setup.steady_window:
        keep = steady_mask(finish)
        metrics = latency_metrics(arrival[keep], first[keep], finish[keep], num_out[keep])
    else:
        metrics = latency_metrics(arrival, first, finish, num_out)
    rate = float(num_out.sum() / finish.max()) if setup.num_requests else steady_rate(finish, num_out)
    return metrics | _throughput_metrics(setup, rate)


def run_fixed_schedule(setup: Setup, replica: ReplicaPerf, capacity: int,
                       on_steps: StepSink | None = None) -> list[Request]:
    """Finished requests of a batch, offline or concurrency setup: the modes whose step
    schedule does not depend on step times (calibrate records it through `on_steps`)."""
    if setup.mode == "concurrency":
        loop = closed_loop(setup)
        max_seqs, max_tokens = engine_limits(setup, ONLINE_MAX_NUM_SEQS, ONLINE_MAX_BATCHED_TOKENS)
        return _serve(replica, capacity, max_seqs, max_tokens, closed_loop_specs(setup, loop), closed=loop,
                      on_steps=on_steps)
    num, max_seqs, max_tokens = fixed_schedule(setup, capacity)
    return _serve(replica, capacity, max_seqs, max_tokens, offline_specs(setup, capacity, num, max_seqs),
                  on_steps=on_steps)


def run_setup(setup: Setup, catalog: Catalog, eff: Efficiency) -> Outcome:
    """Predicted metrics of `setup` with efficiency factors `eff` (see module docstring)."""
    replica, capacity = make_replica(setup, catalog, eff)
    mode = setup.mode
    if mode == "prefill":  # DEP: every attention-DP rank schedules its own prompts within its own budget
        num = max(1, OFFLINE_MAX_BATCHED_TOKENS // setup.isl) * setup.attn_dp
        load = BatchLoad(num_tokens=num * setup.isl, num_prefill_tokens=num * setup.isl, num_seqs=num, num_sampled=num,
                         attn_pairs=num * setup.isl * (setup.isl + 1) / 2, kv_read_tokens=num * setup.isl)
        per_chip = num * setup.isl / step_time_s(replica, load) / replica.num_chips
        return Outcome({"input_tok_s_per_chip": per_chip})
    if mode == "decode":
        batch = _max_batch(setup, capacity, OFFLINE_MAX_NUM_SEQS * setup.attn_dp)
        step_s = step_time_s(replica, _decode_load(batch, setup.isl + setup.osl // 2))
        per_chip = batch / step_s / replica.num_chips
        return Outcome({"output_tok_s_per_chip": per_chip, "output_tok_s_total": per_chip * setup.num_chips,
                        "tpot_p50_ms": step_s * 1e3, "itl_mean_ms": step_s * 1e3}, f"decode batch {batch}")
    if mode in ("batch", "offline"):
        done = run_fixed_schedule(setup, replica, capacity)
        return Outcome(fixed_schedule_metrics(setup, *_arrays(done)), f"{len(done)} requests")
    if mode == "concurrency":
        return Outcome(concurrency_metrics(setup, *_arrays(run_fixed_schedule(setup, replica, capacity))))
    if mode == "qps":
        rate = (setup.load or 1.0) / setup.num_replicas
        done = _open_loop(replica, capacity, setup, rate, OPEN_LOOP_NUM_REQUESTS)
        return Outcome(_with_throughput(done, setup, steady_output_tokens_s(done)))
    assert mode == "server", mode
    return _server(replica, capacity, setup)
