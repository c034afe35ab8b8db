"""The paper's upper-bound claim on a planted truth: as the MLLM representation's fidelity to
the preference data rises, AIS rises and approaches LIS[external], never beyond its interval."""

from __future__ import annotations

import pytest

from stream_lis.validation import fidelity_sweep

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep():
    # Three arms (none, half, perfect) share the traffic; 240k impressions keep every interval
    # narrow enough to order them (about 30 s here).
    return fidelity_sweep(impressions=240_000, seed=3, fidelities=(0.0, 0.5, 1.0))


def test_ais_rises_with_fidelity(sweep):
    none, half, perfect = sweep
    assert none.ais_high < half.ais_low  # separated by more than their intervals
    assert half.ais_high < perfect.ais_low
    assert abs(none.ais) < 0.005  # an unrelated representation brings nothing


def test_ais_never_exceeds_lis_of_the_preference_data_beyond_the_interval(sweep):
    for p in sweep:
        assert p.ais <= p.lis_high, p
        assert p.lis_low > 0  # the preference data itself is clearly informative


def test_perfect_fidelity_reaches_the_upper_bound(sweep):
    perfect = sweep[-1]
    assert perfect.lis_low <= perfect.ais <= perfect.lis_high
