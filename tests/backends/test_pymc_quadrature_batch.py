"""sampler='quadrature' batched across replicates (PreparedQuadrature.fit_many) against the per-replicate
path, replicate by replicate, and the study rows of a chunk with and without the batch.

Tolerances: every posterior row's mean, median, ETI ends and SD, and every group effect's mean and SD,
within 2e-3 posterior SDs (the per-replicate path's contract is 1e-3 on the quantiles, so two fits each
within it differ by < 2e-3).  HDI ends: the HDI is the shortest of 4,001 candidate intervals, a minimum of
a flat function, so its ends move by ~3e-3 posterior SDs between grids even in the per-replicate path
against itself at tol = 1e-5 (its ETI ends move by < 1e-4); they are held to 1e-2 and the HDI's width
(well conditioned) to 2e-3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import compare_mm as cm
from compare_mm.backends.pymc.backend import BACKEND
from compare_mm.backends.pymc.quadrature_batch import PreparedQuadrature, batchable

TOL = 2e-3
FIELDS = ("mean", "median", "eti_lower", "eti_upper", "sd")


def _frame(sizes, x: bool, rng) -> pd.DataFrame:
    g = np.repeat(np.arange(len(sizes)), sizes)
    out = pd.DataFrame({"y": rng.normal(size=g.size), "g": [f"g{k:02d}" for k in g]})
    if x:
        out["x"] = rng.normal(size=g.size)
    return out


def _responses(df: pd.DataFrame, R: int, rng) -> np.ndarray:
    """R responses: σ_A ∈ {0, 0.3, 1} in turn; the σ_A = 0 ones have their group means pulled 90 % of the
    way to the grand mean, so that REML puts σ̂_A² on the boundary 0 (checked by the test)."""
    codes = pd.factorize(df["g"], sort=True)[0]
    G = codes.max() + 1
    x = df["x"].to_numpy() if "x" in df else 0.0
    out = []
    for r in range(R):
        sa = (0.0, 0.3, 1.0)[r % 3]
        y = 5 + 0.5 * x + rng.normal(0, sa, G)[codes] + rng.normal(size=len(df))
        if sa == 0.0:
            gm = np.bincount(codes, y) / np.bincount(codes)
            y = y - 0.9 * (gm[codes] - y.mean())
        out.append(y)
    return np.array(out)


def _close(a, b) -> None:
    assert [p.parameter for p in a.posterior] == [p.parameter for p in b.posterior]
    for pa, pb in zip(a.posterior, b.posterior):
        for f in FIELDS:
            assert abs(getattr(pa, f) - getattr(pb, f)) <= TOL * pb.sd, (pa.parameter, f)
        for f in ("hdi_lower", "hdi_upper"):
            assert abs(getattr(pa, f) - getattr(pb, f)) <= 1e-2 * pb.sd, (pa.parameter, f)
        assert abs((pa.hdi_upper - pa.hdi_lower) - (pb.hdi_upper - pb.hdi_lower)) <= TOL * pb.sd, pa.parameter
    assert [(r.level, r.term) for r in a.ranef] == [(r.level, r.term) for r in b.ranef]
    for ra, rb in zip(a.ranef, b.ranef):
        assert abs(ra.value - rb.value) <= TOL * rb.condsd
        assert abs(ra.condsd - rb.condsd) <= TOL * rb.condsd
    assert [f.term for f in a.fixef] == [f.term for f in b.fixef]
    assert a.options["priors"] == b.options["priors"] and a.options["seed"] == b.options["seed"]
    assert a.converged and a.diagnostics["integration_error"] < 1e-3


CASES = {
    "balanced": ([6] * 10, False, None),
    "unbalanced": ([2, 3, 5, 8, 4, 6, 3, 7, 5, 9], False, None),
    "covariate": ([2, 3, 5, 8, 4, 6, 3, 7, 5, 9], True, None),
    "half_cauchy": ([5] * 8, False, {"sd": "half_cauchy"}),
    "half_student_t": ([5] * 8, False, {"sd": {"half_student_t": {"nu": 4, "scale": 1.0}}}),
    "exponential": ([5] * 8, True, {"sd": "exponential", "sigma": {"half_normal": 2.0}}),
    "inverse_gamma": ([5] * 8, False, {"sd": {"inverse_gamma": {"alpha": 2.0, "beta": 0.5}}}),
    # the prior_coverage study's preset: log axes for σ_A and σ, a shelf down to σ_A ~ √0.001
    "inverse_gamma_vague": ([5] * 10, False, {"sd": {"inverse_gamma": {"alpha": 0.001, "beta": 0.001}},
                                              "sigma2": {"inverse_gamma": {"alpha": 0.001, "beta": 0.001}}}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fit_many_equals_per_replicate(case):
    sizes, with_x, prior = CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)))
    df = _frame(sizes, with_x, rng)
    design = cm.make_design("y ~ x + (1 | g)" if with_x else "y ~ 1 + (1 | g)", df)
    opts = {"sampler": "quadrature"} | ({"prior": prior} if prior else {})
    prepared = BACKEND.prepare(design, opts)
    assert isinstance(prepared, PreparedQuadrature) and batchable(design)
    Y = _responses(df, 6, rng)
    seeds = list(range(10, 16))
    many = prepared.fit_many(Y, seeds)
    assert sum(r.diagnostics["batched"] for r in many) >= 4          # the batch, not only its fallback
    zero = 0
    for i, res in enumerate(many):
        one = prepared.fit(Y[i], seed=seeds[i])
        _close(res, one)
        if i % 3 == 0:
            reml = cm.fit(design.spec.formula, df.assign(y=Y[i]), backend="reml")
            zero += [v for v in reml.varcorr if v.group == "g"][0].variance == 0.0
    assert zero >= 1                                                  # σ̂_A²(REML) = 0 is covered


def test_prepare_does_not_build_pymc(monkeypatch):
    import compare_mm.backends.pymc.backend as be

    def boom(*a, **k):
        raise AssertionError("quadrature must not build a PyMC model")

    monkeypatch.setattr(be, "_get_model", boom)
    design = cm.make_design("y ~ 1 + (1 | g)", _frame([4] * 5, False, np.random.default_rng(0)))
    prepared = BACKEND.prepare(design, {"sampler": "quadrature"})
    assert isinstance(prepared, PreparedQuadrature)
    assert prepared.fit(design.y, seed=1).diagnostics["sampler"] == "quadrature"


def test_study_rows_same_with_and_without_batch(monkeypatch):
    from compare_mm.study.chunk import run_chunk
    from compare_mm.study.config.schema import StudyConfig
    from compare_mm.study.plan import Chunk, plan_chunks

    cfg = StudyConfig.model_validate({
        "name": "quad_batch", "seed": 7, "replicates": 8, "model": "oneway",
        "grid": {"groups": [6], "per_group": [5], "sigma_a2": [0.0, 0.5]}, "fixed": {"sigma_e2": 1.0, "mu": 0.0},
        "fits": [{"name": "quad", "backend": "pymc", "sampler": "quadrature"}]})
    assert [c.size for c in plan_chunks(cfg)] == [8, 8]               # quadrature chunks are large
    frames = []
    for batched in (True, False):
        if not batched:
            monkeypatch.delattr(PreparedQuadrature, "fit_many")
        frames.append(pd.concat([run_chunk(cfg, Chunk(c, 0, 8)) for c in (0, 1)], ignore_index=True))
    a, b = frames
    assert a.shape == b.shape and list(a.columns) == list(b.columns)
    assert (a["ok"]).all() and (b["ok"]).all()
    for col in a.columns:
        if col == "elapsed_s":
            continue
        if pd.api.types.is_float_dtype(a[col]):
            scale = np.maximum(b["se"].abs().to_numpy(), 1e-12) if "se" in b else 1.0
            diff = np.abs(a[col].to_numpy() - b[col].to_numpy())
            same_nan = np.isnan(a[col].to_numpy()) == np.isnan(b[col].to_numpy())
            assert same_nan.all(), col
            assert np.nanmax(np.where(np.isnan(diff), 0.0, diff / np.where(np.isfinite(scale), scale, 1.0))) \
                <= 1e-2, col
        else:
            assert (a[col].astype(str).to_numpy() == b[col].astype(str).to_numpy()).all(), col
