"""Benchmark: peak memory and time at 100,000 observations × 5,000 levels, through everything downstream.

Run as ``python benchmarks/bench_memory.py [--designs slope,crossed] [--steps fit,tests,profile,bootstrap]``
(each design in a fresh process, so each peak is its own).

Two simulated designs of 100,000 observations with 5,000 random-effect levels in all, both on the blocked
path (:func:`compare_mm.fitter.extended.choose_path`):

* ``slope``: ``y ~ x + (x | s) + (1 | i)``, 4,000 subjects × 1,000 items (9,000 random effects);
* ``crossed``: ``y ~ x + (1 | s) + (1 | i)``, 2,500 × 2,500 (the largest dense Schur block of the two).

Steps, REML, BLAS single-threaded: the fit with its BLUPs and conditional SDs; ``tests`` (LRTs, the exact
RLRT of each single variance with 200 simulations, Satterthwaite df); ``profile`` (REML profile
intervals of every parameter); ``bootstrap`` (20 parametric-bootstrap refits per model: percentile
intervals and a bootstrap LRT per component).  Printed: seconds per step and the process's peak RSS.

Measured (one run, the shared 2-core machine with other work running, load average 1.3–2.3): slope fit
2.7–3.0 s, tests 12.9 s, profile 126 s, bootstrap 188 s, peak 0.59 GB; crossed fit 15.4 s, tests 25.9 s,
profile 302 s, peak 0.64 GB (the issue's bound: 2 GB).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

import compare_mm
from compare_mm.fitter.extended import choose_path
from compare_mm.inference.run import run_inference
from compare_mm.parallel import single_threaded_blas

SHAPES = {"slope": ("y ~ x + (x | s) + (1 | i)", 4000, 1000), "crossed": ("y ~ x + (1 | s) + (1 | i)", 2500, 2500)}


def simulate(n_s: int, n_i: int, n: int = 100_000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s, i, x = rng.integers(0, n_s, n), rng.integers(0, n_i, n), rng.choice([-0.5, 0.5], n)
    y = 1 + 0.3 * x + rng.normal(0, .6, n_s)[s] + rng.normal(0, .3, n_s)[s] * x + rng.normal(0, .4, n_i)[i] \
        + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "s": s.astype(str), "i": i.astype(str)})


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6     # Linux: kilobytes


def child(key: str, steps: list[str]) -> None:
    formula, n_s, n_i = SHAPES[key]
    df = simulate(n_s, n_i)
    with single_threaded_blas():
        t = time.perf_counter()
        r = compare_mm.fit(formula, df, method="REML")
        print(f"{key}: {formula}, path {choose_path(r.design)}; fit {time.perf_counter() - t:.1f} s "
              f"({len(r.ranef)} BLUPs with conditional SDs, converged {r.converged}), peak {peak_gb():.2f} GB",
              flush=True)
        for step, kw in (("tests", dict(tests=True, nsim=200)), ("profile", dict(tests=False, profile="reml")),
                         ("bootstrap", dict(tests=False, bootstrap=20, workers=1))):
            if step in steps:
                t = time.perf_counter()
                out = run_inference(r, seed=1, **kw)
                print(f"{key}: {step} {time.perf_counter() - t:.1f} s ({len(out.tests)} tests, "
                      f"{len(out.intervals)} intervals), peak {peak_gb():.2f} GB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", default="slope,crossed")
    ap.add_argument("--steps", default="fit,tests,profile,bootstrap")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    steps = args.steps.split(",")
    if args.child:
        child(args.child, steps)
        return
    for key in args.designs.split(","):
        subprocess.run([sys.executable, __file__, "--child", key, "--steps", args.steps], check=True)


if __name__ == "__main__":
    main()
