"""Simulation studies: YAML config, plan, data generation, fits → rows, store, summary metrics with MCSE."""
