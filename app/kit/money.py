"""Money: integer micro-dollars inside, exact decimal strings at the edges, never floats.

usd_to_micros("0.0043")  -> 4300
micros_to_usd(4300)      -> "0.004300"
"""

from __future__ import annotations

import re
from decimal import Decimal

from app.kit.errors import BadRequest

MICROS_PER_USD = 1_000_000
# Plain non-negative decimals only: no sign, exponent, NaN or Infinity for Decimal to trip on,
# at most 12 integer digits (BIGINT micro-dollars stay far from overflow) and 6 significant
# decimals (trailing zeros past the sixth are exact, so they are accepted).
USD_PATTERN = re.compile(r"\d{1,12}(\.\d{0,6}0*)?|\.\d{1,6}0*")


class InvalidAmount(BadRequest):
    """A USD amount that is not a plain non-negative decimal with at most 6 places."""


def usd_to_micros(value: str) -> int:
    text = value.strip()
    if not USD_PATTERN.fullmatch(text):
        raise InvalidAmount(
            f"'{value}' is not a USD amount: use a non-negative decimal with at most 6 decimal "
            "places, e.g. 0.0043."
        )
    return int(Decimal(text).scaleb(6))


def micros_to_usd(micros: int) -> str:
    """Exact, six decimal places (negative balances keep their sign)."""
    return format(Decimal(micros).scaleb(-6), ".6f")


def micros_to_usd_float(micros: int) -> float:
    """For response shapes that demand a number (Deepgram's ``usd``, ``dollars``, ``amount``)."""
    return micros / MICROS_PER_USD
