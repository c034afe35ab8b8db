"""The learners' hashed clean features are the feature dicts River learners see, hashed.

``hash_clean`` hashes a batch a column at a time when its impressions share one layout and
one at a time otherwise; either way every row must hold the columns and values that
``hash_rows(clean_features(...))`` gives, or the fast learners and the per-event ones would
learn from different features.
"""

from __future__ import annotations

import random

import msgspec
import numpy as np
import pytest

from stream_lis.events import Impression
from stream_lis.features import _hash_columns, clean_features, hash_clean, hash_rows

BITS = 18
CROSSES = [["device", "item"], ["user", "segment"], ["missing", "item"]]


def _imp(k: int, rng: random.Random, features: dict[str, str], dense: dict[str, float] | None = None,
         score: float | None = 0.25) -> Impression:
    return Impression(impression_id=f"i{k}", ts=k, user_id=f"u{rng.randrange(50)}", item_id=f"ité{rng.randrange(30)}",
                      experiment="e", arm="a", score=score, features=features, dense=dense or {})


def _rows(X) -> list[list[tuple[int, float]]]:
    return [sorted(zip(X.indices[X.indptr[r]:X.indptr[r + 1]].tolist(), X.data[X.indptr[r]:X.indptr[r + 1]].tolist()))
            for r in range(X.n_rows)]


def _reference(imps: list[Impression]):
    return hash_rows([clean_features(i, CROSSES) for i in imps], BITS)


def _uniform(n: int, seed: int) -> list[Impression]:
    rng = random.Random(seed)
    return [_imp(k, rng, {"device": rng.choice(["ios", "web"]), "segment": f"s{rng.randrange(4)}"},
                 {"price": rng.random() * 10}, rng.random()) for k in range(n)]


def test_a_batch_of_one_layout_is_hashed_by_column_exactly_as_its_dicts() -> None:
    imps = _uniform(300, 1)
    X, R = _hash_columns(imps, CROSSES, BITS), _reference(imps)
    assert X is not None  # the column path was taken
    assert X.indptr.tolist() == R.indptr.tolist()
    assert X.indices.tolist() == R.indices.tolist()
    assert np.allclose(X.data, R.data, rtol=0, atol=1e-12)


def test_a_feature_named_like_a_built_in_context_field_wins_in_crosses_both_ways() -> None:
    rng = random.Random(2)
    imps = [_imp(k, rng, {"user": f"override{k % 3}", "segment": "s1", "device": "ios"}) for k in range(20)]
    assert _hash_columns(imps, CROSSES, BITS) is not None
    assert _rows(hash_clean(imps, CROSSES, BITS)) == _rows(_reference(imps))


@pytest.mark.parametrize("change", ["order", "missing", "extra", "score_none", "first_unscored", "dense", "other_name"])
def test_mixed_layouts_give_the_same_rows(change: str) -> None:
    imps = _uniform(64, 3)
    rng = random.Random(4)
    k = 17
    f = dict(imps[k].features)
    if change == "order":
        imps[k] = msgspec.structs.replace(imps[k], features=dict(reversed(list(f.items()))))
    elif change == "missing":
        f.pop("segment")
        imps[k] = msgspec.structs.replace(imps[k], features=f)
    elif change == "extra":
        imps[k] = msgspec.structs.replace(imps[k], features={**f, "campaign": "c9"})
    elif change == "score_none":
        imps[k] = msgspec.structs.replace(imps[k], score=None)
    elif change == "first_unscored":
        imps = [msgspec.structs.replace(i, score=None) for i in imps]
        imps[k] = msgspec.structs.replace(imps[k], score=rng.random())
    elif change == "dense":
        imps[k] = msgspec.structs.replace(imps[k], dense={})
    else:  # as many names as the others, one of them another
        f.pop("segment")
        imps[k] = msgspec.structs.replace(imps[k], features={**f, "campaign": "c1"})
    if change != "order":
        assert _hash_columns(imps, CROSSES, BITS) is None  # the row-wise path
    got, want = hash_clean(imps, CROSSES, BITS), _reference(imps)
    assert got.indptr.tolist() == want.indptr.tolist()
    assert _rows(got) == [[(c, pytest.approx(v, abs=1e-12)) for c, v in row] for row in _rows(want)]


def test_batches_without_features_scores_or_crosses() -> None:
    rng = random.Random(5)
    imps = [_imp(k, rng, {}, score=None) for k in range(40)]
    for crosses in ([], CROSSES):
        got = hash_clean(imps, crosses, BITS)
        want = hash_rows([clean_features(i, crosses) for i in imps], BITS)
        assert got.indptr.tolist() == want.indptr.tolist() and got.indices.tolist() == want.indices.tolist()
        assert got.data.tolist() == want.data.tolist()
