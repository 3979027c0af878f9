"""The PyMC backend: a Bayesian fit of the same ModelSpec, compiled once per design shape.

Options (``compare_mm.fit(..., backend="pymc", **options)``; defaults in config/defaults.yaml):

``draws`` (1000), ``tune`` (1000), ``chains`` (2), ``cores`` (min(chains, cpu count); nutpie samples
chains in threads), ``seed`` (None: fresh entropy, recorded in the result), ``target_accept`` (0.8),
``level`` (0.95, for ETI and HDI), ``parameterisation`` ("noncentred" | "centred" | "marginal"),
``sampler`` ("nutpie" | "pymc" | "quadrature": the exact posterior by integration over the covariance
parameters, :mod:`.quadrature_fit`; draws/tune/chains are then ignored; ``prepare`` then builds no PyMC
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
from ...errors import OptionError
from ...results.schema import FitResult
from ...model.spec import ModelSpec
from ..base import BackendBase, check_level
from .draws import idata_to_numpy, raw_to_numpy
from .marginal import draw_ranef
from .model import build_model, model_data
from .priors import describe_priors, load_defaults, resolve_priors
from .summary import build_result
from .status import announce_compile, design_label

SAMPLERS = ("nutpie", "pymc", "quadrature")
OPTION_KEYS = ("draws", "tune", "chains", "cores", "seed", "target_accept", "level", "parameterisation",
               "sampler", "prior")
PARAMETERISATIONS = ("noncentred", "centred", "marginal")
_PARAM_ALIASES = {"noncentred": "noncentred", "noncentered": "noncentred", "centred": "centred",
                  "centered": "centred", "marginal": "marginal"}

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


def resolve_options(design: Design, options: Mapping[str, Any] | None) -> tuple[dict[str, Any], Any]:
    """Validate the options against defaults.yaml; return (resolved options, PriorSet)."""
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
    if param == "marginal" and (len(design.blocks) != 1 or design.blocks[0].q > 2):
        raise OptionError("Option parameterisation='marginal' needs exactly one random-effects term with "
                          "at most two effects per level; use 'noncentred' for this model.")
    out["parameterisation"] = param
    out["draws"] = _int(options, "draws", d["draws"], 1)
    out["tune"] = _int(options, "tune", d["tune"], 0)
    out["chains"] = _int(options, "chains", d["chains"], 1)
    cores = _int(options, "cores", d["cores"], 1)
    out["cores"] = cores if cores is not None else max(1, min(out["chains"], os.cpu_count() or 1))
    seed = _int(options, "seed", None, 0)
    out["seed"] = seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0])
    out["target_accept"] = check_level(options.get("target_accept", d["target_accept"]), "target_accept")
    out["level"] = check_level(options.get("level", d["level"]))
    priors = resolve_priors(design, options.get("prior"))
    return out, priors


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
            from .quadrature_fit import fit_quadrature

            shown = dict(opts, priors=describe_priors(priors, design))
            return fit_quadrature(design, opts, priors, dict(shown, **({"prior": options["prior"]}
                                  if options and "prior" in options else {})), t0)
        entry, compile_s = _get_model(design, opts, priors)
        data = model_data(design, priors, opts["parameterisation"])
        t1 = time.perf_counter()
        post, stats = _sample(entry, data, opts)
        sample_s = time.perf_counter() - t1
        divergences = int(np.asarray(stats["diverging"]).sum())
        if opts["parameterisation"] == "marginal":
            _add_marginal_ranef(post, design, data, opts["seed"])
        diagnostics = {"divergences": divergences, "draws": opts["draws"], "chains": opts["chains"],
                       "tune": opts["tune"], "sampler": opts["sampler"],
                       "parameterisation": opts["parameterisation"], "compile_s": compile_s,
                       "compile_cache": entry.cache if compile_s else "memory", "sample_s": sample_s}
        shown = dict(opts, priors=describe_priors(priors, design))
        if options and "prior" in options:
            shown["prior"] = options["prior"]
        result = build_result(post, stats, design, level=opts["level"], options=shown, diagnostics=diagnostics,
                              elapsed_s=time.perf_counter() - t0)
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
