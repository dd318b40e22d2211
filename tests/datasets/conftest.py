"""A sample store filled with distinct espeak-ng utterances carrying skewed attributes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Database, make_staff_key
from tests.samples.conftest import Service, build_service, make_settings
from tests.samples.conftest import cli_env as samples_cli_env
from tests.speech import synth_speech

WORDS = (
    "the patient needs rest",
    "take two tablets daily",
    "blood pressure is normal",
    "see the doctor tomorrow",
    "the clinic opens at nine",
    "drink plenty of water",
)
VOICES = {"us": "en-us", "rp": "en-gb-x-rp", "scottish": "en-gb-scotland"}


def speech_for(index: int, accent: str) -> tuple[bytes, str]:
    """Distinct audio per index (different words or speed), and what is said."""
    text = WORDS[index % len(WORDS)]
    speed = 140 + 7 * (index // len(WORDS))
    return synth_speech(text, voice=VOICES[accent], speed=speed), text


def served_transcript(request_id: str, text: str) -> bytes:
    return orjson.dumps(
        {
            "metadata": {"request_id": request_id},
            "results": {"channels": [{"alternatives": [{"transcript": text}]}]},
        }
    )


@dataclass
class Catalog:
    service: Service
    dataops: dict[str, str]
    ids: dict[str, list[str]] = field(default_factory=dict)  # accent -> sample ids

    def keep(
        self,
        request_id: str,
        *,
        index: int,
        accent: str,
        sex: str = "female",
        domain: str = "medical",
        audio: bytes | None = None,
        text: str | None = None,
        tenant: Any = None,
    ) -> str:
        sound, said = speech_for(index, accent)
        body = self.service.keep(
            request_id,
            audio if audio is not None else sound,
            tenant=tenant,
            attributes={"accent": accent, "sex": sex, "domain": domain, "age_group": "adult"},
            transcript=served_transcript(request_id, text if text is not None else said),
        )
        sample_id: str = body["id"]
        self.ids.setdefault(accent, []).append(sample_id)
        return sample_id

    def build(self, **body: Any) -> Any:
        payload = {"name": "medical-en", "balance": ["accent"], "hours": 1.0, **body}
        return self.service.client.post(
            "/v1/governance/datasets", json=payload, headers=self.dataops
        )


@pytest.fixture
def service(db: Database, tmp_path: Path) -> Iterator[Service]:
    yield from build_service(db, make_settings(db, tmp_path))


cli_env = samples_cli_env  # the CLI sees the service's database and store


@pytest.fixture
def catalog(service: Service) -> Catalog:
    """16 US, 4 RP and 4 Scottish samples (distinct audio), all opted in and medical."""
    cat = Catalog(service=service, dataops=make_staff_key(service.db, "dataops"))
    counts = {"us": 16, "rp": 4, "scottish": 4}
    for accent, n in counts.items():
        for i in range(n):
            cat.keep(f"{accent}-{i}-{uuid.uuid4().hex[:6]}", index=i, accent=accent)
    return cat
