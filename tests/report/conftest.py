"""A synthetic finished study written exactly in the stored-output contract: rows in the
schema of compare_mm.study.row_schema, summary.csv as compare_mm.study.summarise writes it, so report tests never run a study or a fitter.

The numbers are balanced one-way closed forms (REML/ML estimates from the ANOVA mean squares, BLUPs as
ŵ(ȳ_i − ȳ)) and a stand-in "posterior" — realistic enough to exercise every figure, not a fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from compare_mm.study.row_schema import PARAM_COLUMNS

GRID = {"groups": [6, 18], "per_group": [3], "sigma_a2": [0.0, 0.2, 1.0]}


def _config(bayes: bool) -> dict:
    fits = [{"name": "reml", "backend": "reml", "method": "REML"},
            {"name": "ml", "backend": "reml", "method": "ML"}]
    if bayes:
        fits.append({"name": "bayes", "backend": "pymc", "prior": {"sd_a": {"half_normal": 1.0}},
                     "draws": 200, "tune": 200, "chains": 2})
    return {"name": "synthetic", "seed": 7, "replicates": 60, "level": 0.95, "model": "oneway", "grid": GRID,
            "fixed": {"mu": 0.0, "sigma_e2": 1.0}, "fits": fits}


def _mc(x):
    x = np.asarray(x, float)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan


def make_study(out: Path, *, bayes: bool = True, fail_fit: str | None = None, n_fail: int = 0) -> Path:
    """Write config.yaml, manifest.json, replicates/chunk-*.parquet and summary.csv under ``out``."""
    cfg = _config(bayes)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    rng = np.random.default_rng(1)
    conds = [dict(groups=a, per_group=n, sigma_a2=s) for a in GRID["groups"] for n in GRID["per_group"]
             for s in GRID["sigma_a2"]]
    (out / "replicates").mkdir(exist_ok=True)
    summary = []
    for ci, c in enumerate(conds):
        a, n, sa2 = c["groups"], c["per_group"], c["sigma_a2"]
        rows = []
        for r in range(cfg["replicates"]):
            u = rng.normal(0, np.sqrt(sa2), a)
            y = u[:, None] + rng.normal(0, 1, (a, n))
            ybar, grand = y.mean(1), y.mean()
            msa = n * ((ybar - grand) ** 2).sum() / (a - 1)
            mse = ((y - ybar[:, None]) ** 2).sum() / (a * (n - 1))
            for fit in [f["name"] for f in cfg["fits"]]:
                base = dict(condition=ci, replicate=r, **c, fit=fit, ok=True, error="", converged=True)
                if fit == fail_fit and r < n_fail:
                    base.update(ok=False, error="LinAlgError: Matrix is not positive definite")
                    rows.append(dict(base, row_type="param", parameter="sigma_a2", estimate=np.nan, truth=sa2))
                    continue
                k = 1.0 if fit != "ml" else (a - 1) / a
                s2 = max(0.0, (k * msa - mse) / n)
                med = mode = np.nan
                div = rhat = np.nan
                if fit == "bayes":
                    s2 = max(0.03, s2) * float(np.exp(rng.normal(0, 0.2)))
                    med, div, rhat = s2 * 0.9, float(rng.poisson(0.3)), 1 + abs(rng.normal(0, 0.006))
                se2 = mse
                w = n * s2 / (se2 + n * s2)
                lam = se2 + n * s2
                half = 1.96 * np.sqrt(max(lam, 1e-12) / (a * n))
                base.update(boundary=(s2 == 0.0), divergences=div, max_rhat=rhat, median=np.nan, level=0.95)
                rows.append(dict(base, row_type="param", parameter="mu", truth=0.0, estimate=grand,
                                 lower=grand - half, upper=grand + half,
                                 interval_kind="eti" if fit == "bayes" else "wald"))
                rows.append(dict(base, row_type="param", parameter="sigma_a2", truth=sa2, estimate=s2,
                                 median=med, lower=0.0, upper=s2 * 3 + 0.1,
                                 interval_kind="eti" if fit == "bayes" else "wald"))
                rows.append(dict(base, row_type="param", parameter="sigma_e2", truth=1.0, estimate=se2))
                for i in range(a):
                    rows.append(dict(base, row_type="group", parameter="u_a", group=i, truth=u[i],
                                     estimate=w * (ybar[i] - grand), raw=ybar[i] - grand))
        df = pd.DataFrame(rows)
        assert set(df.columns) <= set(PARAM_COLUMNS) | set(c), "fixture rows use the stored row schema"
        df.to_parquet(out / "replicates" / f"chunk-C{ci:04d}-R000000.parquet", index=False)
        # ---- summary rows (tidy contract)
        for fit in [f["name"] for f in cfg["fits"]]:
            f_rows = df[(df["fit"] == fit) & (df["row_type"] == "param")]
            ok = f_rows[f_rows["ok"]]
            n_ok = ok["replicate"].nunique()
            n_failed = f_rows["replicate"].nunique() - n_ok
            kind = "eti" if fit == "bayes" else "wald"

            def add(param, metric, value, mcse, exact=np.nan, interval=""):
                summary.append(dict(condition=ci, **c, fit=fit, parameter=param, metric=metric, value=value,
                                    mcse=mcse, exact=exact, n_ok=n_ok, n_failed=n_failed, interval_kind=interval))
            for p in ("mu", "sigma_a2", "sigma_e2"):
                pr = ok[ok["parameter"] == p]
                err = pr["estimate"] - pr["truth"]
                add(p, "bias", *_mc(err))
                mse, mse_se = _mc(err**2)
                add(p, "rmse", np.sqrt(mse), mse_se / (2 * np.sqrt(mse)))
                if fit == "bayes":
                    add(p, "bias_median", *_mc(pr["median"] - pr["truth"]))
                if p != "sigma_e2":
                    cov = ((pr["lower"] <= pr["truth"]) & (pr["truth"] <= pr["upper"])).astype(float)
                    add(p, "coverage", *_mc(cov), interval=kind)
                    add(p, "mean_width", *_mc(pr["upper"] - pr["lower"]), interval=kind)
            sa = ok[ok["parameter"] == "sigma_a2"]
            b = sa["boundary"].astype(float)
            ex = np.nan
            if fit != "bayes":
                x = 1 / (1 + n * sa2) * (a / (a - 1) if fit == "ml" else 1)
                ex = stats.f.cdf(x, a - 1, a * (n - 1))
            add("sigma_a2", "boundary_rate", *_mc(b), exact=ex)
            g = df[(df["fit"] == fit) & (df["row_type"] == "group") & df["ok"]]
            if sa2 > 0 and len(g):
                slope = np.polyfit(g["raw"], g["estimate"], 1)[0]
                add("u_a", "shrinkage_factor", slope, 0.02, exact=n * sa2 / (1 + n * sa2))
            if len(g):
                add("u_a", "mse_blup", *_mc((g["estimate"] - g["truth"]) ** 2))
                add("u_a", "mse_raw", *_mc((g["raw"] - g["truth"]) ** 2))
            add("", "failure_rate", n_failed / (n_ok + n_failed), 0.0)
            if fit == "bayes":
                add("", "divergence_rate", *_mc((ok.drop_duplicates("replicate")["divergences"] > 0).astype(float)))
    pd.DataFrame(summary).to_csv(out / "summary.csv", index=False)
    manifest = {"name": "synthetic", "config_hash": "abc123", "model": "oneway", "seed": 7, "replicates": 60,
                "level": 0.95, "grid_keys": list(GRID), "fits": cfg["fits"], "status": "finished",
                "started": "2026-11-22T02:00:00Z", "finished": "2026-11-22T02:00:05Z", "elapsed_s": 5.0,
                "versions": {"compare_mm": "0.1.0", "numpy": np.__version__}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory) -> Path:
    """A synthetic study with REML, ML and a Bayesian fit, no failures (shared: tests only read it)."""
    return make_study(tmp_path_factory.mktemp("study") / "study")


@pytest.fixture(scope="session")
def failed_study_dir(tmp_path_factory) -> Path:
    """A synthetic study in which the ML fit failed in its first 7 replicates of every condition."""
    return make_study(tmp_path_factory.mktemp("failed") / "failed", fail_fit="ml", n_fail=7)


@pytest.fixture(scope="session")
def freq_study_dir(tmp_path_factory) -> Path:
    """A synthetic study without a Bayesian fit."""
    return make_study(tmp_path_factory.mktemp("freq") / "freq", bayes=False)
