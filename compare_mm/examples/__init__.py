"""``compare-mm example``: the sleepstudy models fitted by every backend (:mod:`.sleepstudy`) and their
panel plot (:mod:`.plot`)."""
