"""Manifest files: exact round trips per format, refused files, the synthetic corpus, lhotse."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from lhotse import CutSet

from curation import schema
from curation.manifests import (
    from_lhotse,
    from_synth_manifest,
    read_csv,
    read_jsonl,
    read_manifest,
    read_parquet,
    to_lhotse,
    write_manifest,
)
from curation.schema import ManifestError

RATE = 16_000
SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")


def tricky_manifest() -> pd.DataFrame:
    """Four rows with every kind of value a writer can get wrong."""
    return schema.coerce(
        pd.DataFrame(
            {
                "sample_id": ["s1", "0042", "s3", "s4"],
                "audio": ["/data/a.wav", None, "s3://bucket/c.flac", "/data/d.wav"],
                "duration": [0.1 + 0.2, 12.345678901234567, 1e-7, 3.0],
                # "NA"/"null" must stay text; quotes, commas, newlines and U+2028 inside a value.
                "transcript": ["NA", 'say "hi", then\nleave', None, "null \u2028 café"],
                "language": ["en", "en", None, "en-GB"],
                "accent": ["us", None, "rp", "scottish"],
                "age_group": ["adult", "child", None, "senior"],
                "sex": ["female", "male", "unknown", None],
                "noise_type": ["none", "white", None, "babble"],
                "snr_db": [np.nan, 12.5, -3.0000000000000004, np.nan],
                "environment": [None, "room", "dry", "reverberant"],
                "domain": ["medical", None, "finance", "general"],
                "organization_id": ["org-1", "org-2", None, "org-1"],
                "consent": ["opted_in", "opted_out", "erased", "expired"],
                "audio_sha256": ["ab" * 32, None, "cd" * 32, "ab" * 32],
                "created": pd.to_datetime(
                    pd.Series(
                        [
                            "2024-03-01T10:00:00.123456Z",
                            "2024-03-02T00:00:00Z",
                            None,
                            "2023-12-31T23:59:59.000001Z",
                        ],
                        dtype="str",
                    ),
                    utc=True,
                    format="ISO8601",
                ),
            }
        )
    )


def write_tone(path: Path, seconds: float) -> Path:
    """A 440 Hz sine of exactly ``seconds`` (a whole number of samples) at 16 kHz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * RATE)) / RATE
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), RATE, subtype="PCM_16")
    return path


class TestRoundTrip:
    @pytest.mark.parametrize("suffix", SUFFIXES)
    def test_every_value_reads_back_equal(self, tmp_path: Path, suffix: str) -> None:
        original = tricky_manifest()
        path = write_manifest(original, tmp_path / f"train{suffix}")
        back = read_manifest(path)
        pd.testing.assert_frame_equal(back, original)
        assert back.loc[1, "sample_id"] == "0042"  # not parsed as a number
        assert back.loc[0, "transcript"] == "NA"
        assert back["created"].dt.microsecond.tolist()[:2] == [123456, 0]

    @pytest.mark.parametrize("suffix", SUFFIXES)
    def test_empty_manifest(self, tmp_path: Path, suffix: str) -> None:
        path = write_manifest(schema.empty_manifest(), tmp_path / f"empty{suffix}")
        pd.testing.assert_frame_equal(read_manifest(path), schema.empty_manifest())

    def test_writer_coerces_and_replaces_atomically(self, tmp_path: Path) -> None:
        path = tmp_path / "deep" / "train.parquet"
        write_manifest(tricky_manifest(), path)
        extra = pd.DataFrame({"sample_id": ["x"], "duration": [2], "unknown": ["dropped"]})
        write_manifest(extra, path)
        back = read_parquet(path)
        assert back["sample_id"].tolist() == ["x"]
        assert list(back.columns) == list(schema.COLUMNS)
        assert back.loc[0, "consent"] == "opted_in"
        assert sorted(item.name for item in path.parent.iterdir()) == ["train.parquet"]

    def test_format_readers_match_dispatch(self, tmp_path: Path) -> None:
        original = tricky_manifest()
        for suffix, reader in ((".csv", read_csv), (".jsonl", read_jsonl)):
            path = write_manifest(original, tmp_path / f"m{suffix}")
            pd.testing.assert_frame_equal(reader(path), original)

    def test_suffix_is_case_insensitive(self, tmp_path: Path) -> None:
        path = write_manifest(tricky_manifest(), tmp_path / "TRAIN.CSV")
        assert len(read_manifest(path)) == 4


class TestBadFiles:
    def test_unknown_suffix(self, tmp_path: Path) -> None:
        path = tmp_path / "train.txt"
        path.write_text("sample_id,duration\na,1\n")
        with pytest.raises(ManifestError, match=r"train\.txt: unknown format"):
            read_manifest(path)
        with pytest.raises(ManifestError, match="unknown format"):
            write_manifest(tricky_manifest(), path)

    @pytest.mark.parametrize("suffix", SUFFIXES)
    def test_missing_file(self, tmp_path: Path, suffix: str) -> None:
        with pytest.raises(ManifestError, match=rf"absent{suffix} does not exist"):
            read_manifest(tmp_path / f"absent{suffix}")

    def test_parquet_that_is_not_parquet(self, tmp_path: Path) -> None:
        path = tmp_path / "broken.parquet"
        path.write_bytes(b"sample_id,duration\n")
        with pytest.raises(ManifestError, match=r"broken\.parquet is not a readable Parquet"):
            read_manifest(path)

    def test_csv_without_required_column(self, tmp_path: Path) -> None:
        path = tmp_path / "nodur.csv"
        path.write_text("sample_id,transcript\na,hello\n")
        with pytest.raises(ManifestError, match=r"nodur\.csv: .*duration"):
            read_manifest(path)

    def test_csv_with_text_duration(self, tmp_path: Path) -> None:
        path = tmp_path / "text.csv"
        path.write_text("sample_id,duration\na,long\n")
        with pytest.raises(ManifestError, match=r"text\.csv is not a readable CSV"):
            read_manifest(path)

    def test_empty_csv_file(self, tmp_path: Path) -> None:
        path = tmp_path / "nothing.csv"
        path.write_text("")
        with pytest.raises(ManifestError, match=r"nothing\.csv"):
            read_manifest(path)

    def test_jsonl_bad_line_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.jsonl"
        path.write_text('{"sample_id": "a", "duration": 1}\n\n{"sample_id": "b", "dur\n')
        with pytest.raises(ManifestError, match=r"bad\.jsonl:3: not valid JSON"):
            read_manifest(path)

    def test_jsonl_line_that_is_not_an_object(self, tmp_path: Path) -> None:
        path = tmp_path / "list.jsonl"
        path.write_text('{"sample_id": "a", "duration": 1}\n[1, 2]\n')
        with pytest.raises(ManifestError, match=r"list\.jsonl:2: expected a JSON object"):
            read_manifest(path)

    def test_bad_timestamp(self, tmp_path: Path) -> None:
        path = tmp_path / "when.jsonl"
        path.write_text('{"sample_id": "a", "duration": 1, "created": "last tuesday"}\n')
        with pytest.raises(ManifestError, match=r"when\.jsonl: column created"):
            read_manifest(path)

    def test_duplicate_ids(self, tmp_path: Path) -> None:
        path = tmp_path / "dup.csv"
        path.write_text("sample_id,duration\na,1\na,2\n")
        with pytest.raises(ManifestError, match=r"dup\.csv: sample_id must be unique"):
            read_manifest(path)


def synth_row(
    sample_id: str, *, noise_type: str = "white", snr_db: float | None = 12.5
) -> dict[str, object]:
    """A line as asr/synth.py's ``_manifest_row`` writes it."""
    return {
        "id": sample_id,
        "audio": f"audio/{sample_id}.wav",
        "text": f"the words of {sample_id}",
        "duration": 1.25,
        "sample_rate": RATE,
        "domain": "medical",
        "accent": "scottish",
        "espeak_voice": "en-gb-scotland",
        "variant": "m3",
        "sex": "male",
        "age_group": "adult",
        "pitch": 50,
        "rate_wpm": 160,
        "warp": 1.0,
        "noise_type": noise_type,
        "snr_db": snr_db,
        "environment": "room",
        "rt60": 0.4,
        "seed": 7,
        "voice_split": "train",
    }


@pytest.fixture
def synth_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus"
    rows = [synth_row("u0001"), synth_row("u0002", noise_type="none", snr_db=None)]
    for row in rows:
        write_tone(corpus / str(row["audio"]), 1.25)
    manifest = corpus / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


class TestSynthManifest:
    def test_maps_fields_to_the_schema(self, synth_corpus: Path) -> None:
        manifest = from_synth_manifest(synth_corpus)
        assert list(manifest.columns) == list(schema.COLUMNS)
        first = manifest.iloc[0]
        assert first["sample_id"] == "u0001"
        assert first["audio"] == str(synth_corpus.parent / "audio" / "u0001.wav")
        assert Path(first["audio"]).is_absolute()
        assert first["transcript"] == "the words of u0001"
        assert first["duration"] == 1.25
        assert (first["language"], first["consent"]) == ("en", "opted_in")
        assert (first["accent"], first["sex"], first["age_group"]) == ("scottish", "male", "adult")
        assert (first["noise_type"], first["snr_db"]) == ("white", 12.5)
        assert (first["environment"], first["domain"]) == ("room", "medical")
        assert manifest["snr_db"].isna().tolist() == [False, True]
        assert manifest["audio_sha256"].isna().all()

    def test_fingerprint_is_sha256_of_the_file(self, synth_corpus: Path) -> None:
        manifest = from_synth_manifest(synth_corpus, fingerprint=True)
        expected = hashlib.sha256((synth_corpus.parent / "audio/u0002.wav").read_bytes())
        assert manifest.loc[1, "audio_sha256"] == expected.hexdigest()
        assert manifest["audio_sha256"].nunique() == 1  # identical tones, identical bytes

    def test_fingerprint_of_missing_audio(self, synth_corpus: Path) -> None:
        (synth_corpus.parent / "audio/u0002.wav").unlink()
        assert len(from_synth_manifest(synth_corpus)) == 2  # no fingerprint, no read
        with pytest.raises(ManifestError, match=r"cannot fingerprint audio .*u0002\.wav"):
            from_synth_manifest(synth_corpus, fingerprint=True)

    def test_line_without_text(self, tmp_path: Path) -> None:
        row = synth_row("u1")
        del row["text"]
        path = tmp_path / "manifest.jsonl"
        path.write_text(json.dumps(synth_row("u0")) + "\n" + json.dumps(row) + "\n")
        with pytest.raises(ManifestError, match=r"manifest\.jsonl:2: missing text"):
            from_synth_manifest(path)


@pytest.fixture
def audio_manifest(tmp_path: Path) -> pd.DataFrame:
    """Three samples with real WAV files; attributes partly missing."""
    manifest = tricky_manifest().iloc[[0, 1, 3]].reset_index(drop=True)
    durations = [0.5, 1.25, 2.0]
    paths = [write_tone(tmp_path / f"{i}.wav", d) for i, d in enumerate(durations)]
    return schema.coerce(manifest.assign(audio=[str(p) for p in paths], duration=durations))


class TestLhotse:
    def test_round_trip(self, audio_manifest: pd.DataFrame) -> None:
        cuts = to_lhotse(audio_manifest)
        pd.testing.assert_frame_equal(from_lhotse(cuts), audio_manifest)

    def test_round_trip_through_a_cut_file(
        self, audio_manifest: pd.DataFrame, tmp_path: Path
    ) -> None:
        path = tmp_path / "cuts.jsonl.gz"
        to_lhotse(audio_manifest).to_file(path)
        pd.testing.assert_frame_equal(from_lhotse(CutSet.from_file(path)), audio_manifest)

    def test_cut_layout(self, audio_manifest: pd.DataFrame) -> None:
        cut = to_lhotse(audio_manifest)[1]
        assert (cut.id, cut.duration) == ("0042", 1.25)
        assert cut.recording.sampling_rate == RATE
        assert cut.recording.num_samples == 20_000
        [supervision] = cut.supervisions
        assert supervision.text == 'say "hi", then\nleave'
        assert supervision.language == "en"
        assert supervision.custom["age_group"] == "child"
        assert supervision.custom["snr_db"] == 12.5
        assert supervision.custom["accent"] is None
        assert supervision.custom["created"] == "2024-03-02T00:00:00+00:00"
        assert cut.load_audio().shape == (1, 20_000)

    def test_row_without_audio(self, audio_manifest: pd.DataFrame) -> None:
        frame = audio_manifest.copy()
        frame.loc[0, "audio"] = None
        with pytest.raises(ManifestError, match="sample s1 has no audio"):
            to_lhotse(frame)

    def test_audio_that_is_not_a_file(self, audio_manifest: pd.DataFrame, tmp_path: Path) -> None:
        frame = audio_manifest.assign(audio=str(tmp_path / "gone.wav"))
        with pytest.raises(ManifestError, match=r"gone\.wav is not a file"):
            to_lhotse(frame)

    def test_unreadable_audio(self, audio_manifest: pd.DataFrame, tmp_path: Path) -> None:
        junk = tmp_path / "junk.wav"
        junk.write_bytes(b"not audio at all")
        with pytest.raises(ManifestError, match="cannot read audio"):
            to_lhotse(audio_manifest.assign(audio=str(junk)))

    def test_duration_longer_than_audio(self, audio_manifest: pd.DataFrame) -> None:
        frame = audio_manifest.assign(duration=[0.5, 1.25, 2.5])
        with pytest.raises(ManifestError, match=r"duration 2\.5 s is longer than its audio"):
            to_lhotse(frame)
