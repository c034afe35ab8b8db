"""How far a side topic's rejected records are on the dead-letter topic, kept across starts.

A side table's feed reads its topic from the beginning at every start, on every worker, and
rejects the same bad records each time (compaction keeps a key's latest record). Each of them
was dead-lettered again by every worker at every start: the dead-letter topic filled with
copies. The feed now commits, per partition of its topic, the offset below which every
rejected record's dead letter is on the broker, in a consumer group of its own
(``<group_id>-tables``: offsets only, committed by a client of their own that never joins
or polls it); a record below the mark is counted and tracked as before
(``stream_lis_table_records``, ``rejected_keys``) but not sent again.

The marks are bookkeeping: they never hold the feed up, and they never lose a letter.
- A mark is committed only once every letter sent before it was acknowledged, on a thread
  of its own, bounded (``WAIT_MS``); the feed's loop only looks whether it is done.
- A mark holds for the rules it was made under (``rules``: the release, the reject reasons
  and the config that decides them): a record accepted then may be rejected now, so marks
  made under other rules are ignored.
- A partition whose offsets go back (its topic deleted and made again) loses its mark, and
  no mark is committed for the rest of the run.
- Marks unchanged for a day are committed again, before the broker's offset retention
  (7 days by default) forgets them.
- Anything else (no ACL for the group, a letter that failed, three failed commits in a row)
  turns the marks off, said once: each start then sends every rejected record again, as
  before. Workers starting together may each send a record past the marks: at least once.

>>> marks = LetterMarks({}, "stream-lis-tables", "preferences")
>>> tp = TopicPartition("preferences", 0)
>>> marks.marks[tp] = 3  # as loaded: letters of offsets 0..2 are on the broker
>>> marks.fresh(tp, 2), marks.fresh(tp, 3)
(False, True)
>>> marks.read(tp, 0, 5); marks.read(tp, 0, 2)  # offsets went back: the topic was made again
>>> marks.fresh(tp, 2), marks.on
(True, False)
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from ..on_thread import OnThread

__all__ = ["LetterMarks", "WAIT_MS"]

log = logging.getLogger("stream_lis.tables")

#: How long one read or commit of the marks may wait for the broker.
WAIT_MS = 10_000
#: Failed commits in a row after which the marks are turned off.
MAX_FAILURES = 3
#: Unchanged marks are committed again this often (seconds).
RECOMMIT_S = 24 * 3600.0


class LetterMarks:
    """The marks of one feed's topic: read at its start, moved as its letters are delivered."""

    def __init__(self, client_kw: dict[str, Any], group: str | None, table: str, rules: str = "",
                 every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        """``group`` None: no marks (every start sends every rejected record). ``every_s``:
        how often a commit is tried while the feed reads."""
        self.client_kw, self.group, self.table, self.rules = client_kw, group, table, rules
        self.every_s, self.clock = every_s, clock
        self.on = group is not None
        self._client: KafkaConsumer | None = None
        #: partition -> offset below which its letters are on the broker (committed)
        self.marks: dict[TopicPartition, int] = {}
        #: partition -> offset after the last record the feed applied
        self.read_to: dict[TopicPartition, int] = {}
        self._letters: list[Any] = []  # futures of the letters sent since the last mark
        self._saving: tuple[OnThread, dict[TopicPartition, int], int] | None = None
        self._tried = self._committed = clock()
        self._failures = 0

    def _consumer(self) -> KafkaConsumer:
        if self._client is None:
            self._client = KafkaConsumer(group_id=self.group, enable_auto_commit=False, **self.client_kw)
        return self._client

    def load(self, tps: list[TopicPartition], beat: Callable[[], None]) -> None:
        """The marks committed for these partitions under the same rules (the feed's start;
        partitions added later), waited for at most ``WAIT_MS`` while ``beat`` is called."""
        if not self.on or not tps:
            return
        while self._saving is not None and not self._saving[0].done.wait(0.5):  # one user of the client at a time
            beat()
        self._take_commit()
        if not self.on:
            return

        def read() -> dict[TopicPartition, Any]:
            consumer = self._consumer()
            return {tp: consumer.committed(tp, metadata=True, timeout_ms=WAIT_MS) for tp in tps}

        reading = OnThread(read, f"{self.table}-table-marks")
        deadline = self.clock() + len(tps) * WAIT_MS / 1000 + 1
        while not reading.done.wait(0.5):
            beat()
            if self.clock() > deadline:
                self._off("reading them took too long")
                return
        try:
            got = reading.result()
        except KafkaError as exc:
            self._off(f"reading them failed: {exc!r}")
            return
        for tp, om in got.items():
            if om is not None and om.offset is not None and om.metadata == self.rules:
                self.marks[tp] = om.offset
        if any(tp in self.marks for tp in tps):
            log.info("%s table: rejected records below offsets %s were dead-lettered before; not sent again",
                     self.table, ", ".join(f"{tp.partition}@{self.marks[tp]}" for tp in tps if tp in self.marks))

    def fresh(self, tp: TopicPartition, offset: int) -> bool:
        """Whether a rejected record at ``offset`` is to be dead-lettered (not below the mark)."""
        return offset >= self.marks.get(tp, 0)

    def sent(self, future: Any) -> None:
        """A letter on its way (``producer.send``'s future; None: nothing to watch)."""
        if self.on and future is not None:
            self._letters.append(future)

    def read(self, tp: TopicPartition, first: int, next_offset: int) -> None:
        """The feed applied ``tp``'s records from ``first`` up to ``next_offset``. Offsets that
        go back mean the topic was made again: its old mark says nothing of the new records,
        and no mark is committed for the rest of the run (one may be on its way)."""
        if first < self.read_to.get(tp, 0):
            self.marks.pop(tp, None)
            if self.on:
                self._off(f"the offsets of partition {tp.partition} went back (the topic made again?)")
        self.read_to[tp] = next_offset

    def save(self) -> None:
        """Called at every round of the feed: takes the outcome of a commit on its way, or
        starts one (every ``every_s``) of the offsets read so far, once every letter sent
        before them is acknowledged."""
        if not self.on or not self._take_commit():
            return
        now = self.clock()
        if now - self._tried < self.every_s:
            return
        self._tried = now
        stale = now - self._committed >= RECOMMIT_S
        offsets = {tp: off for tp, off in self.read_to.items() if stale or off > self.marks.get(tp, 0)}
        if not offsets:
            return
        n = len(self._letters)
        if not all(f.is_done for f in self._letters):
            return
        failed = next((f for f in self._letters if f.failed()), None)
        if failed is not None:
            self._off(f"a dead letter was not delivered ({failed.exception!r})")
            return
        consumer = self._consumer()
        commit = {tp: OffsetAndMetadata(off, self.rules, -1) for tp, off in offsets.items()}
        self._saving = (OnThread(lambda: consumer.commit(commit, timeout_ms=WAIT_MS), f"{self.table}-table-marks"),
                        offsets, n)

    def _take_commit(self) -> bool:
        """The outcome of the commit on its way, taken once it is done; False while it runs."""
        if self._saving is None:
            return True
        saving, offsets, n = self._saving
        if not saving.done.is_set():
            return False
        self._saving = None
        try:
            saving.result()
        except KafkaError as exc:
            self._failures += 1
            if not exc.retriable or self._failures >= MAX_FAILURES:
                self._off(f"committing them failed: {exc!r}")
            return self.on
        if not self.on:  # turned off while it ran
            return False
        self._failures = 0
        self.marks.update(offsets)
        del self._letters[:n]
        self._committed = self.clock()
        return True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _off(self, why: str) -> None:
        self.on = False
        self._letters = []
        log.warning("%s table: the marks of what was dead-lettered (consumer group %s) are off, %s: a restart sends "
                    "this table's rejected records to the dead-letter topic again", self.table, self.group, why)
