"""The service settles its heap once started: frozen start-up objects, a larger young generation."""

from __future__ import annotations

import gc
import weakref

from fastapi.testclient import TestClient

from app.kit.heap import YOUNG_THRESHOLD, settle_heap


def test_started_service_has_frozen_its_start_up_objects(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD


def test_settle_heap_collects_cycles_before_freezing() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    del a, b  # a cycle: only the collector can free it
    assert alive() is not None
    settle_heap()
    assert alive() is None  # collected, not frozen for the life of the process
