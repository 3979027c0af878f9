"""Speed of the study runner, measured in one run against its peers; prints times and ratios.

1. 10,000 balanced one-way replicates (a = 10, n = 5) with REML + ML + ANOVA through ``run_study``
   (closed forms vectorised over replicates; simulate + fit + store, then summary).  Target < 2 s.
2. The same three kinds of fit via statsmodels MixedLM (REML, ML) on a sample of those replicates →
   per-fit time ratio statsmodels / closed form.
3. A random-slope study (18 groups × 10, 200 replicates, REML by backend reml) → fits per second.
4. The batched REML fitter — ``fit_columns`` of the prepared reml design (the fits as arrays, what study
   chunks call) and ``fit_many`` (the same fits as FitResults) — against the per-replicate fitter (``fit``) and statsmodels MixedLM on the same responses, in fits per second:
   random slope ``(x | g)`` 18 groups × x = 0…9 (target ≥ 5,000/s) and unbalanced one-way, 10 groups of
   sizes 2…11 (target ≥ 20,000/s); with the share of replicates the batch decided itself.
6. Profile-likelihood intervals of an unbalanced one-way design (10 groups of sizes 2…11), batched
   (:func:`compare_mm.inference.batch_profile.profile_many`, what study chunks call) against the
   per-replicate :func:`compare_mm.inference.profile_intervals`, replicates per second in ML and REML
   mode (target ≥ 1,000/s), and the largest relative difference of their limits.
7. Profile-likelihood intervals of random slopes ``(x || g)`` and ``(x | g)``, 10 groups × x = 0…9,
   batched (:mod:`compare_mm.inference.batch_profile_slope`) against the box-constrained per-replicate
   search (:func:`compare_mm.inference.profile.box_profile_intervals`), replicates per second.
5. A PyMC-heavy study with 2 local Dask workers vs 1 → speed-up (target ≥ 1.7×).  The model is compiled
   once in the client (~25 s, serial whatever the number of workers; reported separately) and the forked
   workers share it; the end-to-end speed-up with the compile grows with the study's length (Amdahl).

Usage: ``python benchmarks/bench_study.py [--quick] [--skip-pymc] [--only-batched]`` (the last: 4, 6 and 7).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def _run(study: dict, out: Path, **kw) -> float:
    from compare_mm.study.runner import run_study

    t0 = time.perf_counter()
    run_study(study, out, progress=False, **kw)
    return time.perf_counter() - t0


def bench_oneway(tmp: Path, reps: int) -> dict:
    from compare_mm.oneway.closed_forms import fit_oneway, oneway_stats
    from compare_mm.study.summarise import write_summary
    from compare_mm.study.chunk import run_chunk
    from compare_mm.study.plan import plan_chunks
    from compare_mm.study.config.load import load_config
    from compare_mm.study.store import write_chunk

    study = {"name": "bench_oneway", "seed": 1, "replicates": reps, "model": "oneway",
             "grid": {"groups": [10], "per_group": [5], "sigma_a2": [0.5]},
             "fits": [{"name": m.lower(), "backend": "reml", "method": m} for m in ("REML", "ML", "ANOVA")]}
    _run(dict(study, replicates=200), tmp / "warm")  # imports and first-call costs
    total = _run(study, tmp / "oneway")
    # breakdown: chunks (simulate + fit + rows), storing, summary
    cfg = load_config(study)
    t0 = time.perf_counter()
    frames = [(c, run_chunk(cfg, c)) for c in plan_chunks(cfg)]
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    for c, f in frames:
        write_chunk(tmp / "oneway2", c.name, f)
    t_store = time.perf_counter() - t0
    (tmp / "oneway2" / "manifest.json").write_text((tmp / "oneway" / "manifest.json").read_text())
    t0 = time.perf_counter()
    write_summary(tmp / "oneway2")
    t_summary = time.perf_counter() - t0
    # the closed forms alone, for the per-fit ratio
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((reps, 10, 5)) + rng.standard_normal((reps, 10, 1)) * np.sqrt(0.5)
    t0 = time.perf_counter()
    s = oneway_stats(Y)
    for m in ("REML", "ML", "ANOVA"):
        fit_oneway(s, m)
    t_closed = (time.perf_counter() - t0) / (3 * reps)
    return dict(total=total, fit=t_fit, store=t_store, summary=t_summary, per_fit_closed=t_closed,
                per_fit_study=total / (3 * reps), Y=Y)


def bench_statsmodels(Y: np.ndarray, n_sample: int) -> float:
    """Median per-fit time of statsmodels MixedLM (REML and ML) on the first replicates."""
    import pandas as pd
    import statsmodels.formula.api as smf

    times = []
    a, n = Y.shape[1:]
    g = np.repeat(np.arange(a), n)
    for k in range(n_sample):
        df = pd.DataFrame({"y": Y[k].ravel(), "g": g})
        for reml in (True, False):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                smf.mixedlm("y ~ 1", df, groups=df["g"]).fit(reml=reml)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_random_slope(tmp: Path, reps: int) -> dict:
    from compare_mm.study.store import read_rows

    study = {"name": "bench_slope", "seed": 2, "replicates": reps, "model": "random_slope",
             "grid": {"sigma_a2": [1.0]}, "fixed": {"groups": 18, "sigma_b2": 0.1, "rho": 0.2},
             "fits": [{"name": "reml", "backend": "reml", "method": "REML"}]}
    _run(dict(study, replicates=5), tmp / "slope_warm")
    total = _run(study, tmp / "slope")
    rows = read_rows(tmp / "slope")
    st = rows[(rows.row_type == "param")].drop_duplicates(["replicate"])
    return dict(total=total, fits_per_s=reps / total, median_fit=float(st.elapsed_s.median()),
                failed=int((~st.ok).sum()))


def _batch_case(formula: str, sizes: list[int], slope: bool, reps: int, n_single: int, n_sm: int) -> dict:
    """Fits/s of fit_many (all ``reps`` responses), fit (the first ``n_single``) and statsmodels (``n_sm``)."""
    import pandas as pd
    import statsmodels.formula.api as smf

    import compare_mm
    from compare_mm.backends.reml import BACKEND

    rng = np.random.default_rng(7)
    G = len(sizes)
    g = np.repeat(np.arange(G), sizes)
    x = np.concatenate([np.arange(s, dtype=float) for s in sizes])
    df = pd.DataFrame({"y": rng.normal(size=g.size), "x": x, "g": [f"g{i:02d}" for i in g]})
    design = compare_mm.make_design(formula, df)
    b = rng.normal(size=(reps, G)) * np.sqrt(0.1) if slope else np.zeros((reps, G))
    Y = 1.0 + 0.5 * x + rng.normal(size=(reps, G))[:, g] + b[:, g] * x + rng.normal(size=(reps, g.size))
    prep = BACKEND.prepare(design, {})
    prep.fit_many(Y[:20])                                                    # first-call costs
    prep.fit_columns(Y[:20])
    t0 = time.perf_counter()
    out = prep.fit_many(Y)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    prep.fit_columns(Y)
    t_columns = time.perf_counter() - t0
    t0 = time.perf_counter()
    for y in Y[:n_single]:
        prep.fit(y)
    t_single = time.perf_counter() - t0
    re = "~x" if slope else None
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for y in Y[:n_sm]:
            smf.mixedlm("y ~ x" if slope else "y ~ 1", df.assign(y=y), groups=df["g"], re_formula=re).fit(reml=True)
    t_sm = time.perf_counter() - t0
    share = sum(r.optimisation.optimizer.startswith("batched") for r in out) / reps
    return dict(columns=reps / t_columns, batched=reps / t_batch, single=n_single / t_single,
                statsmodels=n_sm / t_sm, share=share)


def bench_batched(quick: bool) -> dict:
    reps = 400 if quick else 4000
    slope = _batch_case("y ~ x + (x | g)", [10] * 18, True, reps, 20 if quick else 100, 5 if quick else 20)
    sizes = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    oneway = _batch_case("y ~ 1 + (1 | g)", sizes, False, reps, 20 if quick else 200, 5 if quick else 30)
    return dict(slope=slope, oneway=oneway)


def bench_profile(quick: bool) -> dict:
    import pandas as pd

    import compare_mm
    from compare_mm.fitter.batch_fit import BatchFitter
    from compare_mm.fitter.theta import make_layout
    from compare_mm.inference import profile_intervals
    from compare_mm.inference.batch_profile import profile_many

    reps, n_single = (400, 10) if quick else (4000, 40)
    rng = np.random.default_rng(11)
    sizes = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    g = np.repeat(np.arange(len(sizes)), sizes)
    df = pd.DataFrame({"y": rng.normal(size=g.size), "g": [f"g{i:02d}" for i in g]})
    design = compare_mm.make_design("y ~ 1 + (1 | g)", df)
    sa = np.sqrt(rng.choice([0.0, 0.1, 0.5], size=(reps, 1)))
    Y = sa * rng.normal(size=(reps, len(sizes)))[:, g] + rng.normal(size=(reps, g.size))
    fitter = BatchFitter(design, make_layout(design.blocks))
    out = {}
    for mode in ("ml", "reml"):
        profile_many(fitter, Y[:20], mode=mode)                             # first-call costs
        t0 = time.perf_counter()
        got = profile_many(fitter, Y, mode=mode)
        t_batch = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = [profile_intervals(design.with_y(y), mode=mode) for y in Y[:n_single]]
        t_single = time.perf_counter() - t0
        worst = max(abs(u - v) / abs(u) if u else abs(v) for a, b in zip(ref, got) for x, z in zip(a, b)
                    for u, v in ((x.lower, z.lower), (x.upper, z.upper)))
        out[mode] = dict(batched=reps / t_batch, single=n_single / t_single, worst=worst,
                         share=sum(r is not None for r in got) / reps)
    return out


def bench_profile_slope(quick: bool) -> dict:
    """Replicates/s of batched profile intervals of random slopes (10 groups × x = 0…9, as in the
    quickstart study) against the box-constrained per-replicate search (what profile_intervals ran for
    these designs before), and the share of replicates whose limits agree to 1e-6 of the width."""
    import pandas as pd

    import compare_mm
    from compare_mm.fitter.batch_fit import BatchFitter
    from compare_mm.fitter.theta import make_layout
    from compare_mm.inference.batch_profile import profile_many
    from compare_mm.inference.profile import box_profile_intervals

    reps, n_single = (40, 3) if quick else (400, 10)
    rng = np.random.default_rng(12)
    G, x = 10, np.arange(10.0)
    g, xx = np.repeat(np.arange(G), x.size), np.tile(x, G)
    df = pd.DataFrame({"y": rng.normal(size=g.size), "x": xx, "g": [f"g{i:02d}" for i in g]})
    Y = (rng.normal(size=(reps, G))[:, g] * np.sqrt(0.5) + (1.0 + rng.normal(size=(reps, G)) * np.sqrt(0.05))[:, g] * xx
         + rng.normal(size=(reps, g.size)))
    out = {}
    for formula, mode in (("y ~ x + (x || g)", "reml"), ("y ~ x + (x || g)", "ml"), ("y ~ x + (x | g)", "reml"),
                          ("y ~ x + (x | g)", "ml")):
        design = compare_mm.make_design(formula, df)
        fitter = BatchFitter(design, make_layout(design.blocks))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            profile_many(fitter, Y[:5], mode=mode)                          # first-call costs
            t0 = time.perf_counter()
            got = profile_many(fitter, Y, mode=mode)
            t_batch = time.perf_counter() - t0
            t0 = time.perf_counter()
            ref = [box_profile_intervals(design.with_y(y), mode=mode, level=0.95) for y in Y[:n_single]]
            t_single = time.perf_counter() - t0
        agree = sum(b is not None and all(abs(u.lower - v.lower) <= 1e-6 * (u.upper - u.lower)
                                          and abs(u.upper - v.upper) <= 1e-6 * (u.upper - u.lower)
                                          for u, v in zip(a, b)) for a, b in zip(ref, got))
        out[(formula, mode)] = dict(batched=reps / t_batch, single=n_single / t_single, agree=agree / n_single,
                                    share=sum(r is not None for r in got) / reps)
    return out


def bench_pymc(tmp: Path, reps: int) -> dict:
    study = {"name": "bench_pymc", "seed": 3, "replicates": reps, "model": "oneway",  # default chunks (5)
             "grid": {"sigma_a2": [0.5]}, "fixed": {"groups": 18, "per_group": 10},
             "fits": [{"name": "bayes", "backend": "pymc", "draws": 1000, "tune": 1000, "chains": 2,
                       "options": {"cores": 1}}]}
    from compare_mm.backends.pymc.backend import clear_cache
    from compare_mm.study.config.load import load_config
    from compare_mm.study.executors import warm_pymc
    from compare_mm.study.plan import plan_chunks
    from compare_mm.study.store import read_rows

    cfg = load_config(study)
    clear_cache()
    t0 = time.perf_counter()
    warm_pymc(cfg.model_dump(mode="json"), plan_chunks(cfg))  # the one compile both runs would pay first
    out: dict = {"compile": time.perf_counter() - t0}
    for k, w in (("pymc1", 1), ("pymc2", 2)):  # the compiled model is shared (forked workers)
        t = _run(study, tmp / k, workers=w)
        r = read_rows(tmp / k)
        e = r[(r.row_type == "param") & (r.fit == "bayes")].drop_duplicates("replicate").elapsed_s
        out[k] = dict(total=t, max=float(e.max()), median=float(e.median()), fit_sum=float(e.sum()))
    c = out["compile"]
    out["speedup"] = out["pymc1"]["total"] / out["pymc2"]["total"]
    out["speedup_with_compile"] = (out["pymc1"]["total"] + c) / (out["pymc2"]["total"] + c)
    return out


def _print_batched(quick: bool) -> None:
    bb = bench_batched(quick)
    for key, label, target in (("slope", "random slope (x | g) 18×10", 5000),
                               ("oneway", "unbalanced one-way, 10 groups", 20000)):
        r = bb[key]
        print(f"[4] {label}, REML fits/s: as arrays (fit_columns, what study chunks call) {r['columns']:.0f} "
              f"(target ≥ {target}), as FitResults (fit_many) {r['batched']:.0f} "
              f"({100 * r['share']:.1f} % decided by the batch), per-replicate {r['single']:.0f}, "
              f"statsmodels {r['statsmodels']:.1f} → arrays / per-replicate = {r['columns'] / r['single']:.0f}×, "
              f"arrays / statsmodels = {r['columns'] / r['statsmodels']:.0f}×")
    for mode, r in bench_profile(quick).items():
        print(f"[6] profile intervals ({mode}), unbalanced one-way 10 groups, replicates/s: batched "
              f"{r['batched']:.0f} (target ≥ 1000; {100 * r['share']:.1f} % by the batch), per-replicate "
              f"{r['single']:.1f} → {r['batched'] / r['single']:.0f}×; largest relative difference {r['worst']:.1e}")
    for (formula, mode), r in bench_profile_slope(quick).items():
        print(f"[7] profile intervals ({mode}), {formula} 10×10, replicates/s: batched {r['batched']:.1f} "
              f"({100 * r['share']:.1f} % by the batch), box-constrained per-replicate {r['single']:.2f} → "
              f"{r['batched'] / r['single']:.0f}×; {100 * r['agree']:.0f} % of the per-replicate sample equal "
              f"to 1e-6 of the width")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    ap.add_argument("--skip-pymc", action="store_true")
    ap.add_argument("--pymc-replicates", type=int, default=96, help="replicates of the PyMC study (default 96)")
    ap.add_argument("--only-batched", action="store_true", help="only the batched fitter and profiles (4, 6, 7)")
    args = ap.parse_args()
    if args.only_batched:
        _print_batched(args.quick)
        return
    reps = 1000 if args.quick else 10_000
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        o = bench_oneway(tmp, reps)
        print(f"[1] one-way a=10 n=5, {reps} replicates × (REML, ML, ANOVA), run_study end to end: "
              f"{o['total']:.2f} s (target < 2 s)")
        print(f"    breakdown: simulate+fit+rows {o['fit']:.2f} s, Parquet {o['store']:.2f} s, "
              f"summary {o['summary']:.2f} s; closed-form fit alone {o['per_fit_closed'] * 1e6:.2f} µs/fit")
        sm = bench_statsmodels(o["Y"], 10 if args.quick else 30)
        print(f"[2] statsmodels MixedLM per fit (median, REML+ML): {sm * 1e3:.1f} ms → ratio "
              f"statsmodels / study-per-fit = {sm / o['per_fit_study']:.0f}×, / closed form alone = "
              f"{sm / o['per_fit_closed']:.0f}×; 30,000 statsmodels fits would take {sm * 3 * reps / 60:.1f} min")
        rs = bench_random_slope(tmp, 50 if args.quick else 200)
        print(f"[3] random slope 18×10, REML (backend reml): {rs['fits_per_s']:.0f} fits/s end to end "
              f"({rs['total']:.2f} s), median fit {rs['median_fit'] * 1e3:.2f} ms, failed {rs['failed']}")
        _print_batched(args.quick)
        if not args.skip_pymc:
            p = bench_pymc(tmp, 8 if args.quick else args.pymc_replicates)
            n = 8 if args.quick else args.pymc_replicates
            print(f"[5] PyMC study ({n} replicates, one-way 18×10, 2 chains × 1000+1000, cores=1 per fit): "
                  f"1 worker {p['pymc1']['total']:.1f} s, 2 workers {p['pymc2']['total']:.1f} s → "
                  f"speed-up {p['speedup']:.2f}× (target ≥ 1.7×)")
            print(f"    compile (once, in the client, shared by forked workers): {p['compile']:.1f} s; "
                  f"end to end with it: speed-up {p['speedup_with_compile']:.2f}×")
            for k, label in (("pymc1", "1 worker "), ("pymc2", "2 workers")):
                print(f"    {label}: median fit {p[k]['median']:.3f} s, slowest fit {p[k]['max']:.2f} s, "
                      f"sum of fit times {p[k]['fit_sum']:.1f} s")


if __name__ == "__main__":
    main()
