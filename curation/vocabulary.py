"""The controlled vocabularies of speaker and recording attributes (no pandas here).

The sample store checks labels against these, so this module imports nothing heavy: the
service's command line loads it without loading pandas.

    VOCABULARIES["sex"]        # frozenset({'female', 'male', 'unknown'})
    "accent" in ATTRIBUTE_COLUMNS
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# Speaker and recording attributes, as the sample store keeps them.
ATTRIBUTE_COLUMNS: Final = (
    "accent",
    "age_group",
    "sex",
    "noise_type",
    "snr_db",
    "environment",
    "domain",
)
# Categorical attributes a training set is balanced by (snr_db is numeric; see snr_band).
CATEGORICAL_ATTRIBUTES: Final = ("accent", "age_group", "sex", "noise_type", "environment")

VOCABULARIES: Final[Mapping[str, frozenset[str]]] = {
    # The accents the synthetic corpus renders (espeak-ng English voices) and common others.
    "accent": frozenset(
        {
            "us",
            "rp",
            "scottish",
            "caribbean",
            "northern_english",
            "west_midlands",
            "irish",
            "welsh",
            "indian",
            "australian",
            "new_zealand",
            "south_african",
            "other",
        }
    ),
    "age_group": frozenset({"child", "teen", "adult", "senior"}),
    "sex": frozenset({"female", "male", "unknown"}),
    "noise_type": frozenset({"none", "white", "pink", "babble", "street", "music", "other"}),
    "environment": frozenset({"dry", "room", "reverberant", "outdoor", "vehicle", "phone"}),
}

# ``opted_in`` is the only state a training set may hold.
CONSENT_STATES: Final = ("opted_in", "opted_out", "erased", "expired")

# Bands DataOps reads SNR in (dB, lower bound inclusive); "clean" is no measurable noise.
SNR_BANDS: Final = (("0-10dB", -1e9, 10.0), ("10-20dB", 10.0, 20.0), ("20+dB", 20.0, 1e9))
