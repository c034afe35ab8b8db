"""Streaming intervals are honest: on planted-truth streams they cover the offline (batch,
time-split) values on the same test examples, and the noise control rarely excludes 0.

The full study runs 50 seeds (studies/validation_study.py coverage); this guard runs 4, with
bounds loose enough for 8 arm-runs (at a true 95% coverage, 6 or fewer hits out of 8 has a
probability under 6%)."""

from __future__ import annotations

import pytest

from stream_lis.validation import coverage_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study():
    return coverage_study(seeds=range(1, 5), impressions=60_000)


def test_streaming_intervals_cover_the_offline_values(study):
    for key, (covered, n) in study["coverage"].items():
        assert n == 8, key
        assert covered >= 7, (key, study["rows"])


def test_noise_interval_rarely_excludes_zero(study):
    excluded, n = study["noise_excludes_zero"]
    assert n == 8 and excluded <= 1
