"""The study YAML: its schema (:mod:`.schema`), loading and checking (:mod:`.load`), the checks of each
fit (:mod:`.fits`) and of its tests/intervals keys (:mod:`.inference`)."""
