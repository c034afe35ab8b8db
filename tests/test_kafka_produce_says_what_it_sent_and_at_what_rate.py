"""``produce`` and ``replay`` end with what they sent, in words that fit the count, and say when
the rate asked for was not reached: a load test run at 1,600/s must not read as one at 5,000/s."""

from __future__ import annotations

import re

import pytest

from kafka_harness import cli, namespace, require_broker

pytestmark = [pytest.mark.kafka]


@pytest.fixture(scope="module")
def ov():
    require_broker()
    ov = namespace()
    assert cli("topics", "create", ov=ov).returncode == 0
    return ov


def test_one_record_is_one_record(ov, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"type":"click","impression_id":"i1","ts":1000}\n')
    proc = cli("replay", str(path), ov=ov, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "produced 1 record in" in proc.stderr, proc.stderr
    assert "below --rate" not in proc.stderr


def test_a_rate_out_of_reach_is_said_with_the_rate_reached(ov):
    proc = cli("produce", "--impressions", "20000", "--rate", "50000000", ov=ov, text=True)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"below --rate 50,000,000/s: reached ([\d,]+)/s", proc.stderr)
    assert m, proc.stderr
    assert 0 < int(m.group(1).replace(",", "")) < 45_000_000


def test_a_rate_within_reach_is_not_flagged(ov):
    proc = cli("produce", "--impressions", "300", "--rate", "200", ov=ov, text=True)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"produced [\d,]+ records in", proc.stderr), proc.stderr
    assert "below --rate" not in proc.stderr, proc.stderr


def test_a_paced_replay_ends_with_its_last_record(ov, tmp_path):
    # Record k goes out at k / rate: two records at 1/s take one second, not two (and one record
    # at any rate ends at once, where it used to wait a whole interval after it).
    path = tmp_path / "two.jsonl"
    path.write_text('{"type":"click","impression_id":"i1","ts":1000}\n{"type":"click","impression_id":"i2","ts":2000}\n')
    proc = cli("replay", str(path), "--rate", "1", ov=ov, text=True)
    assert proc.returncode == 0, proc.stderr
    secs = float(re.search(r"produced 2 records in ([\d.]+) s", proc.stderr).group(1))
    assert 0.9 <= secs < 1.8, proc.stderr
    one = tmp_path / "one.jsonl"
    one.write_text('{"type":"click","impression_id":"i3","ts":3000}\n')
    proc = cli("replay", str(one), "--rate", "0.001", ov=ov, text=True, timeout=60)
    assert proc.returncode == 0 and "produced 1 record in" in proc.stderr, proc.stderr
