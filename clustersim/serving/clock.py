"""The one tie rule for events at the same simulated time, in one place.

SimPy orders events by (time, priority, insertion id). Every engine step is a normal
timeout. Arrivals (and other exogenous inputs: failures, client think-time ends) use
`arrival_timeout`, scheduled with URGENT priority, so an arrival at exactly the instant a
step ends is always seen by the plan that follows that step, whatever the insertion order.
Fast-forwarded decode spans follow the same rule (see serving.engine).
"""

from __future__ import annotations

import simpy
from simpy.core import URGENT


def arrival_timeout(env: simpy.Environment, delay_s: float) -> simpy.Event:
    """An event that fires after delay_s, before any step ending at the same instant."""
    if delay_s < 0:
        raise ValueError(f"arrival_timeout delay_s={delay_s}, must be >= 0")
    event = simpy.Event(env)
    event._ok = True  # a pre-triggered event, as simpy.Timeout builds itself
    event._value = None
    env.schedule(event, URGENT, delay_s)
    return event
