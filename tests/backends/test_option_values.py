"""Every documented option value of every backend, on every model family the backend claims to support:
it fits (our fitter: the same optimum on every numerical path; statsmodels: at the optimum by our
criterion, or flagged), or it refuses in one sentence that names the option.  PyMC's models are built
for every parameterisation (the graph only; compiling costs seconds per model); sampling each is marked
slow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from compare_mm import fit, make_design
from compare_mm.backends.base import get_backend
from compare_mm.backends.reml import PATHS
from compare_mm.backends.statsmodels.backend import KNOWN_OPTIMIZERS
from compare_mm.backends.statsmodels.crosscheck import GAP_TOL, deviance_gap
from compare_mm.errors import OptionError, UnsupportedModelError

FAMILIES = {
    "oneway": "y ~ 1 + (1 | g)",
    "slope": "y ~ x + (x | g)",
    "slope_diag": "y ~ x + (x || g)",
    "crossed": "y ~ x + (1 | g) + (1 | h)",
}
#: the families run in the fast suite for the costlier backends; the others are marked slow
FAST = ("oneway", "slope")


def _families(fast=FAST):
    return [f if f in fast else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES]


#: parameterisation values the PyMC backend documents, with the accepted spellings
PARAMETERISATIONS = ("auto", "noncentred", "noncentered", "centred", "centered", "marginal")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    G, m = 8, 6
    g = np.repeat(np.arange(G), m)
    h = np.tile(np.arange(m), G)
    x = rng.normal(size=G * m)
    y = 1.0 + 0.5 * x + rng.normal(size=G)[g] + 0.4 * rng.normal(size=G)[g] * x \
        + 0.7 * rng.normal(size=m)[h] + rng.normal(size=G * m)
    return pd.DataFrame({"g": g.astype(str), "h": h.astype(str), "x": x, "y": y})


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.endswith("."), msg
    return msg


def _supported(backend: str, family: str, data) -> bool:
    design = make_design(FAMILIES[family], data)
    return get_backend(backend).supports(design.spec) is None


@pytest.mark.parametrize("family", FAMILIES)
def test_reml_every_path(data, family):
    devs = {}
    for path in PATHS:
        try:
            r = fit(FAMILIES[family], data, path=path)
        except OptionError as e:      # onefactor on several grouping factors, blocked on a single term
            msg = one_line(e)
            if path == "blocked":
                assert len(make_design(FAMILIES[family], data).blocks) == 1 and "path='blocked'" in msg
            else:
                assert (family, path) == ("crossed", "onefactor") and "path='onefactor'" in msg
            continue
        assert r.converged, (path, r.warnings)
        devs[path] = r.criterion
    assert len(devs) >= 3
    ref = devs["general"]
    for path, d in devs.items():
        assert d == pytest.approx(ref, rel=1e-9), path


@pytest.mark.parametrize("family", _families(("oneway",)))
@pytest.mark.parametrize("optimizer", KNOWN_OPTIMIZERS)
def test_statsmodels_every_optimizer(data, family, optimizer):
    if not _supported("statsmodels", family, data):
        # a family statsmodels cannot fit is refused in one sentence, whatever the optimizer
        with pytest.raises(UnsupportedModelError) as e:
            fit(FAMILIES[family], data, backend="statsmodels", optimizer=optimizer)
        one_line(e.value)
        return
    try:
        r = fit(FAMILIES[family], data, backend="statsmodels", optimizer=optimizer)
    except OptionError as e:          # derivative-free optimisers ignore the independence mask of (x || g)
        assert optimizer in ("powell", "nm") and family == "slope_diag"
        assert f"'optimizer' {optimizer!r}" in one_line(e)
        return
    gap, _ = deviance_gap(r.design, r.theta, r.sigma)
    if r.converged:
        assert gap <= GAP_TOL, (optimizer, gap)
    else:                             # not at the optimum, and said so
        assert r.warnings, optimizer


@pytest.mark.parametrize("family", _families())
@pytest.mark.parametrize("value", PARAMETERISATIONS)
def test_pymc_every_parameterisation_builds(data, family, value):
    pytest.importorskip("pymc")
    from compare_mm.backends.pymc.backend import resolve_options
    from compare_mm.backends.pymc.model import build_model

    design = make_design(FAMILIES[family], data)
    try:
        opts, priors = resolve_options(design, {"parameterisation": value})
    except OptionError as e:          # marginal needs one term with at most two effects
        assert value == "marginal" and family == "crossed"
        assert "parameterisation='marginal'" in one_line(e)
        return
    model = build_model(design, priors, opts["parameterisation"])   # the graph only: compiling is slow
    names = {v.name.split("_")[0] for v in model.free_RVs}
    expected = {"noncentred": {"z"}, "centred": {"u", "v"}, "marginal": set()}[opts["parameterisation"]]
    assert names & {"z", "u", "v"} <= expected and (names & expected or not expected), names


#: one spelling of each parameterisation (the builds test above checks that the aliases — noncentered,
#: centered — give the same graph); sampling compiles a model per (family, value), seconds each
CANONICAL = ("auto", "noncentred", "centred", "marginal")


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("value", CANONICAL)
def test_pymc_every_parameterisation_samples(data, family, value):
    pytest.importorskip("nutpie")
    try:
        r = fit(FAMILIES[family], data, backend="pymc", parameterisation=value, draws=40, tune=40, chains=1,
                seed=11)
    except OptionError:
        assert value == "marginal" and family == "crossed"
        return
    est = r.estimates()
    assert all(math.isfinite(v) for v in est.values() if v is not None)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("options", [{"sampler": "quadrature"}, {"sampler": "pymc"},
                                     {"until_converged": True, "draws": 40}])
def test_pymc_samplers_and_rounds(data, family, options):
    pytest.importorskip("nutpie")
    opts = dict(draws=40, tune=40, chains=2, seed=5) | options
    try:
        r = fit(FAMILIES[family], data, backend="pymc", **opts)
    except UnsupportedModelError as e:   # quadrature: at most 4 covariance parameters
        assert options.get("sampler") == "quadrature"
        one_line(e)
        return
    est = r.estimates()
    assert all(math.isfinite(v) for v in est.values() if v is not None)
