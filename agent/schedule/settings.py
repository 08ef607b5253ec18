"""When throughput tests may run: the school day, the goal, the data budget and the blackouts.

One `ScheduleSettings` section, strict like the rest of the agent's settings (unknown keys are
refused, naming the key). Times of day are written in quotes in YAML (``"11:30"``): unquoted,
YAML 1.1 reads ``11:30`` as the number 690, which is refused here rather than read as 00:11:30.

Example (agent.yaml):

    schedule:
      school_day: {timezone: America/Chicago, start: "07:30", end: "15:30"}
      goal: {valid_tests: 10, distinct_days: 5, window_days: 14}
      blackout_dates: [2026-04-14, 2026-04-15]          # state testing
      blackout_windows:
        - {start: "2026-05-12T08:00", end: "2026-05-12T11:30", label: AP exams}
      quiet_hours:
        - {start: "11:30", end: "12:30", label: lunch}
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Label = Annotated[str, Field(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]

# The default budget, for a school on a 1 Gbit/s circuit:
#   on-net test   10 s down + 10 s up at 1e9 bit/s = 20 s x 125,000,000 B/s = 2.5 GB
#   internet test the same bound (speedtest-cli also runs about 10 s each way) = 2.5 GB
#   warm-up (moved but discarded), TCP/IP and HTTP overhead: + 20 %
#   one round     (2.5 + 2.5) GB x 1.2 = 6 GB (budget.round_estimate_bytes)
#   2 rounds a school day x 5 school days = 10 valid tests a week; daily budget 2 x 6 = 12 GB.
# A school on 100 Mbit/s moves a tenth of that per round. The goal (10 over 14 days) needs half.
DEFAULT_ROUND_ESTIMATE_BYTES = 6_000_000_000
DEFAULT_DAILY_BUDGET_BYTES = 2 * DEFAULT_ROUND_ESTIMATE_BYTES


def _time_text(value: object) -> object:
    # pydantic would read an int as seconds since midnight: YAML's 11:30 -> 690 -> 00:11:30.
    if isinstance(value, bool | int | float):
        raise ValueError(
            "write the time as text in quotes, e.g. '11:30' (YAML reads 11:30 unquoted as a number)"
        )
    return value


TimeOfDay = Annotated[time, BeforeValidator(_time_text)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchoolDaySettings(_Section):
    """The school day, in the school's own time zone: the hours the tests are spread over."""

    timezone: str = "America/New_York"
    weekdays: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: TimeOfDay = time(8, 0)
    end: TimeOfDay = time(15, 0)
    # The day is cut into bands of this many minutes from `start` (the last one may be
    # shorter): the goal wants a valid test in each, so every hour of the day is seen.
    band_minutes: int = Field(default=60, ge=15, le=24 * 60)

    @model_validator(mode="after")
    def _valid_day(self) -> SchoolDaySettings:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone: unknown time zone {self.timezone!r} "
                "(an IANA name such as America/Chicago)"
            ) from None
        if self.end <= self.start:
            raise ValueError("end: the school day must end after it starts")
        if not self.weekdays:
            raise ValueError("weekdays: name at least one day")
        return self


class GoalSettings(_Section):
    """What earns a verdict: enough valid tests, on enough days, in every band, recently."""

    valid_tests: int = Field(default=10, ge=1, le=1000)
    distinct_days: int = Field(default=5, ge=1, le=366)
    window_days: int = Field(default=14, ge=1, le=366)
    max_tests_per_day: int = Field(default=2, ge=1, le=96)
    # Rounds of one day start at least this far apart, so a day's tests see different hours.
    min_gap_minutes: int = Field(default=60, ge=0, le=24 * 60)
    # The path whose valid results count; readiness is judged on on-net tests today.
    path: Literal["onnet", "internet"] = "onnet"

    @model_validator(mode="after")
    def _reachable(self) -> GoalSettings:
        if self.distinct_days > self.window_days:
            raise ValueError("distinct_days: cannot exceed window_days")
        return self


class BudgetSettings(_Section):
    """The agent's data budget per day of the school's calendar (see the arithmetic above)."""

    daily_bytes: int = Field(default=DEFAULT_DAILY_BUDGET_BYTES, ge=1, le=2**62)
    # What a test round is assumed to move when the daemon does not say.
    round_estimate_bytes: int = Field(default=DEFAULT_ROUND_ESTIMATE_BYTES, ge=1, le=2**62)


class BlackoutWindow(_Section):
    """A date and time range with no tests (exam hours), local to the school's time zone."""

    start: datetime
    end: datetime
    label: Label = ""

    @model_validator(mode="after")
    def _ordered(self) -> BlackoutWindow:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("give local times in the school's time zone, without an offset")
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        return self


class QuietHours(_Section):
    """A daily range with no tests; an end before the start runs past midnight (22:00-06:00)."""

    start: TimeOfDay
    end: TimeOfDay
    label: Label = ""

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.end == self.start:
            raise ValueError("end: must differ from start")
        return self


class ScheduleSettings(_Section):
    """Everything `TestPolicy` needs; one section of the agent's settings."""

    school_day: SchoolDaySettings = Field(default_factory=SchoolDaySettings)
    goal: GoalSettings = Field(default_factory=GoalSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    blackout_dates: tuple[date, ...] = ()
    blackout_windows: tuple[BlackoutWindow, ...] = ()
    quiet_hours: tuple[QuietHours, ...] = ()
    # Room a test round needs: a start is never planned closer than this to a blackout, quiet
    # hours or the end of its band, so the round does not run into them.
    round_seconds: int = Field(default=120, ge=1, le=3600)
