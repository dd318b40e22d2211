"""Schemathesis against the service's own OpenAPI document, on SQLite and on PostgreSQL.

Every documented operation is called with generated requests, valid ones and invalid ones
(schemathesis's negative mode), over real HTTP: as a staff admin and, on the
Deepgram-compatible routes, also as a tenant's project key, so that calls get past
authentication to validation and the handlers. Ids in paths and JSON bodies are sometimes ids
that exist (a tenant, a key, a ledger row, a kept sample, an erasure). Every response is
checked: never a 5xx, a documented status, the documented content type and headers, a body
that matches the documented schema, and every error the Deepgram error body with the request id
of its ``dg-request-id`` header.

One test per backend walks every operation against one running server (a server per operation
would cost more than the calls); the failures of all operations are reported together.
Nothing is excluded: ``/v1/listen`` runs with fewer examples (see FEWER_EXAMPLES).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import orjson
import pytest
import requests
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode, Response
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.openapi import from_dict
from schemathesis.schemas import APIOperation
from schemathesis.transport.requests import REQUESTS_TRANSPORT, binary_serializer

from app.kit.settings import Settings
from tests.conftest import Database, make_staff_key, make_tenant
from tests.speech import synth_speech

# tus PATCH bodies are raw bytes under their own media type (app/custom/uploads.py).
REQUESTS_TRANSPORT.serializer("application/offset+octet-stream")(binary_serializer)

# The Deepgram-compatible face, which a project key may call; the rest needs a staff key.
PROJECT_KEY_ROUTES = ("/v1/projects", "/v1/listen", "/v1/models")

# Examples per operation and generation mode: bounded so that the test stays within a CI
# budget. Derandomized: every run sends the same requests, so a failure here is a regression
# and not a lucky draw.
MAX_EXAMPLES = 8
FEWER_EXAMPLES = {
    # Every call reads and decodes audio (and, with a model installed, would transcribe it):
    # a few calls show its answers conform.
    ("POST", "/v1/listen"): 3,
}

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}}
)

Operation = APIOperation[Any, Any, Any, Any]
Drawn = tuple[Case[Any], dict[str, str]]

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
ANNOTATIONS = {"title", "description", "example", "examples", "default"}


@dataclass(frozen=True)
class Caller:
    """Who calls, and the ids that exist, by the name of the parameter or field that holds them."""

    keys: dict[str, dict[str, str]]
    real_ids: dict[str, str]

    def requests_for(self, operation: Operation, mode: GenerationMode) -> st.SearchStrategy[Drawn]:
        """(case, headers): the case with some of its ids replaced by real ones."""
        project_route = operation.path.startswith(PROJECT_KEY_ROUTES)
        roles = ["admin", "project"] if project_route else ["admin"]
        in_path = sorted({p.name for p in operation.path_parameters} & set(self.real_ids))
        # Which ids to make real is drawn by name, for the path and the JSON body alike.
        names = st.sets(st.sampled_from(sorted(self.real_ids)))

        def build(drawn: tuple[Case[Any], str, set[str]]) -> Drawn:
            case, role, real = drawn
            for name in real.intersection(in_path):
                case.path_parameters[name] = self.real_ids[name]
            if real and isinstance(case.body, dict | list):
                case.body = self._with_real_ids(case.body, real)
            return case, self.keys[role]

        cases = operation.as_strategy(mode)
        return st.tuples(cases, st.sampled_from(roles), names).map(build)

    def _with_real_ids(self, value: Any, names: set[str]) -> Any:
        if isinstance(value, list):
            return [self._with_real_ids(item, names) for item in value]
        if isinstance(value, dict):
            return {
                key: self.real_ids[key] if key in names else self._with_real_ids(item, names)
                for key, item in value.items()
            }
        return value


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    # Every opted-in request is selected, so that a sample can be kept (and one is seeded).
    return Settings(
        env="test",
        data_dir=tmp_path / "var",
        database_url=db.url,
        log_json=True,
        bundled_models_dir=None,
        sampling_rate=1.0,
        sampling_secret="test-secret-of-the-schemathesis-run",
    )


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def caller(db: Database, live_server: str, http: requests.Session) -> Caller:
    """A tenant with a ledger row and a kept sample, a second key, an erasure elsewhere."""
    tenant = make_tenant(db, scopes=["admin"])
    admin = make_staff_key(db, "admin")
    # The key the tenant calls with is not the one offered as a path id: a generated revoke
    # of that one must not lock the tenant out of the rest of the run.
    spare = http.post(
        f"{live_server}/v1/governance/projects/{tenant.project_id}/keys",
        json={"comment": "spare"},
        headers=admin,
    )
    assert spare.status_code == 201, spare.text
    request_id = "seeded-request-1"
    event: dict[str, Any] = {
        "request_id": request_id,
        "project_id": str(tenant.project_id),
        "api_key_id": str(tenant.key_id),
        "created": T0.isoformat(),
        "model": "general",
        "duration": 3.0,
    }
    ingest = http.post(
        f"{live_server}/v1/governance/ledger/events", json={"events": [event]}, headers=admin
    )
    assert ingest.status_code == 200, ingest.text
    transcript = {"results": {"channels": [{"alternatives": [{"transcript": "one two"}]}]}}
    sample = http.post(
        f"{live_server}/v1/governance/samples",
        data={"project_id": str(tenant.project_id), "request_id": request_id},
        files={
            "audio": ("a.wav", synth_speech("one two"), "audio/wav"),
            "transcript": ("t.json", orjson.dumps(transcript), "application/json"),
        },
        headers=admin,
    )
    assert sample.status_code == 201, sample.text
    erased = make_tenant(db, name="Erased")
    erasure = http.post(
        f"{live_server}/v1/governance/erasure-requests",
        json={"scope": "organization", "organization_id": str(erased.org_id)},
        headers=admin,
    )
    assert erasure.status_code == 201, erasure.text
    return Caller(
        keys={"admin": admin, "project": tenant.headers},
        real_ids={
            "project_id": str(tenant.project_id),
            "organization_id": str(tenant.org_id),
            "balance_id": str(tenant.org_id),
            "key_id": spare.json()["id"],
            "api_key_id": str(tenant.key_id),
            "request_id": request_id,
            "period": f"{T0:%Y-%m}",
            "sample_id": sample.json()["id"],
            "erasure_id": erasure.json()["id"],
        },
    )


def breakable(spec: dict[str, Any]) -> bool:
    """Whether a request can break the operation's documented inputs (the negative mode).

    Every value of a path parameter that is a plain string is valid. Asked to break only such
    inputs, schemathesis draws about a thousand requests before it gives up (1.5 s each).
    """
    if "requestBody" in spec:
        return True
    for parameter in spec.get("parameters", []):
        schema = {k: v for k, v in parameter.get("schema", {}).items() if k not in ANNOTATIONS}
        if parameter["in"] != "path" or schema != {"type": "string"}:
            return True
    return False


def check_operation(
    operation: Operation,
    spec: dict[str, Any],
    *,
    caller: Caller,
    http: requests.Session,
    base_url: str,
) -> list[str]:
    """The failures of one operation's generated calls, one entry each (none: it conforms)."""
    failures: list[str] = []
    examples = FEWER_EXAMPLES.get((operation.method.upper(), operation.path), MAX_EXAMPLES)
    modes = [GenerationMode.POSITIVE]
    if breakable(spec):
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:

        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(drawn=caller.requests_for(operation, mode))
        def run(drawn: Drawn) -> None:
            case, headers = drawn
            response = case.call_and_validate(base_url=base_url, session=http, headers=headers)
            check_error_body(case, response, base_url)

        try:
            run()
        except Unsatisfiable:
            continue  # breakable() said yes, schemathesis found nothing to break: not a failure
        # schemathesis reports its findings as a FailureGroup, a BaseExceptionGroup.
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures


def check_error_body(case: Case[Any], response: Response, base_url: str) -> None:
    """An error is ``{"err_code", "err_msg", "request_id"}``, the id of its response header
    (a HEAD's answer has no body)."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return
    body = response.json()
    reproduce = f"{case.as_curl_command(base_url=base_url)} -> {response.status_code} {body}"
    assert isinstance(body, dict), reproduce
    assert {"err_code", "err_msg", "request_id"} <= set(body), reproduce
    assert [body["request_id"]] == response.headers["dg-request-id"], reproduce


def test_api_conforms_to_its_openapi_document(
    app: FastAPI, live_server: str, caller: Caller, http: requests.Session
) -> None:
    document = app.openapi()
    loaded = list(from_dict(document, config=CONFIG).get_all_operations())
    operations = [result.ok() for result in loaded if isinstance(result, Ok)]
    assert len(operations) == sum(len(methods) for methods in document["paths"].values())
    # Deletions last: the ids they remove stay real for every other operation.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    failures: list[str] = []
    for operation in operations:
        spec = document["paths"][operation.path][operation.method]
        failures.extend(
            check_operation(operation, spec, caller=caller, http=http, base_url=live_server)
        )
    assert not failures, "\n\n".join(failures)
