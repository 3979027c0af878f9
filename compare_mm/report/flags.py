"""Which (condition, fit) pairs of a study are flagged: a non-convergence or singular rate ≥ 10 %.

Tables mark such a pair's rows with † and figures draw its points hollow (:mod:`.quality` is the section
that explains it; :mod:`.figures` and :mod:`.tables` only read the flags, so they live here, below both).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .load import StudyOutputs

#: a non-convergence or singular rate at or above this flags the (condition, fit)
HIGH_RATE = 0.10
#: the marker a flagged fit carries in tables
MARK = "†"

def flagged_pairs(study: StudyOutputs, threshold: float = HIGH_RATE) -> set[tuple[int, str]]:
    """(condition index, fit) pairs whose non-convergence or singular rate is ≥ ``threshold``."""
    s = study.summary
    if "condition" not in s.columns:
        return set()
    hit = s[s["metric"].isin(["nonconvergence_rate", "singular_rate"]) & (s["value"] >= threshold)]
    return {(int(c), str(f)) for c, f in zip(hit["condition"], hit["fit"]) if pd.notna(c)}


def is_flagged(frame: pd.DataFrame, flags: set[tuple[int, str]]) -> np.ndarray:
    """Boolean array: rows of a summary slice whose (condition, fit) is flagged."""
    if not flags or "condition" not in frame.columns:
        return np.zeros(len(frame), bool)
    return np.array([(int(c), str(f)) in flags if pd.notna(c) else False
                     for c, f in zip(frame["condition"], frame["fit"])], bool)


__all__ = ["HIGH_RATE", "MARK", "flagged_pairs", "is_flagged"]
