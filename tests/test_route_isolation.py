"""Tenant isolation, generated from the application's routes (SQLite and PostgreSQL).

Every operation that takes an id in its path is called by another tenant's project key, with the
ids of a real tenant's resources where the route names a project and random ones elsewhere:
the answer is a 403 or a 404 (or a 400/405/409/422-free refusal), never a success and never a
500. Without a key every such route is a 401. A new id-taking route is covered the day it is
added, without anyone writing a test for it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.tenancy import service as tenancy
from tests.conftest import Database, make_tenant

_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def id_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every operation whose path takes a parameter, from the OpenAPI
    document (every endpoint is in it)."""
    for path, operations in app.openapi()["paths"].items():
        if _PARAM.search(path):
            for method in sorted(operations):
                yield method.upper(), path


def fill(path: str, project_id: uuid.UUID) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "project_id":
            return str(project_id)
        if name == "period":
            return "2026-01"
        if name in {"kind", "name"}:
            return "validation.json"
        return str(uuid.uuid4())

    return _PARAM.sub(value, path)


def call(client: TestClient, method: str, url: str, headers: dict[str, str]) -> int:
    if method in {"POST", "PUT", "PATCH"}:
        return client.request(method, url, json={}, headers=headers).status_code
    return client.request(method, url, headers=headers).status_code


def test_the_generator_finds_the_id_taking_routes(app: FastAPI) -> None:
    routes = set(id_routes(app))
    assert ("GET", "/v1/projects/{project_id}/requests") in routes
    assert ("DELETE", "/v1/governance/samples/{sample_id}") in routes
    assert len(routes) > 30


def test_another_tenants_ids_are_never_served(
    client: TestClient, app: FastAPI, db: Database
) -> None:
    owner = make_tenant(db, name="Owner", scopes=["admin"])
    intruder = make_tenant(db, name="Intruder", scopes=["admin"])
    leaks = []
    for method, path in id_routes(app):
        url = fill(path, owner.project_id)
        status = call(client, method, url, intruder.headers)
        if status < 400 or status >= 500 or status == 401:
            leaks.append(f"{method} {url}: {status}")
    assert leaks == []


@pytest.mark.parametrize("with_body", [False, True])
def test_without_a_key_every_id_route_is_a_401(
    client: TestClient, app: FastAPI, db: Database, with_body: bool
) -> None:
    owner = make_tenant(db, name="Owner", scopes=["admin"])
    wrong = []
    for method, path in id_routes(app):
        if with_body and method not in {"POST", "PUT", "PATCH"}:
            continue
        status = call(client, method, fill(path, owner.project_id), {})
        if status != 401:
            wrong.append(f"{method} {path}: {status}")
    assert wrong == []


def all_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    for path, operations in app.openapi()["paths"].items():
        for method in sorted(operations):
            yield method.upper(), path


def test_a_reseller_key_reaches_only_custom_models(
    client: TestClient, app: FastAPI, db: Database
) -> None:
    """A reseller key holds every reseller scope; outside /v1/governance/custom-models each
    operation that needs a key refuses it (4xx, not 401), with or without a body."""
    owner = make_tenant(db, name="Owner", scopes=["admin"])
    with db.session() as session:
        reseller = tenancy.create_reseller(session, name="Reseller", actor="test")
        _key, secret = tenancy.create_reseller_key(session, reseller_id=reseller.id, actor="test")
    headers = {"Authorization": f"Token {secret}"}
    reached = []
    for method, path in all_routes(app):
        if path.startswith("/v1/governance/custom-models"):
            continue
        url = fill(path, owner.project_id)
        if call(client, method, url, {}) != 401:  # open to anyone (health, docs)
            continue
        status = call(client, method, url, headers)
        if status < 400 or status >= 500 or status == 401:
            reached.append(f"{method} {path}: {status}")
    assert reached == []
