"""Per-replicate wall time of the PyMC backend: compile once + nutpie with_data vs a naive fresh model.

For one-way (18 groups × 10, ``y ~ 1 + (1 | g)``) and random-slope (18 × 10, ``y ~ x + (x | g)``) data,
2 chains with the backend's default draws, tuning and target_accept (1,500 + 1,000 at 0.95 since the
converged-chains defaults; ``--draws 1000 --tune 1000`` for the earlier notes' setting); the naive fit
draws as many with PyMC's own defaults otherwise:

* ours: ``compare_mm`` PyMC backend (nutpie; the first fit compiles — its compile time is reported
  separately — then every replicate reuses the compiled model with new data; the wall time is the whole
  ``fit`` including the summaries; ``ours_sampling_s`` is the nutpie call alone), median over ``--reps``
  replicates;
* quadrature: ``sampler="quadrature"`` (the exact posterior of the same model by integration over the
  covariance parameters; no PyMC, no compile), median over ``--quad-reps`` replicates;
* naive: a fresh ``pm.Model`` (the same non-centred model and priors written directly in PyMC) and
  ``pm.sample`` (PyMC's default NUTS, 2 chains, cores=2) per replicate, median over ``--naive-reps``.

* quadrature batched (``--batch R``): ``prepare`` once, then ``fit_many`` on R responses (what a study
  chunk does; :mod:`compare_mm.backends.pymc.quadrature_batch`), wall time / R, one-way only (the
  random-slope model is not batched: ``fit_many`` fits it replicate by replicate).

Run: ``.venv/bin/python benchmarks/bench_pymc.py [--reps 5] [--naive-reps 3] [--quad-reps 20] [--batch 400]
[--models one-way]``.
Ratios printed: ``nuts_over_quad`` (our NUTS per fit / quadrature per fit; issue 12 target ≥ 100) and
``naive_over_quad`` (naive pm.sample per fit / quadrature per fit; target ≥ 2,000); with ``--batch``
also ``quad_batch_s`` (batched quadrature per fit, wall; ``quad_batch_cpu_s``: process CPU time) and
``nuts_over_quad_batch`` (wall ratio).  ``*_cpu`` columns are process CPU seconds: our NUTS runs its two
chains as two threads (~1.5 CPU seconds per wall second on 2 cores), the quadrature one thread, so
``nuts_over_quad_cpu`` and ``nuts_over_quad_batch_cpu`` compare the two on equal resources (what a study
with ``--workers 2`` gets per fit).

Note (2026-11-22, 2 cores): the random-slope data have an uncentred x (0..9); the backend samples in
centred coordinates (exact reparameterisation, pymc_model docstring), which took NUTS from ~31 to ~19
leapfrog steps per draw, and the one-term likelihood uses sufficient statistics (pymc_stats).

Note (2026-12-02, 2 shared cores, --reps 3 --naive-reps 2 --quad-reps 10): quadrature per fit 0.013 s
one-way (18× faster than our NUTS, 1,431× than naive) but 6.6 s random slope (4-D ψ on an axis-aligned
grid; the uncentred x makes the posterior of (sd_0, ρ) strongly correlated, so the box is mostly empty:
0.16× our NUTS) — issue 12's targets (≥ 100×, ≥ 2,000×) are not met yet.

Note (2026-12-02, 2 cores shared with other jobs, load ~7): quadrature alone, medians over 5 simulated
data sets per design (x = 0..9 per group, σ_B² = 0.05, σ² = 1, σ_A² alternating 0.5 and 0), one run each,
before → after the ½ end weight on even η axes, the 1/√2 refinement ratio in d = 3, the per-pattern
sums of (1) (a balanced design has one pattern) and the cached β moments / reused nodes:

    one-way 18 × 10, y ~ 1 + (1 | g) ........ 0.034 s → 0.038 s (unchanged; noise)
    y ~ x + (x || g), 10 × 10 ............... 2.0 s   → 0.25 s
    y ~ x + (x || g), 18 × 10 ............... 3.3 s   → 0.10 s
    y ~ x + (x | g), 10 × 10 ............... 56 s    → 7.2 s   (same grids; the σ_A = 0 fits need h = 0.35–0.25)
    y ~ x + (x | g), 18 × 10 ............... 46 s    → 2.7 s

(x || g) is now below our NUTS (~0.5–1 s per fit) but not yet 100× faster; (x | g) is still slower than
NUTS: its grids are unchanged (Gregory end weights, refinement to h = 0.35 or ¼ when σ_A = 0).

Note (2026-12-02, 2 cores shared with other jobs, load ≈ 3–8; --reps 5 --naive-reps 1 --quad-reps 20
--batch 400 --models one-way): our NUTS 0.185–0.249 s per fit, quadrature per replicate 0.012–0.017 s,
batched 0.006 s wall per fit on the loaded machine.  Idle machine (load < 1, same data, fit_many on 400
responses, median of 3): batched 2.5 ms per fit (per replicate 7.7 ms), i.e. 74–100× our NUTS per fit —
at, not clearly past, issue 12's ≥ 100×.

Note (2026-12-02, 2 cores shared with other jobs, load 6–14 — all absolute times inflated several-fold;
read the ratios): random slope 18 × 10 after the per-design-pattern group effects (quadrature_ranef),
the ψ moments from axis masses and the prior/Jacobian per grid axis.  One run each, ``--reps 3
--naive-reps 1 --quad-reps 10 --models "random slope"``, before → after:

    y ~ x + (x | g): quadrature per fit 8.5 s → 2.5 s; nuts_over_quad 0.52 → 1.9; naive_over_quad 68 → 72
    (the naive figure is the loaded pm.sample of one replicate, 582 s and 183 s in the two runs: noise)

Paired runs of 8 fits each (before/after alternating, 3 pairs, medians of the per-pair ratios): (x | g)
per fit 0.31× the time before (3.2× faster), (x || g) 0.58× (1.7×).  The results are the same to 1e-11
posterior SDs (group effects, moments) and, for the quantiles, within 3e-5 posterior SDs (a node at the
pruning threshold can flip).  Issue 12's targets (≥ 100× our NUTS, ≥ 2,000× naive) are still not met for
random slopes: the (x | g) grid has 0.8–3.7 × 10⁵ nodes (the axis-aligned box around a correlated
posterior) and the per-node algebra is already O(patterns); a σ-free eigendecomposition of Λ'Z_i'Z_iΛ
per (sd, ρ) node with σ elementwise was measured at 0.2–0.5× the speed of the pointwise evaluation in
NumPy (gathering the per-node coefficients costs as much as recomputing them) and not kept.


Note (2026-12-03, 2 cores, load 6–8, one run, --models one-way --reps 5 --naive-reps 1 --quad-reps 10
--batch 400; after the exact β-mixture summaries, blocks of 32 replicates and one BLAS thread): our NUTS
0.41 s per fit, naive pm.sample 14.8 s, quadrature per replicate 25 ms, batched 3.8 ms wall (1.8 ms CPU)
per fit: nuts_over_quad_batch 108×, naive over batched 3,900×.  Under this load NUTS (two threads) is
slowed more than the single-threaded batch; on an idle machine the same ratio was ~50× (NUTS 0.088 s,
batch 1.8 ms), so the ≥ 100× target is met only on a loaded machine.  Paired runs of fit_many on 400
responses, this tree vs the previous one, interleaved, idle-ish machine: 1.69 vs 1.80 ms per fit.

Note (2026-12-03, 2 cores shared with other jobs, load 6.6–9.5; ``--reps 3 --naive-reps 1 --quad-reps 5``,
both models, one run of the tree before the flood fill and one of this tree, back to back; per fit):

    tree                     model         our NUTS  naive pm.sample  quadrature  NUTS/quad  naive/quad
    before the flood fill    one-way       0.37 s    40 s             44 ms        8.4        925
    before the flood fill    random slope  1.39 s    112 s            0.96 s       1.4        117
    flood fill (this tree)   one-way       0.35 s    14 s             49 ms        7.0        284
    flood fill (this tree)   random slope  1.43 s    72 s             0.45 s       3.2        160

(naive: one pm.sample each, so its figure is mostly load noise.)  Interleaved quadrature-only timing of
``(x | g)`` per fit, before/after in alternating fresh processes, 3 pairs of 3 fits: after/before 0.34,
0.93, 0.61 (median 0.61; the flood evaluates 0.22 of the box's nodes on the bench data, the rest is the summaries).  The
per-replicate one-way quadrature is unchanged (44 vs 49 ms: noise); its batched figure (``--batch``) is
the 2026-12-03 note's above.  Random slopes remain far from issue 12's targets (≥ 100× our NUTS):
the stopping rule takes the (x | g) grid to h = 1/√2 (~7 × 10⁴ evaluated nodes).

Note (2026-12-04, 2 cores, idle: load 0.5; two runs of ``--reps 5 --naive-reps 1 --quad-reps 10 --batch
400``, after the direct-count mixture merge and flat-index row quantiles, fit_many 1.08 → 1.03 ms per fit
in paired runs):

    model         our NUTS wall / CPU     naive     quadrature wall / CPU   NUTS/quad wall (CPU)   naive/quad
    one-way       0.068–0.090 / 0.105–0.148 s  2.3 s   10 ms / 10 ms          6.5–9.0 (10.5–14.9)    224–230
      batched     —                       —         1.05 ms / 1.28 ms       63–86 (81–116)         2,180
    random slope  0.255 s / 0.42 s        11.2 s    94 ms / 190 ms          2.7 (2.2)              119

Re-run with the quadrature timed before any NUTS fit (this script's order since; ``--reps 7``): our NUTS
0.069 s wall / 0.102 s CPU, batched quadrature 0.915 ms wall = CPU per fit: 75× in wall time, 112× on
equal CPU, naive pm.sample 4.4 s (4,836× the batch).  The batched rows of the table above were timed
right after pm.sample and include its slow-down (about 1.4× for ~2 s afterwards).

The one-way batch is at the ≥ 100× target on equal CPU and 63–86× in wall time; random slopes remain
far from it (module notes above: ~1.8 × 10⁴ evaluated nodes at h = 1 and ~8 × 10⁴ at h = 1/√2; the
same data with x centred give the same grid sizes, so the posterior's correlation is not the cause).

Note (2026-12-07, 2 cores, idle; two runs of ``--reps 5 --naive-reps 1 --quad-reps 10 --batch 400``, the
second after single quadrature fits got one BLAS thread):

    model         our NUTS wall / CPU   naive     quadrature wall / CPU     NUTS/quad wall (CPU)   naive/quad
    one-way       0.071 / 0.112 s       6.2 s     —                         —                      —
      batched     —                     —         0.89 ms / 0.89 ms         79 (125)               6,971
    one-way       0.067 / 0.107 s       2.1 s     —                         —                      —
      batched     —                     —         0.86 ms / 0.86 ms         79 (125)               2,443
    random slope  0.279 / 0.474 s       16.6 s    121 ms / 242 ms           2.3 (2.0)              137
    random slope  0.261 / 0.448 s       8.2 s     115 ms / 115 ms           2.3 (3.9)              72

(naive: one pm.sample each, so its figure moves with the machine; the batched one-way quadrature's ratio
to our NUTS is ≥ 100 on equal CPU and 79 in wall time, random slopes remain far from issue 12's targets.)
A grid-size study of the (x | g) fits (8 bench data sets, reference: h = ¼): 4 of the 8 stopped at h = 1,
within 1.7–2.5e-4 posterior SDs of the reference; the other 4 refined to h = 1/√2, which changed their
summaries by only 1.5–6e-4 (≈ 60 % of their time went to that confirmation); a quintic instead of a cubic spline for the axis
marginals let 7 of 8 stop at h = 1 (median 83 → 48 ms) but its change estimate then fell below the true
error once (3.8e-4 vs 5.8e-4) and on 10 × 10 data sets it refined further (median 175 → 242 ms), so it
was not kept.

Note (2026-12-07, afternoon, 2 cores, load ≈ 1.2; one run of ``--reps 5 --naive-reps 1 --quad-reps 10
--batch 400`` after the flood fill's tail check and the three-point mode vertex):

    model         our NUTS wall / CPU   naive    quadrature wall    NUTS/quad wall (CPU)   naive/quad
    one-way       0.085 / 0.133 s       2.9 s    —                  —                      —
      batched     —                     —        1.20 ms            71 (111)               2,396
    random slope  0.334 / 0.565 s       10.5 s   155 ms             2.2 (3.7)              68

The machine ran ~35 % slower than in the morning (the batched one-way fit_many took 1.10–1.24 ms per fit
at both this tree and c09d31f, alternating, against 0.86 ms then); the ratios are those of the earlier
notes.  Tried for the batched one-way path and not kept: 1,025 instead of 2,049 fine-grid points
(1.12× faster, but the ETI ends moved by up to 1.9e-4 posterior SDs, 3.5× the fine-grid error before,
and the mode of σ_A² flipped between 0 and the interior maximum — 1.2–1.4 posterior SDs — on some of the
200 fits of each of three prior presets); blocks of 64–128
replicates instead of 32 (≤ 1.07×, within the noise).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def simulate(kind: str, rng: np.random.Generator) -> pd.DataFrame:
    g = np.repeat(np.arange(18), 10)
    x = np.tile(np.arange(10.0), 18)
    if kind == "one-way":
        y = 10 + rng.normal(0, 2, 18)[g] + rng.normal(0, 3, g.size)
    else:
        y = 250 + 10 * x + rng.normal(0, 25, 18)[g] + rng.normal(0, 6, 18)[g] * x + rng.normal(0, 25, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g]})


FORMULA = {"one-way": "y ~ 1 + (1 | g)", "random slope": "y ~ x + (x | g)"}


def naive_fit(df: pd.DataFrame, kind: str, draws: int, tune: int, seed: int) -> float:
    """Fresh PyMC model + pm.sample; returns wall seconds (model building included)."""
    import pymc as pm

    t0 = time.perf_counter()
    g = pd.factorize(df["g"], sort=True)[0]
    y = df["y"].to_numpy()
    sy = y.std(ddof=1)
    with pm.Model():
        if kind == "one-way":
            mu = pm.Normal("mu", y.mean(), 2.5 * sy)
            sd_a = pm.HalfNormal("sd_a", sy)
            z = pm.Normal("z", 0, 1, shape=18)
            eta = mu + sd_a * z[g]
        else:
            x = df["x"].to_numpy()
            b0 = pm.Normal("b0", y.mean(), 2.5 * sy)
            b1 = pm.Normal("b1", 0, 2.5 * sy / x.std(ddof=1))
            chol, _, _ = pm.LKJCholeskyCov("chol", n=2, eta=2.0,
                                           sd_dist=pm.HalfNormal.dist(np.array([sy, sy / x.std(ddof=1)])),
                                           compute_corr=True)
            z = pm.Normal("z", 0, 1, shape=(18, 2))
            u = pm.math.dot(z, chol.T)
            eta = b0 + u[g, 0] + (b1 + u[g, 1]) * x
        sigma = pm.Exponential("sigma", 1 / sy)
        pm.Normal("y", eta, sigma, observed=y)
        pm.sample(draws=draws, tune=tune, chains=2, cores=2, random_seed=seed, progressbar=False,
                  compute_convergence_checks=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--naive-reps", type=int, default=3)
    ap.add_argument("--draws", type=int, default=None,
                    help="NUTS draws per chain (default: the backend's default, what a user gets)")
    ap.add_argument("--tune", type=int, default=None, help="NUTS tuning steps (default: the backend's)")
    ap.add_argument("--quad-reps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=0, help="also time fit_many on this many one-way responses")
    ap.add_argument("--models", nargs="+", choices=list(FORMULA), default=list(FORMULA))
    args = ap.parse_args()
    logging.getLogger("pymc").setLevel(logging.ERROR)

    import compare_mm as cm
    from compare_mm.backends.pymc.backend import BACKEND

    rows = []
    for kind, formula in FORMULA.items():
        if kind not in args.models:
            continue
        rng = np.random.default_rng(123)
        design = cm.make_design(formula, simulate(kind, rng))
        # the quadrature first: right after a NUTS fit or pm.sample (its worker processes shutting down)
        # the same fit_many ran 1.5× slower for ~2 s (0.97 → 1.44 ms per fit), which the earlier notes'
        # batched figures include
        quad, quad_cpu = [], []
        for r in range(args.quad_reps + 1):
            d = design.with_y(simulate(kind, rng)["y"].to_numpy())
            t0, c0 = time.perf_counter(), time.process_time()
            BACKEND.fit(d, {"sampler": "quadrature"})
            quad.append(time.perf_counter() - t0)
            quad_cpu.append(time.process_time() - c0)
        quad, quad_cpu = quad[1:], quad_cpu[1:]  # the first call pays scipy's imports
        batch = {}
        if args.batch and kind == "one-way":
            Y = np.stack([simulate(kind, rng)["y"].to_numpy() for _ in range(args.batch)])
            prepared = BACKEND.prepare(design, {"sampler": "quadrature"})
            prepared.fit_many(Y[:8], list(range(8)))  # warm-up
            t0, c0 = time.perf_counter(), time.process_time()
            res = prepared.fit_many(Y, list(range(args.batch)))
            batch = dict(quad_batch_s=(time.perf_counter() - t0) / args.batch,
                         quad_batch_cpu_s=(time.process_time() - c0) / args.batch,
                         quad_batch_fallbacks=sum(not r.diagnostics["batched"] for r in res))
        opts = {k: v for k, v in dict(draws=args.draws, tune=args.tune).items() if v is not None}
        opts["chains"] = 2
        t0 = time.perf_counter()
        first = BACKEND.fit(design, dict(opts, seed=0))
        first_s = time.perf_counter() - t0
        ours, sampling, ours_cpu = [], [], []
        for r in range(args.reps):
            d = design.with_y(simulate(kind, rng)["y"].to_numpy())
            t0, c0 = time.perf_counter(), time.process_time()    # nutpie's chains are threads of this process
            res = BACKEND.fit(d, dict(opts, seed=r + 1))
            ours.append(time.perf_counter() - t0)
            ours_cpu.append(time.process_time() - c0)
            sampling.append(res.diagnostics["sample_s"])
            assert res.diagnostics["compile_s"] == 0.0
        draws, tune = first.options["draws"], first.options["tune"]   # the naive fit draws as many
        naive = [naive_fit(simulate(kind, rng), kind, draws, tune, r) for r in range(args.naive_reps)]
        row = dict(model=kind, compile_s=first.diagnostics["compile_s"], first_fit_s=first_s,
                   ours_median_s=float(np.median(ours)), ours_sampling_s=float(np.median(sampling)),
                   ours_cpu_s=float(np.median(ours_cpu)), quad_cpu_s=float(np.median(quad_cpu)),
                   nuts_over_quad_cpu=float(np.median(ours_cpu) / np.median(quad_cpu)),
                   naive_median_s=float(np.median(naive)),
                   speedup=float(np.median(naive) / np.median(ours)),
                   quad_median_s=float(np.median(quad)),
                   nuts_over_quad=float(np.median(ours) / np.median(quad)),
                   naive_over_quad=float(np.median(naive) / np.median(quad)))
        if batch:
            per, per_cpu = batch["quad_batch_s"], batch["quad_batch_cpu_s"]
            row.update(batch, quad_over_batch=float(np.median(quad) / per),
                       nuts_over_quad_batch=float(np.median(ours) / per),
                       naive_over_quad_batch=float(np.median(naive) / per),
                       nuts_over_quad_batch_cpu=float(np.median(ours_cpu) / per_cpu))
        rows.append(row)
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    draws = args.draws if args.draws is not None else "the backend's default"
    tune = args.tune if args.tune is not None else "default"
    print(f"\nPer-replicate wall time, 2 chains x {draws} draws + {tune} tune "
          f"(ours: median of {args.reps}; naive fresh pm.Model + pm.sample: median of {args.naive_reps}; "
          f"quadrature: median of {args.quad_reps}"
          + (f"; quadrature batched: fit_many on {args.batch} one-way responses" if args.batch else "") + ")")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
