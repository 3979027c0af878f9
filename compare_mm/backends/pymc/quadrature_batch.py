"""``sampler="quadrature"`` in studies: one prepared design, many responses, fitted as one array program.

:class:`PreparedQuadrature` is what :meth:`PyMCBackend.prepare` returns for ``sampler="quadrature"``: it
imports and builds no PyMC model.  It holds what does not depend on y — the options and priors
(resolved once), X, the level codes and the per-level cross-products Z_i'Z_i, Z_i'X_i, X'X of
equation (1) of :mod:`.quadrature_model`.  ``fit(y, seed)`` is the per-replicate path
(:func:`.quadrature_fit.fit_quadrature`); ``fit_many(Y, seeds)`` fits R responses at once when the
model has one scalar random term (``y ~ x… + (1 | g)``, balanced or not; ψ = (σ_A, σ), d = 2):

1. per replicate, vectorised: the data scales (sd(y), ȳ: the data-scaled default priors and the
   coordinates c follow each response), r₀ = y − Xm₀ and the statistics Z_i'r₀, X'r₀, r₀'r₀, pooled
   over the levels that share Z_i'Z_i (U distinct values; U = 1 when balanced), so that every sum over
   levels in (1) costs U terms (:mod:`.quadrature_batch_density`);
2. the mode z* of log f (η coordinates of :mod:`.quadrature`) by projected Newton steps on every
   replicate at once (one central-difference stencil per step; replicates that have converged are
   masked out) and the axis scales s⁻, s⁺ (log f falls by 2 at 2s) from one batched line search;
3. one fixed-shape grid per replicate: N₀ × N₁ nodes (the same for the whole block, N_k odd) over the
   box [z*_k − L s⁻_k, z*_k + L s⁺_k] (cut at η = 0 with Gregory's end weights there — ½ and an even
   marginal spline on an axis whose prior is even, as on the per-replicate path; on a log axis —
   an inverse-gamma prior, :class:`.quadrature.Coordinates` — extended down to where log f along the axis
   has fallen by :data:`REACH`) with spacing
   ≤ h·min(s⁻, s⁺) — first L = 7.5, h = ½ (the final spacing of the per-replicate path on these
   models; with L = 6.5, 12 % of the replicates of a one-way 18 × 10 design with σ_A² = 0.5 failed the
   box-face check and were fitted again), then, for the replicates failing a check, L = 9.5, h = ¼; log p(y | ψ) and the moments of
   β | ψ, y (equations (1)–(2)) on all R × N₀N₁ nodes in one pass;
4. the summaries of :mod:`.quadrature_summary`, vectorised in :mod:`.quadrature_batch_summary`; u's
   mixture moments as weighted sums over the nodes (:func:`.quadrature_batch_density.group_effects`); the rows and the FitResult
   by :func:`.quadrature_batch_summary.posterior_arrays` (``Marginal.summary`` on all rows at once) and
   ``quad_result``, as in the per-replicate path.

Accuracy contract (the per-replicate one): the reported ETI ends, median, mean and SD of every
parameter are recomputed on the every-other-node subgrid (spacing 2h, the previous refinement of the
per-replicate path); their largest change, in posterior SDs, is the reported integration error and must
be < tol = 1e-3; every face of the box not on η = 0 must be below max log f − Δ (Δ = 12).  Nodes of a
marginal more than 30 below its maximum (the per-replicate path trims them) are raised to max − 30
(they hold < e⁻³⁰ of the mass); a node with log f = −inf is accepted only next to such nodes.  A
replicate failing a check on both grids — or in a block that raised — is refitted by ``fit_quadrature``;
its result then carries ``diagnostics["batched"] = False``.

HDI ends (the shortest of 4,001 candidate intervals, a flat minimum) agree with the per-replicate path to
~5e-3 posterior SDs; ETI ends, medians, means and SDs to < 1e-4 on one-way data.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from ...model.design import Design
from ...parallel import blas_single_thread
from ...results.schema import FitResult, PosteriorSummary
from .priors import describe_priors
from .quadrature import DELTA
from .quadrature_flood import TAIL_SHARE
from .quadrature_summary import PRUNE, QuadSummary, quad_result
from .quadrature_batch_density import (axis_tilts, describe_replicate, design_static, group_effects, log_axes, log_f,
                                       natural, response_data)
from .quadrature_batch_summary import _compared, _node_weights, _summarise, posterior_arrays
from .quadrature_fit import TOL, fit_quadrature, ignored_settings
from .tails import lift_powers, moment_orders

#: (box half-width in axis scales, spacing in min(s⁻, s⁺)) of the first try and of the retry of the
#: replicates failing a check (a face above max − Δ, or a change ≥ tol: e.g. a posterior piled up at
#: σ_A = 0 that needs h = ¼); largest nodes per axis
PASSES, N_MAX = ((7.5, 0.5), (9.5, 0.25)), 129
#: on a log axis the box's lower end lies at least where log f along the axis has fallen by REACH (Δ + 12:
#: the line through the mode can lie below the face's maximum)
REACH = 24.0
#: replicates evaluated together in the first pass and in the retry (memory ∝ rows × N₀N₁ × U)
BLOCK, RETRY_BLOCK = 32, 16


def batchable(design: Design) -> bool:
    """True for one random-effects block with one scalar effect (ψ = (σ_A, σ)): :meth:`fit_many`'s case."""
    return len(design.blocks) == 1 and design.blocks[0].q == 1


_ST = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]], float)


def _find_modes(f, R: int, bounded: np.ndarray, e: float = 1e-3, iters: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """quadrature_mode.find_mode on every replicate at once: projected Newton, η ≥ 0 on the ``bounded``
    axes (2,), active set; a replicate stops when no step size increases log f or it moved < 1e-7.
    ``f(idx, z (m, P, 2))``."""
    z = np.full((R, 2), 1.5)
    fz = f(np.arange(R), z[:, None, :])[:, 0]
    active = np.ones(R, bool)
    alphas = 2.0 ** -np.arange(12)
    for _ in range(iters):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        za = z[idx]
        centre = np.where(bounded, np.maximum(za, 2 * e), za)
        v = f(idx, centre[:, None, :] + e * _ST[None])
        g = np.stack([(v[:, 1] - v[:, 2]) / (2 * e), (v[:, 3] - v[:, 4]) / (2 * e)], 1)
        H = np.empty((idx.size, 2, 2))
        H[:, 0, 0] = (v[:, 1] + v[:, 2] - 2 * v[:, 0]) / e**2
        H[:, 1, 1] = (v[:, 3] + v[:, 4] - 2 * v[:, 0]) / e**2
        H[:, 0, 1] = H[:, 1, 0] = (v[:, 5] - v[:, 6] - v[:, 7] + v[:, 8]) / (4 * e * e)
        fixed = bounded & (za <= 1e-12) & (g < 0)
        gf = np.where(fixed, 0.0, g)
        Hf = H.copy()
        for k in range(2):
            Hf[fixed[:, k], k, :] = 0.0
            Hf[fixed[:, k], :, k] = 0.0
            Hf[fixed[:, k], k, k] = -1.0
        step = np.zeros_like(za)
        with np.errstate(all="ignore"):
            ok = np.all(np.isfinite(Hf), axis=(1, 2))
            ev = np.full((idx.size, 2), np.nan)
            ev[ok] = np.linalg.eigvalsh(Hf[ok])
            newton = ok & (ev.max(1) < 0)
            if newton.any():
                step[newton] = -np.linalg.solve(Hf[newton], gf[newton][..., None])[..., 0]
            grad = ok & ~newton
            step[grad] = gf[grad] / np.maximum(np.abs(ev[grad]).max(1), 1.0)[:, None]
            step[~ok] = gf[~ok]
        bad = ~np.all(np.isfinite(step), 1)
        step[bad] = np.where(np.isfinite(g[bad]), g[bad], 0.0)
        cand = za[:, None, :] + alphas[None, :, None] * step[:, None, :]
        cand = np.where(bounded, np.maximum(cand, 0.0), cand)
        fc = f(idx, cand)
        b = np.argmax(fc, 1)
        fb = fc[np.arange(idx.size), b]
        better = fb > fz[idx]
        new = cand[np.arange(idx.size), b]
        moved = np.max(np.abs(new - za), 1)
        z[idx[better]], fz[idx[better]] = new[better], fb[better]
        active[idx[~better | (moved < 1e-7)]] = False
    return z, fz


def _axis_scales(f, z0: np.ndarray, lmax: np.ndarray, bounded: np.ndarray, drop: float = 2.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """quadrature_mode.axis_scales for every replicate: (s⁻, s⁺, reach) (R, 2) each from log f along ±axis
    at 10⁻³ … 10² (towards η = 0 on the ``bounded`` axes only up to the bound); ``reach``: the distance
    below z* at which log f first falls below lmax − :data:`REACH`."""
    R = z0.shape[0]
    t = np.geomspace(1e-3, 1e2, 120)
    off = np.zeros((2, 2, t.size, 2))
    for k in range(2):
        off[k, 0, :, k], off[k, 1, :, k] = t, -t
    pts = z0[:, None, :] + off.reshape(-1, 2)[None]
    v = f(np.arange(R), pts).reshape(R, 2, 2, t.size) - (lmax - drop)[:, None, None, None]
    v[:, :, 1, :] = np.where((t[None, None, :] > z0[:, :, None]) & bounded[None, :, None], np.nan, v[:, :, 1, :])
    below = ~(v > 0) & np.isfinite(v)
    has = below.any(-1)
    i = np.argmax(below, -1)
    ip = np.maximum(i - 1, 0)
    a = np.take_along_axis(v, ip[..., None], -1)[..., 0]
    bb = np.take_along_axis(v, i[..., None], -1)[..., 0]
    with np.errstate(all="ignore"):
        cross = (t[ip] + (t[i] - t[ip]) * a / (a - bb)) / drop
    out = np.where(has, np.where(i == 0, t[0] / drop, cross), np.nan)
    hi = np.where(np.isnan(out[..., 0]), np.where(np.isnan(out[..., 1]), 1.0, out[..., 1]), out[..., 0])
    lo = np.where(np.isnan(out[..., 1]), hi, out[..., 1])
    # reach: 10² when log f never falls that far on the t grid (the box is then too wide for the batch)
    deep = (v[:, :, 1, :] < drop - REACH) & np.isfinite(v[:, :, 1, :])
    reach = np.where(deep.any(-1), t[np.argmax(deep, -1)], t[-1])
    return lo, hi, reach


def tail_cut(w: np.ndarray, nat: np.ndarray, at_zero: np.ndarray, powers: tuple[int, ...] = (1, 1)) -> np.ndarray:
    """Per replicate: whether the box cut off a heavy tail — the batched counterpart of the flood's tail
    check (:func:`.quadrature_flood.tail_lift`).  For each axis k (w: normalised weights (R, N₀, N₁);
    ``nat`` (R, N₀, N₁, 2): σ_A and σ at the nodes), the share of the variance of s_k^p, p = 1 … powers[k]
    (:func:`.tails.lift_power`), on and beyond the box's faces along k (the lower one only where it is not
    η = 0; beyond: the face layer's geometric continuation a·r/(1 − r), r the ratio of the face layer to
    the layer inside it); True where a share exceeds :data:`.quadrature_flood.TAIL_SHARE` (the replicate then goes to the wider
    retry grid and, failing again, to the per-replicate path, whose flood follows the tail).  On one-way
    6 × 4 data under IG(0.001, 0.001) the box had left the SD of σ_A 1.9e-3 posterior SDs off a
    brute-force integration."""
    R = w.shape[0]
    cut = np.zeros(R, bool)
    for k in range(2):
        s = nat[..., k]
        for p in range(1, powers[k] + 1):
            sp = s**p
            m = np.einsum("rij,rij->r", w, sp)
            d2 = w * (sp - m[:, None, None]) ** 2
            v = d2.sum((1, 2))
            faces = [(-1, -2)] + ([] if at_zero[:, k].all() else [(0, 1)])
            for edge, inner in faces:
                a = np.take(d2, edge, axis=1 + k).sum(1)
                b = np.take(d2, inner, axis=1 + k).sum(1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    # what lies beyond the face, extrapolated geometrically from its last two node layers
                    # (a slowly falling tail — s⁴f ~ s⁻² under a half-Cauchy on 4 groups — leaves a small face
                    # but a long remainder: 3.6e-3 posterior SDs of the SD of σ_A² on one such case)
                    r = a / b
                    beyond = np.where(r < 1, a * r / (1 - r), np.inf)
                    share = np.where(a > 0, a + beyond, 0.0)
                    hit = share > TAIL_SHARE * v
                if edge == 0:
                    hit &= ~at_zero[:, k]
                cut |= hit
    return cut


# ---------------------------------------------------------------------------------------- summaries
class PreparedQuadrature:
    """:meth:`PyMCBackend.prepare` for ``sampler="quadrature"`` (module docstring): no PyMC.

    ``fit(y, seed)`` equals ``backend.fit(design.with_y(y), options | {seed})``; ``fit_many(Y, seeds)``
    returns the same fits for the rows of Y (within the accuracy contract), batched when
    :func:`batchable`.
    """

    def __init__(self, backend: Any, design: Design, options: Mapping[str, Any] | None):
        self.backend, self.design, self.options = backend, design, dict(options or {})
        self.opts, self.priors = backend.resolved_options(design, self.options)  # the backend's own checks
        self.tol = TOL
        self.notes = ignored_settings(self.options)
        self.tails = moment_orders(self.priors, design)
        # per axis (σ_A, σ) the highest power whose variance the box's tail check covers (tails.lift_power)
        self.powers = lift_powers(self.priors.sd_names[:1] + ("sigma",), self.tails)
        self._st = design_static(design) if batchable(design) else None

    def fit(self, y: np.ndarray, seed: int | None = None) -> FitResult:
        """One response by the per-replicate path (:func:`.quadrature_fit.fit_quadrature`)."""
        options = self.options if seed is None else dict(self.options, seed=seed)
        return self.backend.fit(self.design.with_y(y), options)

    # ----------------------------------------------------------------------------------- batched
    def _shown(self, design: Design, seed: int | None, described: dict | None = None) -> tuple[dict, dict]:
        opts = dict(self.opts)
        if seed is not None:
            opts["seed"] = int(seed)
        elif "seed" not in self.options:
            opts["seed"] = int(np.random.SeedSequence().generate_state(1)[0])
        shown = dict(opts, priors=described if described is not None else describe_priors(self.priors, design))
        if "prior" in self.options:
            shown["prior"] = self.options["prior"]
        return opts, shown

    def _fallback(self, y: np.ndarray, seed: int | None) -> FitResult:
        t0 = time.perf_counter()
        design = self.design.with_y(y)
        opts, shown = self._shown(design, seed)
        res = fit_quadrature(design, opts, self.priors, shown, t0, tol=self.tol, notes=self.notes)
        res.diagnostics["batched"] = False
        return res

    @blas_single_thread   # small matrices: BLAS threads only contend (7× slower on a loaded machine)
    def fit_many(self, Y: np.ndarray, seeds: Sequence[int | None] | None = None) -> list[FitResult]:
        """Fits of the rows of ``Y`` (R, n): one array program per block of :data:`BLOCK` replicates when
        :func:`batchable`, else (and for every replicate failing a check) :meth:`fit`'s path.

        ``seeds[i]`` is recorded as row i's ``seed`` option (the fit is deterministic).  An entry is None
        where the per-replicate path raised (``fit(Y[i], seeds[i])`` raises the same error).
        """
        Y = np.asarray(Y, float)
        if Y.ndim != 2 or Y.shape[1] != self.design.n:
            raise ValueError(f"fit_many needs responses of shape (R, {self.design.n}), got {Y.shape}.")
        seeds = [None] * Y.shape[0] if seeds is None else list(seeds)
        if self._st is None:
            return [self._fallback(Y[i], seeds[i]) for i in range(Y.shape[0])]
        out: list[FitResult | None] = [None] * Y.shape[0]
        for b0 in range(0, Y.shape[0], BLOCK):
            idx = np.arange(b0, min(b0 + BLOCK, Y.shape[0]))
            for (box, h), size in zip(PASSES, (BLOCK, RETRY_BLOCK)):
                # a replicate failing a check is retried on a wider, finer grid, then alone
                failed = []
                for j0 in range(0, idx.size, size):
                    part = idx[j0:j0 + size]
                    try:
                        res = self._block(Y[part], [seeds[i] for i in part], time.perf_counter(), box, h)
                    except (ArithmeticError, ValueError, np.linalg.LinAlgError):  # these go alone
                        res = [None] * part.size
                    for i, r in zip(part, res):
                        out[i] = r
                    failed += [i for i, r in zip(part, res) if r is None]
                idx = np.array(failed, int)
                if idx.size == 0:
                    break
            for i in idx:
                try:
                    out[i] = self._fallback(Y[i], seeds[i])
                except Exception:  # noqa: BLE001 — fit(Y[i]) raises it again; the caller records it
                    out[i] = None
        return out  # type: ignore[return-value]

    def _block(self, Y: np.ndarray, seeds: list, t0: float, box: float, h: float) -> list[FitResult | None]:
        """The batched fit of a block of responses (module docstring, steps 1–4); None where a check fails."""
        st, pri, design, n = self._st, self.priors, self.design, self.design.n
        R = R0 = Y.shape[0]
        data = response_data(st, pri, Y)

        def f(idx, z):
            return log_f(st, n, pri, data.take(idx), z)

        log_ax = log_axes(pri)
        z0, lmax = _find_modes(f, R, ~log_ax)
        s_lo, s_hi, reach = _axis_scales(f, z0, lmax, ~log_ax)
        s = np.minimum(s_lo, s_hi)
        # on a log axis the density can stay near its maximum for a long way down — under IG(0.001, 0.001)
        # on σ_A² a shelf of the prior's v⁻¹ reaches down to s ~ √0.001 — so the box reaches below it too
        lo = np.where(log_ax, np.minimum(z0 - box * s_lo, z0 - reach), z0 - box * s_lo)
        at_zero = (lo <= 0.0) & ~log_ax
        lo = np.where(at_zero, 0.0, lo)
        hi = z0 + box * s_hi
        need = np.ceil((hi - lo) / (h * s)).astype(np.int64) + 1       # nodes for spacing ≤ h·s
        need = need + (need % 2 == 0)
        ok0 = np.isfinite(lmax) & np.all(np.isfinite(s) & (s > 0), 1) & np.all(need <= N_MAX, 1)
        out: list[FitResult | None] = [None] * R
        if not ok0.any():
            return out
        keep = np.flatnonzero(ok0)               # the rest: per-replicate path
        data, z0, lmax, s, lo, hi, at_zero = (data.take(keep), z0[keep], lmax[keep], s[keep], lo[keep],
                                              hi[keep], at_zero[keep])
        Y, seeds = Y[keep], [seeds[i] for i in keep]
        R = keep.size
        N = [int(max(need[keep, k].max(), 9)) for k in range(2)]
        dz = (hi - lo) / (np.array(N) - 1)
        tn = [np.arange(N[k], dtype=float) for k in range(2)]
        zk = [lo[:, k, None] + dz[:, k, None] * tn[k][None] for k in range(2)]
        Z = np.stack(np.broadcast_arrays(zk[0][:, :, None], zk[1][:, None, :]), -1)   # (R, N0, N1, 2)
        lf, bm, bv, what, Sinv, Di = log_f(st, n, pri, data, Z.reshape(R, -1, 2), want=True)
        lf = lf.reshape(R, N[0], N[1])
        top = np.maximum(lmax, lf.reshape(R, -1).max(1))
        delta = DELTA[2]
        good = np.ones(R, bool)
        for k in range(2):
            hi_face = np.take(lf, -1, axis=1 + k).max(1)
            lo_face = np.take(lf, 0, axis=1 + k).max(1)
            good &= hi_face <= top - delta
            good &= at_zero[:, k] | (lo_face <= top - delta)
        nat = natural(data.c[:, None, None, :], Z, log_ax)
        names = [f"sd_{design.blocks[0].term_names[0]}|{design.blocks[0].group}"]
        tilt = np.where(at_zero, axis_tilts(pri, data), np.nan)
        lw = [_node_weights(N[k], dz[:, k], at_zero[:, k], tilt[:, k]) for k in range(2)]
        full, wn = _summarise(lf, lw, lo, dz, data.c, nat, bm, bv, names, design.fixed_names, log_ax,
                              level=self.opts["level"], tilt=tilt)
        good &= full.ok
        # every-other-node subgrid: the previous refinement (spacing 2h)
        lw2 = [_node_weights((N[k] + 1) // 2, 2 * dz[:, k], at_zero[:, k], tilt[:, k]) for k in range(2)]
        sub_shape = (R, (N[0] + 1) // 2, (N[1] + 1) // 2)
        bm_s = bm.reshape(R, N[0], N[1], -1)[:, ::2, ::2]
        bv_s = bv.reshape(R, N[0], N[1], -1)[:, ::2, ::2]
        sub, _ = _summarise(lf[:, ::2, ::2], lw2, lo, 2 * dz, data.c, nat[:, ::2, ::2], bm_s, bv_s, names,
                            design.fixed_names, log_ax, light=True, level=self.opts["level"], tilt=tilt)
        q, sd = _compared(full, self.opts["level"])
        q2, _ = _compared(sub, self.opts["level"])
        with np.errstate(all="ignore"):
            change = np.max(np.abs(q - q2) / np.maximum(sd, 1e-300), 1)
        good &= sub.ok & (change < self.tol)
        # group effects: the mixture's first two moments (quadrature_summary.group_effects)
        wk = np.where(wn > PRUNE * wn.max(1, keepdims=True), wn, 0.0)
        wk = wk / wk.sum(1, keepdims=True)
        natf = nat.reshape(R, -1, 2)
        good &= ~tail_cut(wn.reshape(R, N[0], N[1]), nat, at_zero, self.powers)
        u_mean, u_sd = group_effects(st, data, wk, natf[..., 0], natf[..., 1], what, Sinv, Di)
        good &= np.isfinite(u_mean).all(1) & np.isfinite(u_sd).all(1)
        per = (time.perf_counter() - t0) / R0
        level = self.opts["level"]
        post = {nm: (marg[6] if len(marg) > 6 else posterior_arrays(*marg[:3], level), *marg[3:5])
                for nm, marg in full.margs.items()}
        nan = float("nan")
        for i in range(R):
            if not good[i]:
                continue
            t1 = time.perf_counter()
            summaries = {nm: PosteriorSummary(parameter=nm, mean=float(m[i]), sd=float(sdv[i]), rhat=nan,
                                              ess_bulk=nan, ess_tail=nan, level=level,
                                              **{k: float(v[i]) for k, v in arr.items()})
                         for nm, (arr, m, sdv) in post.items()}
            qs = QuadSummary({}, u_mean[i][:, None], u_sd[i][:, None])
            d_i = design.with_y(Y[i])
            _, shown = self._shown(d_i, seeds[i], describe_replicate(pri, design, data, i))
            hi_ = float(np.max(dz[i] / s[i]))
            diagnostics = {"sampler": "quadrature", "grid_size": N[0] * N[1], "grid_shape": list(N),
                           "refinements": [{"h": 2 * hi_, "grid_size": sub_shape[1] * sub_shape[2],
                                            "change": float("inf")},
                                           {"h": hi_, "grid_size": N[0] * N[1], "change": float(change[i])}],
                           "integration_error": float(change[i]), "tolerance": self.tol,
                           "quadrature_s": per, "batched": True}
            res = quad_result(qs, d_i, level=level, converged=True, options=shown, diagnostics=diagnostics,
                              elapsed_s=per + time.perf_counter() - t1, summaries=summaries, warnings=self.notes,
                              tails=self.tails)
            out[keep[i]] = res
        return out


__all__ = ["PreparedQuadrature", "batchable"]
