"""Envelope encryption for the encrypted sample store.

Each organization has AES-256 data keys (``new_data_key``), stored only wrapped by a
key-encryption key (KEK) through a ``KeyProvider`` (a local key file or AWS KMS). Objects are
sealed with a data key in the segmented AES-256-GCM format of ``segments``.
"""

from app.kit.crypto.providers import (
    AwsKmsKeyProvider,
    KeyProvider,
    KeyProviderError,
    KeyUnwrapError,
    LocalKeyProvider,
    WrappedKey,
    new_data_key,
)
from app.kit.crypto.segments import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    ObjectHeader,
    ObjectIntegrityError,
    authenticate_stream,
    decrypt_bytes,
    decrypt_stream,
    encode_context,
    encrypt_bytes,
    encrypt_stream,
    read_header,
)

__all__ = [
    "HEADER_SIZE",
    "SEGMENT_SIZE",
    "AwsKmsKeyProvider",
    "KeyProvider",
    "KeyProviderError",
    "KeyUnwrapError",
    "LocalKeyProvider",
    "ObjectHeader",
    "ObjectIntegrityError",
    "WrappedKey",
    "authenticate_stream",
    "decrypt_bytes",
    "decrypt_stream",
    "encode_context",
    "encrypt_bytes",
    "encrypt_stream",
    "new_data_key",
    "read_header",
]
