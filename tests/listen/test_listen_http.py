"""``POST /v1/listen`` over HTTP: responses, ledger rows, parameters, models, samples, limits.

The tiny model is untrained: left alone it spells one long gibberish word, and a keyterm makes
it spell that term over and over ("fox fox fox …", one word every ~0.16 s) — which gives the
formatting tests real words to work on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import itertools
import socket
import struct
import threading
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from deepgram.types.listen_v1response import ListenV1Response
from fastapi import FastAPI
from sqlalchemy import select

from app.kit.settings import Settings
from app.listen.formatting import format_words, split_utterances, transcript_of
from app.listen.params import REFUSED
from app.tables import LedgerEntry
from asr.audio import decode, encode_wav
from asr.decode import Word
from tests.conftest import Database, Tenant, make_staff_key, make_tenant, wait_until
from tests.engine.conftest import make_package
from tests.listen.conftest import (
    MODEL_NAME,
    MODEL_UUID,
    MODEL_VERSION,
    NO_SUCH_MODEL,
    Listen,
    Serve,
    assert_error,
    contract_opted_out_tenant,
    listen_settings,
)
from tests.speech import mix_at_snr, white_noise

# Classes whose behaviour does not depend on the database run on SQLite only (time).
SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"], indirect=True)
MP3_TOLERANCE = 1152 / 22_050  # one MPEG frame of encoder delay (see tests/asr/test_audio.py)
FOX = "keyterm=fox"  # makes the untrained model say "fox" many times
NOT_AUDIO = "not a recognised audio file; accepted formats: WAV, FLAC, OGG (Vorbis or Opus), MP3"


def duration_of(speech_samples: tuple[Any, int]) -> float:
    samples, rate = speech_samples
    return len(samples) / rate


def check_transcription(
    response: Any, audio: bytes, *, duration: float, tolerance: float = 0.002
) -> dict[str, Any]:
    """A 200 whose body is the SDK's ListenV1Response for ``audio``; returns the body."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    parsed = ListenV1Response.model_validate(body)  # the official SDK's type, validated
    metadata = body["metadata"]
    assert parsed.metadata.request_id == metadata["request_id"] == response.headers["dg-request-id"]
    assert metadata["sha256"] == hashlib.sha256(audio).hexdigest()
    assert metadata["duration"] == pytest.approx(duration, abs=tolerance)
    assert metadata["channels"] == 1
    assert metadata["models"] == [MODEL_UUID]
    assert metadata["model_info"] == {
        MODEL_UUID: {"name": MODEL_NAME, "version": MODEL_VERSION, "arch": "ctcconv"}
    }
    created = dt.datetime.fromisoformat(metadata["created"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 60
    alternative = body["results"]["channels"][0]["alternatives"][0]
    words = alternative["words"]
    assert words, "the model always emits something for 3 s of speech"
    for word in words:
        assert 0.0 <= word["start"] <= word["end"] <= metadata["duration"], word
        assert 0.0 <= word["confidence"] <= 1.0
        assert set(word) == {"word", "start", "end", "confidence", "punctuated_word"}
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert 0.0 <= alternative["confidence"] <= 1.0
    assert alternative["transcript"] == " ".join(w["punctuated_word"] for w in words)
    return body


def words_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    words: list[dict[str, Any]] = body["results"]["channels"][0]["alternatives"][0]["words"]
    return words


@SQLITE_ONLY
class TestTranscription:
    def test_wav_gives_the_sdk_response(
        self, api: Listen, speech: bytes, speech_samples: tuple[Any, int]
    ) -> None:
        bodies = []
        for content_type in ("audio/wav", "audio/x-wav; codec=1", "application/octet-stream", None):
            response = api.post(speech, content_type=content_type)
            bodies.append(
                check_transcription(response, speech, duration=duration_of(speech_samples))
            )
        words = words_of(bodies[0])
        # Untrained: lower-case letters only, no punctuation unless asked.
        assert all(w["word"] == w["punctuated_word"] for w in words)
        assert all(w["word"].isalpha() and w["word"].islower() for w in words)
        assert "utterances" not in bodies[0]["results"]
        assert "extra" not in bodies[0]["metadata"]
        # Same audio, same model: the same words every time; a new request id each time.
        assert all(b["results"] == bodies[0]["results"] for b in bodies)
        assert len({b["metadata"]["request_id"] for b in bodies}) == 4

    def test_flac_ogg_and_mp3_of_the_same_speech(
        self, api: Listen, encodings: dict[str, bytes], speech_samples: tuple[Any, int]
    ) -> None:
        duration = duration_of(speech_samples)
        for fmt, content_type in (
            ("flac", "audio/flac"),
            ("ogg", "audio/ogg"),
            ("mp3", "audio/mpeg"),
        ):
            tolerance = 0.002 + (MP3_TOLERANCE if fmt == "mp3" else 0.0)
            response = api.post(encodings[fmt], content_type=content_type)
            check_transcription(response, encodings[fmt], duration=duration, tolerance=tolerance)
        assert [row.http_status for row in api.ledger()] == [200, 200, 200]

    def test_last_word_ends_within_the_audio(
        self, api: Listen, speech: bytes, speech_samples: tuple[Any, int]
    ) -> None:
        # The model's last frame reaches past the audio's end; the response must not.
        body = check_transcription(
            api.post(speech, FOX), speech, duration=duration_of(speech_samples)
        )
        words = words_of(body)
        assert len(words) >= 5
        assert words[-1]["end"] == body["metadata"]["duration"]


@SQLITE_ONLY
class TestFormatting:
    def test_punctuate_capitalises_and_ends_with_a_full_stop(
        self, api: Listen, speech: bytes
    ) -> None:
        plain = words_of(api.post(speech, FOX).json())
        body = api.post(speech, f"{FOX}&punctuate=true").json()
        words = words_of(body)

        assert [w["word"] for w in words] == [w["word"] for w in plain]
        assert [w["punctuated_word"] for w in words] == (
            ["Fox"] + ["fox"] * (len(words) - 2) + ["fox."]
        )
        transcript = body["results"]["channels"][0]["alternatives"][0]["transcript"]
        assert transcript == "Fox " + "fox " * (len(words) - 2) + "fox."

    def test_smart_format_punctuates_the_same_way(self, api: Listen, speech: bytes) -> None:
        punctuated = api.post(speech, f"{FOX}&punctuate=true").json()
        smart = api.post(speech, f"{FOX}&smart_format=true").json()
        assert smart["results"] == punctuated["results"]

    def test_utterances_split_at_pauses(self, api: Listen, speech: bytes) -> None:
        body = api.post(speech, f"{FOX}&utterances=true&utt_split=0.05&punctuate=true").json()
        words = words_of(body)
        utterances = body["results"]["utterances"]

        # Gaps between the foxes are 0.04 to 0.08 s: a 0.05 s split cuts at the longer ones.
        gaps = [b["start"] - a["end"] for a, b in itertools.pairwise(words)]
        expected = 1 + sum(1 for gap in gaps if gap >= 0.05)
        assert 1 < len(utterances) == expected
        assert [w for u in utterances for w in u["words"]] == words
        for index, utterance in enumerate(utterances):
            assert utterance["id"] == f"{MODEL_UUID}-{index}"
            assert utterance["channel"] == 0
            assert utterance["start"] == utterance["words"][0]["start"]
            assert utterance["end"] == utterance["words"][-1]["end"]
            assert utterance["transcript"] == " ".join(
                w["punctuated_word"] for w in utterance["words"]
            )
            mean = sum(w["confidence"] for w in utterance["words"]) / len(utterance["words"])
            assert utterance["confidence"] == pytest.approx(mean, abs=1e-4)

    def test_one_utterance_without_long_pauses(self, api: Listen, speech: bytes) -> None:
        body = api.post(speech, f"{FOX}&utterances=true").json()
        (utterance,) = body["results"]["utterances"]
        assert utterance["words"] == words_of(body)

    def test_replace_swaps_and_deletes_whole_words(self, api: Listen, speech: bytes) -> None:
        foxes = words_of(api.post(speech, FOX).json())
        swapped = words_of(api.post(speech, f"{FOX}&replace=fox:cat").json())
        deleted = api.post(speech, f"{FOX}&replace=fox:").json()

        assert [w["word"] for w in swapped] == ["cat"] * len(foxes)
        assert [(w["start"], w["end"]) for w in swapped] == [(w["start"], w["end"]) for w in foxes]
        assert words_of(deleted) == []
        assert deleted["results"]["channels"][0]["alternatives"][0]["transcript"] == ""

    def test_extra_is_echoed_in_the_metadata(self, api: Listen, speech: bytes) -> None:
        body = api.post(speech, "extra=job:42&extra=team:ops").json()
        assert body["metadata"]["extra"] == {"job": "42", "team": "ops"}


def word(text: str, start: float, end: float, confidence: float = 0.5) -> Word:
    return Word(word=text, start=start, end=end, confidence=confidence)


class TestFormattingFunctions:
    """app.listen.formatting on hand-made words (the untrained model cannot say these)."""

    WORDS = (
        word("i'm", 0.0, 0.3),
        word("um", 0.4, 0.5),
        word("i", 0.6, 0.7),
        word("see", 1.9, 2.4),
    )

    def test_punctuation(self) -> None:
        formatted = format_words(self.WORDS, punctuate=True)
        assert [w.punctuated_word for w in formatted] == ["I'm", "um", "I", "see."]
        assert [w.word for w in formatted] == ["i'm", "um", "i", "see"]
        assert transcript_of(formatted, punctuate=True) == "I'm um I see."
        assert transcript_of(formatted, punctuate=False) == "i'm um i see"

    def test_replace_and_delete(self) -> None:
        formatted = format_words(self.WORDS, punctuate=True, replace=[("um", ""), ("see", "sea")])
        assert transcript_of(formatted, punctuate=True) == "I'm I sea."
        assert [(w.start, w.end) for w in formatted] == [(0.0, 0.3), (0.6, 0.7), (1.9, 2.4)]

    def test_timings_are_clamped_to_the_duration(self) -> None:
        formatted = format_words(
            [word("a", 0.0, 1.0), word("b", 2.04, 2.2)], punctuate=False, duration=2.0
        )
        assert [(w.start, w.end) for w in formatted] == [(0.0, 1.0), (2.0, 2.0)]

    def test_utterances_break_at_the_gap(self) -> None:
        formatted = format_words(self.WORDS, punctuate=False)
        utterances = split_utterances(formatted, gap=1.0, punctuate=False, model_uuid="m")
        assert [(u["id"], u["transcript"], u["start"], u["end"]) for u in utterances] == [
            ("m-0", "i'm um i", 0.0, 0.7),
            ("m-1", "see", 1.9, 2.4),
        ]
        assert split_utterances([], gap=1.0, punctuate=False, model_uuid="m") == []


class TestLedger:
    def test_a_success_writes_one_priced_row(
        self, api: Listen, speech: bytes, speech_samples: tuple[Any, int]
    ) -> None:
        query = "tag=visit-7&tag=ward&punctuate=true&keyterm=fox&language=en-US&utterances=false"
        response = api.post(speech, query)
        assert response.status_code == 200, response.text

        (row,) = api.ledger()
        assert row.request_id == response.headers["dg-request-id"]
        assert (row.project_id, row.api_key_id) == (api.tenant.project_id, api.tenant.key_id)
        assert (row.organization_id, row.endpoint, row.method) == (
            api.tenant.org_id,
            "/v1/listen",
            "sync",
        )
        assert (row.http_status, row.channels, row.language) == (200, 1, "en-US")
        assert row.duration_seconds == pytest.approx(duration_of(speech_samples), abs=1e-6)
        assert (row.model_name, row.model_uuid, row.model_version) == (
            MODEL_NAME,
            MODEL_UUID,
            MODEL_VERSION,
        )
        assert row.tags == ["visit-7", "ward"]
        assert row.features == ["keyterm", "punctuate"]
        assert (row.mip_opt_out, row.opt_out_source) == (False, "default")
        # Opted in: half price.
        assert row.discount_bps == 5000
        assert row.list_amount_micros > 0
        assert row.discount_micros + row.amount_micros == row.list_amount_micros
        assert row.amount_micros == pytest.approx(row.list_amount_micros / 2, abs=1)

    @pytest.mark.parametrize("declared", [0x7FFFFFFF, 0xFFFFFFFF])
    def test_a_wav_claiming_a_huge_data_chunk_is_billed_for_the_audio_it_holds(
        self, api: Listen, speech: bytes, speech_samples: tuple[Any, int], declared: int
    ) -> None:
        # Streaming writers put 0x7fffffff or 0xffffffff in the data chunk's size (and the
        # RIFF size) when they cannot seek back: the audio present is what is transcribed and
        # billed, never a guess from the header.
        at = speech.index(b"data") + 4
        size = struct.pack("<I", declared)
        claimed = speech[:4] + size + speech[8:at] + size + speech[at + 4 :]
        response = api.post(claimed)
        assert response.status_code == 200, response.text
        (row,) = api.ledger()
        expected = duration_of(speech_samples)
        assert row.duration_seconds == pytest.approx(expected, abs=1e-6)
        assert response.json()["metadata"]["duration"] == pytest.approx(expected, abs=1e-3)
        assert row.list_amount_micros > 0

    def test_every_failure_writes_one_row_with_its_status_and_nothing_else(
        self, serve: Serve, speech: bytes, encodings: dict[str, bytes]
    ) -> None:
        api = serve(
            sampling_rate=1.0, listen_max_audio_bytes=len(speech) - 1, max_active_requests=1
        )
        small = encodings["flac"]
        assert len(small) < len(speech)
        cases: list[tuple[int, str, str | None]] = []

        def expect(status: int, audio: bytes, query: str = "", **kwargs: Any) -> str:
            response = api.post(audio, query, **kwargs)
            message = assert_error(response, status)
            cases.append((status, response.headers["dg-request-id"], query or None))
            return message

        assert expect(400, b"RIFF, but not really a wave file") == NOT_AUDIO
        assert expect(400, small, "model=nova") == NO_SUCH_MODEL
        assert expect(400, small, "diarize=true") == (
            "diarize requires the 'diarizer' model, which is not installed."
        )
        assert expect(400, small, "mip_opt_out=yes").startswith("mip_opt_out must be")
        assert expect(413, speech) == f"Request body over {len(speech) - 1} bytes."
        assert expect(415, small, content_type="text/plain").startswith("Send audio as audio/*")
        limiter = api.app.state.listen_limiter
        limiter.acquire()
        try:
            assert expect(429, small, "tag=busy") == (
                "Too many concurrent requests (limit 1); retry shortly."
            )
        finally:
            limiter.release()
        assert limiter.active == 0

        rows = {row.request_id: row for row in api.ledger()}
        assert len(rows) == len(cases) == 7
        for status, request_id, _query in cases:
            row = rows[request_id]
            assert row.http_status == status
            assert (row.amount_micros, row.list_amount_micros) == (0, 0)
            assert row.sample_selected is False
            assert row.sample_kept is False
        by_query = {query: rows[request_id] for _, request_id, query in cases}
        assert by_query["model=nova"].model_name == "nova"
        assert by_query["model=nova"].model_uuid is None
        assert by_query["diarize=true"].model_uuid == MODEL_UUID
        assert by_query["diarize=true"].features == ["diarize"]
        # An unreadable opt-out is recorded the safe way: opted out.
        bad_opt_out = by_query["mip_opt_out=yes"]
        assert (bad_opt_out.mip_opt_out, bad_opt_out.opt_out_source) == (True, "request")
        assert (bad_opt_out.model_name, bad_opt_out.model_uuid) == ("unknown", None)
        assert by_query["tag=busy"].tags == ["busy"]
        assert api.samples() == []
        assert api.blob_files() == []
        # The sampler was on all along: the first success is kept.
        ok = api.post(small, content_type="audio/flac")
        assert ok.status_code == 200, ok.text
        assert [s.request_id for s in api.samples()] == [ok.headers["dg-request-id"]]
        assert len(api.blob_files()) == 2

    def test_undecodable_audio_row_names_the_model_it_would_have_used(self, api: Listen) -> None:
        response = api.post(b"\x00" * 4096)
        assert_error(response, 400, NOT_AUDIO)
        (row,) = api.ledger()
        assert (row.http_status, row.model_uuid, row.duration_seconds) == (400, MODEL_UUID, 0.0)

    def test_a_client_gone_mid_upload_is_a_500_that_keeps_its_row(
        self, api: Listen, speech: bytes
    ) -> None:
        # Not one of our errors: Starlette's ClientDisconnect, raised while the body streams in.
        headers = {**api.tenant.headers, "Content-Type": "audio/wav"}
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/listen",
            "raw_path": b"/v1/listen",
            "query_string": b"tag=gone",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            + [(b"content-length", str(len(speech)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        incoming = [{"type": "http.request", "body": speech[:1024], "more_body": True}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        async def request() -> None:
            await api.app(scope, receive, send)

        assert api.client.portal is not None
        api.client.portal.call(request)
        start, body = sent[0], orjson.loads(sent[1]["body"])
        assert start["status"] == 500
        request_id = dict(start["headers"])[b"dg-request-id"].decode()
        assert body == {
            "err_code": "INTERNAL_SERVER_ERROR",
            "err_msg": "The service failed to process the request.",
            "request_id": request_id,
        }
        row = api.entry(request_id)
        assert (row.http_status, row.tags) == (500, ["gone"])
        assert (row.amount_micros, row.list_amount_micros, row.sample_selected) == (0, 0, False)
        assert api.samples() == []
        assert api.blob_files() == []


class TestOptOutParameter:
    def test_spellings(self, api: Listen, speech: bytes) -> None:
        spellings = {"true": True, "false": False, "1": True, "0": False, "TRUE": True}
        for value, opted_out in spellings.items():
            response = api.post(speech, f"mip_opt_out={value}")
            assert response.status_code == 200, response.text
            row = api.entry(response.headers["dg-request-id"])
            assert (row.mip_opt_out, row.opt_out_source) == (opted_out, "request"), value
            assert row.discount_bps == (0 if opted_out else 5000)

    def test_a_contract_opt_out_overrides_the_request(
        self, api: Listen, db: Database, speech: bytes
    ) -> None:
        opted_out_org = contract_opted_out_tenant(db)
        response = api.post(speech, "mip_opt_out=false", headers=opted_out_org.headers)
        assert response.status_code == 200, response.text
        row = api.entry(response.headers["dg-request-id"])
        assert (row.mip_opt_out, row.opt_out_source, row.discount_bps) == (True, "contract", 0)

    def test_invalid_and_repeated_values_are_refused(self, api: Listen, speech: bytes) -> None:
        message = assert_error(api.post(speech, "mip_opt_out=maybe"), 400)
        assert message == "mip_opt_out must be true, false, 1 or 0 (any case), not 'maybe'."
        assert_error(
            api.post(speech, "mip_opt_out=false&mip_opt_out=false"),
            400,
            "mip_opt_out is given more than once.",
        )
        assert [(r.http_status, r.mip_opt_out) for r in api.ledger()] == [(400, True)] * 2


@SQLITE_ONLY
class TestParameters:
    def test_unknown_and_refused_parameters(self, api: Listen, speech: bytes) -> None:
        assert_error(api.post(speech, "modle=general"), 400, "Unknown query parameter 'modle'.")
        for name, message in REFUSED.items():
            assert_error(api.post(speech, f"{name}=true"), 400, message)
        assert len(api.ledger()) == 1 + len(REFUSED)

    def test_the_served_tier_and_false_switches_are_accepted(
        self, api: Listen, speech: bytes
    ) -> None:
        query = (
            "tier=base&filler_words=false&numerals=false&dictation=false&measurements=false"
            "&diarize=false&detect_language=false&sentiment=false"
            "&multichannel=false&paragraphs=false&profanity_filter=false&summarize=false"
        )
        response = api.post(speech, query)
        assert response.status_code == 200, response.text
        assert api.entry(response.headers["dg-request-id"]).features == []

    def test_model_features_name_the_missing_model(self, api: Listen, speech: bytes) -> None:
        one = "model, which is not installed."
        cases = {
            "diarize=true": f"diarize requires the 'diarizer' {one}",
            "diarize_model=latest": f"diarize_model requires the 'diarizer' {one}",
            "keywords=fox": (
                "keywords requires the 'phoneme' and 'g2p' models, which are not installed."
            ),
            "detect_language=true": f"detect_language requires the 'language-detector' {one}",
            "sentiment=true": f"sentiment requires the 'sit' {one}",
            "intents=true": f"intents requires the 'sit' {one}",
            "topics=true": f"topics requires the 'sit' {one}",
            "custom_topic=finance": f"custom_topic requires the 'sit' {one}",
            "custom_intent_mode=strict": f"custom_intent_mode requires the 'sit' {one}",
            "summarize=v2": f"summarize requires the 'summarize' {one}",
            "search=fox": f"search requires the 'search' {one}",
        }
        for query, message in cases.items():
            assert_error(api.post(speech, query), 400, message)
        rows = api.ledger()
        assert [r.http_status for r in rows] == [400] * len(cases)
        assert [r.features for r in rows] == [[q.split("=")[0]] for q in cases]

    def test_a_keyterm_the_model_cannot_spell_is_a_400(self, api: Listen, speech: bytes) -> None:
        assert_error(
            api.post(speech, "keyterm=2024"),
            400,
            "keyterm/keywords '2024' has no characters this model can spell.",
        )
        assert [r.http_status for r in api.ledger()] == [400]

    def test_too_many_tags_or_a_long_language_are_400s_with_their_ledger_row(
        self, api: Listen, speech: bytes
    ) -> None:
        tags = "&".join(f"tag=t{i}" for i in range(65))
        assert_error(api.post(speech, tags), 400, "At most 64 tags per request.")
        assert_error(api.post(speech, "language=" + "x" * 40), 400, NO_SUCH_MODEL)
        rows = api.ledger()
        assert [r.http_status for r in rows] == [400, 400]
        assert rows[1].language == "x" * 32


@SQLITE_ONLY
class TestKeywordsWithTheirModels:
    @pytest.fixture
    def installed_packages(self, models_dir: Path) -> list[Path]:
        return [
            make_package(models_dir, uuid=MODEL_UUID, version=MODEL_VERSION),
            make_package(models_dir, name="phoneme-general", kind="phoneme", aliases=[]),
            make_package(models_dir, name="g2p-general", kind="g2p", aliases=[]),
            # Installed, but nothing here runs it: refused at load, diarize stays a 400.
            make_package(models_dir, name="diarizer-general", kind="diarizer", aliases=[]),
        ]

    def test_keywords_boost_the_term(self, api: Listen, speech: bytes) -> None:
        plain = words_of(api.post(speech).json())
        response = api.post(speech, "keywords=fox:5")
        assert response.status_code == 200, response.text

        assert "fox" not in {w["word"] for w in plain}
        assert {w["word"] for w in words_of(response.json())} == {"fox"}
        assert api.entry(response.headers["dg-request-id"]).features == ["keywords"]
        # A diarizer package is installed but not run: diarize is refused, never ignored.
        refused = api.post(speech, "diarize=true&keywords=fox")
        assert_error(refused, 400, "diarize requires the 'diarizer' model, which is not installed.")


OLD_UUID = "1a1b2c3d-0000-4000-8000-0000000000a1"
NEW_UUID = "2a1b2c3d-0000-4000-8000-0000000000a2"


@SQLITE_ONLY
class TestModelResolution:
    @pytest.fixture
    def installed_packages(self, models_dir: Path) -> list[Path]:
        return [
            make_package(models_dir, uuid=OLD_UUID, version="2026-11-21.9"),
            make_package(models_dir, uuid=NEW_UUID, version="2026-11-21.10", seed=1),
        ]

    def test_names_languages_and_versions(self, api: Listen, speech: bytes) -> None:
        cases = {
            "": NEW_UUID,
            "model=general": NEW_UUID,
            "model=base": NEW_UUID,
            "model=General": NEW_UUID,
            "model=ctcconv-general": NEW_UUID,
            f"model={OLD_UUID}": OLD_UUID,
            "language=en": NEW_UUID,
            "language=en-US": NEW_UUID,
            "version=latest": NEW_UUID,
            "version=2026-11-21.9": OLD_UUID,
            "model=general&language=en-US&version=2026-11-21.10": NEW_UUID,
        }
        for query, served in cases.items():
            response = api.post(speech, query)
            assert response.status_code == 200, (query, response.text)
            metadata = response.json()["metadata"]
            assert metadata["models"] == [served], query
            version = "2026-11-21.9" if served == OLD_UUID else "2026-11-21.10"
            assert metadata["model_info"][served]["version"] == version
            row = api.entry(response.headers["dg-request-id"])
            assert (row.model_uuid, row.model_version) == (served, version)

    def test_no_such_combination(self, api: Listen, speech: bytes) -> None:
        for query in (
            "model=nova-3",
            "language=fr",
            "version=2026-11-21.8",
            "model=general&language=de-DE",
            f"model={OLD_UUID}&version=2026-11-21.10",
        ):
            response = api.post(speech, query)
            body = response.json()
            assert_error(response, 400, NO_SUCH_MODEL)
            assert body["err_code"] == "Bad Request"
        assert [r.http_status for r in api.ledger()] == [400] * 5


class TestSampling:
    def test_an_opted_in_request_keeps_an_encrypted_sample(
        self, serve: Serve, speech: bytes
    ) -> None:
        api = serve(sampling_rate=1.0)
        response = api.post(speech, FOX)
        assert response.status_code == 200, response.text
        request_id = response.headers["dg-request-id"]

        (sample,) = api.samples()
        assert (sample.request_id, sample.project_id) == (request_id, api.tenant.project_id)
        assert (sample.audio_bytes, sample.transcript_bytes) == (
            len(speech),
            len(orjson.dumps(response.json())),
        )
        # The fingerprint curation deduplicates by: the response's sha256, of the audio as sent.
        assert sample.audio_sha256 == response.json()["metadata"]["sha256"]
        assert sample.audio_sha256 == hashlib.sha256(speech).hexdigest()
        # Measured on the decoded audio, as curation balances by them: espeak's speech is clean.
        duration = response.json()["metadata"]["duration"]
        assert sample.duration_seconds == pytest.approx(duration, abs=1e-3)
        assert sample.snr_db_source == "measured"
        assert sample.snr_db is not None
        assert sample.snr_db > 20
        row = api.entry(request_id)
        assert (row.sample_selected, row.sample_kept, row.sampling_rate) == (True, True, 1.0)
        blobs = api.blob_files()
        assert len(blobs) == 2
        for blob in blobs:
            data = blob.read_bytes()
            assert speech[2000:2064] not in data
            assert b"fox fox" not in data
            assert request_id.encode() not in data
        dataops = make_staff_key(api.db, "dataops")
        url = f"/v1/governance/samples/{sample.id}"
        audio = api.client.get(f"{url}/audio", headers=dataops)
        assert audio.status_code == 200
        assert audio.content == speech
        transcript = api.client.get(f"{url}/transcript", headers=dataops)
        assert orjson.loads(transcript.content) == response.json()

    def test_a_noisy_request_keeps_the_snr_it_was_sent_at(
        self, serve: Serve, speech: bytes
    ) -> None:
        # Speech mixed with white noise at 10 dB: the kept sample records about 10 dB (the
        # estimator's accuracy is tests/asr/test_snr.py's), so curation can balance by noise.
        # Mixed at 16 kHz: noise above 8 kHz would be resampled away, raising the SNR.
        samples = decode(speech).samples
        noisy = mix_at_snr(samples, white_noise(len(samples), 0), 10.0)
        api = serve(sampling_rate=1.0)
        response = api.post(encode_wav(noisy, 16_000))
        assert response.status_code == 200, response.text
        (sample,) = api.samples()
        assert sample.snr_db_source == "measured"
        assert sample.snr_db == pytest.approx(10.0, abs=1.5)

    def test_rate_zero_keeps_nothing(self, api: Listen, speech: bytes) -> None:
        response = api.post(speech)
        assert response.status_code == 200
        row = api.entry(response.headers["dg-request-id"])
        assert (row.sample_selected, row.sample_kept, row.sampling_rate) == (False, False, 0.0)
        assert api.samples() == []
        assert api.blob_files() == []

    def test_opted_out_requests_are_never_kept(
        self, serve: Serve, db: Database, speech: bytes
    ) -> None:
        api = serve(sampling_rate=1.0)
        contract = contract_opted_out_tenant(db)
        responses = [
            api.post(speech, "mip_opt_out=true"),
            api.post(speech, "mip_opt_out=1"),
            api.post(speech, headers=contract.headers),
            api.post(speech, "mip_opt_out=false", headers=contract.headers),
        ]
        assert [r.status_code for r in responses] == [200] * 4
        rows = api.ledger()
        assert [(r.mip_opt_out, r.opt_out_source) for r in rows] == [
            (True, "request"),
            (True, "request"),
            (True, "contract"),
            (True, "contract"),
        ]
        assert all(not r.sample_selected and r.sampling_rate is None for r in rows)
        assert api.samples() == []
        assert api.blob_files() == []


class LocalAudioServer:
    """http.server on 127.0.0.1 in a thread: ``/audio.wav``, ``/moved`` (302), ``/slow`` (the
    audio a few bytes every 0.2 s), else 404; ``requests`` lists the paths asked for."""

    def __init__(self, audio: bytes) -> None:
        payload = audio
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                if self.path == "/slow":
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/wav")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    try:
                        for start in range(0, 200, 10):  # well inside any read timeout, each
                            self.wfile.write(payload[start : start + 10])
                            self.wfile.flush()
                            time.sleep(0.2)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up, as it should
                    return
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/audio.wav")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path != "/audio.wav":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LocalAudioServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def audio_server(speech: bytes) -> Iterator[LocalAudioServer]:
    with LocalAudioServer(speech) as server:
        yield server


def post_json(api: Listen, body: bytes, query: str = "") -> Any:
    return api.post(body, query, content_type="application/json")


@SQLITE_ONLY
class TestLimits:
    def test_a_body_over_the_byte_limit_is_a_413(self, serve: Serve, speech: bytes) -> None:
        api = serve(listen_max_audio_bytes=1000)
        assert_error(api.post(speech), 413, "Request body over 1000 bytes.")
        # Without Content-Length (chunked) the limit holds while reading.
        chunked = api.client.post(
            "/v1/listen",
            content=iter([speech[:600], speech[600:1200]]),
            headers={**api.tenant.headers, "Content-Type": "audio/wav"},
        )
        assert_error(chunked, 413, "Request body over 1000 bytes.")
        assert api.post(speech[:0]).status_code == 400
        assert [r.http_status for r in api.ledger()] == [413, 413, 400]

    def test_audio_over_the_duration_limit_is_a_413(self, serve: Serve, speech: bytes) -> None:
        api = serve(listen_max_audio_seconds=1.5)
        message = assert_error(api.post(speech), 413)
        assert "1.5" in message, message
        (row,) = api.ledger()
        assert (row.http_status, row.model_uuid) == (413, MODEL_UUID)

    def test_empty_body_and_wrong_content_type(self, api: Listen, speech: bytes) -> None:
        assert_error(api.post(b""), 400, "The request body is empty: send the audio bytes.")
        message = assert_error(api.post(speech, content_type="text/plain"), 415)
        assert message == 'Send audio as audio/* or application/octet-stream, or JSON {"url": …}.'
        assert [r.http_status for r in api.ledger()] == [400, 415]

    def test_url_bodies_are_refused_when_disabled(self, api: Listen) -> None:
        assert_error(
            post_json(api, b'{"url": "http://127.0.0.1/audio.wav"}'),
            400,
            "URL sources are disabled on this service: send the audio bytes.",
        )
        assert_error(post_json(api, b'{"url": '), 400, "The JSON body is not valid JSON.")
        assert_error(
            post_json(api, b'{"uri": "http://x/a.wav"}'),
            400,
            'A JSON body must be {"url": "https://…"}.',
        )

    def test_urls_are_checked_before_fetching(
        self, serve: Serve, audio_server: LocalAudioServer
    ) -> None:
        api = serve(listen_url_enabled=True)
        cases = {
            "ftp://example.com/a.wav": "url must be an http or https URL with a host.",
            "http://user:pw@example.com/a.wav": "url must not carry credentials.",
            f"{audio_server.url}/audio.wav": (
                "url resolves to a private or loopback address; refused."
            ),
            "http://[::1]/a.wav": "url resolves to a private or loopback address; refused.",
        }
        for url, message in cases.items():
            assert_error(post_json(api, orjson.dumps({"url": url})), 400, message)
        bad_port = assert_error(post_json(api, b'{"url": "http://example.com:99999/a"}'), 400)
        assert bad_port.startswith("url is not a valid URL"), bad_port
        assert [r.http_status for r in api.ledger()] == [400] * 5

    def test_a_private_url_is_transcribed_when_allowed(
        self,
        serve: Serve,
        audio_server: LocalAudioServer,
        speech: bytes,
        speech_samples: tuple[Any, int],
    ) -> None:
        api = serve(listen_url_enabled=True, listen_url_allow_private=True)
        for path in ("/audio.wav", "/moved"):
            response = post_json(api, orjson.dumps({"url": audio_server.url + path}))
            check_transcription(response, speech, duration=duration_of(speech_samples))
        assert_error(
            post_json(api, orjson.dumps({"url": audio_server.url + "/missing.wav"})),
            400,
            "Fetching url returned HTTP 404.",
        )
        assert [r.http_status for r in api.ledger()] == [200, 200, 400]

    def test_a_host_that_rebinds_to_loopback_after_the_check_is_not_fetched(
        self, serve: Serve, audio_server: LocalAudioServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # DNS rebinding: the first answer is public (it passes the URL check), every later one
        # is the loopback server. The connection must not follow the second answer.
        real_getaddrinfo = socket.getaddrinfo
        port = int(audio_server.url.rsplit(":", 1)[1])
        answers: list[str] = []

        def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host != "rebind.example":
                return real_getaddrinfo(host, *args, **kwargs)
            address = "93.184.216.34" if not answers else "127.0.0.1"
            answers.append(address)
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        api = serve(listen_url_enabled=True)
        url = f"http://rebind.example:{port}/audio.wav"
        response = post_json(api, orjson.dumps({"url": url}))
        assert_error(response, 400, "url resolves to a private or loopback address; refused.")
        assert answers[:2] == ["93.184.216.34", "127.0.0.1"]  # checked, then asked again
        assert audio_server.requests == []  # nothing reached the private server
        assert [r.http_status for r in api.ledger()] == [400]

    def test_the_time_limit_covers_the_whole_fetch(
        self, serve: Serve, audio_server: LocalAudioServer
    ) -> None:
        # Every read arrives within the per-read timeout, but the whole body would take 4 s.
        api = serve(
            listen_url_enabled=True,
            listen_url_allow_private=True,
            listen_url_timeout_seconds=1.0,
        )
        response = post_json(api, orjson.dumps({"url": audio_server.url + "/slow"}))
        assert_error(response, 400, "Fetching url took over 1 s.")
        assert audio_server.requests == ["/slow"]
        assert [r.http_status for r in api.ledger()] == [400]

    def test_a_url_over_the_byte_limit_is_a_413(
        self, serve: Serve, audio_server: LocalAudioServer
    ) -> None:
        api = serve(
            listen_url_enabled=True, listen_url_allow_private=True, listen_max_audio_bytes=5000
        )
        response = post_json(api, orjson.dumps({"url": audio_server.url + "/audio.wav"}))
        assert_error(response, 413, "Audio at url is over 5000 bytes.")


class TestConcurrency:
    def test_a_request_beyond_the_limit_is_a_429_recorded_in_the_ledger(
        self, serve: Serve, speech: bytes
    ) -> None:
        api = serve(max_active_requests=1)
        limiter = api.app.state.listen_limiter
        limiter.acquire()
        try:
            busy = api.post(speech, "mip_opt_out=true")
        finally:
            limiter.release()
        assert_error(busy, 429, "Too many concurrent requests (limit 1); retry shortly.")
        assert busy.json()["err_code"] == "TOO_MANY_REQUESTS"
        assert api.post(speech).status_code == 200  # the slot is free again
        assert limiter.active == 0
        rows = api.ledger()
        assert [(r.http_status, r.mip_opt_out) for r in rows] == [(429, True), (200, False)]
        assert rows[0].request_id == busy.headers["dg-request-id"]


class TestFairness:
    def test_one_organization_holds_at_most_its_share_of_the_slots(
        self, serve: Serve, db: Database, speech: bytes
    ) -> None:
        api = serve(max_active_requests=2)  # an organization's share: 1
        limiter = api.app.state.listen_limiter
        other = make_tenant(db, name="Other org")
        limiter.acquire(api.tenant.org_id)
        try:
            mine = api.post(speech, "tag=mine")
            theirs = api.post(speech, "tag=theirs", headers=other.headers)
        finally:
            limiter.release(api.tenant.org_id)
        assert_error(
            mine,
            429,
            "Too many concurrent requests from this organization (limit 1); retry shortly.",
        )
        assert theirs.status_code == 200, theirs.text
        assert limiter.active == 0
        assert sorted((tuple(r.tags), r.http_status) for r in api.ledger()) == [
            (("mine",), 429),
            (("theirs",), 200),
        ]


class TestSlowUploadsOverHTTP:
    """One real uvicorn, one slot. A client that stalls or trickles its upload holds no
    transcription slot (it is taken once the body is in) and is cut off with a 408 that the
    ledger records; the other clients are served meanwhile."""

    @pytest.fixture
    def settings(
        self, db: Database, tmp_path: Path, models_dir: Path, installed_packages: list[Path]
    ) -> Settings:
        return listen_settings(
            db, tmp_path, models_dir, max_active_requests=1, body_idle_seconds=1.0
        )

    @staticmethod
    def start_upload(live_server: str, tenant: Tenant, tag: str, body: bytes, sent: bytes) -> Any:
        host, port = live_server.removeprefix("http://").split(":")
        headers = {**tenant.headers, "Content-Type": "audio/wav"}
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        client = socket.create_connection((host, int(port)))
        client.sendall(
            f"POST /v1/listen?tag={tag} HTTP/1.1\r\nHost: {host}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + sent
        )
        return client

    @staticmethod
    def statuses(db: Database) -> dict[tuple[str, ...], int]:
        with db.session() as session:
            rows = session.scalars(select(LedgerEntry)).all()
            return {tuple(row.tags): row.http_status for row in rows}

    def test_a_stalled_upload_is_cut_off_with_a_408_and_holds_no_slot(
        self, app: FastAPI, live_server: str, tenant: Tenant, db: Database, speech: bytes
    ) -> None:
        stalled = self.start_upload(live_server, tenant, "stalled", speech, speech[:1024])
        try:
            headers = {**tenant.headers, "Content-Type": "audio/wav"}
            served = httpx2.post(
                f"{live_server}/v1/listen?tag=served", content=speech, headers=headers
            )
            assert served.status_code == 200, served.text
            stalled.settimeout(30)
            answer = stalled.recv(65536).decode(errors="replace")
        finally:
            stalled.close()
        assert answer.startswith("HTTP/1.1 408"), answer
        assert '"err_code":"REQUEST_TIMEOUT"' in answer.replace(" ", "")
        assert wait_until(lambda: self.statuses(db) == {("served",): 200, ("stalled",): 408})
        assert app.state.listen_limiter.active == 0

    def test_a_trickle_below_the_minimum_rate_is_cut_off(
        self, app: FastAPI, live_server: str, tenant: Tenant, db: Database, speech: bytes
    ) -> None:
        trickle = self.start_upload(live_server, tenant, "trickle", speech, speech[:100])
        trickle.settimeout(0.25)
        answer = b""
        try:
            # A byte every 0.25 s: never silent for the 1 s idle limit, far below 1024 bytes/s.
            for index in range(100, 400):
                try:
                    trickle.sendall(speech[index : index + 1])
                    answer += trickle.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break  # the server closed the connection after answering
                if answer:
                    break
        finally:
            trickle.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"bytes/s, below the minimum of 1024" in answer
        assert wait_until(lambda: self.statuses(db) == {("trickle",): 408})


class TestAuth:
    def test_keys_without_the_listen_right_are_refused_and_not_recorded(
        self, api: Listen, db: Database, speech: bytes
    ) -> None:
        assert_error(api.post(speech, headers={}), 401)
        assert_error(api.post(speech, headers={"Authorization": "Token nope"}), 401)
        assert_error(
            api.post(speech, headers=make_staff_key(db, "admin")),
            403,
            "Transcription needs a project API key.",
        )
        reader = make_tenant(db, scopes=["usage:read"], name="Reader")
        assert_error(
            api.post(speech, headers=reader.headers), 403, "This key lacks the 'listen' scope."
        )
        assert api.ledger() == []
