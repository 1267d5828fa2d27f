"""Expert-parallel load imbalance under uniform random routing, without fitted parameters.

With expert parallelism (ep ranks, E/ep routed experts each), an MoE layer finishes when its
busiest rank does. Routing is modelled as uniform: each of T tokens picks k distinct experts
out of E at random. Two loads per rank matter:

- compute: the token-expert rows a rank multiplies. For one token the count landing on a
  given rank is hypergeometric (k draws from E experts, E/ep of them on the rank): mean
  k/ep, variance k (1/ep)(1 - 1/ep)(E - k)/(E - 1). Over T independent tokens the rank's load
  has mean mu = T k / ep and variance T times that;
- weight streaming: the distinct experts a rank must read. Each of its E/ep experts is hit
  with probability p = 1 - (1 - k/E)^T, so the count has mean (E/ep) p and, treating experts
  as independent, variance (E/ep) p (1 - p).

The expected maximum over the ep ranks is approximated by mean + sd x e(ep), where e(n) is
the expected maximum of n independent standard normals (the normal approximation of each
rank's sum; the ranks' slight negative correlation is ignored), capped at the largest
possible load. The step's MoE compute and expert-read times scale by max / mean.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=256)
def expected_max_std_normal(n: int) -> float:
    """E[max of n iid N(0, 1)] = integral of x n phi(x) Phi(x)^(n-1) dx, by quadrature.

    >>> [round(expected_max_std_normal(n), 4) for n in (1, 2, 4, 8)]
    [0.0, 0.5642, 1.0294, 1.4236]
    """
    if n <= 1:
        return 0.0
    x = np.linspace(-12.0, 12.0, 48001)
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in x]))
    f = x * n * pdf * cdf ** (n - 1)
    return float(np.sum((f[1:] + f[:-1]) * 0.5 * (x[1] - x[0])))


def rank_rows_imbalance(num_tokens: int, top_k: int, num_experts: int, ep: int) -> float:
    """Busiest rank's token-expert rows over the mean rank's, >= 1 (1 when ep <= 1).

    mu = T k / ep; sd = sqrt(T k (1/ep)(1 - 1/ep)(E - k)/(E - 1)); busiest = mu + sd e(ep),
    capped at the most one rank can get, T min(k, ceil(E/ep)) (a rank holds whole experts), and
    at least ceil(mu) (the T k rows are whole: some rank gets at least its share rounded up);
    factor = busiest / mu.

    >>> round(rank_rows_imbalance(1024, 8, 256, 8), 4)  # mu 1024, sd sqrt(8192 x 7/64 x 248/255) = 29.51
    1.041
    >>> rank_rows_imbalance(1024, 8, 256, 1), rank_rows_imbalance(1, 1, 8, 8)  # one rank; one row: 8 x mean
    (1.0, 8.0)
    """
    if ep <= 1 or num_tokens <= 0 or top_k <= 0:
        return 1.0
    mean = num_tokens * top_k / ep
    frac = 1.0 / ep
    var = num_tokens * top_k * frac * (1.0 - frac) * (num_experts - top_k) / max(num_experts - 1, 1)
    cap = num_tokens * min(top_k, math.ceil(num_experts / ep))
    busiest = max(min(mean + math.sqrt(var) * expected_max_std_normal(ep), cap), math.ceil(mean))
    return max(busiest / mean, 1.0)


def rank_experts_imbalance(num_tokens: int, top_k: int, num_experts: int, ep: int) -> float:
    """Busiest rank's distinct routed experts over the mean rank's, >= 1 (1 when ep <= 1).

    m = (E/ep) p with p = 1 - (1 - k/E)^T; sd = sqrt((E/ep) p (1 - p)); factor =
    min(m + sd e(ep), E/ep) / m.

    >>> round(rank_experts_imbalance(1, 8, 256, 8), 4)  # m = 32 x 8/256 = 1, sd = sqrt(31/32), e(8) = 1.4236
    2.4012
    >>> rank_experts_imbalance(4096, 8, 256, 8)  # every expert touched on every rank
    1.0
    """
    if ep <= 1 or num_tokens <= 0 or top_k <= 0:
        return 1.0
    per_rank = num_experts / ep
    p = 1.0 - (1.0 - top_k / num_experts) ** num_tokens
    mean = per_rank * p
    busiest = min(mean + math.sqrt(per_rank * p * (1.0 - p)) * expected_max_std_normal(ep), per_rank)
    return max(busiest / mean, 1.0)
