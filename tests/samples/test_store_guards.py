"""The sample store's guarantees end to end: opted-out audio never reaches a disk, and data
keys wrapped by KMS work like local ones."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.tables import Sample
from tests.conftest import Database, S3Endpoint
from tests.samples.conftest import Service, build_service, make_settings, transcript_of


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
