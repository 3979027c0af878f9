"""The hand-written REML/ML/BLUP fitter (lme4's profiled deviance; Bates et al. 2015, J. Stat. Softw. 67(1)).

Modules: :mod:`.theta` (θ ↔ Λ, bounds, lme4 order), :mod:`.profiled` (deviance from the penalised
cross-products), :mod:`.onefactor` (fast path, one grouping factor), :mod:`.blocked` and
:mod:`.blocked_eval` (several factors: MixedModels.jl's blocked Cholesky with an exact gradient),
:mod:`.general` (several factors, dense), :mod:`.sparse` (several factors, many random effects), :mod:`.optimize` (optimiser and boundary
rectification), :mod:`.conditional` (β, vcov, σ, BLUPs, condVar), :mod:`.extended` (the deviance at
(θ, σ) and with a coefficient fixed, and the optimum from a warm start, for :mod:`compare_mm.inference`).
The backend is :mod:`compare_mm.backends.reml`.
"""
