"""Per-organization data keys: created on first use, wrapped by the KEK, rotated, destroyed.

A data key is only ever stored wrapped. Unwrapped keys are cached per process by (row id,
KEK version), but every use first reads the row, so a key destroyed by an erasure in another
process is never used again here.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.kit.crypto import KeyProvider, WrappedKey, new_data_key
from app.kit.db import utcnow
from app.kit.errors import Conflict, NotFound
from app.tables.samples import DataKey


class DataKeyDestroyed(Conflict):
    """The organization's data key was destroyed by an erasure: its objects are unreadable."""


def _context(organization_id: uuid.UUID, version: int) -> dict[str, str]:
    return {"org": str(organization_id), "data_key_version": str(version)}


class UnwrappedKeyCache:
    """A small LRU of unwrapped data keys (a KMS round trip per sample would dominate)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._keys: OrderedDict[tuple[uuid.UUID, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_unwrap(self, row: DataKey, provider: KeyProvider) -> bytes:
        if row.wrapped_key is None:
            raise DataKeyDestroyed(
                f"Data key v{row.version} of organization {row.organization_id} was destroyed."
            )
        cache_key = (row.id, row.kek_version)
        with self._lock:
            key = self._keys.get(cache_key)
            if key is not None:
                self._keys.move_to_end(cache_key)
                return key
        key = provider.unwrap(
            WrappedKey(row.kek_version, row.wrapped_key),
            context=_context(row.organization_id, row.version),
        )
        with self._lock:
            self._keys[cache_key] = key
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)
        return key

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


@dataclass(frozen=True, slots=True)
class ActiveKey:
    version: int
    key: bytes


def active_data_key(
    session: Session, provider: KeyProvider, cache: UnwrappedKeyCache, organization_id: uuid.UUID
) -> ActiveKey:
    """The organization's current data key, created (version 1, or next) when it has none."""
    row = _active_row(session, organization_id)
    if row is None:
        row = _create_key(session, provider, organization_id)
    return ActiveKey(row.version, cache.get_or_unwrap(row, provider))


def key_resolver(
    session: Session, provider: KeyProvider, cache: UnwrappedKeyCache, organization_id: uuid.UUID
) -> Callable[[int], bytes]:
    """``version -> key`` for decrypting one organization's objects."""

    def key_for(version: int) -> bytes:
        row = session.scalars(
            select(DataKey).where(
                DataKey.organization_id == organization_id, DataKey.version == version
            )
        ).first()
        if row is None:
            raise NotFound(f"Data key v{version} of organization {organization_id} not found.")
        return cache.get_or_unwrap(row, provider)

    return key_for


def _active_row(session: Session, organization_id: uuid.UUID) -> DataKey | None:
    return session.scalars(
        select(DataKey)
        .where(DataKey.organization_id == organization_id, DataKey.status == "active")
        .order_by(DataKey.version.desc())
        .limit(1)
    ).first()


def _create_key(
    session: Session, provider: KeyProvider, organization_id: uuid.UUID, *, retire: bool = False
) -> DataKey:
    # A savepoint: when another writer creates the same version first, the unique constraint
    # fails here without aborting the caller's transaction, and its key is used instead.
    for _ in range(3):
        latest = session.scalar(
            select(func.max(DataKey.version)).where(DataKey.organization_id == organization_id)
        )
        version = (latest or 0) + 1
        wrapped = provider.wrap(new_data_key(), context=_context(organization_id, version))
        try:
            with session.begin_nested():
                if retire:
                    session.execute(
                        update(DataKey)
                        .where(
                            DataKey.organization_id == organization_id,
                            DataKey.status == "active",
                        )
                        .values(status="retired")
                    )
                row = DataKey(
                    organization_id=organization_id,
                    version=version,
                    status="active",
                    kek_provider=provider.name,
                    kek_version=wrapped.kek_version,
                    wrapped_key=wrapped.ciphertext,
                )
                session.add(row)
                session.flush()
            return row
        except IntegrityError:
            if not retire:
                existing = _active_row(session, organization_id)
                if existing is not None:
                    return existing
    raise Conflict(f"Could not create a data key for organization {organization_id}; retry.")


def rotate_data_key(session: Session, provider: KeyProvider, organization_id: uuid.UUID) -> int:
    """Start a new data key for new objects; older versions stay readable (``retired``)."""
    return _create_key(session, provider, organization_id, retire=True).version


def keys_to_rewrap(session: Session, provider: KeyProvider) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(DataKey)
            .where(
                DataKey.wrapped_key.is_not(None), DataKey.kek_version != provider.current_version()
            )
        )
        or 0
    )


def rewrap_batch(session: Session, provider: KeyProvider, *, limit: int = 100) -> int:
    """Re-wrap up to ``limit`` data keys under the current KEK version; returns how many.

    Objects are untouched: only the small wrapped keys change. Idempotent and resumable —
    a key already under the current version is never selected again.
    """
    current = provider.current_version()
    rows = session.scalars(
        select(DataKey)
        .where(DataKey.wrapped_key.is_not(None), DataKey.kek_version != current)
        .order_by(DataKey.id)
        .limit(limit)
    ).all()
    for row in rows:
        assert row.wrapped_key is not None  # selected above
        context = _context(row.organization_id, row.version)
        key = provider.unwrap(WrappedKey(row.kek_version, row.wrapped_key), context=context)
        wrapped = provider.wrap(key, context=context)
        row.kek_provider = provider.name
        row.kek_version = wrapped.kek_version
        row.wrapped_key = wrapped.ciphertext
        row.rewrapped_at = utcnow()
    session.flush()
    return len(rows)


def destroy_organization_keys(session: Session, organization_id: uuid.UUID) -> int:
    """Crypto-shredding: forget every wrapped data key of the organization."""
    result = session.execute(
        update(DataKey)
        .where(DataKey.organization_id == organization_id, DataKey.wrapped_key.is_not(None))
        .values(wrapped_key=None, status="destroyed", destroyed_at=utcnow())
    )
    session.flush()
    return int(result.rowcount)  # type: ignore[attr-defined]
