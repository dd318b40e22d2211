"""The model directory: every ``*.dg`` package in the model folders, reloaded while serving.

    registry = ModelRegistry([Path("var/models")], poll_seconds=5.0); registry.start()
    model = registry.resolve(model="general", language="en-US", version=None)  # LoadedModel

A background thread rescans the folders every ``poll_seconds``: a package dropped in is served
within one interval, a deleted one stops being served, a corrupt one is logged and skipped
(retried only once its size or mtime changes). Requests read the directory concurrently with
the scan; the heavy reading happens outside the lock and the new state is swapped in at once.
"""

from __future__ import annotations

import logging
import stat
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.kit.errors import BadRequest, NotFound
from app.kit.settings import Settings
from asr.manifest import (
    ASR_KIND,
    PackageError,
    PackageManifest,
    filename_matches,
    parse_package_filename,
)

if TYPE_CHECKING:
    from asr.package import ModelPackage

log = logging.getLogger("mip.engine")

# The provider's documented text, word for word: client code matches on it.
NO_SUCH_MODEL = (
    "Bad Request: No such model/language/tier combination found. "
    'You could try the "general" model (language: en-US, base tier).'
)


# Feature packages whose feature this service runs: keywords (the provider's phoneme and g2p
# models) are boosted by the beam search. Any other kind (diarizer, language-detector, sit,
# summarize, search) is refused at load, so that its parameter stays a 400.
RUNNABLE_FEATURE_KINDS = frozenset({"phoneme", "g2p"})

# A package with this tag (a reseller's custom model) is served only where it is shared.
RESTRICTED_TAG = "custom"


class NoSuchModel(BadRequest):
    def __init__(self) -> None:
        super().__init__(NO_SUCH_MODEL)


class ModelNotFound(NotFound):
    def __init__(self, model_id: str) -> None:
        super().__init__(f"Model {model_id} not found.")


@dataclass(frozen=True)
class AsrKey:
    """The identity of a served model, logged as ``Inserting model key=AsrKey { … }``."""

    name: str
    version: str
    languages: tuple[str, ...]
    uuid: str
    formatted: bool
    mode: str
    architecture: str

    @classmethod
    def of(cls, manifest: PackageManifest) -> AsrKey:
        return cls(
            name=manifest.name,
            version=manifest.version,
            languages=tuple(manifest.languages),
            uuid=manifest.uuid,
            formatted=manifest.formatted,
            mode=manifest.mode,
            architecture=manifest.architecture,
        )

    def __str__(self) -> str:
        languages = ", ".join(f'"{code}"' for code in self.languages)
        return (
            f'AsrKey {{ name: "{self.name}", version: "{self.version}", '
            f"languages: [{languages}], uuid: {self.uuid}, "
            f"formatted: {'true' if self.formatted else 'false'}, "
            f'mode: {self.mode.capitalize()}, architecture: "{self.architecture}" }}'
        )


@dataclass(frozen=True, eq=False)  # holds tensors: compared by identity
class LoadedModel:
    key: AsrKey
    manifest: PackageManifest
    path: Path
    package: ModelPackage


# (size, mtime_ns): a file that changes either is read again.
Fingerprint = tuple[int, int]


@dataclass(frozen=True, eq=False)
class _Entry:
    fingerprint: Fingerprint
    manifest: PackageManifest
    model: LoadedModel | None  # None for feature models: only their presence matters here


@dataclass(frozen=True)
class _Skipped:
    fingerprint: Fingerprint
    duplicate: bool  # a duplicate uuid is retried when the winner goes away


def version_order(version: str) -> tuple[str, int]:
    """Sort key of ``YYYY-MM-DD.N`` (validated by the manifest): date, then N (.10 after .9)."""
    date, _, number = version.partition(".")
    return date, int(number)


def _by_name_newest_first(models: Iterable[LoadedModel]) -> list[LoadedModel]:
    # Two stable sorts: newest version first, then by name.
    newest = sorted(models, key=lambda m: version_order(m.manifest.version), reverse=True)
    return sorted(newest, key=lambda m: m.manifest.name)


def _language_base(code: str) -> str:
    return code.split("-", 1)[0].lower()


class ModelRegistry:
    def __init__(
        self,
        dirs: Iterable[Path],
        *,
        poll_seconds: float,
        default_model: str = "general",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.dirs = list(dirs)
        self.poll_seconds = poll_seconds
        self.default_model = default_model
        # The operator's alias table (MIP_MODEL_ALIASES): a name no installed model has.
        self.aliases = dict(aliases or {})
        self._lock = threading.Lock()  # guards _entries (readers: every request)
        self._scan_lock = threading.Lock()  # one scan at a time (poller or a direct call)
        self._entries: dict[Path, _Entry] = {}
        self._skipped: dict[Path, _Skipped] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- polling ---

    def start(self) -> None:
        """Scan once now (models are ready when this returns), then every ``poll_seconds``."""
        if self._thread is not None:
            return
        self.scan()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="model-directory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.poll_seconds))
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.scan()

    def scan(self) -> None:
        """Load new and changed packages, drop vanished ones. Never raises."""
        with self._scan_lock:
            try:
                self._scan()
            except Exception:
                # The poller must survive anything (an unreadable folder, a bug): log and retry.
                log.exception("Model directory scan failed")

    def _scan(self) -> None:
        found = self._list_packages()
        entries = dict(self._entries)  # only the scan writes, under _scan_lock
        vanished = [path for path, entry in entries.items() if found.get(path) != entry.fingerprint]
        for path in vanished:
            entry = entries.pop(path)
            log.info("Removing model key=%s", AsrKey.of(entry.manifest), extra=_fields(path))
        # Forget skips of changed files, and duplicates whose winner may just have gone.
        self._skipped = {
            path: skip
            for path, skip in self._skipped.items()
            if found.get(path) == skip.fingerprint and not (vanished and skip.duplicate)
        }
        for path, fingerprint in found.items():
            if path not in entries and path not in self._skipped:
                self._insert(entries, path, fingerprint)
        with self._lock:
            self._entries = entries

    def _insert(self, entries: dict[Path, _Entry], path: Path, fingerprint: Fingerprint) -> None:
        new = self._load(path, fingerprint)
        if new is None:
            self._skipped[path] = _Skipped(fingerprint, duplicate=False)
            return
        owner = next((p for p, e in entries.items() if e.manifest.uuid == new.manifest.uuid), None)
        if owner is not None:
            log.warning(
                "Skipping model package %s: uuid %s is already served from %s",
                path.name,
                new.manifest.uuid,
                owner.name,
                extra=_fields(path),
            )
            self._skipped[path] = _Skipped(fingerprint, duplicate=True)
            return
        entries[path] = new
        kind = new.manifest.kind
        what = "model" if kind == ASR_KIND else f"{kind} model"
        log.info("Inserting %s key=%s", what, AsrKey.of(new.manifest), extra=_fields(path))

    def _list_packages(self) -> dict[Path, Fingerprint]:
        found: dict[Path, Fingerprint] = {}
        for directory in self.dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.dg")):
                if path.name.startswith("."):
                    continue
                try:
                    info = path.stat()
                except OSError:
                    continue  # deleted while listing
                if stat.S_ISREG(info.st_mode):
                    found.setdefault(path, (info.st_size, info.st_mtime_ns))
        return found

    def _load(self, path: Path, fingerprint: Fingerprint) -> _Entry | None:
        # Imported here: reading weights needs torch, which the command line never loads.
        from asr.package import read_package

        try:
            package = read_package(path)
            manifest = package.manifest
            if not filename_matches(parse_package_filename(path.name), manifest):
                raise PackageError(
                    path, f"the file name does not match its manifest (uuid {manifest.uuid})"
                )
        except Exception as err:
            # One bad package must never keep the others from being served.
            log.warning("Skipping model package %s: %s", path.name, err, extra=_fields(path))
            return None
        if manifest.kind != ASR_KIND:
            if manifest.kind not in RUNNABLE_FEATURE_KINDS:
                # Loaded but never run, it would turn its parameter into a silent no-op.
                log.warning(
                    "Skipping %s model package %s: this service does not run %s models",
                    manifest.kind,
                    path.name,
                    manifest.kind,
                    extra=_fields(path),
                )
                return None
            return _Entry(fingerprint, manifest, None)
        loaded = LoadedModel(AsrKey.of(manifest), manifest, path, package)
        return _Entry(fingerprint, manifest, loaded)

    # --- reading ---

    def models(self, *, include_restricted: bool = False) -> list[LoadedModel]:
        """Every served ASR model, by name then newest version first.

        A restricted package (a custom model's, tagged ``RESTRICTED_TAG``) is left out unless
        asked for: it is served only to the organizations it is shared with, by uuid.
        """
        with self._lock:
            loaded = [
                e.model
                for e in self._entries.values()
                if e.model is not None and (include_restricted or not is_restricted(e.manifest))
            ]
        return _by_name_newest_first(loaded)

    def restricted(self, model_uuid: str) -> LoadedModel | None:
        """A restricted package by uuid (the caller checked that it may be used)."""
        wanted = model_uuid.strip().lower()
        return next(
            (
                m
                for m in self.models(include_restricted=True)
                if m.manifest.uuid == wanted and is_restricted(m.manifest)
            ),
            None,
        )

    def feature_kinds(self) -> frozenset[str]:
        with self._lock:
            return frozenset(e.manifest.kind for e in self._entries.values() if e.model is None)

    def get(self, model_uuid: str) -> LoadedModel | None:
        wanted = model_uuid.strip().lower()
        return next((m for m in self.models() if m.manifest.uuid == wanted), None)

    def get_or_raise(self, model_uuid: str) -> LoadedModel:
        model = self.get(model_uuid)
        if model is None:
            raise ModelNotFound(model_uuid)
        return model

    def resolve(
        self,
        *,
        model: str | None,
        language: str | None,
        version: str | None,
        mode: str = "batch",
    ) -> LoadedModel:
        """The model a request asks for, or :class:`NoSuchModel`.

        ``model`` is a canonical name, an alias, a uuid, an architecture alone (its "general"
        domain first) or ``{version}-{domain}-{architecture}``; None means ``default_model``.
        ``language`` "en-US" matches "en"; None matches any. ``version`` None or "latest"
        takes the newest version, anything else must be exact. ``mode`` ("batch" or
        "streaming") must be the package's.
        """
        wanted = (model or self.default_model).strip().lower()
        base = _language_base(language) if language else None
        pinned = None if version in (None, "", "latest") else version
        served = self.models()
        named = any(_match_rank(wanted, m.manifest) is not None for m in served)
        if wanted in self.aliases and not named:
            wanted = self.aliases[wanted]
        candidates: list[tuple[int, LoadedModel]] = []
        for loaded in served:
            m = loaded.manifest
            rank = _match_rank(wanted, m)
            if rank is None or m.mode != mode:
                continue
            if base is not None and base not in {_language_base(c) for c in m.languages}:
                continue
            if pinned is not None and m.version != pinned:
                continue
            candidates.append((rank, loaded))
        if not candidates:
            raise NoSuchModel()
        best_rank = min(rank for rank, _ in candidates)
        pool = [loaded for rank, loaded in candidates if rank == best_rank]
        return max(pool, key=lambda m: version_order(m.manifest.version))


def is_restricted(manifest: PackageManifest) -> bool:
    return RESTRICTED_TAG in manifest.tags


def _match_rank(wanted: str, m: PackageManifest) -> int | None:
    """How well ``wanted`` names the model: lower is better, None is no match."""
    if wanted in (m.name, m.uuid, m.legacy_name):
        return 0
    if wanted in m.aliases:
        return 1
    if wanted == m.architecture:
        return 2 if m.domain == "general" else 3
    return None


def _fields(path: Path) -> dict[str, dict[str, str]]:
    return {"fields": {"path": str(path)}}


def open_model_registry(settings: Settings) -> ModelRegistry:
    """The registry over ``effective_models_dir`` (created) and the bundled folder, if any."""
    models_dir = settings.effective_models_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    dirs = [models_dir]
    if settings.bundled_models_dir is not None:
        dirs.append(settings.bundled_models_dir)
    return ModelRegistry(
        dirs,
        poll_seconds=settings.models_poll_seconds,
        default_model=settings.default_model,
        aliases=settings.model_aliases,
    )
