"""Shared fixtures: real servers on loopback. The fixtures themselves live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.collector",
    "tests.fixtures.faults",
    "tests.fixtures.snmpsim",
    "tests.fixtures.speedtest_server",
]
