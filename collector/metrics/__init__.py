"""Prometheus metrics: what a scrape says (`scrape`), and how it is written (`exposition`)."""
