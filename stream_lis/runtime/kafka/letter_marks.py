"""How far a side topic's rejected records are on the dead-letter topic, kept across starts.

A side table's feed reads its topic from the beginning at every start, on every worker, and
rejects the same bad records each time (compaction keeps a key's latest record). Each of them
was dead-lettered again by every worker at every start: the dead-letter topic filled with
copies. The feed now commits, per partition of its topic, the offset below which every
rejected record's dead letter is on the broker, in a consumer group of its own
(``<group_id>-tables``: offsets only, it never joins it); a record below the mark is counted
and tracked as before (``stream_lis_table_records``, ``rejected_keys``) but not sent again.

Dead letters stay at least once: a mark is committed only once every dead letter sent before
it was acknowledged; workers starting together may each send a record past the marks; a mark
moved back by a slower worker only has letters sent again. Where the deployment may not use
the group (no ACL for it) or a letter failed for good, the marks are left off, said once, and
the letters repeat at each start as before.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

__all__ = ["LetterMarks"]

log = logging.getLogger("stream_lis.tables")

T = TypeVar("T")

#: ``asked(what, call)``: a client call waited for while the caller's loop goes on (the feed's
#: ``_asked``: retriable errors asked again, others raised).
Asked = Callable[[str, Callable[[], T]], T]


class LetterMarks:
    """The marks of one feed's topic, read at its start and moved as its letters are delivered."""

    def __init__(self, consumer: Any, asked: Asked, table: str, group: str | None) -> None:
        """``consumer``: the feed's, made with ``group_id=group``; ``group`` None: no marks."""
        self.consumer, self.asked, self.table, self.group = consumer, asked, table, group
        self.on = group is not None
        #: partition -> offset below which its letters are on the broker (committed)
        self.marks: dict[TopicPartition, int] = {}
        #: partition -> offset after the last record the feed applied
        self.read_to: dict[TopicPartition, int] = {}
        self._letters: list[Any] = []  # futures of the letters sent since the last mark

    def load(self, tps: list[TopicPartition]) -> None:
        """The marks committed for these partitions (the feed's start; partitions added later)."""
        if not self.on:
            return
        try:
            got = self.asked("dead-letter marks", lambda: {tp: self.consumer.committed(tp) for tp in tps})
        except KafkaError as exc:
            self._off(f"reading them failed: {exc!r}")
            return
        self.marks.update({tp: off for tp, off in got.items() if off is not None})
        if any(self.marks.get(tp) for tp in tps):
            log.info("%s table: rejected records below offsets %s were dead-lettered before; not sent again",
                     self.table, ", ".join(f"{tp.partition}@{self.marks[tp]}" for tp in tps if tp in self.marks))

    def fresh(self, tp: TopicPartition, offset: int) -> bool:
        """Whether a rejected record at ``offset`` is to be dead-lettered (not below the mark)."""
        return offset >= self.marks.get(tp, 0)

    def sent(self, future: Any) -> None:
        """A letter on its way (``producer.send``'s future; None: nothing to watch)."""
        if self.on and future is not None:
            self._letters.append(future)

    def read(self, tp: TopicPartition, next_offset: int) -> None:
        self.read_to[tp] = next_offset

    def save(self) -> None:
        """Commit the offsets read so far, once every letter sent before them is delivered
        (not yet: next time)."""
        if not self.on:
            return
        moved = {tp: off for tp, off in self.read_to.items() if off > self.marks.get(tp, 0)}
        if not moved or not all(f.is_done for f in self._letters):
            return
        failed = next((f for f in self._letters if f.failed()), None)
        if failed is not None:
            self._off(f"a dead letter was not delivered ({failed.exception!r})")
            return
        try:
            self.asked("dead-letter marks", lambda: self.consumer.commit(
                {tp: OffsetAndMetadata(off, "", -1) for tp, off in moved.items()}))
        except KafkaError as exc:
            self._off(f"committing them failed: {exc!r}")
            return
        self.marks.update(moved)
        self._letters = []

    def _off(self, why: str) -> None:
        self.on = False
        self._letters = []
        log.warning("%s table: the marks of what was dead-lettered (consumer group %s) are off, %s: a restart sends "
                    "this table's rejected records to the dead-letter topic again", self.table, self.group, why)
