"""statsmodels MixedLM as a backend (:mod:`.backend`): how a Design maps onto MixedLM's groups, random
effects and variance components (:mod:`.layout`), and lme4-ordered random effects (:mod:`.ranef`)."""
