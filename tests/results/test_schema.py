"""FitResult: JSON contract, tidy frame, canonical names, printed summary."""

import json
import math

import numpy as np

from compare_mm.results.schema import FitResult, FixefRow, Interval, RanefRow, VarCorrRow
from compare_mm.results.summary import format_summary, side_by_side


def _result(**kw):
    base = dict(
        backend="reml", method="REML", formula="Reaction ~ Days + (Days | Subject)", nobs=180,
        converged=True, singular=False, loglik=-871.8141, criterion=1743.6283, sigma=25.5918,
        fixef=(FixefRow("(Intercept)", 251.405, 6.8246), FixefRow("Days", 10.467, 1.5458)),
        varcorr=(VarCorrRow("Subject", "(Intercept)", variance=612.09, sd=24.7404),
                 VarCorrRow("Subject", "Days", variance=35.07, sd=5.9221),
                 VarCorrRow("Subject", "(Intercept)", "Days", corr=0.0656, cov=9.604),
                 VarCorrRow("Residual", None, variance=654.94, sd=25.5918)),
        ranef=(RanefRow("Subject", "308", "(Intercept)", 2.2586, 12.0708),),
        theta=(0.9667, 0.0152, 0.2309), vcov=np.array([[46.57, -1.45], [-1.45, 2.39]]),
        aic=1755.6, bic=1774.8, ngroups={"Subject": 18},
        intervals=(Interval("(Intercept)", "wald", 238.0, 264.8),),
    )
    base.update(kw)
    return FitResult(**base)


def test_json_contract_keys_and_values():
    d = json.loads(_result().to_json())
    for key in ("backend", "method", "formula", "nobs", "converged", "singular", "loglik", "criterion",
                "sigma", "fixef", "varcorr", "ranef", "theta", "elapsed_s", "warnings"):
        assert key in d
    assert d["fixef"][0] == {"term": "(Intercept)", "estimate": 251.405, "se": 6.8246, "df": None, "p_value": None}
    assert d["varcorr"][2] == {"group": "Subject", "term": "(Intercept)", "term2": "Days", "corr": 0.0656, "cov": 9.604}
    assert d["varcorr"][3]["group"] == "Residual" and d["varcorr"][3]["term"] is None
    assert d["ranef"][0] == {"group": "Subject", "level": "308", "term": "(Intercept)", "value": 2.2586, "condsd": 12.0708}
    assert d["vcov"] == [[46.57, -1.45], [-1.45, 2.39]]


def test_json_has_no_nan_or_numpy_types():
    res = _result(loglik=float("nan"), theta=(np.float64(1.0), np.float32(0.5)), nobs=np.int64(180))
    d = json.loads(res.to_json())
    assert d["loglik"] is None and d["theta"] == [1.0, 0.5] and d["nobs"] == 180


def test_estimates_use_lme4_confint_names():
    est = _result().estimates()
    assert list(est)[:2] == ["(Intercept)", "Days"]
    assert est["sd_(Intercept)|Subject"] == 24.7404
    assert est["var_Days|Subject"] == 35.07
    assert est["cor_Days.(Intercept)|Subject"] == 0.0656
    assert est["sigma"] == 25.5918 and math.isclose(est["sigma2"], 654.94)


def test_to_frame_is_tidy():
    frame = _result().to_frame()
    assert list(frame["parameter"]) == ["(Intercept)", "Days", "sd_(Intercept)|Subject", "sd_Days|Subject",
                                        "cor_Days.(Intercept)|Subject", "sigma"]
    assert frame.loc[0, "interval_kind"] == "Wald 95%" and frame.loc[0, "lower"] == 238.0
    assert (frame["backend"] == "reml").all()


def test_summary_reads_like_lme4():
    text = format_summary(_result())
    assert "Linear mixed model fit by REML" in text
    assert "REML criterion at convergence: 1743.6283" in text
    assert "Random effects:" in text and "Fixed effects:" in text
    assert "Number of obs: 180, groups:  Subject, 18" in text
    assert "0.066" in text  # correlation printed in the Corr column
    assert str(_result()) == text


def test_side_by_side_has_one_column_per_fit():
    table = side_by_side([_result(), _result(method="ML")])
    header = table.splitlines()[0]
    assert "reml:REML" in header and "reml:ML" in header
    assert "Wald 95%" in table
