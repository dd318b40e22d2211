"""The program's loop, end to end on CPU: listen → keep → label → build → train → promote → serve.

Medical speech goes through ``/v1/listen`` opted in (kept, encrypted) mixed with opted-out
requests (never kept); a labeler stores reference transcripts and attributes; DataOps builds a
training set; a worker fine-tunes the shipped base model on it; the candidate beats the base
model on the set's held-out split and on unseen medical sentences, is promoted by the policy,
and the next request is served by it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jiwer
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.kit.settings import BUNDLED_MODELS_DIR, Settings
from app.main import create_app
from app.tables import LedgerEntry, TrainingSetSample
from app.training.queue import work_once
from app.training.runner import execute_job
from asr.corpus import load_sentences, split_sentences
from asr.inference import Transcriber
from asr.package import read_package
from asr.synth import plan_corpus, read_manifest, synthesize
from tests.conftest import Database, make_staff_key, make_tenant

TRAIN_UTTERANCES = 220
OPTED_OUT = 12
HELD_OUT = 24


@pytest.fixture(scope="module")
def medical(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clean medical speech: a pool for the program and unseen sentences for the last check."""
    seen, unseen = split_sentences(load_sentences("medical"), test_fraction=0.2, salt="e2e")
    root = tmp_path_factory.mktemp("medical")
    common: dict[str, Any] = {
        "domain": "medical",
        "noise_types": ("none",),
        "environments": ("dry",),
    }
    pool = plan_corpus(
        seen, n=TRAIN_UTTERANCES + OPTED_OUT, seed=5, voices="train", id_prefix="m", **common
    )
    held = plan_corpus(unseen, n=HELD_OUT, seed=6, voices="train", id_prefix="h", **common)
    return {
        "pool": synthesize(pool, root / "pool", workers=2, progress=False),
        "held": synthesize(held, root / "held", workers=2, progress=False),
    }


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path / "var",
        database_url=db.url,
        bundled_models_dir=BUNDLED_MODELS_DIR,
        sampling_rate=1.0,
        sampling_secret="test-secret-of-the-retraining-loop",
        models_poll_seconds=3600,  # the test rescans when it wants to
        # The held-out split is ~15% of ~220 samples, chosen by their (random) ids, so an accent
        # or sex group holds 5-10 utterances (~40-80 words), where one word is 1.3-2.5 WER
        # points. Three local runs: 8-13 points better overall, yet one 8-utterance accent group
        # moved by 0.0; CI saw the default gate (groups of 5+, 2 points) refuse a candidate.
        # Here only groups big enough to measure are judged; the gate is tested in
        # test_promotion.py.
        promotion_min_group_utterances=12,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def served_model(response: Any) -> dict[str, Any]:
    info: dict[str, Any] = next(iter(response.json()["metadata"]["model_info"].values()))
    return info


def wer_of(package: Path, manifest: Path) -> float:
    transcriber = Transcriber(read_package(package))
    references, hypotheses = [], []
    for row in read_manifest(manifest):
        audio, _ = sf.read(manifest.parent / str(row["audio"]), dtype="float32")
        references.append(str(row["text"]))
        hypotheses.append(transcriber.transcribe(audio).text)
    return float(jiwer.wer(references, hypotheses))


class TestRetrainingLoop:
    def test_opted_in_speech_becomes_a_better_served_model(
        self,
        db: Database,
        settings: Settings,
        client: TestClient,
        medical: dict[str, Path],
    ) -> None:
        tenant = make_tenant(db, name="Clinic", scopes=["member"])
        admin, dataops = make_staff_key(db, "admin"), make_staff_key(db, "dataops")
        pool = medical["pool"]
        said: dict[str, dict[str, Any]] = {}
        opted_out: set[str] = set()
        base_version = None
        for index, row in enumerate(read_manifest(pool)):
            opt_out = index < OPTED_OUT
            response = client.post(
                f"/v1/listen?mip_opt_out={'true' if opt_out else 'false'}",
                content=(pool.parent / str(row["audio"])).read_bytes(),
                headers={**tenant.headers, "Content-Type": "audio/wav"},
            )
            assert response.status_code == 200, response.text
            request_id = response.json()["metadata"]["request_id"]
            base_version = served_model(response)["version"]
            (opted_out.add(request_id) if opt_out else said.__setitem__(request_id, row))

        # The labeler: reference transcripts and attributes for every kept sample.
        listed = client.get("/v1/governance/samples?limit=1000", headers=admin).json()
        kept = {s["request_id"]: s["id"] for s in listed["samples"]}
        assert set(kept) == set(said)  # every opted-in request kept, no opted-out one
        for request_id, sample_id in kept.items():
            row = said[request_id]
            labelled = client.patch(
                f"/v1/governance/samples/{sample_id}",
                json={
                    "attributes": {
                        "accent": row["accent"],
                        "sex": row["sex"],
                        "age_group": row["age_group"],
                        "domain": "medical",
                    }
                },
                headers=dataops,
            )
            assert labelled.status_code == 200, labelled.text
            referenced = client.put(
                f"/v1/governance/samples/{sample_id}/reference",
                json={"transcript": row["text"]},
                headers=dataops,
            )
            assert referenced.status_code == 200, referenced.text

        built = client.post(
            "/v1/governance/datasets",
            json={
                "name": "medical",
                "balance": ["accent"],
                "hours": 10,
                "domain": "medical",
                "reference_only": True,
                "eval_fraction": 0.15,
            },
            headers=dataops,
        )
        assert built.status_code == 201, built.text
        training_set = built.json()
        assert training_set["sample_count"] + training_set["eval_count"] == len(said)

        submitted = client.post(
            "/v1/governance/training-jobs",
            json={
                "base_model": "general",
                "training_set": "medical",
                # A step budget, not a time budget: on a slower or busier machine 0.6 minutes
                # bought too few steps for the candidate to pass the promotion policy.
                "hyperparameters": {
                    "minutes": 10,
                    "max_steps": 120,
                    "mix_utterances": 80,
                    "auto_promote": True,
                },
            },
            headers=dataops,
        )
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]

        factory = client.app.state.sessionmaker  # type: ignore[attr-defined]
        store = client.app.state.store  # type: ignore[attr-defined]
        ran = work_once(factory, store, settings, worker_id="e2e-worker", execute=execute_job)
        assert str(ran) == job_id

        job = client.get(f"/v1/governance/training-jobs/{job_id}", headers=dataops).json()
        assert job["status"] == "succeeded", job
        metrics = job["metrics"]
        assert metrics["candidate"]["wer"] < metrics["base"]["wer"]
        assert job["result"]["promoted"] is True, job["result"]["promotion_reasons"]
        assert job["result"]["promotion_reasons"] == []
        version = job["result"]["version"]
        assert version != base_version
        # The plaintext scratch directory is gone.
        scratch = settings.effective_scratch_dir
        assert not scratch.exists() or not any(scratch.iterdir())

        # Unseen medical sentences: the candidate beats the base model there too.
        candidate_file = next(settings.effective_models_dir.glob("*.dg"))
        base_file = next(BUNDLED_MODELS_DIR.glob("*.dg"))
        assert wer_of(candidate_file, medical["held"]) < wer_of(base_file, medical["held"])

        # The next request is served by the promoted model.
        client.app.state.models.scan()  # type: ignore[attr-defined]
        held_row = read_manifest(medical["held"])[0]
        after = client.post(
            "/v1/listen?mip_opt_out=true",
            content=(medical["held"].parent / str(held_row["audio"])).read_bytes(),
            headers={**tenant.headers, "Content-Type": "audio/wav"},
        )
        assert after.status_code == 200
        assert served_model(after)["version"] == version

        # Opted-out requests are in the ledger (billed) and nowhere in the training set.
        with db.session() as session:
            rows = session.scalars(
                select(LedgerEntry).where(LedgerEntry.request_id.in_(opted_out))
            ).all()
            assert len(rows) == OPTED_OUT
            assert not any(r.sample_kept for r in rows)
            members = session.scalars(
                select(TrainingSetSample.sample_id).where(
                    TrainingSetSample.training_set_id == uuid.UUID(training_set["id"])
                )
            ).all()
        assert {str(m) for m in members} == set(kept.values())
