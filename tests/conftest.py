"""Shared fixtures: real servers on loopback. The fixtures themselves live in tests/fixtures/."""

import os

# The network rule: no test may reach speedtest.net. The agent's internet test is on by default
# (that is its job in the field); here it is off for every agent a test starts, in-process or as
# a subprocess, unless a test builds the probe itself against the local stand-in.
os.environ["READYNET_AGENT_INTERNET__ENABLED"] = "false"

pytest_plugins = [
    "tests.fixtures.collector",
    "tests.fixtures.faults",
    "tests.fixtures.snmpsim",
    "tests.fixtures.speedtest_server",
]
