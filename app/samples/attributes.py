"""Speaker and recording attributes: controlled vocabularies and how values are checked.

Curation balances training sets by these values, so they come from fixed vocabularies (a
typo would make a new, empty group). ``domain`` is open (a reseller's field: ``medical``,
``legal``…) but must be a lowercase slug. ``snr_db`` is a number, measured on the way in.
"""

from __future__ import annotations

import math
import re
from typing import Any

from app.kit.errors import BadRequest
from app.tables.samples import ATTRIBUTE_SOURCES, ATTRIBUTES
from curation.vocabulary import VOCABULARIES

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SNR_RANGE = (-20.0, 100.0)


class InvalidAttribute(BadRequest):
    """An attribute name or value outside the controlled vocabularies."""


def check_attribute(name: str, value: Any) -> str | float | None:
    """The value to store for ``name`` (None clears it), or :class:`InvalidAttribute`."""
    if name not in ATTRIBUTES:
        raise InvalidAttribute(
            f"Unknown attribute '{name}'; known attributes: {', '.join(ATTRIBUTES)}."
        )
    if value is None or value == "":
        return None
    if name == "snr_db":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidAttribute(f"snr_db must be a number of dB, not {value!r}.") from None
        if not math.isfinite(number) or not SNR_RANGE[0] <= number <= SNR_RANGE[1]:
            raise InvalidAttribute(f"snr_db must be between {SNR_RANGE[0]} and {SNR_RANGE[1]}.")
        return number
    if not isinstance(value, str):
        raise InvalidAttribute(f"{name} must be a string.")
    text = value.strip().lower()
    vocabulary = VOCABULARIES.get(name)
    if vocabulary is not None and text not in vocabulary:
        raise InvalidAttribute(
            f"{name} '{value}' is not in its vocabulary: {', '.join(sorted(vocabulary))}."
        )
    if vocabulary is None and not _SLUG.match(text):
        raise InvalidAttribute(f"{name} must be a lowercase slug like 'medical', not {value!r}.")
    return text


def check_attributes(values: dict[str, Any]) -> dict[str, str | float | None]:
    return {name: check_attribute(name, value) for name, value in values.items()}


def check_source(source: str) -> str:
    if source not in ATTRIBUTE_SOURCES:
        raise InvalidAttribute(f"Attribute source must be one of {', '.join(ATTRIBUTE_SOURCES)}.")
    return source
