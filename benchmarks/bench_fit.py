"""Benchmark: our REML fitter against statsmodels MixedLM on identical simulated data.

Run as ``python benchmarks/bench_fit.py [--repeats N] [--groups 18,200,2000]``.

For random-intercept ``y ~ x + (1 | g)`` and random-slope ``y ~ x + (x | g)`` data with groups of 10
observations (18, 200 and 2,000 groups), times in one process

* ``ours e2e``: ``compare_mm.fit(formula, DataFrame)`` end to end (formula parsing, design, fit, result);
* ``ours fit``: the reml backend's ``fit`` on a prebuilt Design;
* ``statsmodels``: ``MixedLM(y, X, groups, exog_re).fit(reml=True)`` on the same arrays (model
  construction included, formula parsing not);

and prints median wall-clock times, median CPU times (``time.process_time``, less sensitive to other
load on the machine), the ratios statsmodels / ours, and the difference of the REML log-likelihoods
(statsmodels' ``llf`` minus ours: ≤ 0 means ours found at least as high a maximum).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import pandas as pd

import compare_mm
from compare_mm.backends.reml import BACKEND


def simulate(G: int, slope: bool, seed: int = 1, m: int = 10) -> pd.DataFrame:
    """Groups of m observations, x = 0 … m−1; intercept SD 25, slope SD 6, residual SD 25 (sleepstudy-like)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), m)
    x = np.tile(np.arange(m, dtype=float), G)
    a = rng.normal(0, 25, size=G)
    b = rng.normal(0, 6, size=G) if slope else np.zeros(G)
    y = 250 + 10 * x + a[g] + b[g] * x + rng.normal(0, 25, size=G * m)
    return pd.DataFrame({"y": y, "x": x, "g": [f"s{i:05d}" for i in g]})


def timed(fun, repeats: int):
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fun()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(wall), statistics.median(cpu), out


def statsmodels_fit(df: pd.DataFrame, slope: bool):
    from statsmodels.regression.mixed_linear_model import MixedLM

    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy()])
    exog_re = X if slope else X[:, :1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MixedLM(df["y"].to_numpy(), X, groups=df["g"].to_numpy(), exog_re=exog_re).fit(reml=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=0, help="repeats per cell (default: 25/9/3 by size)")
    ap.add_argument("--groups", default="18,200,2000")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.groups.split(",")]
    compare_mm.fit("y ~ x + (x | g)", simulate(18, True))          # warm imports/caches
    statsmodels_fit(simulate(18, True), True)
    rows = []
    for slope in (False, True):
        formula = "y ~ x + (x | g)" if slope else "y ~ x + (1 | g)"
        for G in sizes:
            reps = args.repeats or (25 if G <= 18 else 9 if G <= 200 else 3)
            df = simulate(G, slope)
            design = compare_mm.make_design(formula, df)
            e2e_w, e2e_c, res = timed(lambda: compare_mm.fit(formula, df), reps)
            fit_w, fit_c, _ = timed(lambda: BACKEND.fit(design, {}), reps)
            sm_reps = max(1, min(reps, 5 if G >= 2000 else reps))
            sm_w, sm_c, sm = timed(lambda: statsmodels_fit(df, slope), sm_reps)
            rows.append(dict(model=formula, groups=G, n=len(df),
                             e2e_ms=e2e_w * 1e3, fit_ms=fit_w * 1e3, sm_ms=sm_w * 1e3,
                             ratio_e2e=sm_w / e2e_w, ratio_fit=sm_w / fit_w,
                             e2e_cpu_ms=e2e_c * 1e3, fit_cpu_ms=fit_c * 1e3, sm_cpu_ms=sm_c * 1e3,
                             ratio_cpu_fit=sm_c / fit_c, evals=res.optimisation.evaluations,
                             dll=float(sm.llf) - res.loglik))
            r = rows[-1]
            print(f"{formula:18s} G={G:5d}  ours e2e {r['e2e_ms']:8.2f} ms  ours fit {r['fit_ms']:8.2f} ms  "
                  f"statsmodels {r['sm_ms']:9.1f} ms  ratio(fit) {r['ratio_fit']:6.1f}", flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print()
    print("median wall-clock times (ms) and ratios statsmodels / ours")
    print(table[["model", "groups", "n", "e2e_ms", "fit_ms", "sm_ms", "ratio_e2e", "ratio_fit", "evals"]]
          .to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print()
    print("median CPU times (ms), ratio statsmodels / ours (fit), and llf(statsmodels) − logLik(ours)")
    print(table[["model", "groups", "e2e_cpu_ms", "fit_cpu_ms", "sm_cpu_ms", "ratio_cpu_fit", "dll"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
