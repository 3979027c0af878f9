"""What the PyMC backend tells the user while it compiles, and PyTensor's BLAS warning and ArviZ's
refactor notice kept off stderr.

A compile is announced on stderr as one line when it starts ("compiling the PyMC model for design …")
and one when it ends, with its time and whether the numba callbacks came from the disk cache
(:mod:`.compile_cache`).  While a tqdm bar is active (a serial study), the lines go through
``tqdm.write`` so the bar is redrawn below them instead of being broken.

PyTensor's "could not link to a BLAS installation" warning: a pip install has no BLAS PyTensor can link
its C code to (the OpenBLAS bundled in the numpy and scipy wheels exports only ``scipy_``-prefixed
symbols such as ``scipy_dgemm_``, while PyTensor's C code calls ``dgemm_``), and nothing this backend runs
needs it: nutpie samples through PyTensor's numba backend, which calls BLAS through scipy.
:func:`quiet_blas_probe` runs PyTensor's BLAS detection once with exactly that warning ignored, so a
BLAS that *can* be found (a conda install, or ``blas__ldflags`` in ``PYTENSOR_FLAGS``) is still used.
"""

from __future__ import annotations

import sys
import time
import warnings
from contextlib import contextmanager
from typing import Iterator

from ...model.design import Design

BLAS_WARNING = "PyTensor could not link to a BLAS installation"
#: ArviZ 0.23 warns (FutureWarning, once a day per user cache directory, in every process that imports it
#: first that day: each study worker) that its next major version will change its API; compare_mm pins the
#: 0.23 InferenceData API, so the notice is not the user's to act on
ARVIZ_NOTICE = "ArviZ is undergoing a major refactor"
_PROBED = False


def quiet_arviz_notice() -> None:
    """Ignore ArviZ's import-time refactor notice (:data:`ARVIZ_NOTICE`, that FutureWarning only)."""
    warnings.filterwarnings("ignore", message=r"\s*" + ARVIZ_NOTICE, category=FutureWarning)


def quiet_blas_probe() -> None:
    """Resolve ``pytensor.config.blas__ldflags`` now, ignoring only the "could not link" warning."""
    global _PROBED
    if _PROBED:
        return
    import pytensor  # deferred: PyTensor (PyMC stack) is heavy

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=BLAS_WARNING, category=UserWarning)
        _ = pytensor.config.blas__ldflags
    _PROBED = True


def design_label(design: Design, parameterisation: str) -> str:
    """A short description of a design: "Reaction ~ Days + (Days || Subject), 180 rows, 18 Subject, noncentred"."""
    groups = ", ".join(f"{b.n_levels} {b.group}" for b in design.blocks)
    return f"{design.spec.formula or design.spec.to_formula()}, {design.n} rows, {groups}, {parameterisation}"


def _write(line: str) -> None:
    """One line on stderr, through tqdm while a bar is shown."""
    tqdm_mod = sys.modules.get("tqdm")
    if tqdm_mod is not None and getattr(tqdm_mod.tqdm, "_instances", None):
        tqdm_mod.tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


@contextmanager
def announce_compile(label: str) -> Iterator[dict]:
    """Announce a compile; the caller puts ``"cache"`` ("disk", "compiled", …) in the yielded dict."""
    _write(f"compare-mm: compiling the PyMC model for design {label} …")
    t0 = time.perf_counter()
    info: dict = {}
    yield info
    how = {"disk": " (numba code from the disk cache)", "compiled": " (stored in the disk cache)",
           "uncacheable": " (not stored: the disk cache cannot hold this model's code)"}
    _write(f"compare-mm: compiled in {time.perf_counter() - t0:.1f} s{how.get(info.get('cache'), '')}")
