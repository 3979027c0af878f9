"""compare_mm — one linear mixed model, fitted three ways (REML/ML/BLUP, statsmodels, PyMC), and
simulation studies that compare them.

The public names are imported on first use (:mod:`compare_mm.lazy`), so rebuilding a report does not import
the fitter and the backends."""

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    **dict.fromkeys(["fit", "make_design", "parse_formula"], ".api"),
    "register_backend": ".backends.base",
    **dict.fromkeys(["Design", "RandomBlock"], ".model.design"),
    **dict.fromkeys(["CompareMMError", "ConfigError", "DataError", "ModelSpecError", "OptionError",
                     "UnsupportedModelError"], ".errors"),
    "FitResult": ".results.schema",
    **dict.fromkeys(["ModelSpec", "RandomTerm"], ".model.spec"),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(_EXPORTS)
