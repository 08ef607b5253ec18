"""Probes: each takes one kind of measurement and returns results; none uploads."""
