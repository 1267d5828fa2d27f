"""Workloads: length distributions, arrival processes (rates and CVs recovered within CLT
bounds), open-loop and trace requests, and the closed-loop source."""

import heapq
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.errors import ScenarioError
from clustersim.serving.request import RequestSpec
from clustersim.serving.workload import (
    ClosedLoopSource,
    FixedLengths,
    LognormalLengths,
    LognormalTokens,
    TraceLengths,
    UniformLengths,
    gamma_arrivals,
    lognormal_params,
    open_loop_requests,
    poisson_arrivals,
    trace_requests,
)

TRACES = Path(__file__).resolve().parents[1] / "traces"
Z = 5.0  # sigmas allowed: a correct sampler fails about once in 1.7 million runs


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- lengths


def test_fixed_lengths():
    prompt, output = FixedLengths(128, 16).sample(rng(), 3)
    assert prompt.tolist() == [128, 128, 128] and output.tolist() == [16, 16, 16]
    assert FixedLengths(1, 1).sample(rng(), 0)[0].shape == (0,)


def test_uniform_lengths_cover_the_inclusive_range():
    prompt, output = UniformLengths(3, 5, 1, 2).sample(rng(), 2000)
    assert set(prompt.tolist()) == {3, 4, 5} and set(output.tolist()) == {1, 2}


def test_lognormal_params_by_hand():
    # cv = 0 -> sigma = 0, mu = ln(mean); cv = 1 -> sigma^2 = ln 2, mu = ln(100) - ln(2)/2
    assert lognormal_params(100.0, 0.0) == (pytest.approx(math.log(100)), 0.0)
    mu, sigma = lognormal_params(100.0, 1.0)
    assert mu == pytest.approx(math.log(100) - math.log(2) / 2)
    assert sigma == pytest.approx(math.sqrt(math.log(2)))


def test_lognormal_mean_and_cv_within_sampling_error():
    n, mean, cv = 200_000, 1000.0, 0.5
    values = LognormalTokens(mean, cv).sample(rng(1), n)
    # sample mean has standard error sd/sqrt(n) = cv*mean/sqrt(n); rounding adds <= 0.5
    assert abs(values.mean() - mean) <= Z * cv * mean / math.sqrt(n) + 0.5
    assert values.dtype == np.int64 and values.min() >= 1


def test_lognormal_clipping_and_zero_cv():
    dist = LognormalLengths(LognormalTokens(50, 3.0, min_tokens=10, max_tokens=60),
                            LognormalTokens(7.4, 0.0))
    prompt, output = dist.sample(rng(), 5000)
    assert prompt.min() >= 10 and prompt.max() <= 60
    assert set(output.tolist()) == {7}


def test_trace_lengths_sample_existing_pairs():
    specs = [RequestSpec(0, 0.0, 10, 1), RequestSpec(1, 0.0, 20, 2), RequestSpec(2, 0.0, 30, 3)]
    prompt, output = TraceLengths.from_specs(specs).sample(rng(), 3000)
    assert set(zip(prompt.tolist(), output.tolist())) == {(10, 1), (20, 2), (30, 3)}
    # each pair has probability 1/3: binomial sd = sqrt(n p (1-p))
    count = int((prompt == 20).sum())
    assert abs(count - 1000) <= Z * math.sqrt(3000 * (1 / 3) * (2 / 3))


def test_trace_lengths_from_bundled_trace_keep_the_joint_distribution():
    lengths = TraceLengths.from_trace(TRACES / "azure_llm_2023_conv.csv")
    pairs = set(zip(lengths.prompt_tokens, lengths.output_tokens))
    prompt, output = lengths.sample(rng(2), 500)
    assert all(pair in pairs for pair in zip(prompt.tolist(), output.tolist()))


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: FixedLengths(0, 1), "num_prompt_tokens"),
        (lambda: UniformLengths(5, 4, 1, 1), "max_prompt_tokens"),
        (lambda: UniformLengths(1, 1, 0, 1), "min_output_tokens"),
        (lambda: LognormalTokens(-1.0, 1.0), "mean"),
        (lambda: LognormalTokens(10.0, float("nan")), "cv"),
        (lambda: LognormalTokens(10.0, 1.0, min_tokens=5, max_tokens=4), "max_tokens"),
        (lambda: TraceLengths((), ()), "TraceLengths"),
        (lambda: poisson_arrivals(rng(), 0.0, num_requests=3), "rate_per_s"),
        (lambda: poisson_arrivals(rng(), 1.0), "num_requests/horizon_s"),
        (lambda: poisson_arrivals(rng(), 1.0, num_requests=3, horizon_s=1.0), "horizon_s"),
        (lambda: gamma_arrivals(rng(), 1.0, -1.0, num_requests=3), "cv"),
        (lambda: ClosedLoopSource(rng(), 0, FixedLengths(1, 1), 3), "num_clients"),
        (lambda: ClosedLoopSource(rng(), 1, FixedLengths(1, 1), 3, think_time_s=-1), "think"),
    ],
)
def test_bad_parameters_name_the_field(make, field):
    with pytest.raises(ScenarioError, match=field):
        make()


# ---------------------------------------------------------------- arrivals


def test_poisson_rate_recovered_from_mean_gap():
    n, rate = 200_000, 40.0
    gaps = np.diff(poisson_arrivals(rng(3), rate, num_requests=n), prepend=0.0)
    # exponential gaps: mean 1/rate, sd 1/rate -> standard error (1/rate)/sqrt(n)
    assert abs(gaps.mean() - 1 / rate) <= Z * (1 / rate) / math.sqrt(n)


def test_poisson_count_in_horizon_within_sampling_error():
    rate, horizon_s = 25.0, 4000.0
    times = poisson_arrivals(rng(4), rate, horizon_s=horizon_s)
    # N(horizon) ~ Poisson(rate * horizon): sd = sqrt(rate * horizon)
    assert abs(times.size - rate * horizon_s) <= Z * math.sqrt(rate * horizon_s)
    assert times.min() > 0 and times.max() < horizon_s and np.all(np.diff(times) >= 0)


def _gamma_cv_standard_error(cv: float, n: int) -> float:
    """Delta method for the sample CV s/m of n gamma gaps (shape k = 1/cv^2):
    n Var = cv^4 + (mu4 - sigma^4)/(4 sigma^2 m^2) - mu3/m^3 with, for gamma (scale 1),
    m = k, sigma^2 = k, mu3 = 2k, mu4 = 3k(k+2):  = 1/k^2 + (k+3)/(2k^2) - 2/k^2
    = (k+1)/(2k^2)."""
    k = 1.0 / (cv * cv)
    return math.sqrt((k + 1) / (2 * k * k) / n)


@pytest.mark.parametrize("cv", [0.5, 2.0, 3.0])
def test_gamma_rate_and_cv_within_sampling_error(cv):
    n, rate = 200_000, 8.0
    gaps = np.diff(gamma_arrivals(rng(5), rate, cv, num_requests=n), prepend=0.0)
    assert abs(gaps.mean() - 1 / rate) <= Z * cv * (1 / rate) / math.sqrt(n)
    sample_cv = gaps.std(ddof=1) / gaps.mean()
    assert abs(sample_cv - cv) <= Z * _gamma_cv_standard_error(cv, n)


def test_gamma_cv_one_is_exactly_poisson_and_cv_zero_is_evenly_spaced():
    assert np.array_equal(gamma_arrivals(rng(6), 3.0, 1.0, num_requests=50),
                          poisson_arrivals(rng(6), 3.0, num_requests=50))
    assert gamma_arrivals(rng(), 4.0, 0.0, num_requests=4) == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert gamma_arrivals(rng(), 4.0, 0.0, horizon_s=1.0) == pytest.approx([0.25, 0.5, 0.75])
    assert poisson_arrivals(rng(), 4.0, horizon_s=0.0).size == 0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rate=st.floats(0.1, 100.0),
       cv=st.floats(0.0, 4.0), horizon=st.booleans())
def test_same_seed_same_arrays(seed, rate, cv, horizon):
    kwargs = {"horizon_s": 30.0} if horizon else {"num_requests": 100}
    a = gamma_arrivals(rng(seed), rate, cv, **kwargs)
    b = gamma_arrivals(rng(seed), rate, cv, **kwargs)
    assert np.array_equal(a, b) and np.all(np.diff(a) >= 0)
    lengths = LognormalLengths(LognormalTokens(500, 1.0), LognormalTokens(50, 2.0))
    assert open_loop_requests(rng(seed), a, lengths) == open_loop_requests(rng(seed), b, lengths)


# ---------------------------------------------------------------- requests


def test_open_loop_requests_pair_arrivals_with_lengths():
    reqs = open_loop_requests(rng(), np.array([0.0, 0.5, 0.5, 2.0]), FixedLengths(7, 3))
    assert reqs == [RequestSpec(0, 0.0, 7, 3), RequestSpec(1, 0.5, 7, 3),
                    RequestSpec(2, 0.5, 7, 3), RequestSpec(3, 2.0, 7, 3)]
    assert all(type(r.arrival_s) is float and type(r.num_prompt_tokens) is int for r in reqs)
    with pytest.raises(ScenarioError, match="index=2"):
        open_loop_requests(rng(), np.array([0.0, 1.0, 0.5]), FixedLengths(7, 3))
    with pytest.raises(ScenarioError, match="minimum"):
        open_loop_requests(rng(), np.array([-1.0, 1.0]), FixedLengths(7, 3))


def test_trace_requests_scale_and_window():
    path = TRACES / "mooncake_fast25_conversation_head2000.jsonl"
    full = trace_requests(path)
    fast = trace_requests(path, time_scale=0.25, max_requests=100)
    assert len(full) == 2000 and len(fast) == 100
    assert [r.arrival_s for r in fast] == pytest.approx([r.arrival_s / 4 for r in full[:100]])
    window = trace_requests(path, start_s=100.0, end_s=200.0)
    expected = [r for r in full if 100.0 <= r.arrival_s < 200.0]
    assert [(r.arrival_s, r.num_prompt_tokens) for r in window] == [
        (e.arrival_s - 100.0, e.num_prompt_tokens) for e in expected]
    assert [r.request_id for r in window] == list(range(len(expected)))


# ---------------------------------------------------------------- closed loop


def test_closed_loop_first_requests_and_next():
    src = ClosedLoopSource(rng(), 3, FixedLengths(10, 2), num_requests=5, think_time_s=0.5)
    first = src.first_requests()
    assert [(r.request_id, r.arrival_s, r.client_id) for r in first] == [(0, 0.0, 0), (1, 0.0, 1),
                                                                         (2, 0.0, 2)]
    assert src.next_request(1, 2.0) == RequestSpec(3, 2.5, 10, 2, client_id=1)
    assert src.next_request(0, 3.0) == RequestSpec(4, 3.5, 10, 2, client_id=0)
    assert src.exhausted and src.num_issued == 5
    assert src.next_request(2, 4.0) is None
    with pytest.raises(ValueError, match="client_id=2"):  # its request already came back
        src.next_request(2, 5.0)


def test_closed_loop_fewer_requests_than_clients():
    src = ClosedLoopSource(rng(), 4, FixedLengths(1, 1), num_requests=2)
    assert [r.client_id for r in src.first_requests()] == [0, 1]
    assert src.next_request(0, 1.0) is None


def _run_closed_loop(seed: int, reverse_ties: bool) -> list[tuple[int, int, float, int, int]]:
    """Tiny driver: a request takes 0.01 s per output token plus 0.001 s per prompt token;
    returns (request_id, client, arrival, prompt, output) in issue order."""
    src = ClosedLoopSource(rng(seed), 4, UniformLengths(1, 50, 1, 20), num_requests=40,
                           think_time_s=0.1)
    log, heap = [], []
    for r in src.first_requests():
        log.append(r)
        finish = r.arrival_s + 0.01 * r.num_output_tokens + 0.001 * r.num_prompt_tokens
        heapq.heappush(heap, (finish, -r.client_id if reverse_ties else r.client_id))
    while heap:
        now, key = heapq.heappop(heap)
        nxt = src.next_request(abs(key), now)
        if nxt is not None:
            log.append(nxt)
            finish = nxt.arrival_s + 0.01 * nxt.num_output_tokens + 0.001 * nxt.num_prompt_tokens
            heapq.heappush(heap, (finish, key))
    return [(r.request_id, r.client_id, r.arrival_s, r.num_prompt_tokens, r.num_output_tokens)
            for r in log]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_closed_loop_is_deterministic_and_lengths_follow_request_id(seed):
    a = _run_closed_loop(seed, reverse_ties=False)
    assert a == _run_closed_loop(seed, reverse_ties=False)
    assert [x[0] for x in a] == list(range(40))
    # a different completion order changes who sends request k, never its lengths
    b = _run_closed_loop(seed, reverse_ties=True)
    assert {x[0]: x[3:] for x in a} == {x[0]: x[3:] for x in b}
    # each client has at most one request outstanding: its arrivals are >= 0.1 s apart
    for client in range(4):
        times = [x[2] for x in a if x[1] == client]
        assert all(t2 - t1 >= 0.1 for t1, t2 in zip(times, times[1:]))


def test_closed_loop_with_a_huge_request_budget_stays_small_and_spans_blocks():
    # 10**9 requests must not be sampled up front; ids past one block (4096) keep going.
    src = ClosedLoopSource(rng(7), 2, UniformLengths(1, 9, 1, 9), num_requests=10**9)
    first = src.first_requests()
    reqs = [src.next_request(i % 2, float(i)) for i in range(10_000)]
    assert [r.request_id for r in first + reqs] == list(range(10_002))
    again = ClosedLoopSource(rng(7), 2, UniformLengths(1, 9, 1, 9), num_requests=10**9)
    again.first_requests()
    assert [again.next_request(i % 2, float(i)) for i in range(10_000)] == reqs
