"""Shrinkage metrics of a study's group rows (one row per replicate × group × effect): the pooled
within-replicate shrinkage slope, the MSE of predicted and raw effects and their ratio, each with its MCSE
(formulas in :mod:`compare_mm.study.summarise`), and the group rows held as arrays so each (condition, fit)'s
rows are found once."""

from __future__ import annotations

from typing import Any

import numpy as np

from .mcse import mean_mcse, ratio_of_means


def group_metrics(g) -> list[tuple]:
    """Shrinkage metrics from group rows of one (condition, fit, effect): a frame, or a dict of the arrays
    ``ok``, ``estimate``, ``raw``, ``truth`` and ``replicate`` (the rows in stored order)."""
    okc = np.asarray(g["ok"], bool)
    est, raw_all = np.asarray(g["estimate"], float), np.asarray(g["raw"], float)
    keep = okc & np.isfinite(est) & np.isfinite(raw_all)
    if not keep.any():
        return []
    raw = raw_all[keep]
    pred = est[keep]
    u = np.asarray(g["truth"], float)[keep]
    rep = np.asarray(g["replicate"])[keep]
    _, inv = np.unique(rep, return_inverse=True)
    k = inv.max() + 1
    cnt = np.bincount(inv, minlength=k)
    rc = raw - (np.bincount(inv, raw, k) / cnt)[inv]
    pc = pred - (np.bincount(inv, pred, k) / cnt)[inv]
    A, B = np.bincount(inv, rc * pc, k), np.bincount(inv, rc * rc, k)
    mb = np.bincount(inv, (pred - u) ** 2, k) / cnt
    mr = np.bincount(inv, (raw - u) ** 2, k) / cnt
    return [
        ("shrinkage_factor", *ratio_of_means(A, B),
         "pooled within-replicate slope of predicted effects on raw group-mean deviations"),
        ("mse_blup", *mean_mcse(mb), "mean squared error of predicted effects vs realised u"),
        ("mse_raw", *mean_mcse(mr), "mean squared error of raw group-mean deviations vs realised u"),
        ("mse_ratio", *ratio_of_means(mb, mr), "mse_blup / mse_raw (< 1: gain from partial pooling)"),
    ]


class GroupRows:
    """The group rows of a study as NumPy arrays (:data:`GROUP_COLUMNS`; ``fit`` and ``parameter`` as codes
    into their categories), with each (condition, fit)'s rows found once, in stored order.

    Replaces a pandas groupby over millions of group rows: the metrics see the same rows in the same order,
    so every sum, and so every value in summary.csv, is the same."""

    def __init__(self, arrays: dict[str, Any]):
        self.arrays = arrays
        n = len(arrays["replicate"]) if "replicate" in arrays else 0
        self.slices: dict[tuple[int, str], np.ndarray] = {}
        if not n or "fit" not in arrays or "condition" not in arrays:
            return
        fcodes, fcats = arrays["fit"]
        cond = np.asarray(arrays["condition"]).astype(np.int64)
        key = cond * (len(fcats) + 1) + (fcodes.astype(np.int64) + 1)
        order = np.argsort(key, kind="stable")
        skey = key[order]
        starts = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
        ends = np.r_[starts[1:], n]
        for a, b in zip(starts, ends):
            i = order[a]
            fc = int(fcodes[i])
            if fc < 0:
                continue
            self.slices[(int(cond[i]), str(fcats[fc]))] = order[a:b]

    def effects(self, c: int, fit: str, exclude: bool) -> list[tuple[str, dict[str, np.ndarray]]]:
        """(effect, arrays) of one (condition, fit), effects in order of first appearance; with ``exclude``
        the non-converged fits' rows are left out."""
        idx = self.slices.get((c, fit))
        if idx is None:
            return []
        arr = self.arrays
        ok = np.asarray(arr["ok"])[idx].astype(bool) if "ok" in arr else np.ones(idx.size, bool)
        if exclude:
            conv = np.asarray(arr["converged"])[idx].astype(bool)
            sel = ~(ok & ~conv)
            idx, ok = idx[sel], ok[sel]
        pcodes, pcats = arr["parameter"]
        pc = pcodes[idx]
        uniq, first = np.unique(pc, return_index=True)
        out = []
        for code in uniq[np.argsort(first, kind="stable")]:
            if code < 0:  # a missing effect name: groupby leaves it out
                continue
            m = pc == code
            sub = idx[m]
            out.append((str(pcats[code]), {"ok": ok[m], "estimate": arr["estimate"][sub], "raw": arr["raw"][sub],
                                           "truth": arr["truth"][sub], "replicate": arr["replicate"][sub]}))
        return out
