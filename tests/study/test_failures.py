"""A fit that raises inside a replicate is recorded as a row with its error; the study completes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from compare_mm.backends import base
from compare_mm.oneway.closed_forms import fit_oneway
from compare_mm.results.schema import FitResult, FixefRow, RanefRow, VarCorrRow
from compare_mm.study.runner import run_study
from compare_mm.study.store import read_rows


class FlakyBackend(base.BackendBase):
    """Raises on replicates whose first response is positive; otherwise returns the closed-form REML fit
    (the capabilities are BackendBase's defaults: a frequentist backend with Wald intervals)."""

    name = "flaky"

    def supports(self, spec):
        return None

    def fit(self, design, options):
        if design.y[0] > 0:
            raise RuntimeError("boom: the optimiser exploded")
        Y = design.y.reshape(design.blocks[0].n_levels, -1)
        e = fit_oneway(Y[None], "REML")
        levels = design.blocks[0].levels
        return FitResult(
            backend="flaky", method="REML", formula=design.spec.formula, nobs=design.n, converged=True,
            singular=bool(e.boundary[0]), loglik=float(e.loglik[0]), criterion=None,
            sigma=float(np.sqrt(e.sigma_e2[0])),
            fixef=(FixefRow("(Intercept)", float(e.mu[0]), float(e.se_mu[0])),),
            varcorr=(VarCorrRow("g", "(Intercept)", variance=float(e.sigma_a2[0]), sd=float(np.sqrt(e.sigma_a2[0]))),
                     VarCorrRow("Residual", None, variance=float(e.sigma_e2[0]), sd=float(np.sqrt(e.sigma_e2[0])))),
            ranef=tuple(RanefRow("g", lev, "(Intercept)", float(e.blup[0, i]), float(e.blup_condsd[0]))
                        for i, lev in enumerate(levels)),
        )


def test_failing_fit_is_recorded_and_study_completes(tmp_path, monkeypatch):
    monkeypatch.setitem(base._REGISTRY, "flaky", "unused:BACKEND")
    monkeypatch.setitem(base._LOADED, "flaky", FlakyBackend())
    study = {"name": "fail", "seed": 3, "replicates": 30, "chunk_size": 10, "model": "oneway",
             "grid": {"groups": [5], "per_group": [4], "sigma_a2": [0.5]},
             "fits": [{"name": "reml", "backend": "reml", "method": "REML"},
                      {"name": "flaky", "backend": "flaky", "method": "REML"}]}
    res = run_study(study, tmp_path / "out", progress=False)
    assert res.chunks_run == 3
    rows = read_rows(tmp_path / "out")
    flaky = rows[(rows.fit == "flaky") & (rows.row_type == "param")]
    status = flaky.drop_duplicates("replicate")
    assert len(status) == 30
    failed = status[~status.ok]
    assert 3 <= len(failed) <= 27          # about half the replicates fail; both kinds occur
    assert (failed.error == "RuntimeError: boom: the optimiser exploded").all()
    assert flaky[~flaky.ok].estimate.isna().all()
    # the successful flaky fits equal the closed-form fast path of the same replicates
    ok_reps = status[status.ok].replicate
    a = flaky[flaky.ok & (flaky.parameter == "sigma_a2")].set_index("replicate").estimate
    b = rows[(rows.fit == "reml") & (rows.parameter == "sigma_a2") & (rows.row_type == "param")] \
        .set_index("replicate").estimate.loc[ok_reps]
    assert np.allclose(a.sort_index(), b.sort_index(), rtol=1e-12, atol=1e-14)
    s = pd.read_csv(tmp_path / "out" / "summary.csv")
    fr = s[(s.fit == "flaky") & (s.metric == "failure_rate")].iloc[0]
    assert fr.n_failed == len(failed) and fr.n_ok == 30 - len(failed)
    assert abs(fr.value - len(failed) / 30) < 1e-12
    assert "boom" in fr.note
    bias = s[(s.fit == "flaky") & (s.metric == "bias") & (s.parameter == "sigma_a2")].iloc[0]
    assert bias.n_ok == 30 - len(failed)
    # group rows of the successful flaky fits carry the predictions; failed fits have none
    g = rows[(rows.fit == "flaky") & (rows.row_type == "group")]
    assert set(g.replicate) == set(ok_reps)
