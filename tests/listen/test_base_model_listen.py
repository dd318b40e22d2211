"""The shipped base model behind ``/v1/listen``, through the official SDK: what it says."""

from __future__ import annotations

from pathlib import Path

import jiwer
import pytest

from app.kit.settings import BUNDLED_MODELS_DIR, Settings
from asr.package import read_manifest
from tests.conftest import Database, SdkFactory, make_tenant
from tests.speech import synth_speech

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:websockets.exceptions.InvalidStatusCode is deprecated:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
]
SPOKEN = "please call me back after the meeting tomorrow morning"


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    # The repository's models/ folder, as `make run` serves it.
    return Settings(
        env="test",
        data_dir=tmp_path / "var",
        database_url=db.url,
        log_json=True,
        bundled_models_dir=BUNDLED_MODELS_DIR,
    )


class TestBaseModelOverTheSdk:
    def test_transcript_is_close_to_what_was_said(self, db: Database, sdk: SdkFactory) -> None:
        tenant = make_tenant(db)
        client = sdk(tenant.key)
        response = client.listen.v1.media.transcribe_file(
            request=synth_speech(SPOKEN), mip_opt_out=True, model="general", punctuate=True
        )
        alternative = response.results.channels[0].alternatives[0]
        words = " ".join(str(w.word) for w in alternative.words)
        assert alternative.transcript.endswith(".")  # punctuate=true
        assert jiwer.cer(SPOKEN, words) < 0.45
        assert response.metadata.model_info
        info = next(iter(response.metadata.model_info.values()))
        shipped = read_manifest(sorted(BUNDLED_MODELS_DIR.glob("*.dg"))[0])
        assert (info["name"], info["version"]) == (shipped.name, shipped.version)
