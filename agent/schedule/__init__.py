"""When throughput tests run: the school day, the goal, blackouts, the data budget and slots.

`TestPolicy` is the entry point the daemon uses; `slots` asks the collector for a turn on a
shared exit. Everything here takes the time as an argument or from an injected clock.
"""

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
from agent.schedule.slots import Busy, Slot, acquire, release

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
