"""The official Deepgram SDK (7.17) drives projects, keys and balances against a real server."""

from __future__ import annotations

import pytest
from deepgram import BadRequestError
from deepgram.core.api_error import ApiError

from app.kit.money import usd_to_micros
from app.tenancy import service
from tests.conftest import Database, SdkFactory, Tenant, make_tenant
from tests.tenancy.helpers import ingest


@pytest.fixture
def owner(db: Database) -> Tenant:
    return make_tenant(db, scopes=["admin"], name="Owner")


class TestProjectsWithSDK:
    def test_list_and_get(self, sdk: SdkFactory, db: Database, owner: Tenant) -> None:
        make_tenant(db, name="Other")
        projects = sdk(owner.key).manage.v1.projects
        listed = projects.list()
        assert [(p.project_id, p.name) for p in listed.projects] == [
            (str(owner.project_id), "Owner project")
        ]
        project = projects.get(str(owner.project_id), limit=10, page=0)
        assert (project.project_id, project.name, project.mip_opt_out) == (
            str(owner.project_id),
            "Owner project",
            False,
        )

    def test_errors_surface_as_sdk_errors(
        self, sdk: SdkFactory, db: Database, owner: Tenant
    ) -> None:
        other = make_tenant(db, name="Other")
        projects = sdk(owner.key).manage.v1.projects
        with pytest.raises(ApiError) as not_found:
            projects.get(str(other.project_id))
        assert not_found.value.status_code == 404
        assert not_found.value.body["err_code"] == "NOT_FOUND"
        with pytest.raises(BadRequestError) as bad:
            projects.get("not-a-uuid")
        assert bad.value.status_code == 400
        with pytest.raises(ApiError) as unauthorized:
            sdk("0" * 40).manage.v1.projects.list()
        assert unauthorized.value.status_code == 401


class TestKeysWithSDK:
    def test_create_get_list_delete(self, sdk: SdkFactory, owner: Tenant) -> None:
        keys = sdk(owner.key).manage.v1.projects.keys
        project_id = str(owner.project_id)
        created = keys.create(
            project_id,
            request={
                "comment": "ci key",
                "scopes": ["member"],
                "tags": ["ci"],
                "time_to_live_in_seconds": 3600,
            },
        )
        assert (created.comment, created.scopes, created.tags) == ("ci key", ["member"], ["ci"])
        assert created.expiration_date.tzinfo is not None
        assert len(created.key) == 40

        # The new key authenticates through the SdkFactory and sees its project.
        member_client = sdk(created.key)
        assert [p.project_id for p in member_client.manage.v1.projects.list().projects] == [
            project_id
        ]

        got = keys.get(project_id, created.api_key_id)
        api_key = got.item.member.api_key
        assert (api_key.api_key_id, api_key.comment, api_key.tags) == (
            created.api_key_id,
            "ci key",
            ["ci"],
        )
        assert api_key.expiration_date == created.expiration_date
        assert got.item.member.member_id == f"key:{owner.key_id}"

        listed = keys.list(project_id, status="active")
        assert {k.api_key.api_key_id for k in listed.api_keys} == {
            str(owner.key_id),
            created.api_key_id,
        }
        assert keys.list(project_id, status="expired").api_keys == []

        deleted = keys.delete(project_id, created.api_key_id)
        assert created.api_key_id in deleted.message
        with pytest.raises(ApiError) as revoked:
            member_client.manage.v1.projects.list()
        assert revoked.value.status_code == 401
        assert [k.api_key.api_key_id for k in keys.list(project_id).api_keys] == [str(owner.key_id)]

    def test_bad_create_and_escalation(self, sdk: SdkFactory, db: Database) -> None:
        grantor = make_tenant(db, scopes=["keys:write", "listen"])
        keys = sdk(grantor.key).manage.v1.projects.keys
        with pytest.raises(BadRequestError) as bad:
            keys.create(str(grantor.project_id), request={"comment": "", "scopes": ["listen"]})
        assert "comment" in bad.value.body["err_msg"]
        with pytest.raises(ApiError) as forbidden:
            keys.create(str(grantor.project_id), request={"comment": "x", "scopes": ["member"]})
        assert forbidden.value.status_code == 403
        made = keys.create(str(grantor.project_id), request={"comment": "x", "scopes": ["listen"]})
        assert made.scopes == ["listen"]


class TestBalancesWithSDK:
    def test_credit_minus_ingested_spend(
        self, sdk: SdkFactory, db: Database, tenant: Tenant
    ) -> None:
        with db.session() as session:
            service.update_contract(
                session,
                organization_id=tenant.org_id,
                actor="test",
                prepaid_credit_micros=usd_to_micros("50"),
            )
        # growth 0.0036 USD/min: 10 min opted in = 0.018; 5 min opted out = 0.018.
        ingest(db, tenant.project_id, 600.0)
        ingest(db, tenant.project_id, 300.0, opt_out=True)
        balances = sdk(tenant.key).manage.v1.projects.billing.balances
        listed = balances.list(str(tenant.project_id))
        assert len(listed.balances) == 1
        balance = listed.balances[0]
        assert (balance.balance_id, balance.amount, balance.units) == (
            str(tenant.org_id),
            49.964,
            "usd",
        )
        one = balances.get(str(tenant.project_id), balance.balance_id)
        assert (one.balance_id, one.amount, one.purchase_order_id) == (
            str(tenant.org_id),
            49.964,
            "",
        )
        with pytest.raises(ApiError) as missing:
            balances.get(str(tenant.project_id), str(tenant.project_id))
        assert missing.value.status_code == 404
