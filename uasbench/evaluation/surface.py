"""Average symmetric surface distance (ASSD) through medpy, with explicit empty-mask rules.

medpy's ``assd`` (GPL-3.0, called, not copied) raises RuntimeError when either mask is empty. The
rules used instead:

* both empty: 0.0 (the surfaces agree perfectly);
* exactly one empty: a penalty equal to the image diagonal, sqrt(H^2 + W^2), the largest distance
  two pixels of the slice can have. Excluding such slices would reward methods that predict nothing
  on hard slices; the penalty keeps them in the mean. Every use of it is counted in the results.

ASSD is the mean of the two directed mean surface distances, as in the official code's copy of an
older medpy. medpy 0.5.2's own ``assd`` pools both directions' distances before averaging, which
weighs the longer surface more; so ``asd`` is called twice here instead.

Distances are in pixels (spacing 1, connectivity 1 as in the official code), like the paper's
Table 1; at 128x128 one pixel is 1.875 mm of the 240 mm BraTS field of view.
"""
from __future__ import annotations

import numpy as np
from medpy.metric.binary import asd

BOTH_EMPTY = "both_empty"
ONE_EMPTY = "one_empty_penalty"


def assd(pred: np.ndarray, truth: np.ndarray) -> tuple[float, str | None]:
    """ASSD of one 2-D slice in pixels, and the empty-mask rule applied (None when none was)."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    has_pred, has_truth = pred.any(), truth.any()
    if not has_pred and not has_truth:
        return 0.0, BOTH_EMPTY
    if has_pred != has_truth:
        return float(np.hypot(*pred.shape)), ONE_EMPTY
    return float(np.mean([asd(pred, truth, 1.0, 1), asd(truth, pred, 1.0, 1)])), None
