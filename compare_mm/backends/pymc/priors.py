"""Priors of the PyMC backend: parsing the ``prior`` option, data-scaled defaults, readable strings.

Every standard-deviation prior is a *scale family*: ``sd = scale · raw`` with ``raw`` drawn from the
unit-scale member (HalfNormal(1), HalfCauchy(1), HalfStudentT(ν, 1), Exponential(1)); the inverse-gamma
prior is on the variance, ``var = β · raw`` with ``raw ~ InverseGamma(α, 1)`` (if V ~ IG(α, β) then
V/β ~ IG(α, 1)).  The family and its shape (ν, α, LKJ η) fix the model's structure and are part of the
compile-cache key; the numeric scales are data (``pm.Data``), so data-scaled defaults follow each
replicate without recompiling.  Defaults live in ``compare_mm/config/defaults.yaml``.
"""

from __future__ import annotations

import yaml
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

import numpy as np

from ...model.design import Design
from ...errors import OptionError

SD_FAMILIES = ("half_normal", "half_cauchy", "half_student_t", "exponential", "inverse_gamma")
FIXEF_FAMILIES = ("normal",)
COR_FAMILIES = ("lkj",)
#: positional parameter order when a prior is given as a list
_POSITIONAL = {
    "half_normal": ("scale",), "half_cauchy": ("scale",), "half_student_t": ("nu", "scale"),
    "exponential": ("scale",), "inverse_gamma": ("alpha", "beta"), "normal": ("loc", "scale"),
    "lkj": ("eta",),
}
_PARAMS = {"scale", "nu", "lam", "alpha", "beta", "loc", "eta", "autoscale"}
_LABEL = {"half_normal": "HalfNormal", "half_cauchy": "HalfCauchy", "half_student_t": "HalfStudentT",
          "exponential": "Exponential", "inverse_gamma": "InverseGamma", "normal": "Normal", "lkj": "LKJ"}


@lru_cache(maxsize=1)
def load_defaults() -> dict[str, Any]:
    """The ``pymc`` section of ``compare_mm/config/defaults.yaml``."""
    text = resources.files("compare_mm").joinpath("config/defaults.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["pymc"]


@dataclass(frozen=True)
class Prior:
    """One prior.

    ``scale`` is the scale of a half-/normal/Cauchy/Student-t, the mean 1/λ of an exponential, or β of an
    inverse gamma on the variance; ``shape`` is ν, α or η; ``loc`` the location of a normal (None: the
    data default).  With ``autoscale`` the scale is multiplied by the parameter's data scale.
    """

    family: str
    scale: float = 1.0
    shape: float | None = None
    loc: float | None = None
    autoscale: bool = False

    @property
    def label(self) -> str:
        """The family's PyMC name (HalfNormal, HalfCauchy, …)."""
        return _LABEL[self.family]

    @property
    def structure(self) -> tuple:
        """What a compiled model depends on (family and shape, not the scale)."""
        return (self.family, self.shape)

    def describe(self, data_scale: float, loc: float = 0.0) -> str:
        """Readable form with the numeric scale used on the current data."""
        lab = _LABEL[self.family]
        if self.family == "lkj":
            return f"{lab}(eta={self.shape:g})"
        s = self.scale * (data_scale**2 if self.family == "inverse_gamma" else data_scale) \
            if self.autoscale else self.scale
        how = ""
        if self.autoscale:
            unit = "data scale²" if self.family == "inverse_gamma" else "data scale"
            how = f" [{self.scale:g} × {unit}]"
        if self.family == "half_student_t":
            return f"{lab}(nu={self.shape:g}, scale={s:.4g}){how}"
        if self.family == "exponential":
            return f"{lab}(lam={1.0 / s:.4g}){how}"
        if self.family == "inverse_gamma":
            return f"{lab}(alpha={self.shape:g}, beta={s:.4g}) on the variance{how}"
        if self.family == "normal":
            return f"{lab}(loc={loc:.4g}, scale={s:.4g}){how}"
        return f"{lab}(scale={s:.4g}){how}"


def parse_prior(key: str, value: Any, families: tuple[str, ...]) -> Prior:
    """Parse one entry of the ``prior`` option (``{"half_normal": 1.0}``, ``{"family": …}``, …)."""
    where = f"prior[{key!r}]"
    if isinstance(value, Prior):
        fam, params = value.family, None
    elif isinstance(value, str):
        fam, params = value, {}
    elif isinstance(value, Mapping) and "family" in value:
        fam, params = value["family"], {k: v for k, v in value.items() if k != "family"}
    elif isinstance(value, Mapping) and len(value) == 1:
        fam, arg = next(iter(value.items()))
        if isinstance(arg, Mapping):
            params = dict(arg)
        elif isinstance(arg, (list, tuple)):
            order = _POSITIONAL.get(str(fam), ())
            if len(arg) != len(order):
                raise OptionError(f"Option {where}: {fam} takes {len(order)} values ({', '.join(order)}).")
            params = dict(zip(order, arg))
        elif fam == "inverse_gamma":
            params = {"_": arg}
        elif fam == "lkj":
            params = {"eta": arg}
        else:
            params = {"scale": arg}
    else:
        raise OptionError(f"Option {where} must be a mapping like {{'half_normal': 1.0}}, got {value!r}.")
    fam = str(fam).lower()
    if fam not in families:
        raise OptionError(f"Option {where}: unknown prior {fam!r}; choose one of {', '.join(families)}.")
    if params is None:
        return value
    if "_" in params:
        raise OptionError(f"Option {where}: inverse_gamma needs alpha and beta such as {{'alpha': 1, 'beta': 1}}.")
    bad = set(params) - _PARAMS
    if bad:
        raise OptionError(f"Option {where}: unknown prior parameter {sorted(bad)[0]!r} for {fam}.")
    return _make(where, fam, params)


def _num(where: str, name: str, v: Any, positive: bool = True) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise OptionError(f"Option {where}: {name} must be a number, got {v!r}.") from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise OptionError(f"Option {where}: {name} must be a positive number, got {v!r}.")
    return x


def _make(where: str, fam: str, p: dict[str, Any]) -> Prior:
    shapes = load_defaults()["shapes"]
    auto = bool(p.get("autoscale", False))
    if fam == "lkj":
        return Prior("lkj", shape=_num(where, "eta", p.get("eta", 1.0)))
    if fam == "inverse_gamma":
        alpha = _num(where, "alpha", p.get("alpha", shapes["inverse_gamma"]["alpha"]))
        if "beta" not in p and not auto:
            raise OptionError(f"Option {where}: inverse_gamma needs beta (the variance scale).")
        return Prior(fam, scale=_num(where, "beta", p.get("beta", 1.0)), shape=alpha, autoscale=auto)
    if fam == "exponential" and "lam" in p:
        scale = 1.0 / _num(where, "lam", p["lam"])
    else:
        scale = _num(where, "scale", p.get("scale", 1.0))
        if "scale" not in p:
            auto = True if "autoscale" not in p else auto
    shape = None
    if fam == "half_student_t":
        shape = _num(where, "nu", p.get("nu", shapes["half_student_t"]["nu"]))
    loc = _num(where, "loc", p["loc"], positive=False) if fam == "normal" and "loc" in p else None
    return Prior(fam, scale=scale, shape=shape, loc=loc, autoscale=auto)


# ---------------------------------------------------------------------------------------------- set
@dataclass(frozen=True)
class PriorSet:
    """All priors of one model: per random-effect SD (block-major), σ, each fixed effect, LKJ η."""

    sd_names: tuple[str, ...]
    sd: tuple[Prior, ...]
    sigma: Prior
    fixef_names: tuple[str, ...]
    fixef: tuple[Prior, ...]
    eta: tuple[float | None, ...]

    @property
    def structure(self) -> tuple:
        """Cache-key part: families, shapes and η."""
        return (tuple(p.structure for p in self.sd), self.sigma.structure,
                tuple(p.structure for p in self.fixef), self.eta)


def sd_names(design: Design) -> list[str]:
    """Canonical SD names, block-major (``sd_(Intercept)|Subject``, ``sd_Days|Subject``, …)."""
    return [f"sd_{t}|{b.group}" for b in design.blocks for t in b.term_names]


def resolve_priors(design: Design, option: Mapping[str, Any] | None) -> PriorSet:
    """Defaults from defaults.yaml overridden by the ``prior`` option (keys documented in pymc.py)."""
    d = load_defaults()["priors"]
    if option is not None and not isinstance(option, Mapping):
        raise OptionError(f"Option 'prior' must be a mapping from parameter name to prior, got {option!r}.")
    option = dict(option or {})
    names = sd_names(design)
    var_alias = {n.replace("sd_", "var_", 1): n for n in names}
    alias: dict[str, str] = {}
    intercepts = [f"sd_{t}|{b.group}" for b in design.blocks for t in b.term_names if t == "(Intercept)"]
    slopes = [f"sd_{t}|{b.group}" for b in design.blocks for t in b.term_names if t != "(Intercept)"]
    if intercepts:
        alias["sd_a"] = intercepts[0]
    if slopes:
        alias["sd_b"] = slopes[0]
    cor_keys = {f"cor_{t2}.{t1}|{b.group}": i for i, b in enumerate(design.blocks)
                if b.covariance == "unstructured" for j, t1 in enumerate(b.term_names)
                for t2 in b.term_names[j + 1:]}
    known = ({"sd", "sigma", "sigma2", "fixef", "cor"} | set(names) | set(var_alias) | set(alias)
             | set(design.fixed_names) | set(cor_keys))
    for k in option:
        if k not in known:
            raise OptionError(f"Option prior[{k!r}] is not a parameter of this model; use 'sd', 'sigma', "
                              f"'fixef', 'cor' or one of {', '.join(sorted(known - {'sd', 'sigma', 'sigma2', 'fixef', 'cor'}))}.")
    sd_default = parse_prior("sd", option.get("sd", d["sd"]), SD_FAMILIES)
    per: dict[str, Prior] = {}
    for k, v in option.items():
        target = alias.get(k) or var_alias.get(k) or (k if k in names else None)
        if target is not None:
            per[target] = parse_prior(k, v, SD_FAMILIES)
    sd = tuple(per.get(n, sd_default) for n in names)
    sig_key = "sigma" if "sigma" in option else "sigma2"
    sigma = parse_prior(sig_key, option.get(sig_key, d["sigma"]), SD_FAMILIES)
    fx_default = parse_prior("fixef", option.get("fixef", d["fixef"]), FIXEF_FAMILIES)
    fixef = tuple(parse_prior(n, option[n], FIXEF_FAMILIES) if n in option else fx_default
                  for n in design.fixed_names)
    eta_default = parse_prior("cor", option.get("cor", d["cor"]), COR_FAMILIES).shape
    eta = [eta_default if (b.covariance == "unstructured" and b.q > 1) else None for b in design.blocks]
    for k, i in cor_keys.items():
        if k in option:
            eta[i] = parse_prior(k, option[k], COR_FAMILIES).shape
    return PriorSet(tuple(names), sd, sigma, tuple(design.fixed_names), fixef, tuple(eta))


# ----------------------------------------------------------------------------------- data scales
def _sd(a: np.ndarray) -> float:
    return float(np.std(a, ddof=1)) if a.size > 1 else 0.0


def data_scales(design: Design) -> dict[str, np.ndarray]:
    """Data scales of every parameter (see defaults.yaml): sd(y), sd(y)/sd(z_j), sd(y)/sd(x_j), ȳ."""
    sy = _sd(design.y) or 1.0
    ybar = float(np.mean(design.y))
    sd_scale = []
    for b in design.blocks:
        for j in range(b.q):
            sz = _sd(b.Z[:, j])
            sd_scale.append(sy / sz if sz > 1e-12 * max(1.0, float(np.abs(b.Z[:, j]).max())) else sy)
    fx_scale, fx_loc = [], []
    for j in range(design.p):
        col = design.X[:, j]
        sx = _sd(col)
        const = sx <= 1e-12 * max(1.0, float(np.abs(col).max()))
        fx_scale.append(sy if const else sy / sx)
        fx_loc.append(ybar if (const and np.allclose(col, 1.0)) else 0.0)
    return {"sd": np.array(sd_scale, float), "sigma": np.array(sy), "fixef": np.array(fx_scale, float),
            "fixef_loc": np.array(fx_loc, float)}


def prior_arrays(priors: PriorSet, design: Design) -> dict[str, np.ndarray]:
    """Numeric prior scales for the current data (go into ``pm.Data``)."""
    ds = data_scales(design)

    def eff(p: Prior, s: float) -> float:
        if not p.autoscale:
            return p.scale
        return p.scale * (s * s if p.family == "inverse_gamma" else s)

    sd = np.array([eff(p, s) for p, s in zip(priors.sd, ds["sd"])], float)
    sigma = np.array([eff(priors.sigma, float(ds["sigma"]))], float)
    fx = np.array([eff(p, s) for p, s in zip(priors.fixef, ds["fixef"])], float)
    loc = np.array([p.loc if p.loc is not None else l for p, l in zip(priors.fixef, ds["fixef_loc"])], float)
    return {"prior_sd": sd, "prior_sigma": sigma, "prior_beta_scale": fx, "prior_beta_loc": loc}


def describe_priors(priors: PriorSet, design: Design) -> dict[str, str]:
    """Readable prior of every parameter on the current data (goes into FitResult.options["priors"])."""
    ds = data_scales(design)
    out: dict[str, str] = {}
    for n, p, l, s in zip(priors.fixef_names, priors.fixef, ds["fixef_loc"], ds["fixef"]):
        out[n] = p.describe(float(s), loc=p.loc if p.loc is not None else float(l))
    for n, p, s in zip(priors.sd_names, priors.sd, ds["sd"]):
        key = n.replace("sd_", "var_", 1) if p.family == "inverse_gamma" else n
        out[key] = p.describe(float(s))
    out["sigma2" if priors.sigma.family == "inverse_gamma" else "sigma"] = priors.sigma.describe(float(ds["sigma"]))
    for b, eta in zip(design.blocks, priors.eta):
        if eta is not None:
            out[f"cor|{b.group}"] = Prior("lkj", shape=eta).describe(1.0)
    return out

