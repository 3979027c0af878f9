"""compare_mm — one linear mixed model, fitted three ways (REML/ML/BLUP, statsmodels, PyMC), and
simulation studies that compare them."""

from .api import fit, make_design, parse_formula
from .backends.base import register_backend
from .model.design import Design, RandomBlock
from .errors import CompareMMError, ConfigError, DataError, ModelSpecError, OptionError, UnsupportedModelError
from .results.schema import FitResult
from .model.spec import ModelSpec, RandomTerm

__version__ = "0.1.0"

__all__ = [
    "CompareMMError", "ConfigError", "DataError", "Design", "FitResult", "ModelSpec", "ModelSpecError",
    "OptionError", "RandomBlock", "RandomTerm", "UnsupportedModelError", "fit", "make_design",
    "parse_formula", "register_backend",
]
