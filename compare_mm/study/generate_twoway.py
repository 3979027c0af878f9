"""The two-way mixed model (randomized complete block design) of the studies (``model: two_way``).

    y_ijk = μ + α_i + B_j + (αB)_ij + ε_ijk,   i = 1..t treatments (fixed), j = 1..b blocks (random),
    k = 1..n_ij,   B_j ~ N(0, σ_B²),   (αB)_ij ~ N(0, σ_AB²),   ε_ijk ~ N(0, σ_E²),

fitted as ``y ~ trt + (1 | block) + (1 | block:trt)``.  Keys: ``treatments`` (t), ``trt_effects``
(α_1..α_t, default zeros), ``blocks`` (b), ``per_cell`` (n: an integer for a balanced design or a t × b
list of lists n_ij for an unbalanced one), ``sigma_b2``, ``sigma_ab2``, ``sigma_e2``, ``mu``.

Canonical parameters: ``mu`` = μ + α_1 (the intercept: treatment 1's mean), ``trt2`` … ``trt<t>`` =
α_i − α_1 (treatment coding), ``sigma_b2``, ``sigma_ab2``, ``sigma_e2``.  Rows are treatment-major (i, then
j, then k); one standard-normal draw per replicate gives (B_j/σ_B, (αB)_ij/σ_AB in i-major order,
ε_ijk/σ_E), so σ = 0 works and the vectorised balanced draw equals the per-replicate one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..model.spec import ModelSpec, RandomTerm


def model_spec(method: str = "REML") -> ModelSpec:
    """``y ~ trt + (1 | block) + (1 | block:trt)``."""
    return ModelSpec(response="y", fixed="1 + trt",
                     random=(RandomTerm(group=("block",), formula="1"),
                             RandomTerm(group=("block", "trt"), formula="1")), method=method)


def cell_sizes(cond: dict[str, Any]) -> np.ndarray:
    """n_ij as a (t, b) integer array."""
    sizes = cond["per_cell"]
    if isinstance(sizes, list):
        return np.asarray(sizes, dtype=int)
    return np.full((int(cond["treatments"]), int(cond["blocks"])), int(sizes), dtype=int)


def is_balanced(cond: dict[str, Any]) -> bool:
    """True for a balanced two-way condition (``per_cell`` an integer)."""
    return not isinstance(cond.get("per_cell"), list)


def _labels(prefix: str, k: int) -> list[str]:
    width = len(str(k))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(k)]


def canonical(cond: dict[str, Any]) -> dict[str, str]:
    """Canonical name → lme4 confint name for a condition's t treatments."""
    t = int(cond["treatments"])
    labels = _labels("t", t)
    out = {"mu": "(Intercept)"}
    out.update({f"trt{i + 1}": f"trt[T.{labels[i]}]" for i in range(1, t)})
    out.update({"sigma_b2": "var_(Intercept)|block", "sigma_ab2": "var_(Intercept)|block:trt", "sigma_e2": "sigma2"})
    return out


def truths(cond: dict[str, Any]) -> dict[str, float]:
    """True values of the canonical parameters."""
    alpha = [float(a) for a in cond["trt_effects"]]
    out = {"mu": float(cond["mu"]) + alpha[0]}
    out.update({f"trt{i + 1}": alpha[i] - alpha[0] for i in range(1, len(alpha))})
    out.update({"sigma_b2": float(cond["sigma_b2"]), "sigma_ab2": float(cond["sigma_ab2"]),
                "sigma_e2": float(cond["sigma_e2"])})
    return out


def template_frame(cond: dict[str, Any]) -> pd.DataFrame:
    """Columns trt, block, y (a placeholder response), rows treatment-major."""
    sizes = cell_sizes(cond)
    t, b = sizes.shape
    tl, bl = _labels("t", t), _labels("b", b)
    trt = np.repeat(np.repeat(tl, b), sizes.ravel())
    block = np.repeat(np.tile(bl, t), sizes.ravel())
    return pd.DataFrame({"trt": trt, "block": block, "y": np.cos(2.4 * np.arange(trt.size))})


def _mean_vector(cond: dict[str, Any], sizes: np.ndarray) -> np.ndarray:
    alpha = np.asarray([float(a) for a in cond["trt_effects"]])
    return float(cond["mu"]) + np.repeat(np.repeat(alpha, sizes.shape[1]), sizes.ravel())


def simulate(cond: dict[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One replicate: (y in design order, block effects B (b, 1), block means minus the grand mean (b, 1))."""
    sizes = cell_sizes(cond)
    t, b = sizes.shape
    N = int(sizes.sum())
    z = rng.standard_normal(b + t * b + N)
    B = z[:b] * np.sqrt(float(cond["sigma_b2"]))
    AB = z[b:b + t * b] * np.sqrt(float(cond["sigma_ab2"]))
    e = z[b + t * b:] * np.sqrt(float(cond["sigma_e2"]))
    cell = (np.tile(B, t) + AB)  # i-major cells
    y = _mean_vector(cond, sizes) + np.repeat(cell, sizes.ravel()) + e
    blk = np.repeat(np.tile(np.arange(b), t), sizes.ravel())
    means = np.bincount(blk, weights=y, minlength=b) / np.bincount(blk, minlength=b)
    return y, B[:, None], (means - y.mean())[:, None]


def simulate_balanced(cond: dict[str, Any], streams, replicates) -> tuple[np.ndarray, np.ndarray]:
    """Balanced replicates as arrays: Y ``(R, t, b, n)`` and the block effects ``(R, b)`` — the numbers
    :func:`simulate` draws (``streams(r)``: replicate r's generator,
    :class:`compare_mm.study.generate.ReplicateStreams`)."""
    t, b, n = int(cond["treatments"]), int(cond["blocks"]), int(cond["per_cell"])
    size = b + t * b + t * b * n
    Z = np.empty((len(replicates), size))
    for k, r in enumerate(replicates):
        Z[k] = streams(r).standard_normal(size)
    B = Z[:, :b] * np.sqrt(float(cond["sigma_b2"]))
    AB = Z[:, b:b + t * b].reshape(-1, t, b) * np.sqrt(float(cond["sigma_ab2"]))
    E = Z[:, b + t * b:].reshape(-1, t, b, n) * np.sqrt(float(cond["sigma_e2"]))
    alpha = np.asarray([float(a) for a in cond["trt_effects"]])
    cell = B[:, None, :] + AB  # the per-replicate draw's order of additions: (μ + α_i) + (B_j + (αB)_ij) + ε
    return (float(cond["mu"]) + alpha)[None, :, None, None] + cell[..., None] + E, B


__all__ = ["canonical", "cell_sizes", "is_balanced", "model_spec", "simulate", "simulate_balanced",
           "template_frame", "truths"]
