"""The model directory: scanning, skipping corrupt packages, polling, resolving, feature models."""

from __future__ import annotations

import io
import logging
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest

from app.engine.registry import (
    NO_SUCH_MODEL,
    AsrKey,
    ModelNotFound,
    ModelRegistry,
    NoSuchModel,
    open_model_registry,
)
from app.kit.settings import Settings
from asr.package import read_manifest
from tests.conftest import wait_until
from tests.engine.conftest import make_manifest, make_package, write_tiny

UUID = "6f1c2a9e-4b7d-4c1e-9a55-0123456789ab"


def registry_of(*dirs: Path, poll_seconds: float = 0.05) -> ModelRegistry:
    return ModelRegistry(list(dirs), poll_seconds=poll_seconds)


def served(registry: ModelRegistry) -> list[tuple[str, str]]:
    return [(m.manifest.name, m.manifest.version) for m in registry.models()]


def members_of(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for info in tar:
            handle = tar.extractfile(info)
            assert handle is not None
            out[info.name] = handle.read()
        return out


def rewrite(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def warnings_about(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and path.name in r.getMessage()
    ]


class TestAsrKey:
    def test_renders_like_the_reference_service(self) -> None:
        manifest = make_manifest(uuid=UUID, languages=["en", "en-US"])
        assert str(AsrKey.of(manifest)) == (
            'AsrKey { name: "ctcconv-general", version: "2026-11-21.1", '
            'languages: ["en", "en-US"], uuid: 6f1c2a9e-4b7d-4c1e-9a55-0123456789ab, '
            'formatted: false, mode: Batch, architecture: "ctcconv" }'
        )

    def test_streaming_and_formatted(self) -> None:
        key = AsrKey.of(make_manifest(uuid=UUID, mode="streaming", formatted=True))
        assert "formatted: true, mode: Streaming," in str(key)


class TestScan:
    def test_loads_every_package_and_logs_its_key(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="mip.engine")
        path = make_package(tmp_path, uuid=UUID)
        make_package(tmp_path, name="ctcconv-medical", domain="medical", aliases=["medical"])
        registry = registry_of(tmp_path)
        registry.scan()
        assert served(registry) == [
            ("ctcconv-general", "2026-11-21.1"),
            ("ctcconv-medical", "2026-11-21.1"),
        ]
        loaded = registry.get(UUID)
        assert loaded is not None
        assert loaded.path == path
        assert loaded.package.build_model().cfg.d_model == 16
        inserted = [r for r in caplog.records if r.getMessage().startswith("Inserting model")]
        assert len(inserted) == 2
        assert all(r.levelno == logging.INFO and r.name == "mip.engine" for r in inserted)
        assert f"Inserting model key={AsrKey.of(loaded.manifest)}" in caplog.messages

    def test_rescanning_an_unchanged_directory_does_nothing(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="mip.engine")
        make_package(tmp_path)
        registry = registry_of(tmp_path)
        registry.scan()
        first = registry.models()
        caplog.clear()
        registry.scan()
        assert registry.models() == first
        assert caplog.records == []

    def test_removed_file_is_dropped_and_logged(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="mip.engine")
        path = make_package(tmp_path, uuid=UUID)
        registry = registry_of(tmp_path)
        registry.scan()
        key = AsrKey.of(read_manifest(path))
        path.unlink()
        registry.scan()
        assert registry.models() == []
        assert f"Removing model key={key}" in caplog.messages

    def test_both_directories_are_scanned(self, tmp_path: Path) -> None:
        own, bundled = tmp_path / "own", tmp_path / "bundled"
        make_package(own, name="ctcconv-medical", domain="medical", aliases=[])
        make_package(bundled)
        registry = registry_of(own, bundled, tmp_path / "missing")
        registry.scan()
        assert {name for name, _ in served(registry)} == {"ctcconv-general", "ctcconv-medical"}

    def test_other_files_and_temporaries_are_ignored(self, tmp_path: Path) -> None:
        path = make_package(tmp_path)
        (tmp_path / "notes.txt").write_text("not a model")
        (tmp_path / f".{path.name}.abc.tmp").write_bytes(path.read_bytes()[:100])
        (tmp_path / ".hidden.dg").write_bytes(b"partial")
        (tmp_path / "folder.dg").mkdir()
        registry = registry_of(tmp_path)
        registry.scan()
        assert served(registry) == [("ctcconv-general", "2026-11-21.1")]

    def test_feature_models_are_recorded_by_kind(self, tmp_path: Path) -> None:
        make_package(tmp_path)
        make_package(tmp_path, kind="phoneme", name="phoneme-general", architecture="phon")
        registry = registry_of(tmp_path)
        registry.scan()
        assert registry.feature_kinds() == {"phoneme"}
        assert served(registry) == [("ctcconv-general", "2026-11-21.1")]

    def test_a_feature_this_service_does_not_run_is_refused_at_load(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A diarizer package would otherwise make diarize=true a 200 with no speakers."""
        make_package(tmp_path)
        diarizer = make_package(
            tmp_path, kind="diarizer", name="diarizer-general", architecture="diar"
        )
        registry = registry_of(tmp_path)
        with caplog.at_level(logging.WARNING, logger="mip.engine"):
            registry.scan()
            registry.scan()  # warned once, not on every poll
        assert registry.feature_kinds() == frozenset()
        warnings = [r.getMessage() for r in caplog.records if "Skipping" in r.getMessage()]
        assert warnings == [
            f"Skipping diarizer model package {diarizer.name}: this service does not run "
            "diarizer models"
        ]


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _flip_weight_byte(path: Path) -> Path:
    members = members_of(path)
    weights = bytearray(members["model.safetensors"])
    weights[-1] ^= 0xFF
    rewrite(path, {**members, "model.safetensors": bytes(weights)})
    return path


def _drop_tokenizer(path: Path) -> Path:
    members = members_of(path)
    del members["tokenizer.json"]
    rewrite(path, members)
    return path


def _break_manifest_json(path: Path) -> Path:
    rewrite(path, {**members_of(path), "manifest.json": b'{"format": "mip-dg/1", '})
    return path


def _traversal_member(path: Path) -> Path:
    rewrite(path, {**members_of(path), "../../escape.json": b"{}"})
    return path


def _rename_to_another_id(path: Path) -> Path:
    other = path.with_name(path.name.replace(".6f1c2a9e.", ".0badc0de."))
    path.rename(other)
    return other


def _rename_to_another_version(path: Path) -> Path:
    other = path.with_name("2026-11-20.1-general-ctcconv.dg")
    path.rename(other)
    return other


def _rename_to_no_style(path: Path) -> Path:
    other = path.with_name("general.dg")
    path.rename(other)
    return other


CORRUPTIONS = {
    "truncated tar": (_truncate, "corrupt tar"),
    "checksum mismatch": (_flip_weight_byte, "checksum mismatch for model.safetensors"),
    "missing member": (_drop_tokenizer, "missing member(s): tokenizer.json"),
    "bad manifest json": (_break_manifest_json, "manifest.json is not valid JSON"),
    "path traversal": (_traversal_member, "unsafe member path '../../escape.json'"),
    "name of another id": (_rename_to_another_id, "file name does not match its manifest"),
    "name of another version": (_rename_to_another_version, "does not match its manifest"),
    "name of neither style": (_rename_to_no_style, "file name matches neither"),
}


class TestCorruptPackagesAreSkipped:
    @pytest.mark.parametrize("case", list(CORRUPTIONS))
    def test_skipped_with_a_warning_while_good_ones_load(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
    ) -> None:
        corrupt, reason = CORRUPTIONS[case]
        make_package(tmp_path, name="ctcconv-medical", domain="medical", aliases=["medical"])
        bad = corrupt(make_package(tmp_path, uuid=UUID))
        registry = registry_of(tmp_path)
        registry.scan()
        assert served(registry) == [("ctcconv-medical", "2026-11-21.1")]
        warnings = warnings_about(caplog, bad)
        assert len(warnings) == 1
        assert warnings[0].startswith(f"Skipping model package {bad.name}: ")
        assert reason in warnings[0]

    def test_warned_once_then_retried_when_the_file_changes(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        good = make_package(tmp_path / "staging", uuid=UUID)
        bad = tmp_path / "models" / good.name
        bad.parent.mkdir()
        bad.write_bytes(good.read_bytes()[:3000])
        registry = registry_of(bad.parent)
        registry.scan()
        registry.scan()
        assert len(warnings_about(caplog, bad)) == 1
        os.replace(good, bad)  # the complete file arrives under the same name
        registry.scan()
        assert [m.manifest.uuid for m in registry.models()] == [UUID]

    def test_a_directory_that_cannot_be_listed_never_raises(self, tmp_path: Path) -> None:
        not_a_dir = tmp_path / "file"
        not_a_dir.write_text("x")
        registry = registry_of(not_a_dir)
        registry.scan()
        assert registry.models() == []


class TestSameModelTwice:
    def test_same_uuid_in_two_files_is_loaded_once(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        manifest = make_manifest(uuid=UUID)
        legacy = write_tiny(tmp_path, manifest, style="legacy")
        standard = write_tiny(tmp_path, manifest, style="standard")
        registry = registry_of(tmp_path)
        registry.scan()
        models = registry.models()
        assert [m.path for m in models] == [legacy]  # sorted by name: the first one wins
        (warning,) = warnings_about(caplog, standard)
        assert f"uuid {UUID} is already served from {legacy.name}" in warning

    def test_the_other_file_takes_over_when_the_first_goes(self, tmp_path: Path) -> None:
        manifest = make_manifest(uuid=UUID)
        legacy = write_tiny(tmp_path, manifest, style="legacy")
        standard = write_tiny(tmp_path, manifest, style="standard")
        registry = registry_of(tmp_path)
        registry.scan()
        legacy.unlink()
        registry.scan()
        assert [m.path for m in registry.models()] == [standard]

    def test_both_file_name_styles_resolve_to_the_same_model(self, tmp_path: Path) -> None:
        manifest = make_manifest(uuid=UUID)
        for style in ("legacy", "standard"):
            directory = tmp_path / style
            write_tiny(directory, manifest, style=style)
            registry = registry_of(directory)
            registry.scan()
            for name in ("ctcconv-general", "general", UUID, "2026-11-21.1-general-ctcconv"):
                assert registry.resolve(model=name, language="en", version=None).key.uuid == UUID

    def test_the_providers_documented_file_name_loads(self, tmp_path: Path) -> None:
        """nova-2-general.en.formatted.streaming.a12b345.dg, as the self-hosted documentation
        names a model: its fields and the start of its uuid agree with the manifest."""
        manifest = make_manifest(
            name="nova-2-general",
            architecture="nova-2",
            formatted=True,
            mode="streaming",
            uuid="a12b3450-0000-4000-8000-000000000001",
        )
        written = write_tiny(tmp_path / "build", manifest)
        models = tmp_path / "models"
        models.mkdir()
        written.rename(models / "nova-2-general.en.formatted.streaming.a12b345.dg")
        registry = registry_of(models)
        registry.scan()
        loaded = registry.resolve(
            model="nova-2-general", language="en-US", version=None, mode="streaming"
        )
        assert (loaded.key.architecture, loaded.manifest.uuid) == ("nova-2", manifest.uuid)
        with pytest.raises(NoSuchModel):  # a streaming model does not serve batch requests
            registry.resolve(model="nova-2-general", language="en", version=None)


class TestPolling:
    def test_a_new_file_is_picked_up_and_a_removed_one_disappears(self, tmp_path: Path) -> None:
        registry = registry_of(tmp_path, poll_seconds=0.05)
        registry.start()
        try:
            assert registry.models() == []
            path = make_package(tmp_path, uuid=UUID)
            assert wait_until(lambda: registry.get(UUID) is not None)
            path.unlink()
            assert wait_until(lambda: registry.get(UUID) is None)
        finally:
            registry.stop()

    def test_start_loads_before_returning_and_stop_is_prompt(self, tmp_path: Path) -> None:
        make_package(tmp_path, uuid=UUID)
        registry = registry_of(tmp_path, poll_seconds=600)
        registry.start()
        assert registry.get(UUID) is not None  # no wait: start() scans once itself
        poller = registry._thread
        assert poller is not None
        assert poller.is_alive()
        # stop() must wake the poller, not wait out its 10-minute interval. The join bound is a
        # hang guard (a tenth of the interval), not a speed figure: a poller that sleeps instead
        # of waiting on the stop event would still be asleep when it expires.
        stopper = threading.Thread(target=registry.stop)
        stopper.start()
        stopper.join(timeout=60)
        assert not stopper.is_alive(), "stop() waited for the poll interval"
        assert not poller.is_alive()

    def test_stopped_registry_no_longer_polls(self, tmp_path: Path) -> None:
        registry = registry_of(tmp_path, poll_seconds=0.05)
        registry.start()
        registry.stop()
        make_package(tmp_path, uuid=UUID)
        time.sleep(0.2)
        assert registry.get(UUID) is None


@pytest.fixture
def catalog(tmp_path: Path) -> ModelRegistry:
    """general: 2026-11-21.1, .9, .10 (newest) and 2025-01-05.3; medical; a streaming model."""
    for version, seed in [("2026-11-21.1", 0), ("2026-11-21.9", 1), ("2025-01-05.3", 2)]:
        make_package(tmp_path, version=version, seed=seed, languages=["en", "en-GB"])
    make_package(tmp_path, version="2026-11-21.10", uuid=UUID, languages=["en", "en-GB"])
    make_package(tmp_path, name="ctcconv-medical", domain="medical", aliases=["medical"])
    make_package(
        tmp_path, name="ctcstream-general", architecture="ctcstream", mode="streaming", aliases=[]
    )
    make_package(
        tmp_path, name="ctcconv-spanish", domain="spanish", languages=["es"], aliases=["spanish"]
    )
    registry = registry_of(tmp_path)
    registry.scan()
    return registry


class TestResolve:
    @pytest.mark.parametrize(
        "model", ["ctcconv-general", "general", "base", "GENERAL", "ctcconv", UUID, UUID.upper()]
    )
    def test_names_aliases_uuid_and_architecture(self, catalog: ModelRegistry, model: str) -> None:
        loaded = catalog.resolve(model=model, language="en", version=None)
        assert (loaded.manifest.name, loaded.manifest.version) == (
            "ctcconv-general",
            "2026-11-21.10",
        )

    def test_no_model_means_the_default(self, catalog: ModelRegistry) -> None:
        assert catalog.resolve(model=None, language=None, version=None).key.uuid == UUID
        other = ModelRegistry(catalog.dirs, poll_seconds=1, default_model="medical")
        other.scan()
        assert other.resolve(model=None, language=None, version=None).key.name == (
            "ctcconv-medical"
        )

    @pytest.mark.parametrize("language", ["en", "en-US", "en-GB", "EN-au", "En", None])
    def test_language_variants(self, catalog: ModelRegistry, language: str | None) -> None:
        assert catalog.resolve(model="general", language=language, version=None).key.uuid == UUID

    def test_language_picks_between_domains(self, catalog: ModelRegistry) -> None:
        assert catalog.resolve(model="spanish", language="es-419", version=None).key.name == (
            "ctcconv-spanish"
        )

    @pytest.mark.parametrize(
        ("version", "expected"),
        [
            (None, "2026-11-21.10"),
            ("latest", "2026-11-21.10"),
            ("2026-11-21.9", "2026-11-21.9"),
            ("2025-01-05.3", "2025-01-05.3"),
        ],
    )
    def test_versions(self, catalog: ModelRegistry, version: str | None, expected: str) -> None:
        loaded = catalog.resolve(model="general", language="en", version=version)
        assert loaded.manifest.version == expected

    def test_legacy_name_pins_the_version(self, catalog: ModelRegistry) -> None:
        loaded = catalog.resolve(model="2026-11-21.9-general-ctcconv", language=None, version=None)
        assert loaded.manifest.version == "2026-11-21.9"

    def test_architecture_alone_prefers_the_general_domain(self, catalog: ModelRegistry) -> None:
        assert catalog.resolve(model="ctcconv", language="en", version=None).key.name == (
            "ctcconv-general"
        )
        assert catalog.resolve(model="ctcconv", language="es", version=None).key.name == (
            "ctcconv-spanish"
        )

    def test_streaming_mode(self, catalog: ModelRegistry) -> None:
        loaded = catalog.resolve(model="ctcstream", language="en", version=None, mode="streaming")
        assert loaded.key.mode == "streaming"

    @pytest.mark.parametrize(
        ("model", "language", "version", "mode"),
        [
            ("nova-3", "en", None, "batch"),
            ("general", "de", None, "batch"),
            ("medical", "es", None, "batch"),
            ("general", "en", "2026-11-22.1", "batch"),
            ("general", "en", "2026-11-21", "batch"),
            ("general", "en", None, "streaming"),
            ("2026-11-21.9-medical-ctcconv", None, None, "batch"),
            ("2026-11-21.9-general-ctcconv", None, "2026-11-21.10", "batch"),
        ],
    )
    def test_no_match(
        self,
        catalog: ModelRegistry,
        model: str,
        language: str | None,
        version: str | None,
        mode: str,
    ) -> None:
        with pytest.raises(NoSuchModel) as err:
            catalog.resolve(model=model, language=language, version=version, mode=mode)
        assert err.value.message == (
            "Bad Request: No such model/language/tier combination found. You could try the "
            '"general" model (language: en-US, base tier).'
        )
        assert err.value.message == NO_SUCH_MODEL
        assert (err.value.status_code, err.value.err_code) == (400, "Bad Request")

    def test_an_operator_alias_names_an_installed_model(self, catalog: ModelRegistry) -> None:
        """nova-3 means nothing here until MIP_MODEL_ALIASES maps it; an alias never hides a
        model that has the name itself."""
        with pytest.raises(NoSuchModel):
            catalog.resolve(model="nova-3", language="en", version=None)
        catalog.aliases = {"nova-3": "general", "medical": "general", "nova-2": "nothing"}
        aliased = catalog.resolve(model="NOVA-3", language="en", version=None)
        assert aliased.key.uuid == UUID  # the newest general model
        medical = catalog.resolve(model="medical", language="en", version=None)
        assert medical.manifest.name == "ctcconv-medical"
        with pytest.raises(NoSuchModel):  # an alias of a model that is not installed
            catalog.resolve(model="nova-2", language="en", version=None)
        with pytest.raises(NoSuchModel):  # the target must serve the language asked for
            catalog.resolve(model="nova-3", language="es", version=None)

    def test_the_alias_table_is_checked_when_read(self) -> None:
        settings = Settings(model_aliases={" Nova-3 ": "General"})
        assert settings.model_aliases == {"nova-3": "general"}
        for bad in ({"nova 3": "general"}, {"general": "general"}, {"x": ""}):
            with pytest.raises(ValueError, match="MIP_MODEL_ALIASES"):
                Settings(model_aliases=bad)

    def test_empty_directory(self, tmp_path: Path) -> None:
        with pytest.raises(NoSuchModel):
            registry_of(tmp_path).resolve(model=None, language=None, version=None)

    def test_get_or_raise(self, catalog: ModelRegistry) -> None:
        assert catalog.get_or_raise(UUID).manifest.version == "2026-11-21.10"
        with pytest.raises(ModelNotFound, match="Model 00000000-0000-0000-0000-000000000000"):
            catalog.get_or_raise("00000000-0000-0000-0000-000000000000")


class TestFromSettings:
    def test_models_dir_is_created_and_bundled_dir_scanned(self, tmp_path: Path) -> None:
        bundled = tmp_path / "bundled"
        make_package(bundled, uuid=UUID)
        settings = Settings(
            env="test", data_dir=tmp_path / "var", bundled_models_dir=bundled, default_model="base"
        )
        registry = open_model_registry(settings)
        assert (tmp_path / "var" / "models").is_dir()
        assert registry.dirs == [tmp_path / "var" / "models", bundled]
        registry.scan()
        assert registry.resolve(model=None, language="en", version=None).key.uuid == UUID

    def test_the_bundled_dir_can_be_switched_off(self, tmp_path: Path) -> None:
        settings = Settings(env="test", data_dir=tmp_path, bundled_models_dir="")
        assert settings.bundled_models_dir is None
        assert open_model_registry(settings).dirs == [tmp_path / "models"]

    def test_the_default_bundled_dir_is_models_next_to_app(self) -> None:
        root = Path(__file__).resolve().parents[2]
        assert Settings().bundled_models_dir == root / "models"
