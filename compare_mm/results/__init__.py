"""What every backend returns: the :class:`~.schema.FitResult` value and its rows (:mod:`.schema`), and
its lme4-style printed summary (:mod:`.summary`)."""
