"""The agent must stay light: importing it loads no server-side library."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("fastapi", "sqlalchemy", "uvicorn", "starlette", "alembic", "psycopg", "collector")


def test_agent_entry_point_loads_no_collector_or_server_module() -> None:
    code = (
        "import json, sys, agent.__main__, agent.cli, agent.probes.snmp, agent.probes.onnet;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "agent.cli" in loaded
    offenders = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_agent_install_pulls_in_no_server_package() -> None:
    """`pip install readynet[agent]` brings only the base requirements: none of the server's."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    base = [Requirement(r) for r in requires("readynet") or []]
    agent_side = {
        r.name.lower() for r in base if r.marker is None or r.marker.evaluate({"extra": "agent"})
    }
    assert {"httpx", "pysnmp", "pydantic-settings", "speedtest-cli", "apscheduler"} <= agent_side
    assert agent_side.isdisjoint(
        {"fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "starlette"}
    )
