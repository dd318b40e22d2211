"""Key authentication and project authorization rules (service level)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.kit.auth import Role, Scope, hash_api_key
from app.kit.errors import Forbidden, NotFound, Unauthorized
from app.tables import ApiKey
from app.tenancy import service
from app.tenancy.auth import authenticate, authorize_project
from tests.conftest import Database, Tenant, make_tenant
from tests.kit.test_http import assert_error


class TestAuthenticate:
    def test_token_and_bearer_schemes(self, db: Database, tenant: Tenant) -> None:
        with db.session() as session:
            for header in (
                f"Token {tenant.key}",
                f"bearer {tenant.key}",
                f"  TOKEN   {tenant.key} ",
            ):
                principal = authenticate(session, header)
                assert principal.project_id == tenant.project_id
                assert principal.organization_id == tenant.org_id
                assert Scope.LISTEN in principal.scopes
                assert Scope.KEYS_WRITE not in principal.scopes

    @pytest.mark.parametrize("header", [None, "", "Token", "Basic abc", "Token nope", "abc"])
    def test_missing_or_bad_is_401(self, db: Database, tenant: Tenant, header: str | None) -> None:
        with db.session() as session, pytest.raises(Unauthorized):
            authenticate(session, header)

    def test_revoked_key_is_401(self, db: Database, tenant: Tenant) -> None:
        with db.session() as session:
            key = session.get(ApiKey, tenant.key_id)
            assert key is not None
            service.revoke_key(session, key=key, actor="test")
        with db.session() as session, pytest.raises(Unauthorized):
            authenticate(session, f"Token {tenant.key}")

    def test_expired_key_is_401(self, db: Database, tenant: Tenant) -> None:
        with db.session() as session:
            key = session.get(ApiKey, tenant.key_id)
            assert key is not None
            key.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        with db.session() as session, pytest.raises(Unauthorized):
            authenticate(session, f"Token {tenant.key}")

    def test_only_the_hash_is_stored(self, db: Database, tenant: Tenant) -> None:
        with db.session() as session:
            stored = session.scalars(select(ApiKey).where(ApiKey.id == tenant.key_id)).one()
        assert stored.key_hash == hash_api_key(tenant.key)
        assert tenant.key not in repr(stored.__dict__)

    def test_staff_key_has_role_and_no_tenant(self, db: Database) -> None:
        with db.session() as session:
            _key, secret = service.create_staff_key(session, role="auditor", actor="test")
        with db.session() as session:
            principal = authenticate(session, f"Token {secret}")
        assert principal.role is Role.AUDITOR
        assert principal.project_id is None
        assert secret not in repr(principal)


class TestAuthorizeProject:
    def test_other_tenants_project_is_404(self, db: Database, tenant: Tenant) -> None:
        other = make_tenant(db, name="Other")
        with db.session() as session:
            principal = authenticate(session, f"Token {tenant.key}")
            with pytest.raises(NotFound):
                authorize_project(session, principal, other.project_id, Scope.USAGE_READ)
            with pytest.raises(NotFound):
                authorize_project(session, principal, uuid.uuid4(), Scope.USAGE_READ)

    def test_missing_scope_is_403(self, db: Database) -> None:
        listen_only = make_tenant(db, scopes=["listen"])
        with db.session() as session:
            principal = authenticate(session, f"Token {listen_only.key}")
            assert authorize_project(session, principal, listen_only.project_id, Scope.LISTEN)
            with pytest.raises(Forbidden):
                authorize_project(session, principal, listen_only.project_id, Scope.USAGE_READ)

    @pytest.mark.parametrize(
        ("role", "scope", "allowed"),
        [
            ("admin", Scope.KEYS_WRITE, True),
            ("billing", Scope.USAGE_READ, True),
            ("billing", Scope.KEYS_WRITE, False),
            ("auditor", Scope.KEYS_READ, False),  # keys are not audit evidence
            ("auditor", Scope.USAGE_READ, True),
            ("dataops", Scope.USAGE_READ, False),
            ("admin", Scope.LISTEN, False),
        ],
    )
    def test_staff_roles(
        self, db: Database, tenant: Tenant, role: str, scope: Scope, allowed: bool
    ) -> None:
        with db.session() as session:
            _key, secret = service.create_staff_key(session, role=role, actor="test")
            principal = authenticate(session, f"Token {secret}")
            if allowed:
                project = authorize_project(session, principal, tenant.project_id, scope)
                assert project.id == tenant.project_id
            else:
                with pytest.raises(Forbidden):
                    authorize_project(session, principal, tenant.project_id, scope)


class TestLastAdminKey:
    def test_the_last_admin_key_cannot_be_revoked(self, db: Database) -> None:
        with db.session() as session:
            only, _secret = service.create_staff_key(session, role="admin", actor="test")
        with db.session() as session:
            key = session.get(ApiKey, only.id)
            assert key is not None
            with pytest.raises(service.LastAdminKey, match="last working admin"):
                service.revoke_key(session, key=key, actor="test")
        with db.session() as session:
            service.create_staff_key(session, role="admin", actor="test")
            key = session.get(ApiKey, only.id)
            assert key is not None
            service.revoke_key(session, key=key, actor="test")  # another admin key works
            assert key.revoked_at is not None

    def test_expired_admin_keys_do_not_count(self, db: Database) -> None:
        with db.session() as session:
            live, _ = service.create_staff_key(session, role="admin", actor="test")
            stale, _ = service.create_staff_key(session, role="admin", actor="test")
            stale.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        with db.session() as session:
            key = session.get(ApiKey, live.id)
            assert key is not None
            with pytest.raises(service.LastAdminKey):
                service.revoke_key(session, key=key, actor="test")

    def test_over_http_it_is_a_409(self, db: Database, client: TestClient) -> None:
        with db.session() as session:
            only, secret = service.create_staff_key(session, role="admin", actor="test")
        response = client.post(
            f"/v1/governance/keys/{only.id}/revoke", headers={"Authorization": f"Token {secret}"}
        )
        assert_error(response, 409, "CONFLICT")
        assert client.get(
            "/v1/governance/organizations", headers={"Authorization": f"Token {secret}"}
        ).is_success
