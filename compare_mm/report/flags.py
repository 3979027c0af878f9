"""Which (condition, fit) pairs of a study are flagged: a non-convergence or singular rate ≥ 10 %; and
which fits the Monte Carlo figures leave out (fewer than :data:`MIN_DRAWN` replicates per condition).

Tables mark a flagged pair's rows with † and figures draw its points hollow (:mod:`.quality` is the section
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




#: fits with fewer replicates per condition than this (a cross-check capped by ``replicates:``) are left out
#: of the Monte Carlo comparison figures: at n = 10 a coverage's ±2 MCSE bar spans ~0.3, wider than every
#: difference the figure compares, and it stretches the axis; they stay in the tables
MIN_DRAWN = 30


def drop_sparse(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``rows`` without the fits whose largest n_ok over conditions is < :data:`MIN_DRAWN`, and the caption
    sentence naming them (empty when none is left out)."""
    if rows.empty or "n_ok" not in rows.columns:
        return rows, ""
    n = pd.to_numeric(rows["n_ok"], errors="coerce").groupby(rows["fit"]).max()
    sparse = n[n < MIN_DRAWN]
    if sparse.empty:
        return rows, ""
    names = ", ".join(f"{f} ({int(k)} replicate{'s' if k != 1 else ''} per condition)" for f, k in sparse.items())
    return rows[~rows["fit"].isin(sparse.index)], (
        f" Not drawn, because fewer than {MIN_DRAWN} replicates make ±2 MCSE bars wider than the differences "
        f"compared: {names}. The tables list every fit.")


__all__ = ["HIGH_RATE", "MARK", "MIN_DRAWN", "drop_sparse", "flagged_pairs", "is_flagged"]
