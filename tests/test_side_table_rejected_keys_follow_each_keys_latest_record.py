"""A side table's rejected keys (``stream_lis_table_rejected_keys``, alert
SideTableRecordsRejected) follow each key's latest record, and only rejections are
dead-lettered, whatever the mix of keyed, unkeyed, good, bad and tombstone records."""

from __future__ import annotations

import threading
from collections import Counter

from stream_lis.runtime.kafka.letter_marks import LetterMarks
from stream_lis.runtime.kafka.tables import APPLIED, TableFeed


def _feed(letters: list) -> TableFeed:
    """The feed's record handling alone (no consumer): a record's value names its outcome."""
    feed = TableFeed.__new__(TableFeed)
    feed.name, feed.lock, feed.details = "preferences", threading.Lock(), {"wrong_type": "bad vector"}
    feed.counts, feed.rejected_keys = Counter(), set()
    feed._apply = lambda key, value: "deleted" if value is None and key else (
        "missing_field" if value is None else value.decode())
    feed.dead_letter = lambda inv, source: letters.append((inv.reason, inv.raw, source))
    feed.marks = LetterMarks({}, None, "preferences")  # no marks: every rejection is sent
    return feed


def test_rejected_keys_and_dead_letters_follow_each_keys_latest_record():
    letters: list = []
    feed = _feed(letters)
    records = [(b"a", b"upserted"), (b"b", b"wrong_type"), (b"c", b"wrong_type"), (None, b"wrong_type"),
               (b"b", b"upserted"),  # fixed by the publisher
               (b"c", None),         # deleted by a tombstone
               (b"d", b"wrong_type"), (b"a", b"wrong_type"),  # a good key gone bad
               (None, b"upserted"), (b"e", b"absent")]
    outcomes = [feed.apply(k, v, f"t/0@{n}") for n, (k, v) in enumerate(records)]
    assert outcomes == ["upserted", "wrong_type", "wrong_type", "wrong_type", "upserted", "deleted", "wrong_type",
                        "wrong_type", "upserted", "absent"]
    assert feed.rejected_keys == {b"d", b"a"}  # an unkeyed record is not a key anything can fix
    # Every rejection, and only rejections, dead-lettered with its source.
    assert [(r, s) for r, _, s in letters] == [("wrong_type", "t/0@1"), ("wrong_type", "t/0@2"), ("wrong_type", "t/0@3"),
                                               ("wrong_type", "t/0@6"), ("wrong_type", "t/0@7")]
    assert all(r not in APPLIED for r, _, _ in letters)
    assert feed.counts == {"upserted": 3, "wrong_type": 5, "deleted": 1, "absent": 1}
