"""Workloads: when requests arrive and how long they are.

Everything random takes a `numpy.random.Generator` from the caller (one child of the run's
SeedSequence), never global state, so the same generator state gives the same arrays.

- Length distributions (`FixedLengths`, `UniformLengths`, `LognormalLengths`, `TraceLengths`)
  have ``.sample(rng, n) -> (prompt_tokens, output_tokens)``, two int64 arrays of length n,
  every value >= 1.
- Arrival processes (`poisson_arrivals`, `gamma_arrivals`) return sorted float arrays of
  arrival times in seconds; `open_loop_requests` pairs them with lengths.
- `trace_requests` replays a trace file; `ClosedLoopSource` feeds a fixed set of clients that
  each send their next request when the previous one finishes (driven by the simulation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from clustersim.errors import ScenarioError
from clustersim.serving.request import RequestSpec
from clustersim.serving.traces import ZeroOutput, read_trace

_MIN_CHUNK = 64
_MIN_GAMMA_CV = 1e-6
_BLOCK = 4096  # closed loop: request lengths drawn this many at a time


class LengthDist(Protocol):
    """Anything that draws n (prompt, output) token-count pairs."""

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]: ...


def _need(ok: bool, where: str, value: object, valid: str) -> None:
    if not ok:
        raise ScenarioError(f"{where}={value!r}, must be {valid}")


def _check_n(n: int) -> None:
    _need(isinstance(n, (int, np.integer)) and n >= 0, "sample n", n, "an integer >= 0")


@dataclass(frozen=True, slots=True)
class FixedLengths:
    """Every request has the same prompt and output length (a controlled benchmark).

    >>> FixedLengths(128, 16).sample(np.random.default_rng(0), 2)
    (array([128, 128]), array([16, 16]))
    """

    num_prompt_tokens: int
    num_output_tokens: int

    def __post_init__(self) -> None:
        _need(self.num_prompt_tokens >= 1, "FixedLengths.num_prompt_tokens",
              self.num_prompt_tokens, "an integer >= 1")
        _need(self.num_output_tokens >= 1, "FixedLengths.num_output_tokens",
              self.num_output_tokens, "an integer >= 1")

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        _check_n(n)
        return (np.full(n, self.num_prompt_tokens, dtype=np.int64),
                np.full(n, self.num_output_tokens, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class UniformLengths:
    """Prompt and output lengths drawn independently and uniformly from inclusive ranges."""

    min_prompt_tokens: int
    max_prompt_tokens: int
    min_output_tokens: int
    max_output_tokens: int

    def __post_init__(self) -> None:
        for name in ("prompt", "output"):
            lo = getattr(self, f"min_{name}_tokens")
            hi = getattr(self, f"max_{name}_tokens")
            _need(lo >= 1, f"UniformLengths.min_{name}_tokens", lo, "an integer >= 1")
            _need(hi >= lo, f"UniformLengths.max_{name}_tokens", hi,
                  f">= min_{name}_tokens={lo}")

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        _check_n(n)
        prompt = rng.integers(self.min_prompt_tokens, self.max_prompt_tokens, size=n,
                              endpoint=True, dtype=np.int64)
        output = rng.integers(self.min_output_tokens, self.max_output_tokens, size=n,
                              endpoint=True, dtype=np.int64)
        return prompt, output


def lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of the log of a lognormal with this mean and coefficient of variation:
    sigma^2 = ln(1 + cv^2), mu = ln(mean) - sigma^2 / 2.

    >>> mu, sigma = lognormal_params(math.e ** 0.5, math.sqrt(math.e - 1))
    >>> round(mu, 12), round(sigma, 12)
    (0.0, 1.0)
    """
    sigma2 = math.log1p(cv * cv)
    return math.log(mean) - sigma2 / 2, math.sqrt(sigma2)


@dataclass(frozen=True, slots=True)
class LognormalTokens:
    """A token count drawn from a lognormal with `mean` and `cv` (before rounding and
    clipping to [min_tokens, max_tokens]); cv=0 gives round(mean) every time."""

    mean: float
    cv: float
    min_tokens: int = 1
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        _need(math.isfinite(self.mean) and self.mean > 0, "LognormalTokens.mean", self.mean,
              "a finite number > 0")
        _need(math.isfinite(self.cv) and self.cv >= 0, "LognormalTokens.cv", self.cv,
              "a finite number >= 0")
        _need(self.min_tokens >= 1, "LognormalTokens.min_tokens", self.min_tokens,
              "an integer >= 1")
        _need(self.max_tokens is None or self.max_tokens >= self.min_tokens,
              "LognormalTokens.max_tokens", self.max_tokens,
              f"None or >= min_tokens={self.min_tokens}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        _check_n(n)
        mu, sigma = lognormal_params(self.mean, self.cv)
        values = np.rint(rng.lognormal(mu, sigma, size=n))
        hi = np.inf if self.max_tokens is None else self.max_tokens
        return np.clip(values, self.min_tokens, hi).astype(np.int64)


@dataclass(frozen=True, slots=True)
class LognormalLengths:
    """Independent lognormal prompt and output lengths (heavy right tail, as in chat traces)."""

    prompt: LognormalTokens
    output: LognormalTokens

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.prompt.sample(rng, n), self.output.sample(rng, n)


@dataclass(frozen=True, slots=True)
class TraceLengths:
    """(prompt, output) pairs resampled with replacement from a trace: the trace's empirical
    joint distribution, so correlation between prompt and output length is kept."""

    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    _prompt: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _output: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _need(len(self.prompt_tokens) > 0, "TraceLengths size", len(self.prompt_tokens),
              ">= 1 request")
        _need(len(self.prompt_tokens) == len(self.output_tokens), "TraceLengths.output_tokens "
              "length", len(self.output_tokens), f"{len(self.prompt_tokens)} like prompt_tokens")
        _need(min(self.prompt_tokens) >= 1 and min(self.output_tokens) >= 1,
              "TraceLengths minimum length",
              min(min(self.prompt_tokens), min(self.output_tokens)), ">= 1")
        # arrays built once: sample() is called per block of requests
        object.__setattr__(self, "_prompt", np.asarray(self.prompt_tokens, dtype=np.int64))
        object.__setattr__(self, "_output", np.asarray(self.output_tokens, dtype=np.int64))

    @classmethod
    def from_specs(cls, specs: list[RequestSpec] | tuple[RequestSpec, ...]) -> TraceLengths:
        return cls(tuple(s.num_prompt_tokens for s in specs),
                   tuple(s.num_output_tokens for s in specs))

    @classmethod
    def from_trace(cls, path: str | Path, format: str = "auto", **options: object) -> TraceLengths:
        """Lengths of a trace file (options as for `read_trace`)."""
        return cls.from_specs(read_trace(path, format, **options))  # type: ignore[arg-type]

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        _check_n(n)
        index = rng.integers(0, len(self.prompt_tokens), size=n)
        return self._prompt[index], self._output[index]


def _check_count_or_horizon(num_requests: int | None, horizon_s: float | None) -> None:
    _need((num_requests is None) != (horizon_s is None), "arrivals num_requests/horizon_s",
          (num_requests, horizon_s), "exactly one of the two set")
    if num_requests is not None:
        _need(isinstance(num_requests, (int, np.integer)) and num_requests >= 0,
              "arrivals num_requests", num_requests, "an integer >= 0")
    if horizon_s is not None:
        _need(math.isfinite(horizon_s) and horizon_s >= 0, "arrivals horizon_s", horizon_s,
              "a finite number >= 0")


def _renewal(
    draw_gaps: Callable[[int], np.ndarray],
    mean_gap_s: float,
    num_requests: int | None,
    horizon_s: float | None,
) -> np.ndarray:
    """Arrival times of a renewal process: cumulative sums of gaps from `draw_gaps(k)`,
    either the first num_requests or all before horizon_s (drawn in chunks)."""
    if num_requests is not None:
        return np.cumsum(draw_gaps(num_requests))
    assert horizon_s is not None
    parts: list[np.ndarray] = []
    now_s = 0.0
    while now_s < horizon_s:
        expected = (horizon_s - now_s) / mean_gap_s
        times = now_s + np.cumsum(draw_gaps(max(_MIN_CHUNK, int(expected * 1.1) + 16)))
        parts.append(times[times < horizon_s])
        now_s = float(times[-1])
    return np.concatenate(parts) if parts else np.empty(0)


def poisson_arrivals(
    rng: np.random.Generator,
    rate_per_s: float,
    *,
    num_requests: int | None = None,
    horizon_s: float | None = None,
) -> np.ndarray:
    """Arrival times (s) of a Poisson process of `rate_per_s` starting at 0: exponential gaps
    with mean 1/rate. Give `num_requests` (that many arrivals) or `horizon_s` (every arrival
    in [0, horizon_s)). The first arrival is one gap after 0, not at 0."""
    _need(math.isfinite(rate_per_s) and rate_per_s > 0, "poisson_arrivals rate_per_s",
          rate_per_s, "a finite number > 0")
    _check_count_or_horizon(num_requests, horizon_s)
    mean_gap_s = 1.0 / rate_per_s
    return _renewal(lambda k: rng.exponential(mean_gap_s, size=k), mean_gap_s,
                    num_requests, horizon_s)


def gamma_arrivals(
    rng: np.random.Generator,
    rate_per_s: float,
    cv: float,
    *,
    num_requests: int | None = None,
    horizon_s: float | None = None,
) -> np.ndarray:
    """Arrival times (s) with gamma gaps of mean 1/rate and coefficient of variation `cv`
    (shape 1/cv^2, scale cv^2/rate): cv > 1 is burstier than Poisson, cv < 1 smoother,
    cv = 0 (or below 1e-6) evenly spaced. cv = 1 is Poisson and returns exactly
    `poisson_arrivals`'s array for the same generator state."""
    _need(math.isfinite(rate_per_s) and rate_per_s > 0, "gamma_arrivals rate_per_s",
          rate_per_s, "a finite number > 0")
    _need(math.isfinite(cv) and cv >= 0, "gamma_arrivals cv", cv, "a finite number >= 0")
    _check_count_or_horizon(num_requests, horizon_s)
    if cv == 1.0:
        return poisson_arrivals(rng, rate_per_s, num_requests=num_requests, horizon_s=horizon_s)
    mean_gap_s = 1.0 / rate_per_s
    if cv < _MIN_GAMMA_CV:  # shape 1/cv^2 would overflow; the gaps are constant to 1e-6 anyway
        return _renewal(lambda k: np.full(k, mean_gap_s), mean_gap_s, num_requests, horizon_s)
    shape, scale = 1.0 / (cv * cv), cv * cv * mean_gap_s
    return _renewal(lambda k: rng.gamma(shape, scale, size=k), mean_gap_s,
                    num_requests, horizon_s)


def open_loop_requests(
    rng: np.random.Generator, arrivals_s: np.ndarray, lengths: LengthDist,
) -> list[RequestSpec]:
    """One request per arrival time (ids 0..n-1 in arrival order), lengths from `lengths`."""
    arrivals_s = np.asarray(arrivals_s, dtype=np.float64)
    _need(arrivals_s.ndim == 1, "open_loop_requests arrivals_s ndim", arrivals_s.ndim, "1")
    if arrivals_s.size:
        _need(bool(np.all(np.isfinite(arrivals_s))) and float(arrivals_s.min()) >= 0,
              "open_loop_requests arrivals_s minimum", float(np.nanmin(arrivals_s)),
              "finite and >= 0 everywhere")
        bad = np.flatnonzero(np.diff(arrivals_s) < 0)
        _need(bad.size == 0, "open_loop_requests arrivals_s index",
              int(bad[0]) + 1 if bad.size else -1, "non-decreasing (sorted arrivals)")
    prompt, output = lengths.sample(rng, int(arrivals_s.size))
    return [RequestSpec(i, float(t), int(p), int(o))
            for i, (t, p, o) in enumerate(zip(arrivals_s, prompt, output))]


def trace_requests(
    path: str | Path,
    format: str = "auto",
    *,
    time_scale: float = 1.0,
    max_requests: int | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    zero_output: ZeroOutput | None = None,
) -> list[RequestSpec]:
    """Replay a trace file: `time_scale` multiplies every gap (0.5 doubles the rate);
    [start_s, end_s) picks a window in trace seconds. See `clustersim.serving.traces`."""
    return read_trace(path, format, max_requests=max_requests, time_scale=time_scale,
                      start_s=start_s, end_s=end_s, zero_output=zero_output)


@dataclass(slots=True)
class ClosedLoopSource:
    """Closed-loop clients: each of `num_clients` has one request outstanding at a time and
    sends the next `think_time_s` after the previous finishes, until `num_requests` in all.

    Lengths are drawn in blocks of `_BLOCK` request ids, in id order, so request k has the
    same lengths whichever client sends it and whatever order requests finish in: two layouts
    compared with one seed see the same requests. Blocks keep memory bounded when
    num_requests is huge (a run limited by time instead). The simulation calls
    `first_requests()` once at t=0, then `next_request(client_id, now_s)` when that client's
    request finishes.
    """

    rng: np.random.Generator
    num_clients: int
    lengths: LengthDist
    num_requests: int
    think_time_s: float = 0.0
    _prompt: np.ndarray = field(init=False, repr=False)
    _output: np.ndarray = field(init=False, repr=False)
    _block_start: int = field(init=False, default=0, repr=False)
    _num_issued: int = field(init=False, default=0)
    _outstanding: set[int] = field(init=False, default_factory=set, repr=False)
    _started: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        _need(self.num_clients >= 1, "ClosedLoopSource.num_clients", self.num_clients,
              "an integer >= 1")
        _need(self.num_requests >= 0, "ClosedLoopSource.num_requests", self.num_requests,
              "an integer >= 0")
        _need(math.isfinite(self.think_time_s) and self.think_time_s >= 0,
              "ClosedLoopSource.think_time_s", self.think_time_s, "a finite number >= 0")
        self._prompt = self._output = np.empty(0, dtype=np.int64)

    @property
    def num_issued(self) -> int:
        return self._num_issued

    @property
    def exhausted(self) -> bool:
        """True once every one of the num_requests has been handed out."""
        return self._num_issued >= self.num_requests

    def _issue(self, client_id: int, arrival_s: float) -> RequestSpec:
        k = self._num_issued
        if k >= self._block_start + self._prompt.size:  # ids are issued in order
            self._block_start = k
            size = min(_BLOCK, self.num_requests - k)
            self._prompt, self._output = self.lengths.sample(self.rng, size)
        self._num_issued += 1
        self._outstanding.add(client_id)
        i = k - self._block_start
        return RequestSpec(k, arrival_s, int(self._prompt[i]), int(self._output[i]), client_id)

    def first_requests(self) -> list[RequestSpec]:
        """One request per client at t=0 (fewer if num_requests < num_clients); call once."""
        if self._started:
            raise RuntimeError("ClosedLoopSource.first_requests() called twice")
        self._started = True
        return [self._issue(c, 0.0) for c in range(min(self.num_clients, self.num_requests))]

    def next_request(self, client_id: int, now_s: float) -> RequestSpec | None:
        """The finished client's next request, arriving at now_s + think_time_s, or None
        when all num_requests were issued. The client must have a request outstanding."""
        if client_id not in self._outstanding:
            raise ValueError(f"ClosedLoopSource.next_request client_id={client_id}: no request "
                             f"outstanding (outstanding: {sorted(self._outstanding)[:8]})")
        self._outstanding.discard(client_id)
        if self.exhausted:
            return None
        return self._issue(client_id, now_s + self.think_time_s)
