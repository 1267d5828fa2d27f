"""The clock's arrival events: at exactly the recorded arrival time, before same-time steps."""

from __future__ import annotations

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from clustersim.serving.clock import ArrivalFeed
from clustersim.serving.request import RequestSpec


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=30))
def test_requests_are_released_at_exactly_their_arrival_time(gaps):
    # now + (t - now) may differ from t by an ulp (0.3 + (0.9 - 0.3) != 0.9); the feed must not
    env = simpy.Environment()
    arrivals, t = [], 0.0
    for gap in gaps:
        t += gap
        arrivals.append(t)
    seen: list[tuple[float, float]] = []
    ArrivalFeed(env, [RequestSpec(i, a, 1, 1) for i, a in enumerate(arrivals)],
                lambda spec: seen.append((env.now, spec.arrival_s)))
    env.run()
    assert [s for _, s in seen] == arrivals
    assert all(now == arrival for now, arrival in seen)


def test_an_arrival_precedes_a_step_ending_at_the_same_instant():
    env = simpy.Environment()
    order: list[str] = []
    step = env.timeout(0.3)
    step.callbacks.append(lambda _: order.append("step end"))
    ArrivalFeed(env, [RequestSpec(0, 0.3, 1, 1)], lambda spec: order.append("arrival"))
    env.run()
    assert order == ["arrival", "step end"]


def test_the_case_that_delay_arithmetic_gets_wrong():
    assert 0.3 + (0.9 - 0.3) != 0.9  # why the feed schedules absolute times
    env = simpy.Environment()
    seen: list[float] = []
    ArrivalFeed(env, [RequestSpec(0, 0.3, 1, 1), RequestSpec(1, 0.9, 1, 1)], lambda spec: seen.append(env.now))
    env.run()
    assert seen == [0.3, 0.9]
