"""Data-generating processes of the studies, with the truth (including realised u) of every replicate.

Seeds (docs/architecture.md, "Studies").  Condition ``c`` owns the Philox key ``SeedSequence(seed, spawn_key=(c, 0))``
(two 64-bit words); replicate ``r`` draws its data from that counter-based generator started at counter
``r·2⁶⁴`` — a disjoint substream per replicate (Salmon et al. 2011, "Parallel random numbers: as easy as
1, 2, 3"), set in O(1) without building a generator per replicate.  Fit ``k`` of a replicate (e.g. a PyMC
sampler) gets its seed from ``SeedSequence(seed, spawn_key=(c, r, 1 + k))``.  A replicate's data and fits
therefore do not depend on chunking, on the number of workers or on which other replicates run.

Models
------
one-way (balanced or unbalanced)
    y_ij = μ + a_i + e_ij,  a_i ~ N(0, σ_A²),  e_ij ~ N(0, σ_e²),  i = 1..groups, j = 1..n_i,
    fitted as ``y ~ 1 + (1 | g)``.
random slope
    y_ij = β₀ + β₁x_j + a_i + b_i x_j + e_ij,  (a_i, b_i) ~ N₂(0, G),
    G = [[σ_A², ρσ_Aσ_B], [ρσ_Aσ_B, σ_B²]],  x_j the same covariate values in every group,
    fitted as ``y ~ 1 + x + (1 + x | g)`` (or ``(x || g)`` with ``covariance: diagonal``).
    (a_i, b_i) = (σ_A z₁, ρσ_B z₁ + σ_B sqrt(1 − ρ²) z₂) with z ~ N(0, I) (Cholesky factor of G written
    out so σ_A² = 0 works).
two-way (randomized complete block design)
    y_ijk = μ + α_i + B_j + (αB)_ij + ε_ijk, fitted as ``y ~ trt + (1 | block) + (1 | block:trt)``
    (:mod:`compare_mm.study.generate_twoway`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..model.spec import ModelSpec, RandomTerm
from . import generate_twoway


def model_spec(model: str, covariance: str | None = None, method: str = "REML") -> ModelSpec:
    """The fitted model of a study: ``y ~ 1 + (1 | g)``, ``y ~ 1 + x + (1 + x | g)`` or
    ``y ~ trt + (1 | block) + (1 | block:trt)``."""
    if model == "two_way":
        return generate_twoway.model_spec(method)
    if model == "oneway":
        return ModelSpec(response="y", fixed="1", random=(RandomTerm(group=("g",), formula="1"),), method=method)
    return ModelSpec(response="y", fixed="1 + x",
                     random=(RandomTerm(group=("g",), formula="1 + x", covariance=covariance or "unstructured"),),
                     method=method)


def _condition_key(seed: int, condition: int) -> np.ndarray:
    return np.random.SeedSequence(seed, spawn_key=(condition, 0)).generate_state(2, np.uint64)


def data_rng(seed: int, condition: int, replicate: int) -> np.random.Generator:
    """A fresh generator for replicate ``replicate`` of condition ``condition`` (see module docstring)."""
    counter = np.array([0, replicate, 0, 0], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=_condition_key(seed, condition), counter=counter))


class ReplicateStreams:
    """The replicate generators of one condition, reusing one Philox bit generator (fast in loops).

    ``streams(r)`` returns the same Generator object each time, reset to replicate r's substream; use it
    before asking for the next replicate.  Equal, draw for draw, to :func:`data_rng`.
    """

    def __init__(self, seed: int, condition: int) -> None:
        self._key = _condition_key(seed, condition)
        self._bg = np.random.Philox(key=self._key)
        self._gen = np.random.Generator(self._bg)

    def __call__(self, replicate: int) -> np.random.Generator:
        self._bg.state = {"bit_generator": "Philox",
                          "state": {"counter": np.array([0, replicate, 0, 0], dtype=np.uint64), "key": self._key},
                          "buffer": np.zeros(4, dtype=np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
        return self._gen


def fit_seed(seed: int, condition: int, replicate: int, fit_index: int) -> int:
    """A 32-bit seed for fit ``fit_index`` of one replicate (PyMC's ``seed`` option)."""
    ss = np.random.SeedSequence(seed, spawn_key=(condition, replicate, 1 + fit_index))
    return int(ss.generate_state(1)[0])


def group_sizes(cond: dict[str, Any]) -> np.ndarray:
    """n_i for every group of a one-way condition (``per_group`` int or list of sizes)."""
    sizes = cond["per_group"]
    if isinstance(sizes, list):
        return np.asarray(sizes, dtype=int)
    return np.full(int(cond["groups"]), int(sizes), dtype=int)


def is_balanced(model: str, cond: dict[str, Any]) -> bool:
    """True for a balanced one-way condition (the closed-form fast path applies)."""
    return model == "oneway" and not isinstance(cond.get("per_group"), list)


def truths(model: str, cond: dict[str, Any]) -> dict[str, float]:
    """True values of the canonical parameters of a condition."""
    if model == "two_way":
        return generate_twoway.truths(cond)
    if model == "oneway":
        return {"mu": float(cond["mu"]), "sigma_a2": float(cond["sigma_a2"]), "sigma_e2": float(cond["sigma_e2"])}
    return {"beta0": float(cond["beta0"]), "beta1": float(cond["beta1"]), "sigma_a2": float(cond["sigma_a2"]),
            "sigma_b2": float(cond["sigma_b2"]), "rho": float(cond["rho"]), "sigma_e2": float(cond["sigma_e2"])}


def template_frame(model: str, cond: dict[str, Any]) -> pd.DataFrame:
    """The design of a condition as a DataFrame (columns g, [x], y), rows group-major.

    Group labels are zero-padded (``g01`` …) so their sorted order — the level order of the Design —
    is the generation order.  ``y`` is a placeholder that no model of the study fits exactly (the design
    checks refuse a response with no residual variation: a placeholder linear in the row would be one
    for a random slope); replicates swap it with ``Design.with_y``.
    """
    if model == "two_way":
        return generate_twoway.template_frame(cond)
    if model == "oneway":
        sizes = group_sizes(cond)
        width = len(str(len(sizes)))
        g = np.repeat([f"g{i:0{width}d}" for i in range(len(sizes))], sizes)
        return pd.DataFrame({"g": g, "y": _placeholder(g.size)})
    x = np.asarray(cond["x"], dtype=float)
    groups = int(cond["groups"])
    width = len(str(groups))
    g = np.repeat([f"g{i:0{width}d}" for i in range(groups)], x.size)
    return pd.DataFrame({"g": g, "x": np.tile(x, groups), "y": _placeholder(g.size)})


def _placeholder(n: int) -> np.ndarray:
    """cos(2.4 k), k = 0 … n − 1: deterministic, non-constant and not polynomial in k."""
    return np.cos(2.4 * np.arange(n))


@dataclass(frozen=True, eq=False)
class Replicate:
    """One simulated data set: the response in design order and the realised random effects.

    ``u`` has shape ``(groups, q)``: column 0 the intercept effects a_i, column 1 (random slope) b_i.
    ``raw`` holds the no-pooling estimates of the same effects: for one-way ȳ_i − ȳ (ȳ the mean of all
    observations); for the random slope per-group OLS intercepts and slopes minus their means over groups.
    """

    y: np.ndarray
    u: np.ndarray
    raw: np.ndarray


def simulate(model: str, cond: dict[str, Any], rng: np.random.Generator) -> Replicate:
    """Draw one replicate of a condition (the DGPs in the module docstring)."""
    if model == "two_way":
        return Replicate(*generate_twoway.simulate(cond, rng))
    if model == "oneway":
        sizes = group_sizes(cond)
        z = rng.standard_normal(sizes.size + int(sizes.sum()))  # one draw: (a_i / σ_A, e_ij / σ_e)
        a = z[:sizes.size] * np.sqrt(float(cond["sigma_a2"]))
        e = z[sizes.size:] * np.sqrt(float(cond["sigma_e2"]))
        y = float(cond["mu"]) + np.repeat(a, sizes) + e
        codes = np.repeat(np.arange(sizes.size), sizes)
        means = np.bincount(codes, weights=y) / sizes
        return Replicate(y=y, u=a[:, None], raw=(means - y.mean())[:, None])
    x = np.asarray(cond["x"], dtype=float)
    G = int(cond["groups"])
    sa, sb, rho = np.sqrt(float(cond["sigma_a2"])), np.sqrt(float(cond["sigma_b2"])), float(cond["rho"])
    z = rng.standard_normal((G, 2))
    u = np.column_stack([sa * z[:, 0], rho * sb * z[:, 0] + sb * np.sqrt(1.0 - rho**2) * z[:, 1]])
    e = rng.standard_normal((G, x.size)) * np.sqrt(float(cond["sigma_e2"]))
    Y = float(cond["beta0"]) + u[:, :1] + (float(cond["beta1"]) + u[:, 1:]) * x[None, :] + e
    xc = x - x.mean()
    slopes = (Y @ xc) / (xc @ xc)
    icepts = Y.mean(axis=1) - slopes * x.mean()
    raw = np.column_stack([icepts - icepts.mean(), slopes - slopes.mean()])
    return Replicate(y=Y.ravel(), u=u, raw=raw)


def simulate_oneway_balanced(cond: dict[str, Any], seed: int, condition: int,
                             replicates: range | list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced one-way replicates as arrays: Y ``(R, a, n)``, realised effects U ``(R, a)`` and raw
    deviations ȳ_i − ȳ ``(R, a)`` — the same numbers :func:`simulate` draws replicate by replicate."""
    a, n = int(cond["groups"]), int(cond["per_group"])
    Z = np.empty((len(replicates), a + a * n))
    streams = ReplicateStreams(seed, condition)
    for k, r in enumerate(replicates):
        Z[k] = streams(r).standard_normal(a + a * n)
    U = Z[:, :a] * np.sqrt(float(cond["sigma_a2"]))
    Y = float(cond["mu"]) + U[:, :, None] + Z[:, a:].reshape(-1, a, n) * np.sqrt(float(cond["sigma_e2"]))
    means = Y.mean(axis=2)
    return Y, U, means - means.mean(axis=1, keepdims=True)


def simulate_twoway_balanced(cond: dict[str, Any], seed: int, condition: int,
                            replicates: range | list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Balanced two-way replicates as arrays: Y ``(R, t, b, n)`` and block effects ``(R, b)`` — the numbers
    :func:`simulate` draws."""
    return generate_twoway.simulate_balanced(cond, ReplicateStreams(seed, condition), replicates)


def simulate_many(model: str, cond: dict[str, Any], seed: int, condition: int,
                  replicates: range | list[int]) -> list[Replicate]:
    """Replicates ``replicates`` of one condition, each from its own seed (see module docstring)."""
    streams = ReplicateStreams(seed, condition)
    return [simulate(model, cond, streams(r)) for r in replicates]


__all__ = ["ReplicateStreams", "Replicate", "data_rng", "fit_seed", "group_sizes", "is_balanced", "model_spec", "simulate",
           "simulate_many", "simulate_oneway_balanced", "simulate_twoway_balanced", "template_frame", "truths"]
