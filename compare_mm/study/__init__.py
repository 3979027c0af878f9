"""Simulation studies: YAML config, data-generating processes, runner, metrics, exact theory."""
