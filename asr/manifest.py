"""A model package's identity without its weights: names, the manifest, and reading it.

No torch here: listing, naming and promoting packages (the service's command line and its
model directory) read only the manifest, the first member of a ``.dg`` tar. Reading a whole
package, weights included, is :func:`asr.package.read_package`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tarfile
import uuid as uuid_lib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

FORMAT = "mip-dg/1"
ASR_KIND = "asr"
FEATURE_KINDS = ("diarizer", "phoneme", "g2p", "language-detector", "sit", "summarize", "search")
KINDS = (ASR_KIND, *FEATURE_KINDS)
MODES = ("batch", "streaming")

MANIFEST = "manifest.json"
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
LM = "lm.json"
WEIGHTS = "model.safetensors"
MEMBER_ORDER = (MANIFEST, CONFIG, TOKENIZER, LM, WEIGHTS)
REQUIRED_MEMBERS = frozenset({MANIFEST, CONFIG, TOKENIZER, WEIGHTS})

# Generous for real models, small enough that a hostile package cannot exhaust memory.
_MiB = 1 << 20
MAX_MEMBER_BYTES = {
    MANIFEST: 4 * _MiB,
    CONFIG: 4 * _MiB,
    TOKENIZER: 4 * _MiB,
    LM: 1024 * _MiB,
    WEIGHTS: 4096 * _MiB,
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# "ctcconv", or a generation-numbered family as the provider names them: "nova-2", "nova-3".
_ARCHITECTURE = re.compile(r"^[a-z0-9]+(?:-[0-9]+)?$")
_DOMAIN = re.compile(r"^[a-z0-9_]+$")
_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(\d+)$")
_LANGUAGE = re.compile(r"^[a-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_STANDARD_NAME = re.compile(
    r"^(?P<architecture>[a-z0-9]+(?:-[0-9]+)?)-(?P<domain>[a-z0-9_]+)"
    r"\.(?P<language>[a-z]{2,8}(?:-[A-Za-z0-9]{1,8})*)"
    r"\.(?P<formatted>formatted|non-formatted)"
    r"\.(?P<mode>batch|streaming)"
    # The provider's files carry a short id of 7 hex digits or more (its documentation's
    # example: nova-2-general.en.formatted.streaming.a12b345.dg); this service writes 8.
    r"\.(?P<id>[0-9a-f]{7,32})\.dg$"
)
_LEGACY_NAME = re.compile(
    r"^(?P<version>\d{4}-\d{2}-\d{2}\.\d+)-(?P<domain>[a-z0-9_]+)-(?P<architecture>[a-z0-9]+)\.dg$"
)

# Fixed tar header fields: the bytes depend on the contents only.


class PackageError(ValueError):
    """A package that cannot be written or read; the message names the file and the reason."""

    def __init__(self, path: Path | str | None, reason: str) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path is not None else reason)


@dataclass(frozen=True)
class PackageManifest:
    """Who the model is. ``files`` is filled in by :func:`write_package` (sha256 per member)."""

    kind: str  # "asr" or a feature model kind (FEATURE_KINDS)
    name: str  # canonical name, e.g. "ctcconv-general"
    architecture: str  # e.g. "ctcconv": lowercase letters and digits, no hyphen
    domain: str  # e.g. "general", "medical": lowercase letters, digits, underscore
    version: str  # YYYY-MM-DD.N, e.g. "2026-11-21.1"; newer dates and larger N are newer
    uuid: str  # canonical lowercase UUID string
    languages: list[str]  # BCP-47-ish codes, the first one goes in the file name
    formatted: bool  # whether the model writes punctuation and casing itself
    mode: str  # "batch" or "streaming"
    aliases: list[str]  # other names a request may use, e.g. ["general", "base"]
    tags: list[str]
    created: str  # ISO-8601 UTC, e.g. "2026-11-21T10:00:00+00:00"
    training_set: dict[str, Any] | None  # lineage: the training set id and version, or None
    metrics: dict[str, float]  # e.g. {"wer": 0.2, "cer": 0.08}
    files: dict[str, str] = field(default_factory=dict)  # member name -> sha256 hex
    format: str = FORMAT

    @property
    def short_id(self) -> str:
        """First 8 hex characters of the uuid, as in the standard file name."""
        return self.uuid.replace("-", "")[:8]

    @property
    def legacy_name(self) -> str:
        """``{version}-{domain}-{architecture}``, the legacy way of naming this model."""
        return f"{self.version}-{self.domain}-{self.architecture}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> PackageManifest:
        """Validate a parsed ``manifest.json``; any problem raises :class:`PackageError`."""
        if not isinstance(data, dict):
            raise PackageError(None, "manifest must be a JSON object")
        fmt = data.get("format")
        if fmt != FORMAT:
            raise PackageError(None, f"manifest format must be {FORMAT!r}, not {fmt!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PackageError(None, f"unknown manifest fields: {', '.join(unknown)}")
        missing = sorted(known - set(data))
        if missing:
            raise PackageError(None, f"manifest is missing fields: {', '.join(missing)}")
        manifest = cls(**data)
        manifest.validate()
        return manifest

    def validate(self) -> None:
        """Raise :class:`PackageError` for the first field that is missing or malformed."""
        _check(self.kind in KINDS, f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        _check_str(self.name, "name", _NAME, "lowercase letters, digits, '.', '_' or '-'")
        _check_str(
            self.architecture,
            "architecture",
            _ARCHITECTURE,
            "lowercase alphanumeric, optionally '-' and a generation number (nova-2)",
        )
        _check_str(self.domain, "domain", _DOMAIN, "lowercase alphanumeric or '_'")
        _check_str(self.version, "version", _VERSION, "YYYY-MM-DD.N, e.g. 2026-11-21.1")
        try:
            dt.date.fromisoformat(self.version.split(".")[0])
        except ValueError:
            raise PackageError(None, f"version {self.version!r} has no valid date") from None
        _check(isinstance(self.uuid, str), "uuid must be a string")
        try:
            canonical = str(uuid_lib.UUID(self.uuid))
        except ValueError:
            raise PackageError(None, f"uuid {self.uuid!r} is not a UUID") from None
        _check(canonical == self.uuid, f"uuid must be written as {canonical!r}")
        _check_str_list(self.languages, "languages", _LANGUAGE, allow_empty=False)
        _check(isinstance(self.formatted, bool), "formatted must be true or false")
        _check(self.mode in MODES, f"mode must be 'batch' or 'streaming', not {self.mode!r}")
        _check_str_list(self.aliases, "aliases", _NAME, allow_empty=True)
        _check(
            isinstance(self.tags, list) and all(isinstance(t, str) for t in self.tags),
            "tags must be a list of strings",
        )
        _check_created(self.created)
        _check(
            self.training_set is None or isinstance(self.training_set, dict),
            "training_set must be an object or null",
        )
        _check(
            isinstance(self.metrics, dict)
            and all(
                isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
                for k, v in self.metrics.items()
            ),
            "metrics must map names to numbers",
        )
        _check(
            isinstance(self.files, dict)
            and all(k in MEMBER_ORDER and k != MANIFEST for k in self.files)
            and all(isinstance(v, str) and _SHA256.match(v) for v in self.files.values()),
            "files must map member names to sha256 hex digests",
        )


def _check(ok: bool, reason: str) -> None:
    if not ok:
        raise PackageError(None, reason)


def _check_str(value: object, what: str, pattern: re.Pattern[str], rule: str) -> None:
    _check(isinstance(value, str) and bool(pattern.match(value)), f"{what} {value!r}: {rule}")


def _check_str_list(
    value: object, what: str, pattern: re.Pattern[str], *, allow_empty: bool
) -> None:
    ok = isinstance(value, list) and all(isinstance(v, str) and pattern.match(v) for v in value)
    _check(ok and (allow_empty or bool(value)), f"{what} {value!r} must be a list of valid codes")


def _check_created(value: object) -> None:
    try:
        created = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        created = None
    _check(
        created is not None and created.utcoffset() == dt.timedelta(0),
        f"created {value!r} must be an ISO-8601 UTC time",
    )


def new_manifest(
    *,
    name: str,
    architecture: str,
    domain: str,
    version: str,
    kind: str = ASR_KIND,
    languages: list[str] | None = None,
    formatted: bool = False,
    mode: str = "batch",
    aliases: list[str] | None = None,
    tags: list[str] | None = None,
    uuid: str | None = None,
    created: str | None = None,
    training_set: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> PackageManifest:
    """A validated manifest with defaults: English, a new uuid, created now (UTC)."""
    if created is None:
        created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    manifest = PackageManifest(
        kind=kind,
        name=name,
        architecture=architecture,
        domain=domain,
        version=version,
        uuid=uuid or str(uuid_lib.uuid4()),
        languages=["en"] if languages is None else list(languages),
        formatted=formatted,
        mode=mode,
        aliases=list(aliases or []),
        tags=list(tags or []),
        created=created,
        training_set=training_set,
        metrics=dict(metrics or {}),
    )
    manifest.validate()
    return manifest


# --- file names ---


@dataclass(frozen=True)
class ParsedName:
    """What a package file name says about its model (None where the style does not say)."""

    style: Literal["standard", "legacy"]
    architecture: str
    domain: str
    language: str | None = None
    formatted: bool | None = None
    mode: str | None = None
    id: str | None = None
    version: str | None = None


def package_filename(
    manifest: PackageManifest, style: Literal["standard", "legacy"] = "standard"
) -> str:
    if style == "legacy":
        return f"{manifest.legacy_name}.dg"
    formatted = "formatted" if manifest.formatted else "non-formatted"
    return (
        f"{manifest.architecture}-{manifest.domain}.{manifest.languages[0]}"
        f".{formatted}.{manifest.mode}.{manifest.short_id}.dg"
    )


def parse_package_filename(name: str | Path) -> ParsedName:
    filename = Path(name).name
    if m := _STANDARD_NAME.match(filename):
        return ParsedName(
            style="standard",
            architecture=m["architecture"],
            domain=m["domain"],
            language=m["language"],
            formatted=m["formatted"] == "formatted",
            mode=m["mode"],
            id=m["id"],
        )
    if m := _LEGACY_NAME.match(filename):
        return ParsedName(
            style="legacy",
            architecture=m["architecture"],
            domain=m["domain"],
            version=m["version"],
        )
    raise PackageError(
        filename,
        "file name matches neither "
        "{architecture}-{domain}.{language}.{formatted|non-formatted}.{batch|streaming}.{id}.dg "
        "nor {version}-{domain}-{architecture}.dg",
    )


def filename_matches(parsed: ParsedName, manifest: PackageManifest) -> bool:
    """Whether every field the file name carries equals the manifest's."""
    pairs = [
        (parsed.architecture, manifest.architecture),
        (parsed.domain, manifest.domain),
        (parsed.language, manifest.languages[0]),
        (parsed.formatted, manifest.formatted),
        (parsed.mode, manifest.mode),
        (parsed.id, manifest.uuid.replace("-", "")[: len(parsed.id or "")]),
        (parsed.version, manifest.version),
    ]
    return all(named is None or named == actual for named, actual in pairs)


# --- reading ---


def read_manifest(path: Path) -> PackageManifest:
    """Only the manifest (the first member): cheap, for listings. Checksums are not verified."""
    path = Path(path)
    try:
        with tarfile.open(path, mode="r:") as tar:
            info = tar.next()
            if info is None or info.name != MANIFEST:
                raise PackageError(path, f"the first member must be {MANIFEST}")
            data = read_member(tar, info, path)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise PackageError(path, f"not a readable package (corrupt tar): {err}") from None
    return parse_manifest(data, path)


def read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> bytes:
    limit = MAX_MEMBER_BYTES.get(info.name, 0)
    if info.size > limit:
        raise PackageError(path, f"member {info.name!r} is {info.size} bytes, over {limit}")
    handle = tar.extractfile(info)
    if handle is None:
        raise PackageError(path, f"member {info.name!r} cannot be read")
    data = handle.read()
    if len(data) != info.size:
        raise PackageError(path, f"member {info.name!r} is truncated")
    return data


def parse_json(data: bytes, member: str, path: Path) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PackageError(path, f"{member} is not valid JSON: {err}") from None
    if not isinstance(parsed, dict):
        raise PackageError(path, f"{member} must hold a JSON object")
    return parsed


def parse_manifest(data: bytes, path: Path) -> PackageManifest:
    parsed = parse_json(data, MANIFEST, path)
    try:
        return PackageManifest.from_dict(parsed)
    except PackageError as err:
        raise PackageError(path, f"bad {MANIFEST}: {err.reason}") from None
    except TypeError as err:
        raise PackageError(path, f"bad {MANIFEST}: {err}") from None
