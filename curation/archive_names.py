"""Entry names in an archive: which are safe, which are skipped, and what each one is for.

    normalized("./a/b/call-01.wav")  # "a/b/call-01.wav"; "../x.wav" raises UnsafePath
    role_of("a/b/call-01.txt")       # "transcript"; "manifest.csv" at the root: "manifest"

Names lose their ``.`` and empty parts and are NFC-normalized (macOS writes decomposed
names). A name is unsafe when it is absolute, has a ``..`` part, a drive letter, a backslash,
control characters, a direction override or bytes that are not UTF-8. Hidden files (a part
starting with ``.``), ``__MACOSX/``, ``Thumbs.db`` and ``desktop.ini`` are junk, skipped
without a problem. Audio is ``.wav``, ``.mp3`` or ``.flac`` (any case), a transcript ``.txt``,
and the manifest ``manifest.csv`` or ``manifest.jsonl`` at the root.

A part of :mod:`curation.archives`, which re-exports the public constants.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from typing import Final, Literal, TypeAlias

AUDIO_SUFFIXES: Final = (".wav", ".mp3", ".flac")
TRANSCRIPT_SUFFIX: Final = ".txt"
MANIFEST_NAMES: Final = ("manifest.csv", "manifest.jsonl")
_ARCHIVE_SUFFIXES: Final = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"})
_JUNK_FILES: Final = frozenset({"Thumbs.db", "desktop.ini"})
_DRIVE: Final = re.compile(r"[A-Za-z]:")
# Names that display differently from what they are (an override can show "vaw.exe" as "exe.wav").
_BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
Role: TypeAlias = Literal["audio", "transcript", "manifest"]


class UnsafePath(ValueError):
    """A name that could escape a folder or hide what it is."""


def normalized(raw: str) -> str:
    """``raw`` as a safe relative name, ``.`` and empty parts dropped, NFC; else UnsafePath."""
    if "\\" in raw:
        raise UnsafePath("a backslash (a Windows path separator) in the name")
    if raw.startswith("/"):
        raise UnsafePath("an absolute path")
    if _DRIVE.match(raw):
        raise UnsafePath("a drive letter")
    if any(unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS for char in raw):
        raise UnsafePath("control characters, direction overrides or bytes that are not UTF-8")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePath("a '..' part")
    if not parts:
        raise UnsafePath("an empty name")
    return unicodedata.normalize("NFC", "/".join(parts))


def shown_name(raw: str) -> str:
    return raw if raw.isprintable() else repr(raw)


def is_junk(name: str) -> bool:
    parts = name.split("/")
    return parts[0] == "__MACOSX" or parts[-1] in _JUNK_FILES or any(p[0] == "." for p in parts)


def role_of(name: str) -> Role | None:
    if name in MANIFEST_NAMES:  # at the root: a name with no folder
        return "manifest"
    suffix = _suffix(name)
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    return "transcript" if suffix == TRANSCRIPT_SUFFIX else None


def why_unsupported(name: str) -> str:
    if _suffix(name) in _ARCHIVE_SUFFIXES:
        return "a nested archive: archives inside the archive are not expanded"
    if posixpath.basename(name) in MANIFEST_NAMES:
        return "a manifest below the root: only the root's manifest is read"
    return f"neither audio ({', '.join(AUDIO_SUFFIXES)}) nor a transcript ({TRANSCRIPT_SUFFIX})"


def _suffix(name: str) -> str:
    return posixpath.splitext(name)[1].lower()


def name_stem(name: str) -> str:
    return posixpath.splitext(name)[0]
