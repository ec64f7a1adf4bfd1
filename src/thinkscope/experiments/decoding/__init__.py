"""Correctness-first decoding experiments: calibration grids, decoding sweeps and the
per-step rank report."""
