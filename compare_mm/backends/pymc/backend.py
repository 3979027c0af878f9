"""The PyMC backend: a Bayesian fit of the same ModelSpec, compiled once per design shape.

Options (``compare_mm.fit(..., backend="pymc", **options)``; defaults in config/defaults.yaml):

``draws`` (1500), ``tune`` (1000), ``chains`` (2), ``cores`` (min(chains, cpu count); nutpie samples
chains in threads), ``seed`` (None: fresh entropy, recorded in the result), ``target_accept`` (0.95),
``level`` (0.95, for ETI and HDI), ``parameterisation`` ("auto" | "noncentred" | "centred" | "marginal";
"auto", the default, is marginal for one random-effects term with at most two effects per level and
non-centred otherwise, :func:`auto_parameterisation`; the result's ``diagnostics["parameterisation"]``
says which ran and ``diagnostics["parameterisation_note"]`` why), ``until_converged`` (false | true |
``{"max_draws": 4000, "rhat": 1.01, "ess": 400}``: while some R-hat ≥ rhat or some bulk ESS < ess, run
another round of ``chains`` chains and pool them, up to ``max_draws`` draws per chain over the rounds;
:func:`_sample_rounds`; ``diagnostics["rounds"]``, ``["total_draws"]`` and ``["until_converged"]`` record it),
``sampler`` ("nutpie" | "pymc" | "quadrature": the exact posterior by integration over the covariance
parameters, :mod:`.quadrature_fit`; draws/tune/chains are then ignored, with a warning; ``prepare`` then builds no PyMC
model and its ``fit_many`` fits a study chunk's responses as one batch, :mod:`.quadrature_batch`),
``prior``: a mapping such as ::

    {"sd": {"half_normal": 1.0},                       # every random-effect SD (absolute scale)
     "sd_(Intercept)|Subject": {"half_cauchy": 5.0},   # one SD by canonical name ("var_…" too)
     "sd_a": {...}, "sd_b": {...},                     # first random intercept / first random slope
     "sigma": {"exponential": 1.0},                    # scale = 1/lam
     "fixef": {"normal": 10.0}, "Days": {"normal": {"loc": 0, "scale": 5}},
     "cor": {"lkj": 2.0}}                              # LKJ η (or per "cor_…" name)

SD families: half_normal, half_cauchy, half_student_t (``{"nu": 3, "scale": 1}``), exponential,
inverse_gamma on the variance (``{"alpha": 1, "beta": 1}``).  A prior given by family name only, or with
``"autoscale": true``, is scaled to the data like the defaults (defaults.yaml).

Compile once: the model keeps y, X, Z, codes and the prior scales in ``pm.Data``; it is built and
compiled by nutpie once per (design.shape_key, parameterisation, sampler, prior families/shapes) per
process, cached (LRU), and re-used with ``compiled.with_data(...)`` for every further data set of the
same shape; nutpie's numba callbacks are also cached on disk across processes (:mod:`.compile_cache`).
:func:`compile_count` counts the compilations.  With ``sampler="pymc"`` the built model is
cached and ``pm.set_data`` + ``pm.sample`` run per fit (PyMC compiles its own functions per call).

Per-replicate cost: nutpie stores only beta, sigma, sd_k, corr_k and u_k (``var_names``), returns its raw
Arrow trace (no per-replicate InferenceData of every variable and statistic, warm-up included), and the
summaries are vectorised over parameters (:mod:`.draws`, :mod:`.summary`); the linear predictor avoids
2-D fancy indexing and small ``dot`` products (:mod:`.model`), which dominated the gradient cost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ...model.design import Design
from ...errors import OptionError, UnsupportedModelError
from ...results.schema import FitResult
from ...model.spec import ModelSpec
from ..base import BackendBase, check_level
from .draws import idata_to_numpy, raw_to_numpy
from .marginal import draw_ranef
from .model import build_model, model_data
from .priors import describe_priors, load_defaults, resolve_priors
from .summary import build_result, convergence
from .tails import moment_orders
from .status import announce_compile, design_label

SAMPLERS = ("nutpie", "pymc", "quadrature")
OPTION_KEYS = ("draws", "tune", "chains", "cores", "seed", "target_accept", "level", "parameterisation",
               "sampler", "prior", "until_converged")
PARAMETERISATIONS = ("auto", "noncentred", "centred", "marginal")
_PARAM_ALIASES = {"auto": "auto", "noncentred": "noncentred", "noncentered": "noncentred", "centred": "centred",
                  "centered": "centred", "marginal": "marginal"}
UNTIL_KEYS = ("max_draws", "rhat", "ess")

COMPILE_COUNT = 0
_CACHE: OrderedDict = OrderedDict()
_LOCK = threading.Lock()


def compile_count() -> int:
    """How many models this process has built and compiled (cache misses)."""
    return COMPILE_COUNT


def clear_cache() -> None:
    """Forget every compiled model (the counter is kept)."""
    with _LOCK:
        _CACHE.clear()


@dataclass
class _Entry:
    model: Any
    compiled: Any
    compile_s: float
    cache: str = "none"  # how nutpie's numba callbacks were obtained (compile_cache.compile_pymc_model)


def _int(options: Mapping[str, Any], key: str, default: Any, minimum: int) -> Any:
    v = options.get(key, default)
    if v is None and key in ("cores", "seed"):
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise OptionError(f"Option {key!r} must be an integer ≥ {minimum}, got {v!r}.")
    return int(v)


#: |mean(x)| / SD(x) beyond which a correlated slope is refused (:func:`check_far_slope`); the limit the
#: design check applied to every backend before the reml fitter centred such slopes, so nothing fitted
#: before is refused now
FAR_SLOPE_SD = 10.0


def check_far_slope(design: Design) -> None:
    """A correlated slope with |mean| > :data:`FAR_SLOPE_SD` · SD is refused: the priors are stated on the
    intercept and its SD at x = 0, which far outside the data are no longer weakly informative (sleepstudy
    with Days + 2000 gave a slope of 0.04 instead of 10.5, reported converged).  The model itself is
    sampled in centred coordinates already (:mod:`.model`); it is the default priors that do not carry
    over (the reml fitter centres such slopes and maps back exactly, :mod:`compare_mm.fitter.centring`)."""
    for b, t in zip(design.blocks, design.spec.random):
        if not b.centred:
            continue
        for e, c in enumerate(b.shift):
            sd = float(np.asarray(b.Z)[:, e].std())
            if c == 0.0 or abs(c) <= FAR_SLOPE_SD * sd:
                continue
            x = b.term_names[e]
            raise UnsupportedModelError(
                f"The pymc backend does not fit {t} with {x!r} around {c:.6g}, far from 0: its default priors on "
                f"the intercept and its SD at {x} = 0 are then far from weakly informative; centre it (e.g. "
                f"{x} − {c:.4g}) and refit, or use the reml backend.")


def resolve_options(design: Design, options: Mapping[str, Any] | None) -> tuple[dict[str, Any], Any]:
    """Validate the options against defaults.yaml; return (resolved options, PriorSet)."""
    check_far_slope(design)
    options = dict(options or {})
    unknown = [k for k in options if k not in OPTION_KEYS]
    if unknown:
        raise OptionError(f"Unknown option {unknown[0]!r} for the pymc backend; "
                          f"valid options are {', '.join(OPTION_KEYS)}.")
    d = load_defaults()["sampler"]
    out: dict[str, Any] = {}
    sampler = str(options.get("sampler", d["sampler"])).lower()
    if sampler not in SAMPLERS:
        raise OptionError(f"Option 'sampler' must be one of {', '.join(SAMPLERS)}, got {options['sampler']!r}.")
    out["sampler"] = sampler
    if sampler == "quadrature":  # quadrature: one-sentence reason when ψ has more than 4 dimensions
        from .quadrature_fit import check_supported

        check_supported(design)
    raw = str(options.get("parameterisation", d["parameterisation"]))
    param = _PARAM_ALIASES.get(raw.lower().replace("-", "").replace("_", ""))
    if param is None:
        raise OptionError(f"Option 'parameterisation' must be one of {', '.join(PARAMETERISATIONS)}, "
                          f"got {raw!r}.")
    if param == "marginal" and not marginal_applies(design):
        raise OptionError("Option parameterisation='marginal' needs exactly one random-effects term with "
                          "at most two effects per level; use 'noncentred' for this model.")
    out["parameterisation_option"] = param
    out["parameterisation"] = auto_parameterisation(design) if param == "auto" else param
    out["draws"] = _int(options, "draws", d["draws"], 1)
    out["tune"] = _int(options, "tune", d["tune"], 0)
    out["chains"] = _int(options, "chains", d["chains"], 1)
    cores = _int(options, "cores", d["cores"], 1)
    out["cores"] = cores if cores is not None else max(1, min(out["chains"], os.cpu_count() or 1))
    seed = _int(options, "seed", None, 0)
    out["seed"] = seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0])
    out["target_accept"] = check_level(options.get("target_accept", d["target_accept"]), "target_accept")
    out["level"] = check_level(options.get("level", d["level"]))
    out["until_converged"] = resolve_until(options.get("until_converged", d.get("until_converged", False)),
                                           load_defaults().get("until_converged", {}))
    priors = resolve_priors(design, options.get("prior"))
    return out, priors


def marginal_applies(design: Design) -> bool:
    """True if the marginal parameterisation can fit ``design``: one random-effects term, q ≤ 2."""
    return len(design.blocks) == 1 and design.blocks[0].q <= 2


def auto_parameterisation(design: Design) -> str:
    """``parameterisation="auto"`` (the default): marginal where it applies, else non-centred.

    Marginal integrates u out, so the sampler moves in (β, ψ) only and meets no funnel when a variance is
    near 0 (the non-centred model's divergences at σ_A² = 0); measured on the shipped studies' one-way and
    random-slope conditions (docs/sampler_defaults.md).  Several random-effects terms or q > 2: non-centred.
    """
    return "marginal" if marginal_applies(design) else "noncentred"


def resolve_until(value: Any, defaults: Mapping[str, Any]) -> dict[str, Any] | None:
    """Validate option ``until_converged``: false/None (off), true (the defaults) or a mapping of
    ``max_draws`` (cap on the posterior draws per chain summed over the rounds), ``rhat`` (every R-hat
    below it) and ``ess`` (every bulk ESS at least it).  Returns the targets or None."""
    if value is None or value is False:
        return None
    base = {"max_draws": int(defaults.get("max_draws", 4000)), "rhat": float(defaults.get("rhat", 1.01)),
            "ess": float(defaults.get("ess", 400))}
    if value is True:
        return base
    if not isinstance(value, Mapping):
        raise OptionError(f"Option 'until_converged' must be true, false or a mapping with keys "
                          f"{', '.join(UNTIL_KEYS)}, got {value!r}.")
    bad = [k for k in value if k not in UNTIL_KEYS]
    if bad:
        raise OptionError(f"Option 'until_converged' takes the keys {', '.join(UNTIL_KEYS)}, got {bad[0]!r}.")
    out = dict(base)
    m = value.get("max_draws", base["max_draws"])
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise OptionError(f"Option 'until_converged' needs max_draws an integer ≥ 1 (posterior draws per "
                          f"chain over all rounds), got {m!r}.")
    out["max_draws"] = int(m)
    for key, lo, what in (("rhat", 1.0, "a number > 1"), ("ess", 0.0, "a number ≥ 0")):
        v = value.get(key, base[key])
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v) \
                or (v <= lo if key == "rhat" else v < lo):
            raise OptionError(f"Option 'until_converged' needs {key} {what}, got {v!r}.")
        out[key] = float(v)
    return out


def _get_model(design: Design, opts: dict[str, Any], priors: Any) -> tuple[_Entry, float]:
    """Cached (model, compiled) for this structure; builds and compiles on a miss."""
    global COMPILE_COUNT
    key = (design.shape_key, opts["parameterisation"], opts["sampler"], priors.structure)
    with _LOCK:
        entry = _CACHE.get(key)
        if entry is not None:
            _CACHE.move_to_end(key)
            return entry, 0.0
        t0 = time.perf_counter()
        with announce_compile(design_label(design, opts["parameterisation"])) as info:
            model = build_model(design, priors, opts["parameterisation"])
            compiled, how = None, "none"
            if opts["sampler"] == "nutpie":
                from .compile_cache import compile_pymc_model  # deferred: imports nutpie (numba)

                compiled, how = compile_pymc_model(model, _stored_names(model))
            info["cache"] = how
        entry = _Entry(model, compiled, time.perf_counter() - t0, how)
        COMPILE_COUNT += 1
        _CACHE[key] = entry
        while len(_CACHE) > int(load_defaults().get("cache_size", 32)):
            _CACHE.popitem(last=False)
        return entry, entry.compile_s


def _stored_names(model: Any) -> list[str]:
    """The variables the summaries read: beta, sigma, sd_k, corr_k, u_k (not the raw/unit ones)."""
    keep = ("beta", "sigma")
    return [v.name for v in model.deterministics + model.free_RVs
            if v.name in keep or v.name.split("_")[0] in ("sd", "corr", "u") and v.name.count("_") == 1]


def _sample(entry: _Entry, data: dict[str, np.ndarray],
            opts: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run the sampler; returns ({variable: (chain, draw, …)}, {statistic: (chain, draw)}) after tuning."""
    names = _stored_names(entry.model)
    if opts["sampler"] == "nutpie":
        import nutpie  # deferred: nutpie (numba) is heavy; imported when sampling

        shared = entry.compiled.shared_data  # arrays the graph does not read are not shared
        compiled = entry.compiled.with_data(**{k: v for k, v in data.items() if k in shared})
        trace = nutpie.sample(compiled, draws=opts["draws"], tune=opts["tune"], chains=opts["chains"],
                              cores=opts["cores"], seed=opts["seed"], progress_bar=False,
                              save_warmup=False, target_accept=opts["target_accept"],
                              return_raw_trace=True)
        return raw_to_numpy(trace, names)
    import pymc as pm  # deferred: PyMC is heavy; `import compare_mm` must not import it

    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with entry.model:
            data_names = {v.name for v in entry.model.data_vars}
            pm.set_data({k: v for k, v in data.items() if k in data_names})
            idata = pm.sample(draws=opts["draws"], tune=opts["tune"], chains=opts["chains"],
                              cores=opts["cores"], random_seed=opts["seed"],
                              target_accept=opts["target_accept"], progressbar=False,
                              compute_convergence_checks=False)
        return idata_to_numpy(idata, names)
    finally:
        logger.setLevel(level)


def _round_seed(seed: int, k: int) -> int:
    """Seed of round k ≥ 1 of ``until_converged`` (round 0 uses the fit's seed itself)."""
    return int(np.random.SeedSequence([seed, 1009, k]).generate_state(1)[0])


def _targets_met(post: dict[str, np.ndarray], design: Design, targets: Mapping[str, float]) -> bool:
    """Every R-hat below ``targets["rhat"]`` and every bulk ESS at least ``targets["ess"]``."""
    max_rhat, min_ess = convergence(post, design)
    return bool(max_rhat < targets["rhat"] and min_ess >= targets["ess"])


def _sample_rounds(entry: _Entry, data: dict[str, np.ndarray], opts: dict[str, Any], design: Design
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """:func:`_sample`, repeated while option ``until_converged`` asks for it.

    Each further round runs ``chains`` new chains (own warm-up, seed from :func:`_round_seed`) of ``draws``
    draws and pools them with the earlier ones as extra chains, so R-hat and ESS are computed over all of
    them; it stops when the targets are met or when one more round would exceed ``max_draws`` posterior
    draws per chain summed over the rounds (at least one round always runs).  Returns (draws, statistics,
    rounds).
    """
    post, stats = _sample(entry, data, opts)
    targets = opts.get("until_converged")
    rounds = 1
    while targets and (rounds + 1) * opts["draws"] <= targets["max_draws"] \
            and not _targets_met(post, design, targets):
        more, more_stats = _sample(entry, data, dict(opts, seed=_round_seed(opts["seed"], rounds)))
        post = {k: np.concatenate([post[k], more[k]], axis=0) for k in post}
        stats = {k: np.concatenate([stats[k], more_stats[k]], axis=0) for k in stats if k in more_stats}
        rounds += 1
    return post, stats, rounds


def _add_marginal_ranef(post: dict[str, np.ndarray], design: Design, data: dict[str, np.ndarray],
                        seed: int) -> None:
    """Draw u from its Gaussian conditional for each posterior draw (:mod:`.marginal`) into ``post["u_0"]``."""
    nc, nd = post["sigma"].shape[:2]
    S = nc * nd
    beta = np.asarray(post["beta"]).reshape(S, -1)
    sigma = np.asarray(post["sigma"]).reshape(S)
    sd = np.asarray(post["sd_0"]).reshape(S, -1)
    if "corr_0" in post:
        C = np.asarray(post["corr_0"]).reshape(S, sd.shape[1], sd.shape[1])
        G = sd[:, :, None] * C * sd[:, None, :]
        L = np.linalg.cholesky(G + 1e-300 * np.eye(sd.shape[1]))
    else:
        L = sd[:, :, None] * np.eye(sd.shape[1])
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    u = draw_ranef(data, beta, L, sigma, rng)
    b = design.blocks[0]
    post["u_0"] = u.reshape(nc, nd, b.n_levels, b.q)


class PyMCBackend(BackendBase):
    """Bayesian fits with PyMC + nutpie (module docstring)."""

    name = "pymc"
    posterior = True
    needs_seed = True
    compiles = True
    relative_cost = 40.0
    default_interval = "eti"
    interval_kinds = ("eti", "hdi")
    methods = ()
    title = "Bayesian linear mixed model (PyMC, {method})"

    def check_options(self, design: Design, options: Mapping[str, Any] | None) -> None:
        """Validate the options and priors for ``design`` (:func:`resolve_options`; nothing compiled)."""
        resolve_options(design, options)

    def prepare(self, design: Design, options: Mapping[str, Any] | None = None) -> Any:
        """Options validated and the model built and compiled (cached per design shape, module docstring);
        for ``sampler="quadrature"`` a :class:`.quadrature_batch.PreparedQuadrature` (no PyMC model, and
        ``fit_many`` fits a batch of responses at once)."""
        sampler = str(dict(options or {}).get("sampler", load_defaults()["sampler"]["sampler"])).lower()
        if sampler == "quadrature":
            from .quadrature_batch import PreparedQuadrature

            return PreparedQuadrature(self, design, options)
        return PreparedPyMC(self, design, options)

    def resolved_options(self, design: Design, options: Mapping[str, Any] | None) -> tuple[dict[str, Any], Any]:
        """:func:`resolve_options` (for prepared designs, which hold the backend rather than import it)."""
        return resolve_options(design, options)

    def cost_of(self, options: Mapping[str, Any] | None) -> float:
        """``relative_cost`` of a fit with these options: quadrature (batched in studies) costs ~0.5."""
        sampler = str(dict(options or {}).get("sampler", load_defaults()["sampler"]["sampler"])).lower()
        return 0.5 if sampler == "quadrature" else self.relative_cost

    def supports(self, spec: ModelSpec) -> str | None:
        """Every spec with at least one random-effects term."""
        if not spec.random:
            return "the PyMC backend fits mixed models and needs at least one random-effects term."
        return None

    def fit(self, design: Design, options: Mapping[str, Any] | None = None) -> FitResult:
        """Sample the posterior and summarise it (see :mod:`compare_mm.backends.pymc.summary`)."""
        t0 = time.perf_counter()
        opts, priors = resolve_options(design, options)
        if opts["sampler"] == "quadrature":  # exact posterior by quadrature: no PyMC, no compile
            from .quadrature_fit import fit_quadrature, ignored_settings

            shown = dict(opts, priors=describe_priors(priors, design))
            return fit_quadrature(design, opts, priors, dict(shown, **({"prior": options["prior"]}
                                  if options and "prior" in options else {})), t0,
                                  notes=ignored_settings(options))
        entry, compile_s = _get_model(design, opts, priors)
        data = model_data(design, priors, opts["parameterisation"])
        t1 = time.perf_counter()
        post, stats, rounds = _sample_rounds(entry, data, opts, design)
        sample_s = time.perf_counter() - t1
        divergences = int(np.asarray(stats["diverging"]).sum())
        if opts["parameterisation"] == "marginal":
            _add_marginal_ranef(post, design, data, opts["seed"])
        n_chains = int(post["sigma"].shape[0])
        diagnostics = {"divergences": divergences, "draws": opts["draws"], "chains": n_chains,
                       "tune": opts["tune"], "sampler": opts["sampler"],
                       "parameterisation": opts["parameterisation"], "compile_s": compile_s,
                       "compile_cache": entry.cache if compile_s else "memory", "sample_s": sample_s,
                       "rounds": rounds, "total_draws": n_chains * int(post["sigma"].shape[1])}
        if "n_steps" in stats:  # leapfrog steps after tuning: the load-independent cost of the draws
            diagnostics["leapfrog_steps"] = int(np.asarray(stats["n_steps"]).sum())
        if opts["parameterisation_option"] == "auto":
            diagnostics["parameterisation_note"] = (
                f"parameterisation 'auto' chose {opts['parameterisation']} "
                + ("(one random-effects term with at most two effects per level: u integrated out)"
                   if opts["parameterisation"] == "marginal" else "(the marginal form needs one term, q ≤ 2)"))
        if opts["until_converged"]:
            diagnostics["until_converged"] = dict(opts["until_converged"], met=_targets_met(
                post, design, opts["until_converged"]))
        shown = dict(opts, priors=describe_priors(priors, design))
        if options and "prior" in options:
            shown["prior"] = options["prior"]
        result = build_result(post, stats, design, level=opts["level"], options=shown, diagnostics=diagnostics,
                              elapsed_s=time.perf_counter() - t0, tails=moment_orders(priors, design))
        return self.attach(result, design)


class PreparedPyMC:
    """:meth:`PyMCBackend.prepare`: the compiled model of the design's shape, shared by its responses.

    The priors scaled to the data are re-resolved for every response (they are ``pm.Data``, so the
    compiled model is re-used); ``fit(y, seed)`` equals ``fit(design.with_y(y), options | {seed})``.
    """

    def __init__(self, backend: PyMCBackend, design: Design, options: Mapping[str, Any] | None):
        self.backend, self.design, self.options = backend, design, dict(options or {})
        opts, priors = resolve_options(design, self.options)
        _get_model(design, opts, priors)

    def fit(self, y: np.ndarray, seed: int | None = None) -> FitResult:
        options = self.options if seed is None else dict(self.options, seed=seed)
        return self.backend.fit(self.design.with_y(y), options)


BACKEND = PyMCBackend()
