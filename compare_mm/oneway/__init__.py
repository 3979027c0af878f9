"""The balanced one-way random-effects model y_ij = μ + a_i + e_ij: closed-form estimators
(:mod:`.closed_forms`), exact tests of σ_A² = 0 (:mod:`.htests`) and the exact sampling theory of the
estimators and intervals that studies show beside their Monte Carlo figures (:mod:`.theory`)."""
