"""Deterministic fractional sampling, rates, the opt-out guarantee, and the KMS provider."""

from __future__ import annotations

import math
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from app.ledger.schemas import LedgerEventIn
from app.ledger.service import ingest_batch
from app.samples.sampling import (
    SamplingConfig,
    SamplingDecision,
    SamplingPolicy,
    SamplingScorer,
    sampling_score,
)
from app.tables import LedgerEntry, Sample
from tests.conftest import Database, S3Endpoint, make_tenant
from tests.samples.conftest import (
    T0,
    Service,
    build_service,
    make_settings,
    mip,
    transcript_of,
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
                opted_out=opted_out,
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
        with service.db.session() as session:
            session.execute(
                update(LedgerEntry)
                .where(LedgerEntry.request_id == "a-0")
                .values(sample_selected=True)
            )
        tampered = mip("store", "audit-sampling", "--json")
        assert tampered.exit_code == 1
        assert orjson.loads(tampered.stdout)["mismatches"][0]["request_id"] == "a-0"


@pytest.fixture
def kms_service(db: Database, tmp_path: Path, s3_endpoint: S3Endpoint) -> Iterator[Service]:
    key_id = s3_endpoint.client("kms").create_key()["KeyMetadata"]["KeyId"]
    settings = make_settings(
        db,
        tmp_path,
        key_provider="aws-kms",
        kms_key_id=key_id,
        kms_endpoint_url=s3_endpoint.url,
        s3_region=s3_endpoint.region,
    )
    yield from build_service(db, settings)


class TestKmsProvider:
    def test_samples_round_trip_with_data_keys_wrapped_by_kms(
        self, kms_service: Service, speech: bytes
    ) -> None:
        sample = kms_service.keep("kms-1", speech)
        url = f"/v1/governance/samples/{sample['id']}/audio"
        assert kms_service.client.get(url, headers=kms_service.admin).content == speech
        assert kms_service.store.keys.name == "aws-kms"


def _plaintext_hits(root: Path, needles: list[bytes], since: float) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        try:
            if not path.is_file() or path.stat().st_mtime < since:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if any(n in data for n in needles):
            hits.append(str(path))
    return hits


@pytest.fixture
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory as tempfile's default, so a scan sees only this test's files."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


class TestOptOutNeverStored:
    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        st.lists(
            st.tuples(st.sampled_from([None, "true", "false", "1", "0", "TRUE"]), st.booleans()),
            min_size=1,
            max_size=6,
        )
    )
    def test_random_request_streams(
        self,
        service: Service,
        speech: bytes,
        private_tempdir: Path,
        stream: list[tuple[str | None, bool]],
    ) -> None:
        assert tempfile.gettempdir() == str(private_tempdir)
        started = time.time() - 1
        kept_before = service.object_count()
        expected_kept = 0
        for opt_out, failed in stream:
            request_id = f"h-{uuid.uuid4().hex[:10]}"
            service.record(request_id, opt_out=opt_out, status=500 if failed else 200)
            # Opted-out audio carries a marker that must never reach a disk.
            marker = f"OPTED-OUT-{request_id}".encode()
            audio = speech + marker if opt_out in ("true", "1", "TRUE") else speech
            response = service.post_sample(
                request_id, audio, transcript=transcript_of(request_id) + b" "
            )
            allowed = opt_out not in ("true", "1", "TRUE") and not failed
            assert response.status_code == (201 if allowed else 409), response.text
            expected_kept += allowed
        assert service.object_count() == kept_before + 2 * expected_kept
        needles = [b"OPTED-OUT-", speech[2000:2064]]
        # tempfile's directory for this test only (see the fixture): whatever the service
        # spooled would be there, and nothing else is.
        roots = [Path(tempfile.gettempdir())]
        if service.blob_root is not None:
            roots.append(service.blob_root)
        settings_dir = service.app.state.settings.data_dir
        roots.append(Path(settings_dir))
        if service.db.backend == "sqlite":
            # The database file itself (and its WAL): metadata only, never audio.
            roots.append(Path(str(make_url(service.db.url).database)).parent)
        for root in roots:
            if root.exists():
                assert _plaintext_hits(root, needles, started) == [], root
        with service.db.session() as session:
            kept = session.scalar(select(func.count()).select_from(Sample))
        assert kept == (kept_before // 2) + expected_kept
