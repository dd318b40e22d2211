"""Concurrency limits shared by the endpoints that do heavy work: at most so many at once,
and at most a share of them for one tenant, so that one tenant cannot starve the others.

    limiter = ActiveRequests(8, per_tenant=4)
    with limiter.slot(organization_id):   # 429 at once when none is free, no queue
        ...
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from app.kit.errors import TooManyRequests


class ActiveRequests:
    """At most ``limit`` transcriptions at once, and at most ``per_tenant`` of one
    organization's: the next one gets a 429 at once, not a queue, and one tenant cannot hold
    every slot."""

    def __init__(self, limit: int, per_tenant: int | None = None) -> None:
        self.limit = limit
        self.per_tenant = min(per_tenant or limit, limit)
        self._active = 0
        self._by_tenant: dict[uuid.UUID | None, int] = {}
        self._lock = threading.Lock()

    def acquire(self, tenant: uuid.UUID | None = None) -> None:
        with self._lock:
            if self._active >= self.limit:
                raise TooManyRequests(
                    f"Too many concurrent requests (limit {self.limit}); retry shortly."
                )
            held = self._by_tenant.get(tenant, 0)
            if held >= self.per_tenant:
                raise TooManyRequests(
                    f"Too many concurrent requests from this organization (limit "
                    f"{self.per_tenant}); retry shortly."
                )
            self._active += 1
            self._by_tenant[tenant] = held + 1

    def release(self, tenant: uuid.UUID | None = None) -> None:
        with self._lock:
            self._active -= 1
            held = self._by_tenant.get(tenant, 0) - 1
            if held > 0:
                self._by_tenant[tenant] = held
            else:
                self._by_tenant.pop(tenant, None)

    @property
    def active(self) -> int:
        return self._active

    @contextmanager
    def slot(self, tenant: uuid.UUID | None = None) -> Iterator[None]:
        self.acquire(tenant)
        try:
            yield
        finally:
            self.release(tenant)
