"""HandlerLatency: sampled runs, bucketed in plain lists."""

from __future__ import annotations

import pytest

from hubbub.runtime.latency import HandlerLatency


def test_one_run_in_every_is_timed_and_counted_every_times() -> None:
    latency = HandlerLatency(bounds=(0.001, 1.0), every=4)
    started = [latency.start() for _ in range(8)]
    assert [s != 0.0 for s in started] == [True, False, False, False, True, False, False, False]
    for s in started:
        latency.stop(s)
    assert latency.count == 8
    assert latency.counts[0] == 8  # stopping at once is well under a millisecond
    assert 0 <= latency.sum < 0.01


def test_observations_land_in_the_first_bucket_that_holds_them() -> None:
    latency = HandlerLatency(bounds=(0.001, 0.01), every=1)
    latency.observe(0.001)  # a bound is inclusive (Prometheus' le)
    latency.observe(0.005)
    latency.observe(3.0)
    assert latency.counts == [1, 1, 1]
    assert latency.sum == pytest.approx(3.006)


def test_every_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HandlerLatency(every=0)
