"""Batch ingest: pricing applied, idempotent, atomic, strict about mip_opt_out."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.ledger.repository import existing_hashes
from app.ledger.schemas import BATCH_EVENTS_CAP, LedgerEventIn
from app.ledger.service import (
    HASHED_FIELDS,
    close_period,
    event_hashes,
    ingest_batch,
    legacy_event_hashes,
)
from app.sampling.policy import SamplingConfig
from app.tables import LedgerEntry
from tests.conftest import Database, Tenant, make_staff_key, make_tenant
from tests.kit.test_http import assert_error
from tests.ledger.helpers import as_database_owner, event, ledger_count, ledger_rows

URL = "/v1/governance/ledger/events"


def post(client: TestClient, headers: dict[str, str], *events: dict[str, object]) -> Any:
    return client.post(URL, json={"events": list(events)}, headers=headers)


class TestIngest:
    def test_records_priced_rows(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            URL,
            json={
                "events": [
                    event(tenant.project_id, "r1", api_key_id=str(tenant.key_id), tags=["b", "a"]),
                    event(tenant.project_id, "r2", mip_opt_out="true", duration=30.0),
                ]
            },
            headers=admin_headers,
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"received": 2, "recorded": 2, "duplicates": 0, "adjustments": 0}
        rows = ledger_rows(db)
        # growth: 0.0036 USD/min. r1: 60 s opted in (default) -> list 3600, net 1800.
        r1 = rows["r1"]
        assert (r1.plan, r1.rate_micros_per_minute, r1.discount_bps) == ("growth", 3600, 5000)
        assert (r1.list_amount_micros, r1.discount_micros, r1.amount_micros) == (3600, 1800, 1800)
        assert (r1.mip_opt_out, r1.opt_out_source) == (False, "default")
        assert r1.tags == ["a", "b"]
        assert r1.api_key_id == tenant.key_id
        assert r1.organization_id == tenant.org_id
        assert r1.price_book_version == "2026-01"
        assert (r1.usage_period, r1.billing_period, r1.is_adjustment) == (
            "2026-03",
            "2026-03",
            False,
        )
        # r2: 30 s opted out by request -> full price 1800.
        r2 = rows["r2"]
        assert (r2.mip_opt_out, r2.opt_out_source) == (True, "request")
        assert (r2.list_amount_micros, r2.discount_micros, r2.amount_micros) == (1800, 0, 1800)

    def test_identical_resend_is_a_duplicate(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        batch = [event(tenant.project_id, f"r{i}") for i in range(5)]
        assert client.post(URL, json={"events": batch}, headers=admin_headers).status_code == 200
        before = ledger_rows(db)
        # Same events, other order, other timezone spelling, tags reordered: still identical.
        again = [{**e, "created": "2026-03-10T13:00:00+01:00"} for e in reversed(batch)]
        response = client.post(URL, json={"events": again}, headers=admin_headers)
        assert response.json() == {"received": 5, "recorded": 0, "duplicates": 5, "adjustments": 0}
        after = ledger_rows(db)
        assert {k: v.id for k, v in before.items()} == {k: v.id for k, v in after.items()}

    def test_conflicting_duplicate_is_409_and_writes_nothing(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        post(client, admin_headers, event(tenant.project_id, "r1"))
        response = post(
            client,
            admin_headers,
            event(tenant.project_id, "new-one"),
            event(tenant.project_id, "r1", duration=61.0),
        )
        body = assert_error(response, 409, "CONFLICT")
        assert "r1" in str(body["err_msg"])
        assert str(tenant.project_id) in str(body["err_msg"])
        assert ledger_count(db) == 1  # "new-one" was not written: the batch is atomic

    def test_conflict_inside_one_batch_is_409(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        response = post(
            client,
            admin_headers,
            event(tenant.project_id, "x"),
            event(tenant.project_id, "x", model="other"),
        )
        assert_error(response, 409, "CONFLICT")
        assert ledger_count(db) == 0

    def test_repeat_inside_one_batch_counts_once(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        e = event(tenant.project_id, "x")
        response = post(client, admin_headers, e, e)
        assert response.json()["recorded"] == 1
        assert response.json()["duplicates"] == 1

    def test_same_request_id_in_two_projects_is_two_rows(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        other = make_tenant(db, name="Other")
        post(client, admin_headers, event(tenant.project_id, "x"), event(other.project_id, "x"))
        assert ledger_count(db) == 2


class TestEventDigest:
    def test_digest_covers_every_field_of_an_event(self) -> None:
        assert sorted(HASHED_FIELDS) == sorted(LedgerEventIn.model_fields)
        assert len(set(HASHED_FIELDS)) == len(HASHED_FIELDS)

    @pytest.mark.parametrize(
        "change",
        [
            {"request_id": "r2"},
            {"created": "2026-03-10T12:00:00.000001+00:00"},
            {"endpoint": "/v1/other"},
            {"method": "async"},
            {"model": "nova"},
            {"model_tier": "premium"},
            {"language": "en"},
            {"features": ["diarize"]},
            {"tags": ["t"]},
            {"duration": 60.001},
            {"channels": 2},
            {"status": 400},
            {"mip_opt_out": "false"},
        ],
    )
    def test_any_changed_field_changes_the_digest(
        self, tenant: Tenant, change: dict[str, object]
    ) -> None:
        base = LedgerEventIn.model_validate(event(tenant.project_id, "r1"))
        changed = LedgerEventIn.model_validate({**event(tenant.project_id, "r1"), **change})
        assert event_hashes([base]) != event_hashes([changed])

    def test_rows_recorded_with_the_legacy_digest_still_deduplicate(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        batch = [event(tenant.project_id, f"r{i}", tags=["b", "a"]) for i in range(3)]
        assert post(client, admin_headers, *batch).status_code == 200
        # As an earlier version recorded them: the digest of the sorted-keys JSON object.
        validated = [LedgerEventIn.model_validate(e) for e in batch]
        with as_database_owner(db), db.session() as session:
            for item, digest in zip(validated, legacy_event_hashes(validated), strict=True):
                session.execute(
                    update(LedgerEntry)
                    .where(LedgerEntry.request_id == item.request_id)
                    .values(event_hash=digest)
                )
        response = post(client, admin_headers, *batch)
        assert response.json() == {"received": 3, "recorded": 0, "duplicates": 3, "adjustments": 0}
        changed = post(client, admin_headers, {**batch[1], "duration": 61.0})
        assert_error(changed, 409, "CONFLICT")
        assert ledger_count(db) == 3

    def test_lookup_of_recorded_digests(self, db: Database, tenant: Tenant) -> None:
        with db.session() as session:
            ingest_batch(
                session,
                [LedgerEventIn.model_validate(event(tenant.project_id, "r1"))],
                sampling=SamplingConfig(secret=b"s", default_rate=0.0),
            )
        with db.session() as session:
            found = existing_hashes(
                session,
                [(tenant.project_id, "r1"), (tenant.project_id, "r2"), (uuid.uuid4(), "r1")],
            )
            assert list(found) == [(tenant.project_id, "r1")]
            # Keys the text form cannot carry (a newline) take the array form.
            assert existing_hashes(session, [(tenant.project_id, "a\nb")]) == {}
            assert existing_hashes(session, []) == {}

    def test_large_batch_with_repeats_and_recorded_events(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        # Digests of new events are computed in chunks while the rows stream to the database;
        # more events than one chunk, some recorded already, some repeated in the batch.
        recorded = [event(tenant.project_id, f"r{i:04d}") for i in range(0, 1300, 7)]
        assert post(client, admin_headers, *recorded).status_code == 200
        batch = [event(tenant.project_id, f"r{i:04d}", duration=1 + i / 1000) for i in range(1300)]
        for i in range(0, 1300, 7):
            batch[i] = recorded[i // 7]
        batch += batch[500:520]
        response = post(client, admin_headers, *batch)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "received": 1320,
            "recorded": 1300 - len(recorded),
            "duplicates": len(recorded) + 20,
            "adjustments": 0,
        }
        rows = ledger_rows(db)
        assert len(rows) == 1300
        ids = [row.id for row in rows.values()]
        assert len(set(ids)) == 1300
        assert {row_id.version for row_id in ids} == {4}
        assert {row_id.variant for row_id in ids} == {uuid.RFC_4122}
        validated = [LedgerEventIn.model_validate(e) for e in batch[:1300]]
        for item, digest in zip(validated, event_hashes(validated), strict=True):
            assert rows[item.request_id].event_hash == digest
            assert rows[item.request_id].duration_seconds == item.duration


class TestOptOutParameter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("true", True),
            ("TRUE", True),
            ("1", True),
            (True, True),
            ("false", False),
            ("False", False),
            ("0", False),
            (False, False),
        ],
    )
    def test_accepted_spellings(
        self,
        client: TestClient,
        db: Database,
        tenant: Tenant,
        admin_headers: dict[str, str],
        value: object,
        expected: bool,
    ) -> None:
        response = post(client, admin_headers, event(tenant.project_id, "r", mip_opt_out=value))
        assert response.status_code == 200, response.text
        row = ledger_rows(db)["r"]
        assert row.mip_opt_out is expected
        assert row.opt_out_source == "request"

    @pytest.mark.parametrize("value", ["yes", "no", "", "2", "tru", 2, 0.5, [], {}])
    def test_other_values_are_400_naming_the_parameter(
        self,
        client: TestClient,
        db: Database,
        tenant: Tenant,
        admin_headers: dict[str, str],
        value: object,
    ) -> None:
        response = post(
            client,
            admin_headers,
            event(tenant.project_id, "ok"),
            event(tenant.project_id, "bad", mip_opt_out=value),
        )
        body = assert_error(response, 400, "Bad Request")
        assert "mip_opt_out" in str(body["err_msg"])
        assert ledger_count(db) == 0

    def test_contract_opt_out_wins_over_request(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        ent = make_tenant(db, plan="enterprise", contract_rates={"*": 4000}, contract_opt_out=True)
        post(client, admin_headers, event(ent.project_id, "r", mip_opt_out="false"))
        row = ledger_rows(db)["r"]
        assert (row.mip_opt_out, row.opt_out_source) == (True, "contract")
        assert (row.price_book_version, row.rate_micros_per_minute) == ("contract", 4000)
        assert (row.list_amount_micros, row.discount_micros, row.amount_micros) == (4000, 0, 4000)


class TestBadInput:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"created": "2026-03-10T12:00:00"}, "created"),
            ({"created": "yesterday"}, "created"),
            ({"duration": -1}, "duration"),
            ({"duration": "NaN"}, "duration"),
            ({"channels": 0}, "channels"),
            ({"method": "batch"}, "method"),
            ({"status": 999}, "status"),
            ({"request_id": ""}, "request_id"),
            ({"request_id": "a b"}, "request_id"),
            ({"project_id": "not-a-uuid"}, "project_id"),
            ({"surprise": 1}, "surprise"),
            ({"model": ""}, "model"),
        ],
    )
    def test_invalid_event_is_400_naming_field(
        self,
        client: TestClient,
        db: Database,
        tenant: Tenant,
        admin_headers: dict[str, str],
        overrides: dict[str, object],
        field: str,
    ) -> None:
        response = post(client, admin_headers, {**event(tenant.project_id, "r"), **overrides})
        body = assert_error(response, 400, "Bad Request")
        assert field in str(body["err_msg"])
        assert ledger_count(db) == 0

    def test_unknown_project_is_400(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        import uuid

        ghost = uuid.uuid4()
        response = post(client, admin_headers, event(tenant.project_id, "a"), event(ghost, "b"))
        body = assert_error(response, 400, "Bad Request")
        assert str(ghost) in str(body["err_msg"])
        assert ledger_count(db) == 0

    def test_key_of_another_project_is_400(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        other = make_tenant(db, name="Other")
        response = post(
            client, admin_headers, event(tenant.project_id, "a", api_key_id=str(other.key_id))
        )
        assert_error(response, 400, "Bad Request")
        assert ledger_count(db) == 0

    def test_empty_batch_is_400(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        assert_error(
            client.post(URL, json={"events": []}, headers=admin_headers), 400, "Bad Request"
        )

    def test_too_many_events_is_413(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        client.app.state.settings.max_batch_events = 3  # type: ignore[attr-defined]
        batch = [event(tenant.project_id, f"r{i}") for i in range(4)]
        response = client.post(URL, json={"events": batch}, headers=admin_headers)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert ledger_count(db) == 0


class TestAccess:
    def test_project_key_cannot_ingest(self, client: TestClient, tenant: Tenant) -> None:
        response = post(client, tenant.headers, event(tenant.project_id, "r"))
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    @pytest.mark.parametrize("role", ["billing", "dataops", "auditor"])
    def test_other_staff_roles_cannot_ingest(
        self, client: TestClient, db: Database, tenant: Tenant, role: str
    ) -> None:
        response = post(client, make_staff_key(db, role), event(tenant.project_id, "r"))
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")


class TestClosedPeriods:
    def test_late_event_becomes_adjustment_in_next_open_period(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        with db.session() as session:
            close_period(session, period="2026-03", actor="test")
            close_period(session, period="2026-04", actor="test")
        post(client, admin_headers, event(tenant.project_id, "late"))
        row = ledger_rows(db)["late"]
        assert (row.usage_period, row.billing_period, row.is_adjustment) == (
            "2026-03",
            "2026-05",
            True,
        )

    def test_december_rolls_into_january(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        with db.session() as session:
            close_period(session, period="2025-12", actor="test")
        post(client, admin_headers, event(tenant.project_id, "d", created="2025-12-31T23:59:59Z"))
        assert ledger_rows(db)["d"].billing_period == "2026-01"

    def test_running_month_cannot_be_closed(self, db: Database) -> None:
        from app.kit.db import utcnow
        from app.kit.errors import BadRequest
        from app.ledger.service import period_of

        with db.session() as session, pytest.raises(BadRequest, match="has not ended"):
            close_period(session, period=period_of(utcnow()), actor="test")
        with db.session() as session, pytest.raises(BadRequest, match="has not ended"):
            close_period(session, period="2999-01", actor="test")


class TestOpenAPI:
    def test_batch_body_schema_is_documented(self, client: TestClient) -> None:
        document = client.get("/openapi.json").json()
        body = document["paths"][URL]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": "#/components/schemas/LedgerBatchIn"}
        schemas = document["components"]["schemas"]
        assert schemas["LedgerBatchIn"]["properties"]["events"]["items"] == {
            "$ref": "#/components/schemas/LedgerEventIn"
        }
        event = schemas["LedgerEventIn"]
        assert {"request_id", "project_id", "created", "duration", "mip_opt_out"} <= set(
            event["properties"]
        )


class TestHostileBatches:
    """Bodies built to cost the service time or to land in a month that will never be billed."""

    @pytest.mark.parametrize(
        "created",
        [
            "0001-01-01T00:00:00+14:00",  # no UTC form: was an OverflowError, a 500
            "9999-12-31T23:59:59-14:00",
            "9999-12-01T00:00:00Z",  # would be billed in December 9999
        ],
    )
    def test_dates_out_of_range_are_400_and_nothing_is_written(
        self,
        client: TestClient,
        db: Database,
        tenant: Tenant,
        admin_headers: dict[str, str],
        created: str,
    ) -> None:
        good = event(tenant.project_id, "ok")
        bad = event(tenant.project_id, "bad", created=created)
        body = assert_error(post(client, admin_headers, good, bad), 400, "Bad Request")
        assert "created" in str(body["err_msg"])
        assert ledger_count(db) == 0

    def test_a_day_ahead_of_the_clock_is_still_accepted(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)).isoformat()
        response = post(client, admin_headers, event(tenant.project_id, "soon", created=soon))
        assert response.status_code == 200, response.text

    def test_the_first_bad_event_ends_validation(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        # A million integers: validating each (and reporting each) took a minute; now the
        # first one is the answer.
        body = b'{"events": [' + b",".join([b"1"] * 1_000_000) + b"]}"
        response = client.post(
            URL, content=body, headers={**admin_headers, "Content-Type": "application/json"}
        )
        error = assert_error(response, 400, "Bad Request")
        assert "events.0" in str(error["err_msg"])
        assert ledger_count(db) == 0

    def test_more_events_than_any_deployment_allows_is_413(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        one = event(tenant.project_id, "same")
        response = post(client, admin_headers, *([one] * (BATCH_EVENTS_CAP + 1)))
        error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert "limit is 10000" in str(error["err_msg"])
        assert ledger_count(db) == 0
