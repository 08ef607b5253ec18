"""Schedule settings: strict, in the school's time zone, and clear about what is wrong."""

from __future__ import annotations

from datetime import date, time
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from agent.schedule import ScheduleSettings, round_estimate_bytes
from agent.schedule.calendar import SchoolCalendar
from agent.schedule.settings import DEFAULT_DAILY_BUDGET_BYTES, SchoolDaySettings

AGENT_YAML = """
school_day: {timezone: America/Chicago, start: "07:30", end: "15:30", weekdays: [mon, tue, thu]}
goal: {valid_tests: 12, distinct_days: 6, window_days: 21, max_tests_per_day: 3}
budget: {daily_bytes: 2000000000}
blackout_dates: [2026-04-14, 2026-04-15]
blackout_windows:
  - {start: "2026-05-12T08:00", end: "2026-05-12T11:30", label: AP exams}
quiet_hours:
  - {start: "22:00", end: "06:00"}
"""


def test_a_full_section_from_yaml() -> None:
    schedule = ScheduleSettings.model_validate(yaml.safe_load(AGENT_YAML))
    assert schedule.school_day.start == time(7, 30)
    assert schedule.goal.valid_tests == 12
    assert schedule.blackout_dates == (date(2026, 4, 14), date(2026, 4, 15))
    assert schedule.blackout_windows[0].label == "AP exams"
    assert schedule.quiet_hours[0].end == time(6, 0)


def test_defaults() -> None:
    schedule = ScheduleSettings()
    assert (schedule.goal.valid_tests, schedule.goal.distinct_days) == (10, 5)
    assert (schedule.goal.window_days, schedule.goal.max_tests_per_day) == (14, 2)
    assert schedule.school_day.weekdays == ("mon", "tue", "wed", "thu", "fri")
    assert [str(b) for b in SchoolCalendar(schedule.school_day).bands] == [
        "08:00-09:00", "09:00-10:00", "10:00-11:00", "11:00-12:00",
        "12:00-13:00", "13:00-14:00", "14:00-15:00",
    ]  # fmt: skip


def test_the_default_budget_fits_ten_valid_gigabit_rounds_a_week() -> None:
    # An on-net and an internet test at 1 Gbit/s, 10 s each way, 20 % overhead: 6 GB a round.
    one_round = round_estimate_bytes(rate_bps=1e9, seconds_each_way=10, tests=2)
    assert one_round == 6_000_000_000
    assert ScheduleSettings().budget.round_estimate_bytes == one_round
    school_days_a_week = 5
    assert school_days_a_week * (DEFAULT_DAILY_BUDGET_BYTES // one_round) >= 10


def test_bands_end_with_the_school_day() -> None:
    day = SchoolDaySettings(start=time(7, 45), end=time(10, 0), band_minutes=60)
    assert [str(b) for b in SchoolCalendar(day).bands] == [
        "07:45-08:45",
        "08:45-09:45",
        "09:45-10:00",
    ]


@pytest.mark.parametrize(
    ("section", "location", "message"),
    [
        ({"school_day": {"timezone": "Mars/Olympus"}}, "school_day", "unknown time zone"),
        ({"school_day": {"start": "15:00", "end": "08:00"}}, "school_day", "must end after"),
        ({"school_day": {"weekdays": []}}, "school_day", "at least one day"),
        ({"school_day": {"weekdays": ["monday"]}}, "school_day.weekdays.0", "'mon'"),
        # YAML 1.1 reads an unquoted 11:30 as 690: refused, not taken as 00:11:30.
        (
            yaml.safe_load("quiet_hours: [{start: 11:30, end: '12:30'}]"),
            "quiet_hours.0.start",
            "quotes",
        ),
        ({"quiet_hours": [{"start": "10:00", "end": "10:00"}]}, "quiet_hours.0", "differ"),
        (
            {"blackout_windows": [{"start": "2026-05-12T10:00", "end": "2026-05-12T08:00"}]},
            "blackout_windows.0",
            "after start",
        ),
        (
            {"blackout_windows": [{"start": "2026-05-12T08:00Z", "end": "2026-05-12T10:00Z"}]},
            "blackout_windows.0",
            "without an offset",
        ),
        ({"blackout_dates": ["2026-02-30"]}, "blackout_dates.0", "date"),
        ({"goal": {"distinct_days": 20}}, "goal", "cannot exceed window_days"),
        ({"goal": {"valid_tests": 0}}, "goal.valid_tests", "greater than or equal to 1"),
        ({"budget": {"daily_bytes": -1}}, "budget.daily_bytes", "greater than or equal to 1"),
        ({"quiet_hour": []}, "quiet_hour", "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_name_the_key(section: dict[str, Any], location: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScheduleSettings.model_validate(section)
    [error] = caught.value.errors()
    assert ".".join(str(part) for part in error["loc"]) == location
    assert message in error["msg"]
