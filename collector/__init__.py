"""ReadyNet collector: stores agents' measurements and judges schools' readiness."""

__version__ = "0.1.0"
