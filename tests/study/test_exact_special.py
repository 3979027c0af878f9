"""The exact values of the summary use scipy.special directly (scipy.stats is a heavy import): the same
numbers, bit for bit, as the scipy.stats distributions they stand for; and the summary does not import
scipy.stats."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from scipy import stats

from compare_mm.oneway import theory
from compare_mm.oneway.closed_forms import f_test_power
from compare_mm.oneway.htests import oneway_rejection_probability
from compare_mm.study.mcse import _normal_quantile


def test_exact_values_equal_the_scipy_stats_forms_bit_for_bit():
    for a, n in ((3, 2), (6, 3), (18, 10), (40, 25)):
        df1, df2 = a - 1, a * (n - 1)
        for sa2 in (0.0, 0.05, 0.2, 1.0):
            x = 1.0 / (1.0 + n * sa2)
            assert theory.boundary_probability(a, n, sa2, 1.0, "REML") == stats.f.cdf(x, df1, df2)
            for alpha in (0.01, 0.05, 0.1):
                crit = stats.f.isf(alpha, df1, df2)
                power = stats.f.sf(crit / (1.0 + n * sa2), df1, df2)
                assert f_test_power(a, n, sa2, 1.0, alpha=alpha) == power
                assert oneway_rejection_probability("f_test", a, n, sa2, 1.0, alpha) == float(power)
        assert theory.mu_wald_coverage(a, n, 0.2, 1.0, "ANOVA", 0.95) == float(
            2.0 * stats.t.cdf(np.sqrt(stats.norm.ppf(0.975) ** 2), a - 1) - 1.0)
    for level in (0.8, 0.9, 0.95, 0.99):
        assert _normal_quantile(0.5 + level / 2) == float(stats.norm.ppf(0.5 + level / 2))


def test_the_summary_does_not_import_scipy_stats():
    code = "import sys, compare_mm.study.summarise; print('scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
