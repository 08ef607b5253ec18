"""ReadyNet agent: measures a school's network and delivers the results to the collector."""

__version__ = "0.1.0"
