"""The probe interface: one preference-data candidate, turned into leaked features.

A probe answers one question for a released example: *had the ranker known this piece of
preference data, which features would it have had?* Probes that use future behaviour read
it from the shared ``BehaviourLog`` restricted to the example's window ``(t, t + H]``, and
must leave out the example's own impression and click: otherwise the label itself leaks
and LIS would measure the label, not the preference data.

A probe implements either ``leaked`` (dict rows, one per example: the simple way, what a
custom probe usually does) or ``columns`` (a ``Leaked`` block for the whole release: dense
values under fixed names and categorical tokens, hashed for the learners without building
dicts: what the built-in probes do). Each is derived from the other.
"""

from __future__ import annotations

import functools
from abc import ABC
from typing import Sequence

import numpy as np

from ..features import Hashed, Row, hash_names, hash_rows, hash_tokens
from ..join import LabelledExample
from .log import BehaviourLog


class TokenRows:
    """Categorical features of a batch in CSR form, already hashed: what the compiled probes
    emit, so no token string is built or hashed per example on the hot path.

    ``hashes`` are unmasked CRC-32 column hashes of ``strings`` (as ``hash_tokens`` computes
    them); the strings are only read when dict rows are asked for.

    >>> t = TokenRows(np.array([0, 1, 1, 3]), np.array([7, 8, 9]), np.array(["a", "b", "c"], dtype=object))
    >>> t.lists(), t.take(1, 3).lists(), TokenRows.concat([t, t]).lists()[3:]
    ([['a'], [], ['b', 'c']], [[], ['b', 'c']], [['a'], [], ['b', 'c']])
    """

    __slots__ = ("indptr", "hashes", "strings")

    def __init__(self, indptr: np.ndarray, hashes: np.ndarray, strings: np.ndarray) -> None:
        self.indptr, self.hashes, self.strings = indptr, hashes, strings

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def take(self, start: int, stop: int) -> "TokenRows":
        stop = min(stop, len(self))
        s, e = int(self.indptr[start]), int(self.indptr[stop])
        return TokenRows(self.indptr[start:stop + 1] - s, self.hashes[s:e], self.strings[s:e])

    @classmethod
    def concat(cls, blocks: Sequence["TokenRows"]) -> "TokenRows":
        offsets = np.cumsum([0] + [int(b.indptr[-1]) for b in blocks[:-1]])
        indptr = np.concatenate([[0]] + [b.indptr[1:] + o for b, o in zip(blocks, offsets)]).astype(np.int64)
        return cls(indptr, np.concatenate([b.hashes for b in blocks]), np.concatenate([b.strings for b in blocks]))

    def lists(self) -> list[list[str]]:
        strings, bounds = self.strings.tolist(), self.indptr.tolist()
        return [strings[a:b] for a, b in zip(bounds, bounds[1:])]

    def hashed(self, bits: int) -> Hashed:
        return Hashed(self.indptr, self.hashes & ((1 << bits) - 1), np.ones(len(self.hashes)))


class Leaked:
    """Leaked features of a batch of examples, column-wise.

    ``values[k, j]`` is feature ``names[j]`` of example ``k`` (NaN: the example has none);
    ``tokens[k]`` lists example ``k``'s categorical features (value 1.0), or ``tokens`` is a
    ``TokenRows`` (the same, hashed). A block made from
    dict rows (``from_rows``) keeps them as they are.

    >>> b = Leaked(["fi:x"], np.array([[0.5], [np.nan]]), [["nc:item=a"], []])
    >>> b.rows()
    [{'fi:x': 0.5, 'nc:item=a': 1.0}, {}]
    >>> b.hashed(8).indptr.tolist() == hash_rows(b.rows(), 8).indptr.tolist()
    True
    """

    __slots__ = ("names", "values", "tokens", "n", "_rows")

    def __init__(self, names: Sequence[str], values: np.ndarray | None,
                 tokens: Sequence[Sequence[str]] | TokenRows | None = None, n: int | None = None) -> None:
        self.names = list(names)
        self.values = values
        self.tokens = tokens
        self.n = n if n is not None else (len(values) if values is not None else len(tokens or ()))
        self._rows: list[Row] | None = None

    @classmethod
    def from_rows(cls, rows: Sequence[Row]) -> "Leaked":
        b = cls([], None, None, n=len(rows))
        b._rows = list(rows)
        return b

    def __len__(self) -> int:
        return self.n

    def take(self, start: int, stop: int) -> "Leaked":
        """Examples ``start:stop`` of the block."""
        if self._rows is not None:
            return Leaked.from_rows(self._rows[start:stop])
        tokens = self.tokens
        if tokens is not None:
            tokens = tokens.take(start, stop) if type(tokens) is TokenRows else tokens[start:stop]
        return Leaked(self.names, None if self.values is None else self.values[start:stop], tokens,
                      n=max(0, min(stop, self.n) - start))

    @classmethod
    def concat(cls, blocks: Sequence["Leaked"]) -> "Leaked":
        """Blocks one after the other (column-wise when they share their layout)."""
        if len(blocks) == 1:
            return blocks[0]
        first = blocks[0]
        same = all(b._rows is None and b.names == first.names and (b.values is None) == (first.values is None)
                   and type(b.tokens) is type(first.tokens) for b in blocks)
        if not same:
            return cls.from_rows([r for b in blocks for r in b.rows()])
        values = None if first.values is None else np.concatenate([b.values for b in blocks])
        tokens: Sequence[Sequence[str]] | TokenRows | None = None
        if type(first.tokens) is TokenRows:
            tokens = TokenRows.concat([b.tokens for b in blocks])
        elif first.tokens is not None:
            tokens = [t for b in blocks for t in b.tokens]
        return cls(first.names, values, tokens, n=sum(b.n for b in blocks))

    def rows(self) -> list[Row]:
        """One dict per example (what River learners and custom code read)."""
        if self._rows is None:
            rows: list[Row] = [{} for _ in range(self.n)]
            if self.values is not None and self.names:
                for row, vals in zip(rows, self.values.tolist()):
                    for name, v in zip(self.names, vals):
                        if v == v:  # not NaN
                            row[name] = v
            if self.tokens is not None:
                tokens = self.tokens.lists() if type(self.tokens) is TokenRows else self.tokens
                for row, toks in zip(rows, tokens):
                    for t in toks:
                        row[t] = 1.0
            self._rows = rows
        return self._rows

    def hashed(self, bits: int) -> Hashed:
        """Same CSR rows as ``hash_rows(self.rows(), bits)``, built column-wise."""
        if self._rows is not None:
            return hash_rows(self._rows, bits)
        n = self.n
        if self.values is not None and self.names:
            present = ~np.isnan(self.values)
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(present.sum(axis=1), out=indptr[1:])
            cols = np.broadcast_to(hash_names(self.names, bits), self.values.shape)
            dense = Hashed(indptr, cols[present], self.values[present])
        else:
            dense = Hashed(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
        if self.tokens is None:
            return dense
        tokens = self.tokens.hashed(bits) if type(self.tokens) is TokenRows else hash_tokens(self.tokens, bits)
        return tokens if self.values is None else dense.concat(tokens)


class Probe(ABC):
    """Base class: subclasses set ``name`` and implement ``leaked`` or ``columns``."""

    name: str = ""

    def leaked(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> list[Row]:
        """Leaked features, one row per example, built from ``(t, t + horizon_ms]`` only."""
        if type(self).columns is Probe.columns:
            raise NotImplementedError(f"{type(self).__name__} implements neither leaked nor columns")
        return self.columns(examples, log, horizon_ms).rows()

    def columns(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> Leaked:
        """The same features as ``leaked``, as one column-wise block (the hot path)."""
        return Leaked.from_rows(self.leaked(examples, log, horizon_ms))

    def block(self, examples: Sequence[LabelledExample], log: BehaviourLog, horizon_ms: int) -> Leaked:
        """What the pipeline calls: the most specific of ``leaked`` / ``columns`` a class
        gives, so a subclass overriding ``leaked`` of a built-in probe is honoured."""
        if _defines(type(self)) == "columns":
            return self.columns(examples, log, horizon_ms)
        return Leaked.from_rows(self.leaked(examples, log, horizon_ms))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@functools.lru_cache(maxsize=None)
def _defines(cls: type) -> str | None:
    """Which of ``leaked`` / ``columns`` the class (or its nearest ancestor) implements."""
    for klass in cls.__mro__:
        if klass is Probe:
            return None
        if "leaked" in klass.__dict__:
            return "leaked"
        if "columns" in klass.__dict__:
            return "columns"
    return None
