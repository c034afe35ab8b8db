"""Compiled loops of the click probes (numba), over the click log's sorted columns.

Clicks are kept sorted by composite key ``code << TIME_BITS | (ts - base)`` (see
``ClickLog``), so the clicks of one item or user in a window ``(t, end]`` are a contiguous
slice: a binary search within the code's run (``_Sorted.starts``) finds its start, a scan its
end. Each function answers a whole release of examples in one call: a few hundred
nanoseconds per example where the Python loop took microseconds.

>>> import numpy as np
>>> comp = np.array([(1 << 40) | 5, (1 << 40) | 9, (2 << 40) | 7])
>>> int(right_in(comp, 0, 2, (1 << 40) | 5)), int(right_in(comp, 0, 2, (1 << 40) | 100))
(1, 2)
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..compiled import JIT
from .window_index import TIME_BITS

_JIT = JIT(__file__)
_I = "int64[::1]"


@njit(f"int64({_I}, int64, int64, int64)", **_JIT)
def right_in(a, lo, hi, x):  # pragma: no cover
    """``right`` within ``a[lo:hi]`` (one code's run: a handful of steps, not a search of the
    whole log per window)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(f"void({_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, int64, int64, int64, "
      f"int64[:, ::1], {_I})", **_JIT)
def co_click(item_comp, item_user, item_serial, item_starts, user_comp, user_item, user_serial, user_starts, items,
             t_rel, end_rel, own, n_items, n_users, max_users, out_top, out_users):  # pragma: no cover
    """For each example: the users who clicked its item in ``(t, end]`` (its own click left
    out; at most ``max_users``, first clickers first), and the items those users clicked in
    the same window, most co-clicked first (ties: first seen first) into ``out_top[r]``
    (``-1`` past the last); ``out_users[r]``: how many users (0: none, ``out_top`` untouched).

    ``items[r] < 0``: the example's item has no click in the log. ``n_users``: user codes
    are below it (a user is told seen by a mark, not by a scan of the users so far: on a dense
    stream an item's window holds dozens of clickers). ``*_starts[c]``: where code ``c``'s run
    begins in its sorted columns (``_Sorted.starts``)."""
    top_k = out_top.shape[1]
    cnt = np.zeros(n_items, np.int64)
    touched = np.empty(n_items + 1, np.int64)  # + 1: written ahead of the count (see below)
    users = np.empty(max_users, np.int64)
    marked = np.zeros(n_users, np.bool_)
    best = np.empty(top_k, np.int64)
    for r in range(len(items)):
        it = items[r]
        if it < 0:
            continue
        key = it << TIME_BITS
        end = key | end_rel[r]
        nu = 0
        # One search for a window's start; its end is found by the scan (a few clicks on).
        stop = item_starts[it + 1]
        j = right_in(item_comp, item_starts[it], stop, key | t_rel[r])
        while j < stop and item_comp[j] <= end:
            if item_serial[j] != own[r]:  # the example's own click is its label
                u = item_user[j]
                if not marked[u]:
                    marked[u] = True
                    users[nu] = u
                    nu += 1
                    if nu == max_users:
                        break
            j += 1
        for q in range(nu):
            marked[users[q]] = False
        if nu == 0:
            continue
        m = 0
        for q in range(nu):
            u = users[q]
            ukey = u << TIME_BITS
            uend = ukey | end_rel[r]
            stop = user_starts[u + 1]
            j = right_in(user_comp, user_starts[u], stop, ukey | t_rel[r])
            # Without branches (half the time here was mispredicted ones): an item is written
            # at ``touched[m]`` always and kept by moving ``m`` on when it is new; the
            # example's own item is counted too and passed over below.
            while j < stop and user_comp[j] <= uend:
                o = user_item[j]
                touched[m] = o
                m += cnt[o] == 0
                cnt[o] += 1
                j += 1
        # The top_k by count in one pass, by insertion into ``best``; a later item displaces
        # an equal one never (first seen first).
        nb = 0
        for q in range(m):
            o = touched[q]
            if o == it:
                continue
            c = cnt[o]
            if nb == top_k and c <= cnt[best[nb - 1]]:
                continue
            p = nb if nb < top_k else top_k - 1
            while p > 0 and cnt[best[p - 1]] < c:
                best[p] = best[p - 1]
                p -= 1
            best[p] = o
            if nb < top_k:
                nb += 1
        for s in range(nb):
            out_top[r, s] = best[s]
        for q in range(m):
            cnt[touched[q]] = 0
        out_users[r] = nu


@njit(f"void({_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I})", **_JIT)
def next_click(user_comp, user_item, user_serial, user_starts, users, t_rel, end_rel, own, out_item):  # pragma: no cover
    """For each example: the item of its user's first click in ``(t, end]`` other than its own
    (``out_item[r]``; untouched when there is none). ``users[r] < 0``: a user with no click."""
    for r in range(len(users)):
        u = users[r]
        if u < 0:
            continue
        key = u << TIME_BITS
        end = key | end_rel[r]
        stop = user_starts[u + 1]
        j = right_in(user_comp, user_starts[u], stop, key | t_rel[r])
        while j < stop and user_comp[j] <= end:
            if user_serial[j] != own[r]:
                out_item[r] = user_item[j]
                break
            j += 1
