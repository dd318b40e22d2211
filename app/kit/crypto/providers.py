"""Key-encryption keys (KEKs): they wrap the organizations' data keys, never objects.

Two providers share one interface: ``LocalKeyProvider`` (a versioned key file, for development
and single-host installs) and ``AwsKmsKeyProvider`` (the KEK never leaves AWS KMS)::

    provider = LocalKeyProvider(Path("var/keys/kek.json"))
    wrapped = provider.wrap(new_data_key(), context={"org": str(org_id)})
    data_key = provider.unwrap(wrapped, context={"org": str(org_id)})
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.kit.crypto.segments import DATA_KEY_SIZE, NONCE_SIZE, TAG_SIZE, encode_context
from app.kit.errors import MIPError
from app.kit.text import ascii_number
from durable import write_atomic

KEY_FILE_FORMAT = 1
LOCAL_VERSION_PREFIX = "local-"
# KMS calls sit on request paths (first sample of an organization): fail fast, retry briefly.
KMS_CLIENT_CONFIG = Config(
    connect_timeout=5, read_timeout=10, retries={"max_attempts": 5, "mode": "standard"}
)


class KeyProviderError(MIPError):
    """The KEK cannot be used: missing or unsafe key file, KMS unreachable or access denied."""


class KeyUnwrapError(KeyProviderError):
    """A wrapped data key did not open: unknown KEK version, tampered, or another context."""


@dataclass(frozen=True)
class WrappedKey:
    kek_version: str
    ciphertext: bytes = field(repr=False)

    def __repr__(self) -> str:
        size = len(self.ciphertext)
        return f"WrappedKey(kek_version={self.kek_version!r}, ciphertext=<{size} bytes>)"


class KeyProvider(Protocol):
    @property
    def name(self) -> str:
        """``"local"`` or ``"aws-kms"``, stored beside each wrapped key."""
        ...

    def current_version(self) -> str: ...

    def wrap(self, key: bytes, *, context: Mapping[str, str]) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey, *, context: Mapping[str, str]) -> bytes: ...

    def rotate(self) -> str: ...


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class LocalKeyProvider:
    """KEKs in a JSON key file, created on first use with mode 0600.

    File: ``{"format": 1, "current": "local-2", "keys": {"local-1": "<base64>", ...}}``. Old
    versions stay so that keys wrapped before a rotation still unwrap. Writers (creation,
    rotation) serialize on a lock file beside it and replace the file atomically, so readers in
    other processes see the old or the new file, never a partial one.
    """

    name = "local"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int] | None = None
        self._current = ""
        self._keys: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"LocalKeyProvider(path={str(self.path)!r})"

    def current_version(self) -> str:
        with self._lock:
            self._refresh()
            return self._current

    def wrap(self, key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        _check_data_key(key)
        with self._lock:
            self._refresh()
            version, kek = self._current, self._keys[self._current]
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(kek).encrypt(nonce, key, _wrap_aad(context, version))
        return WrappedKey(version, nonce + sealed)

    def unwrap(self, wrapped: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        with self._lock:
            self._refresh()
            kek = self._keys.get(wrapped.kek_version)
        if kek is None:
            raise KeyUnwrapError(
                f"KEK version {wrapped.kek_version!r} is not in key file {self.path}"
            )
        blob = wrapped.ciphertext
        if len(blob) < NONCE_SIZE + TAG_SIZE:
            raise KeyUnwrapError(f"wrapped key under {wrapped.kek_version!r} is truncated")
        aad = _wrap_aad(context, wrapped.kek_version)
        try:
            return AESGCM(kek).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
        except InvalidTag:
            raise KeyUnwrapError(
                f"wrapped key failed authentication under KEK {wrapped.kek_version!r} "
                "(tampered, or wrapped for another context)"
            ) from None

    def rotate(self) -> str:
        """Add a new KEK version and make it current; return it. Old versions stay."""
        with self._lock:
            self._refresh()
            with self._write_lock():
                # Re-read under the lock: another process may have rotated meanwhile.
                self._reload_if_changed()
                numbers = [_local_number(version) for version in self._keys]
                version = f"{LOCAL_VERSION_PREFIX}{max(numbers, default=0) + 1}"
                keys = {**self._keys, version: AESGCM.generate_key(bit_length=256)}
                self._write(version, keys)
                self._reload_if_changed()
            return version

    def _refresh(self) -> None:
        """Create the key file if missing, then (re)load it if it changed on disk."""
        if not self.path.exists():
            self._create()
        self._reload_if_changed()

    def _reload_if_changed(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise KeyProviderError(f"key file {self.path} disappeared") from None
        # The mode is part of it so that a later `chmod 644` is refused too.
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size, info.st_mode)
        if stamp == self._stamp:
            return
        _refuse_loose_mode(self.path, info.st_mode)
        self._current, self._keys = _parse_key_file(self.path, self.path.read_bytes())
        self._stamp = stamp

    def _create(self) -> None:
        with self._write_lock():
            # Another process may have created it while this one waited for the lock.
            if not self.path.exists():
                version = f"{LOCAL_VERSION_PREFIX}1"
                self._write(version, {version: AESGCM.generate_key(bit_length=256)})

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # flock is per open file description: it also excludes threads of this process.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, current: str, keys: Mapping[str, bytes]) -> None:
        document = {
            "format": KEY_FILE_FORMAT,
            "current": current,
            "keys": {version: base64.b64encode(kek).decode() for version, kek in keys.items()},
        }
        # A secret: 0600, the temporary file included.
        write_atomic(self.path, json.dumps(document, indent=2).encode() + b"\n", mode=0o600)


class AwsKmsKeyProvider:
    """The KEK is an AWS KMS key; data keys are wrapped with KMS Encrypt and opened with Decrypt.

    ``current_version()`` is the configured key id (or ARN or alias), stored as each wrapped
    key's ``kek_version``. ``rotate()`` changes nothing and returns it: KMS rotates a key's
    material itself, and old ciphertexts keep decrypting. To move data keys to another KMS key,
    configure the new key id; the store's ``rotate-kek`` then re-wraps every data key whose
    ``kek_version`` differs from ``current_version()`` (unwrapping names the old key explicitly).
    """

    name = "aws-kms"

    def __init__(
        self, key_id: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        if not key_id:
            raise KeyProviderError("an AWS KMS key id is required")
        self.key_id = key_id
        self.region = region
        self.endpoint_url = endpoint_url
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AwsKmsKeyProvider(key_id={self.key_id!r}, region={self.region!r})"

    def current_version(self) -> str:
        return self.key_id

    def wrap(self, key: bytes, *, context: Mapping[str, str]) -> WrappedKey:
        _check_data_key(key)
        response = self._call(
            "Encrypt", KeyId=self.key_id, Plaintext=key, EncryptionContext=dict(context)
        )
        return WrappedKey(self.key_id, bytes(response["CiphertextBlob"]))

    def unwrap(self, wrapped: WrappedKey, *, context: Mapping[str, str]) -> bytes:
        response = self._call(
            "Decrypt",
            CiphertextBlob=wrapped.ciphertext,
            EncryptionContext=dict(context),
            KeyId=wrapped.kek_version,
        )
        return bytes(response["Plaintext"])

    def rotate(self) -> str:
        return self.current_version()

    def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        client = self._kms()
        method = {"Encrypt": client.encrypt, "Decrypt": client.decrypt}[operation]
        try:
            response: dict[str, Any] = method(**arguments)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "Unknown")
            message = f"KMS {operation} with key {arguments['KeyId']!r} failed: {code}"
            if operation == "Decrypt" and code in _UNWRAP_FAILURES:
                raise KeyUnwrapError(message) from None
            raise KeyProviderError(message) from None
        except BotoCoreError as error:
            raise KeyProviderError(
                f"KMS {operation} with key {arguments['KeyId']!r} failed: {type(error).__name__}"
            ) from None
        return response

    def _kms(self) -> Any:
        with self._lock:
            if self._client is None:
                # A session per provider: boto3's default session is not safe to share across
                # threads while clients are being created.
                session = boto3.session.Session()
                self._client = session.client(
                    "kms",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=KMS_CLIENT_CONFIG,
                )
            return self._client


# Decrypt errors that mean "this blob does not open here", as opposed to access or availability.
_UNWRAP_FAILURES = frozenset(
    {"InvalidCiphertextException", "IncorrectKeyException", "InvalidKeyUsageException"}
)


def _check_data_key(key: bytes) -> None:
    if len(key) != DATA_KEY_SIZE:
        raise ValueError(f"a data key is {DATA_KEY_SIZE} bytes (AES-256)")


def _wrap_aad(context: Mapping[str, str], kek_version: str) -> bytes:
    return encode_context(context) + kek_version.encode()


def _local_number(version: str) -> int:
    digits = version.removeprefix(LOCAL_VERSION_PREFIX)
    return ascii_number(digits) or 0


def _refuse_loose_mode(path: Path, mode: int) -> None:
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyProviderError(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`"
        )


def _parse_key_file(path: Path, raw: bytes) -> tuple[str, dict[str, bytes]]:
    try:
        document = json.loads(raw)
        if document["format"] != KEY_FILE_FORMAT:
            raise KeyProviderError(f"key file {path} has unsupported format {document['format']!r}")
        keys = {
            str(version): base64.b64decode(text, validate=True)
            for version, text in document["keys"].items()
        }
        current = str(document["current"])
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as error:
        # The error's text could quote file content, so only its kind is reported.
        raise KeyProviderError(f"key file {path} is malformed ({type(error).__name__})") from None
    if current not in keys or any(len(kek) != DATA_KEY_SIZE for kek in keys.values()):
        raise KeyProviderError(f"key file {path} is malformed (bad current version or key size)")
    return current, keys
