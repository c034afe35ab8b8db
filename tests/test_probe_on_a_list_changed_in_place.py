"""Probes share a release's columns only inside the pipeline's scope: a caller that probes a
list, changes it in place and probes it again gets rows for what the list holds now."""

from __future__ import annotations

from stream_lis.events import Impression
from stream_lis.join import LabelledExample
from stream_lis.probes import CoClickProbe, FutureItemProbe, NextClickProbe, NoiseProbe
from stream_lis.probes import release
from stream_lis.probes.log import BehaviourLog


def example(iid: str, ts: int, item: str = "a", user: str = "u") -> LabelledExample:
    return LabelledExample(Impression(impression_id=iid, ts=ts, user_id=user, item_id=item,
                                      experiment="e", arm="c"), 0, None, ts)


def a_log() -> BehaviourLog:
    log = BehaviourLog()
    for k in range(20):
        log.add_impression("a" if k % 2 else "b", 100 + k)
    log.add_click("u", "b", 110, "x1")
    log.add_click("v", "a", 112, "x2")
    return log


def test_every_probe_sees_the_list_as_it_is_now():
    log = a_log()
    for probe in (NoiseProbe(dims=2), FutureItemProbe(), NextClickProbe(), CoClickProbe()):
        examples = [example("p", 50, "a"), example("q", 60, "b")]
        probe.columns(examples, log, 1000)
        examples[1] = example("r", 70, "a", "v")
        examples.append(example("s", 80, "b"))
        again = probe.columns(examples, log, 1000).rows()
        fresh = probe.columns(list(examples), log, 1000).rows()
        assert again == fresh, probe.name
        assert len(again) == 3


def test_inside_the_scope_the_columns_are_built_once():
    examples = [example("p", 50)]
    with release.shared(examples) as rel:
        assert release.columns(examples) is rel
        assert release.columns(list(examples)) is not rel  # another list: its own columns
    assert release.columns(examples) is not rel
