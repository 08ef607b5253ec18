"""Readiness: target profiles as data, and a pure evaluation of a school against them."""
