"""Satterthwaite df (lmerTest's method) against lmerTest and the exact one-way result."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import compare_mm as cm
from compare_mm.inference import satterthwaite
from compare_mm.oneway.closed_forms import design_to_array, oneway_stats


@pytest.mark.parametrize("kind", ["corr", "diag", "int"])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_df_match_lmertest(sleepstudy, sleep_design, lme4, ref_key, kind, method):
    # θ̂ and σ̂ from our fitter (an independent optimum), df compared with lmerTest 3.x in the json
    fit = cm.fit(sleep_design(kind, method).spec, sleepstudy, method=method)
    s = satterthwaite(sleep_design(kind, method), np.array(fit.theta), fit.sigma, method)
    ref = lme4[ref_key(kind, method)]["df_satterthwaite"]
    for name, df in zip(s.names, s.df):
        assert df == pytest.approx(ref[name], rel=1e-3), name
    # and much closer than the contract asks (lmerTest's own numDeriv error is ~1e-6)
    np.testing.assert_allclose(s.df, [ref[n] for n in s.names], rtol=1e-5)


def test_balanced_oneway_df_is_a_minus_one_and_p_is_the_exact_t_test(oneway_frame):
    a, n = 9, 4
    d = cm.make_design("y ~ 1 + (1 | g)", oneway_frame(a, n, 1.0, 3))
    fit = cm.fit(d.spec, oneway_frame(a, n, 1.0, 3))
    assert fit.theta[0] > 0
    s = satterthwaite(d, np.array(fit.theta), fit.sigma, "REML")
    assert s.df[0] == pytest.approx(a - 1, rel=1e-7)
    # exact: (ȳ − 0)/sqrt(MSA/N) ~ t_{a−1}; the REML SE of μ̂ is sqrt(MSA/N)
    st = oneway_stats(design_to_array(d))
    t = st.grand_mean / np.sqrt(st.msa / (a * n))
    assert s.t[0] == pytest.approx(t, rel=1e-7)
    assert s.p_value[0] == pytest.approx(2 * stats.t.sf(abs(t), a - 1), rel=1e-6)


def test_contrast_rows(sleep_design, sleepstudy):
    d = sleep_design("int")
    fit = cm.fit(d.spec, sleepstudy)
    one = satterthwaite(d, np.array(fit.theta), fit.sigma, "REML")
    c = satterthwaite(d, np.array(fit.theta), fit.sigma, "REML", contrasts=np.array([[0.0, 1.0]]))
    assert c.df[0] == pytest.approx(one.df[1], rel=1e-10)
