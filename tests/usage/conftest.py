"""Fixtures of the usage tests: a seeded project (SDK clients: ``sdk`` in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import Database
from tests.usage.helpers import Seeded, seed


@pytest.fixture
def seeded(db: Database) -> Seeded:
    return seed(db)
