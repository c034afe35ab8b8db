"""Statistics for comparing learners online.

AUC point estimates, DeLong paired confidence intervals for AUC differences
(with a bootstrap cross-check), and a bounded-memory streaming AUC.

>>> from stream_lis.stats import auc
>>> auc([0, 1], [0.2, 0.9])
1.0
"""

from stream_lis.stats.auc import (
    BinnedAUC,
    PairedAUC,
    auc,
    bootstrap_paired_diff,
    delong_many,
    delong_paired,
    delong_single,
)

__all__ = [
    "BinnedAUC",
    "PairedAUC",
    "auc",
    "bootstrap_paired_diff",
    "delong_many",
    "delong_paired",
    "delong_single",
]
