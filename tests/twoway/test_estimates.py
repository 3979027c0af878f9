"""Our fitter on balanced RCBDs: truncated ANOVA where theory says so, a dense REML/ML optimum otherwise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from compare_mm.api import make_design
from compare_mm.backends.base import get_backend
from compare_mm.study.generate import model_spec, simulate_twoway_balanced, template_frame
from compare_mm.twoway import anova

T, B, N = 3, 6, 2
COND = {"model": "two_way", "treatments": T, "blocks": B, "per_cell": N, "trt_effects": [0.0, 0.5, 1.0],
        "sigma_e2": 1.0, "mu": 0.0}


def _dense_fit(y, frame, method):
    """Maximise the REML or ML likelihood of V = σ_B² Z_B Z_B' + σ_AB² Z_AB Z_AB' + σ_E² I by L-BFGS-B over the
    variances themselves (bounds ≥ 0), from several starts: no profiling, no structure."""
    X = np.column_stack([np.ones(len(frame))] + [(frame["trt"] == lv).to_numpy(float)
                                                  for lv in sorted(frame["trt"].unique())[1:]])
    Zb = (frame["block"].to_numpy()[:, None] == np.unique(frame["block"])[None, :]).astype(float)
    cells = (frame["block"] + ":" + frame["trt"]).to_numpy()
    Zab = (cells[:, None] == np.unique(cells)[None, :]).astype(float)
    Kb, Kab = Zb @ Zb.T, Zab @ Zab.T
    n, p = X.shape

    def nll(v):
        V = v[0] * Kb + v[1] * Kab + v[2] * np.eye(n)
        L = np.linalg.cholesky(V)
        Xs, ys = np.linalg.solve(L, X), np.linalg.solve(L, y)
        beta, *_ = np.linalg.lstsq(Xs, ys, rcond=None)
        r = ys - Xs @ beta
        out = 2 * np.log(np.diag(L)).sum() + r @ r
        if method == "REML":
            out += np.linalg.slogdet(Xs.T @ Xs)[1]
        return 0.5 * out

    best = None
    for start in ([0.5, 0.5, 1.0], [1e-3, 1.0, 0.5], [1.0, 1e-3, 1.5], [1e-3, 1e-3, np.var(y)]):
        r = optimize.minimize(nll, start, method="L-BFGS-B", bounds=[(0, None), (0, None), (1e-8, None)],
                              options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 2000})
        if best is None or r.fun < best.fun:
            best = r
    return best.x, best.fun


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_fitter_equals_truncated_anova_or_dense_optimum(method):
    frame = template_frame("two_way", COND)
    design = make_design(model_spec("two_way", None, method), frame)
    prepared = get_backend("reml").prepare(design, {})
    seen = {"interior": 0, "boundary": 0}
    for sb2, sab2, seed in ((0.0, 0.0, 1), (0.5, 0.3, 2), (2.0, 1.0, 3)):
        Y, _ = simulate_twoway_balanced(dict(COND, sigma_b2=sb2, sigma_ab2=sab2), seed, 0, range(8))
        st = anova.twoway_stats(Y)
        closed = anova.estimates(st, method)
        trunc = anova.truncated_anova(st)
        raw = anova.estimates(st, "ANOVA")
        for r in range(Y.shape[0]):
            est = prepared.fit(Y[r].ravel()).estimates()
            got = np.array([est["var_(Intercept)|block"], est["var_(Intercept)|block:trt"], est["sigma2"]])
            # the closed form (antitonic regression) is our fitter's optimum in every case
            np.testing.assert_allclose(got, [closed.sigma_b2[r], closed.sigma_ab2[r], closed.sigma_e2[r]],
                                       rtol=1e-7, atol=1e-7)
            interior = raw.sigma_b2[r] >= 0 and raw.sigma_ab2[r] >= 0
            if interior and method == "REML":
                seen["interior"] += 1   # theory: REML = ANOVA = truncated ANOVA here
                np.testing.assert_allclose(got, [trunc[0][r], trunc[1][r], trunc[2][r]], rtol=1e-7, atol=1e-7)
            else:
                if not interior:
                    seen["boundary"] += 1
                    if method == "REML":  # a component on its boundary changes the others: not truncated ANOVA
                        assert np.max(np.abs(got - [trunc[0][r], trunc[1][r], trunc[2][r]])) > 1e-4
                dense, fun = _dense_fit(Y[r].ravel(), frame, method)
                np.testing.assert_allclose(got, dense, rtol=1e-5, atol=1e-6)
    assert seen["interior"] >= 3 or method == "ML"
    assert seen["boundary"] >= 3
