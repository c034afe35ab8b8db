"""Feature sets of the learners, as plain dicts and as hashed sparse batches.

Each learner of an arm sees a *feature set*: ``clean`` (what the production ranker has at
impression time), ``clean + leaked[probe]`` or ``clean + embedding``. Features are
``{name: value}`` dicts, the form every River learner takes; categorical values are
``"name=value": 1.0``. The vectorised learners take the same rows hashed into a CSR matrix,
built once per micro-batch and shared by all learners (``hash_rows``); the hash is CRC-32,
stable across processes so a checkpointed model means the same thing after a restart.

>>> from stream_lis.events import Impression
>>> imp = Impression(impression_id="i", ts=0, user_id="u1", item_id="a", experiment="e",
...                  arm="c", score=0.5, features={"device": "ios"})
>>> sorted(clean_features(imp, crosses=[["device", "item"]]).items())
[('f:device=ios', 1.0), ('i=a', 1.0), ('score_logit', 0.0), ('u=u1', 1.0), ('x:device=ios|item=a', 1.0)]
>>> X = hash_rows([{"a": 1.0}, {"a": 2.0, "b": 1.0}], bits=8)
>>> X.n_rows, X.indptr.tolist(), X.data.tolist()
(2, [0, 1, 3], [1.0, 2.0, 1.0])
>>> X.concat(hash_rows([{"c": 5.0}, {}], bits=8)).data.tolist()
[1.0, 5.0, 2.0, 1.0]
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Iterable, NamedTuple, Sequence
from zlib import crc32

import numpy as np

from .events import Impression

Row = dict[str, float]

_LOGIT_CLIP = 1e-6


def logit(p: float) -> float:
    p = min(max(p, _LOGIT_CLIP), 1 - _LOGIT_CLIP)
    return math.log(p / (1 - p))


def logits(p: np.ndarray) -> np.ndarray:
    """``logit`` of every value of ``p``, clipped alike (np.maximum/np.minimum: np.clip's
    Python wrapper costs more than the clipping on a micro-batch)."""
    p = np.minimum(np.maximum(p, _LOGIT_CLIP), 1 - _LOGIT_CLIP)
    return np.log(p / (1 - p))


def clean_features(imp: Impression, crosses: Sequence[Sequence[str]] = ()) -> Row:
    """What the production ranker knows at impression time: ids, context, its own score."""
    row: Row = {"u=" + imp.user_id: 1.0, "i=" + imp.item_id: 1.0}
    for k, v in imp.features.items():
        row[f"f:{k}={v}"] = 1.0
    for k, v in imp.dense.items():
        row["d:" + k] = v
    if imp.score is not None:
        row["score_logit"] = logit(imp.score)
    if crosses:
        ctx = {"user": imp.user_id, "item": imp.item_id, **imp.features}
        for a, b in crosses:
            if a in ctx and b in ctx:
                row[f"x:{a}={ctx[a]}|{b}={ctx[b]}"] = 1.0
    return row


def embedding_features(imp: Impression) -> Row:
    """The arm's MLLM item representation as dense features (empty when the event has none)."""
    if not imp.embedding:
        return {}
    return {_EMB_NAMES[k] if k < len(_EMB_NAMES) else f"e:{k}": v for k, v in enumerate(imp.embedding)}


_EMB_NAMES = [f"e:{k}" for k in range(256)]
_hash_cache: dict[str, int] = {}
#: Feature names whose hash is cached. Names derived from ids (a probe's ``nc:item=...``)
#: keep coming on an endless stream, so a full cache is emptied and warms up again: memory
#: stays bounded and the working set (recent items and users) is back within a few batches.
_NAME_CACHE_MAX = 100_000


def _index(name: str, mask: int) -> int:
    h = _hash_cache.get(name)
    if h is None:
        h = _put(name)
    return h & mask


class Hashed(NamedTuple):
    """Rows of hashed features in CSR layout; a row may repeat a column (values add up)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def row_ids(self) -> np.ndarray:
        """The row of every stored value."""
        return np.repeat(np.arange(self.n_rows), np.diff(self.indptr))

    def concat(self, other: "Hashed") -> "Hashed":
        """Row-wise concatenation (row r = self's row r then other's), vectorised."""
        na, nb = np.diff(self.indptr), np.diff(other.indptr)
        indptr = np.zeros(len(na) + 1, dtype=np.int64)
        np.cumsum(na + nb, out=indptr[1:])
        ra, rb = self.row_ids(), other.row_ids()
        pos_a = indptr[ra] + (np.arange(len(self.indices)) - self.indptr[ra])
        pos_b = indptr[rb] + na[rb] + (np.arange(len(other.indices)) - other.indptr[rb])
        indices = np.empty(indptr[-1], dtype=np.int64)
        data = np.empty(indptr[-1], dtype=np.float64)
        indices[pos_a], indices[pos_b] = self.indices, other.indices
        data[pos_a], data[pos_b] = self.data, other.data
        return Hashed(indptr, indices, data)


def _put(name: str) -> int:
    h = crc32(name.encode())
    if len(_hash_cache) >= _NAME_CACHE_MAX:
        _hash_cache.clear()
    _hash_cache[name] = h
    return h


def hash_clean(imps: Sequence[Impression], crosses: Sequence[Sequence[str]], bits: int) -> Hashed:
    """``hash_rows([clean_features(imp, crosses) for imp in imps], bits)``, without the dicts.

    The hot path. A batch whose impressions all have the same fields (the same feature and
    dense names in the same order, a score or none: one producer's events) is hashed a
    column at a time (``_hash_columns``): a field's values are looked up in its cache with one
    C-level ``map`` per batch, and the rows are one 2-D array. Any other batch takes one pass
    over the impressions. Both give the columns in the order ``clean_features`` names them.

    >>> from stream_lis.events import Impression
    >>> imps = [Impression(impression_id="i", ts=0, user_id="u1", item_id="a", experiment="e", arm="c",
    ...                    score=0.5, features={"device": "ios"}, dense={"price": 2.0})] * 2
    >>> X, Y = hash_clean(imps, [["device", "item"]], 12), hash_rows([clean_features(i, [["device", "item"]]) for i in imps], 12)
    >>> all((X.indptr == Y.indptr).all() and (X.indices == Y.indices).all() and (X.data == Y.data).all() for _ in [0])
    True
    """
    if len(imps) > 1:
        X = _hash_columns(imps, crosses, bits)
        if X is not None:
            return X
    return _hash_rowwise(imps, crosses, bits)


def _hash_rowwise(imps: Sequence[Impression], crosses: Sequence[Sequence[str]], bits: int) -> Hashed:
    """``hash_clean`` one impression at a time: any mix of fields."""
    get = _hash_cache.get
    users, items, feats, dense = _FIELD_CACHE
    indices: list[int] = []
    indptr = [0]
    add_i, end_row = indices.append, indptr.append
    # Values other than 1.0 (dense features, the score's logit) are patched in afterwards, by
    # position: the loop appends column hashes only.
    v_pos: list[int] = []
    v_val: list[float] = []
    s_pos: list[int] = []
    s_val: list[float] = []
    n = 0
    # Per-field caches keyed by the raw value: no feature-name string is built for a value
    # seen before (most of them, on a live stream).
    for imp in imps:
        h = users.get(imp.user_id)
        if h is None:
            h = users[imp.user_id] = _field_hash(users, "u=" + imp.user_id)
        add_i(h)
        h = items.get(imp.item_id)
        if h is None:
            h = items[imp.item_id] = _field_hash(items, "i=" + imp.item_id)
        add_i(h)
        n += 2
        if imp.features:
            for k, v in imp.features.items():
                fk = feats.get(k)
                if fk is None:
                    fk = _feature_cache(feats, k)
                h = fk.get(v)
                if h is None:
                    h = fk[v] = _field_hash(fk, f"f:{k}={v}")
                add_i(h)
            n += len(imp.features)
        if imp.dense:
            for k, v in imp.dense.items():
                h = dense.get(k)
                if h is None:
                    h = dense[k] = _field_hash(dense, "d:" + k)
                add_i(h)
                v_pos.append(n)
                v_val.append(v)
                n += 1
        if imp.score is not None:
            add_i(_SCORE_HASH)
            s_pos.append(n)
            s_val.append(imp.score)
            n += 1
        if crosses:
            ctx = {"user": imp.user_id, "item": imp.item_id, **imp.features}
            for a, b in crosses:
                if a in ctx and b in ctx:
                    name = f"x:{a}={ctx[a]}|{b}={ctx[b]}"
                    h = get(name)
                    add_i(h if h is not None else _put(name))
                    n += 1
        end_row(n)
    mask = (1 << bits) - 1
    data = np.ones(n)
    if v_pos:
        data[v_pos] = v_val
    if s_pos:
        data[s_pos] = logits(np.array(s_val))
    return Hashed(np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64) & mask, data)


def _cached(cache: dict, values: list, name: Callable[[Any], str]) -> list[int]:
    """The column hash of every value, from ``cache`` (value -> hash of ``name(value)``),
    filling it for values not seen before."""
    hs = list(map(cache.get, values))
    if None in hs:
        for k, (h, v) in enumerate(zip(hs, values)):
            if h is None:
                h = cache.get(v)
                hs[k] = h if h is not None else cache.setdefault(v, _field_hash(cache, name(v)))
    return hs


def _hash_columns(imps: Sequence[Impression], crosses: Sequence[Sequence[str]], bits: int) -> Hashed | None:
    """``hash_clean`` of a batch whose impressions share one layout, a column at a time;
    ``None`` for any other batch.

    One layout: every impression has the first one's feature and dense names (no more, no
    fewer), and all have a score or none do. A row's columns come in the first impression's
    name order, which only changes the order a learner adds up a row's terms in.
    """
    first = imps[0]
    fnames, dnames, scored = tuple(first.features), tuple(first.dense), first.score is not None
    n = len(imps)
    fdicts = [imp.features for imp in imps]
    if sum(map(len, fdicts)) != n * len(fnames):
        return None
    ddicts = [imp.dense for imp in imps]
    if sum(map(len, ddicts)) != n * len(dnames):
        return None
    scores = [imp.score for imp in imps]
    if (None in scores) if scored else scores.count(None) != n:
        return None
    try:  # a name missing from one impression (with as many names as the first): KeyError
        fvalues = {k: [f[k] for f in fdicts] for k in fnames}
        dvalues = [[d[k] for d in ddicts] for k in dnames]
    except KeyError:
        return None
    users, items, feats, dense = _FIELD_CACHE
    user_ids = [imp.user_id for imp in imps]
    item_ids = [imp.item_id for imp in imps]
    cols: list[Any] = [_cached(users, user_ids, "u=".__add__), _cached(items, item_ids, "i=".__add__)]
    values: dict[str, list] = {"user": user_ids, "item": item_ids}
    for k in fnames:
        fk = feats.get(k)
        if fk is None:
            fk = _feature_cache(feats, k)
        vs = values[k] = fvalues[k]
        cols.append(_cached(fk, vs, f"f:{k}=".__add__))
    dense_at = len(cols)
    for k in dnames:
        h = dense.get(k)
        if h is None:
            h = dense[k] = _field_hash(dense, "d:" + k)
        cols.append(np.full(n, h, dtype=np.int64))
    score_at = len(cols)
    if scored:
        cols.append(np.full(n, _SCORE_HASH, dtype=np.int64))
    for a, b in crosses or ():
        va, vb = values.get(a), values.get(b)
        if va is None or vb is None:
            continue
        prefix = f"x:{a}="
        cache = _CROSS_CACHE.setdefault((a, b), {})
        cols.append(_cached(cache, list(zip(va, vb)), lambda ab, p=prefix, b=b: f"{p}{ab[0]}|{b}={ab[1]}"))
    m = len(cols)
    indices = np.empty((n, m), dtype=np.int64)
    for j, c in enumerate(cols):
        indices[:, j] = c
    data = np.ones((n, m))
    for j, vs in enumerate(dvalues):
        data[:, dense_at + j] = vs
    if scored:
        data[:, score_at] = logits(np.array(scores, dtype=np.float64))
    return Hashed(np.arange(0, n * m + 1, m, dtype=np.int64), indices.ravel() & ((1 << bits) - 1), data.ravel())


#: user id / item id / feature -> value / dense name -> column hash (unmasked).
_FIELD_CACHE: tuple[dict[str, int], dict[str, int], dict[str, dict[str, int]], dict[str, int]] = ({}, {}, {}, {})
#: Entries per field cache; past it a cache is cleared (a stream of ever-new user ids must
#: not grow memory without end; hashing is only slower until it warms up again).
_FIELD_CACHE_MAX = 100_000
#: Per cross (a, b): (value of a, value of b) -> column hash (``_hash_columns``).
_CROSS_CACHE: dict[tuple[str, str], dict[tuple[str, str], int]] = {}


def _feature_cache(feats: dict[str, dict[str, int]], name: str) -> dict[str, int]:
    """A new value -> hash cache for feature ``name`` (the caches of every feature name are
    cleared together once there are as many names as a field cache holds values)."""
    if len(feats) >= _FIELD_CACHE_MAX:
        feats.clear()
    fk = feats[name] = {}
    return fk


def _field_hash(cache: dict, name: str) -> int:
    if len(cache) >= _FIELD_CACHE_MAX:
        cache.clear()
    return crc32(name.encode())


def embedding_lengths(imps: Sequence[Impression]) -> tuple[list, np.ndarray]:
    """Each impression's vector (``()`` when it has none) and its length."""
    embs = [imp.embedding or () for imp in imps]
    return embs, np.fromiter(map(len, embs), dtype=np.int64, count=len(embs))


def hash_embeddings(imps: Sequence[Impression], bits: int, lengths: tuple[list, np.ndarray] | None = None) -> Hashed:
    """``hash_rows([embedding_features(imp) for imp in imps], bits)``: the embedding's
    coordinates are fixed columns, so this is a few array operations per micro-batch.
    ``lengths``: ``embedding_lengths(imps)``, when the caller has it already."""
    embs, lens = lengths if lengths is not None else embedding_lengths(imps)
    indptr = np.zeros(len(imps) + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    total = int(indptr[-1])
    if total == 0:
        return Hashed(indptr, np.zeros(0, dtype=np.int64), np.zeros(0))
    data = np.fromiter(itertools.chain.from_iterable(embs), dtype=np.float64, count=total)
    dims = int(lens.max())
    cols = _emb_cols(dims) & ((1 << bits) - 1)
    if total == dims * len(embs):  # one length for all (the usual case): the columns repeat
        return Hashed(indptr, np.tile(cols[:dims], len(embs)), data)
    pos = np.arange(total) - np.repeat(indptr[:-1], lens)  # coordinate of each value
    return Hashed(indptr, cols[pos], data)


def _emb_cols(dims: int) -> np.ndarray:
    global _EMB_COLS
    if len(_EMB_COLS) < dims:
        _EMB_COLS = np.array([crc32((_EMB_NAMES[k] if k < len(_EMB_NAMES) else f"e:{k}").encode())
                              for k in range(dims)], dtype=np.int64)
    return _EMB_COLS


_EMB_COLS = np.zeros(0, dtype=np.int64)
_SCORE_HASH = crc32(b"score_logit")


def hash_names(names: Sequence[str], bits: int) -> np.ndarray:
    """Columns of feature names (a probe's fixed dense features)."""
    get = _hash_cache.get
    return np.array([h if (h := get(n)) is not None else _put(n) for n in names], dtype=np.int64) & ((1 << bits) - 1)


def hash_tokens(tokens: Sequence[Sequence[str]], bits: int) -> Hashed:
    """CSR rows of categorical features (value 1.0), one list of names per row."""
    get = _hash_cache.get
    indptr = [0]
    indices: list[int] = []
    add = indices.append
    for toks in tokens:
        for n in toks:
            h = get(n)
            add(h if h is not None else _put(n))
        indptr.append(len(indices))
    return Hashed(np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64) & ((1 << bits) - 1),
                  np.ones(len(indices)))


def hash_rows(rows: Iterable[Row], bits: int) -> Hashed:
    """Hash feature dicts into CSR rows over ``2**bits`` columns."""
    mask = (1 << bits) - 1
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for row in rows:
        for name, value in row.items():
            indices.append(_index(name, mask))
            data.append(value)
        indptr.append(len(indices))
    return Hashed(np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64),
                  np.asarray(data, dtype=np.float64))
