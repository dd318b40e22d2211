"""The official clients against a live server: ``deepgram-sdk`` transcribes, and
``deepgram-captions`` turns its response into WebVTT and SRT cues that match the words."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from deepgram.core.api_error import ApiError
from deepgram.types.listen_v1response import ListenV1Response
from deepgram_captions import DeepgramConverter, srt, webvtt
from sqlalchemy import select

from app.kit.settings import Settings
from app.tables import LedgerEntry
from tests.conftest import Database, SdkFactory, Tenant
from tests.listen.conftest import (
    MODEL_NAME,
    MODEL_UUID,
    MODEL_VERSION,
    NO_SUCH_MODEL,
    listen_settings,
)

# ``client.listen.v1``, first touched, imports the SDK's websocket client, which uses names
# that websockets deprecates: third-party warnings this project cannot fix.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:websockets.exceptions.InvalidStatusCode is deprecated:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
]

CUE_TIME = r"(\d\d):(\d\d):(\d\d)[.,](\d{3})"
CUE_LINE = re.compile(rf"^{CUE_TIME} --> {CUE_TIME}$")


def ledger(db: Database) -> list[LedgerEntry]:
    with db.session() as session:
        return list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.created_at)))


def seconds(hours: str, minutes: str, secs: str, millis: str) -> float:
    return int(hours) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000


def cues(document: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of a WebVTT or SRT document (one text line per cue)."""
    lines = document.splitlines()
    found = []
    for index, line in enumerate(lines):
        match = CUE_LINE.match(line)
        if match:
            groups = match.groups()
            found.append((seconds(*groups[:4]), seconds(*groups[4:]), lines[index + 1]))
    return found


def as_dict(response: ListenV1Response) -> dict[str, Any]:
    # deepgram-captions calls .to_json() on objects, which SDK v7 models lack: hand it the dict.
    body: dict[str, Any] = response.model_dump(mode="json", exclude_none=True)
    return body


class TestTranscribeFile:
    def test_opted_out_and_opted_in_requests(
        self, sdk: SdkFactory, tenant: Tenant, db: Database, speech: bytes
    ) -> None:
        media = sdk(tenant.key).listen.v1.media
        opted_out = media.transcribe_file(request=speech, mip_opt_out=True, model="general")
        opted_in = media.transcribe_file(
            request=speech, mip_opt_out=False, model="general", tag=["sdk", "v7"], language="en"
        )

        for response in (opted_out, opted_in):
            assert isinstance(response, ListenV1Response)
            metadata = response.metadata
            assert metadata.sha256 == hashlib.sha256(speech).hexdigest()
            assert metadata.models == [MODEL_UUID]
            assert metadata.model_info[MODEL_UUID] == {
                "name": MODEL_NAME,
                "version": MODEL_VERSION,
                "arch": "ctcconv",
            }
            assert metadata.duration == pytest.approx(3.2, abs=0.5)
            alternatives = response.results.channels[0].alternatives
            assert alternatives is not None
            words = alternatives[0].words
            assert words
            assert all(0 <= w.start <= w.end <= metadata.duration for w in words)  # type: ignore[operator]
        assert opted_out.metadata.request_id != opted_in.metadata.request_id

        rows = ledger(db)
        assert [r.request_id for r in rows] == [
            opted_out.metadata.request_id,
            opted_in.metadata.request_id,
        ]
        assert [(r.mip_opt_out, r.opt_out_source, r.discount_bps) for r in rows] == [
            (True, "request", 0),
            (False, "request", 5000),
        ]
        assert [(r.http_status, r.model_uuid, r.api_key_id) for r in rows] == [
            (200, MODEL_UUID, tenant.key_id)
        ] * 2
        assert rows[1].tags == ["sdk", "v7"]
        assert rows[1].language == "en"

    def test_errors_reach_the_sdk_as_api_errors(
        self, sdk: SdkFactory, tenant: Tenant, db: Database, speech: bytes
    ) -> None:
        media = sdk(tenant.key).listen.v1.media
        with pytest.raises(ApiError) as no_model:
            media.transcribe_file(request=speech, model="nova-3", mip_opt_out=True)
        assert no_model.value.status_code == 400
        assert no_model.value.body["err_msg"] == NO_SUCH_MODEL
        with pytest.raises(ApiError) as refused:
            media.transcribe_file(request=speech, diarize=True)
        assert refused.value.body["err_msg"] == (
            "diarize requires the 'diarizer' model, which is not installed."
        )
        with pytest.raises(ApiError) as unauthorized:
            sdk("0" * 40).listen.v1.media.transcribe_file(request=speech)
        assert unauthorized.value.status_code == 401
        assert [(r.http_status, r.mip_opt_out) for r in ledger(db)] == [
            (400, True),
            (400, False),
        ]


class TestCaptions:
    @pytest.fixture
    def response(self, sdk: SdkFactory, tenant: Tenant, speech: bytes) -> ListenV1Response:
        # A keyterm makes the untrained model say "fox" about 20 times: several cues' worth.
        result = sdk(tenant.key).listen.v1.media.transcribe_file(
            request=speech, keyterm="fox", punctuate=True, mip_opt_out=True
        )
        assert isinstance(result, ListenV1Response)
        return result

    @staticmethod
    def expected(body: dict[str, Any], line_length: int) -> list[tuple[float, float, str]]:
        words = body["results"]["channels"][0]["alternatives"][0]["words"]
        chunks = [words[i : i + line_length] for i in range(0, len(words), line_length)]
        return [
            (c[0]["start"], c[-1]["end"], " ".join(w["punctuated_word"] for w in c)) for c in chunks
        ]

    def test_webvtt_cues_follow_the_words(self, response: ListenV1Response) -> None:
        body = as_dict(response)
        document = webvtt(DeepgramConverter(body))

        assert document.startswith("WEBVTT\n\nNOTE\nTranscription provided by Deepgram\n")
        assert f"Request Id: {response.metadata.request_id}" in document
        expected = self.expected(body, 8)
        assert len(expected) >= 2
        got = cues(document)
        assert [text for _, _, text in got] == [text for _, _, text in expected]
        assert got[0][2].startswith("Fox fox")
        assert got[-1][2].endswith("fox.")
        for (start, end, _), (want_start, want_end, _) in zip(got, expected, strict=True):
            assert start == pytest.approx(want_start, abs=0.0015)
            assert end == pytest.approx(want_end, abs=0.0015)

    def test_srt_cues_follow_the_words(self, response: ListenV1Response) -> None:
        body = as_dict(response)
        document = srt(DeepgramConverter(body), line_length=5)

        expected = self.expected(body, 5)
        got = cues(document)
        assert len(got) == len(expected) >= 3
        assert document.splitlines()[0] == "1"
        assert [text for _, _, text in got] == [text for _, _, text in expected]
        for (start, end, _), (want_start, want_end, _) in zip(got, expected, strict=True):
            assert start == pytest.approx(want_start, abs=0.0015)
            assert end == pytest.approx(want_end, abs=0.0015)

    def test_utterances_drive_the_cues_when_present(
        self, sdk: SdkFactory, tenant: Tenant, speech: bytes
    ) -> None:
        result = sdk(tenant.key).listen.v1.media.transcribe_file(
            request=speech, keyterm="fox", utterances=True, utt_split=0.05, mip_opt_out=True
        )
        assert isinstance(result, ListenV1Response)
        body = as_dict(result)
        utterances = body["results"]["utterances"]
        assert len(utterances) >= 2
        got = cues(webvtt(DeepgramConverter(body), line_length=50))
        assert [text for _, _, text in got] == [u["transcript"] for u in utterances]
        for (start, end, _), utterance in zip(got, utterances, strict=True):
            assert start == pytest.approx(utterance["start"], abs=0.0015)
            assert end == pytest.approx(utterance["end"], abs=0.0015)


class TestOperatorAliases:
    """An operator maps the provider's model names onto what is installed (MIP_MODEL_ALIASES):
    application code asking for nova-3 then runs unchanged; without the table it is a 400."""

    @pytest.fixture
    def settings(
        self, db: Database, tmp_path: Path, models_dir: Path, installed_packages: list[Path]
    ) -> Settings:
        return listen_settings(db, tmp_path, models_dir, model_aliases={"nova-3": "general"})

    def test_nova_3_is_the_installed_general_model(
        self, sdk: SdkFactory, tenant: Tenant, db: Database, speech: bytes
    ) -> None:
        media = sdk(tenant.key).listen.v1.media
        result = media.transcribe_file(request=speech, model="nova-3", mip_opt_out=True)
        assert result.metadata.models == [MODEL_UUID]
        with pytest.raises(ApiError) as unknown:
            media.transcribe_file(request=speech, model="nova-2", mip_opt_out=True)
        assert unknown.value.body["err_msg"] == NO_SUCH_MODEL
        assert [(r.http_status, r.model_uuid) for r in ledger(db)] == [
            (200, MODEL_UUID),
            (400, None),
        ]
