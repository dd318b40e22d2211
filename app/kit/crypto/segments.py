"""The encrypted object format: AES-256-GCM in authenticated segments, streamed.

An object is a 13-byte header, then segments::

    header   b"MIPE" | format version (u8 = 1) | segment size (u32 BE) | data-key version (u32 BE)
    segment  nonce (12 random bytes) | AES-GCM ciphertext | tag (16 bytes)

Every segment but the last holds exactly ``segment_size`` bytes of plaintext; the last (final) one
holds strictly fewer, possibly none. Each segment's associated data is::

    header | encode_context(context) | segment index (u64 BE) | final flag (u8)

so a segment is bound to its object's header (format and key version), to the object's identity
(organization, sample id, kind), to its position, and to whether it ends the object. Moving a
ciphertext to another sample or tenant, reordering, duplicating, dropping or truncating segments,
or appending data all fail authentication. Memory stays bounded by about one segment::

    sealed = encrypt_bytes(audio, key=data_key, key_version=1, context={"org": o, "sample": s})
    audio == decrypt_bytes(sealed, key_for=lambda version: data_key, context={...same...})
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.kit.errors import MIPError

MAGIC = b"MIPE"
FORMAT_VERSION = 1
SEGMENT_SIZE = 1 << 20
# A forged header must not make the reader buffer gigabytes before the first tag check fails.
MAX_SEGMENT_SIZE = 64 << 20
NONCE_SIZE = 12
TAG_SIZE = 16
DATA_KEY_SIZE = 32

_HEADER = struct.Struct(">4sBII")
_POSITION = struct.Struct(">QB")
_LENGTH = struct.Struct(">I")
HEADER_SIZE = _HEADER.size

KeyLookup = Callable[[int], bytes]
BytesLike = bytes | bytearray | memoryview


class ObjectIntegrityError(MIPError):
    """An encrypted object failed a check: tampered, truncated, misplaced or under the wrong key."""

    err_code = "OBJECT_INTEGRITY"


@dataclass(frozen=True)
class ObjectHeader:
    format_version: int
    segment_size: int
    key_version: int

    def __post_init__(self) -> None:
        if not 0 < self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment size must be in 1..{MAX_SEGMENT_SIZE}")
        if not 0 <= self.key_version < 1 << 32:
            raise ValueError("key version must fit in 32 bits")

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, self.format_version, self.segment_size, self.key_version)


def read_header(prefix: bytes) -> ObjectHeader:
    """Parse the header at the start of ``prefix`` (extra bytes after it are ignored).

    The header is only trusted once the first segment authenticates, since it is part of every
    segment's associated data; this only checks that it is well formed.
    """
    if len(prefix) < HEADER_SIZE:
        raise ObjectIntegrityError(
            f"object truncated: header needs {HEADER_SIZE} bytes, got {len(prefix)}"
        )
    magic, version, segment_size, key_version = _HEADER.unpack_from(prefix)
    if magic != MAGIC:
        raise ObjectIntegrityError("not an encrypted sample object (bad magic)")
    if version != FORMAT_VERSION:
        raise ObjectIntegrityError(f"unsupported object format version {version}")
    if not 0 < segment_size <= MAX_SEGMENT_SIZE:
        raise ObjectIntegrityError(f"segment size {segment_size} in header is out of range")
    return ObjectHeader(version, segment_size, key_version)


def encode_context(context: Mapping[str, str]) -> bytes:
    """Canonical bytes of a context: sorted keys, each key and value u32-length-prefixed UTF-8."""
    parts: list[bytes] = []
    for name in sorted(context):
        for text in (name, context[name]):
            encoded = text.encode()
            parts += (_LENGTH.pack(len(encoded)), encoded)
    return b"".join(parts)


def encrypt_stream(
    chunks: Iterable[BytesLike],
    *,
    key: bytes,
    key_version: int,
    context: Mapping[str, str],
    segment_size: int = SEGMENT_SIZE,
) -> Iterator[bytes]:
    """Yield the header, then one ``nonce | ciphertext | tag`` bytes object per segment.

    Chunks may have any size. Arguments are checked here, before the first item is asked for.
    """
    _check_key(key)
    header = ObjectHeader(FORMAT_VERSION, segment_size, key_version)
    # Encoded now: a context mutated while the stream runs must not change the objects' identity.
    return _seal_segments(chunks, AESGCM(key), header, encode_context(context))


def _seal_segments(
    chunks: Iterable[BytesLike], aead: AESGCM, header: ObjectHeader, encoded_context: bytes
) -> Iterator[bytes]:
    header_bytes = header.pack()
    aad_prefix = header_bytes + encoded_context
    segment_size = header.segment_size
    yield header_bytes
    for index, block in enumerate(_fixed_blocks(chunks, segment_size)):
        final = len(block) < segment_size
        nonce = os.urandom(NONCE_SIZE)
        # One concatenation per segment: the ciphertext is a new object either way, and callers
        # (file writes, multipart uploads) want one buffer per segment.
        yield nonce + aead.encrypt(nonce, block, aad_prefix + _POSITION.pack(index, final))


def decrypt_stream(
    chunks: Iterable[BytesLike], *, key_for: KeyLookup, context: Mapping[str, str]
) -> Iterator[bytes]:
    """Yield the plaintext of each segment once it has authenticated.

    Raises ``ObjectIntegrityError`` at the first failed check. Segments before the failure have
    been yielded already, so a caller that streams must discard its output on that error.
    ``key_for(key_version)`` returns the data key named by the header.
    """
    pieces = iter(chunks)
    head, after_head = _take_header(pieces)
    header = read_header(head)
    key = key_for(header.key_version)
    _check_key(key)
    aead = AESGCM(key)
    aad_prefix = head + encode_context(context)
    record_size = NONCE_SIZE + header.segment_size + TAG_SIZE
    records = _fixed_blocks(itertools.chain((after_head,), pieces), record_size)
    for index, record in enumerate(records):
        final = len(record) < record_size
        if not record:
            raise ObjectIntegrityError(f"object truncated: no final segment after {index} segments")
        if len(record) < NONCE_SIZE + TAG_SIZE:
            raise ObjectIntegrityError(f"object truncated inside segment {index}")
        aad = aad_prefix + _POSITION.pack(index, final)
        try:
            plaintext = aead.decrypt(record[:NONCE_SIZE], record[NONCE_SIZE:], aad)
        except InvalidTag:
            raise ObjectIntegrityError(_auth_failure(index, final=final)) from None
        yield plaintext


def authenticate_stream(
    chunks: Iterable[BytesLike], *, key_for: KeyLookup, context: Mapping[str, str]
) -> int:
    """Check every segment of an object and return its plaintext length; no plaintext is kept."""
    plaintexts = decrypt_stream(chunks, key_for=key_for, context=context)
    return sum(len(plaintext) for plaintext in plaintexts)


def encrypt_bytes(
    data: BytesLike,
    *,
    key: bytes,
    key_version: int,
    context: Mapping[str, str],
    segment_size: int = SEGMENT_SIZE,
) -> bytes:
    """The whole encrypted object for ``data``, for small payloads such as transcripts."""
    sealed = encrypt_stream(
        (data,), key=key, key_version=key_version, context=context, segment_size=segment_size
    )
    return b"".join(sealed)


def decrypt_bytes(data: BytesLike, *, key_for: KeyLookup, context: Mapping[str, str]) -> bytes:
    return b"".join(decrypt_stream((data,), key_for=key_for, context=context))


def _fixed_blocks(chunks: Iterable[BytesLike], size: int) -> Iterator[memoryview]:
    """Re-cut a stream into blocks of exactly ``size`` bytes, then one shorter block (maybe empty).

    Blocks that lie inside one input chunk are views of it, not copies; only blocks that straddle
    chunks are assembled in a buffer, which is reused. So a block is valid only until the next
    one is asked for, and memory stays at one block beyond the caller's chunk.
    """
    spare = bytearray()
    filled = 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        if filled:
            taken = min(size - filled, len(view))
            spare[filled : filled + taken] = view[:taken]
            filled += taken
            view = view[taken:]
            if filled < size:
                continue
            yield memoryview(spare)
            filled = 0
        while len(view) >= size:
            yield view[:size]
            view = view[size:]
        if view:
            if not spare:
                # Fixed size from here on: never resized, so views handed out stay valid.
                spare = bytearray(size)
            spare[: len(view)] = view
            filled = len(view)
    yield memoryview(spare)[:filled]


def _take_header(pieces: Iterator[BytesLike]) -> tuple[bytes, memoryview]:
    """The header bytes (short if the stream is) and the rest of the chunk they ended in."""
    head = bytearray()
    for chunk in pieces:
        view = memoryview(chunk).cast("B")
        needed = HEADER_SIZE - len(head)
        head += view[:needed]
        if len(head) == HEADER_SIZE:
            return bytes(head), view[needed:]
    return bytes(head), memoryview(b"")


def _check_key(key: bytes) -> None:
    if len(key) != DATA_KEY_SIZE:
        raise ValueError(f"a data key is {DATA_KEY_SIZE} bytes (AES-256)")


def _auth_failure(index: int, *, final: bool) -> str:
    position = "final segment" if final else "segment"
    return (
        f"authentication failed for {position} {index} "
        "(tampered, truncated, moved to another object, or wrong key)"
    )
