"""The opt-out guarantee end to end: an opted-out request leaves nothing of its content anywhere.

Many requests, each with audio of its own (distinct bytes) and a transcript of its own (a
keyterm makes the untrained model repeat a chosen word), opted out every accepted way, next to
opted-in ones that the sampler keeps (rate 1.0). Afterwards the blob store, the service's data
directory, the SQLite file (and its WAL), every row of every table, a private temp directory
and the logs are searched for the opted-out audio bytes and transcript words: nothing.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import soundfile as sf
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.kit.db import Base
from app.kit.logging import JSONFormatter
from tests.conftest import Database, make_staff_key
from tests.listen.conftest import Listen, Serve, contract_opted_out_tenant

# (query, via contract, keyterm): every way to opt out, each with its own word.
OPTED_OUT = [
    ("mip_opt_out=true", False, "quokka"),
    ("mip_opt_out=1", False, "narwhal"),
    ("mip_opt_out=TRUE", False, "axolotl"),
    ("mip_opt_out=True&punctuate=true&utterances=true", False, "wombat"),
    ("", True, "pangolin"),
    ("mip_opt_out=false", True, "platypus"),
]
OPTED_IN = [("", "ocelot"), ("mip_opt_out=false", "tapir")]


@pytest.fixture
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory as tempfile's default, so a scan sees only this test's files."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    monkeypatch.setenv("TMPDIR", str(directory))
    return directory


def distinct_wav(samples: np.ndarray[Any, Any], rate: int, index: int) -> tuple[bytes, bytes]:
    """WAV bytes of ``samples`` at a gain of its own, and 64 of its loudest bytes (the needle)."""
    scaled = samples * (0.5 + 0.04 * index)
    buffer = io.BytesIO()
    sf.write(buffer, scaled, rate, format="WAV", subtype="PCM_16")
    wav = buffer.getvalue()
    loudest = 44 + 2 * int(np.argmax(np.abs(scaled)))  # the 44-byte header, then 2 bytes each
    needle = wav[loudest - 32 : loudest + 32]
    assert wav.count(needle) == 1
    return wav, needle


class LogLines(logging.Handler):
    """Every record of the process, formatted the way the service writes its log lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JSONFormatter())
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, self.format(record)))


@pytest.fixture
def sampling_api(serve: Serve) -> Listen:
    """The service keeping every opted-in request (rate 1.0)."""
    return serve(sampling_rate=1.0)


@pytest.fixture
def service_log(sampling_api: Listen) -> Iterator[LogLines]:
    """Records at DEBUG; after the app started, because its logging setup replaces root's
    handlers."""
    root = logging.getLogger()
    handler, level = LogLines(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.setLevel(level)
        root.removeHandler(handler)


def plaintext_hits(root: Path, needles: list[bytes]) -> list[str]:
    hits: list[str] = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits.extend(f"{path}: {n[:16]!r}" for n in needles if n in data)
    return hits


def database_dump(db: Database) -> bytes:
    """Every value of every row of every table, as bytes (both backends)."""
    parts: list[bytes] = []
    with db.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                for value in row:
                    parts.append(value if isinstance(value, bytes) else repr(value).encode())
    return b"\n".join(parts)


class TestOptedOutContentIsNeverStored:
    def test_many_requests_every_way_of_opting_out(
        self,
        private_tempdir: Path,  # first: tempfile points there before the service starts
        sampling_api: Listen,
        db: Database,
        speech_samples: tuple[np.ndarray[Any, Any], int],
        service_log: LogLines,
    ) -> None:
        api, log = sampling_api, service_log
        contract = contract_opted_out_tenant(db)
        samples, rate = speech_samples
        audio_needles: list[bytes] = []
        words: list[bytes] = []
        for index, (query, via_contract, term) in enumerate(OPTED_OUT):
            audio, needle = distinct_wav(samples, rate, index)
            full_query = f"keyterm={term}&{query}" if query else f"keyterm={term}"
            headers = contract.headers if via_contract else api.tenant.headers
            response = api.post(audio, full_query, headers=headers)
            assert response.status_code == 200, response.text
            transcript = response.json()["results"]["channels"][0]["alternatives"][0]
            # The needle words really are in the transcript the service produced.
            assert f"{term} {term}" in transcript["transcript"].lower(), transcript
            audio_needles.append(needle)
            words.append(term.encode())
        # Opted out but failing after the audio was read: nothing either.
        audio, needle = distinct_wav(samples, rate, len(OPTED_OUT))
        failed = api.post(audio, "mip_opt_out=true&model=nova")
        assert failed.status_code == 400
        audio_needles.append(needle)

        kept: list[tuple[str, bytes, str]] = []
        for index, (query, term) in enumerate(OPTED_IN, start=len(OPTED_OUT) + 1):
            audio, _ = distinct_wav(samples, rate, index)
            response = api.post(audio, f"keyterm={term}&{query}" if query else f"keyterm={term}")
            assert response.status_code == 200, response.text
            kept.append((response.headers["dg-request-id"], audio, term))

        # The sampler was on: exactly the opted-in requests were kept (encrypted).
        rows = api.ledger()
        assert len(rows) == len(OPTED_OUT) + 1 + len(OPTED_IN)
        assert sorted(r.request_id for r in rows if r.sample_kept) == sorted(k[0] for k in kept)
        assert all(r.mip_opt_out for r in rows[: len(OPTED_OUT) + 1])
        samples_kept = api.samples()
        assert sorted(s.request_id for s in samples_kept) == sorted(k[0] for k in kept)
        assert len(api.blob_files()) == 2 * len(kept)

        needles = audio_needles + words
        roots = [private_tempdir, api.blob_root, Path(api.settings.data_dir)]
        if db.backend == "sqlite":
            roots.append(Path(str(make_url(db.url).database)).parent)  # file, WAL and SHM
        for root in roots:
            assert plaintext_hits(root, needles) == [], root
        dump = database_dump(db)
        assert b"keyterm" in dump  # the ledger's features column: the scan sees the rows
        assert [n for n in needles if n in dump] == []
        # Nothing outlived the requests in the temp directory.
        assert list(private_tempdir.iterdir()) == []
        # The service's logs, as it writes them (at DEBUG): no content in any line. The test
        # client's own "httpx2" records show the query string it sent; they are no service's.
        lines = [line for name, line in log.lines if not name.startswith(("httpx", "httpcore"))]
        assert any('"logger":"mip.http"' in line for line in lines)
        for term in [t.decode() for t in words]:
            assert [line for line in lines if term in line] == []

        # The kept (opted-in) samples are readable by dataops, and nowhere in plaintext.
        dataops = make_staff_key(db, "dataops")
        by_request = {s.request_id: s for s in samples_kept}
        for request_id, audio, term in kept:
            url = f"/v1/governance/samples/{by_request[request_id].id}"
            assert api.client.get(f"{url}/audio", headers=dataops).content == audio
            transcript = orjson.loads(api.client.get(f"{url}/transcript", headers=dataops).content)
            assert transcript["metadata"]["request_id"] == request_id
            assert (
                f"{term} {term}"
                in transcript["results"]["channels"][0]["alternatives"][0]["transcript"]
            )
            assert plaintext_hits(api.blob_root, [term.encode()]) == []
