"""`readynet-collector` commands for the inventory: CSV import and export, circuits, rooms."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this module's commands on the collector's command parser."""
