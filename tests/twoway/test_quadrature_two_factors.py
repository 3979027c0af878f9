"""The exact-quadrature posterior on the two-way design (two scalar terms on two factors; block:trt is
eliminated, quadrature_two)."""

from __future__ import annotations

import numpy as np
import pytest

from compare_mm.api import make_design
from compare_mm.backends.base import get_backend
from compare_mm.study.generate import model_spec, simulate_twoway_balanced, template_frame

COND = {"model": "two_way", "treatments": 3, "blocks": 6, "per_cell": 2, "trt_effects": [0.0, 0.5, 1.0],
        "sigma_b2": 1.0, "sigma_ab2": 0.5, "sigma_e2": 1.0, "mu": 0.0}


@pytest.mark.slow
def test_quadrature_fits_the_rcbd_and_its_contrasts_agree_with_reml():
    """The axis probes reach points where M = D W'W D + σ²I is numerically singular (the block column is
    the sum of its cells' columns); those points get density 0 instead of failing the whole fit."""
    d = make_design(model_spec("two_way"), template_frame("two_way", COND))
    Y, _ = simulate_twoway_balanced(COND, 7, 0, [2, 3])   # replicate 2 failed with LinAlgError before
    post = get_backend("pymc").prepare(d, {"sampler": "quadrature", "seed": 1})
    reml = get_backend("reml").prepare(d, {})
    for y in Y.reshape(2, -1):
        r = post.fit(y, seed=1)
        assert r.converged
        med = {p.parameter: p.median for p in r.posterior}
        assert all(np.isfinite(v) for v in med.values())
        est = reml.fit(y).estimates()
        se = {f.term: f.se for f in reml.fit(y).fixef}
        for term in ("trt[T.t2]", "trt[T.t3]"):  # flat-ish priors: posterior median near the GLS estimate
            assert abs(med[term] - est[term]) < 0.5 * se[term]


def test_a_far_probe_whose_triangular_factor_defeats_lu_is_left_out():
    """two_way.yaml's condition σ_B² = 2, σ_AB² = 0.25, replicate 8: an axis probe gave a Cholesky factor
    that np.linalg.solve called singular, and the fit raised LinAlgError; the inverse is now formed by
    forward substitution and such a point gets density 0."""
    cond = dict(COND, sigma_b2=2.0, sigma_ab2=0.25)
    d = make_design(model_spec("two_way"), template_frame("two_way", cond))
    Y, _ = simulate_twoway_balanced(cond, 20261203, 7, [8])
    r = get_backend("pymc").prepare(d, {"sampler": "quadrature", "seed": 1}).fit(Y.reshape(1, -1)[0], seed=1)
    assert r.converged and r.diagnostics["integration_error"] < 1e-3
