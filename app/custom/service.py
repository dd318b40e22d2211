"""Custom models: a reseller's own models, created from a served base model.

A reseller key acts on its own reseller's models only; another reseller's model is a 404, as
if it did not exist. Staff admins act on every reseller's. Every change is an audit entry.

    model = create_model(session, reseller_id=r, name="clinic-notes", language="en",
                         domain="medical", base=registry.resolve(...), actor=principal.actor)
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.custom import repository
from app.engine.registry import ModelRegistry
from app.kit.auth import Principal, ResellerScope, Role
from app.kit.db import utcnow
from app.kit.errors import BadRequest, Conflict, Forbidden, NotFound
from app.tables.custom import CUSTOM_MODEL_STATUSES, CustomModel
from app.tenancy import repository as tenancy_repository
from app.tenancy.service import ResellerNotFound

# Lower-case letters, digits and dashes: the name goes into the served package's file name,
# whose fields are separated by dots.
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
# Staff roles that may read every reseller's models (admin also changes them).
STAFF_READERS = frozenset({Role.ADMIN, Role.AUDITOR})


class InvalidCustomModel(BadRequest):
    pass


class CustomModelNotFound(NotFound):
    def __init__(self, model_id: object) -> None:
        super().__init__(f"Custom model {model_id} not found.")


class CustomModelExists(Conflict):
    pass


@dataclass(frozen=True, slots=True)
class BaseModelRef:
    """The served model a custom model starts from, as the model directory has it now."""

    name: str
    version: str
    uuid: str
    languages: tuple[str, ...]


def resolve_base(registry: ModelRegistry, name: str | None, language: str) -> BaseModelRef:
    """The served model ``name`` (default: the service's default) for ``language``, or the
    documented 400 for a model that is not available."""
    primary = language.split("-")[0]
    loaded = registry.resolve(model=name, language=primary, version=None)
    manifest = loaded.manifest
    return BaseModelRef(manifest.name, manifest.version, manifest.uuid, tuple(manifest.languages))


def check_access(principal: Principal, scope: ResellerScope) -> uuid.UUID | None:
    """The reseller the caller acts for (None: staff, every reseller), or 403."""
    if principal.reseller_id is not None:
        if scope not in principal.reseller_scopes:
            raise Forbidden(f"This reseller key lacks the '{scope.value}' scope.")
        return principal.reseller_id
    if principal.role is Role.ADMIN:
        return None
    if principal.role in STAFF_READERS and scope is ResellerScope.CUSTOM_MODELS_READ:
        return None
    raise Forbidden("Custom models need a reseller key, or a staff key with role admin.")


def check_fields(*, name: str, language: str, domain: str) -> None:
    """The 400 for a malformed name, language or domain (before any base model is looked up)."""
    if not NAME.fullmatch(name):
        raise InvalidCustomModel(
            "A model name is 1 to 64 lower-case letters, digits and dashes, starting with a "
            "letter or digit."
        )
    if not DOMAIN.fullmatch(domain):
        raise InvalidCustomModel("A domain is 1 to 64 lower-case letters, digits and dashes.")
    if not LANGUAGE.fullmatch(language):
        raise InvalidCustomModel("A language is a BCP-47 code such as 'en' or 'en-US'.")


def create_model(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    name: str,
    language: str,
    domain: str,
    base: BaseModelRef,
    actor: str,
    description: str = "",
) -> CustomModel:
    check_fields(name=name, language=language, domain=domain)
    primary = language.split("-")[0].lower()
    if primary not in {code.split("-")[0].lower() for code in base.languages}:
        raise InvalidCustomModel(
            f"Base model {base.name} speaks {', '.join(base.languages)}, not {language}."
        )
    if tenancy_repository.get_reseller(session, reseller_id) is None:
        raise ResellerNotFound(f"Reseller {reseller_id} not found.")
    if repository.get_model_by_name(session, reseller_id, name) is not None:
        raise CustomModelExists(f"This reseller already has a custom model named {name!r}.")
    now = utcnow()
    model = CustomModel(
        reseller_id=reseller_id,
        name=name,
        description=description,
        language=language,
        domain=domain,
        base_model_name=base.name,
        base_model_version=base.version,
        base_model_uuid=base.uuid,
        status="collecting",
        created_at=now,
        updated_at=now,
        created_by=actor,
    )
    session.add(model)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_model.created",
        target_type="custom_model",
        target_id=str(model.id),
        details={
            "reseller_id": str(reseller_id),
            "name": name,
            "language": language,
            "domain": domain,
            "base_model": {"name": base.name, "version": base.version, "uuid": base.uuid},
        },
    )
    return model


def get_visible_model(
    session: Session, reseller_id: uuid.UUID | None, model_id: uuid.UUID
) -> CustomModel:
    """The model if the caller's reseller owns it (any model for staff); 404 otherwise."""
    model = repository.get_model(session, model_id)
    if model is None or (reseller_id is not None and model.reseller_id != reseller_id):
        raise CustomModelNotFound(model_id)
    return model


def archive_model(session: Session, model: CustomModel, *, actor: str) -> CustomModel:
    """Archive: no more uploads, training or serving; the record and its history stay."""
    if model.status == "archived":
        raise CustomModelExists(f"Custom model {model.name} is already archived.")
    if model.status == "training":
        raise CustomModelExists(
            f"Custom model {model.name} is training; cancel the job before archiving it."
        )
    before = model.status
    model.status = "archived"
    model.archived_at = model.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_model.archived",
        target_type="custom_model",
        target_id=str(model.id),
        details={"reseller_id": str(model.reseller_id), "name": model.name, "before": before},
    )
    return model


def check_status(status: str | None) -> str | None:
    if status is not None and status not in CUSTOM_MODEL_STATUSES:
        raise InvalidCustomModel(
            f"Unknown status {status!r}; expected one of {', '.join(CUSTOM_MODEL_STATUSES)}."
        )
    return status


def training_ended(
    session: Session, model_id: uuid.UUID | None, *, job_id: uuid.UUID, job_status: str
) -> None:
    """A custom model's job ended without a version (failed, cancelled): the model leaves
    ``training`` — ``failed``, or back to where it was so its owner can train again."""
    if model_id is None:
        return
    model = repository.get_model(session, model_id)
    if model is None or model.status != "training":
        return
    if repository.has_active_job(session, model_id):  # another job is still on its way
        return
    if job_status == "failed":
        model.status = "failed"
    else:
        model.status = "published" if model.published_version_id else "ready_to_train"
    model.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        actor=f"job:{job_id}",
        action="custom_model.training_ended",
        target_type="custom_model",
        target_id=str(model.id),
        details={"job_id": str(job_id), "job_status": job_status, "status": model.status},
    )
