"""Measurement: timing and FLOP counting of a model (timing)."""
