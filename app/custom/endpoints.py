"""Custom-model HTTP: a reseller key manages its own reseller's models; staff admins all of
them; auditors read. Another reseller's model is a 404."""

from __future__ import annotations

import threading
import uuid
import weakref
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect

from app.custom import data, repository, service, uploads, versions
from app.custom.schemas import (
    ArchiveUploadRead,
    CustomModelCreate,
    CustomModelList,
    CustomModelRead,
    DataFileList,
    DataFileRead,
    UploadRead,
)
from app.engine.endpoints import RegistryDep
from app.engine.registry import LoadedModel, ModelRegistry
from app.kit.auth import ResellerScope
from app.kit.deps import ResellerOrStaff, SessionDep, SettingsDep
from app.kit.errors import BadRequest, MIPError, UnsupportedMediaType
from app.kit.limits import ActiveRequests
from app.kit.multipart import form_field, read_multipart
from app.kit.openapi import error_responses
from app.kit.text import ascii_number, check_storable
from app.samples.deps import StoreDep
from app.samples.runtime import SampleStore
from app.tables.custom import CustomModel, CustomUpload
from asr.pairs import TranscriptScorer

router = APIRouter(prefix="/v1/governance/custom-models", tags=["custom models"])

_ACCESS = (
    "A reseller key with the `{scope}` scope (its own reseller's models), or a staff key "
    "with role {roles}."
)
# Who may call a route, said once for every custom-model router.
WRITE_ACCESS = _ACCESS.format(scope="custom_models:write", roles="`admin`")
READ_ACCESS = _ACCESS.format(scope="custom_models:read", roles="`admin` or `auditor`")


class ModelAccess:
    """Dependency: the path's custom model, if the caller may use ``scope`` on it
    (:func:`service.check_access`, then another reseller's model is a 404)."""

    def __init__(self, scope: ResellerScope) -> None:
        self.scope = scope

    def __call__(
        self, model_id: uuid.UUID, session: SessionDep, principal: ResellerOrStaff
    ) -> CustomModel:
        reseller_id = service.check_access(principal, self.scope)
        return service.get_visible_model(session, reseller_id, model_id)


ModelReader = Annotated[CustomModel, Depends(ModelAccess(ResellerScope.CUSTOM_MODELS_READ))]
ModelWriter = Annotated[CustomModel, Depends(ModelAccess(ResellerScope.CUSTOM_MODELS_WRITE))]


@router.post(
    "",
    status_code=201,
    response_model=CustomModelRead,
    summary="Create a custom model",
    description=(
        "A new model in status `collecting`, built later from the reseller's training data on "
        "top of a served base model (the default model unless `base_model` names one; its "
        "name, version and uuid are recorded). Names are unique per reseller (409). "
        + _ACCESS.format(scope="custom_models:write", roles="`admin` (who names `reseller_id`)")
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def create_model(
    body: CustomModelCreate,
    session: SessionDep,
    principal: ResellerOrStaff,
    registry: RegistryDep,
) -> CustomModelRead:
    acting_for = service.check_access(principal, ResellerScope.CUSTOM_MODELS_WRITE)
    if acting_for is None and body.reseller_id is None:
        raise BadRequest("A staff key names the owning reseller: reseller_id.")
    if acting_for is not None and body.reseller_id not in (None, acting_for):
        raise BadRequest("A reseller key creates models for its own reseller only.")
    reseller_id = acting_for or body.reseller_id
    assert reseller_id is not None
    service.check_fields(name=body.name, language=body.language, domain=body.domain)
    base = service.resolve_base(registry, body.base_model, body.language)
    model = service.create_model(
        session,
        reseller_id=reseller_id,
        name=body.name,
        description=body.description,
        language=body.language,
        domain=body.domain,
        base=base,
        actor=principal.actor,
    )
    return CustomModelRead.of(model)


@router.get(
    "",
    response_model=CustomModelList,
    summary="List custom models",
    description=(
        "Newest first; a reseller key sees its own reseller's models only. Filter by "
        "`status`. "
        + _ACCESS.format(scope="custom_models:read", roles="`admin` or `auditor` (every model)")
    ),
    responses=error_responses(400, 401, 403),
)
def list_models(
    session: SessionDep,
    principal: ResellerOrStaff,
    status: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CustomModelList:
    reseller_id = service.check_access(principal, ResellerScope.CUSTOM_MODELS_READ)
    rows, total = repository.list_models(
        session,
        reseller_id=reseller_id,
        status=service.check_status(status),
        limit=limit,
        offset=page * limit,
    )
    return CustomModelList(
        models=[versions.read_model(session, row) for row in rows],
        total=total,
        page=page,
        limit=limit,
    )


@router.get(
    "/{model_id}",
    response_model=CustomModelRead,
    summary="Show a custom model",
    description=_ACCESS.format(
        scope="custom_models:read", roles="`admin` or `auditor` (every model)"
    ),
    responses=error_responses(400, 401, 403, 404),
)
def get_model(model: ModelReader, session: SessionDep) -> CustomModelRead:
    return versions.read_model(session, model)


@router.post(
    "/{model_id}/archive",
    response_model=CustomModelRead,
    summary="Archive a custom model",
    description=(
        "No more uploads, training or serving; the record, its versions and its history stay. "
        "Refused (409) while it trains or when already archived. "
        + _ACCESS.format(scope="custom_models:write", roles="`admin`")
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def archive_model(
    model: ModelWriter, session: SessionDep, principal: ResellerOrStaff, settings: SettingsDep
) -> CustomModelRead:
    versions.archive(session, settings, model, actor=principal.actor)
    return versions.read_model(session, model)


# --- training data --------------------------------------------------------------------------

# One scorer per loaded base model (its Transcriber), dropped when the model is unloaded.
_SCORERS: weakref.WeakKeyDictionary[LoadedModel, TranscriptScorer] = weakref.WeakKeyDictionary()
_SCORERS_LOCK = threading.Lock()
# The multipart body of one pair: the audio, the transcript and two short fields.
PAIR_BODY_LIMIT = 64 * 1024 * 1024 + data.MAX_TRANSCRIPT_BYTES + 65536
_PAIR_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["audio"],
                    "properties": {
                        "audio": {"type": "string", "format": "binary"},
                        "transcript": {"type": "string"},
                        "name": {"type": "string", "maxLength": 255},
                        "speaker": {"type": "string", "maxLength": 128},
                    },
                }
            }
        },
    }
}


def scorer_for(registry: ModelRegistry, model: CustomModel) -> TranscriptScorer | None:
    """The base model's scorer, or None when that base is no longer served (the transcript
    is then not scored; every other check still runs)."""
    loaded = registry.get(model.base_model_uuid)
    if loaded is None:
        return None
    with _SCORERS_LOCK:
        scorer = _SCORERS.get(loaded)
        if scorer is None:
            scorer = _SCORERS[loaded] = TranscriptScorer(loaded.package)
        return scorer


@router.post(
    "/{model_id}/data",
    status_code=201,
    response_model=DataFileRead,
    summary="Upload one training pair (audio and transcript)",
    description=(
        "multipart/form-data: `audio` (WAV, MP3, FLAC or OGG), `transcript` (text; as a file "
        "part it must be UTF-8), "
        "optional `name` (default: the audio's file name) and `speaker`. The pair is checked "
        "(decodes, length 0.5 to 30 s, duplicate audio, normalisable text, plausible speaking "
        "rate, and the base model's CTC loss per character, which flags a likely wrong "
        "transcript) and recorded as `accepted` or `rejected` with every reason. Audio that "
        "decodes is kept sealed under the model's data key, rejected or not, so that the "
        "owner can look at it and remove or replace it. "
        + _ACCESS.format(scope="custom_models:write", roles="`admin`")
    ),
    responses=error_responses(
        400,
        401,
        403,
        404,
        409,
        413,
        415,
        429,
        specific={408: "The body arrived too slowly"},
    ),
    openapi_extra=_PAIR_FORM,
)
async def upload_pair(
    model: ModelWriter,
    request: Request,
    session: SessionDep,
    principal: ResellerOrStaff,
    store: StoreDep,
    registry: RegistryDep,
) -> DataFileRead:
    return await store_pair(
        request,
        session,
        store,
        registry,
        model,
        actor=principal.actor,
        tenant=model.reseller_id,
    )


async def store_pair(
    request: Request,
    session: Session,
    store: SampleStore,
    registry: ModelRegistry,
    model: CustomModel,
    *,
    actor: str,
    tenant: uuid.UUID,
    organization_id: uuid.UUID | None = None,
) -> DataFileRead:
    """Read one pair from the multipart body and check and seal it, within ``tenant``'s share
    of the upload checks (``organization_id``: an organization's contribution)."""
    data.check_open(model)
    pair = await read_pair(request)
    with upload_slot(request, tenant):
        record = await run_in_threadpool(
            data.upload_pair,
            session,
            store,
            model,
            name=pair.name,
            audio=pair.audio,
            transcript=pair.transcript,
            speaker=pair.speaker,
            scorer=scorer_for(registry, model),
            actor=actor,
            organization_id=organization_id,
        )
    return DataFileRead.of(record)


def upload_slot(request: Request, tenant: uuid.UUID) -> AbstractContextManager[None]:
    """One of the few concurrent upload checks, within the tenant's share (429 otherwise).
    Taken once the body is in: a slow upload holds none."""
    limiter: ActiveRequests = request.app.state.custom_upload_limiter
    return limiter.slot(tenant)


@dataclass(frozen=True, slots=True)
class PairForm:
    name: str
    audio: bytes
    transcript: str | None
    speaker: str | None


async def read_pair(request: Request) -> PairForm:
    """The multipart body of one pair (within PAIR_BODY_LIMIT): audio, transcript, name,
    speaker; 400 for a missing audio part or text the databases cannot store."""
    form = await read_multipart(request, PAIR_BODY_LIMIT, max_files=2, what="the pair")
    try:
        upload = form.get("audio")
        audio = await form_field(form, "audio")
        transcript = data.decode_transcript(await form_field(form, "transcript", required=False))
        raw_name = await form_field(form, "name", required=False)
        raw_speaker = await form_field(form, "speaker", required=False)
    finally:
        await form.close()
    assert audio is not None
    default_name = getattr(upload, "filename", None) or "audio"
    name = raw_name.decode(errors="replace").strip() if raw_name else default_name
    speaker = raw_speaker.decode(errors="replace").strip() if raw_speaker else None
    for field, value in (("name", name), ("speaker", speaker)):
        if value is not None:
            check_storable(field, value)
    return PairForm(name, audio, transcript, speaker or None)


ARCHIVE_MEDIA_TYPES = frozenset(
    {
        "application/zip",
        "application/x-zip-compressed",
        "application/x-tar",
        "application/gzip",
        "application/x-gzip",
        "application/x-gtar",
        "application/octet-stream",
    }
)


@router.post(
    "/{model_id}/data/archive",
    status_code=201,
    response_model=ArchiveUploadRead,
    summary="Upload an archive of training pairs",
    description=(
        "The body is a zip, tar or tar.gz (`Content-Type: application/zip`, "
        "`application/x-tar`, `application/gzip` or `application/octet-stream`), at most "
        "`MIP_CUSTOM_MAX_ARCHIVE_BYTES`. An audio file (.wav, .mp3, .flac) pairs with the "
        "`.txt` of the same name beside it, or with a row of a root `manifest.csv` or "
        "`manifest.jsonl` (`audio`, `transcript` or `transcript_file`, optional `speaker`). "
        "Each pair is checked and kept as a single upload is; every entry that cannot be used "
        "is listed in `problems` (unsafe path, link, audio without transcript and the reverse, "
        "bad manifest row, text that is not UTF-8, an entry too large), and the rest is "
        "accepted. An archive that cannot be read safely (not an archive, damaged, too many "
        "entries, expanding too far) is refused whole, nothing written. "
        + _ACCESS.format(scope="custom_models:write", roles="`admin`")
    ),
    responses=error_responses(
        400, 401, 403, 404, 409, 413, 415, 429, specific={408: "The body arrived too slowly"}
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in sorted(ARCHIVE_MEDIA_TYPES)
            },
        }
    },
)
async def upload_archive(
    model: ModelWriter,
    request: Request,
    session: SessionDep,
    principal: ResellerOrStaff,
    store: StoreDep,
    registry: RegistryDep,
) -> ArchiveUploadRead:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ARCHIVE_MEDIA_TYPES:
        raise UnsupportedMediaType(
            "Send the archive as application/zip, application/x-tar or application/gzip."
        )
    data.check_open(model)
    body = await request.body()  # within the guard's limit for this route
    if not body:
        raise BadRequest("The archive is empty.")
    with upload_slot(request, model.reseller_id):
        result = await run_in_threadpool(
            data.upload_archive,
            session,
            store,
            model,
            body,
            scorer=scorer_for(registry, model),
            actor=principal.actor,
        )
    return ArchiveUploadRead(
        format=result.format,
        mode=result.mode,
        files=[DataFileRead.of(record) for record in result.files],
        problems=result.problems,
        report=await run_in_threadpool(data.data_report, session, model),
    )


@router.get(
    "/{model_id}/data",
    response_model=DataFileList,
    summary="The model's training data and its validation report",
    description=(
        "Every uploaded pair with its verdict, reasons and measures (oldest first; filter by "
        "`status`: accepted, rejected or removed), and the data set's totals: hours accepted "
        "and rejected, by reason. "
        + _ACCESS.format(scope="custom_models:read", roles="`admin` or `auditor`")
    ),
    responses=error_responses(400, 401, 403, 404),
)
def list_data(
    model: ModelReader,
    session: SessionDep,
    status: Annotated[str | None, Query(pattern="^(accepted|rejected|removed)$")] = None,
) -> DataFileList:
    files = [DataFileRead.of(f) for f in data.list_files(session, model, status=status)]
    return DataFileList(files=files, report=data.data_report(session, model))


@router.delete(
    "/{model_id}/data/{file_id}",
    response_model=DataFileRead,
    summary="Remove a training pair",
    description=(
        "Deletes the pair's sealed audio and transcript; its record stays, `removed`. "
        + _ACCESS.format(scope="custom_models:write", roles="`admin`")
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def remove_data(
    model: ModelWriter,
    file_id: uuid.UUID,
    session: SessionDep,
    principal: ResellerOrStaff,
    store: StoreDep,
) -> DataFileRead:
    record = data.get_file(session, model, file_id)
    return DataFileRead.of(data.remove_file(session, store, model, record, actor=principal.actor))


# --- resumable uploads (tus 1.0) ------------------------------------------------------------


class TusVersionUnsupported(MIPError):
    status_code = 412
    err_code = "PRECONDITION_FAILED"


_TUS = {"Tus-Resumable": uploads.TUS_VERSION}
_TUS_HEADER = Header(alias="Tus-Resumable", description="The tus protocol version; must be 1.0.0")


def _tus_version(
    _principal: ResellerOrStaff, value: Annotated[str | None, _TUS_HEADER] = None
) -> None:
    """Dependency of every tus request but OPTIONS: ``Tus-Resumable: 1.0.0`` (412 otherwise),
    checked once the caller is known (a missing key stays a 401) and before anything else."""
    if value != uploads.TUS_VERSION:
        raise TusVersionUnsupported(
            f"This server speaks tus {uploads.TUS_VERSION}: send 'Tus-Resumable: "
            f"{uploads.TUS_VERSION}'."
        )


TusResumable = Depends(_tus_version)


def _number(name: str, value: str | None) -> int:
    number = ascii_number((value or "").strip())
    if number is None:
        raise BadRequest(f"{name} must be a whole number of bytes.")
    return number


def _upload_read(upload: CustomUpload) -> UploadRead:
    return UploadRead(
        id=upload.id,
        model_id=upload.model_id,
        status=upload.status,
        upload_length=upload.upload_length,
        upload_offset=upload.upload_offset,
        metadata=upload.upload_metadata,
        result=upload.result,
        created_by=upload.created_by,
        created_at=upload.created_at,
        updated_at=upload.updated_at,
    )


@router.options(
    "/{model_id}/uploads",
    status_code=204,
    summary="tus: what this server supports",
    description="tus 1.0 discovery: `Tus-Version`, `Tus-Extension` (creation, termination, "
    "checksum), `Tus-Max-Size`, `Tus-Checksum-Algorithm`.",
    responses=error_responses(400, 401, 403, 404),
)
def tus_options(_model: ModelWriter, settings: SettingsDep) -> Response:
    return Response(
        status_code=204,
        headers={
            **_TUS,
            "Tus-Version": uploads.TUS_VERSION,
            "Tus-Extension": uploads.TUS_EXTENSIONS,
            "Tus-Max-Size": str(settings.custom_max_archive_bytes),
            "Tus-Checksum-Algorithm": ",".join(uploads.CHECKSUM_ALGORITHMS),
        },
    )


@router.post(
    "/{model_id}/uploads",
    dependencies=[TusResumable],
    status_code=201,
    summary="tus: create a resumable upload of a training archive",
    description=(
        "tus 1.0 creation: `Upload-Length` (bytes, at most `MIP_CUSTOM_MAX_ARCHIVE_BYTES`) and "
        "optional `Upload-Metadata`. The answer's `Location` is the upload's URL: send the "
        "archive there in PATCHes (`Content-Type: application/offset+octet-stream`, "
        "`Upload-Offset`, optional `Upload-Checksum: sha1|sha256 <base64>`); after a cut "
        "connection HEAD tells the offset to resume from. Each PATCH is stored sealed or not at "
        "all. The last PATCH is answered at once and the upload is `validating`: its archive is "
        "then read as `…/data/archive` does (by `mip worker` if the server stopped first); "
        "`GET …/uploads/{upload_id}` gives the outcome. Works with tus clients such as tuspy. "
        + _ACCESS.format(scope="custom_models:write", roles="`admin`")
    ),
    responses=error_responses(
        400, 401, 403, 404, 409, 413, specific={412: "Tus-Resumable is not 1.0.0"}
    ),
)
def tus_create(
    model: ModelWriter,
    request: Request,
    session: SessionDep,
    principal: ResellerOrStaff,
    settings: SettingsDep,
    upload_length: Annotated[str | None, Header(alias="Upload-Length")] = None,
    upload_metadata: Annotated[str | None, Header(alias="Upload-Metadata")] = None,
) -> Response:
    metadata = uploads.parse_metadata(upload_metadata)
    for key, value in metadata.items():
        check_storable("Upload-Metadata", f"{key}{value}")
    upload = uploads.create_upload(
        session,
        model,
        length=_number("Upload-Length", upload_length),
        max_length=settings.custom_max_archive_bytes,
        metadata=metadata,
        actor=principal.actor,
    )
    location = str(request.url_for("tus_head", model_id=str(model.id), upload_id=str(upload.id)))
    return Response(status_code=201, headers={**_TUS, "Location": location})


@router.head(
    "/{model_id}/uploads/{upload_id}",
    dependencies=[TusResumable],
    status_code=200,
    summary="tus: the upload's offset",
    description="`Upload-Offset` and `Upload-Length` of the upload, to resume from.",
    responses=error_responses(400, 401, 403, 404, specific={412: "Tus-Resumable is not 1.0.0"}),
)
def tus_head(model: ModelWriter, upload_id: uuid.UUID, session: SessionDep) -> Response:
    upload = uploads.get_upload(session, model, upload_id)
    return Response(
        status_code=200,
        headers={
            **_TUS,
            "Upload-Offset": str(upload.upload_offset),
            "Upload-Length": str(upload.upload_length),
            "Cache-Control": "no-store",
        },
    )


@router.patch(
    "/{model_id}/uploads/{upload_id}",
    dependencies=[TusResumable],
    status_code=204,
    summary="tus: send bytes of the upload",
    description=(
        "The body (`Content-Type: application/offset+octet-stream`) continues the upload at "
        "`Upload-Offset`, which must be the offset the server holds (409 otherwise). An "
        "`Upload-Checksum` that does not match is a 460 and nothing is kept."
    ),
    responses=error_responses(
        400,
        401,
        403,
        404,
        409,
        413,
        415,
        specific={408: "The body arrived too slowly", 412: "Tus-Resumable is not 1.0.0"},
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                uploads.PATCH_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def tus_patch(
    model: ModelWriter,
    upload_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: ResellerOrStaff,
    store: StoreDep,
    registry: RegistryDep,
    background: BackgroundTasks,
    upload_offset: Annotated[str | None, Header(alias="Upload-Offset")] = None,
    upload_checksum: Annotated[str | None, Header(alias="Upload-Checksum")] = None,
) -> Response:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != uploads.PATCH_MEDIA_TYPE:
        raise UnsupportedMediaType(f"A tus PATCH is {uploads.PATCH_MEDIA_TYPE}.")
    offset = _number("Upload-Offset", upload_offset)
    upload = await run_in_threadpool(uploads.get_upload, session, model, upload_id)
    try:
        chunk = await request.body()  # all of it, within the guard's limit, or nothing is kept
    except ClientDisconnect:
        # Expected with tus: the client resumes from the offset HEAD gives, which did not move.
        raise BadRequest(
            "The connection closed before the chunk was complete; none of it was kept."
        ) from None
    upload = await run_in_threadpool(
        uploads.append,
        session,
        store,
        model,
        upload,
        offset=offset,
        chunk=chunk,
        checksum=upload_checksum,
        actor=principal.actor,
    )
    if upload.status == "validating":  # the last byte: read the archive after answering
        background.add_task(
            uploads.validate_upload,
            request.app.state.sessionmaker,
            store,
            upload.id,
            scorer=scorer_for(registry, model),
            actor=principal.actor,
        )
    return Response(status_code=204, headers={**_TUS, "Upload-Offset": str(upload.upload_offset)})


@router.delete(
    "/{model_id}/uploads/{upload_id}",
    dependencies=[TusResumable],
    status_code=204,
    summary="tus: terminate an upload",
    description="Deletes the bytes received so far; the upload is gone (404 after).",
    responses=error_responses(400, 401, 403, 404, specific={412: "Tus-Resumable is not 1.0.0"}),
)
def tus_delete(
    model: ModelWriter,
    upload_id: uuid.UUID,
    session: SessionDep,
    principal: ResellerOrStaff,
    store: StoreDep,
) -> Response:
    upload = uploads.get_upload(session, model, upload_id)
    uploads.terminate(session, store, model, upload, actor=principal.actor)
    return Response(status_code=204, headers=_TUS)


@router.get(
    "/{model_id}/uploads/{upload_id}",
    response_model=UploadRead,
    summary="A resumable upload's state and outcome",
    description=(
        "`uploading` with its offset, then `complete` (the files taken and the entries not "
        "used) or `failed` (why the archive was refused). "
        + _ACCESS.format(scope="custom_models:read", roles="`admin` or `auditor`")
    ),
    responses=error_responses(400, 401, 403, 404),
)
def get_upload(model: ModelReader, upload_id: uuid.UUID, session: SessionDep) -> UploadRead:
    return _upload_read(uploads.get_upload(session, model, upload_id))
