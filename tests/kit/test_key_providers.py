"""Key-encryption key providers: the local key file and AWS KMS (moto), held to the same tests."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.kit.crypto import (
    AwsKmsKeyProvider,
    KeyProvider,
    KeyProviderError,
    KeyUnwrapError,
    LocalKeyProvider,
    WrappedKey,
    new_data_key,
)
from app.kit.crypto.signing import SigningKey, load_public_key
from tests.conftest import S3Endpoint, free_port

ORG_A = {"org": "org-a", "purpose": "sample-data-key"}
ORG_B = {"org": "org-b", "purpose": "sample-data-key"}


@dataclass
class Kek:
    """A provider under test and how to move it to a new KEK version."""

    provider: KeyProvider
    # Returns a provider whose current KEK version is new (the same one for the local file).
    rotated: Callable[[], KeyProvider]


def local_kek(path: Path) -> Kek:
    provider = LocalKeyProvider(path)

    def rotated() -> KeyProvider:
        provider.rotate()
        return provider

    return Kek(provider, rotated)


def kms_provider(endpoint: S3Endpoint) -> AwsKmsKeyProvider:
    key_id: str = endpoint.client("kms").create_key()["KeyMetadata"]["KeyId"]
    return AwsKmsKeyProvider(key_id, region=endpoint.region, endpoint_url=endpoint.url)


@pytest.fixture(params=["local", "aws-kms"])
def kek(request: pytest.FixtureRequest, tmp_path: Path) -> Kek:
    if request.param == "local":
        return local_kek(tmp_path / "keys" / "kek.json")
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    # Moving to a new KMS key is configuring its id: a new provider instance.
    return Kek(kms_provider(endpoint), lambda: kms_provider(endpoint))


class TestWrapRoundTrip:
    def test_unwrap_returns_the_data_key(self, kek: Kek) -> None:
        data_key = new_data_key()
        wrapped = kek.provider.wrap(data_key, context=ORG_A)
        assert wrapped.kek_version == kek.provider.current_version()
        assert data_key not in wrapped.ciphertext
        assert kek.provider.unwrap(wrapped, context=ORG_A) == data_key

    def test_context_order_is_irrelevant(self, kek: Kek) -> None:
        data_key = new_data_key()
        wrapped = kek.provider.wrap(data_key, context={"a": "1", "b": "2"})
        assert kek.provider.unwrap(wrapped, context={"b": "2", "a": "1"}) == data_key

    def test_only_data_keys_are_wrapped(self, kek: Kek) -> None:
        with pytest.raises(ValueError, match="32 bytes"):
            kek.provider.wrap(b"short", context=ORG_A)

    def test_names(self, kek: Kek) -> None:
        expected = "local" if isinstance(kek.provider, LocalKeyProvider) else "aws-kms"
        assert kek.provider.name == expected


class TestUnwrapFailures:
    @pytest.mark.parametrize(
        "context", [ORG_B, {**ORG_A, "extra": "x"}, {"org": "org-a"}, {}], ids=str
    )
    def test_other_context(self, kek: Kek, context: dict[str, str]) -> None:
        wrapped = kek.provider.wrap(new_data_key(), context=ORG_A)
        with pytest.raises(KeyUnwrapError):
            kek.provider.unwrap(wrapped, context=context)

    def test_tampered_ciphertext(self, kek: Kek) -> None:
        wrapped = kek.provider.wrap(new_data_key(), context=ORG_A)
        damaged = bytearray(wrapped.ciphertext)
        damaged[-1] ^= 0x01
        with pytest.raises(KeyUnwrapError):
            kek.provider.unwrap(WrappedKey(wrapped.kek_version, bytes(damaged)), context=ORG_A)

    def test_errors_are_mip_errors_without_key_bytes(self, kek: Kek) -> None:
        data_key = new_data_key()
        wrapped = kek.provider.wrap(data_key, context=ORG_A)
        with pytest.raises(KeyUnwrapError) as info:
            kek.provider.unwrap(wrapped, context=ORG_B)
        assert isinstance(info.value, KeyProviderError)
        assert info.value.status_code == 500
        for text in (str(info.value), repr(info.value)):
            assert data_key.hex() not in text
            assert base64.b64encode(data_key).decode() not in text


class TestRotation:
    def test_old_wraps_still_unwrap_and_new_wraps_use_the_new_version(self, kek: Kek) -> None:
        old_key = new_data_key()
        old = kek.provider.wrap(old_key, context=ORG_A)
        rotated = kek.rotated()
        assert rotated.current_version() != old.kek_version
        assert rotated.unwrap(old, context=ORG_A) == old_key

        new_key = new_data_key()
        new = rotated.wrap(new_key, context=ORG_A)
        assert new.kek_version == rotated.current_version()
        assert rotated.unwrap(new, context=ORG_A) == new_key

    def test_rewrap_moves_a_data_key_to_the_new_version(self, kek: Kek) -> None:
        data_key = new_data_key()
        old = kek.provider.wrap(data_key, context=ORG_A)
        rotated = kek.rotated()
        rewrapped = rotated.wrap(rotated.unwrap(old, context=ORG_A), context=ORG_A)
        assert rewrapped.kek_version != old.kek_version
        assert rotated.unwrap(rewrapped, context=ORG_A) == data_key


class TestSecretsStayHidden:
    def test_wrapped_key_repr_shows_length_only(self) -> None:
        wrapped = WrappedKey("local-1", b"\xab" * 60)
        assert repr(wrapped) == "WrappedKey(kek_version='local-1', ciphertext=<60 bytes>)"
        assert "abab" not in str(wrapped)

    def test_provider_repr(self, kek: Kek) -> None:
        wrapped = kek.provider.wrap(new_data_key(), context=ORG_A)
        text = repr(kek.provider) + str(kek.provider)
        assert type(kek.provider).__name__ in text
        assert wrapped.ciphertext.hex() not in text
        if isinstance(kek.provider, LocalKeyProvider):
            document = json.loads(kek.provider.path.read_text())
            for encoded in document["keys"].values():
                assert encoded not in text
                assert base64.b64decode(encoded).hex() not in text


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestLocalKeyFile:
    def test_created_on_first_use_private(self, tmp_path: Path) -> None:
        path = tmp_path / "new-dir" / "kek.json"
        provider = LocalKeyProvider(path)
        assert not path.exists()
        assert provider.current_version() == "local-1"
        assert mode_of(path) == 0o600
        assert mode_of(path.parent) == 0o700
        document = json.loads(path.read_text())
        assert document["format"] == 1
        assert document["current"] == "local-1"
        assert len(base64.b64decode(document["keys"]["local-1"])) == 32

    def test_survives_reopen(self, tmp_path: Path) -> None:
        path = tmp_path / "kek.json"
        data_key = new_data_key()
        wrapped = LocalKeyProvider(path).wrap(data_key, context=ORG_A)
        content = path.read_bytes()
        assert LocalKeyProvider(path).unwrap(wrapped, context=ORG_A) == data_key
        assert path.read_bytes() == content

    def test_refuses_a_group_or_world_readable_file(self, tmp_path: Path) -> None:
        path = tmp_path / "kek.json"
        LocalKeyProvider(path).current_version()
        path.chmod(0o644)
        with pytest.raises(KeyProviderError, match="chmod 600") as info:
            LocalKeyProvider(path).current_version()
        assert str(path) in info.value.message

    def test_refuses_a_file_loosened_after_loading(self, tmp_path: Path) -> None:
        path = tmp_path / "kek.json"
        provider = LocalKeyProvider(path)
        wrapped = provider.wrap(new_data_key(), context=ORG_A)
        path.chmod(0o640)
        with pytest.raises(KeyProviderError, match="mode 640"):
            provider.unwrap(wrapped, context=ORG_A)

    def test_rotation_is_persisted_and_seen_by_other_instances(self, tmp_path: Path) -> None:
        path = tmp_path / "kek.json"
        reader, writer = LocalKeyProvider(path), LocalKeyProvider(path)
        assert reader.current_version() == "local-1"
        assert writer.rotate() == "local-2"
        assert writer.rotate() == "local-3"
        assert reader.current_version() == "local-3"
        document = json.loads(path.read_text())
        assert sorted(document["keys"]) == ["local-1", "local-2", "local-3"]
        assert mode_of(path) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == ["kek.json", "kek.json.lock"]

    def test_rotate_creates_the_file_first(self, tmp_path: Path) -> None:
        provider = LocalKeyProvider(tmp_path / "kek.json")
        assert provider.rotate() == "local-2"

    def test_unknown_version(self, tmp_path: Path) -> None:
        provider = LocalKeyProvider(tmp_path / "kek.json")
        wrapped = provider.wrap(new_data_key(), context=ORG_A)
        with pytest.raises(KeyUnwrapError, match="'local-9' is not in key file"):
            provider.unwrap(WrappedKey("local-9", wrapped.ciphertext), context=ORG_A)

    def test_truncated_wrapped_key(self, tmp_path: Path) -> None:
        provider = LocalKeyProvider(tmp_path / "kek.json")
        with pytest.raises(KeyUnwrapError, match="truncated"):
            provider.unwrap(WrappedKey("local-1", b"\x00" * 10), context=ORG_A)

    @pytest.mark.parametrize(
        "content",
        [
            b"not json",
            b"[]",
            b'{"format": 2, "current": "local-1", "keys": {}}',
            b'{"format": 1, "current": "local-2", "keys": {"local-1": "AAAA"}}',
            b'{"format": 1, "current": "local-1", "keys": {"local-1": "AAAA"}}',
            b'{"format": 1, "current": "local-1", "keys": {"local-1": "!!"}}',
        ],
        ids=["not-json", "list", "format-2", "no-current", "short-key", "not-base64"],
    )
    def test_malformed_file(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "kek.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, content)
        os.close(fd)
        with pytest.raises(KeyProviderError, match=r"kek\.json"):
            LocalKeyProvider(path).current_version()

    def test_concurrent_first_use_makes_one_key_file(self, tmp_path: Path) -> None:
        path = tmp_path / "kek.json"
        start = threading.Barrier(8)
        wrapped: list[WrappedKey] = []
        data_key = new_data_key()

        def first_use() -> None:
            provider = LocalKeyProvider(path)
            start.wait()
            wrapped.append(provider.wrap(data_key, context=ORG_A))

        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(wrapped) == 8
        assert list(json.loads(path.read_text())["keys"]) == ["local-1"]
        reader = LocalKeyProvider(path)
        assert all(reader.unwrap(each, context=ORG_A) == data_key for each in wrapped)

    def test_concurrent_rotations_lose_no_version(self, tmp_path: Path) -> None:
        path = tmp_path / "kek.json"
        LocalKeyProvider(path).current_version()
        versions: list[str] = []

        def rotate() -> None:
            versions.append(LocalKeyProvider(path).rotate())

        threads = [threading.Thread(target=rotate) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        expected = [f"local-{n}" for n in range(2, 8)]
        assert sorted(versions) == sorted(expected)
        document = json.loads(path.read_text())
        assert sorted(document["keys"]) == sorted(["local-1", *expected])
        assert document["current"] == "local-7"


class TestAwsKms:
    def test_rotate_keeps_the_configured_key(self, s3_endpoint: S3Endpoint) -> None:
        provider = kms_provider(s3_endpoint)
        assert provider.rotate() == provider.current_version() == provider.key_id

    def test_unknown_key_names_operation_and_aws_code(self, s3_endpoint: S3Endpoint) -> None:
        provider = AwsKmsKeyProvider(
            "alias/missing", region=s3_endpoint.region, endpoint_url=s3_endpoint.url
        )
        with pytest.raises(KeyProviderError, match=r"KMS Encrypt .*alias/missing.*NotFound"):
            provider.wrap(new_data_key(), context=ORG_A)

    def test_unreachable_endpoint(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        provider = AwsKmsKeyProvider(
            "some-key", region="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}"
        )
        with pytest.raises(KeyProviderError, match=r"KMS Decrypt .* failed: EndpointConnection"):
            provider.unwrap(WrappedKey("some-key", b"\x00" * 64), context=ORG_A)

    def test_key_id_required(self) -> None:
        with pytest.raises(KeyProviderError, match="key id"):
            AwsKmsKeyProvider("")


class TestSigningKeyOnEitherProvider:
    """The audit signing key's private half is wrapped by the provider: a KMS key works too."""

    def test_signs_reopens_and_opens_only_with_its_kek(self, kek: Kek, tmp_path: Path) -> None:
        path = tmp_path / "signing.json"
        signature = SigningKey(path, kek.provider).sign(b"checkpoint")
        reopened = SigningKey(path, kek.provider)
        load_public_key(reopened.public_key_pem()).verify(signature, b"checkpoint")
        document = json.loads(path.read_text())
        assert document["provider"] == kek.provider.name
        assert document["kek_version"] == kek.provider.current_version()
        with pytest.raises(KeyProviderError):
            SigningKey(path, local_kek(tmp_path / "stranger.json").provider).sign(b"x")
