"""Fixtures of the usage tests: a seeded project and SDK clients against the live server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Database
from tests.usage.helpers import SdkFactory, Seeded, seed


@pytest.fixture
def seeded(db: Database) -> Seeded:
    return seed(db)


@pytest.fixture
def sdk(live_server: str) -> Iterator[SdkFactory]:
    factory = SdkFactory(live_server)
    yield factory
    factory.close()
