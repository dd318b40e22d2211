"""Per-organization data keys: created on first use, wrapped by the KEK, rotated, destroyed.

A data key is only ever stored wrapped. Unwrapped keys are cached per process by (row id,
KEK version, wrapped key), but every use first reads the row, so a key destroyed by an erasure
in another process is never used again here.

The report keys of training sets (the datasets domain seals each set's reports under a key of
its own, kept wrapped on the set's row) are wrapped and re-wrapped here too: one KEK rotation
must reach every key the KEK protects, and this is where the rotation lives.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.kit.crypto import KeyProvider, WrappedKey, new_data_key
from app.kit.db import utcnow
from app.kit.errors import Conflict, NotFound
from app.tables.custom import CustomModel
from app.tables.datasets import TrainingSet
from app.tables.samples import DataKey


class DataKeyDestroyed(Conflict):
    """The organization's data key was destroyed by an erasure: its objects are unreadable."""


def _context(organization_id: uuid.UUID, version: int) -> dict[str, str]:
    return {"org": str(organization_id), "data_key_version": str(version)}


class UnwrappedKeyCache:
    """A small LRU of unwrapped data keys (a KMS round trip per sample would dominate)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._keys: OrderedDict[tuple[uuid.UUID, str, bytes], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_unwrap(self, row: DataKey, provider: KeyProvider) -> bytes:
        if row.wrapped_key is None:
            raise DataKeyDestroyed(
                f"Data key v{row.version} of organization {row.organization_id} was destroyed."
            )
        return self.unwrap(
            row.id,
            WrappedKey(row.kek_version, row.wrapped_key),
            provider,
            context=_context(row.organization_id, row.version),
        )

    def unwrap(
        self,
        row_id: uuid.UUID,
        wrapped: WrappedKey,
        provider: KeyProvider,
        *,
        context: Mapping[str, str],
    ) -> bytes:
        """The key wrapped on row ``row_id`` (a data key or a training set's report key).

        Cached by what is wrapped too, not only by row and KEK version: a row whose key was
        replaced (a legacy set's reports sealed by another process) must not get the old one.
        """
        cache_key = (row_id, wrapped.kek_version, wrapped.ciphertext)
        with self._lock:
            key = self._keys.get(cache_key)
            if key is not None:
                self._keys.move_to_end(cache_key)
                return key
        key = provider.unwrap(wrapped, context=context)
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
    """Data keys and report keys still wrapped by an older KEK version."""
    current = provider.current_version()
    data_keys = session.scalar(
        select(func.count())
        .select_from(DataKey)
        .where(DataKey.wrapped_key.is_not(None), DataKey.kek_version != current)
    )
    report_keys = session.scalar(
        select(func.count()).select_from(TrainingSet).where(_report_key_to_rewrap(current))
    )
    model_keys = session.scalar(
        select(func.count()).select_from(CustomModel).where(_model_key_to_rewrap(current))
    )
    return (data_keys or 0) + (report_keys or 0) + (model_keys or 0)


def rewrap_batch(session: Session, provider: KeyProvider, *, limit: int = 100) -> int:
    """Re-wrap up to ``limit`` keys (data keys, then training sets' report keys, then custom
    models' data keys) under the current KEK version; returns how many.

    Objects are untouched: only the small wrapped keys change. Idempotent and resumable —
    a key already under the current version is never selected again.
    """
    done = _rewrap_data_keys(session, provider, limit=limit)
    if done < limit:
        done += _rewrap_report_keys(session, provider, limit=limit - done)
    if done < limit:
        done += _rewrap_model_keys(session, provider, limit=limit - done)
    return done


def _rewrap_data_keys(session: Session, provider: KeyProvider, *, limit: int) -> int:
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


def _report_key_to_rewrap(current: str) -> ColumnElement[bool]:
    return and_(
        TrainingSet.report_key_wrapped.is_not(None),
        or_(TrainingSet.report_kek_version.is_(None), TrainingSet.report_kek_version != current),
    )


def _rewrap_report_keys(session: Session, provider: KeyProvider, *, limit: int) -> int:
    rows = session.scalars(
        select(TrainingSet)
        .where(_report_key_to_rewrap(provider.current_version()))
        .order_by(TrainingSet.id)
        .limit(limit)
    ).all()
    for row in rows:
        old = _wrapped_report_key(row)
        context = report_key_context(row.id)
        wrapped = provider.wrap(provider.unwrap(old, context=context), context=context)
        row.report_kek_version = wrapped.kek_version
        row.report_key_wrapped = wrapped.ciphertext
    session.flush()
    return len(rows)


def _model_key_to_rewrap(current: str) -> ColumnElement[bool]:
    return and_(
        CustomModel.data_key_wrapped.is_not(None),
        or_(CustomModel.data_kek_version.is_(None), CustomModel.data_kek_version != current),
    )


def _rewrap_model_keys(session: Session, provider: KeyProvider, *, limit: int) -> int:
    rows = session.scalars(
        select(CustomModel)
        .where(_model_key_to_rewrap(provider.current_version()))
        .order_by(CustomModel.id)
        .limit(limit)
    ).all()
    for row in rows:
        context = model_key_context(row.id)
        wrapped = provider.wrap(
            provider.unwrap(_wrapped_model_key(row), context=context), context=context
        )
        row.data_kek_version = wrapped.kek_version
        row.data_key_wrapped = wrapped.ciphertext
    session.flush()
    return len(rows)


# --- data keys of custom models (their training data) ---------------------------------------


def model_key_context(model_id: uuid.UUID) -> dict[str, str]:
    # Neither an organization's nor a training set's context: keys cannot be swapped.
    return {"custom_model": str(model_id), "key": "training-data"}


def custom_model_key(model: CustomModel, provider: KeyProvider, cache: UnwrappedKeyCache) -> bytes:
    """The model's data key, created (and wrapped on the row) on first use."""
    if model.data_key_wrapped is None:
        key = new_data_key()
        wrapped = provider.wrap(key, context=model_key_context(model.id))
        model.data_key_wrapped = wrapped.ciphertext
        model.data_kek_version = wrapped.kek_version
        return key
    return cache.unwrap(
        model.id, _wrapped_model_key(model), provider, context=model_key_context(model.id)
    )


def _wrapped_model_key(model: CustomModel) -> WrappedKey:
    if model.data_key_wrapped is None or model.data_kek_version is None:
        raise DataKeyDestroyed(f"Custom model {model.id} has no data key.")
    return WrappedKey(model.data_kek_version, model.data_key_wrapped)


# --- report keys of training sets -----------------------------------------------------------


class ReportKeyDestroyed(Conflict):
    """The training set's report key was destroyed (its reports went with an erasure)."""


def report_key_context(set_id: uuid.UUID) -> dict[str, str]:
    # Not an organization's context: a report key cannot be passed off as a data key.
    return {"training_set": str(set_id), "key": "reports"}


def new_report_key(provider: KeyProvider, set_id: uuid.UUID) -> tuple[bytes, WrappedKey]:
    """A fresh report key for the set, and the same key wrapped by the current KEK."""
    key = new_data_key()
    return key, provider.wrap(key, context=report_key_context(set_id))


def report_key(training_set: TrainingSet, provider: KeyProvider, cache: UnwrappedKeyCache) -> bytes:
    """The set's report key, unwrapped (cached like data keys, by row and KEK version)."""
    return cache.unwrap(
        training_set.id,
        _wrapped_report_key(training_set),
        provider,
        context=report_key_context(training_set.id),
    )


def _wrapped_report_key(training_set: TrainingSet) -> WrappedKey:
    if training_set.report_key_wrapped is None or training_set.report_kek_version is None:
        raise ReportKeyDestroyed(f"Training set {training_set.id} has no report key.")
    return WrappedKey(training_set.report_kek_version, training_set.report_key_wrapped)


def destroy_organization_keys(session: Session, organization_id: uuid.UUID) -> int:
    """Crypto-shredding: forget every wrapped data key of the organization."""
    result = session.execute(
        update(DataKey)
        .where(DataKey.organization_id == organization_id, DataKey.wrapped_key.is_not(None))
        .values(wrapped_key=None, status="destroyed", destroyed_at=utcnow())
    )
    session.flush()
    return int(result.rowcount)  # type: ignore[attr-defined]
