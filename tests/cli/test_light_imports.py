"""`import compare_mm` and the modules `compare-mm summarise` runs import none of the heavy stacks: the
summary of stored rows needs numpy, scipy.special, pandas and pyarrow only (issue 13, fast rebuilds)."""

import subprocess
import sys

HEAVY = ("scipy.stats", "scipy.integrate", "statsmodels", "pymc", "arviz", "dask", "matplotlib")


def test_summarise_path_imports_no_heavy_stack():
    code = ("import sys\n"
            "import compare_mm, compare_mm.cli, compare_mm.cli.summarise_cmd, compare_mm.study.summarise\n"
            "import compare_mm.study.exact, compare_mm.study.exact_general, compare_mm.study.exact_twoway\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
