"""The model stage: an lme4 formula (:mod:`.formula`) becomes a :class:`~.spec.ModelSpec`, and a spec plus a
data frame becomes a validated :class:`~.design.Design` (:mod:`.design`, checks in :mod:`.checks`)."""
