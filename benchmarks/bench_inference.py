"""Benchmark of compare_mm.inference: exact RLRT and parametric bootstrap.

1. Exact RLRT with 10,000 simulations for sleepstudy ``Reaction ~ Days + (1 | Subject)`` (target < 1 s):
   the whole test (REML fits of both models, eigenvalues, simulation) and the simulation alone, against
   a peer in the same run: the same algorithm looping over simulations (vectorised over the grid only,
   RLRsim's C loop transcribed to numpy), timed on 1,000 simulations and scaled to 10,000.
2. A 200-refit parametric bootstrap (percentile intervals) of a balanced one-way model, a = 10, n = 5
   (target < 1 s): our fitter's refit path and the closed-form path, against statsmodels MixedLM refits
   (timed on 20 refits, scaled to 200).

Prints medians over repeats.  Run: ``.venv/bin/python benchmarks/bench_inference.py``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

import compare_mm as cm
from compare_mm.inference import bootstrap_draws, exact_rlrt, rlrt_eigenvalues, simulate_rlrt_null
from compare_mm.inference.components import components
from compare_mm.parallel import single_threaded_blas
from compare_mm.inference.rlrt import component_z, lambda_grid

DATA = Path(__file__).resolve().parents[1] / "compare_mm" / "data" / "sleepstudy.csv"


CPU: list[float] = []


def median_time(fn, repeats: int = 5) -> float:
    """Median wall time; the median CPU time of this process is recorded in CPU (a loaded machine
    inflates wall time, not CPU time)."""
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU.append(statistics.median(cpu))
    return statistics.median(times)


def looped_rlrt(mu: np.ndarray, n: int, p: int, nsim: int, rng: np.random.Generator) -> np.ndarray:
    """Peer: one simulation at a time (RLRsim's loop), vectorised over the λ grid only."""
    lam = lambda_grid()[1:]
    lm = lam[:, None] * mu[None, :]
    fN, fD, sumlog = lm / (1 + lm), 1 / (1 + lm), np.log1p(lm).sum(axis=1)
    out = np.empty(nsim)
    for s in range(nsim):
        w = rng.chisquare(1.0, mu.size)
        rest = rng.chisquare(n - p - mu.size)
        LR = (n - p) * np.log1p((fN @ w) / (fD @ w + rest)) - sumlog
        stop = np.flatnonzero(np.diff(np.r_[0.0, LR]) < 0)
        k = stop[0] if stop.size else LR.size
        out[s] = max(LR[k - 1], 0.0) if k > 0 else 0.0
    return out


def bench_rlrt() -> None:
    df = pd.read_csv(DATA, dtype={"Subject": str})
    d = cm.make_design("Reaction ~ Days + (1 | Subject)", df, method="REML")
    mu = rlrt_eigenvalues(d.X, component_z(d, components(d)[0]))
    with single_threaded_blas():
        exact_rlrt(d, nsim=100, seed=0)  # warm-up (imports)
        whole = median_time(lambda: exact_rlrt(d, nsim=10_000, seed=1))
        sim = median_time(lambda: simulate_rlrt_null(mu, d.n, d.p, 10_000, rng=1))
        peer = 10 * median_time(lambda: looped_rlrt(mu, d.n, d.p, 1000, np.random.default_rng(1)), 3)
    a = simulate_rlrt_null(mu, d.n, d.p, 20_000, rng=2)
    b = looped_rlrt(mu, d.n, d.p, 20_000, np.random.default_rng(3))
    res = exact_rlrt(d, nsim=10_000, seed=1)
    print("Exact RLRT, sleepstudy (1 | Subject), 10,000 simulations")
    print(f"  statistic {res.statistic:.4f} (RLRsim 107.1986), p = {res.p_value}")
    c = [1e3 * x for x in CPU[-3:]]
    print("  (wall time, and CPU time of this process)")
    print(f"  whole test (fits + eigenvalues + simulation): {whole * 1e3:8.1f} ms  {c[0]:7.1f} ms CPU   target < 1 s")
    print(f"  simulation only (vectorised):                 {sim * 1e3:8.1f} ms  {c[1]:7.1f} ms CPU")
    print(f"  peer, loop over simulations (scaled x10):     {peer * 1e3:8.1f} ms  {10 * c[2]:7.1f} ms CPU   "
          f"ratio {peer / sim:4.1f}x wall, {10 * c[2] / c[1]:4.1f}x CPU")
    print(f"  same null distribution: 95% quantiles {np.quantile(a, 0.95):.3f} vs {np.quantile(b, 0.95):.3f}, "
          f"P(0) {np.mean(a == 0):.3f} vs {np.mean(b == 0):.3f}")


def bench_bootstrap() -> None:
    rng = np.random.default_rng(11)
    a, n = 10, 5
    g = np.repeat(np.arange(a), n)
    df = pd.DataFrame({"y": 5 + rng.standard_normal(a)[g] + rng.standard_normal(a * n),
                       "g": [f"g{i}" for i in g]})
    d = cm.make_design("y ~ 1 + (1 | g)", df)
    bootstrap_draws(d, nsim=5, seed=0, refit="fitter")  # warm-up
    fitter = median_time(lambda: bootstrap_draws(d, nsim=200, seed=1, refit="fitter"), 3)
    closed = median_time(lambda: bootstrap_draws(d, nsim=200, seed=1, refit="closed_form"), 5)
    import warnings

    import statsmodels.formula.api as smf

    def sm_refits(k: int) -> None:
        r = np.random.default_rng(2)
        for _ in range(k):
            dd = df.assign(y=5 + r.standard_normal(a)[g] + r.standard_normal(a * n))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                smf.mixedlm("y ~ 1", dd, groups=dd["g"]).fit(reml=True)

    with single_threaded_blas():
        sm = 10 * median_time(lambda: sm_refits(20), 3)
    print("Parametric bootstrap, balanced one-way a = 10, n = 5, 200 refits (percentile intervals)")
    c = [1e3 * x for x in CPU[-3:]]
    print("  (wall time, and CPU time of this process)")
    print(f"  our fitter's refit path:       {fitter * 1e3:8.1f} ms  {c[0]:7.1f} ms CPU   target < 1 s")
    print(f"  closed-form refit path:        {closed * 1e3:8.1f} ms  {c[1]:7.1f} ms CPU")
    print(f"  peer, statsmodels MixedLM (20 refits scaled x10): {sm * 1e3:8.1f} ms  {10 * c[2]:7.1f} ms CPU   "
          f"ratio {sm / fitter:4.1f}x (fitter), {sm / closed:5.1f}x (closed form) wall")


if __name__ == "__main__":
    import os

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    bench_rlrt()
    print()
    bench_bootstrap()
