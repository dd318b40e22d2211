"""``.dg`` model packages: round trip, deterministic bytes, file names, every way to break one."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import torch

from asr.features import FeatureConfig
from asr.model import CTCModel, ModelConfig
from asr.package import (
    PackageError,
    PackageManifest,
    ParsedName,
    check_decoding,
    filename_matches,
    new_manifest,
    package_filename,
    parse_package_filename,
    read_manifest,
    read_package,
    write_package,
)
from asr.tokenizer import CharTokenizer

TINY = ModelConfig(d_model=16, n_layers=1, kernel_sizes=[3], subsampling_channels=4)
UUID = "6f1c2a9e-4b7d-4c1e-9a55-0123456789ab"
LM = {"type": "word-bigram", "unigrams": {"ibuprofen": -3.5}, "order": 2}


def manifest(**overrides: Any) -> PackageManifest:
    fields: dict[str, Any] = {
        "name": "ctcconv-general",
        "architecture": "ctcconv",
        "domain": "general",
        "version": "2026-11-21.1",
        "uuid": UUID,
        "aliases": ["general", "base"],
        "created": "2026-11-21T10:00:00+00:00",
        "training_set": {"id": "ts-7", "version": 2},
        "metrics": {"wer": 0.2, "cer": 0.08},
    }
    return new_manifest(**{**fields, **overrides})


def weights(seed: int = 0, cfg: ModelConfig = TINY) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return CTCModel(cfg).state_dict()


def write(
    directory: Path, man: PackageManifest | None = None, *, style: str = "standard", **kw: Any
) -> Path:
    args: dict[str, Any] = {
        "model_config": TINY,
        "feature_config": FeatureConfig(),
        "tokenizer": CharTokenizer.english(),
        "state_dict": weights(),
        "filename_style": style,
        **kw,
    }
    return write_package(directory, man or manifest(), **args)


def members_of(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for info in tar:
            handle = tar.extractfile(info)
            assert handle is not None
            out[info.name] = handle.read()
        return out


def build_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def rebuild(path: Path, members: dict[str, bytes]) -> Path:
    """The package rewritten with ``members`` (in the given order), checksums untouched."""
    return build_tar(path, [regular(name, data) for name, data in members.items()])


@pytest.fixture
def package_path(tmp_path: Path) -> Path:
    return write(tmp_path / "out", lm=LM)


class TestRoundTrip:
    def test_everything_written_is_read_back(self, package_path: Path) -> None:
        package = read_package(package_path)
        assert package.path == package_path
        assert package.model_config == TINY
        assert package.feature_config == FeatureConfig()
        assert package.tokenizer == CharTokenizer.english()
        assert package.lm == LM
        original = weights()
        assert set(package.state_dict) == set(original)
        for name, tensor in original.items():
            assert torch.equal(package.state_dict[name], tensor), name
        m = package.manifest
        assert (m.name, m.version, m.uuid, m.languages, m.aliases) == (
            "ctcconv-general",
            "2026-11-21.1",
            UUID,
            ["en"],
            ["general", "base"],
        )
        assert m.metrics == {"wer": 0.2, "cer": 0.08}
        assert m.training_set == {"id": "ts-7", "version": 2}

    def test_manifest_records_the_sha256_of_every_other_member(self, package_path: Path) -> None:
        members = members_of(package_path)
        files = read_package(package_path).manifest.files
        assert set(files) == {"config.json", "tokenizer.json", "lm.json", "model.safetensors"}
        for name, digest in files.items():
            assert hashlib.sha256(members[name]).hexdigest() == digest

    def test_built_model_reproduces_the_original_outputs(self, package_path: Path) -> None:
        torch.manual_seed(0)
        original = CTCModel(TINY).eval()
        loaded = read_package(package_path).build_model()
        feats = torch.randn(2, 40, 64)  # (B, T, F)
        lengths = torch.tensor([40, 30])
        with torch.no_grad():
            expected, _ = original(feats, lengths)
            got, got_lengths = loaded(feats, lengths)
        assert torch.equal(got, expected)
        assert got_lengths.tolist() == [10, 8]

    def test_package_without_lm(self, tmp_path: Path) -> None:
        path = write(tmp_path)
        assert read_package(path).lm is None
        assert "lm.json" not in members_of(path)

    def test_read_manifest_reads_only_the_manifest(self, package_path: Path) -> None:
        assert read_manifest(package_path) == read_package(package_path).manifest


class TestDeterministicBytes:
    def test_same_inputs_same_bytes(self, tmp_path: Path) -> None:
        first = write(tmp_path / "a", lm=LM).read_bytes()
        second = write(tmp_path / "b", lm=LM).read_bytes()
        assert first == second

    def test_other_weights_other_bytes(self, tmp_path: Path) -> None:
        first = write(tmp_path / "a").read_bytes()
        second = write(tmp_path / "b", state_dict=weights(seed=1)).read_bytes()
        assert first != second

    def test_headers_are_fixed_and_members_ordered(self, package_path: Path) -> None:
        with tarfile.open(package_path) as tar:
            infos = tar.getmembers()
        assert [i.name for i in infos] == [
            "manifest.json",
            "config.json",
            "tokenizer.json",
            "lm.json",
            "model.safetensors",
        ]
        assert {(i.mtime, i.uid, i.gid, i.mode, i.uname, i.gname) for i in infos} == {
            (0, 0, 0, 0o644, "", "")
        }

    def test_write_leaves_no_temporary_file(self, tmp_path: Path) -> None:
        path = write(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == [path.name]


class TestWriteRefusesInconsistentPackages:
    def test_weights_of_another_config(self, tmp_path: Path) -> None:
        other = ModelConfig(d_model=8, n_layers=1, kernel_sizes=[3], subsampling_channels=4)
        with pytest.raises(PackageError, match="weights do not fit the model config"):
            write(tmp_path, state_dict=weights(cfg=other))
        assert list(tmp_path.iterdir()) == []

    def test_tokenizer_size_differs_from_model_output(self, tmp_path: Path) -> None:
        small = CharTokenizer(("<blank>", " ", "a"))
        with pytest.raises(PackageError, match="tokenizer has 3 symbols but the model outputs 29"):
            write(tmp_path, tokenizer=small)

    def test_mel_bands_differ(self, tmp_path: Path) -> None:
        with pytest.raises(PackageError, match="80 mel bands but the model expects 64"):
            write(tmp_path, feature_config=FeatureConfig(n_mels=80))

    def test_feature_model_kinds_skip_the_ctc_check(self, tmp_path: Path) -> None:
        path = write(tmp_path, manifest(kind="diarizer", name="diarizer-general"))
        assert read_package(path).manifest.kind == "diarizer"


class TestFileNames:
    def test_standard_name(self) -> None:
        assert package_filename(manifest()) == (
            "ctcconv-general.en.non-formatted.batch.6f1c2a9e.dg"
        )
        assert package_filename(manifest(formatted=True, mode="streaming", languages=["es"])) == (
            "ctcconv-general.es.formatted.streaming.6f1c2a9e.dg"
        )

    def test_legacy_name(self) -> None:
        assert package_filename(manifest(), "legacy") == "2026-11-21.1-general-ctcconv.dg"

    def test_both_styles_parse_to_the_same_model(self) -> None:
        m = manifest(domain="medical_v2", name="ctcconv-medical", languages=["en-US"])
        standard = parse_package_filename(package_filename(m))
        legacy = parse_package_filename(Path("/models") / package_filename(m, "legacy"))
        assert standard == ParsedName(
            style="standard",
            architecture="ctcconv",
            domain="medical_v2",
            language="en-US",
            formatted=False,
            mode="batch",
            id="6f1c2a9e",
        )
        assert legacy == ParsedName(
            style="legacy", architecture="ctcconv", domain="medical_v2", version="2026-11-21.1"
        )
        assert filename_matches(standard, m)
        assert filename_matches(legacy, m)

    def test_the_providers_documented_example(self) -> None:
        """The self-hosted documentation's example file name: a generation-numbered
        architecture and a 7-digit id, which is the start of the package's uuid."""
        parsed = parse_package_filename("nova-2-general.en.formatted.streaming.a12b345.dg")
        assert parsed == ParsedName(
            style="standard",
            architecture="nova-2",
            domain="general",
            language="en",
            formatted=True,
            mode="streaming",
            id="a12b345",
        )
        nova = manifest(
            name="nova-2-general",
            architecture="nova-2",
            formatted=True,
            mode="streaming",
            uuid="a12b3450-0000-4000-8000-000000000001",
        )
        assert filename_matches(parsed, nova)
        other = manifest(
            name="nova-2-general",
            architecture="nova-2",
            formatted=True,
            mode="streaming",
            uuid="a12b3460-0000-4000-8000-000000000001",
        )
        assert not filename_matches(parsed, other)

    @pytest.mark.parametrize(
        ("filename", "other"),
        [
            ("ctcconv-general.en.non-formatted.batch.deadbeef.dg", {}),
            ("ctcconv-medical.en.non-formatted.batch.6f1c2a9e.dg", {}),
            ("ctcconv-general.de.non-formatted.batch.6f1c2a9e.dg", {}),
            ("ctcconv-general.en.formatted.batch.6f1c2a9e.dg", {}),
            ("ctcconv-general.en.non-formatted.streaming.6f1c2a9e.dg", {}),
            ("2026-11-21.2-general-ctcconv.dg", {}),
            ("2026-11-21.1-general-ctcconv.dg", {"architecture": "nova"}),
        ],
    )
    def test_a_name_that_says_something_else_does_not_match(
        self, filename: str, other: dict[str, str]
    ) -> None:
        assert not filename_matches(parse_package_filename(filename), manifest(**other))

    @pytest.mark.parametrize(
        "filename",
        [
            "model.dg",
            "ctcconv-general.en.non-formatted.batch.6f1c2a9e.tar",
            "ctc-conv-general.en.non-formatted.batch.6f1c2a9e.dg",
            "ctcconv-general.en.raw.batch.6f1c2a9e.dg",
            "ctcconv-general.en.non-formatted.batch.6F1C2A9E.dg",
            "ctcconv-general.en.non-formatted.batch.6f1c2a.dg",
            "nova-two-general.en.non-formatted.batch.6f1c2a9e.dg",
            "2026-11-21-general-ctcconv.dg",
            "",
        ],
    )
    def test_names_of_neither_style_are_refused(self, filename: str) -> None:
        with pytest.raises(PackageError, match="file name matches neither"):
            parse_package_filename(filename)


class TestManifestValidation:
    def test_round_trip_through_json(self) -> None:
        m = manifest(tags=["mip"], languages=["en", "en-GB"])
        assert PackageManifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"kind": "tts"}, "kind must be one of"),
            ({"architecture": "ctc-conv"}, "architecture 'ctc-conv': lowercase alphanumeric"),
            ({"domain": "Medical"}, "domain 'Medical'"),
            ({"version": "2026-11-21"}, "version '2026-11-21': YYYY-MM-DD.N"),
            ({"version": "2026-13-40.1"}, "has no valid date"),
            ({"uuid": "not-a-uuid"}, "is not a UUID"),
            ({"uuid": UUID.upper()}, "uuid must be written as"),
            ({"languages": []}, "languages [] must be a list of valid codes"),
            ({"languages": ["English"]}, "languages"),
            ({"mode": "live"}, "mode must be 'batch' or 'streaming'"),
            ({"aliases": ["Base Model"]}, "aliases"),
            ({"created": "2026-11-21T10:00:00"}, "must be an ISO-8601 UTC time"),
            ({"created": "2026-11-21T10:00:00+02:00"}, "must be an ISO-8601 UTC time"),
            ({"metrics": {"wer": "low"}}, "metrics must map names to numbers"),
        ],
    )
    def test_invalid_fields(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(PackageError, match=re.escape(message)):
            manifest(**overrides)

    def test_missing_and_unknown_fields(self) -> None:
        data = manifest().to_dict()
        del data["version"]
        with pytest.raises(PackageError, match="manifest is missing fields: version"):
            PackageManifest.from_dict(data)
        with pytest.raises(PackageError, match="unknown manifest fields: owner"):
            PackageManifest.from_dict({**manifest().to_dict(), "owner": "x"})
        with pytest.raises(PackageError, match="manifest format must be 'mip-dg/1'"):
            PackageManifest.from_dict({**manifest().to_dict(), "format": "onnx"})
        with pytest.raises(PackageError, match="manifest must be a JSON object"):
            PackageManifest.from_dict(["not", "a", "dict"])


class TestDecodingSettings:
    def test_known_settings_pass(self) -> None:
        settings = {
            "decoder": "beam",
            "beam_width": 32,
            "lm_weight": 0.5,
            "word_bonus": 3,
            "snap": False,
            "oov_penalty": 8.0,
        }
        assert check_decoding(settings) == settings
        assert check_decoding({}) == {}  # a package written before a setting existed

    @pytest.mark.parametrize(
        ("settings", "message"),
        [
            ({"oov_penalty": -1.0}, "oov_penalty must be a finite number"),
            ({"oov_penalty": float("inf")}, "oov_penalty must be a finite number"),
            ({"oov_penalty": "8"}, "oov_penalty has the wrong type"),
            ({"oov_penalty": True}, "oov_penalty has the wrong type"),
            ({"decoder": "viterbi"}, "'greedy' or 'beam'"),
            ({"beam": 8}, "unknown decoding fields: beam"),
        ],
    )
    def test_bad_settings_are_named(self, settings: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            check_decoding(settings)


class TestCorruptPackages:
    def test_truncated_tar(self, package_path: Path) -> None:
        data = package_path.read_bytes()
        package_path.write_bytes(data[: len(data) // 2])
        with pytest.raises(PackageError, match="corrupt tar") as err:
            read_package(package_path)
        assert str(package_path) in str(err.value)

    def test_not_a_tar_at_all(self, tmp_path: Path) -> None:
        path = tmp_path / "junk.dg"
        path.write_bytes(b"RIFF....WAVEfmt " * 10)
        with pytest.raises(PackageError, match="corrupt tar"):
            read_package(path)
        with pytest.raises(PackageError, match="corrupt tar"):
            read_manifest(path)

    def test_checksum_mismatch(self, package_path: Path) -> None:
        members = members_of(package_path)
        tampered = bytearray(members["model.safetensors"])
        tampered[-1] ^= 0xFF
        rebuild(package_path, {**members, "model.safetensors": bytes(tampered)})
        with pytest.raises(PackageError, match=r"checksum mismatch for model\.safetensors"):
            read_package(package_path)

    def test_missing_member(self, package_path: Path) -> None:
        members = members_of(package_path)
        del members["tokenizer.json"]
        rebuild(package_path, members)
        with pytest.raises(PackageError, match=r"missing member\(s\): tokenizer.json"):
            read_package(package_path)

    def test_member_not_listed_in_manifest(self, tmp_path: Path) -> None:
        path = write(tmp_path)  # no lm.json
        rebuild(path, {**members_of(path), "lm.json": b"{}"})
        with pytest.raises(PackageError, match="manifest lists"):
            read_package(path)

    def test_bad_manifest_json(self, package_path: Path) -> None:
        rebuild(package_path, {**members_of(package_path), "manifest.json": b"{not json"})
        with pytest.raises(PackageError, match=r"manifest\.json is not valid JSON"):
            read_package(package_path)
        with pytest.raises(PackageError, match=r"manifest\.json is not valid JSON"):
            read_manifest(package_path)

    def test_manifest_with_a_bad_field(self, package_path: Path) -> None:
        members = members_of(package_path)
        data = json.loads(members["manifest.json"])
        data["mode"] = "realtime"
        rebuild(package_path, {**members, "manifest.json": json.dumps(data).encode()})
        with pytest.raises(PackageError, match=r"bad manifest\.json: mode must be"):
            read_package(package_path)

    @pytest.mark.parametrize("name", ["../manifest.json", "/etc/manifest.json", "a/config.json"])
    def test_path_traversal_member(self, package_path: Path, name: str) -> None:
        members = list(members_of(package_path).items())
        build_tar(package_path, [regular(n, d) for n, d in members] + [regular(name, b"{}")])
        with pytest.raises(PackageError, match="unsafe member path"):
            read_package(package_path)

    @pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE])
    def test_links_and_directories_are_refused(self, package_path: Path, kind: bytes) -> None:
        link = tarfile.TarInfo("lm.json")
        link.type = kind
        link.linkname = "/etc/passwd"
        members = [regular(n, d) for n, d in members_of(package_path).items() if n != "lm.json"]
        build_tar(package_path, [*members, (link, b"")])
        with pytest.raises(PackageError, match=r"'lm\.json' is not a regular file"):
            read_package(package_path)

    def test_unexpected_and_duplicate_members(self, package_path: Path) -> None:
        members = list(members_of(package_path).items())
        build_tar(package_path, [regular(n, d) for n, d in members] + [regular("run.py", b"")])
        with pytest.raises(PackageError, match=r"unexpected member 'run\.py'"):
            read_package(package_path)
        build_tar(package_path, [regular(n, d) for n, d in members + members[:1]])
        with pytest.raises(PackageError, match=r"duplicate member 'manifest\.json'"):
            read_package(package_path)

    def test_oversized_member(self, package_path: Path) -> None:
        members = members_of(package_path)
        huge = b" " * (4 * 1024 * 1024 + 1)
        rebuild(package_path, {**members, "manifest.json": huge})
        with pytest.raises(PackageError, match=r"'manifest\.json' is 4194305 bytes, over 4194304"):
            read_package(package_path)

    def test_weights_that_do_not_fit_the_config(self, package_path: Path) -> None:
        # Consistent checksums, wrong contents: config.json says a bigger model.
        members = members_of(package_path)
        config = json.loads(members["config.json"])
        config["model"]["d_model"] = 32
        new_config = json.dumps(config).encode()
        data = json.loads(members["manifest.json"])
        data["files"]["config.json"] = hashlib.sha256(new_config).hexdigest()
        rebuild(
            package_path,
            {**members, "manifest.json": json.dumps(data).encode(), "config.json": new_config},
        )
        with pytest.raises(PackageError, match="weights do not fit the model config"):
            read_package(package_path)

    def test_invalid_model_config(self, package_path: Path) -> None:
        members = members_of(package_path)
        new_config = json.dumps({"model": {"encoder": "rnn"}, "features": {}}).encode()
        data = json.loads(members["manifest.json"])
        data["files"]["config.json"] = hashlib.sha256(new_config).hexdigest()
        rebuild(
            package_path,
            {**members, "manifest.json": json.dumps(data).encode(), "config.json": new_config},
        )
        with pytest.raises(PackageError, match="bad config or tokenizer: encoder must be"):
            read_package(package_path)
