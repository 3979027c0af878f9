"""Inference on variance components and fixed effects: exact F test, χ² and χ̄² LRTs, exact RLRT,
parametric bootstrap, profile-likelihood intervals, Satterthwaite df (see docs/architecture.md).

:func:`run_inference` computes everything that applies to one fit (``compare-mm fit --tests``).
"""

from .bootstrap import bootstrap_draws, bootstrap_intervals, bootstrap_lrt
from .components import Component, components, drop_component, find_component
from .ftest import f_test, f_test_design
from .lrt import LRT, chi2_pvalue, chibar2_critical, chibar2_pvalue, compare_models, component_lrt, oneway_lrt
from .profile import profile_intervals
from .rlrt import exact_rlrt, rlrt_eigenvalues, simulate_rlrt_null
from .satterthwaite import satterthwaite
from .run import inference_for_design, run_inference

__all__ = [
    "LRT", "Component", "bootstrap_draws", "bootstrap_intervals", "bootstrap_lrt", "chi2_pvalue",
    "chibar2_critical", "chibar2_pvalue", "compare_models", "component_lrt", "components", "drop_component",
    "exact_rlrt", "f_test", "f_test_design", "find_component", "inference_for_design", "oneway_lrt",
    "profile_intervals",
    "rlrt_eigenvalues", "run_inference", "satterthwaite", "simulate_rlrt_null",
]
