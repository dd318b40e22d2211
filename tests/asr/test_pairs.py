"""Checks on uploaded (audio, transcript) training pairs: real espeak-ng speech, the bundled model.

Losses per character measured on these clips: 0.05-0.12 with their own transcript, 10.5-12.5
with another sentence of the same length (the module docstring has the 100-clip measurement the
limit comes from); the bounds below leave wide margins on both sides.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.kit.settings import BUNDLED_MODELS_DIR
from asr.audio import decode, encode_wav
from asr.package import read_package
from asr.pairs import (
    MAX_CHARS_PER_SECOND,
    MAX_LOSS_PER_CHAR,
    MAX_SECONDS,
    MIN_CHARS_PER_SECOND,
    MIN_SECONDS,
    PairReport,
    ReasonCode,
    TranscriptScorer,
    check_pair,
    check_pairs,
    summarise,
)
from tests.speech import synth_speech

# Three sentences of about the same length (58-61 characters, about 3.6 s each).
SENTENCES = (
    "please call stella and ask her to bring these things with her",
    "she sells sea shells by the sea shore every summer morning",
    "the quick brown fox jumps over the lazy dog near the river",
)
SPEECH = SENTENCES[0]


def _encode(wav: bytes, fmt: str, subtype: str) -> bytes:
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _bundled() -> Path:
    packages = sorted(BUNDLED_MODELS_DIR.glob("*.dg"))
    assert packages, "models/ must ship the base model package"
    return packages[-1]


@pytest.fixture(scope="module")
def scorer() -> TranscriptScorer:
    return TranscriptScorer.load(_bundled())


@pytest.fixture(scope="module")
def wav() -> bytes:
    return synth_speech(SPEECH)


@pytest.fixture(scope="module")
def ten_seconds() -> tuple[bytes, str]:
    """About 13 s of speech (four sentences) and its transcript."""
    text = " ".join((*SENTENCES, SENTENCES[0]))
    return synth_speech(text), text


class TestMatchingTranscript:
    def test_accepted_with_a_low_loss_and_its_measurements(
        self, scorer: TranscriptScorer, wav: bytes
    ) -> None:
        report = check_pair(wav, "Please call Stella, and ask her to bring these things with her!")
        scored = check_pair(wav, SPEECH, scorer=scorer)
        assert report.accepted
        assert scored.accepted, scored.reasons
        assert scored.reasons == ()
        assert scored.transcript == report.transcript == SPEECH
        assert scored.ctc_loss_per_char is not None
        assert scored.ctc_loss_per_char < MAX_LOSS_PER_CHAR / 5
        assert report.ctc_loss_per_char is None  # no scorer, no score
        assert scored.format == "WAV"
        assert (scored.sample_rate, scored.channels) == (22_050, 1)
        assert scored.duration is not None
        assert scored.duration == pytest.approx(decode(wav).duration, abs=1e-3)
        assert scored.chars_per_second == pytest.approx(len(SPEECH) / scored.duration)
        assert scored.snr_db is not None
        assert scored.snr_db > 30.0  # clean espeak-ng speech reads 35-50 dB (asr.snr)
        assert scored.audio_sha256 is not None
        assert len(scored.audio_sha256) == 64

    def test_report_is_plain_json(self, scorer: TranscriptScorer, wav: bytes) -> None:
        data = check_pair(wav, "yes", scorer=scorer).to_dict()
        again = json.loads(json.dumps(data, allow_nan=False))
        assert again["accepted"] is False
        assert [r["code"] for r in again["reasons"]] == ["implausible_rate", "transcript_mismatch"]
        assert all(r["message"] for r in again["reasons"])
        assert again["sample_rate"] == 22_050


class TestTranscriptMismatch:
    @pytest.mark.parametrize("index", range(len(SENTENCES)))
    def test_unrelated_transcript_of_similar_length_is_flagged(
        self, scorer: TranscriptScorer, index: int
    ) -> None:
        audio = synth_speech(SENTENCES[index])
        other = SENTENCES[(index + 1) % len(SENTENCES)]
        own = check_pair(audio, SENTENCES[index], scorer=scorer)
        wrong = check_pair(audio, other, scorer=scorer)
        assert own.accepted, own.reasons
        assert wrong.codes == (ReasonCode.TRANSCRIPT_MISMATCH,)
        assert own.ctc_loss_per_char is not None
        assert wrong.ctc_loss_per_char is not None
        assert wrong.ctc_loss_per_char > MAX_LOSS_PER_CHAR
        assert wrong.ctc_loss_per_char > 10 * own.ctc_loss_per_char
        assert "does not match" in wrong.reasons[0].message

    def test_a_scorer_takes_its_own_limit(self, wav: bytes) -> None:
        package = read_package(_bundled())
        strict = TranscriptScorer(package, max_loss_per_char=1e-6)
        report = check_pair(wav, SPEECH, scorer=strict)
        assert report.codes == (ReasonCode.TRANSCRIPT_MISMATCH,)
        with pytest.raises(ValueError, match="positive"):
            TranscriptScorer(package, max_loss_per_char=0.0)


class TestUndecodable:
    @pytest.mark.parametrize(
        "data",
        [b"", b"this is a transcript, not audio " * 20, bytes(range(256)) * 8],
        ids=["empty", "text", "garbage"],
    )
    def test_refused_with_the_decoders_reason(self, scorer: TranscriptScorer, data: bytes) -> None:
        report = check_pair(data, SPEECH, scorer=scorer)
        assert report.codes == (ReasonCode.UNDECODABLE,)
        assert "accepted formats" in report.reasons[0].message
        assert (report.duration, report.snr_db, report.ctc_loss_per_char) == (None, None, None)
        assert report.transcript == SPEECH  # the transcript is still checked and normalised

    def test_truncated_flac(self, scorer: TranscriptScorer, wav: bytes) -> None:
        flac = _encode(wav, "FLAC", "PCM_16")
        report = check_pair(flac[: len(flac) // 2], SPEECH, scorer=scorer)
        assert report.codes == (ReasonCode.UNDECODABLE,)
        assert report.format == "FLAC"  # the header was read, the data was not all there
        assert "truncated" in report.reasons[0].message


class TestTranscriptText:
    @pytest.mark.parametrize("transcript", [None, "", "  \n\t "])
    def test_missing(self, scorer: TranscriptScorer, wav: bytes, transcript: str | None) -> None:
        report = check_pair(wav, transcript, scorer=scorer)
        assert report.codes == (ReasonCode.NO_TRANSCRIPT,)
        assert report.transcript is None
        assert report.ctc_loss_per_char is None
        assert report.duration is not None  # the audio is still measured

    @pytest.mark.parametrize(
        ("transcript", "named"),
        [
            ("please call stella at 5 o'clock", "'5'"),
            ("it costs 20% more & more", "'%'"),
            ("позвоните стелле", "'з'"),
        ],
    )
    def test_spoken_characters_outside_the_alphabet(
        self, scorer: TranscriptScorer, wav: bytes, transcript: str, named: str
    ) -> None:
        report = check_pair(wav, transcript, scorer=scorer)
        assert ReasonCode.NOT_NORMALISABLE in report.codes
        message = next(r.message for r in report.reasons if r.code == "not_normalisable")
        assert named in message
        assert report.ctc_loss_per_char is None  # not scored: the text would train wrong words

    def test_nothing_left_after_normalising(self, scorer: TranscriptScorer, wav: bytes) -> None:
        report = check_pair(wav, "... ?! --", scorer=scorer)
        assert report.codes == (ReasonCode.NOT_NORMALISABLE,)
        assert report.transcript is None

    def test_punctuation_case_and_accents_normalise(self, wav: bytes) -> None:
        report = check_pair(wav, "Please call Stélla — and ask her to “bring” these things…")
        assert ReasonCode.NOT_NORMALISABLE not in report.codes
        assert report.transcript == "please call stella and ask her to bring these things"


class TestDuplicates:
    def test_the_same_audio_twice(self, scorer: TranscriptScorer, wav: bytes) -> None:
        first, second = check_pairs([(wav, SPEECH), (wav, SPEECH)], scorer=scorer)
        assert first.accepted
        assert second.codes == (ReasonCode.DUPLICATE_AUDIO,)
        assert second.audio_sha256 == first.audio_sha256

    def test_a_lossless_re_encoding_is_the_same_audio(
        self, scorer: TranscriptScorer, wav: bytes
    ) -> None:
        flac = _encode(wav, "FLAC", "PCM_16")
        report = check_pair(flac, SPEECH, scorer=scorer, seen_hashes={_sha(scorer, wav)})
        assert report.codes == (ReasonCode.DUPLICATE_AUDIO,)

    def test_a_refused_copy_does_not_block_the_right_one(
        self, scorer: TranscriptScorer, wav: bytes
    ) -> None:
        wrong, right = check_pairs([(wav, SENTENCES[1]), (wav, SPEECH)], scorer=scorer)
        assert wrong.codes == (ReasonCode.TRANSCRIPT_MISMATCH,)
        assert right.accepted


class TestSpeakingRate:
    def test_one_word_on_ten_seconds_of_speech(
        self, scorer: TranscriptScorer, ten_seconds: tuple[bytes, str]
    ) -> None:
        audio, text = ten_seconds
        own = check_pair(audio, text, scorer=scorer)
        report = check_pair(audio, "hello", scorer=scorer)
        assert own.accepted, own.reasons
        assert own.duration is not None
        assert own.duration > 10.0
        assert ReasonCode.IMPLAUSIBLE_RATE in report.codes
        assert report.chars_per_second is not None
        assert report.chars_per_second < MIN_CHARS_PER_SECOND
        assert "too slow" in report.reasons[0].message

    def test_a_long_transcript_on_one_word(self, scorer: TranscriptScorer) -> None:
        audio = synth_speech("yes")
        report = check_pair(audio, " ".join(SENTENCES), scorer=scorer)
        assert report.codes == (ReasonCode.IMPLAUSIBLE_RATE, ReasonCode.TRANSCRIPT_MISMATCH)
        assert report.chars_per_second is not None
        assert report.chars_per_second > MAX_CHARS_PER_SECOND
        assert report.ctc_loss_per_char is None  # more characters than frames: no alignment
        assert "cannot be aligned" in report.reasons[1].message
        assert check_pair(audio, "yes", scorer=scorer).accepted


class TestDuration:
    def test_too_short(self, scorer: TranscriptScorer, wav: bytes) -> None:
        samples = decode(wav).samples[: int(0.3 * 16_000)]
        report = check_pair(encode_wav(samples, 16_000), "please", scorer=scorer)
        assert report.codes == (ReasonCode.TOO_SHORT,)
        assert report.duration is not None
        assert report.duration == pytest.approx(0.3)
        assert report.duration < MIN_SECONDS
        assert report.snr_db is None  # too short for a noise floor

    def test_too_long_is_refused_from_its_header(self, scorer: TranscriptScorer) -> None:
        audio = encode_wav(np.zeros(int((MAX_SECONDS + 1) * 8_000), dtype=np.float32), 8_000)
        report = check_pair(audio, " ".join(SENTENCES * 3), scorer=scorer)
        assert report.codes == (ReasonCode.TOO_LONG,)
        assert report.duration == pytest.approx(MAX_SECONDS + 1)
        assert (report.sample_rate, report.audio_sha256) == (8_000, None)


class TestEncodings:
    @pytest.mark.parametrize(("fmt", "subtype"), [("FLAC", "PCM_16"), ("MP3", "MPEG_LAYER_III")])
    def test_the_same_speech_is_accepted(
        self, scorer: TranscriptScorer, wav: bytes, fmt: str, subtype: str
    ) -> None:
        reference = check_pair(wav, SPEECH, scorer=scorer)
        report = check_pair(_encode(wav, fmt, subtype), SPEECH, scorer=scorer)
        assert report.accepted, report.reasons
        assert report.format == fmt
        assert report.ctc_loss_per_char is not None
        assert reference.ctc_loss_per_char is not None
        assert report.ctc_loss_per_char < MAX_LOSS_PER_CHAR / 5
        assert report.duration == pytest.approx(reference.duration, abs=0.05)


@pytest.fixture(scope="module")
def set_reports(scorer: TranscriptScorer, wav: bytes) -> list[PairReport]:
    other = synth_speech(SENTENCES[1])
    return check_pairs(
        [
            (wav, SPEECH),  # accepted
            (other, SENTENCES[1]),  # accepted
            (wav, SPEECH),  # duplicate_audio
            (synth_speech(SENTENCES[2]), SENTENCES[0]),  # transcript_mismatch
            (b"", SPEECH),  # undecodable: no hours
            (other, None),  # duplicate_audio and no_transcript
        ],
        scorer=scorer,
    )


class TestSummary:
    def test_hours_and_counts_add_up(self, set_reports: list[PairReport]) -> None:
        summary = summarise(set_reports)
        durations = [r.duration or 0.0 for r in set_reports]
        assert [r.accepted for r in set_reports] == [True, True, False, False, False, False]
        assert (summary.files, summary.accepted.files, summary.rejected.files) == (6, 2, 4)
        assert summary.hours == pytest.approx(sum(durations) / 3600)
        assert summary.accepted.hours == pytest.approx(sum(durations[:2]) / 3600)
        assert summary.rejected.hours == pytest.approx(sum(durations[2:]) / 3600)
        assert summary.accepted.hours + summary.rejected.hours == pytest.approx(summary.hours)
        counts = {code.value: tally.files for code, tally in summary.reasons.items()}
        assert counts == {
            "undecodable": 1,
            "too_short": 0,
            "too_long": 0,
            "duplicate_audio": 2,
            "no_transcript": 1,
            "not_normalisable": 0,
            "implausible_rate": 0,
            "transcript_mismatch": 1,
        }
        duplicate = summary.reasons[ReasonCode.DUPLICATE_AUDIO]
        assert duplicate.hours == pytest.approx((durations[2] + durations[5]) / 3600)
        assert summary.reasons[ReasonCode.UNDECODABLE].hours == 0.0

    def test_is_plain_json(self, set_reports: list[PairReport]) -> None:
        data = summarise(set_reports).to_dict()
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        assert (data["files"], data["accepted"]["files"], data["rejected"]["files"]) == (6, 2, 4)
        assert list(data["reasons"]) == [code.value for code in ReasonCode]


def _sha(scorer: TranscriptScorer, wav: bytes) -> str:
    digest = check_pair(wav, SPEECH, scorer=scorer).audio_sha256
    assert digest is not None
    return digest
