"""The Ed25519 key that signs audit checkpoints, exports and compliance reports.

The private key never lies on disk in the clear: its 32-byte seed is wrapped by the
configured :class:`~app.kit.crypto.providers.KeyProvider` (the local key file or an AWS KMS
key) and kept in a small JSON file, created on first use with mode 0600. Anyone may hold the
public key; :func:`verify_signature` needs nothing else (no database, no provider)::

    signer = SigningKey(Path("var/keys/signing.json"), LocalKeyProvider(Path("var/keys/kek.json")))
    signature = signer.sign(payload)
    verify_signature(load_public_key(signer.public_key_pem()), payload, signature)  # True

The key id names the key everywhere it is used: ``ed25519:`` and the first 16 hex digits of
the SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.kit.crypto.providers import KeyProvider, KeyProviderError, WrappedKey
from durable import write_atomic

SIGNING_FILE_FORMAT = 1
ALGORITHM = "ed25519"
_PURPOSE = "audit-signing"


class SigningKeyError(KeyProviderError):
    """The signing key file is missing, malformed, unsafe, or does not open."""


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{ALGORITHM}:{hashlib.sha256(raw).hexdigest()[:16]}"


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """A public key from PEM (``-----BEGIN PUBLIC KEY-----``) or 32 raw bytes."""
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError("not an Ed25519 public key (PEM or 32 raw bytes)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"not an Ed25519 public key ({type(key).__name__})")
    return key


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def verify_signature(public_key: Ed25519PublicKey, payload: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


class SigningKey:
    """The service's signing key, created on first use and kept wrapped by ``provider``.

    File: ``{"format": 1, "algorithm": "ed25519", "key_id": ..., "public_key": "<base64>",
    "provider": "local", "kek_version": ..., "wrapped": "<base64>"}``.
    """

    def __init__(self, path: Path, provider: KeyProvider) -> None:
        self.path = Path(path)
        self.provider = provider
        self._lock = threading.Lock()
        self._private: Ed25519PrivateKey | None = None

    def __repr__(self) -> str:
        return f"SigningKey(path={str(self.path)!r}, provider={self.provider.name!r})"

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key().public_key()

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def public_key_pem(self) -> bytes:
        return public_key_pem(self.public_key)

    def sign(self, payload: bytes) -> bytes:
        return self._key().sign(payload)

    def _key(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._private is None:
                if not self.path.exists():
                    self._create()
                self._private = self._open()
            return self._private

    def _open(self) -> Ed25519PrivateKey:
        info = self.path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SigningKeyError(
                f"signing key file {self.path} is accessible by group or others (mode "
                f"{stat.S_IMODE(info.st_mode):o}); run `chmod 600 {self.path}`"
            )
        try:
            document = json.loads(self.path.read_bytes())
            if document["format"] != SIGNING_FILE_FORMAT or document["algorithm"] != ALGORITHM:
                raise SigningKeyError(f"signing key file {self.path} has an unsupported format")
            wrapped = WrappedKey(
                str(document["kek_version"]),
                base64.b64decode(document["wrapped"], validate=True),
            )
            key_id = str(document["key_id"])
        except (ValueError, KeyError, TypeError, binascii.Error) as error:
            raise SigningKeyError(
                f"signing key file {self.path} is malformed ({type(error).__name__})"
            ) from None
        seed = self.provider.unwrap(wrapped, context=_context(key_id))
        private = Ed25519PrivateKey.from_private_bytes(seed)
        if key_id_of(private.public_key()) != key_id:
            raise SigningKeyError(f"signing key file {self.path}: key id does not match its key")
        return private

    def _create(self) -> None:
        with self._write_lock():
            if self.path.exists():  # another process created it while this one waited
                return
            private = Ed25519PrivateKey.generate()
            seed = private.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            public = private.public_key()
            key_id = key_id_of(public)
            wrapped = self.provider.wrap(seed, context=_context(key_id))
            raw_public = public.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            document = {
                "format": SIGNING_FILE_FORMAT,
                "algorithm": ALGORITHM,
                "key_id": key_id,
                "public_key": base64.b64encode(raw_public).decode(),
                "provider": self.provider.name,
                "kek_version": wrapped.kek_version,
                "wrapped": base64.b64encode(wrapped.ciphertext).decode(),
            }
            write_atomic(self.path, json.dumps(document, indent=2).encode() + b"\n", mode=0o600)

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _context(key_id: str) -> dict[str, str]:
    return {"purpose": _PURPOSE, "key_id": key_id}
