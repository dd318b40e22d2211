"""HTTP edges of the usage endpoints: bad input is 400, auth is 401/403/404, staff may read."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from app.usage.schemas import FEATURE_FILTERS, UsageParams
from tests.conftest import Database, Tenant, make_staff_key, make_tenant
from tests.kit.test_http import assert_error
from tests.usage.helpers import END, START, Seeded

PATHS = (
    "/v1/projects/{p}/requests",
    "/v1/projects/{p}/requests/r-001",
    "/v1/projects/{p}/usage",
    "/v1/projects/{p}/usage/breakdown",
    "/v1/projects/{p}/usage/fields",
    "/v1/projects/{p}/billing/breakdown",
    "/v1/projects/{p}/billing/fields",
)


def urls(project_id: uuid.UUID | str) -> list[str]:
    return [path.format(p=project_id) for path in PATHS]


BAD_QUERIES = [
    ("requests", "start=2024-13-01", "start"),
    ("requests", "end=yesterday", "end"),
    ("requests", "start=2024-02-01&end=2024-01-31T23:59:59Z", "after"),
    ("requests", "start=0001-01-01T00:00:00%2B01:00", "start"),
    ("requests", "limit=0", "limit"),
    ("requests", "limit=1001", "limit"),
    ("requests", "limit=10.5", "limit"),
    ("requests", "limit=ten", "limit"),
    ("requests", "limit=nan", "limit"),
    ("requests", "page=-1", "page"),
    ("requests", "page=1.5", "page"),
    ("requests", "page=inf", "page"),
    ("requests", "accessor=not-a-uuid", "accessor"),
    ("requests", "status=ok", "status"),
    ("requests", "method=batch", "method"),
    ("requests", "endpoint=transcribe", "endpoint"),
    ("requests", "deployment=cloud", "deployment"),
    ("usage", "start=2024-01-32", "start"),
    ("usage", "start=2024-02-01&end=2024-01-01", "after"),
    ("usage", "start=2099-01-01", "after"),
    ("usage", "punctuate=maybe", "punctuate"),
    ("usage", "tag=", "tag"),
    ("usage", "accessor=123", "accessor"),
    ("usage", "model=" + "m" * 129, "model"),
    ("usage/breakdown", "grouping=colour", "grouping"),
    ("usage/breakdown", "grouping=line_item", "grouping"),
    ("usage/breakdown", "end=31-01-2024", "end"),
    ("usage/fields", "start=2024-02-01&end=2024-01-01", "after"),
    ("billing/breakdown", "grouping=models", "grouping"),
    ("billing/breakdown", "line_item=nova-3", "line_item"),
    ("billing/breakdown", "line_item=sync::", "line_item"),
    ("billing/breakdown", "end=not-a-date", "end"),
    ("billing/fields", "start=2024-1-1", "start"),
]


class TestBadInput:
    def test_is_400_with_deepgram_body(self, client: TestClient, tenant: Tenant) -> None:
        # One test, many cases: each case needs only a request, not a fresh database.
        for path, query, needle in BAD_QUERIES:
            url = f"/v1/projects/{tenant.project_id}/{path}?{query}"
            body = assert_error(client.get(url, headers=tenant.headers), 400, "Bad Request")
            assert needle in str(body["err_msg"]), (url, body)

    def test_bad_project_uuid_is_400_everywhere(self, client: TestClient, tenant: Tenant) -> None:
        for url in urls("not-a-uuid"):
            body = assert_error(client.get(url, headers=tenant.headers), 400, "Bad Request")
            assert "project_id" in str(body["err_msg"])


class TestAcceptedInput:
    def test_sdk_spellings_and_unknown_parameters(self, client: TestClient, seeded: Seeded) -> None:
        base = f"/v1/projects/{seeded.tenant.project_id}"
        headers = seeded.tenant.headers
        listed = client.get(f"{base}/requests?limit=2.0&page=1.0&colour=blue", headers=headers)
        assert listed.status_code == 200, listed.text
        assert (listed.json()["limit"], listed.json()["page"]) == (2, 1)
        assert len(listed.json()["requests"]) == 2
        far = client.get(f"{base}/requests?page=1e300", headers=headers)
        assert far.status_code == 200
        assert far.json()["requests"] == []
        usage = client.get(
            f"{base}/usage?start={START}&end={END}&punctuate=TRUE&diarize=0&colour=blue",
            headers=headers,
        )
        assert usage.status_code == 200, usage.text
        # punctuate without diarize: r-001, r-004, r-005.
        assert usage.json()["totals"]["requests"] == 3
        last_day = client.get(f"{base}/usage?start=9999-12-31&end=9999-12-31", headers=headers)
        assert last_day.status_code == 200
        assert last_day.json()["results"] == []

    def test_every_feature_filter_is_a_parameter(self) -> None:
        assert set(FEATURE_FILTERS) <= set(UsageParams.model_fields)
        params = UsageParams.model_validate({"smart_format": "true", "diarize": "false"})
        assert params.feature_filters() == {"smart_format": True, "diarize": False}

    def test_openapi_documents_every_endpoint(self, client: TestClient) -> None:
        paths = client.get("/openapi.json").json()["paths"]
        for path in PATHS:
            template = path.format(p="{project_id}").replace("r-001", "{request_id}")
            operation = paths[template]["get"]
            assert operation["summary"]
            assert "200" in operation["responses"]


class TestAuthentication:
    def test_missing_or_bad_key_is_401(self, client: TestClient, tenant: Tenant) -> None:
        for url in urls(tenant.project_id):
            assert_error(client.get(url), 401, "INVALID_AUTH")
            bad = {"Authorization": "Token " + "0" * 40}
            assert_error(client.get(url, headers=bad), 401, "INVALID_AUTH")


class TestTenantIsolation:
    def test_other_tenants_project_is_404(self, client: TestClient, seeded: Seeded) -> None:
        for url in urls(seeded.other.project_id):
            assert_error(client.get(url, headers=seeded.tenant.headers), 404, "NOT_FOUND")

    def test_key_without_usage_scope_is_403(self, client: TestClient, db: Database) -> None:
        listen_only = make_tenant(db, scopes=["listen"])
        for url in urls(listen_only.project_id):
            response = client.get(url, headers=listen_only.headers)
            assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")


class TestStaffAccess:
    @pytest.mark.parametrize("role", ["admin", "billing", "auditor"])
    def test_reader_roles_read_any_project(
        self, client: TestClient, db: Database, seeded: Seeded, role: str
    ) -> None:
        headers = make_staff_key(db, role)
        for url in urls(seeded.tenant.project_id):
            response = client.get(url, params={"start": START, "end": END}, headers=headers)
            assert response.status_code == 200, (url, response.text)
        totals = client.get(
            f"/v1/projects/{seeded.tenant.project_id}/usage",
            params={"start": START, "end": END},
            headers=headers,
        ).json()["totals"]
        assert totals["requests"] == 6

    def test_dataops_is_403_and_unknown_project_404(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        dataops = make_staff_key(db, "dataops")
        for url in urls(tenant.project_id):
            assert_error(client.get(url, headers=dataops), 403, "INSUFFICIENT_PERMISSIONS")
        billing = make_staff_key(db, "billing")
        for url in urls(uuid.uuid4()):
            assert_error(client.get(url, headers=billing), 404, "NOT_FOUND")
