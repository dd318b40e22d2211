"""Request logs through the official SDK: shape, filters, pagination, one request, 404."""

from __future__ import annotations

import datetime as dt

import pytest
from deepgram.core.api_error import ApiError

from tests.conftest import SdkFactory
from tests.usage.helpers import Seeded, at


def ids(response: object) -> list[str]:
    return [r.request_id for r in response.requests]  # type: ignore[attr-defined]


class TestListRequests:
    def test_newest_first_with_deepgram_shape(self, sdk: SdkFactory, seeded: Seeded) -> None:
        client = sdk(seeded.tenant.key)
        project = str(seeded.tenant.project_id)
        response = client.manage.v1.projects.requests.list(project, limit=100)
        expected = sorted(seeded.events, key=lambda e: e.created, reverse=True)
        assert ids(response) == [e.request_id for e in expected]
        assert (response.page, response.limit) == (0, 100)

        item = next(r for r in response.requests if r.request_id == "r-002")
        row = seeded.rows["r-002"]
        assert item.project_uuid == project
        assert item.created == at(1, 11)
        assert item.path == "/v1/listen"
        assert item.api_key_id == str(seeded.key2_id)
        assert (item.code, item.deployment, item.callback) == (200, "self-hosted", None)
        details = item.response["details"]
        assert item.response["code"] == 200
        assert item.response["completed"] == "2026-03-01T11:00:00Z"
        assert details["usd"] == pytest.approx(row.amount_micros / 1e6)
        assert (details["duration"], details["total_audio"], details["channels"]) == (60, 120, 2)
        assert (details["streams"], details["method"]) == (1, "streaming")
        assert details["models"] == ["uuid-nova-3"]
        assert details["tags"] == ["prod", "team-a"]
        assert details["features"] == ["diarize"]
        assert details["mip"] == {
            "opted_out": True,
            "source": "request",
            "list_usd": pytest.approx(row.list_amount_micros / 1e6),
            "discount_usd": 0.0,
            "net_usd": pytest.approx(row.amount_micros / 1e6),
            "rate_per_minute_usd": pytest.approx(row.rate_micros_per_minute / 1e6),
            "price_book_version": row.price_book_version,
            "sample_kept": False,
        }
        opted_in = next(r for r in response.requests if r.request_id == "r-001")
        mip = opted_in.response["details"]["mip"]
        assert (mip["opted_out"], mip["source"]) == (False, "default")
        assert mip["discount_usd"] == pytest.approx(mip["list_usd"] / 2)
        assert opted_in.response["details"]["models"] == ["general"]
        no_key = next(r for r in response.requests if r.request_id == "r-004")
        assert no_key.api_key_id is None

    def test_pages_do_not_overlap(self, sdk: SdkFactory, seeded: Seeded) -> None:
        client = sdk(seeded.tenant.key)
        project = str(seeded.tenant.project_id)
        pages = [
            ids(client.manage.v1.projects.requests.list(project, limit=3.0, page=float(p)))
            for p in range(4)
        ]
        expected = [e.request_id for e in sorted(seeded.events, key=lambda e: e.created)][::-1]
        assert pages == [expected[0:3], expected[3:6], expected[6:7], []]
        default = client.manage.v1.projects.requests.list(project)
        assert (default.limit, len(default.requests)) == (10, 7)

    def test_filters(self, sdk: SdkFactory, seeded: Seeded) -> None:
        requests = sdk(seeded.tenant.key).manage.v1.projects.requests
        project = str(seeded.tenant.project_id)

        def listed(**kwargs: object) -> list[str]:
            return sorted(ids(requests.list(project, limit=1000, **kwargs)))

        assert listed(start=at(2, 0), end=at(3, 23, 59, 59)) == ["r-003", "r-004", "r-006"]
        # A +02:00 end: 2026-03-02T11:30+02:00 is 09:30Z, inclusive.
        tz = dt.timezone(dt.timedelta(hours=2))
        assert listed(start=at(2, 0), end=dt.datetime(2026, 3, 2, 11, 30, tzinfo=tz)) == ["r-003"]
        assert listed(accessor=str(seeded.key2_id)) == ["r-002", "r-005"]
        assert listed(request_id="r-004") == ["r-004"]
        assert listed(status="failed") == ["r-003"]
        assert "r-003" not in listed(status="succeeded")
        assert len(listed(status="succeeded")) == 6
        assert listed(method="streaming") == ["r-002"]
        assert "r-006" not in listed(endpoint="listen")
        assert len(listed(endpoint="listen")) == 6
        assert listed(endpoint="speak") == []
        assert len(listed(deployment="self-hosted")) == 7
        assert listed(deployment="hosted") == []
        assert listed(method="sync", accessor=str(seeded.key2_id)) == ["r-005"]

    def test_other_tenant_rows_never_listed(self, sdk: SdkFactory, seeded: Seeded) -> None:
        client = sdk(seeded.other.key)
        response = client.manage.v1.projects.requests.list(str(seeded.other.project_id))
        assert ids(response) == ["r-001"]
        assert response.requests[0].response["details"]["duration"] == 3600


class TestGetRequest:
    def test_returns_the_request(self, sdk: SdkFactory, seeded: Seeded) -> None:
        client = sdk(seeded.tenant.key)
        response = client.manage.v1.projects.requests.get(str(seeded.tenant.project_id), "r-003")
        request = response.request
        assert (request.request_id, request.code) == ("r-003", 500)
        assert request.response["details"]["usd"] == 0
        assert request.response["details"]["method"] == "async"

    def test_unknown_and_foreign_requests_are_404(self, sdk: SdkFactory, seeded: Seeded) -> None:
        client = sdk(seeded.tenant.key)
        requests = client.manage.v1.projects.requests
        with pytest.raises(ApiError) as unknown:
            requests.get(str(seeded.tenant.project_id), "nope")
        assert unknown.value.status_code == 404
        assert unknown.value.body["err_code"] == "NOT_FOUND"
        with pytest.raises(ApiError) as foreign:
            requests.get(str(seeded.other.project_id), "r-001")
        assert foreign.value.status_code == 404
