"""The one-pass row look-up of the quality tables gives the row the boolean filter it replaced gave."""

import numpy as np
import pandas as pd

from compare_mm.report.quality import _first_rows


def test_first_rows_matches_the_boolean_filter():
    rng = np.random.default_rng(7)
    g = pd.DataFrame({"metric": rng.choice(["bias", "coverage", "rmse"], 60),
                      "parameter": rng.choice(["mu", "sigma_a2"], 60),
                      "value": rng.normal(size=60)}, index=rng.permutation(200)[:60])
    first = _first_rows(g, g["metric"], g["parameter"].astype(str))
    for metric in ("bias", "coverage", "rmse", "power"):
        for param in ("mu", "sigma_a2", "rho"):
            hit = g[(g["metric"] == metric) & (g["parameter"].astype(str) == param)]
            got = first((metric, param))
            if hit.empty:
                assert got is None
            else:
                pd.testing.assert_series_equal(got, hit.iloc[0])
