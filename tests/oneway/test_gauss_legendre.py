"""The stored Gauss–Legendre rule of the exact one-way theory is numpy's ``leggauss(256)`` bit for bit."""

import numpy as np

from compare_mm.oneway.gauss_legendre import NODES, legendre_rule


def test_stored_rule_is_leggauss_bit_for_bit():
    nodes, weights = legendre_rule()
    want_nodes, want_weights = np.polynomial.legendre.leggauss(NODES)
    assert nodes.dtype == weights.dtype == np.float64
    np.testing.assert_array_equal(nodes, want_nodes)
    np.testing.assert_array_equal(weights, want_weights)
    # and it is a 256-point Gauss rule: exact for x^k, k < 512 (checked on a few even powers)
    for k in (0, 2, 10, 100, 510):
        assert abs(np.sum(weights * nodes**k) - 2.0 / (k + 1)) < 1e-13
    nodes[0] = 0.0  # callers get copies: the stored rule cannot be changed through them
    assert legendre_rule()[0][0] == want_nodes[0]
