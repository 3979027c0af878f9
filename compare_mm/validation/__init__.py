"""``compare-mm validate``: every backend against lme4's reference fits and against each other
(:mod:`.validate`), on the cases of :mod:`.cases`, compared by the measures of :mod:`.measures`."""
