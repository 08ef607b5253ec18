"""When throughput tests run: the school day, the goal, blackouts, the data budget and slots.

`TestPolicy` is the entry point the daemon uses; `slots` asks the collector for a turn on a
shared exit. Everything here takes the time as an argument or from an injected clock.

`slots` speaks HTTP (httpx), so its names are imported on first use: the SNMP poller process
reads `ScheduleSettings` through the agent's settings and has no use for an HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.schedule.blackout import Blocked, Clear
from agent.schedule.budget import BudgetFigures, round_estimate_bytes
from agent.schedule.planner import Progress
from agent.schedule.policy import Defer, Go, TestPolicy
from agent.schedule.settings import (
    BlackoutWindow,
    BudgetSettings,
    GoalSettings,
    QuietHours,
    ScheduleSettings,
    SchoolDaySettings,
)

if TYPE_CHECKING:
    from agent.schedule.slots import Busy, Slot, acquire, release

_FROM_SLOTS = frozenset({"Busy", "Slot", "acquire", "release"})


def __getattr__(name: str) -> Any:
    if name in _FROM_SLOTS:
        from agent.schedule import slots

        return getattr(slots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BlackoutWindow",
    "Blocked",
    "BudgetFigures",
    "BudgetSettings",
    "Busy",
    "Clear",
    "Defer",
    "Go",
    "GoalSettings",
    "Progress",
    "QuietHours",
    "ScheduleSettings",
    "SchoolDaySettings",
    "Slot",
    "TestPolicy",
    "acquire",
    "release",
    "round_estimate_bytes",
]
