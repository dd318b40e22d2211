"""Deterministic fractional sampling, rates and the sampling audit."""

from __future__ import annotations

import math
import uuid

import orjson
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from app.consent.service import resolve_opt_out
from app.ledger.schemas import LedgerEventIn
from app.ledger.service import ingest_batch
from app.sampling.policy import (
    SamplingConfig,
    SamplingDecision,
    SamplingPolicy,
    SamplingScorer,
    sampling_score,
)
from app.tables import LedgerEntry
from tests.conftest import Database, make_tenant
from tests.ledger.helpers import as_database_owner
from tests.samples.conftest import (
    T0,
    Service,
    mip,
)

SECRET = b"a sampling secret for tests"


class TestDecision:
    def test_score_is_a_pure_function_of_secret_and_request_id(self) -> None:
        assert sampling_score(SECRET, "r-1") == sampling_score(SECRET, "r-1")
        assert sampling_score(SECRET, "r-1") != sampling_score(b"another", "r-1")
        scores = [sampling_score(SECRET, f"r-{i}") for i in range(20_000)]
        assert all(0.0 <= s < 1.0 for s in scores)
        # Uniform: each tenth of [0, 1) holds about 2,000 (4 sigma ≈ 170).
        counts = [sum(1 for s in scores if i / 10 <= s < (i + 1) / 10) for i in range(10)]
        assert all(abs(c - 2000) < 170 for c in counts), counts

    @given(
        secret=st.one_of(st.binary(max_size=200), st.sampled_from([SECRET, b"k" * 64, b"k" * 65])),
        request_id=st.text(max_size=200),
    )
    def test_batch_scorer_is_the_same_hmac(self, secret: bytes, request_id: str) -> None:
        # The ledger's hot loop scores with SamplingScorer; audits recompute with
        # sampling_score (hmac.new): both must give the same score for every secret length.
        assert SamplingScorer(secret)(request_id) == sampling_score(secret, request_id)

    def test_most_specific_rate_wins(self) -> None:
        org, other = uuid.uuid4(), uuid.uuid4()
        policy = SamplingPolicy(
            SamplingConfig(SECRET, 0.05),
            {(org, "nova"): 0.9, (org, None): 0.5, (None, "nova"): 0.2},
        )
        assert policy.rate_for(org, "nova") == 0.9
        assert policy.rate_for(org, "general") == 0.5
        assert policy.rate_for(other, "nova") == 0.2
        assert policy.rate_for(other, "general") == 0.05

    def test_opted_out_and_failed_requests_are_never_candidates(self) -> None:
        policy = SamplingPolicy(SamplingConfig(SECRET, 1.0), {})
        org = uuid.uuid4()

        def decide(opted_out: bool, status: int) -> SamplingDecision:
            return policy.decide(
                organization_id=org,
                model_name="general",
                request_id="r",
                opt_out=resolve_opt_out(opted_out, contract_opt_out=False),
                http_status=status,
            )

        assert decide(True, 200).selected is False
        assert decide(False, 500).rate is None
        assert decide(False, 200).selected is True


class TestKeptFraction:
    def test_selected_share_is_within_tolerance_of_the_rate(self, db: Database) -> None:
        tenant = make_tenant(db)
        rate, n = 0.1, 3000
        events = [
            LedgerEventIn(
                request_id=f"frac-{i}",
                project_id=tenant.project_id,
                created=T0,
                model="general",
                duration=1.0,
                mip_opt_out=(i % 4 == 0),
            )
            for i in range(n)
        ]
        with db.session() as session:
            ingest_batch(session, events, sampling=SamplingConfig(SECRET, rate))
        with db.session() as session:
            candidates = session.scalar(
                select(func.count()).where(LedgerEntry.mip_opt_out.is_(False))
            )
            selected = session.scalar(
                select(func.count()).where(LedgerEntry.sample_selected.is_(True))
            )
            opted_out_selected = session.scalar(
                select(func.count()).where(
                    LedgerEntry.sample_selected.is_(True), LedgerEntry.mip_opt_out.is_(True)
                )
            )
        assert candidates == 2250
        sigma = math.sqrt(candidates * rate * (1 - rate))
        assert abs(selected - candidates * rate) < 4 * sigma, selected
        assert opted_out_selected == 0


class TestRates:
    def test_set_list_delete_and_bad_input(self, service: Service) -> None:
        url = "/v1/governance/sampling-rates"
        body = {"organization_id": str(service.tenant.org_id), "model": "nova", "rate": 0.25}
        created = service.client.put(url, json=body, headers=service.admin)
        assert created.status_code == 200, created.text
        replaced = service.client.put(url, json={**body, "rate": 0.5}, headers=service.admin)
        assert replaced.json()["id"] == created.json()["id"]
        listed = service.client.get(url, headers=service.admin).json()
        assert listed["default_rate"] == 1.0
        assert [r["rate"] for r in listed["rates"]] == [0.5]
        for bad, status in (
            ({"rate": 0.5}, 400),
            ({"model": "nova", "rate": 1.5}, 400),
            ({"model": "nova", "rate": "lots"}, 400),
            ({"organization_id": str(uuid.uuid4()), "rate": 0.5}, 404),
        ):
            assert service.client.put(url, json=bad, headers=service.admin).status_code == status
        assert service.client.put(url, json=body, headers=service.tenant.headers).status_code == 403
        rate_id = created.json()["id"]
        assert service.client.delete(f"{url}/{rate_id}", headers=service.admin).status_code == 204
        assert service.client.delete(f"{url}/{rate_id}", headers=service.admin).status_code == 404

    def test_audit_sampling_recomputes_every_decision(
        self, service: Service, cli_env: object
    ) -> None:
        for i in range(20):
            service.record(f"a-{i}", opt_out="true" if i % 3 == 0 else None)
        result = mip("store", "audit-sampling", "--json")
        assert result.exit_code == 0, result.output
        report = orjson.loads(result.stdout)
        assert (report["ledger_rows"], report["selected"]) == (20, 13)
        with as_database_owner(service.db), service.db.session() as session:
            session.execute(
                update(LedgerEntry)
                .where(LedgerEntry.request_id == "a-0")
                .values(sample_selected=True)
            )
        tampered = mip("store", "audit-sampling", "--json")
        assert tampered.exit_code == 1
        assert orjson.loads(tampered.stdout)["mismatches"][0]["request_id"] == "a-0"
