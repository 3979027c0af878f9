"""Inference on variance components and fixed effects: exact F test, χ² and χ̄² LRTs, exact RLRT,
parametric bootstrap, profile-likelihood intervals, Satterthwaite df (see docs/architecture.md).

:func:`run_inference` computes everything that applies to one fit (``compare-mm fit --tests``).  The names
below are imported on first use (:mod:`compare_mm.lazy`): a study's summary needs only the oracle
shrinkage of :mod:`.oracle_shrinkage`, not the fitter behind the bootstrap and the profiles.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["bootstrap_draws", "bootstrap_intervals", "bootstrap_lrt"], ".bootstrap"),
    **dict.fromkeys(["Component", "components", "drop_component", "find_component"], ".components"),
    **dict.fromkeys(["f_test", "f_test_design"], ".ftest"),
    **dict.fromkeys(["LRT", "chi2_pvalue", "chibar2_critical", "chibar2_pvalue", "compare_models",
                     "component_lrt", "oneway_lrt"], ".lrt"),
    "profile_intervals": ".profile",
    **dict.fromkeys(["exact_rlrt", "rlrt_eigenvalues", "simulate_rlrt_null"], ".rlrt"),
    "satterthwaite": ".satterthwaite",
    **dict.fromkeys(["inference_for_design", "run_inference"], ".run"),
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(_EXPORTS)
