"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): timestamps the collector can accept.

JSON Schema's `date-time` cannot say "not before 2000, not more than 10 minutes ahead", the
collector's documented plausibility rule, so schema-valid data is generated inside that window
with assorted UTC offsets. JSON Schema can only call a CSV body "a string", so the schools
import gets files as the README documents them: a header and rows of valid cells. Everything
else is generated from the schema as published.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import schemathesis
from hypothesis import strategies as st

from agent.wire import EARLIEST_TIMESTAMP

_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_instants = st.datetimes(
    min_value=EARLIEST_TIMESTAMP.replace(tzinfo=None),
    max_value=datetime.now(UTC).replace(tzinfo=None),
)
plausible_timestamps = st.builds(
    lambda instant, offset: instant.replace(tzinfo=UTC).astimezone(offset).isoformat(),
    _instants,
    _offsets,
)
schemathesis.openapi.format("date-time", plausible_timestamps)

_school_names = st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=40).map(str.strip)
_school_rows = st.lists(
    st.tuples(_school_names.filter(bool), st.integers(0, 10**6), st.integers(0, 10**6)),
    max_size=5,
    unique_by=lambda row: row[0],
)
schemathesis.openapi.media_type(
    "text/csv",
    _school_rows.map(
        lambda rows: (
            "SCH_NAME,TOTAL,STAFF\r\n" + "".join(f"{n},{t},{s}\r\n" for n, t, s in rows)
        ).encode()
    ),
)
