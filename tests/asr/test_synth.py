"""The synthetic corpus: plans over the attribute grid, real espeak-ng renders, files on disk."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from asr.audio import decode
from asr.corpus import medical_sentences
from asr.snr import estimate_snr_db
from asr.synth import (
    ACCENT_VOICES,
    AGE_GROUPS,
    ENVIRONMENTS,
    NOISE_TYPES,
    PITCH_RANGE,
    RATE_RANGE,
    SAMPLE_RATE,
    SEXES,
    WARP_RANGE,
    ManifestError,
    SynthError,
    UtteranceSpec,
    espeak_variants,
    plan_corpus,
    read_manifest,
    render,
    synthesize,
    voice_split,
)

SENTENCES = medical_sentences()[:300]


def clean_spec(**changes: object) -> UtteranceSpec:
    """A dry, noiseless spec for one fixed sentence; ``changes`` replace its fields."""
    spec = UtteranceSpec(
        id="utt-test",
        text="the patient was started on metformin for hypertension",
        domain="medical",
        accent="us",
        espeak_voice="en-us",
        variant="m3",
        sex="male",
        age_group="adult",
        pitch=50,
        rate_wpm=160,
        warp=1.0,
        noise_type="none",
        snr_db=None,
        environment="dry",
        rt60=None,
        babble=(),
        seed=7,
        voice_split=voice_split("m3"),
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


class TestVariants:
    def test_sex_and_age_come_from_the_variant_files(self) -> None:
        variants = {v.name: v for v in espeak_variants()}
        assert (variants["grandma"].sex, variants["grandma"].age) == ("female", 90)
        assert (variants["m1"].sex, variants["m1"].age) == ("male", 70)
        assert (variants["f2"].sex, variants["f2"].age) == ("female", None)
        assert (variants["Andy"].sex, variants["Alex"].sex) == ("male", "unknown")  # "gender Male"
        assert len(variants) >= 60

    def test_effect_variants_are_left_out(self) -> None:
        names = {v.name for v in espeak_variants()}
        assert not names & {"whisper", "robosoft", "UniRobot", "Demonic", "announcer"}


class TestVoiceSplit:
    def test_holds_out_a_stable_share_of_variants(self) -> None:
        names = [v.name for v in espeak_variants()]
        held_out = [name for name in names if voice_split(name) == "test"]
        assert 0.05 * len(names) <= len(held_out) <= 0.3 * len(names)
        assert [voice_split(name) for name in names] == [voice_split(name) for name in names]
        assert {v.sex for v in espeak_variants() if v.name in held_out} >= {"female", "male"}

    def test_fraction_zero_keeps_every_voice_for_training(self) -> None:
        assert {voice_split(v.name, test_fraction=0.0) for v in espeak_variants()} == {"train"}


class TestPlanCorpus:
    def test_the_same_seed_gives_the_same_plan(self) -> None:
        first = plan_corpus(SENTENCES, n=50, seed=3)
        assert first == plan_corpus(SENTENCES, n=50, seed=3)
        assert first != plan_corpus(SENTENCES, n=50, seed=4)

    def test_values_come_from_the_vocabularies(self) -> None:
        specs = plan_corpus(SENTENCES, n=400, seed=1)
        for spec in specs:
            assert spec.espeak_voice in ACCENT_VOICES[spec.accent]
            assert spec.sex in SEXES
            assert spec.age_group in AGE_GROUPS
            assert PITCH_RANGE[0] <= spec.pitch <= PITCH_RANGE[1]
            assert RATE_RANGE[0] <= spec.rate_wpm
            assert spec.rate_wpm * spec.warp <= 190
            assert WARP_RANGE[0] <= spec.warp <= WARP_RANGE[1]
            assert (spec.snr_db is None) == (spec.noise_type == "none")
            assert spec.snr_db is None or 5.0 <= spec.snr_db <= 30.0
            assert (spec.rt60 is None) == (spec.environment == "dry")
            assert (len(spec.babble) >= 3) == (spec.noise_type == "babble")
        assert {s.accent for s in specs} == set(ACCENT_VOICES)
        assert {s.noise_type for s in specs} == set(NOISE_TYPES)
        assert {s.environment for s in specs} == set(ENVIRONMENTS)
        assert {s.age_group for s in specs} == set(AGE_GROUPS)
        assert [s.id for s in specs[:2]] == ["utt-000000", "utt-000001"]

    @pytest.mark.parametrize("voices", ["train", "test"])
    def test_a_voice_split_uses_only_its_variants(self, voices: str) -> None:
        specs = plan_corpus(SENTENCES, n=200, seed=2, voices=voices)  # type: ignore[arg-type]
        assert {voice_split(s.variant) for s in specs} == {voices}
        assert {s.voice_split for s in specs} == {voices}
        assert {voice_split(t[2]) for s in specs for t in s.babble} <= {voices}

    def test_more_utterances_than_sentences_reuse_every_sentence(self) -> None:
        sentences = SENTENCES[:20]
        specs = plan_corpus(sentences, n=60, seed=0, domain="medical", id_prefix="med")
        assert sorted(s.text for s in specs) == sorted(sentences * 3)
        assert {s.domain for s in specs} == {"medical"}
        assert specs[-1].id == "med-000059"

    def test_weights_and_ranges_steer_the_draw(self) -> None:
        specs = plan_corpus(
            SENTENCES,
            n=50,
            seed=0,
            accents=["scottish"],
            noise_weights=[0.0, 1.0, 0.0, 0.0],
            snr_db=(10.0, 10.0),
            environments=["dry"],
        )
        assert {(s.accent, s.noise_type, s.snr_db, s.environment) for s in specs} == {
            ("scottish", "white", 10.0, "dry")
        }

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"n": 0}, "n must be at least 1"),
            ({"accents": ["martian"]}, "unknown accent 'martian'"),
            ({"noise_types": ["street"]}, "unknown noise type 'street'"),
            ({"noise_weights": [1.0, 2.0]}, "noise_weights must be 4"),
            ({"environment_weights": [0.0, 0.0, 0.0]}, "must not all be zero"),
            ({"snr_db": (20.0, 10.0)}, "snr_db must be"),
            ({"domain": "Medical Notes"}, "lowercase slug"),
        ],
    )
    def test_bad_arguments(self, arguments: dict[str, object], message: str) -> None:
        kwargs: dict[str, object] = {"n": 5, "seed": 0, **arguments}
        with pytest.raises(SynthError, match=message):
            plan_corpus(SENTENCES, **kwargs)  # type: ignore[arg-type]

    def test_no_sentences(self) -> None:
        with pytest.raises(SynthError, match="no sentences"):
            plan_corpus([], n=5, seed=0)


class TestUtteranceSpec:
    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"espeak_voice": "en-gb"}, "not one of accent 'us'"),
            ({"snr_db": 10.0}, "snr_db must be given exactly when there is noise"),
            ({"environment": "room"}, "needs an rt60"),
            ({"noise_type": "babble", "snr_db": 10.0}, "babble talkers"),
            ({"text": "Call Dr. Smith at 5"}, "text must be normalised"),
            ({"rate_wpm": 300}, "rate 300 wpm"),
            ({"age_group": "toddler"}, "age_group 'toddler'"),
        ],
    )
    def test_refuses_inconsistent_specs(self, changes: dict[str, object], message: str) -> None:
        with pytest.raises(SynthError, match=message):
            clean_spec(**changes)


class TestRender:
    def test_the_same_spec_gives_the_same_samples(self) -> None:
        spec = plan_corpus(SENTENCES, n=1, seed=11, noise_weights=[0, 0, 0, 1])[0]
        first = render(spec)
        assert first.dtype == np.float32
        assert first.ndim == 1
        assert np.array_equal(first, render(spec))
        assert not np.array_equal(first, render(dataclasses.replace(spec, seed=12)))

    def test_duration_fits_the_text_and_rate(self) -> None:
        spec = clean_spec()
        samples = render(spec)
        words = len(spec.text.split())
        spoken = words / (spec.rate_wpm * spec.warp / 60.0)  # seconds at the nominal rate
        assert 0.6 * spoken + 0.1 <= len(samples) / SAMPLE_RATE <= 1.5 * spoken + 0.6
        assert np.abs(samples).max() <= 1.0

    def test_the_warp_shortens_and_raises_the_voice(self) -> None:
        normal = render(clean_spec())
        child = render(clean_spec(warp=1.12, pitch=80, age_group="child"))
        assert len(child) < len(normal)

    def test_white_noise_lands_near_the_target_snr(self) -> None:
        assert (estimate_snr_db(render(clean_spec()), SAMPLE_RATE) or 0.0) >= 30.0
        measured = {}
        for target in (5.0, 25.0):
            mix = render(clean_spec(noise_type="white", snr_db=target))
            measured[target] = estimate_snr_db(mix, SAMPLE_RATE) or 0.0
            # The target is set on active speech; the estimate counts the pauses too, so it
            # reads a little lower (0.6-1.6 dB on these clips).
            assert target - 3.0 <= measured[target] <= target + 1.5
        assert measured[5.0] < measured[25.0] - 15.0

    def test_babble_and_pink_noise_are_noisier_at_low_snr(self) -> None:
        talkers = (
            ("please pass the salt", "en-gb", "f2"),
            ("we should leave before dark", "en-029", "m2"),
            ("the train was late again", "en-us-nyc", "Andy"),
        )
        for noise in ("pink", "babble"):
            babble = talkers if noise == "babble" else ()
            low, high = (
                estimate_snr_db(
                    render(clean_spec(noise_type=noise, snr_db=snr, babble=babble)), SAMPLE_RATE
                )
                or 0.0
                for snr in (5.0, 25.0)
            )
            assert low + 10.0 < high, noise

    def test_a_reverberant_room_smears_the_speech(self) -> None:
        dry = render(clean_spec())
        wet = render(clean_spec(environment="reverberant", rt60=0.9))
        assert len(wet) == len(dry)
        assert np.abs(wet - dry).mean() > 0.3 * np.abs(dry).mean()
        assert np.abs(wet).max() == pytest.approx(np.abs(dry).max(), rel=1e-3)  # same peak

    def test_an_unknown_variant_is_refused(self) -> None:
        with pytest.raises(SynthError, match="unknown espeak-ng variant 'nobody'"):
            render(clean_spec(variant="nobody"))


class TestSynthesize:
    def test_writes_decodable_audio_and_a_manifest_identically_on_any_worker_count(
        self, tmp_path: Path
    ) -> None:
        specs = plan_corpus(SENTENCES, n=6, seed=5, domain="medical")
        manifest = synthesize(specs, tmp_path / "one", workers=1, progress=False)
        again = synthesize(specs, tmp_path / "two", workers=2, progress=False)
        assert manifest.read_bytes() == again.read_bytes()
        rows = read_manifest(manifest)
        assert [r["id"] for r in rows] == [s.id for s in specs]
        for row, spec in zip(rows, specs, strict=True):
            wav = (manifest.parent / str(row["audio"])).read_bytes()
            assert wav == (again.parent / str(row["audio"])).read_bytes()
            audio = decode(wav)
            assert audio.source.subtype == "PCM_16"
            assert audio.sample_rate == SAMPLE_RATE
            assert row["duration"] == pytest.approx(audio.duration, abs=1e-3)
            assert (row["text"], row["accent"], row["snr_db"]) == (
                spec.text,
                spec.accent,
                spec.snr_db,
            )
            assert row["sample_rate"] == SAMPLE_RATE
            assert "babble" not in row
        assert not list(tmp_path.rglob("*.tmp"))

    def test_duplicate_ids_are_refused(self, tmp_path: Path) -> None:
        spec = clean_spec()
        with pytest.raises(SynthError, match="unique"):
            synthesize([spec, spec], tmp_path, workers=1, progress=False)
        with pytest.raises(SynthError, match="file-name safe"):
            synthesize([clean_spec(id="../up")], tmp_path, workers=1, progress=False)


class TestReadManifest:
    def test_a_broken_line_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "manifest.jsonl"
        good = json.dumps({"id": "a", "audio": "audio/a.wav", "text": "hello there"})
        path.write_text(f"{good}\n\n{{not json\n", encoding="utf-8")
        with pytest.raises(ManifestError, match=r"manifest\.jsonl:3: not valid JSON"):
            read_manifest(path)

    def test_rows_need_audio_and_text(self, tmp_path: Path) -> None:
        path = tmp_path / "manifest.jsonl"
        path.write_text('{"id": "a"}\n', encoding="utf-8")
        with pytest.raises(ManifestError, match="1: missing audio, text"):
            read_manifest(path)

    def test_a_missing_manifest(self, tmp_path: Path) -> None:
        with pytest.raises(ManifestError, match="does not exist"):
            read_manifest(tmp_path / "manifest.jsonl")
