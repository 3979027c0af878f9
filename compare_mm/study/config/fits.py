"""Validation of the ``fits`` entries of a study (see :mod:`compare_mm.study.config.schema` for the keys)."""

from __future__ import annotations

from ...errors import CompareMMError, ConfigError
from .schema import INTERVALS, METHODS, PYMC_ONLY, FitConfig, StudyConfig, balanced_oneway, balanced_two_way
from .inference import ONEWAY_INTERVALS, check_inference
from ...api import make_design
from ...backends.base import backend_names, capability, get_backend
from ..generate import model_spec, template_frame


def check_fit(cfg: StudyConfig, i: int, fit: FitConfig) -> FitConfig:
    p = f"fits[{i}]"
    backend = fit.backend.lower()
    names = backend_names()
    if backend not in names:
        raise ConfigError(f"{p}.backend: unknown backend '{fit.backend}'; choose one of {', '.join(names)}.")
    method = fit.method.upper() if fit.method else None
    try:
        be = get_backend(backend)
    except ImportError as exc:
        raise ConfigError(f"{p}.backend: backend '{backend}' cannot be loaded ({exc}).") from None
    if not be.methods:
        if method not in (None, "REML", "ML"):
            raise ConfigError(f"{p}.method: the {backend} backend takes no estimation method, got '{fit.method}'.")
        method = None
    else:
        method = method or "REML"
        if method not in METHODS:
            raise ConfigError(f"{p}.method: unknown method '{fit.method}'; choose one of {', '.join(METHODS)}.")
        for key in PYMC_ONLY:
            if getattr(fit, key) is not None:
                raise ConfigError(f"{p}.{key}: only {_sampler_names()} fits take '{key}', not backend {backend}.")
    closed_form = method in be.fast_path and (balanced_oneway(cfg) or (method == "ANOVA" and balanced_two_way(cfg)))
    if method is not None and method not in be.methods and not closed_form:
        also = " and balanced two_way" if method == "ANOVA" else ""
        raise ConfigError(f"{p}.method: {method} is valid only for balanced one-way{also} models with backend "
                          f"{_closed_form_names(method)}.")
    if (fit.sampler or "").lower() == "quadrature":
        from ...backends.pymc.quadrature_fit import NUTS_SETTINGS

        given = [k for k in NUTS_SETTINGS if getattr(fit, k, None) is not None]
        given += [f"options.{k}" for k in NUTS_SETTINGS if k in fit.options]
        if given:
            raise ConfigError(f"{p}.{given[0]}: sampler: quadrature integrates the posterior exactly and takes no NUTS "
                              f"settings; remove {', '.join(given)} or use sampler: nutpie.")
    for key in ("draws", "chains"):
        value = getattr(fit, key)
        if value is not None and value < 1:
            raise ConfigError(f"{p}.{key}: must be ≥ 1, got {value}.")
    if fit.tune is not None and fit.tune < 0:
        raise ConfigError(f"{p}.tune: must be ≥ 0, got {fit.tune}.")
    if fit.replicates is not None and fit.replicates < 1:
        raise ConfigError(f"{p}.replicates: must be ≥ 1, got {fit.replicates}.")
    if fit.covariance is not None:
        if "random_slope" not in cfg.models:
            raise ConfigError(f"{p}.covariance: only random_slope models have a covariance choice.")
        if fit.covariance not in ("unstructured", "diagonal"):
            raise ConfigError(f"{p}.covariance: unknown covariance '{fit.covariance}'; choose unstructured or diagonal.")
    if fit.interval is not None and fit.interval not in INTERVALS + ("bootstrap", "exact", "mls"):
        raise ConfigError(f"{p}.interval: unknown interval kind '{fit.interval}'; choose one of {', '.join(INTERVALS)}.")
    fit = check_inference(cfg, i, fit, backend, method)
    covariance = fit.covariance or ("unstructured" if "random_slope" in cfg.models else None)
    if method in be.fast_path and balanced_oneway(cfg):
        if fit.options:   # closed forms only (the backend is not called), but a bad key is still an error
            _check_backend_options(p, cfg, fit, be, cfg.models[0], None)
        return _named(cfg, fit, be, method, covariance)
    for model in cfg.models:
        cov = covariance if model == "random_slope" else None
        spec = model_spec(model, cov, method if method in ("REML", "ML") else "REML")
        reason = be.supports(spec)
        if reason:
            raise ConfigError(f"{p}.backend: backend '{backend}' cannot fit {spec.formula!r}: {reason.rstrip('.')}.")
        if hasattr(be, "check_options"):
            _check_backend_options(p, cfg, fit, be, model, cov)
    return _named(cfg, fit, be, method, covariance)


def _sampler_names() -> str:
    """The registered backends that draw random numbers (the ones taking draws, tune, chains …)."""
    return " or ".join(n for n in backend_names() if capability(n, "needs_seed", False))


def _closed_form_names(method: str) -> str:
    """The registered backends whose ``fast_path`` holds ``method``."""
    return " or ".join(n for n in backend_names() if method in capability(n, "fast_path", ()))


def _named(cfg: StudyConfig, fit: FitConfig, be, method: str | None, covariance: str | None) -> FitConfig:
    name = fit.name or be.fit_label(method)
    # exact / mls cover some parameters only, so they are never the default primary interval
    usable = [k for k in (fit.intervals or []) if k not in ONEWAY_INTERVALS]
    primary = fit.interval or (usable[0] if usable else be.default_interval)
    intervals = None if fit.intervals is None else [primary] + [k for k in fit.intervals if k != primary]
    return fit.model_copy(update={"name": name, "backend": be.name, "method": method, "covariance": covariance,
                                  "interval": primary, "intervals": intervals})


def _check_backend_options(path: str, cfg: StudyConfig, fit: FitConfig, be, model: str,
                           covariance: str | None) -> None:
    """Let the backend validate the fit's options on the first condition's design (its
    ``check_options``, which compiles nothing); its one-sentence OptionError becomes a ConfigError naming
    ``fits[i].<key>``."""
    options = fit.backend_options(cfg.level)
    if be.needs_seed:
        options["seed"] = 0
    cond = next(c for c in cfg.conditions() if c["model"] == model)
    design = make_design(model_spec(model, covariance), template_frame(model, cond))
    try:
        be.check_options(design, options)
    except CompareMMError as exc:
        msg = str(exc).rstrip(".")
        low = msg.lower()
        key = next((k for k in ("until_converged", "prior", "sampler", "parameterisation", "draws", "tune", "chains")
                    if k in low), None)
        if key is None:
            key = "options"
        if msg.startswith("Option "):
            msg = msg[len("Option "):]
        raise ConfigError(f"{path}.{key}: {msg}.") from None
