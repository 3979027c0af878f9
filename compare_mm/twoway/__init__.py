"""The balanced two-way mixed model (randomized complete block design): ANOVA statistics, closed-form
REML/ML/ANOVA estimates (:mod:`.anova`) and exact finite-sample theory (:mod:`.theory`)."""
