"""PyMC (sampled by nutpie or PyMC's NUTS) as a backend (:mod:`.backend`): the model graph
(:mod:`.model`, :mod:`.stats`, :mod:`.marginal`), priors (:mod:`.priors`), draws (:mod:`.draws`) and the
posterior summary that becomes a FitResult (:mod:`.summary`).  Importing this package does not import PyMC."""
