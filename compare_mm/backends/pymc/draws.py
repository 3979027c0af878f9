"""Sampler output → plain numpy draws, without building an ArviZ InferenceData per replicate.

nutpie's default conversion (``nutpie.sample`` → ``arviz.from_dict``) converts every stored variable and
every sampler statistic, warm-up included, into xarray objects; for the small models of a simulation
study that costs as much as a quarter of the sampling itself.  Here the raw Arrow trace
(``return_raw_trace=True``) is read directly: only the posterior rows (after tuning) of the variables we
need, plus the per-draw statistics ``diverging``, ``n_steps``, ``step_size`` and ``tree_depth``.
The InferenceData the FitResult carries is built afterwards from the canonical draws alone
(:func:`to_inference_data`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

STATS = ("diverging", "n_steps", "step_size", "depth")


def _column(batch: Any, name: str, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of one Arrow column as numpy, reshaped to (rows, *item shape)."""
    import pyarrow  # deferred: pyarrow is heavy; imported when Parquet is read or written

    col = pyarrow.array(batch.column(name))[start:stop]
    meta = batch.schema.field(name).metadata or {}
    shape = meta.get(b"shape", b"")
    shape = tuple(int(s) for s in shape.decode().split(",")) if shape else ()
    if hasattr(col, "flatten"):
        col = col.flatten()
    return np.asarray(col.to_numpy(zero_copy_only=False)).reshape((stop - start, *shape))


def raw_to_numpy(trace: Any, names: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """nutpie raw trace → ({variable: (chain, draw, *shape)}, {statistic: (chain, draw)}), posterior only.

    ``names``: the variables to read (default: every stored variable).
    """
    draw_batches, stat_batches = trace.get_arrow_trace()
    chains: list[dict[str, np.ndarray]] = []
    stats: list[dict[str, np.ndarray]] = []
    for draw, stat in zip(draw_batches, stat_batches):
        n = stat.num_rows
        n_tune = int(np.asarray(pyarrow_bool(stat.column("tuning"))).sum())
        keep = names if names is not None else list(draw.column_names)
        chains.append({k: _column(draw, k, n_tune, n) for k in keep})
        stats.append({k: _column(stat, k, n_tune, n) for k in STATS if k in stat.column_names})
    # chains may stop early (never here: no time limit), so trim to the shortest
    m = min(next(iter(c.values())).shape[0] for c in chains) if chains and chains[0] else 0
    post = {k: np.stack([c[k][:m] for c in chains]) for k in chains[0]}
    st = {k: np.stack([s[k][:m] for s in stats]) for k in stats[0]}
    return post, st


def pyarrow_bool(col: Any) -> np.ndarray:
    """An Arrow boolean column as a numpy bool array."""
    import pyarrow  # deferred: pyarrow is heavy; imported when Parquet is read or written

    return np.asarray(pyarrow.array(col).to_numpy(zero_copy_only=False), bool)


def idata_to_numpy(idata: Any, names: list[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The same pair from an InferenceData (PyMC's own sampler)."""
    post = {k: np.asarray(idata.posterior[k]) for k in names if k in idata.posterior}
    ss = idata.sample_stats
    st = {k: np.asarray(ss[k]) for k in ("diverging", "n_steps", "step_size", "tree_depth") if k in ss}
    return post, st


def to_inference_data(draws: dict[str, np.ndarray], stats: dict[str, np.ndarray],
                      extra: dict[str, np.ndarray] | None = None) -> Any:
    """ArviZ InferenceData with the canonical (chain, draw) draws, the random effects and the statistics."""
    import arviz as az  # deferred: ArviZ is heavy; imported when summarising draws

    posterior = dict(draws)
    dims = {}
    for k, v in (extra or {}).items():
        posterior[k] = v
        dims[k] = [f"{k}_level", f"{k}_term"]
    return az.from_dict(posterior=posterior, sample_stats=dict(stats), dims=dims)


class LazyInferenceData:
    """The InferenceData of a fit, built by :func:`to_inference_data` on first use (~40 ms per fit,
    which a study that never looks at it should not pay).  Attribute access (``.posterior``,
    ``.sample_stats``, …) is forwarded; :meth:`load` returns the ``arviz.InferenceData`` itself."""

    def __init__(self, draws: dict[str, np.ndarray], stats: dict[str, np.ndarray],
                 extra: dict[str, np.ndarray] | None = None) -> None:
        self._args = (draws, stats, extra)
        self._idata: Any = None

    def load(self) -> Any:
        """The ``arviz.InferenceData`` (built once)."""
        if self._idata is None:
            self._idata = to_inference_data(*self._args)
        return self._idata

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __repr__(self) -> str:
        return "LazyInferenceData(built)" if self._idata is not None else "LazyInferenceData(not built yet)"
