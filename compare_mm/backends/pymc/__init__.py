"""PyMC (sampled by nutpie or PyMC's NUTS) as a backend (:mod:`.backend`): the model graph
(:mod:`.model`, :mod:`.stats`, :mod:`.marginal`), priors (:mod:`.priors`), draws (:mod:`.draws`) and the
posterior summary that becomes a FitResult (:mod:`.summary`).  Importing this package does not import PyMC."""

from .status import quiet_arviz_notice

quiet_arviz_notice()   # before any deferred `import arviz` in this process (study workers included)
