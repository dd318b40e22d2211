"""Instants that arrive in requests, read as UTC, and the range the service accepts.

``0001-01-01T00:00:00+14:00`` is a valid ISO 8601 text whose UTC form is before year 1, so
Python cannot represent it; converting raised OverflowError, a 500. Every timestamp a request
carries goes through :func:`to_utc`, which makes that a validation error (a 400):

    to_utc(dt.datetime(2026, 1, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    # datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
"""

from __future__ import annotations

import datetime as dt


def to_utc(value: dt.datetime) -> dt.datetime:
    """The same instant in UTC (a naive value is read as UTC); ValueError when it has none."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(
            f"{value.isoformat()} is outside the dates this service stores "
            "(0001-01-01 to 9999-12-31, in UTC)"
        ) from None
